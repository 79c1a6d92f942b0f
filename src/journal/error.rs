//! What can go wrong with the journal, in words that say what to do about it.

use crate::state::{IllegalTransition, SaleState};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}; check that the directory exists and scanpay may write it")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "journal schema version {found} is newer than this scanpay knows ({known}); run the newer scanpay or restore a backup"
    )]
    TooNew { found: i64, known: i64 },
    #[error("journal: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk is full or the file system read-only: nothing was written.
    #[error(
        "the journal cannot be written ({0}): the disk is full or read-only; no payment is taken until it can be: free space or fix the mount"
    )]
    Unwritable(rusqlite::Error),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("journal: no sale {0:?}")]
    NoSale(String),
    #[error("journal: no attempt {0}")]
    NoAttempt(i64),
    #[error("journal: sale {sale} {}, not {expected}", state.in_words())]
    SaleState {
        sale: String,
        state: SaleState,
        expected: &'static str,
    },
    #[error("journal: sale {0} has an attempt still open")]
    AttemptOpen(String),
    #[error("journal: sale {0} has used all its attempts")]
    NoAttemptsLeft(String),
    #[error(
        "idempotency key {key:?} already names sale {sale} with other details; use a new key for a new sale"
    )]
    IdempotencyConflict { key: String, sale: String },
    #[error("journal row is inconsistent: {0}; the journal may be damaged, stop and inspect it")]
    Corrupt(String),
    #[error(
        "journal {0} is in use by another scanpay process (the daemon?); stop it, or read the journal with `scanpay journal`"
    )]
    Locked(String),
    #[error("journal lock {path}: {source}; check that scanpay may write the journal's directory")]
    LockFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "journal schema version {found}, this scanpay reads version {known}; open it once with the scanpay that runs on this terminal"
    )]
    Version { found: i64, known: i64 },
    #[error("sale {sale}: {why}")]
    Refund { sale: String, why: String },
    /// The journal does not match what is known to have been here: refused, changing nothing.
    #[error("{0}")]
    Damaged(String),
    #[error("member {member} {why}")]
    Binding { member: String, why: String },
    #[error(
        "sale {sale} for this reference is still in doubt: wait for it, or create the new sale with \"supersede\": true to cancel it"
    )]
    ReferenceInDoubt { sale: String },
    #[error("sale {sale} for this reference has been paid meanwhile: no new sale is needed")]
    ReferencePaid { sale: String },
    #[error("sale {sale} was superseded by sale {by}: its payment is reversed, not taken")]
    Superseded { sale: String, by: String },
    /// Another attempt of the sale is paid already (a scanned code and the sale's QR both
    /// paid): this one is reversed, never taken.
    #[error("sale {sale} is already paid by {by}: this payment is reversed")]
    AlreadyPaid { sale: String, by: String },
    #[error("an operator action is already recorded under request id {0:?}")]
    DuplicateAction(String),
    #[error("journal: no shift {0}")]
    NoShift(i64),
    #[error("shift {0} is still open: close it before opening another")]
    ShiftOpen(i64),
}

impl JournalError {
    /// The disk is full or read-only (or its I/O fails): the journal may open once it is not.
    pub fn is_unwritable(&self) -> bool {
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        let code = match self {
            JournalError::Unwritable(_) => return true,
            JournalError::Open { source, .. } | JournalError::Sqlite(source) => {
                source.sqlite_error_code()
            }
            JournalError::LockFile { source, .. } => {
                return matches!(source.raw_os_error(), Some(28 | 30 | 27 | 5));
            }
            _ => None,
        };
        matches!(
            code,
            Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen)
        )
    }
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> JournalError {
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        match e.sqlite_error_code() {
            Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen) => JournalError::Unwritable(e),
            _ => JournalError::Sqlite(e),
        }
    }
}
