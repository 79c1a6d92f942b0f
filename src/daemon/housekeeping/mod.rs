//! The daemon's background upkeep, one part per owner, on one shared tick: the gateway watch
//! (probes, reachability, clock), journal care (checkpoints, write probes, old events) and
//! the systemd report (STATUS=, watchdog pings).

mod gateway;
mod journal;
mod systemd;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::events::Observer;
use crate::gateway::Gateway;
use crate::gateway::monitor::Monitored;
use crate::watchdog::Watchdog;

pub use systemd::status_line;

/// One tick for every part: each keeps its own timers and does its work only when due.
const TICK: Duration = Duration::from_secs(1);

/// What housekeeping looks after.
pub struct Housekeeping {
    gateway: gateway::GatewayWatch,
    journal: journal::JournalCare,
    systemd: systemd::SystemdReport,
}

impl Housekeeping {
    /// `released`: whether the sales an earlier run left open were let go of at start (they
    /// are, once the journal can be written).
    pub fn new(
        engine: Arc<Engine>,
        monitor: Arc<Monitored<dyn Gateway>>,
        watchdog: Arc<Watchdog>,
        observer: Arc<dyn Observer>,
        terminal_id: String,
        released: bool,
    ) -> Housekeeping {
        Housekeeping {
            gateway: gateway::GatewayWatch::new(
                engine.clone(),
                monitor.clone(),
                observer,
                terminal_id,
            ),
            journal: journal::JournalCare::new(engine.clone(), released),
            systemd: systemd::SystemdReport::new(engine, monitor, watchdog),
        }
    }

    /// Ticks until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            self.gateway.tick().await;
            self.journal.tick();
            self.systemd.tick();
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
