//! The `operator_actions` table: every action an operator takes through the API (settling a
//! payment flagged for a person, retrying its cancel, refunding it, reconciling with
//! `fix`, a device test), with who, when, what and the answer given. An action's request id
//! makes it idempotent: asked again under the same id, the stored answer is given again.

use chrono::{DateTime, Utc};
use rusqlite::{Row, params};

use super::query::{self, Cells, Table};
use super::{Journal, JournalError};
use crate::clock::to_journal;

/// One action as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction<'a> {
    /// The idempotency key the operator's client sent, if any.
    pub request_id: Option<&'a str>,
    /// The connection it came on: `socket uid 1000 pid 4242`, `tcp 192.0.2.7:51234 (token)`.
    pub actor: &'a str,
    /// The person, as the client names them (the console asks), if it does.
    pub operator: Option<&'a str>,
    /// `settle`, `retry`, `refund`, `reconcile`, `printer_test`, …
    pub action: &'a str,
    /// What it acted on: an attempt's request id, a sale id, a date.
    pub target: Option<&'a str>,
    pub note: Option<&'a str>,
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON answered.
    pub result: &'a str,
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRow {
    pub id: i64,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub operator: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub note: Option<String>,
    pub status: u16,
    pub result: String,
}

impl Table for ActionRow {
    const SELECT: &'static str = "SELECT id, request_id, at, actor, operator, action, target, \
                                  note, status, result FROM operator_actions";

    fn from_row(row: &Row<'_>) -> Result<Self, JournalError> {
        let id: i64 = row.get(0)?;
        let c = Cells::new(row, "operator_actions", id);
        let status: i64 = c.get(8)?;
        Ok(ActionRow {
            id,
            request_id: c.get(1)?,
            at: c.time(2)?,
            actor: c.get(3)?,
            operator: c.get(4)?,
            action: c.get(5)?,
            target: c.get(6)?,
            note: c.get(7)?,
            status: u16::try_from(status).map_err(|_| {
                query::corrupt("operator_actions", id, "bad status", &status.to_string())
            })?,
            result: c.get(9)?,
        })
    }
}

impl Journal {
    /// Records an action; returns its row. A request id already recorded is refused
    /// (`DuplicateAction`): the caller answers the stored action instead.
    pub fn record_action(
        &self,
        action: &NewAction<'_>,
        now: DateTime<Utc>,
    ) -> Result<ActionRow, JournalError> {
        let conn = self.conn();
        let inserted = self.track(query::execute(
            &conn,
            "INSERT INTO operator_actions
                 (request_id, at, actor, operator, action, target, note, status, result)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (request_id) DO NOTHING",
            params![
                action.request_id,
                to_journal(now),
                action.actor,
                action.operator,
                action.action,
                action.target,
                action.note,
                i64::from(action.status),
                action.result
            ],
        ))?;
        if inserted == 0 {
            return Err(JournalError::DuplicateAction(
                action.request_id.unwrap_or_default().to_string(),
            ));
        }
        let id = conn.last_insert_rowid();
        query::row(&conn, "WHERE id = ?1", [id])?.ok_or(JournalError::NoAttempt(id))
    }

    /// The action recorded under `request_id`, if any.
    pub fn action(&self, request_id: &str) -> Result<Option<ActionRow>, JournalError> {
        query::row(&self.conn(), "WHERE request_id = ?1", [request_id])
    }

    /// The newest `limit` actions, newest first.
    pub fn actions(&self, limit: i64) -> Result<Vec<ActionRow>, JournalError> {
        query::rows(&self.conn(), "ORDER BY id DESC LIMIT ?1", [limit])
    }

    /// The actions taken on `target` that succeeded (a 2xx answer), oldest first.
    pub fn actions_on(&self, target: &str) -> Result<Vec<ActionRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE target = ?1 AND status BETWEEN 200 AND 299 ORDER BY id",
            [target],
        )
    }

    /// Whether an operator settled the attempt `request_id` by hand while it was flagged
    /// for `why`: the watchdog keeps resolving it, and does not call for a person again for
    /// that reason (a new reason, such as its cancel window closing, is flagged).
    pub fn settled_by_hand(&self, request_id: &str, why: &str) -> Result<bool, JournalError> {
        Ok(self.actions_on(request_id)?.iter().any(|a| {
            a.action == "settle"
                && serde_json::from_str::<serde_json::Value>(&a.result)
                    .is_ok_and(|r| r["why"].as_str() == Some(why))
        }))
    }

    /// Whether an operator asked for the attempt `request_id` to be reversed by a refund
    /// (its cancel window closed): the watchdog then refunds instead of cancelling.
    pub fn refund_asked(&self, request_id: &str) -> Result<bool, JournalError> {
        Ok(self
            .actions_on(request_id)?
            .iter()
            .any(|a| a.action == "refund"))
    }
}
