//! The durable journal: every sale, attempt and refund in one SQLite file (WAL,
//! `synchronous=FULL`), so every commit is on disk before the call returns.
//!
//! All state changes go through typed methods that check the state machine of
//! [`crate::state`] inside the same transaction that writes them: an illegal move is refused
//! and nothing is written. Queries for open work use partial indexes, so startup cost does
//! not grow with the number of finished sales.
//!
//! A paid sale costs two commits between the scan and its outcome: the attempt row (with the
//! sale's move to `processing`) before the pay request leaves, and the outcome (attempt and
//! sale, and the register's events queued meanwhile). Checkpoints run when the daemon is
//! idle ([`disk`]).
//!
//! This module holds the [`Journal`] itself: opening it (lock, checks, pragmas, schema),
//! its connection and how a write is committed and tracked. Each table's reads and writes
//! are in their own module.

pub mod actions;
mod attempts;
mod backup;
mod baskets;
mod checks;
pub mod disk;
mod error;
mod events;
pub mod identity;
pub mod members;
pub mod meta;
mod money;
mod query;
mod refunds;
mod sales;
mod schema;
mod shifts;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::clock::from_journal;

pub use actions::{ActionRow, NewAction};
pub use attempts::{AttemptRow, Change, Counter, NewAttempt, NewMemberAttempt, NewPresented};
pub use backup::Summary;
pub use disk::{Checkpoint, DiskUse};
pub use error::JournalError;
pub use events::EventRow;
pub use refunds::RefundRow;
pub use sales::{NewSale, SaleFilter, SaleRow};
pub use schema::MIGRATIONS;
pub use shifts::ShiftRow;

use checks::{adopt, check_contents, check_files, damaged};
use meta::code_salt;

/// How long a statement waits for another process (a reader's checkpoint, a backup).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct statements kept prepared: the journal runs about sixty (a few formatted per table).
const STATEMENTS_CACHED: usize = 96;
/// The page size of a new journal. Every commit writes whole pages to the WAL, and a sale's
/// commits change a few hundred bytes in each of about seven pages (its rows and their index
/// entries): 2 KiB pages halve what a 4 KiB page writes for the same change. Journals
/// created with another size keep it.
const PAGE_SIZE: i64 = 2048;
/// Pages of SQLite's page cache (1 MiB with 2 KiB pages, half the default); the books are
/// read through indexes, a few pages a sale.
const CACHE_PAGES: i64 = 512;

pub struct Journal {
    /// A second, read-only connection for what registers and operators read (a sale, the
    /// list of sales, events to stream): with WAL it reads the last commit beside the
    /// writer, so a reader never holds the next attempt write back. `None` on a journal
    /// opened read-only, which has only the one. Declared before `conn` so it closes first:
    /// the last connection to close checkpoints the WAL into the file, and only the writer
    /// can.
    reader: Option<Mutex<Connection>>,
    conn: Mutex<Connection>,
    path: PathBuf,
    code_salt: String,
    /// Held for the life of a writing journal: one process owns the open attempts.
    _lock: Option<std::fs::File>,
    /// The last write that failed because the journal could not be written, until one
    /// succeeds again: health reports it.
    write_failure: Mutex<Option<WriteFailure>>,
    /// Keeps the identity file beside a journal open for writing.
    identity: Option<identity::Keeper>,
    /// Syncs and bytes asked of the disk.
    disk: Arc<disk::Counters>,
    /// Register events waiting for a commit to carry them.
    events: Mutex<events::EventQueue>,
    events_stored: tokio::sync::Notify,
    /// The attempt whose pay request is out, if one is.
    paying: Arc<events::Paying>,
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
        // Only a journal being created takes it (SQLite ignores it for an existing file).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(open_err)?;
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
        conn.pragma_update(None, "cache_size", CACHE_PAGES)
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        stay_prepared(&conn).map_err(open_err)?;
        // Before the first write, so every commit is counted.
        let disk = Arc::new(disk::Counters::default());
        disk::install(&mut conn, &disk).map_err(open_err)?;
        if let Some(id) = &known {
            check_contents(&conn, path, id)?;
        }
        // No secret is ever written to the journal (an attempt keeps the masked code and a
        // salted fingerprint; migration 7 cleared the full codes earlier versions kept), so
        // freed space holds nothing to scrub. FAST (set by `migrate`) still zeroes a freed
        // cell where that costs no extra page write; ON would write freed pages out again.
        schema::migrate(&mut conn)?;
        let code_salt = code_salt(&conn)?;
        let id = match known {
            Some(id) => id,
            None => adopt(&conn, path)?,
        };
        let reader = open_reader(path).map_err(open_err)?;
        let paying = Arc::new(events::Paying::default());
        Ok(Journal {
            conn: Mutex::new(conn),
            reader: Some(Mutex::new(reader)),
            path: path.to_path_buf(),
            code_salt,
            _lock: Some(lock),
            write_failure: Mutex::new(None),
            identity: Some(identity::Keeper::new(
                path,
                id,
                disk.clone(),
                paying.clone(),
            )),
            disk,
            events: Mutex::default(),
            events_stored: tokio::sync::Notify::new(),
            paying,
        })
    }

    /// Syncs and bytes this journal has asked of the disk since it was opened.
    pub fn disk_use(&self) -> DiskUse {
        self.disk.used()
    }

    /// Frames in the write-ahead log not yet checkpointed away.
    pub fn wal_frames(&self) -> u64 {
        self.disk.wal_frames()
    }

    /// Notified after a commit wrote to the journal (a sale armed, an attempt, an event).
    pub fn written(&self) -> &tokio::sync::Notify {
        self.disk.written()
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

    /// When the newest sale was made (a till with none for hours while open has stalled).
    pub fn newest_sale_at(&self) -> Result<Option<DateTime<Utc>>, JournalError> {
        let t: Option<String> =
            query::value(&self.conn(), "SELECT max(created_at) FROM sales", [])?.flatten();
        Ok(t.as_deref().and_then(from_journal))
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
            let t: Option<String> = query::value(&conn, sql, [])?.flatten();
            if let Some(t) = t.as_deref().and_then(from_journal) {
                latest = latest.max(Some(t));
            }
        }
        Ok(latest)
    }

    /// Opens an existing journal to read it while its owner may be running.
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = open_reader(path).map_err(open_err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let known = MIGRATIONS.len() as i64;
        if found != known {
            return Err(JournalError::Version { found, known });
        }
        Ok(Journal {
            conn: Mutex::new(conn),
            reader: None,
            path: path.to_path_buf(),
            code_salt: String::new(),
            _lock: None,
            write_failure: Mutex::new(None),
            identity: None,
            disk: Arc::default(),
            events: Mutex::default(),
            events_stored: tokio::sync::Notify::new(),
            paying: Arc::default(),
        })
    }

    /// Copies the write-ahead log into the main file and restarts or truncates it, waiting up
    /// to `wait` for readers to let go. Returns whether the log is empty now. Not on the
    /// payment path: the daemon's housekeeping calls it while no sale is open (a checkpoint is
    /// two fsyncs and a page write for every page changed since the last one).
    pub fn checkpoint(&self, mode: disk::Checkpoint, wait: Duration) -> bool {
        let conn = self.conn();
        match disk::checkpoint(&conn, &self.disk, mode, wait) {
            Ok(done) => {
                if !done {
                    tracing::debug!("journal checkpoint incomplete (a reader); retried");
                }
                done
            }
            Err(e) => {
                tracing::debug!(error = %e, "journal checkpoint failed; retried");
                false
            }
        }
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

    /// The connection for reads that need not see an uncommitted write: the reader where
    /// there is one. Every write is committed before the writer's lock is let go, so a read
    /// that starts after a write returns sees it.
    fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader
            .as_ref()
            .unwrap_or(&self.conn)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Events still waiting for a commit are stored before the connection closes.
        if let Err(e) = self.write_queued_events() {
            tracing::warn!(error = %e, "register events not journaled at close");
        }
    }
}

/// A read-only connection with the journal's settings for reading.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", CACHE_PAGES)?;
    stay_prepared(&conn)?;
    Ok(conn)
}

/// Keeps every statement the journal runs prepared: rusqlite's cache holds 16 by default,
/// and without the query planner stability guarantee SQLite prepares a statement again
/// whenever a new value is bound to a parameter it compared with a partial index's condition
/// (every lookup of a sale's attempts or refunds). The partial indexes are chosen by the
/// constants written in the queries, never by a bound value, so the plans stay the same.
fn stay_prepared(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
