//! Outputs through the binary: a file printer and a temp directory standing in for
//! `/sys/class/leds`, a TCP printer that answers the paper-status query, a stalled printer
//! (a FIFO nobody reads) that must not delay sales, reprint, and the day report.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::led_dir;
use common::procs::{Daemon, scanpay};
use serde_json::Value;

fn config(dir: &Path, printer: &str) -> PathBuf {
    let leds = format!(
        "[led]\nkind = \"sysfs\"\ngreen = \"{}\"\nred = \"{}\"\nyellow = \"{}\"\n",
        led_dir(dir, "green").display(),
        led_dir(dir, "red").display(),
        led_dir(dir, "yellow").display()
    );
    let text = format!(
        "[terminal]\nid = \"T0001\"\ncurrency = \"CNY\"\nmax_amount = \"5000.00\"\ntime_zone = \"Asia/Shanghai\"\n\n[gateway]\nkind = \"sandbox\"\n\n[journal]\npath = \"journal.sqlite\"\n\n{leds}\n{printer}\n[receipt]\nstore_name = \"扫码小店\"\nfooter = [\"谢谢惠顾\"]\n"
    );
    let path = dir.join("scanpay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn charge(config: &Path, amount: &str, code: &str) -> Value {
    let out = scanpay()
        .args(["charge", "--config"])
        .arg(config)
        .args(["--amount", amount, "--code", code])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_paid_sale_leaves_a_receipt_and_lights_the_green_led() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt.bin");
    let config = config(
        dir.path(),
        &format!(
            "[printer]\nkind = \"file\"\npath = \"{}\"\n",
            receipt.display()
        ),
    );
    let sale = charge(&config, "12.50", "286000000000000000");
    assert_eq!(sale["state"], "paid");
    let bytes = std::fs::read(&receipt).unwrap();
    assert!(bytes.starts_with(&[0x1B, 0x40]), "ESC @");
    assert!(contains(&bytes, b"12.50 CNY"));
    let trade = sale["attempts"][0]["gateway_trade_id"].as_str().unwrap();
    assert!(
        contains(
            &bytes,
            &[&[0x31, 0x50, 0x30][..], trade.as_bytes()].concat()
        ),
        "QR of the trade number"
    );
    assert!(bytes.ends_with(&[0x1D, 0x56, 0x42, 0x03]), "cut");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("green/brightness")).unwrap(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("red/brightness")).unwrap(),
        "0"
    );

    // A sale that is not paid prints nothing and lights red.
    let failed = charge(&config, "1.00", "286000000000000101");
    assert_eq!(failed["state"], "failed");
    assert_eq!(std::fs::read(&receipt).unwrap().len(), bytes.len());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("red/brightness")).unwrap(),
        "1"
    );

    // Reprint appends the same receipt again.
    let sale_id = sale["sale_id"].as_str().unwrap();
    let status = scanpay()
        .args(["reprint", "--config"])
        .arg(&config)
        .arg(sale_id)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&receipt).unwrap().len(), bytes.len() * 2);

    // The day report sums what the journal holds.
    let out = scanpay()
        .args(["report", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let paid = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["state"] == "paid")
        .unwrap();
    assert_eq!(
        (paid["count"].as_u64(), paid["total"].as_str()),
        (Some(1), Some("12.50"))
    );
    let out = scanpay()
        .args(["report", "--print", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(contains(&std::fs::read(&receipt).unwrap(), b"Z-REPORT"));
}

#[test]
fn a_tcp_printer_gets_the_receipt_and_is_asked_for_paper() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let printer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the paper-status query arrives, then answer "paper out".
        while !got.ends_with(&[0x10, 0x04, 0x04]) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the status query");
            got.extend_from_slice(&buf[..n]);
        }
        use std::io::Write;
        s.write_all(&[0x72]).unwrap();
        got
    });
    let config = config(
        dir.path(),
        &format!("[printer]\nkind = \"tcp\"\naddress = \"{addr}\"\nwidth = 80\n"),
    );
    assert_eq!(
        charge(&config, "8.00", "286000000000000000")["state"],
        "paid"
    );
    let got = printer.join().unwrap();
    assert!(got.starts_with(&[0x1B, 0x40]) && contains(&got, b"8.00 CNY"));
    assert!(contains(&got, &[0x1D, 0x56, 0x42, 0x03]));
}

#[test]
fn a_stalled_printer_never_delays_a_sale() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("lp0");
    // A FIFO with no reader: opening it for writing blocks forever, like a hung printer.
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let config = config(
        dir.path(),
        &format!(
            "[printer]\nkind = \"file\"\npath = \"{}\"\n",
            fifo.display()
        ),
    );
    let mut daemon = Daemon::start(&config, None);
    for i in 0..5 {
        daemon.feed(&format!("1.00\n286000000000{i:04}00\n"));
    }
    let end = Instant::now() + Duration::from_secs(30);
    while daemon.stdout.lock().unwrap().len() < 5 {
        assert!(
            Instant::now() < end,
            "sales waited for the printer:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for line in daemon.stdout.lock().unwrap().iter() {
        let sale: Value = serde_json::from_str(line).unwrap();
        assert_eq!(sale["state"], "paid");
    }
    assert!(daemon.terminate().success());
}
