//! The `sales` table (and `supersessions`, which sales replaced which): creating a sale,
//! closing one unpaid, and reading sales back.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::attempts::attempts_in;
use super::query::{amount, corrupt, time};
use super::refunds::refunds_in;
use super::{AttemptRow, Journal, JournalError, RefundRow};
use crate::clock::to_journal;
use crate::money::Amount;
use crate::state::SaleState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRow {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub amount: Amount,
    pub reference: Option<String>,
    pub subject: String,
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
    pub state: SaleState,
    /// Why the sale ended as it did (result code and message), when not paid.
    pub reason: Option<String>,
    /// What the cashier should read.
    pub message: Option<String>,
    /// The sale that replaced this one while it was in doubt (its payment is reversed).
    pub superseded_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSale {
    pub id: String,
    pub amount: Amount,
    pub reference: Option<String>,
    pub subject: String,
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
    /// Cancel (and reverse, if paid) the sales in doubt that carry the same reference,
    /// instead of refusing this one.
    pub supersede: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SaleFilter {
    pub state: Option<SaleState>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

impl Journal {
    /// Creates a sale, or returns the sale already created under the same idempotency key.
    pub fn create_sale(
        &self,
        new: &NewSale,
        now: DateTime<Utc>,
    ) -> Result<(SaleRow, bool), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(key) = &new.idempotency_key {
            let existing = tx
                .query_row(
                    &format!("SELECT {SALE_COLUMNS} FROM sales WHERE idempotency_key = ?1"),
                    [key],
                    raw_sale,
                )
                .optional()?;
            if let Some(raw) = existing {
                let sale = raw.into_row()?;
                if sale.amount != new.amount
                    || sale.reference != new.reference
                    || sale.subject != new.subject
                {
                    return Err(JournalError::IdempotencyConflict {
                        key: key.clone(),
                        sale: sale.id,
                    });
                }
                return Ok((sale, false));
            }
        }
        let t = to_journal(now);
        // One basket, one payment: a sale still in doubt for the same reference blocks a new
        // one, unless the register supersedes it (it is then reversed whatever happened).
        let earlier = match &new.reference {
            Some(reference) => {
                // A sale already superseded is being reversed: it holds up nothing.
                let mut stmt = tx.prepare(
                    "SELECT id FROM sales WHERE state = 'processing' AND reference = ?1
                       AND id NOT IN (SELECT sale_id FROM supersessions)
                     ORDER BY created_at",
                )?;
                stmt.query_map([reference], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => Vec::new(),
        };
        if let Some(first) = earlier.first()
            && !new.supersede
        {
            return Err(JournalError::ReferenceInDoubt {
                sale: first.clone(),
            });
        }
        if new.supersede
            && earlier.is_empty()
            && let Some(reference) = &new.reference
        {
            // The sale the register meant to replace ended meanwhile (or was itself replaced
            // and its successor paid): if the basket's latest sale that stands is paid, a new
            // sale would charge the customer twice.
            let last: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, state FROM sales WHERE reference = ?1
                       AND id NOT IN (SELECT sale_id FROM supersessions)
                     ORDER BY rowid DESC LIMIT 1",
                    [reference],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((sale, state)) = last
                && state == SaleState::Paid.as_str()
            {
                return Err(JournalError::ReferencePaid { sale });
            }
        }
        tx.execute(
            "INSERT INTO sales (id, created_at, updated_at, amount_minor, currency, reference,
                                subject, idempotency_key, max_attempts, state)
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'awaiting_scan')",
            params![
                new.id,
                t,
                new.amount.minor(),
                new.amount.currency().code(),
                new.reference,
                new.subject,
                new.idempotency_key,
                new.max_attempts,
            ],
        )?;
        for old in &earlier {
            tx.execute(
                "INSERT INTO supersessions (sale_id, by_sale, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sale_id) DO NOTHING",
                params![old, new.id, t],
            )?;
            // It takes no more scans, and the watchdog cancels it now.
            tx.execute(
                "UPDATE sales SET max_attempts = MAX(1, (SELECT count(*) FROM attempts WHERE sale_id = ?1)),
                                  message = ?3, updated_at = ?2
                 WHERE id = ?1",
                params![
                    old,
                    t,
                    format!("superseded by sale {}: being cancelled, and reversed if it was paid", new.id)
                ],
            )?;
            tx.execute(
                "UPDATE attempts SET deadline_at = created_at, budget_left_ms = 0, updated_at = ?2
                 WHERE sale_id = ?1 AND state IN ('pending','unknown')",
                params![old, t],
            )?;
        }
        let sale = sale_in(&tx, &new.id)?;
        self.commit(tx)?;
        drop(conn);
        if let Some(k) = &self.identity {
            k.sale(&sale.id);
        }
        Ok((sale, true))
    }

    pub fn sale(&self, id: &str) -> Result<Option<SaleRow>, JournalError> {
        let conn = self.conn();
        match sale_in(&conn, id) {
            Ok(sale) => Ok(Some(sale)),
            Err(JournalError::NoSale(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A sale with its attempts and refunds, read in one transaction, so a write in between
    /// (an attempt ending) cannot pair the sale's old state with the attempt's new one.
    #[allow(clippy::type_complexity)]
    pub fn sale_whole(
        &self,
        id: &str,
    ) -> Result<Option<(SaleRow, Vec<AttemptRow>, Vec<RefundRow>)>, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let sale = match sale_in(&tx, id) {
            Ok(sale) => sale,
            Err(JournalError::NoSale(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let attempts = attempts_in(&tx, id)?;
        let refunds = refunds_in(&tx, id)?;
        tx.finish()?;
        Ok(Some((sale, attempts, refunds)))
    }

    /// Ends a sale that is awaiting a scan without a payment (aborted, expired, given up).
    pub fn close_sale(
        &self,
        sale_id: &str,
        to: SaleState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<SaleRow, JournalError> {
        assert!(
            matches!(
                to,
                SaleState::Cancelled | SaleState::Expired | SaleState::Failed
            ),
            "close_sale only ends a sale unpaid"
        );
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sale = sale_in(&tx, sale_id)?;
        if sale.state != SaleState::AwaitingScan {
            return Err(JournalError::SaleState {
                sale: sale.id,
                state: sale.state,
                expected: "awaiting_scan",
            });
        }
        tx.execute(
            "UPDATE sales SET state = ?2, reason = COALESCE(reason, ?3), updated_at = ?4
             WHERE id = ?1",
            params![sale_id, to.as_str(), reason, to_journal(now)],
        )?;
        let sale = sale_in(&tx, sale_id)?;
        self.commit(tx)?;
        Ok(sale)
    }

    /// Sales not yet final (awaiting a scan or processing), oldest first.
    pub fn open_sales(&self) -> Result<Vec<SaleRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SALE_COLUMNS} FROM sales
             WHERE state IN ('awaiting_scan','processing') ORDER BY created_at"
        ))?;
        let raws = stmt
            .query_map([], raw_sale)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSale::into_row).collect()
    }

    /// Sales newest first, filtered.
    pub fn sales(&self, filter: &SaleFilter) -> Result<Vec<SaleRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SALE_COLUMNS} FROM sales
             WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR created_at >= ?2)
               AND (?3 IS NULL OR created_at < ?3)
             ORDER BY created_at DESC, id DESC
             LIMIT ?4"
        ))?;
        let raws = stmt
            .query_map(
                params![
                    filter.state.map(|s| s.as_str()),
                    filter.since.map(to_journal),
                    filter.until.map(to_journal),
                    filter.limit.map(i64::from).unwrap_or(-1),
                ],
                raw_sale,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSale::into_row).collect()
    }

    pub fn sale_by_idempotency_key(&self, key: &str) -> Result<Option<SaleRow>, JournalError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {SALE_COLUMNS} FROM sales WHERE idempotency_key = ?1"),
            [key],
            raw_sale,
        )
        .optional()?
        .map(RawSale::into_row)
        .transpose()
    }

    /// The sale takes no scan beyond those already made: however its open attempt ends, the
    /// sale ends with it (used when the terminal has moved on from it).
    pub fn no_more_attempts(&self, sale_id: &str) -> Result<(), JournalError> {
        self.track(self.conn().execute(
            "UPDATE sales SET max_attempts = MAX(1, (SELECT count(*) FROM attempts WHERE sale_id = ?1))
             WHERE id = ?1",
            [sale_id],
        ))?;
        Ok(())
    }

    /// Number of sales in each state.
    pub fn sale_counts(&self) -> Result<Vec<(SaleState, u64)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT state, count(*) FROM sales GROUP BY state")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(state, n)| {
                SaleState::parse(&state)
                    .map(|s| (s, n.max(0) as u64))
                    .ok_or_else(|| corrupt("sales", "*", "unknown state", &state))
            })
            .collect()
    }
}

const SALE_COLUMNS: &str = "id, created_at, updated_at, amount_minor, currency, reference, subject,
    idempotency_key, max_attempts, state, reason, message,
    (SELECT by_sale FROM supersessions WHERE supersessions.sale_id = sales.id)";

/// A sales row as stored, before its text columns are checked.
struct RawSale {
    id: String,
    created_at: String,
    updated_at: String,
    amount_minor: i64,
    currency: String,
    reference: Option<String>,
    subject: String,
    idempotency_key: Option<String>,
    max_attempts: u32,
    state: String,
    reason: Option<String>,
    message: Option<String>,
    superseded_by: Option<String>,
}

fn raw_sale(r: &Row<'_>) -> rusqlite::Result<RawSale> {
    Ok(RawSale {
        id: r.get(0)?,
        created_at: r.get(1)?,
        updated_at: r.get(2)?,
        amount_minor: r.get(3)?,
        currency: r.get(4)?,
        reference: r.get(5)?,
        subject: r.get(6)?,
        idempotency_key: r.get(7)?,
        max_attempts: r.get(8)?,
        state: r.get(9)?,
        reason: r.get(10)?,
        message: r.get(11)?,
        superseded_by: r.get(12)?,
    })
}

impl RawSale {
    fn into_row(self) -> Result<SaleRow, JournalError> {
        let id = self.id.as_str();
        Ok(SaleRow {
            created_at: time("sale", id, &self.created_at)?,
            updated_at: time("sale", id, &self.updated_at)?,
            amount: amount("sale", id, self.amount_minor, &self.currency)?,
            state: SaleState::parse(&self.state)
                .ok_or_else(|| corrupt("sale", id, "unknown state", &self.state))?,
            id: self.id,
            reference: self.reference,
            subject: self.subject,
            idempotency_key: self.idempotency_key,
            max_attempts: self.max_attempts,
            reason: self.reason,
            message: self.message,
            superseded_by: self.superseded_by,
        })
    }
}

pub(super) fn sale_in(conn: &Connection, id: &str) -> Result<SaleRow, JournalError> {
    conn.query_row(
        &format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ?1"),
        [id],
        raw_sale,
    )
    .optional()?
    .ok_or_else(|| JournalError::NoSale(id.to_string()))?
    .into_row()
}
