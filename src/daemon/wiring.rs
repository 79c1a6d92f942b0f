//! Wiring: the parts a config describes, built in one place for the daemon and for every
//! command that needs an engine or a gateway.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, GatewaySettings};
use crate::gateway::Gateway;
use crate::gateway::alipay_ams::Ams;
use crate::gateway::alipay_openapi::OpenApi;
use crate::sandbox::Sandbox;

/// The engine a one-shot command works with: the configured gateway and the journal (taken
/// for writing), resolving in line.
pub fn open_engine(
    config: &Config,
    observer: Arc<dyn crate::events::Observer>,
    cancel_give_up_after: std::time::Duration,
) -> Result<crate::engine::Engine, String> {
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let gateway = build_gateway(config, clock.clone())?;
    let journal = crate::journal::Journal::open(&config.journal.path).map_err(|e| e.to_string())?;
    Ok(crate::engine::Engine::new(
        Arc::new(journal),
        gateway,
        clock,
        observer,
        config.engine_settings(Some(cancel_give_up_after), true),
    ))
}

/// The configured gateway client, its every outcome scrubbed of payment codes
/// (`gateway::scrub`) before anything stores, logs or prints it.
pub fn build_gateway(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Gateway>, String> {
    let client: Arc<dyn Gateway> = match &config.gateway {
        GatewaySettings::Sandbox(s) => match &s.url {
            None => Arc::new(Sandbox::new(clock)),
            Some(url) => {
                return Err(format!(
                    "{}: [gateway] url = {url:?}: kind = \"sandbox\" runs in-process; to use `scanpay sandbox` over HTTP, use the client config it writes",
                    config.source
                ));
            }
        },
        GatewaySettings::OpenApi(o) => Arc::new(OpenApi::new(o.clone(), clock)?),
        GatewaySettings::Ams(a) => Arc::new(Ams::new(a.clone(), clock)?),
    };
    Ok(Arc::new(crate::gateway::scrub::Scrubbed(client)))
}
