//! A look at the journal's write-ahead log before SQLite opens it. SQLite treats a WAL frame
//! whose checksum fails as the end of the log and drops it and everything after it, silently:
//! a flipped byte in the middle of the WAL would forget every transaction committed after it,
//! a charged payment in doubt among them. So the WAL is read here first, by its documented
//! format (sqlite.org/fileformat2.html, "The Write-Ahead Log"), and refused when a frame of
//! the current log fails its checksum while two later frames of the same log commit
//! transactions: the first of those was followed by another transaction, so its commit had
//! returned, and only damage can make it unreadable.
//!
//! A torn last transaction is accepted: SQLite writes a transaction's frames and then syncs
//! once, so a power cut can keep its commit frame and tear an earlier frame of it. That
//! transaction never returned, no payment was sent on it, and SQLite dropping it loses
//! nothing that was acknowledged.

use std::path::Path;

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

/// What the WAL holds, as far as it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReport {
    /// Frames whose checksums hold, up to the first that does not.
    pub valid_frames: usize,
    /// Transactions those frames commit.
    pub commits: usize,
}

/// Why a WAL must not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "frame {bad_frame} of {frames} fails its checksum, yet {later_commits} later frame(s) of the same log commit transactions: the WAL is damaged, and SQLite would silently drop those transactions"
)]
pub struct WalDamage {
    /// 1-based.
    pub bad_frame: usize,
    pub frames: usize,
    /// Commit frames from the bad one on (itself included).
    pub later_commits: usize,
}

fn word(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// The WAL checksum: over 32-bit words in the log's byte order, two at a time.
fn checksum(data: &[u8], big_endian: bool, mut s0: u32, mut s1: u32) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        s0 = s0
            .wrapping_add(word(&pair[0..4], big_endian))
            .wrapping_add(s1);
        s1 = s1
            .wrapping_add(word(&pair[4..8], big_endian))
            .wrapping_add(s0);
    }
    (s0, s1)
}

/// Checks the WAL bytes. A log with no valid header holds nothing SQLite would read (it is
/// reset on open), so it is not damage.
pub fn check_bytes(wal: &[u8]) -> Result<WalReport, WalDamage> {
    let empty = WalReport {
        valid_frames: 0,
        commits: 0,
    };
    if wal.len() < HEADER {
        return Ok(empty);
    }
    let magic = u32::from_be_bytes([wal[0], wal[1], wal[2], wal[3]]);
    let big_endian = match magic {
        MAGIC_LE => false,
        MAGIC_BE => true,
        _ => return Ok(empty),
    };
    let be = |at: usize| u32::from_be_bytes([wal[at], wal[at + 1], wal[at + 2], wal[at + 3]]);
    let page_size = match be(8) {
        1 => 65_536,
        n if (512..=32_768).contains(&n) && n.is_power_of_two() => n as usize,
        _ => return Ok(empty),
    };
    let (salt1, salt2) = (be(16), be(20));
    let (mut s0, mut s1) = checksum(&wal[..24], big_endian, 0, 0);
    if (s0, s1) != (be(24), be(28)) {
        return Ok(empty);
    }
    let frame_len = FRAME_HEADER + page_size;
    let frames = (wal.len() - HEADER) / frame_len;
    let mut report = empty;
    let mut bad = None;
    for i in 0..frames {
        let at = HEADER + i * frame_len;
        let f = &wal[at..at + frame_len];
        let salts_match = (be(at + 8), be(at + 12)) == (salt1, salt2);
        let commit = be(at + 4) != 0;
        match bad {
            None => {
                if !salts_match {
                    // Frames of an earlier log, left behind a restart: the end of this one.
                    break;
                }
                let (c0, c1) = checksum(&f[..8], big_endian, s0, s1);
                let (c0, c1) = checksum(&f[FRAME_HEADER..], big_endian, c0, c1);
                if (c0, c1) != (be(at + 16), be(at + 20)) {
                    // A bad commit frame counts: a commit after it proves its own was
                    // acknowledged.
                    bad = Some((i + 1, usize::from(commit)));
                    continue;
                }
                (s0, s1) = (c0, c1);
                report.valid_frames += 1;
                if commit {
                    report.commits += 1;
                }
            }
            Some((_, ref mut later)) => {
                if salts_match && commit {
                    *later += 1;
                }
            }
        }
    }
    match bad {
        // One commit from the bad frame on may be the torn transaction's own; a second
        // proves damage.
        Some((bad_frame, later_commits)) if later_commits >= 2 => Err(WalDamage {
            bad_frame,
            frames,
            later_commits,
        }),
        _ => Ok(report),
    }
}

/// Checks the WAL file at `path`; a missing file is an empty log.
pub fn check(path: &Path) -> Result<Result<WalReport, WalDamage>, std::io::Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(check_bytes(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ok(WalReport {
            valid_frames: 0,
            commits: 0,
        })),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real WAL: a database in WAL mode that is never checkpointed, with `commits`
    /// one-row transactions, then, with `last_row`, one more of a row that long (several
    /// pages); returns the WAL's bytes.
    fn wal_of(commits: usize, last_row: Option<usize>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        let rows = (0..commits)
            .map(|i| format!("row {i}"))
            .chain(last_row.map(|len| "x".repeat(len)));
        for row in rows {
            conn.execute("INSERT INTO t VALUES (?1)", [row]).unwrap();
        }
        let wal = std::fs::read(dir.path().join("db.sqlite-wal")).unwrap();
        std::mem::forget(conn); // keep the WAL as it is: no checkpoint at close
        wal
    }

    fn real_wal(commits: usize) -> Vec<u8> {
        wal_of(commits, None)
    }

    #[test]
    fn a_sound_wal_reads_to_its_end() {
        let wal = real_wal(20);
        let r = check_bytes(&wal).unwrap();
        assert_eq!(r.commits, 21, "the table and 20 rows");
        assert!(r.valid_frames >= 21);
    }

    #[test]
    fn a_flipped_byte_before_later_commits_is_damage() {
        let mut wal = real_wal(20);
        let frame_len = (wal.len() - HEADER) / check_bytes(&wal).unwrap().valid_frames;
        // A byte inside the page of the third frame.
        wal[HEADER + 2 * frame_len + FRAME_HEADER + 100] ^= 0x40;
        let damage = check_bytes(&wal).unwrap_err();
        assert_eq!(damage.bad_frame, 3);
        assert!(damage.later_commits >= 10, "{damage:?}");
    }

    #[test]
    fn a_torn_last_transaction_is_not_damage() {
        let mut wal = real_wal(5);
        let frames = check_bytes(&wal).unwrap().valid_frames;
        let frame_len = (wal.len() - HEADER) / frames;
        let last = HEADER + (frames - 1) * frame_len;
        wal[last + FRAME_HEADER + 7] ^= 0xff;
        let r = check_bytes(&wal).unwrap();
        assert_eq!(r.valid_frames, frames - 1);
        // A torn frame inside the last transaction, its commit frame written: not damage.
        let mut torn = wal_of(5, Some(12_000));
        let r = check_bytes(&torn).unwrap();
        let first_of_last = HEADER + (r.valid_frames - 3) * frame_len;
        torn[first_of_last + FRAME_HEADER + 9] ^= 0xff;
        assert!(
            check_bytes(&torn).is_ok(),
            "one commit after the torn frame may be its own"
        );
        // A damaged commit frame followed by one more commit: the first was acknowledged.
        let mut flipped_commit = real_wal(5);
        let third_last = HEADER + (frames - 2) * frame_len;
        flipped_commit[third_last + FRAME_HEADER + 3] ^= 0x10;
        assert!(
            check_bytes(&flipped_commit).is_err(),
            "its own commit and the next make two"
        );
        // And a log cut mid-frame reads as far as its whole frames.
        let cut = &wal[..wal.len() - 100];
        assert!(check_bytes(cut).is_ok());
    }

    #[test]
    fn no_header_or_garbage_is_an_empty_log() {
        assert_eq!(check_bytes(&[]).unwrap().valid_frames, 0);
        assert_eq!(check_bytes(&[0u8; 4096]).unwrap().valid_frames, 0);
        let mut wal = real_wal(3);
        wal[24] ^= 1; // the header's own checksum
        assert_eq!(check_bytes(&wal).unwrap().valid_frames, 0);
    }
}
