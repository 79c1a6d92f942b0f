//! The journal's identity, kept outside it: a small file beside the journal
//! (`journal.sqlite` → `journal.identity`, so `rm journal.sqlite*` leaves it) that says a
//! journal was created here, when, and the newest sale, attempt and event it has issued. At
//! start a journal that does not match it is refused instead of being silently re-created:
//! a missing or emptied file, a lost or damaged WAL, a copy older than what was issued.
//!
//! The newest sale is written when the sale is armed, before any scan, and waited for: every
//! payment belongs to a sale, so a journal without that sale has lost whatever came after. The
//! newest attempt and event are written after their commits on a thread of their own, so the
//! pay path never waits for this file: once the sale's changes have settled (a fraction of a
//! second with no pay request out), or with the next sale's, so a sale costs one write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::disk::Counters;
use super::events::Paying;

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
/// writer at a time per process: two would share the temporary file. Returns the bytes
/// written.
pub fn store(journal: &Path, identity: &Identity) -> std::io::Result<u64> {
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
    std::fs::File::open(dir)?.sync_all()?;
    Ok(text.len() as u64 + 1)
}

enum Update {
    /// The identity changed in memory.
    Changed,
    Flush(mpsc::Sender<()>),
}

/// A change is written once no other came for this long and no pay request is out, so one
/// sale's attempt and events cost one write, after the sale.
const QUIET: Duration = Duration::from_millis(200);
/// A change waits at most this long for a quiet moment (then for the pay request out, if one
/// is, to be answered).
const AT_MOST: Duration = Duration::from_secs(10);
const PAYING_AT_MOST: Duration = Duration::from_secs(180);

/// What the file should hold, and whether it holds it yet.
struct Current {
    identity: Identity,
    unwritten: bool,
}

/// Keeps the identity file current for a journal open for writing.
pub struct Keeper {
    journal: PathBuf,
    current: Arc<Mutex<Current>>,
    disk: Arc<Counters>,
    queue: Mutex<Option<mpsc::Sender<Update>>>,
}

impl Keeper {
    /// `paying` tells whether a pay request is out (its fsyncs would compete with the
    /// outcome's commit).
    pub(super) fn new(
        journal: &Path,
        identity: Identity,
        disk: Arc<Counters>,
        paying: Arc<Paying>,
    ) -> Keeper {
        let current = Arc::new(Mutex::new(Current {
            identity,
            unwritten: false,
        }));
        let (tx, rx) = mpsc::channel::<Update>();
        let (path, shared, counters) = (journal.to_path_buf(), current.clone(), disk.clone());
        let spawned = std::thread::Builder::new()
            .name("journal-identity".into())
            // It formats a little JSON and writes a file: the default 2 MiB stack is idle
            // memory.
            .stack_size(64 * 1024)
            .spawn(move || background(&path, &shared, &counters, &paying, &rx));
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
            disk,
            queue: Mutex::new(queue),
        }
    }

    pub fn identity(&self) -> Identity {
        lock(&self.current).identity.clone()
    }

    /// A new sale: written and waited for (the sale is armed before any scan). The file then
    /// also holds every attempt and event so far.
    pub fn sale(&self, sale_id: &str) {
        {
            let mut current = lock(&self.current);
            current.identity.last_sale_id = Some(sale_id.to_string());
            current.unwritten = true;
        }
        if let Err(e) = store_current(&self.journal, &self.current, &self.disk) {
            report(&self.journal, &e);
        }
    }

    /// A new attempt, written soon, off the caller's path: its pay request is about to leave,
    /// so the writer is not even woken before [`Keeper::nudge`] (the outcome).
    pub fn request(&self, request_id: &str) {
        let mut current = lock(&self.current);
        current.identity.last_request_id = Some(request_id.to_string());
        current.unwritten = true;
    }

    /// Has what changed quietly written soon.
    pub fn nudge(&self) {
        if lock(&self.current).unwritten {
            self.send(Update::Changed);
        }
    }

    pub fn event(&self, event_id: i64) {
        self.change(|id| {
            let newer = event_id > id.last_event_id;
            if newer {
                id.last_event_id = event_id;
            }
            newer
        });
    }

    /// Waits until every update so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Update::Flush(tx)) {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }

    fn change(&self, apply: impl FnOnce(&mut Identity) -> bool) {
        {
            let mut current = lock(&self.current);
            if !apply(&mut current.identity) {
                return;
            }
            current.unwritten = true;
        }
        self.send(Update::Changed);
    }

    /// Hands `update` to the thread; without one, writes in line. Whether the thread took it.
    fn send(&self, update: Update) -> bool {
        let queue = lock(&self.queue);
        match queue.as_ref() {
            Some(tx) => tx.send(update).is_ok(),
            None => {
                drop(queue);
                if let Err(e) = store_current(&self.journal, &self.current, &self.disk) {
                    report(&self.journal, &e);
                }
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

/// Stores what `current` holds at the moment of writing, if that is not on disk yet, so
/// whichever of two writers goes last writes the newest of everything (never an older
/// snapshot over a newer one).
fn store_current(journal: &Path, current: &Mutex<Current>, disk: &Counters) -> std::io::Result<()> {
    static WRITING: Mutex<()> = Mutex::new(());
    let _one = lock(&WRITING);
    let snapshot = {
        let mut current = lock(current);
        if !current.unwritten {
            return Ok(());
        }
        current.unwritten = false;
        current.identity.clone()
    };
    match store(journal, &snapshot) {
        Ok(bytes) => {
            // The file's sync and its directory's.
            disk.add(2, bytes);
            Ok(())
        }
        Err(e) => {
            lock(current).unwritten = true;
            Err(e)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes changes once they have settled: [`QUIET`] with no other change and no pay request
/// out, or [`AT_MOST`] after the first; at once for a flush.
fn background(
    journal: &Path,
    current: &Mutex<Current>,
    disk: &Counters,
    paying: &Paying,
    rx: &mpsc::Receiver<Update>,
) {
    while let Ok(first) = rx.recv() {
        let mut waiting = Vec::new();
        match first {
            Update::Flush(done) => waiting.push(done),
            Update::Changed => {
                let since = Instant::now();
                // A pay request stuck longer than this (its outcome never written) no longer
                // holds the file back.
                let paying = || paying.since().is_some_and(|t| t.elapsed() < PAYING_AT_MOST);
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(Update::Changed) if since.elapsed() >= AT_MOST && !paying() => break,
                        Ok(Update::Changed) => {}
                        Ok(Update::Flush(done)) => {
                            waiting.push(done);
                            break;
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) if paying() => {}
                        Err(_) => break,
                    }
                }
            }
        }
        for update in rx.try_iter() {
            if let Update::Flush(done) = update {
                waiting.push(done);
            }
        }
        if let Err(e) = store_current(journal, current, disk) {
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
        let keeper = Keeper::new(&journal, id, Arc::default(), Arc::default());
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
