//! Wiring: the parts a config describes, built in one place for the daemon and for every
//! command that needs an engine or a gateway.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, GatewaySettings};
use crate::gateway::Gateway;
use crate::gateway::alipay_ams::Ams;
use crate::gateway::alipay_openapi::OpenApi;
use crate::gateway::router::Router;
use crate::gateway::wechat_pay::WechatPay;
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

/// The configured gateway clients, each with its every outcome scrubbed of payment codes
/// (`gateway::scrub`) before anything stores, logs or prints it; several behind a
/// [`Router`] that sends each wallet's codes to its own gateway (docs/gateways.md §8.8).
pub fn build_gateway(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn Gateway>, String> {
    let mut clients: Vec<Arc<dyn Gateway>> = Vec::new();
    for settings in config.gateways() {
        clients.push(Arc::new(crate::gateway::scrub::Scrubbed(build_one(
            config,
            settings,
            clock.clone(),
        )?)));
    }
    if clients.len() == 1 {
        return clients
            .pop()
            .ok_or_else(|| format!("{}: no gateway configured", config.source));
    }
    Ok(Arc::new(
        Router::new(clients).map_err(|e| format!("{}: {e}", config.source))?,
    ))
}

fn build_one(
    config: &Config,
    settings: &GatewaySettings,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Gateway>, String> {
    Ok(match settings {
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
        GatewaySettings::Wechat(w) => Arc::new(WechatPay::new(w.clone(), clock)?),
    })
}

/// The member bindings `[members]` describes, over an AMS client of their own (the
/// configuration checks that an AMS gateway is configured). A reload does not replace it:
/// a changed AMS key takes effect for bindings at the next start.
pub fn build_members(
    config: &Config,
    journal: Arc<crate::journal::Journal>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn crate::events::Observer>,
) -> Result<Option<Arc<crate::api::members::Members>>, String> {
    let Some(members) = &config.members else {
        return Ok(None);
    };
    let Some(ams) = config.gateways().find_map(|g| match g {
        GatewaySettings::Ams(a) => Some(a.clone()),
        _ => None,
    }) else {
        return Err(format!(
            "{}: [members] needs an AMS gateway (kind = \"alipay-ams\")",
            config.source
        ));
    };
    let auth: Arc<dyn crate::gateway::alipay_ams::authorizations::Authorizations> =
        Arc::new(Ams::new(ams, clock)?);
    Ok(Some(Arc::new(
        crate::api::members::Members::new(members.clone(), journal, auth).with_observer(observer),
    )))
}
