//! The `events` table: what happened, in order, for a register catching up after a
//! reconnect.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};

use super::query;
use super::{Journal, JournalError};
use crate::clock::to_journal;

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
        let dropped = conn.execute(
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
            params![keep],
        )?;
        Ok(dropped)
    }

    /// Appends events (kind, sale id, JSON) in one transaction; returns their ids in order.
    pub fn append_events(
        &self,
        events: &[(String, Option<String>, String)],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(events.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (at, kind, sale_id, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let t = to_journal(now);
            for (kind, sale_id, data) in events {
                stmt.execute(params![t, kind, sale_id, data])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        self.commit(tx)?;
        if let (Some(k), Some(last)) = (&self.identity, ids.last()) {
            k.event(*last);
        }
        Ok(ids)
    }

    /// Events after `id`, oldest first, at most `limit`: `(id, kind, JSON)`.
    pub fn events_after(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String, String)>, JournalError> {
        query::all(
            &self.conn(),
            "SELECT id, kind, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![id, limit],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }
}

/// The id the newest event was given, even if it has been pruned since (0 before the first).
pub(super) fn events_issued(conn: &Connection) -> Result<i64, JournalError> {
    let sql = "SELECT seq FROM sqlite_sequence WHERE name = 'events'";
    Ok(query::value(conn, sql, [])?.unwrap_or(0))
}
