//! The `shifts` table (migration 11): a cashier's shift from its opening to its closing, and
//! the numbered Z-report kept when it closed.

use chrono::{DateTime, Utc};
use rusqlite::{Row, TransactionBehavior, params};

use super::query::{self, Cells, Table};
use super::{Journal, JournalError};
use crate::clock::to_journal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftRow {
    pub id: i64,
    pub opened_at: DateTime<Utc>,
    /// Who opened it (an operator id), when said.
    pub opened_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The Z-report's number, given when it closed.
    pub z_number: Option<i64>,
    /// The Z-report as it was when the shift closed (JSON).
    pub report: Option<String>,
}

impl Table for ShiftRow {
    const SELECT: &'static str =
        "SELECT id, opened_at, opened_by, closed_at, z_number, report FROM shifts";

    fn from_row(r: &Row<'_>) -> Result<ShiftRow, JournalError> {
        let id: i64 = r.get(0)?;
        let c = Cells::new(r, "shift", id);
        Ok(ShiftRow {
            id,
            opened_at: c.time(1)?,
            opened_by: c.get(2)?,
            closed_at: c.time_or_none(3)?,
            z_number: c.get(4)?,
            report: c.get(5)?,
        })
    }
}

impl Journal {
    /// Opens a shift at `now`; refused while another is open.
    pub fn open_shift(
        &self,
        opened_by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ShiftRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(open) = query::row::<ShiftRow>(&tx, "WHERE closed_at IS NULL", [])? {
            return Err(JournalError::ShiftOpen(open.id));
        }
        query::execute(
            &tx,
            "INSERT INTO shifts (opened_at, opened_by) VALUES (?1, ?2)",
            params![to_journal(now), opened_by],
        )?;
        let id = tx.last_insert_rowid();
        let row = query::row(&tx, "WHERE id = ?1", [id])?.ok_or(JournalError::NoShift(id))?;
        tx.commit()?;
        Ok(row)
    }

    /// Closes shift `id` at `now` with its Z-report `report`, numbered the next after the
    /// highest number given. A shift already closed is answered as it was closed.
    pub fn close_shift(
        &self,
        id: i64,
        now: DateTime<Utc>,
        report: &str,
    ) -> Result<ShiftRow, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let shift: ShiftRow =
            query::row(&tx, "WHERE id = ?1", [id])?.ok_or(JournalError::NoShift(id))?;
        if shift.closed_at.is_some() {
            return Ok(shift);
        }
        query::execute(
            &tx,
            "UPDATE shifts SET closed_at = ?2, report = ?3,
                 z_number = (SELECT COALESCE(MAX(z_number), 0) + 1 FROM shifts)
             WHERE id = ?1",
            params![id, to_journal(now), report],
        )?;
        let row = query::row(&tx, "WHERE id = ?1", [id])?.ok_or(JournalError::NoShift(id))?;
        tx.commit()?;
        Ok(row)
    }

    pub fn shift(&self, id: i64) -> Result<Option<ShiftRow>, JournalError> {
        query::row(&self.conn(), "WHERE id = ?1", [id])
    }

    /// The shift whose Z-report has number `z`.
    pub fn shift_by_z(&self, z: i64) -> Result<Option<ShiftRow>, JournalError> {
        query::row(&self.conn(), "WHERE z_number = ?1", [z])
    }
}
