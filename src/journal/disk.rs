//! What the journal asks of the disk, counted the way SQLite does it, so the cost of a sale
//! can be measured (`scanpay bench`) and held by a test; and the checkpoint that folds the
//! write-ahead log back into the main file, off the payment path.
//!
//! With `journal_mode=WAL` and `synchronous=FULL`, a commit that wrote anything appends its
//! pages to the WAL as frames (24-byte header plus the page) and syncs the WAL once; the first
//! commit into an empty or restarted WAL also writes the 32-byte log header and syncs it on its
//! own (sqlite.org/wal.html; `sqlite3WalFrames`). SQLite's WAL hook reports, after every such
//! commit, how many frames the log holds: the frames a commit wrote are the growth since the
//! previous one, or all of them when the log started over.
//!
//! A checkpoint syncs the WAL, copies its newest page images into the main file and syncs
//! that. Nothing in the WAL needs scrubbing (the full payment code is never written), so it
//! runs only when the daemon is idle (housekeeping), when the journal closes, and, as a
//! backstop that keeps the WAL bounded, inline once the log holds [`WAL_BACKSTOP_FRAMES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use super::JournalError;

/// The WAL size at which a commit checkpoints inline (PASSIVE, never waiting for a reader),
/// about 32 MiB with 4 KiB pages. Housekeeping checkpoints long before this while the daemon
/// runs; this bounds the log of a writer that never goes idle or runs without housekeeping.
pub const WAL_BACKSTOP_FRAMES: u64 = 8192;
/// The size a restarted WAL file is cut back to.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// Syncs and bytes asked of the disk so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUse {
    /// fsync calls: WAL commits, WAL headers, checkpoints, the identity file.
    pub syncs: u64,
    /// Bytes written to the journal's files (WAL frames, checkpointed pages) and the identity.
    pub bytes: u64,
}

impl DiskUse {
    /// What was used since `earlier`.
    pub fn since(self, earlier: DiskUse) -> DiskUse {
        DiskUse {
            syncs: self.syncs.saturating_sub(earlier.syncs),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// The counters of one journal, shared with its WAL hook and its identity keeper.
#[derive(Debug, Default)]
pub struct Counters {
    syncs: AtomicU64,
    bytes: AtomicU64,
    /// Frames in the WAL after the last commit (0: empty or truncated).
    wal_frames: AtomicU64,
    /// Frames of the WAL already copied into the main file.
    backfilled: AtomicU64,
    page_size: AtomicU64,
    /// Notified after every commit that wrote something.
    written: tokio::sync::Notify,
}

impl Counters {
    pub fn used(&self) -> DiskUse {
        DiskUse {
            syncs: self.syncs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Frames the WAL holds now.
    pub fn wal_frames(&self) -> u64 {
        self.wal_frames.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> &tokio::sync::Notify {
        &self.written
    }

    /// A write of `bytes` and `syncs` fsyncs outside SQLite (the identity file).
    pub(super) fn add(&self, syncs: u64, bytes: u64) {
        self.syncs.fetch_add(syncs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A commit left `frames` frames in the WAL.
    fn committed(&self, frames: u64) {
        let before = self.wal_frames.swap(frames, Ordering::Relaxed);
        let page = self.page_size.load(Ordering::Relaxed);
        let (written, fresh) = if frames > before && before > 0 {
            (frames - before, false)
        } else {
            // The log started over: this commit wrote its header and every frame in it.
            self.backfilled.store(0, Ordering::Relaxed);
            (frames, true)
        };
        let header = if fresh { WAL_HEADER } else { 0 };
        self.add(
            1 + u64::from(fresh),
            header + written * (FRAME_HEADER + page),
        );
        self.written.notify_one();
    }

    /// A checkpoint ended with `log` frames in the WAL, of which `checkpointed` are copied
    /// into the main file; `log` is 0 once the whole log was copied and the log starts over.
    fn checkpointed(&self, log: u64, checkpointed: u64) {
        let upto = if log == 0 {
            self.wal_frames.load(Ordering::Relaxed)
        } else {
            checkpointed
        };
        let before = self.backfilled.swap(upto, Ordering::Relaxed);
        let copied = upto.saturating_sub(before);
        if copied > 0 {
            // The WAL synced before the copy, the main file after it. Each page is copied once
            // (its newest frame): at most this many bytes.
            self.add(2, copied * self.page_size.load(Ordering::Relaxed));
        }
        if log == 0 {
            self.wal_frames.store(0, Ordering::Relaxed);
            self.backfilled.store(0, Ordering::Relaxed);
        }
    }
}

/// Sets the writer's WAL handling: SQLite's own autocheckpoint (every 1000 pages, inline in
/// whichever commit crosses it, a payment's among them) is replaced by a hook that counts each
/// commit and checkpoints only at the backstop.
pub(super) fn install(conn: &mut Connection, counters: &Arc<Counters>) -> rusqlite::Result<()> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    counters
        .page_size
        .store(page.max(512) as u64, Ordering::Relaxed);
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    let hook = counters.clone();
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
        let frames = frames.max(0) as u64;
        hook.committed(frames);
        if frames >= WAL_BACKSTOP_FRAMES {
            // PASSIVE: copies what no reader still needs, never waits, never fails the commit.
            if let Ok((log, done)) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE) {
                hook.checkpointed(log.max(0) as u64, done.max(0) as u64);
            }
        }
        Ok(())
    }))
}

/// What a checkpoint leaves of the WAL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The next commit writes from the start of the log, over the file's old frames (cut back
    /// to 4 MiB): overwriting blocks a file already has is cheaper to sync than growing it.
    Restart,
    /// The file is cut to nothing (before the journal closes).
    Truncate,
}

/// Copies the WAL into the main file and restarts or truncates it, waiting at most `wait` for
/// readers. Returns whether the log is empty now.
pub(super) fn checkpoint(
    conn: &Connection,
    counters: &Counters,
    mode: Checkpoint,
    wait: std::time::Duration,
) -> Result<bool, JournalError> {
    if counters.wal_frames() == 0 {
        return Ok(true);
    }
    let sql = match mode {
        Checkpoint::Restart => "PRAGMA wal_checkpoint(RESTART)",
        Checkpoint::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    conn.busy_timeout(wait)?;
    let result = conn.query_row(sql, [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    let (busy, log, done) = result?;
    let (log, done) = (log.max(0) as u64, done.max(0) as u64);
    // RESTART reports the old log's length, all of it copied; the next commit starts over.
    let emptied = busy == 0 && (log == 0 || done == log);
    counters.checkpointed(if emptied { 0 } else { log }, done);
    Ok(emptied)
}
