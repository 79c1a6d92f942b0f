//! Journal care: the write-ahead log is checkpointed while the till is idle, a journal that
//! could not be written is tried again with a small write, the sales an earlier run left open
//! are let go of once it can be, and old register events are pruned.

use std::sync::Arc;
use std::time::Duration;

use super::gateway::PROBE_OFFLINE_EVERY;
use crate::engine::Engine;
use crate::journal::Checkpoint;

/// A checkpoint a reader held up is tried again after this long.
const CHECKPOINT_RETRY_EVERY: Duration = Duration::from_secs(10);
/// A WAL this long (about 8 MiB) is checkpointed even with a sale armed, between pay
/// requests, so a till that never goes idle keeps it bounded too.
const CHECKPOINT_ARMED_FRAMES: u64 = 2048;
/// Events a register can still replay with `Last-Event-ID` (weeks of a busy till).
const EVENTS_KEPT: i64 = 200_000;
const PRUNE_EVENTS_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct JournalCare {
    engine: Arc<Engine>,
    released: bool,
    last_write_probe: tokio::time::Instant,
    /// When a checkpoint last failed to empty the WAL.
    checkpoint_failed: Option<tokio::time::Instant>,
    /// WAL frames at the previous tick: a checkpoint waits until nothing was written for a
    /// tick.
    frames_seen: u64,
    /// Pruned once soon after start, then hourly.
    last_prune: Option<tokio::time::Instant>,
}

impl JournalCare {
    pub(super) fn new(engine: Arc<Engine>, released: bool) -> JournalCare {
        JournalCare {
            engine,
            released,
            last_write_probe: tokio::time::Instant::now(),
            checkpoint_failed: None,
            frames_seen: 0,
            last_prune: None,
        }
    }

    pub(super) fn tick(&mut self) {
        let journal = self.engine.journal().clone();
        self.checkpoint_when_idle(&journal);
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

    /// The WAL is copied into the main file once a tick has passed without a write, while no
    /// sale is armed and no pay request is out: never on the payment path, and so the next
    /// sale's first commit (arming it) is the one that starts the log afresh.
    fn checkpoint_when_idle(&mut self, journal: &crate::journal::Journal) {
        let frames = journal.wal_frames();
        let settled = frames == self.frames_seen;
        self.frames_seen = frames;
        if frames == 0 || !settled || self.engine.in_flight() || journal.paying_since().is_some() {
            return;
        }
        if self.engine.armed().is_some() && frames < CHECKPOINT_ARMED_FRAMES {
            return;
        }
        if self
            .checkpoint_failed
            .is_some_and(|t| t.elapsed() < CHECKPOINT_RETRY_EVERY)
        {
            return;
        }
        // A reader (`scanpay status`, a report) is not waited for: tried again later.
        if journal.checkpoint(Checkpoint::Restart, Duration::ZERO) {
            self.checkpoint_failed = None;
            self.frames_seen = 0;
        } else {
            self.checkpoint_failed = Some(tokio::time::Instant::now());
        }
    }

    /// Whether something is due soon: a checkpoint, a write probe, the release of earlier
    /// sales.
    pub(super) fn busy(&self) -> bool {
        let journal = self.engine.journal();
        journal.wal_frames() > 0 || journal.write_failure().is_some() || !self.released
    }
}
