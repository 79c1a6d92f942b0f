//! What every section's validation shares: the file an error names, and the checks
//! several sections make.

use super::ConfigError;

pub(super) struct Validator<'a> {
    pub(super) file: &'a str,
}

impl Validator<'_> {
    pub(super) fn invalid(
        &self,
        section: &'static str,
        key: &'static str,
        value: impl std::fmt::Debug,
        why: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            section,
            key,
            value: format!("{value:?}"),
            why: why.into(),
        }
    }

    pub(super) fn missing(
        &self,
        section: &'static str,
        key: &'static str,
        why: &'static str,
    ) -> ConfigError {
        ConfigError::Missing {
            file: self.file.to_string(),
            section,
            key,
            why,
        }
    }
}

/// Gateway URLs are HTTPS, except plain HTTP to this machine (the sandbox on loopback).
pub(super) fn check_url(text: &str) -> Result<(), &'static str> {
    use url::Host;
    let url = url::Url::parse(text)
        .map_err(|_| "not a URL: write it like https://openapi.alipay.com/gateway.do")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user names and passwords do not belong in the gateway URL");
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(
            "use an https:// URL; plain http:// is allowed only for loopback hosts (127.0.0.1, localhost, [::1])",
        ),
    }
}
