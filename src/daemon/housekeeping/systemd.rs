//! The systemd report: STATUS= when the one-line status changes, and watchdog pings while
//! the watchdog's sweep is alive (a stuck daemon stops pinging and systemd restarts it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::engine::Engine;
use crate::gateway::Gateway;
use crate::gateway::monitor::{Monitored, Reachability};
use crate::systemd::{Notifier, watchdog_ping_interval};
use crate::watchdog::Watchdog;

/// The sweep is considered alive if it ran within this long: it runs every second while
/// anything is open and every ten seconds otherwise.
const ALIVE_WITHIN_S: i64 = 25;

pub(super) struct SystemdReport {
    engine: Arc<Engine>,
    monitor: Arc<Monitored<dyn Gateway>>,
    watchdog: Arc<Watchdog>,
    notifier: Notifier,
    ping: Option<Duration>,
    last_status: String,
    last_ping: tokio::time::Instant,
}

impl SystemdReport {
    pub(super) fn new(
        engine: Arc<Engine>,
        monitor: Arc<Monitored<dyn Gateway>>,
        watchdog: Arc<Watchdog>,
    ) -> SystemdReport {
        SystemdReport {
            engine,
            monitor,
            watchdog,
            notifier: Notifier::from_env(),
            ping: watchdog_ping_interval(),
            last_status: String::new(),
            last_ping: tokio::time::Instant::now(),
        }
    }

    /// `idle`, or less when the systemd watchdog wants pings more often than that.
    pub(super) fn idle_tick(&self, idle: Duration) -> Duration {
        match self.ping {
            Some(every) => idle.min(every / 2).max(Duration::from_millis(100)),
            None => idle,
        }
    }

    pub(super) fn tick(&mut self) {
        let status = status_line(&self.engine, &self.monitor, &self.watchdog);
        if status != self.last_status {
            self.notifier.status(&status);
            self.last_status = status;
        }
        if let Some(every) = self.ping
            && self.last_ping.elapsed() >= every
        {
            let beat = self.watchdog.heartbeat.load(Ordering::Relaxed);
            if chrono::Utc::now().timestamp() - beat <= ALIVE_WITHIN_S {
                self.notifier.watchdog();
                self.last_ping = tokio::time::Instant::now();
            }
        }
    }
}

/// systemd's STATUS= line: the gateway, payments in doubt, the armed sale.
pub fn status_line(
    engine: &Engine,
    monitor: &Monitored<dyn Gateway>,
    watchdog: &Watchdog,
) -> String {
    let gateway = match monitor.reachability() {
        Reachability::Online { .. } => "online",
        Reachability::Offline { .. } => "OFFLINE",
        Reachability::NotAnswering { .. } => "NOT ANSWERING",
        Reachability::Refusing { .. } => "REFUSING OUR CREDENTIALS",
        Reachability::Unknown => "not contacted yet",
    };
    format!(
        "gateway {gateway}; {} payment(s) in doubt; sale {}",
        watchdog.owners.count(),
        engine.armed().as_deref().unwrap_or("none")
    )
}
