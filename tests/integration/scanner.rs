//! A serial scanner end to end: a real pty pair stands in for the scanner's serial port
//! (the daemon opens the slave through a symlink, as it would a udev symlink), the test
//! writes what a scanner sends to the master. Scan → paid against the sandbox; unplug (the
//! pty goes away) and replug (a new pty behind the same symlink) without a restart.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::call;
use common::procs::{Daemon, SandboxProc};
use serde_json::Value;
use serialport::{SerialPort, TTYPort};

/// A new pty; the symlink points at its slave. The slave handle is closed so the daemon can
/// open the port exclusively; the master is what the "scanner" writes to.
pub(crate) fn plug(link: &Path) -> TTYPort {
    let (master, slave) = TTYPort::pair().expect("a pty pair");
    // Not inherited by the daemon started later, or it would hold the line up itself.
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        use std::os::fd::{AsRawFd, BorrowedFd};
        // SAFETY: the descriptor belongs to `master`, alive for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(master.as_raw_fd()) };
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
    }
    let slave_path = slave.name().expect("the slave's path");
    drop(slave);
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave_path, link).unwrap();
    master
}

async fn scanner_state(socket: &Path) -> Value {
    let (_, health) = call(socket, "GET", "/v1/health", &[], "").await;
    health["scanners"][0].clone()
}

async fn wait_until(what: &str, daemon: &Daemon, mut done: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sell_and_scan(
    socket: &Path,
    daemon: &Daemon,
    master: &mut TTYPort,
    amount: &str,
    bytes: &[u8],
) -> Value {
    let body = format!(r#"{{"amount":"{amount}","currency":"CNY"}}"#);
    let (status, sale) = call(socket, "POST", "/v1/sales", &[], &body).await;
    assert_eq!(status, 201, "{sale}");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    master.write_all(bytes).unwrap();
    master.flush().unwrap();
    let mut last = Value::Null;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let (_, s) = call(socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        if s["state"] != "awaiting_scan" && s["state"] != "processing" {
            return s;
        }
        last = s;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sale never ended: {last}\n{}", daemon.stderr());
}

/// A sandbox, a daemon with the API and one serial scanner on a pty, the scanner connected.
struct Rig {
    dir: tempfile::TempDir,
    sandbox: SandboxProc,
    link: PathBuf,
    master: TTYPort,
    socket: PathBuf,
    daemon: Daemon,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let link: PathBuf = dir.path().join("scanner-front");
    let master = plug(&link);
    let config = sandbox.config();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[api]\nsocket = \"api.sock\"\n\n[[scanner]]\nname = \"front\"\nkind = \"serial\"\npath = \"{}\"\nbaud = 9600\n",
            link.display()
        );
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let daemon = Daemon::start(&config, None);
    wait_until("the scanner", &daemon, async || {
        tokio::net::UnixStream::connect(&socket).await.is_ok()
            && scanner_state(&socket).await["connected"] == true
    })
    .await;
    Rig {
        dir,
        sandbox,
        link,
        master,
        socket,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_scan_pays_and_the_scanner_survives_unplug_and_replug() {
    let Rig {
        dir: _dir,
        sandbox,
        link,
        mut master,
        socket,
        mut daemon,
    } = rig().await;

    // The scanner sends the code with CR LF after a sale is armed: paid.
    let sale = sell_and_scan(
        &socket,
        &daemon,
        &mut master,
        "12.50",
        b"286000000000000000\r\n",
    )
    .await;
    assert_eq!(sale["state"], "paid", "{sale}");

    // Split across writes, with an AIM prefix: still one scan.
    let (_, s) = call(
        &socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"1.00","currency":"CNY"}"#,
    )
    .await;
    let id = s["sale_id"].as_str().unwrap().to_string();
    for chunk in [&b"]Q1286000"[..], b"00000000", b"0100\r", b"\n"] {
        master.write_all(chunk).unwrap();
        master.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    wait_until("the split scan", &daemon, async || {
        call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "")
            .await
            .1["state"]
            == "paid"
    })
    .await;

    // Unplug: the pty goes away. The daemon reports it and keeps running.
    drop(master);
    wait_until("the unplug", &daemon, async || {
        scanner_state(&socket).await["connected"] == false
    })
    .await;
    let (status, health) = call(&socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(status, 200, "{health}");

    // Replug: a new port behind the same symlink; no restart.
    let mut master = plug(&link);
    wait_until("the replug", &daemon, async || {
        scanner_state(&socket).await["connected"] == true
    })
    .await;
    let sale = sell_and_scan(
        &socket,
        &daemon,
        &mut master,
        "3.00",
        b"286000000000000200\r\n",
    )
    .await;
    assert_eq!(sale["state"], "paid", "{sale}");

    // Garbage and a product barcode never reach the gateway; the sale keeps waiting.
    let (_, s) = call(
        &socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"2.00","currency":"CNY"}"#,
    )
    .await;
    let id = s["sale_id"].as_str().unwrap().to_string();
    master.write_all(&[0xff, 0x00, 0x1b, b'\r', b'\n']).unwrap();
    master.write_all(&vec![b'9'; 5000]).unwrap();
    master.write_all(b"\r\n4006381333931\r\n").unwrap();
    master.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, s) = call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!(s["state"], "awaiting_scan", "{s}");
    assert!(s["attempts"].as_array().unwrap().is_empty());

    // A double trigger (the same code twice within a second) is charged once.
    master
        .write_all(b"286000000000000300\r\n286000000000000300\r\n")
        .unwrap();
    master.flush().unwrap();
    wait_until("the sale", &daemon, async || {
        call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "")
            .await
            .1["state"]
            == "paid"
    })
    .await;
    let (_, s) = call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!(s["attempts"].as_array().unwrap().len(), 1, "{s}");

    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    let total: i64 = ledger.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1250 + 100 + 300 + 200, "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_scanned_while_a_payment_is_charged_is_never_charged_later() {
    let Rig {
        dir: _dir,
        sandbox,
        link: _,
        mut master,
        socket,
        mut daemon,
    } = rig().await;

    // The customer never confirms: the attempt is inquired, then cancelled, and the sale
    // waits for another scan. A second code scanned meanwhile must not be charged to it
    // once the first attempt ends.
    let (status, sale) = call(
        &socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"4.00","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    master.write_all(b"286000000000000404\r\n").unwrap();
    master.flush().unwrap();
    wait_until("the first attempt", &daemon, async || {
        call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "")
            .await
            .1["state"]
            == "processing"
    })
    .await;
    master.write_all(b"286000000000000500\r\n").unwrap();
    master.flush().unwrap();
    wait_until("the first attempt to end", &daemon, async || {
        call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "")
            .await
            .1["state"]
            != "processing"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, s) = call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!(s["attempts"].as_array().unwrap().len(), 1, "{s}");
    assert_ne!(s["state"], "paid", "{s}");
    // Refused while queued behind the charge, or (when the charge was already handed to
    // the watchdog) as overlapping the attempt in flight: never charged either way.
    assert!(
        daemon.stderr().contains("scan refused"),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    assert!(ledger.iter().all(|(_, net)| *net == 0), "{ledger:?}");
}
