//! The `sales` table (and `supersessions`, which sales replaced which): creating a sale,
//! closing one unpaid, and reading sales back.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::attempts::attempts_in;
use super::query::{self, Cells, Table, parsed};
use super::refunds::refunds_in;
use super::{AttemptRow, Journal, JournalError, RefundRow};
use crate::clock::to_journal;
use crate::money::Amount;
use crate::money::basket::Basket;
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
    /// What the register said of the basket (`sale_baskets`); empty when nothing.
    pub basket: Basket,
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
    /// Campaign fields of the sale, checked against its amount before.
    pub basket: Basket,
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
        if let Some(key) = &new.idempotency_key
            && let Some(sale) = sale_by_key(&tx, key)?
        {
            if sale.amount != new.amount
                || sale.reference != new.reference
                || sale.subject != new.subject
                || sale.basket != new.basket
            {
                return Err(JournalError::IdempotencyConflict {
                    key: key.clone(),
                    sale: sale.id,
                });
            }
            return Ok((sale, false));
        }
        let t = to_journal(now);
        // One basket, one payment: a sale still in doubt for the same reference blocks a new
        // one, unless the register supersedes it (it is then reversed whatever happened).
        let earlier = match &new.reference {
            Some(reference) => {
                // A sale already superseded is being reversed: it holds up nothing.
                query::all(
                    &tx,
                    "SELECT id FROM sales WHERE state = 'processing' AND reference = ?1
                       AND id NOT IN (SELECT sale_id FROM supersessions)
                     ORDER BY created_at",
                    [reference],
                    |r| Ok(r.get::<_, String>(0)?),
                )?
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
            let last: Option<(String, String)> = query::first(
                &tx,
                "SELECT id, state FROM sales WHERE reference = ?1
                   AND id NOT IN (SELECT sale_id FROM supersessions)
                 ORDER BY rowid DESC LIMIT 1",
                [reference],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if let Some((sale, state)) = last
                && state == SaleState::Paid.as_str()
            {
                return Err(JournalError::ReferencePaid { sale });
            }
        }
        query::execute(
            &tx,
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
        super::baskets::write(&tx, &new.id, &new.basket)?;
        for old in &earlier {
            query::execute(
                &tx,
                "INSERT INTO supersessions (sale_id, by_sale, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sale_id) DO NOTHING",
                params![old, new.id, t],
            )?;
            // It takes no more scans, and the watchdog cancels it now.
            query::execute(&tx,
                "UPDATE sales SET max_attempts = MAX(1, (SELECT count(*) FROM attempts WHERE sale_id = ?1)),
                                  message = ?3, updated_at = ?2
                 WHERE id = ?1",
                params![
                    old,
                    t,
                    format!("superseded by sale {}: being cancelled, and reversed if it was paid", new.id)
                ],
            )?;
            query::execute(
                &tx,
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
        query::row(&self.read(), "WHERE id = ?1", [id])
    }

    /// A sale with its attempts and refunds, read in one transaction, so a write in between
    /// (an attempt ending) cannot pair the sale's old state with the attempt's new one.
    #[allow(clippy::type_complexity)]
    pub fn sale_whole(
        &self,
        id: &str,
    ) -> Result<Option<(SaleRow, Vec<AttemptRow>, Vec<RefundRow>)>, JournalError> {
        let mut conn = self.read();
        let tx = conn.transaction()?;
        let Some(sale) = query::row(&tx, "WHERE id = ?1", [id])? else {
            return Ok(None);
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
        query::execute(
            &tx,
            "UPDATE sales SET state = ?2, reason = COALESCE(reason, ?3),
                              message = COALESCE(message, ?3), updated_at = ?4
             WHERE id = ?1",
            params![sale_id, to.as_str(), reason, to_journal(now)],
        )?;
        let sale = sale_in(&tx, sale_id)?;
        self.commit(tx)?;
        Ok(sale)
    }

    /// Keeps, on a sale still waiting for a scan, what the cashier was told about a scan
    /// that was not charged (a wallet not accepted, a code used before), so the register
    /// reading the sale sees it too. A sale past waiting keeps its own message.
    pub fn note_refused_scan(
        &self,
        sale_id: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let conn = self.conn();
        query::execute(
            &conn,
            "UPDATE sales SET message = ?2, updated_at = ?3
             WHERE id = ?1 AND state = 'awaiting_scan'",
            params![sale_id, message, to_journal(now)],
        )?;
        Ok(())
    }

    /// Sales not yet final (awaiting a scan or processing), oldest first.
    pub fn open_sales(&self) -> Result<Vec<SaleRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state IN ('awaiting_scan','processing') ORDER BY created_at",
            [],
        )
    }

    /// Sales newest first, filtered.
    pub fn sales(&self, filter: &SaleFilter) -> Result<Vec<SaleRow>, JournalError> {
        query::rows(
            &self.read(),
            "WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR created_at >= ?2)
               AND (?3 IS NULL OR created_at < ?3)
             ORDER BY created_at DESC, id DESC
             LIMIT ?4",
            params![
                filter.state.map(|s| s.as_str()),
                filter.since.map(to_journal),
                filter.until.map(to_journal),
                filter.limit.map(i64::from).unwrap_or(-1),
            ],
        )
    }

    pub fn sale_by_idempotency_key(&self, key: &str) -> Result<Option<SaleRow>, JournalError> {
        sale_by_key(&self.conn(), key)
    }

    /// The sale takes no scan beyond those already made: however its open attempt ends, the
    /// sale ends with it (used when the terminal has moved on from it).
    pub fn no_more_attempts(&self, sale_id: &str) -> Result<(), JournalError> {
        self.track(query::execute(&self.conn(),
            "UPDATE sales SET max_attempts = MAX(1, (SELECT count(*) FROM attempts WHERE sale_id = ?1))
             WHERE id = ?1",
            [sale_id],
        ))?;
        Ok(())
    }

    /// Number of sales in each state.
    pub fn sale_counts(&self) -> Result<Vec<(SaleState, u64)>, JournalError> {
        query::all(
            &self.read(),
            "SELECT state, count(*) FROM sales GROUP BY state",
            [],
            |r| {
                let state: String = r.get(0)?;
                let n: i64 = r.get(1)?;
                let state = parsed("sales", "*", "unknown state", &state, SaleState::parse)?;
                Ok((state, n.max(0) as u64))
            },
        )
    }
}

impl Table for SaleRow {
    const SELECT: &'static str = "SELECT id, created_at, updated_at, amount_minor, currency,
        reference, subject, idempotency_key, max_attempts, state, reason, message,
        (SELECT by_sale FROM supersessions WHERE supersessions.sale_id = sales.id),
        (SELECT basket FROM sale_baskets WHERE sale_baskets.sale_id = sales.id)
        FROM sales";

    fn from_row(r: &Row<'_>) -> Result<SaleRow, JournalError> {
        let id: String = r.get(0)?;
        let c = Cells::new(r, "sale", &id);
        let amount = c.amount(3, 4)?;
        Ok(SaleRow {
            basket: super::baskets::read(c.get(13)?, amount.currency(), &id)?,
            created_at: c.time(1)?,
            updated_at: c.time(2)?,
            amount,
            reference: c.get(5)?,
            subject: c.get(6)?,
            idempotency_key: c.get(7)?,
            max_attempts: c.get(8)?,
            state: c.parsed(9, "unknown state", SaleState::parse)?,
            reason: c.get(10)?,
            message: c.get(11)?,
            superseded_by: c.get(12)?,
            id,
        })
    }
}

pub(super) fn sale_in(conn: &Connection, id: &str) -> Result<SaleRow, JournalError> {
    query::row(conn, "WHERE id = ?1", [id])?.ok_or_else(|| JournalError::NoSale(id.to_string()))
}

/// Whether the journal has the sale `id`.
pub(super) fn has_sale(conn: &Connection, id: &str) -> Result<bool, JournalError> {
    Ok(query::value::<i64>(conn, "SELECT 1 FROM sales WHERE id = ?1", [id])?.is_some())
}

/// The id of the sale created last.
pub(super) fn newest_sale(conn: &Connection) -> Result<Option<String>, JournalError> {
    query::value(conn, "SELECT id FROM sales ORDER BY rowid DESC LIMIT 1", [])
}

fn sale_by_key(conn: &Connection, key: &str) -> Result<Option<SaleRow>, JournalError> {
    query::row(conn, "WHERE idempotency_key = ?1", [key])
}
