//! Copies of the journal: a backup, a restore over the journal's files, archiving them,
//! and what a copy holds against another (`journal backup`, `restore`, `init --force`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::attempts::has_attempt;
use super::meta::{self, Origin};
use super::query::{self, time};
use super::sales::newest_sale;
use super::{Journal, JournalError, identity, lock_file};
use crate::clock::from_journal;

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

impl Journal {
    /// What the journal holds, in a few numbers.
    pub fn summary(&self) -> Result<Summary, JournalError> {
        let conn = self.conn();
        let origin = Origin::load(&conn)?;
        let count = |sql: &str| -> Result<i64, JournalError> {
            Ok(query::value(&conn, sql, [])?.unwrap_or(0))
        };
        Ok(Summary {
            journal_id: origin.journal_id,
            created_at: origin.created_at,
            sales: count("SELECT count(*) FROM sales")?,
            open_attempts: count(
                "SELECT count(*) FROM attempts WHERE state IN ('pending','unknown','cancelling')",
            )?,
            newest_sale: newest_sale(&conn)?,
            newest_attempt_at: query::value::<String>(
                &conn,
                "SELECT created_at FROM attempts ORDER BY id DESC LIMIT 1",
                [],
            )?
            .and_then(|t| from_journal(&t)),
        })
    }

    /// Request ids of attempts in this journal that `other` does not have, oldest first.
    pub fn attempts_not_in(
        &self,
        other: &Journal,
    ) -> Result<Vec<(String, DateTime<Utc>)>, JournalError> {
        let mine: Vec<(String, String)> = query::all(
            &self.conn(),
            "SELECT request_id, created_at FROM attempts ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let theirs = other.conn();
        let mut out = Vec::new();
        for (request_id, at) in mine {
            if !has_attempt(&theirs, &request_id)? {
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
        meta::stamp_backup(&copy, Utc::now())?;
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
