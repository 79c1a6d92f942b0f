//! `[gateway]` with `kind = "alipay-openapi"`: the Alipay Open Platform's URL, app id and keys.

use std::time::Duration;

use super::RawGateway;
use crate::config::ConfigError;
use crate::config::validate::{Validator, is_token};
use crate::gateway::alipay_openapi::{CertMode, OpenApiSettings, cert};
use crate::gateway::keys::{PrivateKey, PublicKey};

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
        let (private_key, alipay_public_key, cert_mode) = if raw.app_cert_file.is_some()
            || raw.alipay_cert_file.is_some()
            || raw.alipay_root_cert_file.is_some()
        {
            let (private_key, alipay_public_key, mode) = self.cert_mode(raw)?;
            (private_key, alipay_public_key, Some(mode))
        } else {
            let (private_key, alipay_public_key) = self.key_pair(raw, "Open Platform")?;
            (private_key, alipay_public_key, None)
        };
        for (key, value) in [
            ("app_auth_token", &raw.app_auth_token),
            ("notify_url", &raw.notify_url),
            ("seller_id", &raw.seller_id),
            ("sys_service_provider_id", &raw.sys_service_provider_id),
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
            sys_service_provider_id: raw.sys_service_provider_id.clone(),
            timeout,
            cert_mode,
        })
    }

    /// Certificate mode (docs/protocol.md §3.4): all three certificate files, no
    /// `alipay_public_key_file`; the app certificate holds the private key's public half, and
    /// the Alipay certificate chains to the root bundle.
    fn cert_mode(
        &self,
        raw: &RawGateway,
    ) -> Result<(PrivateKey, PublicKey, CertMode), ConfigError> {
        let section = self.gateway_section;
        if let Some(file) = &raw.alipay_public_key_file {
            return Err(self.invalid(
                section,
                "alipay_public_key_file",
                file,
                "an app signs in either public-key mode or certificate mode: with app_cert_file, alipay_cert_file and alipay_root_cert_file, answers are verified with alipay_cert_file; remove alipay_public_key_file",
            ));
        }
        let hint = "certificate mode needs all three certificate files from the Alipay console: app_cert_file (appCertPublicKey_<app id>.crt), alipay_cert_file (alipayCertPublicKey_RSA2.crt) and alipay_root_cert_file (alipayRootCert.crt)";
        let app_file = self.required(raw.app_cert_file.as_ref(), section, "app_cert_file", hint)?;
        let alipay_file = self.required(
            raw.alipay_cert_file.as_ref(),
            section,
            "alipay_cert_file",
            hint,
        )?;
        let root_file = self.required(
            raw.alipay_root_cert_file.as_ref(),
            section,
            "alipay_root_cert_file",
            hint,
        )?;
        let private_key = self.private_key(raw)?;
        let read = |key: &'static str, file: &String| {
            cert::load(&self.path(file)).map_err(|e| self.invalid(section, key, file, e))
        };
        let app = read("app_cert_file", app_file)?;
        let app_key = cert::public_key(&app[0], app_file)
            .map_err(|e| self.invalid(section, "app_cert_file", app_file, e))?;
        if !app_key.same_key(&private_key.public_key()) {
            return Err(self.invalid(
                section,
                "app_cert_file",
                app_file,
                "this certificate is not for the key in private_key_file: use the app public-key certificate (appCertPublicKey_…) issued for this private key",
            ));
        }
        let alipay = read("alipay_cert_file", alipay_file)?;
        // Absolute: a rotated certificate is stored there long after the config was read.
        let alipay_path =
            std::path::absolute(self.path(alipay_file)).unwrap_or_else(|_| self.path(alipay_file));
        let alipay_key = cert::public_key(&alipay[0], &alipay_path.display().to_string())
            .map_err(|e| self.invalid(section, "alipay_cert_file", alipay_file, e))?;
        if alipay_key.same_key(&app_key) {
            return Err(self.invalid(
                section,
                "alipay_cert_file",
                alipay_file,
                "this is your app's certificate, not Alipay's: use the Alipay public-key certificate (alipayCertPublicKey_RSA2.crt)",
            ));
        }
        let roots = read("alipay_root_cert_file", root_file)?;
        let alipay_root_cert_sn = cert::root_cert_sn(&roots);
        if alipay_root_cert_sn.is_empty() {
            return Err(self.invalid(
                section,
                "alipay_root_cert_file",
                root_file,
                "the bundle holds no RSA-signed certificate: use Alipay's root certificate bundle (alipayRootCert.crt)",
            ));
        }
        cert::verify_chain(&alipay, &roots, chrono::Utc::now()).map_err(|e| {
            self.invalid(
                section,
                "alipay_cert_file",
                alipay_file,
                format!(
                    "{e}; the Alipay certificate must chain to alipay_root_cert_file = {root_file:?}"
                ),
            )
        })?;
        Ok((
            private_key,
            alipay_key,
            CertMode {
                app_cert_sn: cert::cert_sn(&app[0]),
                alipay_root_cert_sn,
                roots,
                alipay_cert_file: alipay_path,
                alipay_cert_sn: cert::cert_sn(&alipay[0]),
                app_cert_file: self.path(app_file),
                alipay_root_cert_file: self.path(root_file),
                app_cert_not_after: cert::validity(&app[0]).1,
                alipay_cert_not_after: cert::validity(&alipay[0]).1,
            },
        ))
    }
}
