//! Reading stored values back: the checks that turn a damaged value into an error naming
//! its table, row and value.

use chrono::{DateTime, Utc};

use super::JournalError;
use crate::clock::from_journal;
use crate::money::{Amount, Currency};

pub(super) fn corrupt(
    table: &str,
    id: impl std::fmt::Display,
    what: &str,
    value: &str,
) -> JournalError {
    JournalError::Corrupt(format!("{table} {id}: {what} {value:?}"))
}

pub(super) fn time(
    table: &str,
    id: impl std::fmt::Display,
    text: &str,
) -> Result<DateTime<Utc>, JournalError> {
    from_journal(text).ok_or_else(|| corrupt(table, id, "bad timestamp", text))
}

pub(super) fn amount(
    table: &str,
    id: impl std::fmt::Display + Copy,
    minor: i64,
    currency: &str,
) -> Result<Amount, JournalError> {
    let currency = Currency::from_code(currency)
        .map_err(|_| corrupt(table, id, "unknown currency", currency))?;
    Ok(Amount::from_minor(minor, currency))
}
