//! `[api]`: the register API's socket, its access, and the optional TCP listener.

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;
use crate::api::ApiConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    socket: Option<String>,
    socket_mode: Option<String>,
    group: Option<String>,
    tcp: Option<String>,
    allow_remote: Option<bool>,
    token: Option<String>,
}

impl Validator<'_> {
    pub(super) fn api(&self, raw: RawApi) -> Result<ApiConfig, ConfigError> {
        let socket = self.path(raw.socket.as_deref().unwrap_or("/run/scanpay/api.sock"));
        let mode_text = raw.socket_mode.unwrap_or_else(|| "0660".to_string());
        let socket_mode = u32::from_str_radix(mode_text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o007 == 0)
            .ok_or_else(|| {
                self.invalid(
                    "api",
                    "socket_mode",
                    &mode_text,
                    "an octal mode without access for others, e.g. \"0660\"",
                )
            })?;
        let tcp = match &raw.tcp {
            None => None,
            Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                self.invalid("api", "tcp", text, "an address like \"127.0.0.1:8089\"")
            })?),
        };
        let allow_remote = raw.allow_remote.unwrap_or(false);
        if let Some(addr) = tcp
            && !addr.ip().is_loopback()
            && !allow_remote
        {
            return Err(self.invalid(
                "api",
                "tcp",
                addr.to_string(),
                "not a loopback address: the register API is local; set allow_remote = true with a token to expose it",
            ));
        }
        if let Some(t) = &raw.token
            && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.invalid(
                "api",
                "token",
                "(hidden)",
                "use at least 16 printable characters without spaces",
            ));
        }
        if allow_remote && raw.token.is_none() {
            return Err(self.missing("api", "token", "allow_remote = true needs a bearer token"));
        }
        Ok(ApiConfig {
            socket,
            socket_mode,
            group: raw.group,
            tcp,
            token: raw.token,
        })
    }
}
