//! The `refunds` table: refunds of paid sales, and recovery refunds of money the provider
//! kept for an attempt the journal has as not paid.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::attempts::attempts_in;
use super::query::{self, Cells, Table};
use super::sales::sale_in;
use super::{AttemptRow, Journal, JournalError};
use crate::clock::to_journal;
use crate::money::Amount;
use crate::state::{AttemptState, RefundState, SaleState, check_refund_transition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub id: i64,
    pub sale_id: String,
    pub attempt_id: i64,
    /// The refund's own durable id (`out_request_no` / `refundRequestId`).
    pub request_id: String,
    pub amount: Amount,
    pub reason: Option<String>,
    pub state: RefundState,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Journal {
    /// Writes a refund (state `pending`) of a paid sale, checked against what is left of the
    /// payment, in one durable transaction. This must return before the request is sent.
    pub fn begin_refund(
        &self,
        sale_id: &str,
        request_id: &str,
        amount: Amount,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RefundRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sale = sale_in(&tx, sale_id)?;
        let refund_err = |why: String| JournalError::Refund {
            sale: sale_id.to_string(),
            why,
        };
        if sale.state != SaleState::Paid {
            return Err(refund_err(format!(
                "only a paid sale can be refunded, and this one {}",
                sale.state.in_words()
            )));
        }
        let paid = attempts_in(&tx, sale_id)?
            .into_iter()
            .find(|a| a.state == AttemptState::Succeeded)
            .ok_or_else(|| refund_err("no attempt of it was paid".to_string()))?;
        if amount.currency() != paid.amount.currency() || !amount.is_positive() {
            return Err(refund_err(format!(
                "a refund must be a positive amount in {}",
                paid.amount.currency()
            )));
        }
        // Refunds of this payment that may still take money back count against what is
        // left (a recovery refund of another attempt of the sale does not).
        let committed: i64 = refunds_in(&tx, sale_id)?
            .iter()
            .filter(|r| r.attempt_id == paid.id && r.state != RefundState::Failed)
            .map(|r| r.amount.minor())
            .sum();
        let left = paid.amount.minor() - committed;
        if amount.minor() > left {
            return Err(refund_err(format!(
                "{amount} is more than the {} left to refund",
                Amount::from_minor(left, paid.amount.currency())
            )));
        }
        let t = to_journal(now);
        query::execute(
            &tx,
            "INSERT INTO refunds (sale_id, attempt_id, request_id, amount_minor, currency, reason,
                                  state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
            params![
                sale_id,
                paid.id,
                request_id,
                amount.minor(),
                amount.currency().code(),
                reason,
                t
            ],
        )?;
        let id = tx.last_insert_rowid();
        let row = refund_in(&tx, id)?;
        self.commit(tx)?;
        Ok(row)
    }

    /// Writes a refund (state `pending`) of money the provider kept for an attempt the
    /// journal has as not paid (found by reconciliation), under the id `<request id>X<n>`.
    /// While such a refund is pending, in doubt or done, writing it again returns that one
    /// instead of a second; after one failed, the next gets a new id.
    pub fn begin_recovery_refund(
        &self,
        attempt_request_id: &str,
        amount: Amount,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RefundRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let attempt = query::row::<AttemptRow>(&tx, "WHERE request_id = ?1", [attempt_request_id])?
            .ok_or_else(|| JournalError::NoSale(attempt_request_id.to_string()))?;
        let refund_err = |why: String| JournalError::Refund {
            sale: attempt.sale_id.clone(),
            why,
        };
        let earlier: Vec<RefundRow> = refunds_in(&tx, &attempt.sale_id)?
            .into_iter()
            .filter(|r| r.attempt_id == attempt.id)
            .collect();
        if let Some(live) = earlier.iter().find(|r| r.state != RefundState::Failed) {
            if live.amount != amount {
                return Err(refund_err(format!(
                    "already has refund {} for {}, not {amount}",
                    live.request_id, live.amount
                )));
            }
            return Ok(live.clone());
        }
        if !attempt.state.is_final() || attempt.state == AttemptState::Succeeded {
            return Err(refund_err(format!(
                "has its payment {}: {}",
                attempt.state,
                if attempt.state == AttemptState::Succeeded {
                    "refund it as a paid sale"
                } else {
                    "the watchdog decides it first"
                }
            )));
        }
        if amount.currency() != attempt.amount.currency()
            || !amount.is_positive()
            || amount.minor() > attempt.amount.minor()
        {
            return Err(refund_err(format!(
                "a recovery refund must be positive, in {}, at most the {} charged",
                attempt.amount.currency(),
                attempt.amount
            )));
        }
        let request_id = format!("{attempt_request_id}X{}", earlier.len() + 1);
        query::execute(
            &tx,
            "INSERT INTO refunds (sale_id, attempt_id, request_id, amount_minor, currency, reason,
                                  state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
            params![
                attempt.sale_id,
                attempt.id,
                request_id,
                amount.minor(),
                amount.currency().code(),
                reason,
                to_journal(now)
            ],
        )?;
        let row = refund_in(&tx, tx.last_insert_rowid())?;
        self.commit(tx)?;
        Ok(row)
    }

    /// Moves a refund forward (checked), recording the gateway's answer.
    pub fn refund_transition(
        &self,
        id: i64,
        to: RefundState,
        result_code: &str,
        result_message: &str,
        gateway_refund_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RefundRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = refund_in(&tx, id)?;
        if row.state != to {
            check_refund_transition(row.state, to).map_err(|why| JournalError::Refund {
                sale: row.sale_id.clone(),
                why,
            })?;
        }
        query::execute(
            &tx,
            "UPDATE refunds SET state = ?2, result_code = ?3, result_message = ?4,
                    gateway_refund_id = COALESCE(?5, gateway_refund_id), updated_at = ?6
             WHERE id = ?1",
            params![
                id,
                to.as_str(),
                result_code,
                result_message,
                gateway_refund_id,
                to_journal(now)
            ],
        )?;
        let row = refund_in(&tx, id)?;
        self.commit(tx)?;
        Ok(row)
    }

    pub fn refunds(&self, sale_id: &str) -> Result<Vec<RefundRow>, JournalError> {
        refunds_in(&self.read(), sale_id)
    }

    pub fn refund(&self, id: i64) -> Result<RefundRow, JournalError> {
        refund_in(&self.conn(), id)
    }

    /// The refund with this refund id (`out_request_no` / `refundRequestId`), if any.
    pub fn refund_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Option<RefundRow>, JournalError> {
        query::row(&self.conn(), "WHERE request_id = ?1", [request_id])
    }

    /// Refunds made (written) in `[since, until)`, whatever their state, oldest first.
    pub fn refunds_created_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RefundRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE created_at >= ?1 AND created_at < ?2 ORDER BY id",
            params![to_journal(since), to_journal(until)],
        )
    }

    /// Refunds that succeeded in `[since, until)`, by the time they succeeded: a day's report
    /// counts a refund on the day the money went back, whatever day the sale was.
    pub fn refunds_succeeded_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RefundRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state = 'succeeded' AND updated_at >= ?1 AND updated_at < ?2 ORDER BY id",
            params![to_journal(since), to_journal(until)],
        )
    }

    /// Refunds not yet final, oldest first (uses the partial index).
    pub fn open_refunds(&self) -> Result<Vec<RefundRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state IN ('pending','unknown') ORDER BY id",
            [],
        )
    }
}

impl Table for RefundRow {
    const SELECT: &'static str = "SELECT id, sale_id, attempt_id, request_id, amount_minor,
        currency, reason, state, result_code, result_message, gateway_refund_id, created_at,
        updated_at
        FROM refunds";

    fn from_row(r: &Row<'_>) -> Result<RefundRow, JournalError> {
        let id: i64 = r.get(0)?;
        let c = Cells::new(r, "refund", id);
        Ok(RefundRow {
            id,
            sale_id: c.get(1)?,
            attempt_id: c.get(2)?,
            request_id: c.get(3)?,
            amount: c.amount(4, 5)?,
            reason: c.get(6)?,
            state: c.parsed(7, "unknown state", RefundState::parse)?,
            result_code: c.get(8)?,
            result_message: c.get(9)?,
            gateway_refund_id: c.get(10)?,
            created_at: c.time(11)?,
            updated_at: c.time(12)?,
        })
    }
}

pub(super) fn refund_in(conn: &Connection, id: i64) -> Result<RefundRow, JournalError> {
    query::row(conn, "WHERE id = ?1", [id])?.ok_or_else(|| JournalError::Refund {
        sale: String::new(),
        why: format!("no refund {id}"),
    })
}

pub(super) fn refunds_in(conn: &Connection, sale_id: &str) -> Result<Vec<RefundRow>, JournalError> {
    query::rows(conn, "WHERE sale_id = ?1 ORDER BY id", [sale_id])
}
