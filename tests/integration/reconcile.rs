//! `scanpay reconcile` end to end: a day of sales through `scanpay sandbox` (every sandbox
//! behaviour, a partial refund), the day's trade bill downloaded from it as a real zip of GBK
//! CSV, compared with the journal: no difference. Then a copy of the journal with one paid
//! sale's state altered: exactly that trade is reported. AMS through its report file.

use crate::common;

use std::path::Path;
use std::process::Stdio;

use common::procs::{SandboxProc, scanpay};
use serde_json::Value;

/// Charges `code` for `amount` through `scanpay charge`; returns the sale.
fn charge(config: &Path, amount: &str, code: &str) -> Value {
    let out = scanpay()
        .args(["charge", "--amount", amount, "--code", code, "--config"])
        .arg(config)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"))
}

fn reconcile(config: &Path, extra: &[&str]) -> (i32, Value) {
    let date = chrono::Utc::now()
        .with_timezone(&scanpay::clock::beijing())
        .format("%Y-%m-%d")
        .to_string();
    let out = scanpay()
        .args(["reconcile", "--format", "json", "--date", &date, "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

#[test]
fn a_day_of_sandbox_sales_reconciles_and_one_altered_sale_is_reported_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let mut paid = Vec::new();
    // Paid at once, and paid through each kind of doubt (05 unknown, 06 slow, 07 dropped,
    // 08 bad signature, 03 customer confirming); declined (01); never paid and cancelled (04).
    for (i, ending) in ["00", "05", "06", "07", "08", "03", "01", "04"]
        .iter()
        .enumerate()
    {
        let sale = charge(
            &config,
            &format!("{}.{ending}", 10 + i),
            &format!("2860000000004{i:03}{ending}"),
        );
        if sale["state"] == "paid" {
            paid.push(sale);
        }
    }
    assert_eq!(paid.len(), 6, "{paid:?}");
    let refunded = paid[0]["sale_id"].as_str().unwrap();
    let status = scanpay()
        .args(["refund", "--amount", "1.00", "--config"])
        .arg(&config)
        .arg(refunded)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (code, report) = reconcile(&config, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["differences"].as_array().unwrap().len(), 0);
    assert_eq!(
        report["provider_lines"], 7,
        "six payments and one refund: {report}"
    );
    let totals = &report["totals"][0];
    assert_eq!(totals["provider_paid"], totals["journal_paid"]);
    assert_eq!(totals["provider_refunded"], 100);
    assert_eq!(totals["journal_refunded"], 100);

    // A copy of the journal in which one paid sale lost its state.
    let copy = sandbox.dir.join("copy.sqlite");
    std::fs::copy(sandbox.journal(), &copy).unwrap();
    let victim = paid[3]["attempts"][0]["request_id"].as_str().unwrap();
    crate::common::procs::forget_payment(&copy, victim);
    let copy_config = sandbox.dir.join("copy.toml");
    std::fs::write(
        &copy_config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("journal.sqlite", "copy.sqlite"),
    )
    .unwrap();
    let (code, report) = reconcile(&copy_config, &[]);
    assert_eq!(code, 1, "{report}");
    let differences = report["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["kind"], "paid_only_at_provider");
    assert_eq!(differences[0]["request_id"], victim);
    assert_eq!(differences[0]["sale_id"], paid[3]["sale_id"]);

    // --fix refunds that one payment, journaled in the copy, and nothing else.
    let before = sandbox.ledger();
    let (code, fixed) = reconcile(&copy_config, &["--fix"]);
    assert_eq!(code, 1, "the day had a difference: {fixed}");
    let fixes = fixed["fixes"].as_array().unwrap();
    assert_eq!(fixes.len(), 1, "{fixed}");
    assert_eq!(fixes[0]["request_id"], victim);
    assert_eq!(fixes[0]["state"], "succeeded", "{fixed}");
    let after = sandbox.ledger();
    for ((id, net_before), (_, net_after)) in before.iter().zip(&after) {
        if id == victim {
            assert_eq!(*net_after, 0, "the kept money went back");
        } else {
            assert_eq!(net_before, net_after, "{id} untouched");
        }
    }
    // Run again: the bill now shows the refund, the day agrees, nothing more is refunded.
    let (code, again) = reconcile(&copy_config, &["--fix"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["fixes"].as_array().unwrap().len(), 0);
    assert_eq!(sandbox.ledger(), after);

    // The same bill as a file already downloaded gives the same answer.
    let date = chrono::Utc::now()
        .with_timezone(&scanpay::clock::beijing())
        .format("%Y-%m-%d");
    let zip = http_get(
        sandbox.port,
        &format!("/_sandbox/bill/{date}.zip?expires=99999999999"),
    );
    assert!(zip.starts_with(b"PK"), "a zip");
    let bill = sandbox.dir.join("bill.zip");
    std::fs::write(&bill, zip).unwrap();
    let (code, from_file) = reconcile(&copy_config, &["--file", bill.to_str().unwrap()]);
    assert_eq!(code, 0, "{from_file}");
    assert_eq!(from_file["totals"], again["totals"]);
    // An expired link is refused, as the provider's are after about 30 seconds.
    let expired = http_get(
        sandbox.port,
        &format!("/_sandbox/bill/{date}.zip?expires=1"),
    );
    assert!(!expired.starts_with(b"PK"));
}

/// The body of a plain HTTP GET to the sandbox.
fn http_get(port: u16, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    response.split_off(body_at)
}

#[test]
fn an_ams_report_file_reconciles_against_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config_from("scanpay-ams.toml");
    for (i, ending) in ["00", "07", "01"].iter().enumerate() {
        charge(
            &config,
            &format!("{}.50", 20 + i),
            &format!("2860000000005{i:03}{ending}"),
        );
    }
    // The report the merchant would receive, written from the provider's ledger.
    let mut report = String::from(
        "transactionId,paymentRequestId,paymentId,transactionType,transactionAmountValue,transactionAmountCurrency,transactionTime\n",
    );
    let mut n = 0;
    for (request_id, net) in sandbox.ledger() {
        if net > 0 {
            n += 1;
            report.push_str(&format!(
                "t{n},{request_id},p{n},PAYMENT,{net},USD,2026-11-22T10:00:00+08:00\n"
            ));
        }
    }
    assert_eq!(n, 2);
    let file = sandbox.dir.join("report.csv");
    std::fs::write(&file, &report).unwrap();
    let (code, result) = reconcile(&config, &["--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{result}");
    // A payment the journal never made is the dangerous difference.
    std::fs::write(
        &file,
        report + "t9,T0001_ghost,p9,PAYMENT,999,USD,2026-11-22T10:00:00+08:00\n",
    )
    .unwrap();
    let (code, result) = reconcile(&config, &["--file", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["differences"][0]["kind"], "paid_only_at_provider");
    assert_eq!(result["differences"][0]["request_id"], "T0001_ghost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reconciles_the_previous_day_and_health_shows_a_mismatch() {
    use common::procs::Daemon;
    use scanpay::journal::Journal;
    use scanpay::reconcile::LastRun;

    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[api]\nsocket = \"api.sock\"\n\n[reconcile]\ndaily_at = \"00:00\"\n";
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let yesterday = (chrono::Utc::now().with_timezone(&scanpay::clock::beijing())
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();

    // Past daily_at and nothing reconciled yet: the daemon does it at start.
    let mut daemon = Daemon::start(&config, None);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let health = loop {
        if let Ok(stream) = tokio::net::UnixStream::connect(&socket).await {
            drop(stream);
            let (_, health) = common::call(&socket, "GET", "/v1/health", &[], "").await;
            if !health["reconciliation"].is_null() {
                break health;
            }
        }
        assert!(std::time::Instant::now() < end, "{}", daemon.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        health["reconciliation"]["date"],
        yesterday.as_str(),
        "{health}"
    );
    assert_eq!(health["reconciliation"]["differences"], 0, "{health}");
    assert!(health["reconciliation"]["error"].is_null(), "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(daemon.terminate().success());

    // A day that did not match: health says so until it is dealt with, and does not rerun.
    {
        let journal = Journal::open(&sandbox.journal()).unwrap();
        let mut last = LastRun::load(&journal).unwrap().unwrap();
        last.differences = 2;
        last.paid_only_at_provider = 1;
        last.save(&journal).unwrap();
    }
    let mut daemon = Daemon::start(&config, None);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(std::time::Instant::now() < end, "{}", daemon.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, health) = common::call(&socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["reconciliation"]["differences"], 2, "{health}");
    assert!(daemon.terminate().success());
}
