//! Reading rows: the one way a select turns stored rows into typed values, and the checks
//! that turn a damaged stored value into an error naming its table, row and value.

use chrono::{DateTime, Utc};
use rusqlite::types::FromSql;
use rusqlite::{Connection, Params, Row};

use super::JournalError;
use crate::clock::from_journal;
use crate::money::{Amount, Currency};

/// A row type and the table it is read from.
pub(super) trait Table: Sized {
    /// `SELECT <its columns> FROM <its table>`: what [`Table::from_row`] reads, in order.
    const SELECT: &'static str;

    /// One stored row, checked.
    fn from_row(row: &Row<'_>) -> Result<Self, JournalError>;
}

// Statements are prepared once per connection and cached: the same few selects run for
// every sale.

/// Every row `sql` selects, each read by `read`, in the order it gives.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut read: impl FnMut(&Row<'_>) -> Result<T, JournalError>,
) -> Result<Vec<T>, JournalError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// The first row `sql` selects, read by `read`, if there is a row.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnOnce(&Row<'_>) -> Result<T, JournalError>,
) -> Result<Option<T>, JournalError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(read).transpose()
}

/// Every row of `T` that `filter` (what follows `FROM`: `WHERE`, `ORDER BY`, `LIMIT`)
/// selects.
pub(super) fn rows<T: Table>(
    conn: &Connection,
    filter: &str,
    params: impl Params,
) -> Result<Vec<T>, JournalError> {
    all(
        conn,
        &format!("{} {filter}", T::SELECT),
        params,
        T::from_row,
    )
}

/// The first row of `T` that `filter` selects, if there is one.
pub(super) fn row<T: Table>(
    conn: &Connection,
    filter: &str,
    params: impl Params,
) -> Result<Option<T>, JournalError> {
    first(
        conn,
        &format!("{} {filter}", T::SELECT),
        params,
        T::from_row,
    )
}

/// Runs a statement that writes, prepared once per connection like the selects; returns the
/// rows it changed.
pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// The first column of the first row `sql` selects, if there is a row.
pub(super) fn value<T: FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, JournalError> {
    first(conn, sql, params, |r| Ok(r.get(0)?))
}

/// The columns of one stored row, read with the row named in any error.
pub(super) struct Cells<'r, 's> {
    row: &'r Row<'s>,
    table: &'static str,
    id: String,
}

impl<'r, 's> Cells<'r, 's> {
    /// `row` of `table`, whose id (for errors) is `id`.
    pub(super) fn new(row: &'r Row<'s>, table: &'static str, id: impl ToString) -> Self {
        Cells {
            row,
            table,
            id: id.to_string(),
        }
    }

    pub(super) fn get<T: FromSql>(&self, column: usize) -> Result<T, JournalError> {
        Ok(self.row.get(column)?)
    }

    /// A text column read by `parse`; when it does not read, an error saying `what`.
    pub(super) fn parsed<T>(
        &self,
        column: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, JournalError> {
        parsed(
            self.table,
            &self.id,
            what,
            &self.get::<String>(column)?,
            parse,
        )
    }

    pub(super) fn time(&self, column: usize) -> Result<DateTime<Utc>, JournalError> {
        self.parsed(column, "bad timestamp", from_journal)
    }

    /// A column that may be empty (NULL) holding a time.
    pub(super) fn time_or_none(
        &self,
        column: usize,
    ) -> Result<Option<DateTime<Utc>>, JournalError> {
        match self.get::<Option<String>>(column)? {
            Some(text) => time(self.table, &self.id, &text).map(Some),
            None => Ok(None),
        }
    }

    /// An amount from its minor-units column and its currency column.
    pub(super) fn amount(&self, minor: usize, currency: usize) -> Result<Amount, JournalError> {
        let currency = self.parsed(currency, "unknown currency", |c| {
            Currency::from_code(c).ok()
        })?;
        Ok(Amount::from_minor(self.get(minor)?, currency))
    }
}

/// A stored value that does not read as what it should be.
pub(super) fn corrupt(
    table: &str,
    id: impl std::fmt::Display,
    what: &str,
    value: &str,
) -> JournalError {
    JournalError::Corrupt(format!("{table} {id}: {what} {value:?}"))
}

/// The stored text `text` read by `parse`; when it does not read, an error saying `what`.
pub(super) fn parsed<T>(
    table: &str,
    id: impl std::fmt::Display,
    what: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, JournalError> {
    parse(text).ok_or_else(|| corrupt(table, id, what, text))
}

pub(super) fn time(
    table: &str,
    id: impl std::fmt::Display,
    text: &str,
) -> Result<DateTime<Utc>, JournalError> {
    parsed(table, id, "bad timestamp", text, from_journal)
}
