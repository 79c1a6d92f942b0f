//! `[gateway]` with `kind = "alipay-openapi"`: the Alipay Open Platform's URL, app id and keys.

use std::time::Duration;

use super::RawGateway;
use crate::config::ConfigError;
use crate::config::validate::{Validator, is_token};
use crate::gateway::alipay_openapi::OpenApiSettings;

impl Validator<'_> {
    pub(super) fn openapi(
        &self,
        raw: &RawGateway,
        timeout: Duration,
    ) -> Result<OpenApiSettings, ConfigError> {
        let url_text = self.required(
            raw.url.as_ref(),
            self.gateway_section,
            "url",
            "set the gateway URL, e.g. url = \"https://openapi.alipay.com/gateway.do\"",
        )?;
        let url = self.url(self.gateway_section, "url", url_text)?;
        let app_id = self.required(
            raw.app_id.clone(),
            self.gateway_section,
            "app_id",
            "set the app id from the Alipay Open Platform console",
        )?;
        if !is_token(&app_id, 32, |b| b.is_ascii_digit()) {
            return Err(self.invalid(
                self.gateway_section,
                "app_id",
                &app_id,
                "an Alipay app id is all digits, e.g. 2021000000000001",
            ));
        }
        let (private_key, alipay_public_key) = self.key_pair(raw, "Open Platform")?;
        for (key, value) in [
            ("app_auth_token", &raw.app_auth_token),
            ("notify_url", &raw.notify_url),
            ("seller_id", &raw.seller_id),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(char::is_control))
            {
                return Err(self.invalid(
                    self.gateway_section,
                    key,
                    v,
                    "must be non-empty printable text, or left out",
                ));
            }
        }
        Ok(OpenApiSettings {
            url,
            app_id,
            private_key,
            alipay_public_key,
            app_auth_token: raw.app_auth_token.clone(),
            notify_url: raw.notify_url.clone(),
            seller_id: raw.seller_id.clone(),
            timeout,
        })
    }
}
