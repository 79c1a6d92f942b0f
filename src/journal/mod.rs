//! The durable journal: every sale, attempt and refund in one SQLite file (WAL,
//! `synchronous=FULL`), so every commit is on disk before the call returns.
//!
//! All state changes go through typed methods that check the state machine of
//! [`crate::state`] inside the same transaction that writes them: an illegal move is refused
//! and nothing is written. Queries for open work use partial indexes, so startup cost does
//! not grow with the number of finished sales.

pub mod identity;
mod schema;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::clock::{from_journal, to_journal};
use crate::money::{Amount, Currency};
use crate::paycode::{PaymentCode, Wallet};
use crate::state::{
    AttemptState, Cause, IllegalTransition, RefundState, SaleState, check_attempt_transition,
    check_refund_transition, sale_state_after,
};

pub use schema::MIGRATIONS;

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
    #[error("journal: sale {sale} is {state}, not {expected}")]
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
    #[error(
        "sale {sale} for this reference is still in doubt: wait for it, or create the new sale with \"supersede\": true to cancel it"
    )]
    ReferenceInDoubt { sale: String },
    #[error("sale {sale} for this reference has been paid meanwhile: no new sale is needed")]
    ReferencePaid { sale: String },
    #[error("sale {sale} was superseded by sale {by}: its payment is reversed, not taken")]
    Superseded { sale: String, by: String },
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: i64,
    pub sale_id: String,
    pub seq: u32,
    pub request_id: String,
    pub gateway: String,
    pub wallet: Wallet,
    pub code_masked: String,
    /// Always `None` for attempts this version writes; a journal from an earlier version may
    /// hold the full code of an attempt still open, dropped when it ends.
    pub code: Option<String>,
    pub amount: Amount,
    pub state: AttemptState,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_trade_id: Option<String>,
    pub paid_then_refunded: bool,
    pub needs_attention: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When inquiring stops and cancelling starts.
    pub deadline_at: DateTime<Utc>,
    pub pay_requests: u32,
    pub inquiries: u32,
    pub cancels: u32,
    /// What was left of the in-doubt window, and the wall time it was measured at.
    pub budget_left_ms: Option<i64>,
    pub budget_at: Option<DateTime<Utc>>,
}

impl AttemptRow {
    /// The register gave up on the attempt (cancel, supersede): its deadline was moved to
    /// its creation, so it is cancelled now.
    pub fn expedited(&self) -> bool {
        self.deadline_at <= self.created_at
    }

    /// What is left of the in-doubt window at `now`. From the kept budget, less the wall
    /// time since it was kept, never less than nothing and never more than was left: a clock
    /// stepped back cannot stretch it. Without a kept budget (older rows), the deadline.
    pub fn budget_left(&self, now: DateTime<Utc>) -> std::time::Duration {
        if self.expedited() {
            return std::time::Duration::ZERO;
        }
        let ms = match (self.budget_left_ms, self.budget_at) {
            (Some(left), Some(at)) => {
                let since = (now - at).num_milliseconds().clamp(0, left.max(0));
                left.max(0) - since
            }
            _ => (self.deadline_at - now).num_milliseconds().max(0),
        };
        std::time::Duration::from_millis(ms.max(0) as u64)
    }
}

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

#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub request_id: String,
    pub gateway: &'a str,
    pub code: &'a PaymentCode,
    pub deadline_at: DateTime<Utc>,
}

/// What a transition records besides the new state. `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_trade_id: Option<String>,
    pub paid_then_refunded: bool,
    /// Cashier message for the sale.
    pub message: Option<String>,
    /// What is left of the in-doubt window now (kept with the attempt, see `budget_left`).
    pub budget_left: Option<std::time::Duration>,
}

/// Which request counter to bump.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Pay,
    Inquiry,
    Cancel,
}

#[derive(Debug, Clone, Default)]
pub struct SaleFilter {
    pub state: Option<SaleState>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

pub struct Journal {
    conn: Mutex<Connection>,
    path: PathBuf,
    code_salt: String,
    /// Held for the life of a writing journal: one process owns the open attempts.
    _lock: Option<std::fs::File>,
    /// The last write that failed because the journal could not be written, until one
    /// succeeds again: health reports it.
    write_failure: Mutex<Option<WriteFailure>>,
    /// The last checkpoint left pages (possibly holding a payment code) in the WAL.
    scrub_pending: std::sync::atomic::AtomicBool,
    /// Keeps the identity file beside a journal open for writing.
    identity: Option<identity::Keeper>,
}

/// What a journal holds, in a few numbers (`journal verify`, `backup`, `restore`).
#[derive(Debug, Clone)]
pub struct Summary {
    pub journal_id: Option<String>,
    pub created_at: Option<String>,
    pub sales: i64,
    pub open_attempts: i64,
    pub newest_sale: Option<String>,
    pub newest_attempt_at: Option<DateTime<Utc>>,
}

/// Why and since when the journal cannot be written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteFailure {
    pub since: String,
    pub error: String,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` for writing and brings its schema up
    /// to date. Only one process may write a journal: a second one is refused, because it
    /// would resolve the first one's attempts behind its back.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        let lock = lock_file(path)?;
        // Before SQLite touches the files: it would create a missing journal afresh, and
        // drop a WAL whose checksums fail, both silently.
        let known = identity::load(path).map_err(|e| damaged(path, &e))?;
        check_files(path, known.as_ref())?;
        let mut conn = Connection::open(path).map_err(open_err)?;
        // Settings are explicit: durability must not depend on a library default.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Corrupt(format!(
                "journal_mode is {mode}, WAL could not be enabled"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Zero freed space, so a payment code dropped from a final attempt is not left
        // readable in a free page of the file.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        if let Some(id) = &known {
            check_contents(&conn, path, id)?;
        }
        schema::migrate(&mut conn)?;
        let code_salt = code_salt(&conn)?;
        let id = match known {
            Some(id) => id,
            None => adopt(&conn, path)?,
        };
        Ok(Journal {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            code_salt,
            _lock: Some(lock),
            write_failure: Mutex::new(None),
            scrub_pending: std::sync::atomic::AtomicBool::new(false),
            identity: Some(identity::Keeper::new(path, id)),
        })
    }

    /// The identity this journal keeps beside it (journals open for writing).
    pub fn identity(&self) -> Option<identity::Identity> {
        self.identity.as_ref().map(identity::Keeper::identity)
    }

    /// Waits until the identity file holds every update so far.
    pub fn flush_identity(&self) {
        if let Some(k) = &self.identity {
            k.flush();
        }
    }

    /// Checks the journal at `path` as `open` does (its files, its identity, what it holds)
    /// and SQLite's own integrity check, changing nothing. It may be run while the daemon
    /// runs.
    pub fn verify(path: &Path) -> Result<Summary, JournalError> {
        let known = identity::load(path).map_err(|e| damaged(path, &e))?;
        if known.is_none() && !path.exists() {
            return Err(JournalError::Damaged(format!(
                "there is no journal at {} (and no {}): nothing to verify",
                path.display(),
                identity::path_for(path).display()
            )));
        }
        check_files(path, known.as_ref())?;
        let journal = Journal::open_read_only(path)?;
        if let Some(id) = &known {
            check_contents(&journal.conn(), path, id)?;
        }
        journal.integrity_check()?;
        journal.summary()
    }

    /// The latest time the journal has written anything at: a clock earlier than that has
    /// been set back.
    pub fn latest_timestamp(&self) -> Result<Option<DateTime<Utc>>, JournalError> {
        let conn = self.conn();
        let mut latest: Option<DateTime<Utc>> = None;
        // Sales and attempts only: events are written while sales are refused too, with a
        // clock that may be the wrong one.
        for sql in [
            "SELECT max(updated_at) FROM attempts",
            "SELECT max(created_at) FROM sales",
        ] {
            let t: Option<String> = conn.query_row(sql, [], |r| r.get(0))?;
            if let Some(t) = t.as_deref().and_then(from_journal) {
                latest = latest.max(Some(t));
            }
        }
        Ok(latest)
    }

    /// What the journal holds, in a few numbers.
    pub fn summary(&self) -> Result<Summary, JournalError> {
        let conn = self.conn();
        let meta = |key: &str| -> Result<Option<String>, JournalError> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let count =
            |sql: &str| -> Result<i64, JournalError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Summary {
            journal_id: meta("journal_id")?,
            created_at: meta("journal_created_at")?,
            sales: count("SELECT count(*) FROM sales")?,
            open_attempts: count(
                "SELECT count(*) FROM attempts WHERE state IN ('pending','unknown','cancelling')",
            )?,
            newest_sale: conn
                .query_row(
                    "SELECT id FROM sales ORDER BY rowid DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?,
            newest_attempt_at: conn
                .query_row(
                    "SELECT created_at FROM attempts ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|t| from_journal(&t)),
        })
    }

    /// Whether the journal has the sale and the attempt an identity names as newest.
    pub fn holds(&self, id: &identity::Identity) -> Result<Vec<String>, JournalError> {
        let conn = self.conn();
        let mut missing = Vec::new();
        if let Some(sale) = &id.last_sale_id
            && conn
                .query_row("SELECT 1 FROM sales WHERE id = ?1", [sale], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .is_none()
        {
            missing.push(format!("sale {sale}"));
        }
        if let Some(request) = &id.last_request_id
            && conn
                .query_row(
                    "SELECT 1 FROM attempts WHERE request_id = ?1",
                    [request],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .is_none()
        {
            missing.push(format!("attempt {request}"));
        }
        Ok(missing)
    }

    /// Request ids of attempts in this journal that `other` does not have, oldest first.
    pub fn attempts_not_in(
        &self,
        other: &Journal,
    ) -> Result<Vec<(String, DateTime<Utc>)>, JournalError> {
        let mine: Vec<(String, String)> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare("SELECT request_id, created_at FROM attempts ORDER BY id")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let theirs = other.conn();
        let mut out = Vec::new();
        for (request_id, at) in mine {
            let found: Option<i64> = theirs
                .query_row(
                    "SELECT 1 FROM attempts WHERE request_id = ?1",
                    [&request_id],
                    |r| r.get(0),
                )
                .optional()?;
            if found.is_none() {
                out.push((request_id, time("attempt", "", &at)?));
            }
        }
        Ok(out)
    }

    /// A consistent copy of the whole journal, WAL contents included, into the new file
    /// `dest` (SQLite's `VACUUM INTO`: it reads one snapshot, so the daemon may keep
    /// writing). The copy carries the journal's id and when it was made.
    pub fn backup_to(&self, dest: &Path) -> Result<(), JournalError> {
        self.copy_to(dest)?;
        let copy = Connection::open(dest)?;
        copy.execute(
            "INSERT INTO meta (key, value) VALUES ('backup_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [to_journal(Utc::now())],
        )?;
        copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
        Ok(())
    }

    /// One consistent snapshot of the whole journal, WAL contents included, into the new
    /// file `dest`, made durable.
    fn copy_to(&self, dest: &Path) -> Result<(), JournalError> {
        let text = dest.to_str().ok_or_else(|| {
            JournalError::Damaged(format!(
                "{}: use a path that is valid UTF-8",
                dest.display()
            ))
        })?;
        self.conn().execute("VACUUM INTO ?1", [text])?;
        let sync = std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .and_then(|()| {
                let dir = dest
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                std::fs::File::open(dir)?.sync_all()
            });
        sync.map_err(|e| JournalError::Damaged(format!("{}: {e}", dest.display())))
    }

    /// Archives the journal's files (see [`Journal::archive`]) and writes `from`, a whole
    /// snapshot of another journal, WAL contents included, in their place, all under the
    /// journal's lock. Returns the archive directory. If the write fails, the archived
    /// files are put back, and the error says where they are if that fails too.
    pub fn replace_with(path: &Path, from: &Journal) -> Result<Option<PathBuf>, JournalError> {
        let lock = lock_file(path)?;
        let archived = archive_locked(path)?;
        if let Err(e) = from.copy_to(path) {
            let _ = std::fs::remove_file(path);
            let put_back = archived.as_ref().map(|dir| unarchive(dir, path));
            drop(lock);
            return Err(JournalError::Damaged(match (put_back, &archived) {
                (Some(Err(why)), Some(dir)) => format!(
                    "{e}; the journal's files are in {} ({why}): move them back beside {}",
                    dir.display(),
                    path.display()
                ),
                _ => format!("{e}; the journal's files are back as they were"),
            }));
        }
        drop(lock);
        Ok(archived)
    }

    /// Moves the journal's files (the file, its WAL and shared memory, its identity) into a
    /// new directory beside it and returns that directory; `None` when there was nothing.
    /// Takes the journal's lock: the daemon must be stopped.
    pub fn archive(path: &Path) -> Result<Option<PathBuf>, JournalError> {
        let _lock = lock_file(path)?;
        archive_locked(path)
    }
}

/// Moves archived files from `dir` back beside `path`.
fn unarchive(dir: &Path, path: &Path) -> std::io::Result<()> {
    let target = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        std::fs::rename(entry.path(), target.join(entry.file_name()))?;
    }
    std::fs::remove_dir(dir)
}

fn archive_locked(path: &Path) -> Result<Option<PathBuf>, JournalError> {
    {
        let files: Vec<PathBuf> = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
            .chain(std::iter::once(identity::path_for(path)))
            .filter(|f| f.exists())
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "journal".into());
        let dir = path.with_file_name(format!(
            "{stem}-archived-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let io = |e: std::io::Error| {
            JournalError::Damaged(format!("archiving into {}: {e}", dir.display()))
        };
        std::fs::create_dir(&dir).map_err(io)?;
        for f in files {
            let name = f.file_name().map(|n| n.to_owned()).unwrap_or_default();
            std::fs::rename(&f, dir.join(name)).map_err(io)?;
        }
        Ok(Some(dir))
    }
}

impl Journal {
    /// Opens an existing journal to read it while its owner may be running.
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let known = MIGRATIONS.len() as i64;
        if found != known {
            return Err(JournalError::Version { found, known });
        }
        Ok(Journal {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            code_salt: String::new(),
            _lock: None,
            write_failure: Mutex::new(None),
            scrub_pending: std::sync::atomic::AtomicBool::new(false),
            identity: None,
        })
    }

    /// Folds the write-ahead log into the main file and truncates it, so page images that
    /// held a payment code do not linger in the WAL after the attempt is final.
    pub fn scrub(&self) {
        // A reader (`scanpay status`, a report) must not hold the sale path for seconds:
        // the checkpoint gives up at once; the daemon retries it while it stays incomplete.
        self.scrub_waiting(std::time::Duration::ZERO);
    }

    /// [`Journal::scrub`], waiting up to `wait` for readers to let go. Returns whether the
    /// write-ahead log is now empty.
    pub fn scrub_waiting(&self, wait: std::time::Duration) -> bool {
        let conn = self.conn();
        let _ = conn.busy_timeout(wait);
        let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        let done = matches!(result, Ok(0));
        self.scrub_pending
            .store(!done, std::sync::atomic::Ordering::Relaxed);
        if !done {
            tracing::debug!(?result, "journal checkpoint incomplete; retried");
        }
        done
    }

    /// Whether the last scrub could not empty the write-ahead log (a reader held it).
    pub fn scrub_pending(&self) -> bool {
        self.scrub_pending
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the journal cannot be written, while its last write failed for that reason.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.write_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records whether a write reached the disk, so health can tell a full or read-only
    /// disk from a healthy one.
    fn track<T>(&self, result: rusqlite::Result<T>) -> Result<T, JournalError> {
        let result = result.map_err(JournalError::from);
        let mut failure = self.write_failure.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => {
                if failure.take().is_some() {
                    tracing::info!(journal = %self.path.display(), "journal writable again");
                }
            }
            Err(e @ JournalError::Unwritable(_)) => {
                if failure.is_none() {
                    tracing::error!(journal = %self.path.display(), error = %e, "journal cannot be written: new sales are refused");
                    *failure = Some(WriteFailure {
                        since: crate::clock::to_journal(chrono::Utc::now()),
                        error: e.to_string(),
                    });
                }
            }
            Err(_) => {}
        }
        result
    }

    fn commit(&self, tx: rusqlite::Transaction<'_>) -> Result<(), JournalError> {
        self.track(tx.commit())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock cannot leave a half transaction behind
        // (SQLite rolls it back), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fingerprint of a payment code, to recognise reuse without keeping the code.
    pub fn code_hash(&self, code: &PaymentCode) -> String {
        let mut h = Sha256::new();
        h.update(self.code_salt.as_bytes());
        h.update(code.expose().as_bytes());
        hex(&h.finalize())
    }

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

    pub fn attempts(&self, sale_id: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.conn();
        attempts_in(&conn, sale_id)
    }

    pub fn attempt(&self, id: i64) -> Result<AttemptRow, JournalError> {
        let conn = self.conn();
        attempt_in(&conn, id)
    }

    pub fn attempt_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Option<AttemptRow>, JournalError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE request_id = ?1"),
            [request_id],
            raw_attempt,
        )
        .optional()?
        .map(RawAttempt::into_row)
        .transpose()
    }

    /// Writes a new attempt (state `pending`) and moves its sale to `processing`, in one
    /// durable transaction. This must return before the pay request is sent (invariant 1).
    pub fn begin_attempt(
        &self,
        sale_id: &str,
        new: &NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<AttemptRow, JournalError> {
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
        let attempts = attempts_in(&tx, sale_id)?;
        if attempts.iter().any(|a| !a.state.is_final()) {
            return Err(JournalError::AttemptOpen(sale.id));
        }
        let seq = attempts.len() as u32 + 1;
        if seq > sale.max_attempts {
            return Err(JournalError::NoAttemptsLeft(sale.id));
        }
        let t = to_journal(now);
        tx.execute(
            "INSERT INTO attempts (sale_id, seq, request_id, gateway, wallet, code_masked, code,
                                   code_hash, amount_minor, currency, state, created_at,
                                   updated_at, deadline_at, pay_requests, budget_left_ms,
                                   budget_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11, ?12, 1, ?13,
                     ?11)",
            params![
                sale_id,
                seq,
                new.request_id,
                new.gateway,
                new.code.wallet().as_str(),
                new.code.masked(),
                // The full code is never written: nothing needs it after the request left (a
                // resend happens within the call; recovery inquires and cancels by request
                // id), and SQLite can leave old cell bytes in a page's unused space even with
                // secure_delete. The salted fingerprint is enough to refuse a reused code.
                Option::<String>::None,
                self.code_hash(new.code),
                sale.amount.minor(),
                sale.amount.currency().code(),
                t,
                to_journal(new.deadline_at),
                (new.deadline_at - now).num_milliseconds().max(0),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE sales SET state = 'processing', updated_at = ?2, reason = NULL, message = NULL
             WHERE id = ?1",
            params![sale_id, t],
        )?;
        let attempt = attempt_in(&tx, id)?;
        self.commit(tx)?;
        if let Some(k) = &self.identity {
            k.request(&attempt.request_id);
        }
        Ok(attempt)
    }

    /// Moves an attempt to `to` (checked against the state machine) and its sale to the
    /// matching state, in one transaction. Final attempts lose their full code.
    pub fn transition(
        &self,
        attempt_id: i64,
        to: AttemptState,
        cause: Cause,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let attempt = attempt_in(&tx, attempt_id)?;
        check_attempt_transition(attempt.state, to, cause)?;
        if to == AttemptState::Succeeded
            && let Some(by) = tx
                .query_row(
                    "SELECT by_sale FROM supersessions WHERE sale_id = ?1",
                    [&attempt.sale_id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
        {
            // The register replaced this sale: its payment is reversed, never taken.
            return Err(JournalError::Superseded {
                sale: attempt.sale_id,
                by,
            });
        }
        let mut attention = None;
        if attempt.state == AttemptState::Failed && to == AttemptState::Succeeded {
            // Overturning a failure: the sale's other attempts decide whether that is safe.
            let siblings = attempts_in(&tx, &attempt.sale_id)?;
            let others = siblings.iter().filter(|a| a.id != attempt.id);
            if others.clone().any(|a| !a.state.is_final()) {
                return Err(JournalError::AttemptOpen(attempt.sale_id));
            }
            if others.clone().any(|a| a.state == AttemptState::Succeeded) {
                attention = Some("two attempts of this sale were paid: refund one of them");
            }
        }
        let t = to_journal(now);
        tx.execute(
            "UPDATE attempts SET
                 state = ?2,
                 result_code = COALESCE(?3, result_code),
                 result_message = COALESCE(?4, result_message),
                 gateway_trade_id = COALESCE(?5, gateway_trade_id),
                 paid_then_refunded = paid_then_refunded OR ?6,
                 code = CASE WHEN ?7 THEN NULL ELSE code END,
                 updated_at = ?8,
                 needs_attention = COALESCE(?9, needs_attention),
                 budget_left_ms = COALESCE(?10, budget_left_ms),
                 budget_at = CASE WHEN ?10 IS NULL THEN budget_at ELSE ?8 END
             WHERE id = ?1",
            params![
                attempt_id,
                to.as_str(),
                change.result_code,
                change.result_message,
                change.gateway_trade_id,
                change.paid_then_refunded,
                to.is_final(),
                t,
                attention,
                change.budget_left.map(|b| b.as_millis() as i64),
            ],
        )?;
        let sale = sale_in(&tx, &attempt.sale_id)?;
        let used = attempts_in(&tx, &sale.id)?.len() as u32;
        let sale_state = sale_state_after(to, used, sale.max_attempts);
        if sale.state.is_final() && sale_state != sale.state && to != AttemptState::Succeeded {
            // A closed sale only changes when a late success overturns it.
            return Err(JournalError::SaleState {
                sale: sale.id,
                state: sale.state,
                expected: "open",
            });
        }
        let reason = match to {
            AttemptState::Failed | AttemptState::Cancelled => Some(reason_text(
                change
                    .result_code
                    .as_deref()
                    .or(attempt.result_code.as_deref()),
                change
                    .result_message
                    .as_deref()
                    .or(attempt.result_message.as_deref()),
            )),
            _ => None,
        };
        tx.execute(
            "UPDATE sales SET state = ?2, reason = ?3, message = COALESCE(?4, message),
                              updated_at = ?5
             WHERE id = ?1",
            params![sale.id, sale_state.as_str(), reason, change.message, t],
        )?;
        let attempt = attempt_in(&tx, attempt_id)?;
        let sale = sale_in(&tx, &sale.id)?;
        self.commit(tx)?;
        Ok((attempt, sale))
    }

    /// Counts one more request of `counter`'s kind and records its latest result, without
    /// changing the state (an inquiry that learned nothing new, a cancel to retry).
    pub fn note(
        &self,
        attempt_id: i64,
        counter: Counter,
        result_code: &str,
        result_message: &str,
        budget_left: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let column = match counter {
            Counter::Pay => "pay_requests",
            Counter::Inquiry => "inquiries",
            Counter::Cancel => "cancels",
        };
        let t = to_journal(now);
        let changed = self.track(self.conn().execute(
            &format!(
                "UPDATE attempts SET {column} = {column} + 1, result_code = ?2,
                                     result_message = ?3, updated_at = ?4,
                                     budget_left_ms = COALESCE(?5, budget_left_ms),
                                     budget_at = CASE WHEN ?5 IS NULL THEN budget_at ELSE ?4 END
                 WHERE id = ?1"
            ),
            params![
                attempt_id,
                result_code,
                result_message,
                t,
                budget_left.map(|b| b.as_millis() as i64)
            ],
        ))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(JournalError::NoAttempt(attempt_id))
        }
    }

    /// Marks an attempt as needing a person (or clears the mark with `None`).
    pub fn flag_attention(
        &self,
        attempt_id: i64,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.track(self.conn().execute(
            "UPDATE attempts SET needs_attention = ?2, updated_at = ?3 WHERE id = ?1",
            params![attempt_id, why, to_journal(now)],
        ))?;
        Ok(())
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

    /// Every attempt not yet final, oldest first (uses the partial index).
    pub fn open_attempts(&self) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts
             WHERE state IN ('pending','unknown','cancelling') ORDER BY id"
        ))?;
        let raws = stmt
            .query_map([], raw_attempt)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawAttempt::into_row).collect()
    }

    /// Attempts whose last change fell in `[since, until)` (for a final attempt: when it
    /// ended), oldest first.
    pub fn attempts_updated_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts
             WHERE updated_at >= ?1 AND updated_at < ?2 ORDER BY id"
        ))?;
        let raws = stmt
            .query_map(params![to_journal(since), to_journal(until)], raw_attempt)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawAttempt::into_row).collect()
    }

    /// Refunds made (written) in `[since, until)`, whatever their state, oldest first.
    pub fn refunds_created_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RefundRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds
             WHERE created_at >= ?1 AND created_at < ?2 ORDER BY id"
        ))?;
        let raws = stmt
            .query_map(params![to_journal(since), to_journal(until)], raw_refund)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawRefund::into_row).collect()
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

    /// Attempts that sent `code` (by fingerprint) and were created at or after `since`.
    pub fn attempts_with_code(
        &self,
        code: &PaymentCode,
        since: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE code_hash = ?1 AND created_at >= ?2"
        ))?;
        let raws = stmt
            .query_map(
                params![self.code_hash(code), to_journal(since)],
                raw_attempt,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawAttempt::into_row).collect()
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
                "is {}, only a paid sale can be refunded",
                sale.state
            )));
        }
        let paid = attempts_in(&tx, sale_id)?
            .into_iter()
            .find(|a| a.state == AttemptState::Succeeded)
            .ok_or_else(|| refund_err("has no paid attempt".to_string()))?;
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
        tx.execute(
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
        let attempt = tx
            .query_row(
                "SELECT id FROM attempts WHERE request_id = ?1",
                [attempt_request_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|id| attempt_in(&tx, id))
            .transpose()?
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
        tx.execute(
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
        tx.execute(
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
        refunds_in(&self.conn(), sale_id)
    }

    pub fn refund(&self, id: i64) -> Result<RefundRow, JournalError> {
        refund_in(&self.conn(), id)
    }

    /// The refund with this refund id (`out_request_no` / `refundRequestId`), if any.
    pub fn refund_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Option<RefundRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE request_id = ?1"
        ))?;
        let raw = stmt.query_row([request_id], raw_refund).optional()?;
        raw.map(RawRefund::into_row).transpose()
    }

    /// Refunds that succeeded in `[since, until)`, by the time they succeeded: a day's report
    /// counts a refund on the day the money went back, whatever day the sale was.
    pub fn refunds_succeeded_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RefundRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds
             WHERE state = 'succeeded' AND updated_at >= ?1 AND updated_at < ?2 ORDER BY id"
        ))?;
        let raws = stmt
            .query_map(params![to_journal(since), to_journal(until)], raw_refund)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawRefund::into_row).collect()
    }

    /// Refunds not yet final, oldest first (uses the partial index).
    pub fn open_refunds(&self) -> Result<Vec<RefundRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE state IN ('pending','unknown') ORDER BY id"
        ))?;
        let raws = stmt
            .query_map([], raw_refund)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawRefund::into_row).collect()
    }

    /// The id of the newest event, 0 when there is none.
    pub fn last_event_id(&self) -> Result<i64, JournalError> {
        let conn = self.conn();
        Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
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
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![id, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Moves the in-doubt deadline of a sale's open attempts to `now`: the watchdog stops
    /// waiting and cancels (the register gave up on the sale). The sale takes no more scans.
    pub fn expedite(&self, sale_id: &str, now: DateTime<Utc>) -> Result<usize, JournalError> {
        self.no_more_attempts(sale_id)?;
        let changed = self.track(self.conn().execute(
            "UPDATE attempts SET deadline_at = created_at, budget_left_ms = 0, updated_at = ?2
             WHERE sale_id = ?1 AND state IN ('pending','unknown')",
            params![sale_id, to_journal(now)],
        ))?;
        Ok(changed)
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

    /// A small value the daemon keeps for `scanpay status` (reachability, last error).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), JournalError> {
        self.track(self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        ))?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
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

    /// Attempts flagged for a person, newest first.
    pub fn attempts_needing_attention(&self) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE needs_attention IS NOT NULL ORDER BY id DESC"
        ))?;
        let raws = stmt
            .query_map([], raw_attempt)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawAttempt::into_row).collect()
    }

    /// `PRAGMA integrity_check`: `Ok` when SQLite finds the file sound.
    pub fn integrity_check(&self) -> Result<(), JournalError> {
        let conn = self.conn();
        let result: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(JournalError::Corrupt(result))
        }
    }
}

/// Takes the journal's lock file (`<journal>.lock`), or says who holds it.
fn lock_file(path: &Path) -> Result<std::fs::File, JournalError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| JournalError::LockFile {
            path: PathBuf::from(&lock_path).display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(JournalError::Locked(path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(JournalError::LockFile {
            path: PathBuf::from(&lock_path).display().to_string(),
            source,
        }),
    }
}

fn reason_text(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
        (Some(c), _) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "not paid".to_string(),
    }
}

/// A damaged-journal error: what is wrong, and the ways back.
fn damaged(path: &Path, what: &str) -> JournalError {
    JournalError::Damaged(format!(
        "{what}. Nothing was changed. To recover: put the journal's files back as they were \
         ({0} and {0}-wal together), or restore a backup (scanpay journal restore BACKUP \
         --journal {0}); `scanpay journal verify --journal {0}` checks it. Only to start over \
         on purpose: scanpay journal init --force --journal {0} (archives what is there)",
        path.display()
    ))
}

/// What the files say before SQLite opens them: a journal the identity names must be there
/// and not empty, and its WAL must not be damaged.
fn check_files(path: &Path, known: Option<&identity::Identity>) -> Result<(), JournalError> {
    let wal_path = PathBuf::from(format!("{}-wal", path.display()));
    if let Some(id) = known {
        let said = format!(
            "{} says journal {} (created {}) lives here{}",
            identity::path_for(path).display(),
            id.journal_id,
            id.created_at,
            id.last_sale_id
                .as_deref()
                .map(|s| format!(", its newest sale {s}"))
                .unwrap_or_default()
        );
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(
                    path,
                    &format!("journal {} is missing, but {said}", path.display()),
                ));
            }
            Ok(m) if m.len() == 0 => {
                return Err(damaged(
                    path,
                    &format!("journal {} is empty (0 bytes), but {said}", path.display()),
                ));
            }
            _ => {}
        }
    }
    match wal::check(&wal_path) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(d)) => Err(damaged(path, &format!("{}: {d}", wal_path.display()))),
        Err(e) => Err(damaged(
            path,
            &format!("{} cannot be read: {e}", wal_path.display()),
        )),
    }
}

/// What the journal holds against what its identity says was issued.
fn check_contents(
    conn: &Connection,
    path: &Path,
    id: &identity::Identity,
) -> Result<(), JournalError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let lost = |what: String| {
        damaged(
            path,
            &format!(
                "journal {} {what}, but {} says it issued more: it has lost its newest transactions (a missing or damaged {}-wal, or an older copy)",
                path.display(),
                identity::path_for(path).display(),
                path.display()
            ),
        )
    };
    if version == 0 {
        return Err(lost("holds no tables".to_string()));
    }
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'journal_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match stored {
        Some(j) if j == id.journal_id => {}
        Some(j) => {
            return Err(damaged(
                path,
                &format!(
                    "journal {} is journal {j}, but {} names journal {}: another journal was put in its place",
                    path.display(),
                    identity::path_for(path).display(),
                    id.journal_id
                ),
            ));
        }
        None => return Err(lost("carries no journal id".to_string())),
    }
    if let Some(sale) = &id.last_sale_id {
        let found: Option<i64> = conn
            .query_row("SELECT 1 FROM sales WHERE id = ?1", [sale], |r| r.get(0))
            .optional()?;
        if found.is_none() {
            return Err(lost(format!("has no sale {sale}")));
        }
    }
    if let Some(request) = &id.last_request_id {
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM attempts WHERE request_id = ?1",
                [request],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_none() {
            return Err(lost(format!("has no attempt {request}")));
        }
    }
    if id.last_event_id > 0 {
        let seq: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if seq < id.last_event_id {
            return Err(lost(format!(
                "has issued events up to {seq}, not {}",
                id.last_event_id
            )));
        }
    }
    Ok(())
}

/// A journal without an identity file: new, from a version that kept none, or its file was
/// lost. Its id is made (or read back) and the file written.
fn adopt(conn: &Connection, path: &Path) -> Result<identity::Identity, JournalError> {
    let now = to_journal(Utc::now());
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('journal_id', ?1), ('journal_created_at', ?2)",
        params![hex(&rand::random::<[u8; 16]>()), now],
    )?;
    let meta = |key: &str| -> Result<String, JournalError> {
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
    };
    let newest = |sql: &str| -> Result<Option<String>, JournalError> {
        Ok(conn.query_row(sql, [], |r| r.get(0)).optional()?.flatten())
    };
    let id = identity::Identity {
        journal_id: meta("journal_id")?,
        created_at: meta("journal_created_at")?,
        last_sale_id: newest("SELECT id FROM sales ORDER BY rowid DESC LIMIT 1")?,
        last_request_id: newest("SELECT request_id FROM attempts ORDER BY id DESC LIMIT 1")?,
        last_event_id: conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0),
    };
    if id.last_sale_id.is_some() {
        tracing::warn!(file = %identity::path_for(path).display(), "the journal's identity file was missing: written anew from the journal");
    }
    if let Err(e) = identity::store(path, &id) {
        tracing::warn!(error = %e, file = %identity::path_for(path).display(), "cannot write the journal identity");
    }
    Ok(id)
}

fn code_salt(conn: &Connection) -> Result<String, JournalError> {
    let existing: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'code_salt'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(salt) = existing {
        return Ok(salt);
    }
    let salt = hex(&rand::random::<[u8; 16]>());
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('code_salt', ?1)",
        [&salt],
    )?;
    // Another process may have won the race; read back what is stored.
    Ok(
        conn.query_row("SELECT value FROM meta WHERE key = 'code_salt'", [], |r| {
            r.get(0)
        })?,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SALE_COLUMNS: &str = "id, created_at, updated_at, amount_minor, currency, reference, subject,
    idempotency_key, max_attempts, state, reason, message,
    (SELECT by_sale FROM supersessions WHERE supersessions.sale_id = sales.id)";

const ATTEMPT_COLUMNS: &str = "id, sale_id, seq, request_id, gateway, wallet, code_masked, code,
    amount_minor, currency, state, result_code, result_message, gateway_trade_id,
    paid_then_refunded, needs_attention, created_at, updated_at, deadline_at, pay_requests,
    inquiries, cancels, budget_left_ms, budget_at";

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

fn corrupt(table: &str, id: impl std::fmt::Display, what: &str, value: &str) -> JournalError {
    JournalError::Corrupt(format!("{table} {id}: {what} {value:?}"))
}

fn time(
    table: &str,
    id: impl std::fmt::Display,
    text: &str,
) -> Result<DateTime<Utc>, JournalError> {
    from_journal(text).ok_or_else(|| corrupt(table, id, "bad timestamp", text))
}

fn amount(
    table: &str,
    id: impl std::fmt::Display + Copy,
    minor: i64,
    currency: &str,
) -> Result<Amount, JournalError> {
    let currency = Currency::from_code(currency)
        .map_err(|_| corrupt(table, id, "unknown currency", currency))?;
    Ok(Amount::from_minor(minor, currency))
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

struct RawAttempt {
    id: i64,
    sale_id: String,
    seq: u32,
    request_id: String,
    gateway: String,
    wallet: String,
    code_masked: String,
    code: Option<String>,
    amount_minor: i64,
    currency: String,
    state: String,
    result_code: Option<String>,
    result_message: Option<String>,
    gateway_trade_id: Option<String>,
    paid_then_refunded: bool,
    needs_attention: Option<String>,
    created_at: String,
    updated_at: String,
    deadline_at: String,
    pay_requests: u32,
    inquiries: u32,
    cancels: u32,
    budget_left_ms: Option<i64>,
    budget_at: Option<String>,
}

fn raw_attempt(r: &Row<'_>) -> rusqlite::Result<RawAttempt> {
    Ok(RawAttempt {
        id: r.get(0)?,
        sale_id: r.get(1)?,
        seq: r.get(2)?,
        request_id: r.get(3)?,
        gateway: r.get(4)?,
        wallet: r.get(5)?,
        code_masked: r.get(6)?,
        code: r.get(7)?,
        amount_minor: r.get(8)?,
        currency: r.get(9)?,
        state: r.get(10)?,
        result_code: r.get(11)?,
        result_message: r.get(12)?,
        gateway_trade_id: r.get(13)?,
        paid_then_refunded: r.get(14)?,
        needs_attention: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
        deadline_at: r.get(18)?,
        pay_requests: r.get(19)?,
        inquiries: r.get(20)?,
        cancels: r.get(21)?,
        budget_left_ms: r.get(22)?,
        budget_at: r.get(23)?,
    })
}

impl RawAttempt {
    fn into_row(self) -> Result<AttemptRow, JournalError> {
        let id = self.id;
        let state = AttemptState::parse(&self.state)
            .ok_or_else(|| corrupt("attempt", id, "unknown state", &self.state))?;
        // Pair check of the write side: a final attempt never keeps its full code.
        if state.is_final() && self.code.is_some() {
            return Err(corrupt(
                "attempt",
                id,
                "final but still holds its code",
                state.as_str(),
            ));
        }
        Ok(AttemptRow {
            id,
            wallet: Wallet::parse(&self.wallet)
                .ok_or_else(|| corrupt("attempt", id, "unknown wallet", &self.wallet))?,
            amount: amount("attempt", id, self.amount_minor, &self.currency)?,
            state,
            created_at: time("attempt", id, &self.created_at)?,
            updated_at: time("attempt", id, &self.updated_at)?,
            deadline_at: time("attempt", id, &self.deadline_at)?,
            sale_id: self.sale_id,
            seq: self.seq,
            request_id: self.request_id,
            gateway: self.gateway,
            code_masked: self.code_masked,
            code: self.code,
            result_code: self.result_code,
            result_message: self.result_message,
            gateway_trade_id: self.gateway_trade_id,
            paid_then_refunded: self.paid_then_refunded,
            needs_attention: self.needs_attention,
            pay_requests: self.pay_requests,
            inquiries: self.inquiries,
            cancels: self.cancels,
            budget_left_ms: self.budget_left_ms,
            budget_at: match &self.budget_at {
                Some(t) => Some(time("attempt", id, t)?),
                None => None,
            },
        })
    }
}

const REFUND_COLUMNS: &str = "id, sale_id, attempt_id, request_id, amount_minor, currency, reason,
    state, result_code, result_message, gateway_refund_id, created_at, updated_at";

struct RawRefund {
    id: i64,
    sale_id: String,
    attempt_id: i64,
    request_id: String,
    amount_minor: i64,
    currency: String,
    reason: Option<String>,
    state: String,
    result_code: Option<String>,
    result_message: Option<String>,
    gateway_refund_id: Option<String>,
    created_at: String,
    updated_at: String,
}

fn raw_refund(r: &Row<'_>) -> rusqlite::Result<RawRefund> {
    Ok(RawRefund {
        id: r.get(0)?,
        sale_id: r.get(1)?,
        attempt_id: r.get(2)?,
        request_id: r.get(3)?,
        amount_minor: r.get(4)?,
        currency: r.get(5)?,
        reason: r.get(6)?,
        state: r.get(7)?,
        result_code: r.get(8)?,
        result_message: r.get(9)?,
        gateway_refund_id: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

impl RawRefund {
    fn into_row(self) -> Result<RefundRow, JournalError> {
        let id = self.id;
        Ok(RefundRow {
            amount: amount("refund", id, self.amount_minor, &self.currency)?,
            state: RefundState::parse(&self.state)
                .ok_or_else(|| corrupt("refund", id, "unknown state", &self.state))?,
            created_at: time("refund", id, &self.created_at)?,
            updated_at: time("refund", id, &self.updated_at)?,
            id,
            sale_id: self.sale_id,
            attempt_id: self.attempt_id,
            request_id: self.request_id,
            reason: self.reason,
            result_code: self.result_code,
            result_message: self.result_message,
            gateway_refund_id: self.gateway_refund_id,
        })
    }
}

fn refund_in(conn: &Connection, id: i64) -> Result<RefundRow, JournalError> {
    conn.query_row(
        &format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = ?1"),
        [id],
        raw_refund,
    )
    .optional()?
    .ok_or_else(|| JournalError::Refund {
        sale: String::new(),
        why: format!("no refund {id}"),
    })?
    .into_row()
}

fn refunds_in(conn: &Connection, sale_id: &str) -> Result<Vec<RefundRow>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE sale_id = ?1 ORDER BY id"
    ))?;
    let raws = stmt
        .query_map([sale_id], raw_refund)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawRefund::into_row).collect()
}

fn sale_in(conn: &Connection, id: &str) -> Result<SaleRow, JournalError> {
    conn.query_row(
        &format!("SELECT {SALE_COLUMNS} FROM sales WHERE id = ?1"),
        [id],
        raw_sale,
    )
    .optional()?
    .ok_or_else(|| JournalError::NoSale(id.to_string()))?
    .into_row()
}

fn attempt_in(conn: &Connection, id: i64) -> Result<AttemptRow, JournalError> {
    conn.query_row(
        &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?1"),
        [id],
        raw_attempt,
    )
    .optional()?
    .ok_or(JournalError::NoAttempt(id))?
    .into_row()
}

fn attempts_in(conn: &Connection, sale_id: &str) -> Result<Vec<AttemptRow>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE sale_id = ?1 ORDER BY seq"
    ))?;
    let raws = stmt
        .query_map([sale_id], raw_attempt)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawAttempt::into_row).collect()
}

#[cfg(test)]
mod tests;
