//! What every section's validation shares: the file an error names, the directory its
//! relative paths start from, and the checks several sections make.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use super::ConfigError;

pub(super) struct Validator<'a> {
    /// The file every error names.
    pub(super) file: &'a str,
    /// The file's directory: relative paths inside the file start here, not at the working
    /// directory.
    pub(super) base: &'a Path,
    /// The section a gateway's keys are in: `gateway`, or `gateway.alipay` /
    /// `gateway.wechat` when several are configured.
    pub(super) gateway_section: &'static str,
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

    /// The value of a key that must be there, or the error saying what to set.
    pub(super) fn required<T>(
        &self,
        value: Option<T>,
        section: &'static str,
        key: &'static str,
        why: &'static str,
    ) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(section, key, why))
    }

    /// A path as the file gives it, resolved against the file's directory.
    pub(super) fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// A number that must lie in `range`, counted in `unit` (for the error).
    pub(super) fn in_range(
        &self,
        section: &'static str,
        key: &'static str,
        value: u64,
        range: RangeInclusive<u64>,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        if range.contains(&value) {
            return Ok(value);
        }
        Err(self.invalid(
            section,
            key,
            value,
            format!(
                "must be between {} and {} {unit}",
                range.start(),
                range.end()
            ),
        ))
    }

    /// A URL, parsed.
    pub(super) fn url(
        &self,
        section: &'static str,
        key: &'static str,
        text: &str,
    ) -> Result<url::Url, ConfigError> {
        url::Url::parse(text)
            .map_err(|e| self.invalid(section, key, text, format!("not a URL: {e}")))
    }
}

/// Whether `text` is 1 to `max` bytes, each `allowed`: the ids that become part of requests
/// and file names.
pub(super) fn is_token(text: &str, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(allowed)
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
