//! What is checked before a journal is trusted: its files before SQLite opens them (a
//! journal gone or emptied, a damaged WAL), and what it holds against the identity kept
//! beside it; `journal verify`.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::attempts::has_attempt;
use super::events::events_issued;
use super::meta::Origin;
use super::sales::{has_sale, newest_sale};
use super::{Journal, JournalError, Summary, identity, query, wal};

impl Journal {
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

    /// Whether the journal has the sale and the attempt an identity names as newest.
    pub fn holds(&self, id: &identity::Identity) -> Result<Vec<String>, JournalError> {
        missing(&self.conn(), id)
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

/// A damaged-journal error: what is wrong, and the ways back.
pub(super) fn damaged(path: &Path, what: &str) -> JournalError {
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
pub(super) fn check_files(
    path: &Path,
    known: Option<&identity::Identity>,
) -> Result<(), JournalError> {
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
pub(super) fn check_contents(
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
    match Origin::load(conn)?.journal_id {
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
    if let Some(first) = missing(conn, id)?.first() {
        return Err(lost(format!("has no {first}")));
    }
    if id.last_event_id > 0 {
        let seq = events_issued(conn)?;
        if seq < id.last_event_id {
            return Err(lost(format!(
                "has issued events up to {seq}, not {}",
                id.last_event_id
            )));
        }
    }
    Ok(())
}

/// The newest sale and attempt `id` names that the journal does not have.
fn missing(conn: &Connection, id: &identity::Identity) -> Result<Vec<String>, JournalError> {
    let mut missing = Vec::new();
    if let Some(sale) = &id.last_sale_id
        && !has_sale(conn, sale)?
    {
        missing.push(format!("sale {sale}"));
    }
    if let Some(request) = &id.last_request_id
        && !has_attempt(conn, request)?
    {
        missing.push(format!("attempt {request}"));
    }
    Ok(missing)
}

/// A journal without an identity file: new, from a version that kept none, or its file was
/// lost. Its id is made (or read back) and the file written.
pub(super) fn adopt(conn: &Connection, path: &Path) -> Result<identity::Identity, JournalError> {
    let (journal_id, created_at) = Origin::make(conn)?;
    let id = identity::Identity {
        journal_id,
        created_at,
        last_sale_id: newest_sale(conn)?,
        last_request_id: query::value(
            conn,
            "SELECT request_id FROM attempts ORDER BY id DESC LIMIT 1",
            [],
        )?,
        last_event_id: events_issued(conn)?,
    };
    if id.last_sale_id.is_some() {
        tracing::warn!(file = %identity::path_for(path).display(), "the journal's identity file was missing: written anew from the journal");
    }
    if let Err(e) = identity::store(path, &id) {
        tracing::warn!(error = %e, file = %identity::path_for(path).display(), "cannot write the journal identity");
    }
    Ok(id)
}
