//! `scanpay run` as a process against `scanpay sandbox` as a process: killed with SIGKILL (or
//! aborted at an exact step by a failpoint) mid-sale, restarted, and checked: every attempt
//! final, the sandbox's ledger equal to the journal (money taken iff `paid`), no double
//! charge, `PRAGMA integrity_check` ok. Also SIGTERM, systemd notifications (and a
//! notification socket nobody reads), and an outage of the gateway while a payment is in doubt.

use crate::common;

use std::time::{Duration, Instant};

use common::procs::{Daemon, SandboxProc, assert_journal_and_ledger_agree, scanpay, wait_for};

use scanpay::journal::Journal;
use scanpay::state::SaleState;
use serde_json::Value;

fn no_open_attempts(j: &Journal) -> bool {
    j.open_attempts().map(|a| a.is_empty()).unwrap_or(false)
        && !j.sales(&Default::default()).unwrap_or_default().is_empty()
}

/// Kills the daemon at one step of a sale, restarts it, and returns the final sale states.
fn crash_and_recover(
    code: &str,
    failpoint: Option<&str>,
    kill_after: Option<Duration>,
) -> (Vec<SaleState>, Vec<(String, i64)>) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let mut daemon = Daemon::start(&config, failpoint);
    daemon.feed(&format!("10.00\n{code}\n"));
    match kill_after {
        Some(after) => {
            std::thread::sleep(after);
            daemon.kill9();
        }
        None => {
            let status = daemon.wait(Duration::from_secs(20));
            assert!(!status.success(), "the failpoint aborted the daemon");
        }
    }
    {
        let j = Journal::open_read_only(&sandbox.journal()).unwrap();
        assert_eq!(
            j.open_attempts().unwrap().len(),
            1,
            "the crash left the attempt open"
        );
    }
    // Restart: it finishes the attempt without help.
    let mut daemon = Daemon::start(&config, None);
    wait_for(
        &sandbox.journal(),
        Duration::from_secs(30),
        "the attempt to end",
        no_open_attempts,
    );
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    (
        assert_journal_and_ledger_agree(&sandbox.journal(), &ledger),
        ledger,
    )
}

#[test]
fn killed_after_the_row_is_written_and_before_the_request_is_sent() {
    let (states, ledger) = crash_and_recover("286000000000000000", Some("before_send"), None);
    // The cancel finds no such payment: never created, nobody charged.
    assert_eq!(
        states,
        [SaleState::Failed],
        "never sent: not created, nobody charged"
    );
    assert!(ledger.iter().all(|(_, net)| *net == 0));
}

#[test]
fn killed_while_the_pay_request_is_in_flight() {
    // Code 06: charged at once, answered after 20 s; the daemon dies while it waits.
    let (states, _) = crash_and_recover(
        "286000000000000006",
        None,
        Some(Duration::from_millis(1500)),
    );
    assert_eq!(
        states,
        [SaleState::Paid],
        "the charge is found by inquiry after the restart"
    );
}

#[test]
fn killed_after_the_answer_and_before_it_is_journaled() {
    let (states, _) = crash_and_recover("286000000000000000", Some("after_pay_answer"), None);
    assert_eq!(states, [SaleState::Paid]);
}

#[test]
fn killed_while_inquiring() {
    // Code 04: the customer never confirms; the daemon dies while inquiring.
    let (states, ledger) = crash_and_recover(
        "286000000000000004",
        None,
        Some(Duration::from_millis(2500)),
    );
    assert_eq!(states, [SaleState::Cancelled]);
    assert!(ledger.iter().all(|(_, net)| *net == 0));
}

#[test]
fn killed_while_cancelling() {
    let (states, ledger) = crash_and_recover("286000000000000004", Some("before_cancel"), None);
    assert_eq!(states, [SaleState::Cancelled]);
    assert!(ledger.iter().all(|(_, net)| *net == 0));
}

#[test]
fn every_in_doubt_code_ends_as_documented_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let mut daemon = Daemon::start(&sandbox.config(), None);
    let codes = [
        ("06", "paid"),
        ("07", "paid"),
        ("04", "cancelled"),
        ("05", "paid"),
        ("03", "paid"),
        ("08", "paid"),
    ];
    // Three payments in doubt with their answers lost make the gateway "not answering" and
    // the next sale is refused (docs/gateways.md): the third lost answer (08) waits until
    // the first two (06, 07) are resolved, the others are taken while those are in doubt.
    let stdout = daemon.stdout.clone();
    let finished = |endings: &[&str]| {
        let out = stdout.lock().unwrap();
        endings
            .iter()
            .all(|e| out.iter().any(|l| l.contains(&format!("01{e}\""))))
    };
    for (ending, _) in codes {
        if ending == "08" {
            let end = Instant::now() + Duration::from_secs(30);
            while !finished(&["06", "07"]) {
                assert!(
                    Instant::now() < end,
                    "06 and 07 never finished:\n{}",
                    daemon.stderr()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        daemon.feed(&format!("10.00\n2860000000000001{ending}\n"));
    }
    let end = Instant::now() + Duration::from_secs(60);
    while daemon.stdout.lock().unwrap().len() < codes.len() {
        assert!(
            Instant::now() < end,
            "not every sale finished:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines: Vec<Value> = daemon
        .stdout
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Sales in doubt are the watchdog's: they finish in their own time, not in input order.
    for (ending, state) in codes {
        let tail = format!("01{ending}");
        let line = lines
            .iter()
            .find(|l| {
                l["attempts"][0]["code"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&tail))
            })
            .unwrap_or_else(|| panic!("no sale for code {ending}"));
        assert_eq!(line["state"], state, "code {ending}: {line}");
    }
    assert!(daemon.terminate().success());
    assert_journal_and_ledger_agree(&sandbox.journal(), &sandbox.ledger());
}

#[test]
fn sigterm_stops_cleanly_and_systemd_hears_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cmd = scanpay();
    cmd.args(["run", "--config"])
        .arg(sandbox.config())
        .env("NOTIFY_SOCKET", &socket_path);
    let mut daemon = Daemon::spawn(cmd);
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap();
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready}");
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let mut seen = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        if seen.last().is_some_and(|s| s == "STOPPING=1") {
            break;
        }
    }
    assert!(seen.iter().any(|s| s == "STOPPING=1"), "{seen:?}");
}

#[test]
fn a_notify_socket_nobody_reads_never_holds_up_a_sale() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let socket_path = dir.path().join("notify.sock");
    // Bound, never read, and filled before the daemon starts: every notification it sends
    // finds the queue full, as with a supervisor that is stuck.
    let _socket = UnixDatagram::bind(&socket_path).unwrap();
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let full = loop {
        if let Err(e) = filler.send_to(b"STATUS=filler", &socket_path) {
            break e;
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::WouldBlock, "{full}");
    let mut cmd = scanpay();
    cmd.args(["run", "--stdin", "--config"])
        .arg(sandbox.config())
        .env("NOTIFY_SOCKET", &socket_path)
        // Watchdog pings too, each housekeeping round.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID");
    let mut daemon = Daemon::spawn(cmd);
    let started = Instant::now();
    while !daemon.stderr().contains("scanpay running") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon did not start:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = |daemon: &Daemon| daemon.stdout.lock().unwrap().len();
    let sales = 30;
    for i in 0..sales {
        let before = finished(&daemon);
        let scanned = Instant::now();
        daemon.feed(&format!("10.00\n28600000000003{i:02}00\n"));
        while finished(&daemon) == before {
            assert!(
                scanned.elapsed() < Duration::from_secs(2),
                "sale {i} not finished within 2 s of its scan:\n{}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let line: Value =
            serde_json::from_str(daemon.stdout.lock().unwrap().last().unwrap()).unwrap();
        assert_eq!(line["state"], "paid", "sale {i}: {line}");
    }
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let stderr = daemon.stderr();
    assert_eq!(
        stderr
            .matches("notification socket is not being read")
            .count(),
        1,
        "one warning for the full queue:\n{stderr}"
    );
    let states = assert_journal_and_ledger_agree(&sandbox.journal(), &sandbox.ledger());
    assert_eq!(states, vec![SaleState::Paid; sales]);
}

#[test]
fn an_outage_while_in_doubt_ends_cancelled_once_the_gateway_is_back_and_new_sales_are_refused_meanwhile()
 {
    let dir = tempfile::tempdir().unwrap();
    let sbx_dir = dir.path().join("sbx");
    let mut sandbox = SandboxProc::start(&sbx_dir, 0);
    let port = sandbox.port;
    let config = sandbox.config();
    let mut daemon = Daemon::start(&config, None);
    daemon.feed("10.00\n286000000000000004\n");
    wait_for(
        &sandbox.journal(),
        Duration::from_secs(10),
        "the pay request",
        |j| {
            j.open_attempts()
                .map(|a| a.iter().any(|a| a.inquiries > 0))
                .unwrap_or(false)
        },
    );
    sandbox.stop();
    // Offline is noticed, and a new sale is refused before any code is used.
    std::thread::sleep(Duration::from_secs(2));
    daemon.feed("1.00\n");
    let end = Instant::now() + Duration::from_secs(10);
    while !daemon.stderr().contains("offline") {
        assert!(
            Instant::now() < end,
            "no offline refusal:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = scanpay()
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["gateway"]["state"], "offline", "{status}");
    assert_eq!(status["in_doubt"], 1);
    // Past the deadline, cancels fail until the gateway comes back on the same address.
    std::thread::sleep(Duration::from_secs(6));
    let sandbox = SandboxProc::start(&sbx_dir, port);
    wait_for(
        &sandbox.journal(),
        Duration::from_secs(60),
        "the cancel",
        no_open_attempts,
    );
    assert!(daemon.terminate().success());
    let states = assert_journal_and_ledger_agree(&sandbox.journal(), &sandbox.ledger());
    // The restarted sandbox keeps no memory of the trade: its cancel answers "no such
    // payment", and the attempt ends not created, not charged.
    assert_eq!(states, [SaleState::Failed]);
}

#[test]
fn a_second_daemon_on_the_same_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let mut first = Daemon::start(&config, None);
    wait_for(
        &sandbox.journal(),
        Duration::from_secs(10),
        "the journal",
        |_| true,
    );
    let second = scanpay()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another scanpay process"));
    assert!(first.terminate().success());
}

#[test]
fn a_sale_still_waiting_when_stdin_ends_expires_and_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let mut daemon = Daemon::start(&sandbox.config(), None);
    daemon.feed("-5\n2.00\n286000000000000000\n3.00\n");
    daemon.stdin = None; // end of input
    let status = daemon.wait(Duration::from_secs(20));
    assert!(status.success(), "{}", daemon.stderr());
    let lines: Vec<Value> = daemon
        .stdout
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["amount"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("2.00", "paid"), ("3.00", "expired")], "{lines:?}");
    assert_eq!(
        lines[1]["message"], "input ended before a payment code was scanned",
        "{}",
        lines[1]
    );
    assert!(
        daemon
            .stderr()
            .contains("sale refused: the amount -5 is not above zero"),
        "{}",
        daemon.stderr()
    );
}
