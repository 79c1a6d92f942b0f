//! The `meta` table: small values kept beside the books, one per key.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Journal, JournalError, hex};

impl Journal {
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
}

pub(super) fn code_salt(conn: &Connection) -> Result<String, JournalError> {
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
