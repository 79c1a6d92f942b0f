//! `[gateway]` with `kind = "alipay-ams"`: the Antom AMS origin, client id, keys and the
//! merchant details every pay carries.

use std::path::Path;
use std::time::Duration;

use super::RawGateway;
use crate::config::ConfigError;
use crate::config::validate::Validator;
use crate::gateway::alipay_ams::AmsSettings;
use crate::money::Currency;

impl Validator<'_> {
    pub(super) fn ams(
        &self,
        raw: &RawGateway,
        base: &Path,
        timeout: Duration,
    ) -> Result<AmsSettings, ConfigError> {
        let url_text = raw.url.as_ref().ok_or_else(|| {
            self.missing(
                "gateway",
                "url",
                "set the AMS origin, e.g. url = \"https://open-sea-global.alipay.com\"",
            )
        })?;
        let origin = url::Url::parse(url_text)
            .map_err(|e| self.invalid("gateway", "url", url_text, format!("not a URL: {e}")))?;
        if origin.path() != "/" || origin.query().is_some() {
            return Err(self.invalid(
                "gateway",
                "url",
                url_text,
                "give the origin only (scheme, host, port); scanpay appends /ams/api/v1/...",
            ));
        }
        let required = |key: &'static str, value: &Option<String>, why: &'static str| match value
            .as_ref()
            .filter(|v| !v.is_empty())
        {
            Some(v) if v.chars().count() <= 256 && !v.chars().any(char::is_control) => {
                Ok(v.clone())
            }
            Some(v) => Err(self.invalid(
                "gateway",
                key,
                v,
                "use printable text of at most 256 characters",
            )),
            None => Err(self.missing("gateway", key, why)),
        };
        let client_id = required(
            "client_id",
            &raw.client_id,
            "set the client id from the Antom dashboard",
        )?;
        let key_version = raw.key_version.unwrap_or(1);
        if key_version == 0 {
            return Err(self.invalid(
                "gateway",
                "key_version",
                key_version,
                "key versions start at 1",
            ));
        }
        let (private_key, alipay_public_key) = self.key_pair(raw, base, "Antom")?;
        let merchant_mcc = required(
            "merchant_mcc",
            &raw.merchant_mcc,
            "set the merchant category code, e.g. \"5812\"",
        )?;
        if merchant_mcc.len() != 4 || !merchant_mcc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(
                "gateway",
                "merchant_mcc",
                &merchant_mcc,
                "an MCC is 4 digits, e.g. \"5812\"",
            ));
        }
        if let Some(region) = &raw.merchant_region
            && (region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(self.invalid(
                "gateway",
                "merchant_region",
                region,
                "a 2-letter region code, e.g. \"SG\"",
            ));
        }
        if let Some(c) = &raw.settlement_currency {
            Currency::from_code(c)
                .map_err(|e| self.invalid("gateway", "settlement_currency", c, e.to_string()))?;
        }
        if let Some(u) = &raw.payment_notify_url {
            url::Url::parse(u).map_err(|e| {
                self.invalid(
                    "gateway",
                    "payment_notify_url",
                    u,
                    format!("not a URL: {e}"),
                )
            })?;
        }
        let payment_expiry = match raw.payment_expiry_s {
            Some(s) if (30..=86_400).contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(self.invalid(
                    "gateway",
                    "payment_expiry_s",
                    s,
                    "must be between 30 and 86400 seconds",
                ));
            }
            None => None,
        };
        Ok(AmsSettings {
            origin,
            client_id,
            key_version,
            private_key,
            alipay_public_key,
            merchant: crate::gateway::alipay_ams::wire::Merchant {
                reference_merchant_id: required(
                    "reference_merchant_id",
                    &raw.reference_merchant_id,
                    "set your merchant reference id",
                )?,
                merchant_name: required(
                    "merchant_name",
                    &raw.merchant_name,
                    "set the merchant name",
                )?,
                merchant_mcc,
                reference_store_id: required(
                    "reference_store_id",
                    &raw.reference_store_id,
                    "set your store reference id",
                )?,
                store_name: required("store_name", &raw.store_name, "set the store name")?,
                merchant_region: raw.merchant_region.clone(),
                settlement_currency: raw.settlement_currency.clone(),
                payment_notify_url: raw.payment_notify_url.clone(),
            },
            payment_expiry,
            timeout,
        })
    }
}
