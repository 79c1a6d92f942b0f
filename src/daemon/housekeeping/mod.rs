//! The daemon's background upkeep, one part per owner, on one shared tick: the gateway watch
//! (probes, reachability, clock), journal care (checkpoints, write probes, old events) and
//! the systemd report (STATUS=, watchdog pings), and members' token refresh when bindings are
//! configured. The tick slows down while the till is idle.

mod gateway;
mod journal;
mod members;
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
/// The tick while nothing is going on (no sale, nothing in doubt, the gateway online, the
/// WAL checkpointed). A journal write (a sale armed) brings the next tick at once, so the
/// status line and the gateway watch keep up as before.
const IDLE_TICK: Duration = Duration::from_secs(10);

/// What housekeeping looks after.
pub struct Housekeeping {
    gateway: gateway::GatewayWatch,
    journal: journal::JournalCare,
    systemd: systemd::SystemdReport,
    members: Option<members::MemberRefresh>,
    engine: Arc<Engine>,
    monitor: Arc<Monitored<dyn Gateway>>,
    watchdog: Arc<Watchdog>,
    was_busy: bool,
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
            systemd: systemd::SystemdReport::new(engine.clone(), monitor.clone(), watchdog.clone()),
            members: None,
            engine,
            monitor,
            watchdog,
            // Starting is busy: what it allocated is given back once it settles.
            was_busy: true,
        }
    }

    /// The same, refreshing members' access tokens before they expire.
    pub fn with_members(
        mut self,
        members: Option<Arc<crate::api::members::Members>>,
    ) -> Housekeeping {
        self.members = members.map(members::MemberRefresh::new);
        self
    }

    /// Ticks until `stop` is cancelled: every second while anything is going on, every few
    /// seconds otherwise.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            self.gateway.tick().await;
            self.journal.tick();
            self.systemd.tick();
            if let Some(members) = &mut self.members {
                members.tick().await;
            }
            let busy = self.busy();
            if self.was_busy && !busy {
                give_back_memory();
            }
            self.was_busy = busy;
            if busy {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.cancelled() => return,
                }
            } else {
                let journal = self.engine.journal().clone();
                tokio::select! {
                    _ = tokio::time::sleep(self.systemd.idle_tick(IDLE_TICK)) => {}
                    _ = journal.written().notified() => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    fn busy(&self) -> bool {
        self.engine.armed().is_some()
            || self.engine.in_flight()
            || self.watchdog.owners.count() > 0
            || self.monitor.is_offline()
            || self.journal.busy()
    }
}

/// Gives the free pages of the heap back to the system once the till is idle: what starting,
/// a sale and its answers allocated is free by then, and an idle daemon stays small.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands glibc's free heap pages back to the kernel; it touches no
    // memory in use and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
