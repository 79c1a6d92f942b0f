//! The `meta` table: small records kept beside the books, each under its own key, each
//! written and read back in one place:
//!
//! - `journal_id`, `journal_created_at`: who the journal is ([`Origin`]), made once;
//! - `code_salt`: the salt of payment-code fingerprints, made once;
//! - `daemon_status`: what the daemon last knew of its gateway ([`DaemonStatus`]);
//! - `reconcile_last`: the daemon's last daily reconciliation ([`LastRun`]);
//! - `write_probe`: the small write that finds out when the journal can be written again;
//! - `backup_at`: in a backup, when it was made.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::query;
use super::{Journal, JournalError, hex};
use crate::clock::to_journal;

/// What the daemon last knew of its gateway, for `scanpay status` when no daemon answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DaemonStatus {
    // In this order, the order of the keys it has always been stored with.
    pub last_error: Option<String>,
    pub pid: u32,
    /// The gateway's reachability, as the gateway writes it (the journal does not read it).
    pub reachability: serde_json::Value,
}

impl DaemonStatus {
    pub fn load(journal: &Journal) -> Result<Option<DaemonStatus>, JournalError> {
        load(journal)
    }

    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        save(journal, self)
    }
}

impl Record for DaemonStatus {
    const KEY: &'static str = "daemon_status";
}

/// What the daemon's last daily reconciliation found, for health, metrics and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LastRun {
    /// The provider's day compared.
    pub date: String,
    pub ran_at: String,
    pub differences: usize,
    pub paid_only_at_provider: usize,
    /// Why the comparison could not be made (bill not ready, gateway unreachable).
    pub error: Option<String>,
}

impl LastRun {
    pub fn load(journal: &Journal) -> Result<Option<LastRun>, JournalError> {
        load(journal)
    }

    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        save(journal, self)
    }
}

impl Record for LastRun {
    const KEY: &'static str = "reconcile_last";
}

/// Who the journal is: a random id and when it was made, written once when it is made.
pub(super) struct Origin {
    pub journal_id: Option<String>,
    pub created_at: Option<String>,
}

impl Origin {
    pub(super) fn load(conn: &Connection) -> Result<Origin, JournalError> {
        Ok(Origin {
            journal_id: get(conn, "journal_id")?,
            created_at: get(conn, "journal_created_at")?,
        })
    }

    /// Gives the journal an id made now, unless it has one; returns the id it has and when
    /// that was made.
    pub(super) fn make(conn: &Connection) -> Result<(String, String), JournalError> {
        query::execute(
            conn,
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('journal_id', ?1), ('journal_created_at', ?2)",
            params![hex(&rand::random::<[u8; 16]>()), to_journal(Utc::now())],
        )?;
        Ok((
            stored(conn, "journal_id")?,
            stored(conn, "journal_created_at")?,
        ))
    }
}

impl Journal {
    /// A small write while the journal cannot be written, to find out when it can again
    /// (a write that reaches the disk clears [`Journal::write_failure`]).
    pub fn probe_write(&self, now: DateTime<Utc>) -> Result<(), JournalError> {
        self.track(put(&self.conn(), "write_probe", &to_journal(now)))?;
        Ok(())
    }
}

/// The salt of payment-code fingerprints, made the first time it is needed.
pub(super) fn code_salt(conn: &Connection) -> Result<String, JournalError> {
    if let Some(salt) = get(conn, "code_salt")? {
        return Ok(salt);
    }
    let salt = hex(&rand::random::<[u8; 16]>());
    query::execute(
        conn,
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('code_salt', ?1)",
        [&salt],
    )?;
    // Another process may have won the race; read back what is stored.
    stored(conn, "code_salt")
}

/// Marks the copy `conn` as a backup made at `at`.
pub(super) fn stamp_backup(conn: &Connection, at: DateTime<Utc>) -> Result<(), JournalError> {
    put(conn, "backup_at", &to_journal(at))?;
    Ok(())
}

/// A record kept as JSON under its own key.
trait Record: Serialize + DeserializeOwned {
    const KEY: &'static str;
}

fn load<R: Record>(journal: &Journal) -> Result<Option<R>, JournalError> {
    // A record that does not read (another version's) is as good as none: it only informs.
    Ok(get(&journal.conn(), R::KEY)?.and_then(|text| serde_json::from_str(&text).ok()))
}

fn save<R: Record>(journal: &Journal, record: &R) -> Result<(), JournalError> {
    // Plain fields: serializing cannot fail.
    let text = serde_json::to_string(record).unwrap_or_default();
    journal.track(put(&journal.conn(), R::KEY, &text))?;
    Ok(())
}

fn get(conn: &Connection, key: &str) -> Result<Option<String>, JournalError> {
    query::value(conn, "SELECT value FROM meta WHERE key = ?1", [key])
}

/// The value under `key`, which a write has just made sure of.
fn stored(conn: &Connection, key: &str) -> Result<String, JournalError> {
    get(conn, key)?.ok_or_else(|| JournalError::Corrupt(format!("meta: no {key}")))
}

fn put(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<usize> {
    query::execute(
        conn,
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
}
