//! The `meta` table: small values kept beside the books, one per key.

use rusqlite::{Connection, params};

use super::query;
use super::{Journal, JournalError, hex};

impl Journal {
    /// A small value the daemon keeps for `scanpay status` (reachability, last error).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), JournalError> {
        self.track(put(&self.conn(), key, value))?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, JournalError> {
        get(&self.conn(), key)
    }
}

/// The value kept under `key`, if there is one.
pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<String>, JournalError> {
    query::value(conn, "SELECT value FROM meta WHERE key = ?1", [key])
}

/// Keeps `value` under `key`, replacing what was there.
pub(super) fn put(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
}

pub(super) fn code_salt(conn: &Connection) -> Result<String, JournalError> {
    if let Some(salt) = get(conn, "code_salt")? {
        return Ok(salt);
    }
    let salt = hex(&rand::random::<[u8; 16]>());
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('code_salt', ?1)",
        [&salt],
    )?;
    // Another process may have won the race; read back what is stored.
    get(conn, "code_salt")?.ok_or_else(|| JournalError::Corrupt("meta: no code_salt".into()))
}
