//! The event bus: every engine event is stored in the journal's `events` table (so a register
//! that reconnects resumes from `Last-Event-ID`) and then broadcast to live subscribers.
//! The engine never waits for it: an event is queued in the journal's memory, in order, and a
//! writer task stores and broadcasts it.
//!
//! Events take no commit of their own on the payment path: while a pay request is out they
//! wait for its outcome, whose commit stores them ([`Journal::transition`]). Otherwise, once
//! they have waited [`HOLD`] (a scan right after its sale was armed then finds the journal
//! free), the writer stores them in one batch. Each is broadcast once stored, with its id.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, Observer};
use crate::journal::{EventRow, Journal};

/// How long events wait for a commit to carry them before they get one of their own.
const HOLD: Duration = Duration::from_millis(50);
/// How long events wait for a pay request's outcome at most (one whose answer is slow or
/// lost is resolved later; its events should not wait for that).
const HOLD_WHILE_PAYING: Duration = Duration::from_secs(5);

/// One event as the register sees it: journal id, kind, JSON.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: i64,
    pub kind: String,
    pub data: String,
}

pub struct EventBus {
    journal: Arc<Journal>,
    live: broadcast::Sender<Published>,
    /// Ends the writer task once the bus is gone (the journal then stores what still waits
    /// when it closes).
    stop: CancellationToken,
}

impl EventBus {
    /// Starts the writer task; the bus is the engine's observer.
    pub fn start(journal: Arc<Journal>) -> Arc<EventBus> {
        let (live, _) = broadcast::channel(1024);
        let stop = CancellationToken::new();
        let bus = Arc::new(EventBus {
            journal: journal.clone(),
            live: live.clone(),
            stop: stop.clone(),
        });
        tokio::spawn(write_and_publish(journal, live, stop));
        bus
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.live.subscribe()
    }
}

impl Drop for EventBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Observer for EventBus {
    /// Queues the event in the journal, in the engine's order. The writer is woken only when
    /// no pay request is out: otherwise the outcome's commit stores the event and wakes it, so
    /// nothing else runs between a scan and its pay request.
    fn event(&self, event: &Event) {
        self.journal
            .queue_events(vec![row(event)], chrono::Utc::now());
        let paying = self
            .journal
            .paying_since()
            .is_some_and(|t| t.elapsed() < HOLD_WHILE_PAYING);
        if !paying {
            self.journal.events_notify().notify_one();
        }
    }
}

/// The writer task: stores what no commit took within the hold, and publishes what was
/// stored, in order.
async fn write_and_publish(
    journal: Arc<Journal>,
    live: broadcast::Sender<Published>,
    stop: CancellationToken,
) {
    loop {
        let due = write_due(&journal);
        tokio::select! {
            _ = stop.cancelled() => return,
            // Queued, stored by a commit, or a pay request got its answer.
            _ = journal.events_notify().notified() => {}
            // Due then, unless a pay request went out meanwhile: then its outcome takes them.
            _ = sleep_until(due), if due.is_some() => if write_due(&journal)
                .is_some_and(|d| d <= tokio::time::Instant::now())
            {
                let writer = journal.clone();
                let stored = tokio::task::spawn_blocking(move || writer.write_queued_events())
                    .await;
                if !matches!(stored, Ok(Ok(()))) {
                    if let Ok(Err(e)) = &stored {
                        tracing::warn!(error = %e, "events not journaled; sent live only");
                    }
                    for (kind, _, data) in journal.take_unstored_events() {
                        let _ = live.send(Published { id: 0, kind, data });
                    }
                }
            }
        }
        for (id, (kind, _, data)) in journal.take_stored_events() {
            let _ = live.send(Published { id, kind, data });
        }
    }
}

/// When the events waiting should get a commit of their own, if any wait.
fn write_due(journal: &Journal) -> Option<tokio::time::Instant> {
    let since = journal.events_waiting_since()?;
    let due = match journal.paying_since() {
        Some(paying) => (since + HOLD).max(paying + HOLD_WHILE_PAYING),
        None => since + HOLD,
    };
    Some(tokio::time::Instant::from_std(due))
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

fn row(e: &Event) -> EventRow {
    (
        super::wire::event_kind(e).to_string(),
        e.sale_id().map(str::to_string),
        super::wire::event_json(e),
    )
}
