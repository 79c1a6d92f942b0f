//! `[members]`: member auto-debit bindings (docs/operations.md, member token key). The token
//! key file is read here, refused when group or others may read it; with systemd's
//! `LoadCredential=member-token.key:…` and no `token_key_file`, the key is read from
//! `$CREDENTIALS_DIRECTORY/member-token.key`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;
use crate::api::members::MembersConfig;
use crate::journal::members::{TokenKeys, read_key_file};

const SECTION: &str = "members";
/// The credential name under `$CREDENTIALS_DIRECTORY` used when `token_key_file` is unset.
pub const CREDENTIAL: &str = "member-token.key";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMembers {
    token_key_file: Option<String>,
    #[serde(default)]
    token_key_previous_files: Vec<String>,
    wallet: Option<String>,
    auth_redirect_url: Option<String>,
    terminal_type: Option<String>,
    os_type: Option<String>,
    refresh_before_s: Option<u64>,
    refresh_check_s: Option<u64>,
    /// A member sale above this, or a day's member sales above `max_per_day`, is not
    /// auto-debited: the customer scans a code instead.
    max_per_sale: Option<String>,
    max_per_day: Option<String>,
    /// A scan of this form while a sale is armed charges that sale to the member it names.
    barcode_pattern: Option<String>,
}

impl Validator<'_> {
    pub(super) fn members(
        &self,
        raw: RawMembers,
        has_ams: bool,
        currency: crate::money::Currency,
    ) -> Result<MembersConfig, ConfigError> {
        let limit = |key: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|t| match crate::money::Amount::parse(t, currency) {
                    Ok(a) if a.is_positive() => Ok(a),
                    Ok(_) => Err(self.invalid(SECTION, key, t, "an amount above zero")),
                    Err(e) => Err(self.invalid(SECTION, key, t, e.to_string())),
                })
                .transpose()
        };
        let max_per_sale = limit("max_per_sale", &raw.max_per_sale)?;
        let max_per_day = limit("max_per_day", &raw.max_per_day)?;
        if !has_ams {
            return Err(self.invalid(
                SECTION,
                "wallet",
                raw.wallet.as_deref().unwrap_or("ALIPAY_CN"),
                "member bindings use Antom AMS authorizations: configure an AMS gateway (kind = \"alipay-ams\")",
            ));
        }
        let key_path = match (
            &raw.token_key_file,
            std::env::var_os("CREDENTIALS_DIRECTORY"),
        ) {
            (Some(file), _) => self.path(file),
            (None, Some(dir)) => std::path::Path::new(&dir).join(CREDENTIAL),
            (None, None) => {
                return Err(self.missing(
                    SECTION,
                    "token_key_file",
                    "name the file of 32 random bytes (mode 0600) that seals members' tokens, e.g. \"/etc/scanpay/member-token.key\", or pass it as the systemd credential member-token.key",
                ));
            }
        };
        let shown = key_path.display().to_string();
        let current = read_key_file(&key_path)
            .map_err(|why| self.invalid(SECTION, "token_key_file", &shown, why))?;
        let mut previous = Vec::new();
        for file in &raw.token_key_previous_files {
            previous.push(
                read_key_file(&self.path(file))
                    .map_err(|why| self.invalid(SECTION, "token_key_previous_files", file, why))?,
            );
        }
        let previous_refs: Vec<&[u8]> = previous.iter().map(|k| &k[..]).collect();
        let keys = TokenKeys::new(&current, &previous_refs)
            .map_err(|why| self.invalid(SECTION, "token_key_file", &shown, why))?;
        let wallet = raw.wallet.unwrap_or_else(|| "ALIPAY_CN".to_string());
        if !super::validate::is_token(&wallet, 32, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
        }) {
            return Err(self.invalid(
                SECTION,
                "wallet",
                &wallet,
                "the wallet's code as Antom names it, e.g. \"ALIPAY_CN\" (A-Z, 0-9, _)",
            ));
        }
        let redirect = self.required(
            raw.auth_redirect_url,
            SECTION,
            "auth_redirect_url",
            "where the wallet sends the customer (with authCode and authState) after approving, e.g. \"https://shop.example/member/bound\"",
        )?;
        let url = self.url(SECTION, "auth_redirect_url", &redirect)?;
        if url.scheme() != "https"
            && url.host_str() != Some("127.0.0.1")
            && url.host_str() != Some("localhost")
        {
            return Err(self.invalid(SECTION, "auth_redirect_url", &redirect, "must be https"));
        }
        let terminal_type = raw.terminal_type.unwrap_or_else(|| "WAP".to_string());
        if !["WEB", "WAP", "APP", "MINI_APP"].contains(&terminal_type.as_str()) {
            return Err(self.invalid(
                SECTION,
                "terminal_type",
                &terminal_type,
                "one of \"WEB\", \"WAP\", \"APP\", \"MINI_APP\"",
            ));
        }
        if let Some(os) = &raw.os_type
            && !["IOS", "ANDROID"].contains(&os.as_str())
        {
            return Err(self.invalid(SECTION, "os_type", os, "\"IOS\" or \"ANDROID\""));
        }
        let refresh_before = self.in_range(
            SECTION,
            "refresh_before_s",
            raw.refresh_before_s.unwrap_or(86_400),
            1..=30 * 86_400,
            "seconds",
        )?;
        let refresh_every = self.in_range(
            SECTION,
            "refresh_check_s",
            raw.refresh_check_s.unwrap_or(300),
            1..=86_400,
            "seconds",
        )?;
        let barcode = raw
            .barcode_pattern
            .as_deref()
            .map(|p| {
                crate::paycode::MemberBarcode::parse(p)
                    .map_err(|why| self.invalid(SECTION, "barcode_pattern", p, why))
            })
            .transpose()?;
        Ok(MembersConfig {
            barcode,
            keys: Arc::new(keys),
            wallet,
            auth_redirect_url: redirect,
            terminal_type,
            os_type: raw.os_type,
            refresh_before: Duration::from_secs(refresh_before),
            refresh_every: Duration::from_secs(refresh_every),
            max_per_sale,
            max_per_day,
        })
    }
}
