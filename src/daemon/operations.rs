//! What the API asks of the daemon that needs its configuration (`api::operator::Operations`):
//! the day's reconciliation with `fix`, done with the daemon's own engine so its refunds are
//! journaled and once-only like every other; and a probe of each configured gateway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::reconcile::{compare_day_of, fix, previous_day, provider_named};
use crate::api::operator::{OpError, Operations, ReconcileAsk};
use crate::clock::Clock;
use crate::config::{Config, GatewayKind};
use crate::engine::Engine;
use crate::gateway::{Gateway, Outcome, UnknownKind};

pub struct DaemonOperations {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// The daemon's gateway (router, scrubbed, monitored): a probe counts as a real request.
    pub gateway: Arc<dyn Gateway>,
    pub reloader: Arc<super::reload::Reloader>,
}

#[async_trait]
impl Operations for DaemonOperations {
    async fn reconcile(&self, engine: &Engine, ask: ReconcileAsk) -> Result<Value, OpError> {
        let provider = provider_named(&self.config, ask.provider.as_deref())
            .map_err(|e| OpError::Field("provider", e))?;
        let date = ask.date.unwrap_or_else(|| previous_day(self.clock.now()));
        let mut r = compare_day_of(
            &self.config,
            provider,
            engine.journal(),
            date,
            ask.file,
            self.clock.clone(),
        )
        .await
        .map_err(OpError::Failed)?;
        // With one gateway this is the whole day: health and the console show it as the
        // last reconciliation, as after the daily run.
        if self.config.other_gateways.is_empty() {
            let journal = engine.journal();
            let newer = crate::reconcile::LastRun::load(journal)
                .ok()
                .flatten()
                .is_none_or(|l| l.date <= r.date);
            if newer
                && let Err(e) = crate::reconcile::LastRun::of(&r, self.clock.now()).save(journal)
            {
                tracing::warn!(error = %e, "cannot record the reconciliation");
            }
        }
        if ask.fix {
            r.fixes = fix(engine, &r).await;
        }
        serde_json::to_value(&r).map_err(|e| OpError::Failed(e.to_string()))
    }

    async fn reload(&self, asked_by: &str) -> Value {
        let reloader = self.reloader.clone();
        let asked_by = asked_by.to_string();
        // Reading keys and certificates is file I/O and RSA parsing: off the runtime.
        tokio::task::spawn_blocking(move || reloader.reload(&asked_by))
            .await
            .unwrap_or_else(|e| json!({"ok": false, "result": "refused", "error": e.to_string()}))
    }

    fn last_reload(&self) -> Option<Value> {
        self.reloader.last()
    }

    async fn probe(&self) -> Value {
        let mut checks = Vec::new();
        for g in self.config.gateways() {
            let kind = g.kind();
            let id = match kind {
                GatewayKind::WechatPay => format!(
                    "{}_probe{}",
                    self.config.terminal.id,
                    crate::gateway::wechat_pay::REQUEST_ID_TAG
                ),
                _ => format!("{}_probe", self.config.terminal.id),
            };
            let started = Instant::now();
            let answer = tokio::time::timeout(
                g.timeout() + Duration::from_secs(1),
                self.gateway.inquire(&id),
            )
            .await;
            let ms = started.elapsed().as_millis();
            let (ok, text) = match answer {
                Err(_) => (
                    false,
                    "no answer in time; check the network and the gateway's url".to_string(),
                ),
                Ok(Outcome::Success(_)) => (
                    true,
                    format!(
                        "answered a signed inquiry in {ms} ms; its signature verified and it accepts this terminal's credentials"
                    ),
                ),
                Ok(Outcome::Failed(f)) => (
                    false,
                    format!(
                        "accepts the credentials but refused the inquiry ({}: {}); check that the app has the in-store payment product",
                        f.code, f.message
                    ),
                ),
                Ok(Outcome::Rejected(f)) => (
                    false,
                    format!(
                        "refuses this terminal ({}: {}); `scanpay check-config --probe` names the key or id to fix",
                        f.code, f.message
                    ),
                ),
                Ok(Outcome::Unknown(u)) if u.kind == UnknownKind::BadSignature => (
                    false,
                    format!(
                        "answers, but its signature does not verify ({}): the configured gateway public key or certificate is wrong",
                        u.detail
                    ),
                ),
                Ok(Outcome::NotSent(why)) => (
                    false,
                    format!("not reachable: {why}; check the network and the gateway's url"),
                ),
                Ok(Outcome::Unknown(u)) => (false, format!("no usable answer: {u}")),
            };
            checks.push(json!({"what": kind.as_str(), "ok": ok, "text": text, "ms": ms}));
        }
        let ok = checks.iter().all(|c| c["ok"] == json!(true));
        json!({"ok": ok, "checks": checks})
    }
}
