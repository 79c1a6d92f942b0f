//! Journal care: a checkpoint a reader blocked is retried, a journal that could not be
//! written is tried again with a small write, the sales an earlier run left open are let go
//! of once it can be, and old register events are pruned.

use std::sync::Arc;
use std::time::Duration;

use super::gateway::PROBE_OFFLINE_EVERY;
use crate::engine::Engine;

const SCRUB_RETRY_EVERY: Duration = Duration::from_secs(10);
/// Events a register can still replay with `Last-Event-ID` (weeks of a busy till).
const EVENTS_KEPT: i64 = 200_000;
const PRUNE_EVENTS_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct JournalCare {
    engine: Arc<Engine>,
    released: bool,
    last_write_probe: tokio::time::Instant,
    last_scrub: tokio::time::Instant,
    /// Pruned once soon after start, then hourly.
    last_prune: Option<tokio::time::Instant>,
}

impl JournalCare {
    pub(super) fn new(engine: Arc<Engine>, released: bool) -> JournalCare {
        JournalCare {
            engine,
            released,
            last_write_probe: tokio::time::Instant::now(),
            last_scrub: tokio::time::Instant::now(),
            last_prune: None,
        }
    }

    pub(super) fn tick(&mut self) {
        let journal = self.engine.journal().clone();
        // So a page of a quiet till's last sale does not linger in the WAL until the next.
        if journal.scrub_pending() && self.last_scrub.elapsed() >= SCRUB_RETRY_EVERY {
            self.last_scrub = tokio::time::Instant::now();
            journal.scrub();
        }
        // While the journal cannot be written, a small write now and then finds out when
        // it can again, so health clears without waiting for the next sale.
        if journal.write_failure().is_some()
            && self.last_write_probe.elapsed() >= PROBE_OFFLINE_EVERY
        {
            self.last_write_probe = tokio::time::Instant::now();
            let _ = journal.probe_write(chrono::Utc::now());
        }
        if !self.released && journal.write_failure().is_none() {
            match self.engine.release_earlier_sales() {
                Ok(_) => self.released = true,
                Err(e) => tracing::warn!(error = %e, "earlier sales not released yet"),
            }
        }
        if self
            .last_prune
            .is_none_or(|t| t.elapsed() >= PRUNE_EVENTS_EVERY)
            && !self.engine.in_flight()
        {
            self.last_prune = Some(tokio::time::Instant::now());
            match journal.prune_events(EVENTS_KEPT) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    dropped = n,
                    kept = EVENTS_KEPT,
                    "old register events pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot prune old register events"),
            }
        }
    }
}
