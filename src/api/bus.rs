//! The event bus: every engine event is written to the journal's `events` table (so a register
//! that reconnects resumes from `Last-Event-ID`) and then broadcast to live subscribers.
//! The engine never waits for it: events go through an unbounded queue to a writer task.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::events::{Event, Observer};
use crate::journal::Journal;

/// One event as the register sees it: journal id, kind, JSON.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: i64,
    pub kind: String,
    pub data: String,
}

pub struct EventBus {
    /// Unbounded on purpose: an observer never blocks the engine and a register's replay
    /// never loses an event; what fills it is bounded by the till's own pace of sales.
    queue: mpsc::UnboundedSender<Event>,
    live: broadcast::Sender<Published>,
}

impl EventBus {
    /// Starts the writer task; the bus is the engine's observer.
    pub fn start(journal: Arc<Journal>) -> Arc<EventBus> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Event>();
        let (live, _) = broadcast::channel(1024);
        let bus = Arc::new(EventBus {
            queue,
            live: live.clone(),
        });
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let rows: Vec<(String, Option<String>, String)> = batch
                    .iter()
                    .map(|e| {
                        let data = super::wire::event_json(e);
                        (
                            super::wire::event_kind(e).to_string(),
                            e.sale_id().map(str::to_string),
                            data,
                        )
                    })
                    .collect();
                // Off the payment path: the journal write of an event never delays a sale.
                let journal = journal.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let ids = journal.append_events(&rows, chrono::Utc::now());
                    (ids, rows)
                })
                .await;
                let Ok((ids, rows)) = written else { continue };
                let ids = ids.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "events not journaled; sent live only");
                    vec![0; rows.len()]
                });
                for (id, (kind, _, data)) in ids.into_iter().zip(rows) {
                    let _ = live.send(Published { id, kind, data });
                }
            }
        });
        bus
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.live.subscribe()
    }
}

impl Observer for EventBus {
    fn event(&self, event: &Event) {
        let _ = self.queue.send(event.clone());
    }
}
