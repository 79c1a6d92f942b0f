//! The journal's identity, kept outside it: a small file beside the journal
//! (`journal.sqlite` → `journal.identity`, so `rm journal.sqlite*` leaves it) that says a
//! journal was created here, when, and the newest sale, attempt and event it has issued. At
//! start a journal that does not match it is refused instead of being silently re-created:
//! a missing or emptied file, a lost or damaged WAL, a copy older than what was issued.
//!
//! The newest sale is written when the sale is armed, before any scan, and waited for: every
//! payment belongs to a sale, so a journal without that sale has lost whatever came after. The
//! newest attempt and event are written after their commits on a thread of their own, so the
//! pay path never waits for this file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Random, made when the journal was created; also in the journal's `meta`.
    pub journal_id: String,
    pub created_at: String,
    /// The newest sale armed (durable before its first scan).
    pub last_sale_id: Option<String>,
    /// The newest attempt's request id (written soon after its commit).
    pub last_request_id: Option<String>,
    /// The highest register event id issued.
    #[serde(default)]
    pub last_event_id: i64,
}

/// `journal.sqlite` → `journal.identity`.
pub fn path_for(journal: &Path) -> PathBuf {
    journal.with_extension("identity")
}

/// The identity file, if there is one. A file that cannot be read or parsed is an error: it
/// must not be mistaken for "no journal was ever here".
pub fn load(journal: &Path) -> Result<Option<Identity>, String> {
    let path = path_for(journal);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: not a journal identity ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `identity` durably: a temporary file, fsynced, renamed over the old one, and the
/// directory fsynced, so a crash leaves the old file or the new one, never half of one. One
/// writer at a time per process: two would share the temporary file.
pub fn store(journal: &Path, identity: &Identity) -> std::io::Result<()> {
    static WRITING: Mutex<()> = Mutex::new(());
    let _one = lock(&WRITING);
    let path = path_for(journal);
    let tmp = path.with_extension("identity.tmp");
    let text = serde_json::to_string_pretty(identity).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

enum Update {
    Request(String),
    Event(i64),
    Flush(mpsc::Sender<()>),
}

/// Keeps the identity file current for a journal open for writing.
pub struct Keeper {
    journal: PathBuf,
    current: Arc<Mutex<Identity>>,
    queue: Mutex<Option<mpsc::Sender<Update>>>,
}

impl Keeper {
    pub fn new(journal: &Path, identity: Identity) -> Keeper {
        let current = Arc::new(Mutex::new(identity));
        let (tx, rx) = mpsc::channel::<Update>();
        let (path, shared) = (journal.to_path_buf(), current.clone());
        let spawned = std::thread::Builder::new()
            .name("journal-identity".into())
            .spawn(move || background(&path, &shared, rx));
        let queue = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no thread for the journal identity; it is written in line");
                None
            }
        };
        Keeper {
            journal: journal.to_path_buf(),
            current,
            queue: Mutex::new(queue),
        }
    }

    pub fn identity(&self) -> Identity {
        lock(&self.current).clone()
    }

    /// A new sale: written and waited for (the sale is armed before any scan).
    pub fn sale(&self, sale_id: &str) {
        lock(&self.current).last_sale_id = Some(sale_id.to_string());
        if let Err(e) = store_current(&self.journal, &self.current) {
            report(&self.journal, &e);
        }
    }

    /// A new attempt, written soon, off the caller's path.
    pub fn request(&self, request_id: &str) {
        self.send(Update::Request(request_id.to_string()));
    }

    pub fn event(&self, id: i64) {
        self.send(Update::Event(id));
    }

    /// Waits until every update so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Update::Flush(tx)) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    fn send(&self, update: Update) -> bool {
        let queue = lock(&self.queue);
        match queue.as_ref() {
            Some(tx) => tx.send(update).is_ok(),
            None => {
                drop(queue);
                apply(&mut lock(&self.current), &update);
                let _ = store_current(&self.journal, &self.current);
                false
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A failed write is worth a warning, unless the journal's whole directory is gone (a
/// temporary journal removed with its directory): then there is nothing left to guard.
fn report(journal: &Path, e: &std::io::Error) {
    let dir_gone = journal
        .parent()
        .is_some_and(|d| !d.as_os_str().is_empty() && !d.exists());
    if dir_gone {
        tracing::debug!(error = %e, "journal directory gone: identity not updated");
    } else {
        tracing::warn!(error = %e, file = %path_for(journal).display(), "cannot update the journal identity");
    }
}

/// Stores what `current` holds at the moment of writing, so whichever of two writers goes
/// last writes the newest of everything (never an older snapshot over a newer one).
fn store_current(journal: &Path, current: &Mutex<Identity>) -> std::io::Result<()> {
    static WRITING: Mutex<()> = Mutex::new(());
    let _one = lock(&WRITING);
    let snapshot = lock(current).clone();
    store(journal, &snapshot)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply(id: &mut Identity, update: &Update) -> bool {
    match update {
        Update::Request(r) => {
            id.last_request_id = Some(r.clone());
            true
        }
        Update::Event(e) if *e > id.last_event_id => {
            id.last_event_id = *e;
            true
        }
        _ => false,
    }
}

/// Applies queued updates, writing once per batch.
fn background(journal: &Path, current: &Mutex<Identity>, rx: mpsc::Receiver<Update>) {
    while let Ok(first) = rx.recv() {
        let mut changed = false;
        let mut waiting = Vec::new();
        for update in std::iter::once(first).chain(rx.try_iter()) {
            match update {
                Update::Flush(done) => waiting.push(done),
                other => changed |= apply(&mut lock(current), &other),
            }
        }
        if changed && let Err(e) = store_current(journal, current) {
            report(journal, &e);
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sits_beside_the_journal_where_a_glob_of_its_files_misses_it() {
        assert_eq!(
            path_for(Path::new("/var/lib/scanpay/journal.sqlite")),
            Path::new("/var/lib/scanpay/journal.identity")
        );
        assert_eq!(path_for(Path::new("j")), Path::new("j.identity"));
    }

    #[test]
    fn updates_reach_the_file_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.sqlite");
        let id = Identity {
            journal_id: "abc".into(),
            created_at: "2026-12-02T00:00:00.000Z".into(),
            last_sale_id: None,
            last_request_id: None,
            last_event_id: 0,
        };
        store(&journal, &id).unwrap();
        let keeper = Keeper::new(&journal, id);
        keeper.sale("S1");
        assert_eq!(
            load(&journal).unwrap().unwrap().last_sale_id.as_deref(),
            Some("S1"),
            "a sale is on disk when sale() returns"
        );
        keeper.request("T_1");
        keeper.event(7);
        keeper.event(3);
        keeper.flush();
        let back = load(&journal).unwrap().unwrap();
        assert_eq!(back.last_request_id.as_deref(), Some("T_1"));
        assert_eq!(back.last_event_id, 7, "never goes back");
        std::fs::write(path_for(&journal), "{not json").unwrap();
        assert!(load(&journal).is_err());
    }
}
