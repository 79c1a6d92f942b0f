//! The gateway watch: a probe while idle or offline tells whether the gateway answers; the
//! outputs hear when it goes away or comes back and when the clock drifts off its; `scanpay
//! status` reads what the daemon last saw from the journal.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::events::{Event, Observer};
use crate::gateway::monitor::{Monitored, Reachability};
use crate::gateway::{CERTIFICATE_WARN_DAYS, CLOCK_SKEW_REFUSE_S, CLOCK_SKEW_WARN_S, Gateway};
use crate::journal::meta::DaemonStatus;

/// Online, a probe only fills a silence this long.
const PROBE_IDLE_AFTER: Duration = Duration::from_secs(30);
/// Offline, or refusing sales for the clock, the gateway is asked this often.
pub(super) const PROBE_OFFLINE_EVERY: Duration = Duration::from_secs(5);

pub(super) struct GatewayWatch {
    engine: Arc<Engine>,
    monitor: Arc<Monitored<dyn Gateway>>,
    observer: Arc<dyn Observer>,
    terminal_id: String,
    last_reachability: Reachability,
    clock_off: bool,
    /// The certificates already told to end soon, by SN.
    certificates_told: std::collections::HashSet<String>,
    last_probe: tokio::time::Instant,
    last_saved: Option<DaemonStatus>,
}

impl GatewayWatch {
    pub(super) fn new(
        engine: Arc<Engine>,
        monitor: Arc<Monitored<dyn Gateway>>,
        observer: Arc<dyn Observer>,
        terminal_id: String,
    ) -> GatewayWatch {
        GatewayWatch {
            engine,
            monitor,
            observer,
            terminal_id,
            last_reachability: Reachability::Unknown,
            clock_off: false,
            certificates_told: Default::default(),
            last_probe: tokio::time::Instant::now(),
            last_saved: None,
        }
    }

    pub(super) async fn tick(&mut self) {
        self.probe_when_due().await;
        self.tell_clock();
        self.tell_certificates();
        self.tell_reachability();
        self.record_status();
    }

    /// Offline, sales are refused until the gateway answers, so it is asked every few
    /// seconds, not after half a minute of quiet. Sales refused for the clock are probed as
    /// often: only answers move the skew.
    async fn probe_when_due(&mut self) {
        let clock_refused = self
            .monitor
            .clock_skew_s()
            .is_some_and(|k| k.abs() > CLOCK_SKEW_REFUSE_S);
        let due = if self.monitor.is_offline() || clock_refused {
            PROBE_OFFLINE_EVERY
        } else {
            PROBE_IDLE_AFTER
        };
        let idle = self.monitor.idle_for().is_none_or(|d| d >= due);
        if idle && !self.engine.in_flight() && self.last_probe.elapsed() >= due {
            self.last_probe = tokio::time::Instant::now();
            self.monitor.probe(&self.terminal_id).await;
        }
    }

    /// The clock against the gateway's: told once when it goes off, and once when back.
    fn tell_clock(&mut self) {
        if let Some(skew) = self.monitor.clock_skew_s() {
            let off = skew.abs() > CLOCK_SKEW_WARN_S;
            if off != self.clock_off {
                self.clock_off = off;
                self.observer.event(&Event::ClockSkew { skew_s: skew, off });
            }
        }
    }

    /// Each certificate that ends within the warning window: told once (by SN) while the
    /// daemon runs, so the LED asks for a person and the register hears it.
    fn tell_certificates(&mut self) {
        let now = chrono::Utc::now();
        for c in self.monitor.certificates() {
            let days_left = (c.not_after - now).num_days();
            if days_left < CERTIFICATE_WARN_DAYS && self.certificates_told.insert(c.sn.clone()) {
                tracing::warn!(which = c.which, sn = %c.sn, days_left, "a certificate ends soon: renew it");
                self.observer.event(&Event::CertificateExpiring {
                    which: c.which,
                    sn: c.sn,
                    days_left,
                });
            }
        }
    }

    fn tell_reachability(&mut self) {
        let reachability = self.monitor.reachability();
        if std::mem::discriminant(&reachability) == std::mem::discriminant(&self.last_reachability)
        {
            return;
        }
        match &reachability {
            Reachability::Online { .. } => self.observer.event(&Event::GatewayOnline),
            Reachability::Unknown => {}
            refusing => {
                let why = refusing.refusal().map(|r| r.1).unwrap_or_default();
                self.observer.event(&Event::GatewayOffline { why })
            }
        }
        self.last_reachability = reachability;
    }

    /// Written only when it changes: a journal write is an fsync.
    fn record_status(&mut self) {
        let saved = DaemonStatus {
            last_error: self.monitor.last_error(),
            pid: std::process::id(),
            reachability: serde_json::to_value(self.monitor.reachability()).unwrap_or_default(),
        };
        if self.last_saved.as_ref() != Some(&saved) {
            match saved.save(self.engine.journal()) {
                Ok(()) => self.last_saved = Some(saved),
                Err(e) => tracing::warn!(error = %e, "cannot record the daemon status"),
            }
        }
    }
}
