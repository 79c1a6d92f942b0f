//! The journal never silently forgets: a charged payment whose answer was never journaled
//! (the process died right after the gateway answered) lives in the WAL, and every common
//! way of damaging the journal's files makes `scanpay run` refuse to start (exit 2, naming
//! the file and the way back) instead of starting a new journal. Putting the files back, or
//! restoring a backup, finds the payment again.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::procs::{SandboxProc, assert_journal_and_ledger_agree, scanpay};
use scanpay::journal::Journal;
use scanpay::state::{AttemptState, SaleState};

struct Till {
    _dir: tempfile::TempDir,
    sandbox: SandboxProc,
    config: PathBuf,
    journal: PathBuf,
}

fn charge(config: &Path, code: &str, failpoint: Option<&str>) -> Output {
    let mut cmd = scanpay();
    cmd.arg("charge")
        .arg("--config")
        .arg(config)
        .args(["--amount", "8.00", "--code", code]);
    if let Some(f) = failpoint {
        cmd.env("SCANPAY_FAILPOINT", f);
    }
    cmd.output().unwrap()
}

fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sandbox till whose last payment went through at the gateway, but the process died
/// before journaling the answer: its attempt is `pending`, in the WAL.
fn till_with_a_payment_in_doubt() -> Till {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let journal = sandbox.journal();
    let first = charge(&config, "286000000000000600", None);
    assert_eq!(first.status.code(), Some(0));
    let died = charge(&config, "286000000000000700", Some("after_pay_answer"));
    assert_ne!(died.status.code(), Some(0), "the failpoint aborts");
    let wal = std::fs::metadata(format!("{}-wal", journal.display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(wal > 0, "the payment in doubt is in the WAL");
    Till {
        _dir: dir,
        sandbox,
        config,
        journal,
    }
}

fn files(journal: &Path) -> Vec<PathBuf> {
    vec![
        journal.to_path_buf(),
        PathBuf::from(format!("{}-wal", journal.display())),
        PathBuf::from(format!("{}-shm", journal.display())),
        journal.with_extension("identity"),
    ]
}

fn save(journal: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in files(journal) {
        if f.exists() {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn put_back(journal: &Path, from: &Path) {
    for f in files(journal) {
        let _ = std::fs::remove_file(&f);
        let saved = from.join(f.file_name().unwrap());
        if saved.exists() {
            std::fs::copy(&saved, &f).unwrap();
        }
    }
}

/// `scanpay run` on the till's config; it must exit by itself within the limit.
fn run_daemon(config: &Path) -> (Option<i32>, String) {
    let mut child = scanpay()
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return (
                None,
                "did not exit: it started on the damaged journal".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sale in doubt is found and finished: paid, as the gateway charged it.
fn assert_payment_found(till: &Till) {
    let out = charge(&till.config, "286000000000000800", None);
    assert_ok(&out);
    let j = Journal::open_read_only(&till.journal).unwrap();
    let paid: Vec<_> = j
        .sales(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|s| s.state == SaleState::Paid)
        .collect();
    assert_eq!(paid.len(), 3, "the payment in doubt was found and finished");
    assert!(j.open_attempts().unwrap().is_empty());
    assert_journal_and_ledger_agree(&till.journal, &till.sandbox.ledger());
}

fn checkpoint(journal: &Path) {
    let conn = rusqlite::Connection::open(journal).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

#[test]
fn every_common_damage_refuses_to_start_and_putting_the_files_back_finds_the_payment() {
    let till = till_with_a_payment_in_doubt();
    let saved = till.journal.parent().unwrap().join("saved");
    save(&till.journal, &saved);
    let j = till.journal.clone();
    let wal = PathBuf::from(format!("{}-wal", j.display()));
    // Each damage acts on the journal and its WAL; the message must name the one given.
    type Damage = fn(&Path, &Path);
    let damages: [(&str, Damage, &Path); 6] = [
        (
            "journal truncated to 0 bytes, WAL kept",
            |j, _| std::fs::write(j, b"").unwrap(),
            &j,
        ),
        (
            "journal deleted, WAL kept",
            |j, _| std::fs::remove_file(j).unwrap(),
            &j,
        ),
        (
            "every journal file deleted",
            |j, _| {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", j.display()));
                }
            },
            &j,
        ),
        (
            "only the WAL deleted",
            |_, w| std::fs::remove_file(w).unwrap(),
            &j,
        ),
        (
            "bytes flipped in the WAL",
            |_, w| {
                let mut bytes = std::fs::read(w).unwrap();
                let at = 32 + 24 + 100 + 2 * (24 + 4096);
                bytes[at] ^= 0x5a;
                bytes[at + 1] ^= 0xa5;
                std::fs::write(w, bytes).unwrap();
            },
            &wal,
        ),
        (
            "checkpointed, then truncated to 0 bytes",
            |j, _| {
                checkpoint(j);
                std::fs::write(j, b"").unwrap();
            },
            &j,
        ),
    ];
    for (what, damage, named) in damages {
        put_back(&till.journal, &saved);
        damage(&j, &wal);
        let (code, stderr) = run_daemon(&till.config);
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&named.display().to_string()),
            "{what}: the message names {}:\n{stderr}",
            named.display()
        );
        assert!(
            stderr.contains("scanpay journal restore") && stderr.contains("journal init --force"),
            "{what}: the message names the way back:\n{stderr}"
        );
        let verify = scanpay()
            .args(["journal", "verify", "--journal"])
            .arg(&till.journal)
            .output()
            .unwrap();
        assert_eq!(verify.status.code(), Some(2), "{what}: verify agrees");
    }
    // The operator puts the files back: the charged payment is found, nothing is lost.
    put_back(&till.journal, &saved);
    let verify = scanpay()
        .args(["journal", "verify", "--journal"])
        .arg(&till.journal)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_payment_found(&till);
}

#[test]
fn a_backup_taken_while_a_sale_is_in_doubt_restores_into_a_fresh_directory_and_resolves_it() {
    let till = till_with_a_payment_in_doubt();
    let dest = till.journal.parent().unwrap().join("backup.sqlite");
    let out = scanpay()
        .args(["journal", "backup", "--config"])
        .arg(&till.config)
        .arg(&dest)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 payment(s) in doubt") && stdout.contains("verified"),
        "{stdout}"
    );
    // A fresh directory, as on a replacement box.
    let fresh = tempfile::tempdir().unwrap();
    let journal = fresh.path().join("journal.sqlite");
    let text = std::fs::read_to_string(&till.config).unwrap().replace(
        "path = \"journal.sqlite\"",
        &format!("path = \"{}\"", journal.display()),
    );
    let config = till.journal.parent().unwrap().join("fresh.toml");
    std::fs::write(&config, text).unwrap();
    let out = scanpay()
        .args(["journal", "restore", "--config"])
        .arg(&config)
        .arg(&dest)
        .output()
        .unwrap();
    assert_ok(&out);
    let before = Journal::open_read_only(&journal).unwrap();
    assert_eq!(
        before.open_attempts().unwrap().len(),
        1,
        "restored in doubt"
    );
    drop(before);
    let out = charge(&config, "286000000000000900", None);
    assert_ok(&out);
    let j = Journal::open_read_only(&journal).unwrap();
    assert!(
        j.open_attempts().unwrap().is_empty(),
        "resolved after restart"
    );
    let states: Vec<AttemptState> = j
        .sales(&Default::default())
        .unwrap()
        .iter()
        .flat_map(|s| j.attempts(&s.id).unwrap())
        .map(|a| a.state)
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == AttemptState::Succeeded)
            .count(),
        3
    );
    assert_journal_and_ledger_agree(&journal, &till.sandbox.ledger());
}

#[test]
fn an_older_backup_is_refused_unless_forced_and_then_says_what_may_have_moved() {
    let till = till_with_a_payment_in_doubt();
    let dest = till.journal.parent().unwrap().join("old.sqlite");
    let out = scanpay()
        .args(["journal", "backup", "--config"])
        .arg(&till.config)
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // A payment after the backup.
    let later = charge(&till.config, "286000000000001000", None);
    assert_eq!(later.status.code(), Some(0));
    let restore = |force: bool| {
        let mut cmd = scanpay();
        cmd.args(["journal", "restore", "--config"])
            .arg(&till.config)
            .arg(&dest);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let refused = restore(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("older") && stderr.contains("--force"),
        "{stderr}"
    );
    let forced = restore(true);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(stdout.contains("may have moved money"), "{stdout}");
    assert!(stdout.contains("scanpay reconcile --date"), "{stdout}");
    // The journal that was there is kept, archived beside it.
    let archived = std::fs::read_dir(till.journal.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("-archived-"));
    assert!(archived);
}

#[test]
fn init_refuses_an_existing_journal_and_with_force_archives_it() {
    let till = till_with_a_payment_in_doubt();
    let init = |force: bool| {
        let mut cmd = scanpay();
        cmd.args(["journal", "init", "--journal"])
            .arg(&till.journal);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let refused = init(false);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let forced = init(true);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(
        stdout.contains("archived") && stdout.contains("0 sale(s)"),
        "{stdout}"
    );
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("archived the journal's files into "))
        .unwrap();
    let archived = Path::new(dir).join("journal.sqlite");
    let old = Journal::open_read_only(&archived).unwrap();
    assert_eq!(
        old.open_attempts().unwrap().len(),
        1,
        "the payment in doubt is kept there"
    );
    drop(old);
    // Put back from the archive, whose WAL holds the payment in doubt: it comes along.
    let back = scanpay()
        .args(["journal", "restore", "--force", "--journal"])
        .arg(&till.journal)
        .arg(&archived)
        .output()
        .unwrap();
    assert_ok(&back);
    let restored = Journal::open_read_only(&till.journal).unwrap();
    assert_eq!(
        restored.open_attempts().unwrap().len(),
        1,
        "the WAL's contents came along"
    );
}

/// A small tmpfs of our own, unmounted on drop; `None` where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_start_serves_health_and_takes_a_sale_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "4m") else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs (needs root)");
        return;
    };
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let journal = disk.0.join("journal.sqlite");
    let socket = dir.path().join("api.sock");
    let text = std::fs::read_to_string(sandbox.config()).unwrap().replace(
        "path = \"journal.sqlite\"",
        &format!("path = \"{}\"", journal.display()),
    ) + &format!("\n[api]\nsocket = \"{}\"\n", socket.display());
    let config = sandbox.dir.join("full.toml");
    std::fs::write(&config, text).unwrap();
    assert_eq!(
        charge(&config, "286000000000001100", None).status.code(),
        Some(0)
    );
    let filler = fill(&disk.0);
    let mut daemon = common::procs::Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < end, "no API:\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, health) = common::call(&socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(st, 503, "{health}");
    assert_eq!(health["reasons"][0], "journal_unwritable", "{health}");
    let sale = r#"{"amount":"3.00","currency":"CNY"}"#;
    let (st, refused) = common::call(&socket, "POST", "/v1/sales", &[], sale).await;
    assert_eq!(st, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "journal_unwritable");
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    // Space returns: the daemon takes sales again by itself, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let created = loop {
        let (st, body) = common::call(&socket, "POST", "/v1/sales", &[], sale).await;
        if st == 201 {
            break body;
        }
        assert!(Instant::now() < end, "{st} {body}\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.feed("286000000000001200\n");
    let id = created["sale_id"].as_str().unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, s) = common::call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        if s["state"] == "paid" {
            break;
        }
        assert!(Instant::now() < end, "{s}\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = daemon.terminate();
}
