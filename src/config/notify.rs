//! `[notify]`: the optional receiver of the providers' payment notifications
//! (docs/gateways.md §12), for a till the provider can reach (directly, or behind the store's
//! reverse proxy). The URLs the providers are told are the gateways' own keys
//! (`[gateway] notify_url`, `payment_notify_url`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    listen: Option<String>,
}

impl Validator<'_> {
    /// Where the receiver listens; `None` without one.
    pub(super) fn notify(&self, raw: Option<RawNotify>) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(listen) = raw.and_then(|r| r.listen) else {
            return Ok(None);
        };
        listen.parse::<SocketAddr>().map(Some).map_err(|_| {
            self.invalid(
                "notify",
                "listen",
                &listen,
                "an address and port, such as \"127.0.0.1:8090\" (behind a reverse proxy) or \"0.0.0.0:8090\"",
            )
        })
    }
}
