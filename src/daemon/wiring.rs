//! Wiring: the parts a config describes, built in one place for the daemon and for every
//! command that needs an engine or a gateway.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, GatewayKind};
use crate::gateway::Gateway;
use crate::gateway::alipay_ams::{Ams, AmsSettings};
use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use crate::gateway::sandbox::Sandbox;

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
        engine_settings(config, Some(cancel_give_up_after), true),
    ))
}

/// The engine's settings from a config: `resolve_inline` for one-shot commands, which wait
/// for their own answer; the daemon hands unclear answers to its watchdog.
pub fn engine_settings(
    config: &Config,
    cancel_give_up_after: Option<std::time::Duration>,
    resolve_inline: bool,
) -> crate::engine::EngineSettings {
    crate::engine::EngineSettings {
        terminal: config.terminal.clone(),
        timeout: config.gateway.timeout,
        watchdog: config.watchdog.clone(),
        cancel_give_up_after,
        resolve_inline,
    }
}

/// The Open Platform client a config describes.
pub fn openapi_client(
    o: &crate::config::OpenApiConfig,
    timeout: std::time::Duration,
    clock: Arc<dyn Clock>,
) -> Result<OpenApi, String> {
    let settings = OpenApiSettings {
        url: o.url.clone(),
        app_id: o.app_id.clone(),
        private_key: o.private_key.clone(),
        alipay_public_key: o.alipay_public_key.clone(),
        app_auth_token: o.app_auth_token.clone(),
        notify_url: o.notify_url.clone(),
        seller_id: o.seller_id.clone(),
        timeout,
    };
    OpenApi::new(settings, clock)
}

/// The configured gateway client, its every outcome scrubbed of payment codes
/// (`gateway::scrub`) before anything stores, logs or prints it.
pub fn build_gateway(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Gateway>, String> {
    let g = &config.gateway;
    let client: Arc<dyn Gateway> = match (g.kind, &g.openapi, &g.ams) {
        (GatewayKind::Sandbox, _, _) => match &g.url {
            None => Arc::new(Sandbox::new(clock)),
            Some(url) => {
                return Err(format!(
                    "{}: [gateway] url = {url:?}: kind = \"sandbox\" runs in-process; to use `scanpay sandbox` over HTTP, use the client config it writes",
                    config.source
                ));
            }
        },
        (GatewayKind::AlipayOpenapi, Some(o), _) => Arc::new(openapi_client(o, g.timeout, clock)?),
        (GatewayKind::AlipayAms, _, Some(a)) => {
            let settings = AmsSettings {
                origin: a.origin.clone(),
                client_id: a.client_id.clone(),
                key_version: a.key_version,
                private_key: a.private_key.clone(),
                alipay_public_key: a.alipay_public_key.clone(),
                merchant: a.merchant.clone(),
                payment_expiry: a.payment_expiry,
                timeout: g.timeout,
            };
            Arc::new(Ams::new(settings, clock)?)
        }
        (kind, _, _) => {
            return Err(format!(
                "{}: [gateway] kind = \"{}\" without its keys",
                config.source,
                kind.as_str()
            ));
        }
    };
    Ok(Arc::new(crate::gateway::scrub::Scrubbed(client)))
}
