//! `[gateway]` with `kind = "alipay-ams"`: the Antom AMS origin, client id, keys and the
//! merchant details every pay carries.

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
        timeout: Duration,
    ) -> Result<AmsSettings, ConfigError> {
        let url_text = self.required(
            raw.url.as_ref(),
            self.gateway_section,
            "url",
            "set the AMS origin, e.g. url = \"https://open-sea-global.alipay.com\"",
        )?;
        let origin = self.url(self.gateway_section, "url", url_text)?;
        if origin.path() != "/" || origin.query().is_some() {
            return Err(self.invalid(
                self.gateway_section,
                "url",
                url_text,
                "give the origin only (scheme, host, port); scanpay appends /ams/api/v1/...",
            ));
        }
        // An empty value counts as missing.
        let required_text =
            |key: &'static str, value: &Option<String>, why: &'static str| match value
                .as_ref()
                .filter(|v| !v.is_empty())
            {
                Some(v) if v.chars().count() <= 256 && !v.chars().any(char::is_control) => {
                    Ok(v.clone())
                }
                Some(v) => Err(self.invalid(
                    self.gateway_section,
                    key,
                    v,
                    "use printable text of at most 256 characters",
                )),
                None => Err(self.missing(self.gateway_section, key, why)),
            };
        let client_id = required_text(
            "client_id",
            &raw.client_id,
            "set the client id from the Antom dashboard",
        )?;
        let key_version = raw.key_version.unwrap_or(1);
        if key_version == 0 {
            return Err(self.invalid(
                self.gateway_section,
                "key_version",
                key_version,
                "key versions start at 1",
            ));
        }
        let (private_key, alipay_public_key) = self.key_pair(raw, "Antom")?;
        let merchant_mcc = required_text(
            "merchant_mcc",
            &raw.merchant_mcc,
            "set the merchant category code, e.g. \"5812\"",
        )?;
        if merchant_mcc.len() != 4 || !merchant_mcc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(
                self.gateway_section,
                "merchant_mcc",
                &merchant_mcc,
                "an MCC is 4 digits, e.g. \"5812\"",
            ));
        }
        if let Some(region) = &raw.merchant_region
            && (region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(self.invalid(
                self.gateway_section,
                "merchant_region",
                region,
                "a 2-letter region code, e.g. \"SG\"",
            ));
        }
        if let Some(c) = &raw.settlement_currency {
            Currency::from_code(c).map_err(|e| {
                self.invalid(
                    self.gateway_section,
                    "settlement_currency",
                    c,
                    e.to_string(),
                )
            })?;
        }
        if let Some(u) = &raw.payment_notify_url {
            self.url(self.gateway_section, "payment_notify_url", u)?;
        }
        let payment_expiry = raw
            .payment_expiry_s
            .map(|s| {
                self.in_range(
                    self.gateway_section,
                    "payment_expiry_s",
                    s,
                    30..=86_400,
                    "seconds",
                )
            })
            .transpose()?
            .map(Duration::from_secs);
        Ok(AmsSettings {
            origin,
            client_id,
            key_version,
            private_key,
            alipay_public_key,
            merchant: crate::gateway::alipay_ams::wire::Merchant {
                reference_merchant_id: required_text(
                    "reference_merchant_id",
                    &raw.reference_merchant_id,
                    "set your merchant reference id",
                )?,
                merchant_name: required_text(
                    "merchant_name",
                    &raw.merchant_name,
                    "set the merchant name",
                )?,
                merchant_mcc,
                reference_store_id: required_text(
                    "reference_store_id",
                    &raw.reference_store_id,
                    "set your store reference id",
                )?,
                store_name: required_text("store_name", &raw.store_name, "set the store name")?,
                merchant_region: raw.merchant_region.clone(),
                settlement_currency: raw.settlement_currency.clone(),
                payment_notify_url: raw.payment_notify_url.clone(),
            },
            payment_expiry,
            timeout,
        })
    }
}
