//! The `events` table: what happened, in order, for a register catching up after a
//! reconnect.
//!
//! Events do not get a commit of their own on the payment path. They wait in a queue; the
//! next outcome commit ([`Journal::transition`]) writes them in its own transaction, and
//! whatever is still waiting when no pay request is out is written in one batch by
//! [`Journal::write_queued_events`] (the register's event bus does that). Either way an event
//! is stored before anyone is told its id, so a register resuming with `Last-Event-ID` misses
//! nothing.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::query;
use super::{Journal, JournalError};
use crate::clock::to_journal;

/// An event as stored: kind, sale id, JSON.
pub type EventRow = (String, Option<String>, String);

/// Events waiting for a commit, and those written since the bus last took them.
#[derive(Default)]
pub(super) struct EventQueue {
    /// With the time each was queued (stored as its `at`).
    waiting: Vec<(String, EventRow)>,
    /// When the oldest waiting event was queued.
    since: Option<Instant>,
    written: Vec<(i64, EventRow)>,
}

/// The pay request between its attempt row and its outcome: the attempt and since when.
#[derive(Default)]
pub(super) struct Paying(Mutex<Option<(i64, Instant)>>);

impl Paying {
    pub(super) fn start(&self, attempt: i64) {
        *lock(&self.0) = Some((attempt, Instant::now()));
    }

    /// The attempt got an outcome (or a note): its pay request is no longer out.
    pub(super) fn end(&self, attempt: i64) -> bool {
        let mut paying = lock(&self.0);
        if paying.is_some_and(|(a, _)| a == attempt) {
            *paying = None;
            return true;
        }
        false
    }

    pub(super) fn since(&self) -> Option<Instant> {
        lock(&self.0).map(|(_, t)| t)
    }
}

impl Journal {
    /// The id of the newest event, 0 when there is none.
    pub fn last_event_id(&self) -> Result<i64, JournalError> {
        let sql = "SELECT COALESCE(MAX(id), 0) FROM events";
        Ok(query::value(&self.conn(), sql, [])?.unwrap_or(0))
    }

    /// Drops all but the newest `keep` events: the event log serves a register catching up
    /// after a reconnect, not the books (sales, attempts and refunds are never pruned).
    /// Returns how many were dropped.
    pub fn prune_events(&self, keep: i64) -> Result<usize, JournalError> {
        let conn = self.conn();
        let dropped = query::execute(
            &conn,
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
            params![keep],
        )?;
        Ok(dropped)
    }

    /// Appends events (kind, sale id, JSON) in one transaction now; returns their ids in order.
    pub fn append_events(
        &self,
        events: &[EventRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, JournalError> {
        let t = to_journal(now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = insert(&tx, events.iter().map(|e| (t.as_str(), e)))?;
        self.commit(tx)?;
        self.issued(&ids);
        Ok(ids)
    }

    /// Queues events to be stored with the next outcome commit, or by
    /// [`Journal::write_queued_events`], in the order queued.
    pub fn queue_events(&self, events: Vec<EventRow>, now: DateTime<Utc>) {
        let t = to_journal(now);
        let mut queue = lock(&self.events);
        queue.since.get_or_insert_with(Instant::now);
        queue
            .waiting
            .extend(events.into_iter().map(|e| (t.clone(), e)));
    }

    /// When the oldest event still waiting for a commit was queued.
    pub fn events_waiting_since(&self) -> Option<Instant> {
        lock(&self.events).since
    }

    /// Since when a pay request is out (between its attempt row and its outcome): events
    /// queued meanwhile wait for the outcome's commit.
    pub fn paying_since(&self) -> Option<Instant> {
        self.paying.since()
    }

    /// Notified when a commit has stored queued events, or a pay request got its outcome.
    pub fn events_notify(&self) -> &tokio::sync::Notify {
        &self.events_stored
    }

    /// Stores every queued event now, in one transaction.
    pub fn write_queued_events(&self) -> Result<(), JournalError> {
        let mut conn = self.conn();
        if lock(&self.events).waiting.is_empty() {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written = self.write_waiting(&tx)?;
        self.commit(tx)?;
        self.stored(written);
        Ok(())
    }

    /// Events stored since the last call, with their ids, in order.
    pub fn take_stored_events(&self) -> Vec<(i64, EventRow)> {
        std::mem::take(&mut lock(&self.events).written)
    }

    /// Takes the events still waiting, unstored (the journal cannot be written).
    pub fn take_unstored_events(&self) -> Vec<EventRow> {
        // Under the connection, so no commit is between inserting them and taking them out.
        let _conn = self.conn();
        let mut queue = lock(&self.events);
        queue.since = None;
        std::mem::take(&mut queue.waiting)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// Inserts the waiting events in `tx` under a savepoint, so a failure leaves `tx` as it
    /// was and the events waiting. Returns how many were inserted and their ids; they leave
    /// the queue once `tx` has committed ([`Journal::stored`]).
    pub(super) fn write_waiting(&self, tx: &Connection) -> Result<Vec<i64>, JournalError> {
        let queue = lock(&self.events);
        if queue.waiting.is_empty() {
            return Ok(Vec::new());
        }
        query::execute(tx, "SAVEPOINT events", [])?;
        match insert(tx, queue.waiting.iter().map(|(t, e)| (t.as_str(), e))) {
            Ok(ids) => {
                query::execute(tx, "RELEASE events", [])?;
                Ok(ids)
            }
            Err(e) => {
                query::execute(tx, "ROLLBACK TO events", [])?;
                query::execute(tx, "RELEASE events", [])?;
                Err(e)
            }
        }
    }

    /// The events [`Journal::write_waiting`] inserted (`ids`) are committed: out of the queue,
    /// into what the bus takes.
    pub(super) fn stored(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        {
            let mut queue = lock(&self.events);
            let n = ids.len().min(queue.waiting.len());
            let rows: Vec<(String, EventRow)> = queue.waiting.drain(..n).collect();
            if queue.waiting.is_empty() {
                queue.since = None;
            }
            queue
                .written
                .extend(ids.iter().copied().zip(rows.into_iter().map(|(_, e)| e)));
        }
        self.issued(&ids);
        self.events_stored.notify_one();
    }

    fn issued(&self, ids: &[i64]) {
        if let (Some(k), Some(last)) = (&self.identity, ids.last()) {
            k.event(*last);
        }
    }

    /// Events after `id`, oldest first, at most `limit`: `(id, kind, JSON)`.
    pub fn events_after(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, String)>, JournalError> {
        query::all(
            &self.read(),
            "SELECT id, kind, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![id, limit],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }
}

fn insert<'e>(
    conn: &Connection,
    events: impl Iterator<Item = (&'e str, &'e EventRow)>,
) -> Result<Vec<i64>, JournalError> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO events (at, kind, sale_id, data) VALUES (?1, ?2, ?3, ?4)")?;
    let mut ids = Vec::new();
    for (at, (kind, sale_id, data)) in events {
        stmt.execute(params![at, kind, sale_id, data])?;
        ids.push(conn.last_insert_rowid());
    }
    Ok(ids)
}

/// The id the newest event was given, even if it has been pruned since (0 before the first).
pub(super) fn events_issued(conn: &Connection) -> Result<i64, JournalError> {
    let sql = "SELECT seq FROM sqlite_sequence WHERE name = 'events'";
    Ok(query::value(conn, sql, [])?.unwrap_or(0))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
