//! Alipay and WeChat Pay codes from one serial scanner into one `scanpay run`, against
//! `scanpay sandbox` and the two-gateway config it writes (`scanpay-dual.toml`): each code
//! paid through its own gateway; a WeChat customer who confirms, then pays; one who never
//! confirms, reversed after the deadline; a system error that paid, found by query; a
//! system error that created nothing; SIGKILL while a WeChat pay is on the wire; a refund of
//! a WeChat sale journaled before it is sent. The sandbox's ledger equals the journal after
//! each, and no WeChat code, private key or APIv3 key appears in the logs, the journal files
//! or the API's output.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::call;
use common::procs::{Daemon, SandboxProc, assert_journal_and_ledger_agree, wait_for};
use scanpay::journal::Journal;
use scanpay::state::SaleState;
use serde_json::Value;
use serialport::{SerialPort, TTYPort};

/// A new pty behind `link`; the master is what the "scanner" writes to.
fn plug(link: &Path) -> TTYPort {
    let (master, slave) = TTYPort::pair().expect("a pty pair");
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

/// The dual config the sandbox wrote, with the API on a socket and, optionally, a serial
/// scanner on `link`.
fn dual_config(sandbox: &SandboxProc, link: Option<&Path>) -> PathBuf {
    let config = sandbox.config_from("scanpay-dual.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[api]\nsocket = \"api.sock\"\n");
    if let Some(link) = link {
        text.push_str(&format!(
            "\n[[scanner]]\nname = \"front\"\nkind = \"serial\"\npath = \"{}\"\nbaud = 9600\n",
            link.display()
        ));
    }
    std::fs::write(&config, text).unwrap();
    config
}

fn journal_of(sandbox: &SandboxProc) -> PathBuf {
    sandbox.dir.join("journal-dual.sqlite")
}

async fn wait_api(socket: &Path, daemon: &Daemon, scanner: bool) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            let (_, health) = call(socket, "GET", "/v1/health", &[], "").await;
            if !scanner || health["scanners"][0]["connected"] == true {
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "daemon not ready:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Arms a sale, lets the scanner send `code`, and waits until the terminal moves on (paid,
/// failed, or handed to the resolver). Returns the sale id.
async fn sell(
    socket: &Path,
    daemon: &Daemon,
    master: &mut TTYPort,
    amount: &str,
    code: &str,
    seen: &mut Vec<String>,
) -> String {
    let body = format!(r#"{{"amount":"{amount}","currency":"CNY"}}"#);
    let (status, sale) = call(socket, "POST", "/v1/sales", &[], &body).await;
    assert_eq!(status, 201, "{sale}");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    master.write_all(format!("{code}\r\n").as_bytes()).unwrap();
    master.flush().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = call(socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        seen.push(s.to_string());
        // The pay has its answer (the attempt left `pending`): the terminal moves on.
        let answered = s["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|a| a["state"] != "pending");
        if s["state"] != "awaiting_scan" && answered {
            return id;
        }
        assert!(
            Instant::now() < end,
            "sale never moved on: {s}\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until sale `id` is final; returns it.
async fn final_sale(
    socket: &Path,
    daemon: &Daemon,
    id: &str,
    limit: Duration,
    seen: &mut Vec<String>,
) -> Value {
    let end = Instant::now() + limit;
    loop {
        let (_, s) = call(socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        seen.push(s.to_string());
        if matches!(
            s["state"].as_str(),
            Some("paid" | "failed" | "cancelled" | "aborted" | "expired")
        ) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "sale {id} never ended: {s}\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sandbox's net for `request_id` equals what the journal says of that attempt.
fn agree_on(sandbox: &SandboxProc, journal: &Path, sale: &Value) {
    let ledger = sandbox.ledger();
    let j = Journal::open_read_only(journal).unwrap();
    for a in sale["attempts"].as_array().unwrap() {
        let request_id = a["request_id"].as_str().unwrap();
        let row = j.attempt_by_request_id(request_id).unwrap().unwrap();
        let net = ledger
            .iter()
            .find(|(id, _)| id == request_id)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let expected = if row.state == scanpay::state::AttemptState::Succeeded {
            row.amount.minor()
        } else {
            0
        };
        assert_eq!(
            net, expected,
            "{request_id}: ledger {net}, journal {}",
            row.state
        );
    }
}

fn attempt(sale: &Value) -> &Value {
    sale["attempts"].as_array().unwrap().last().unwrap()
}

/// The secrets of the sandbox's WeChat Pay merchant: the APIv3 key and a line from the
/// middle of the private key.
fn secrets(dir: &Path) -> Vec<String> {
    let apiv3 = std::fs::read_to_string(dir.join("wechat_apiv3_key")).unwrap();
    let key = std::fs::read_to_string(dir.join("app_private_key.pem")).unwrap();
    let line = key.lines().nth(5).unwrap().to_string();
    vec![apiv3.trim().to_string(), line]
}

/// Nothing in `haystacks` holds any of `needles`.
fn none_leaks(what: &str, haystack: &[u8], needles: &[String]) {
    for n in needles {
        assert!(
            !haystack.windows(n.len()).any(|w| w == n.as_bytes()),
            "{what} holds {}…",
            &n[..6.min(n.len())]
        );
    }
}

fn journal_bytes(journal: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", journal.display()));
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alipay_and_wechat_codes_from_one_scanner_each_through_its_own_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let link = dir.path().join("scanner-front");
    let mut master = plug(&link);
    let config = dual_config(&sandbox, Some(&link));
    let socket = sandbox.dir.join("api.sock");
    let journal = journal_of(&sandbox);
    let daemon = Daemon::start(&config, None);
    wait_api(&socket, &daemon, true).await;
    let mut seen = Vec::new();
    let started = Instant::now();

    // The customer who never confirms goes first: it resolves while the others are sold.
    let never = sell(
        &socket,
        &daemon,
        &mut master,
        "8.00",
        "134567890123450404",
        &mut seen,
    )
    .await;
    let alipay = sell(
        &socket,
        &daemon,
        &mut master,
        "12.50",
        "286000000000000100",
        &mut seen,
    )
    .await;
    let wechat = sell(
        &socket,
        &daemon,
        &mut master,
        "13.50",
        "134567890123450000",
        &mut seen,
    )
    .await;
    let confirms = sell(
        &socket,
        &daemon,
        &mut master,
        "3.00",
        "134567890123450303",
        &mut seen,
    )
    .await;
    let sys_paid = sell(
        &socket,
        &daemon,
        &mut master,
        "5.00",
        "134567890123450505",
        &mut seen,
    )
    .await;
    let sys_none = sell(
        &socket,
        &daemon,
        &mut master,
        "6.00",
        "134567890123450909",
        &mut seen,
    )
    .await;

    let limit = Duration::from_secs(90);
    let s = final_sale(&socket, &daemon, &alipay, limit, &mut seen).await;
    assert_eq!(s["state"], "paid", "{s}");
    assert_eq!(attempt(&s)["gateway"], "alipay-openapi");
    assert!(!attempt(&s)["request_id"].as_str().unwrap().ends_with('W'));
    agree_on(&sandbox, &journal, &s);

    let s = final_sale(&socket, &daemon, &wechat, limit, &mut seen).await;
    assert_eq!(s["state"], "paid", "{s}");
    assert_eq!(attempt(&s)["gateway"], "wechat-pay");
    assert_eq!(attempt(&s)["wallet"], "wechat_pay");
    assert!(attempt(&s)["request_id"].as_str().unwrap().ends_with('W'));
    agree_on(&sandbox, &journal, &s);

    // 202 USERPAYING, then paid: found by the queries, the code sent once.
    let s = final_sale(&socket, &daemon, &confirms, limit, &mut seen).await;
    assert_eq!(s["state"], "paid", "{s}");
    assert_eq!(attempt(&s)["result_message"], "inquiry: paid", "{s}");
    agree_on(&sandbox, &journal, &s);

    // 500 SYSTEM_ERROR, but paid: the query 5 s later finds it.
    let s = final_sale(&socket, &daemon, &sys_paid, limit, &mut seen).await;
    assert_eq!(s["state"], "paid", "{s}");
    agree_on(&sandbox, &journal, &s);

    // 500 SYSTEM_ERROR and nothing created: the reverse and the query after it say so.
    let s = final_sale(&socket, &daemon, &sys_none, limit, &mut seen).await;
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(attempt(&s)["result_code"], "not_created", "{s}");
    agree_on(&sandbox, &journal, &s);

    // Never confirms: reversed after the 30 s deadline (refused while the customer is still
    // paying, retried until WeChat's own revoke at 45 s lets it through).
    let s = final_sale(&socket, &daemon, &never, limit, &mut seen).await;
    assert_eq!(s["state"], "cancelled", "{s}");
    let a = attempt(&s);
    assert_eq!(a["state"], "cancelled", "{s}");
    assert!(a["cancels"].as_i64().unwrap() >= 1, "{s}");
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "not before the deadline"
    );
    agree_on(&sandbox, &journal, &s);

    // A refund of the WeChat sale goes through WeChat Pay.
    let (status, r) = call(
        &socket,
        "POST",
        &format!("/v1/sales/{wechat}/refunds"),
        &[],
        r#"{"amount":"3.50"}"#,
    )
    .await;
    assert!(status == 201 || status == 202, "{status} {r}");
    seen.push(r.to_string());
    let journal_path = journal.clone();
    wait_for(&journal_path, Duration::from_secs(20), "the refund", |j| {
        j.open_refunds().map(|r| r.is_empty()).unwrap_or(false)
    });
    let (_, s) = call(&socket, "GET", &format!("/v1/sales/{wechat}"), &[], "").await;
    seen.push(s.to_string());
    assert_eq!(s["refunds"][0]["state"], "succeeded", "{s}");

    let (_, health) = call(&socket, "GET", "/v1/health", &[], "").await;
    seen.push(health.to_string());
    assert_eq!(
        health["gateway"]["routes"]["wechat_pay"], "wechat-pay",
        "{health}"
    );
    assert_eq!(
        health["gateway"]["routes"]["alipay"], "alipay-openapi",
        "{health}"
    );
    assert_eq!(
        health["gateway"]["kind"], "alipay-openapi+wechat-pay",
        "{health}"
    );
    let (_, metrics) = call(&socket, "GET", "/v1/metrics", &[], "").await;
    seen.push(metrics.to_string());

    let mut daemon = daemon;
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    let states = assert_journal_and_ledger_agree(&journal, &ledger);
    assert_eq!(
        states.iter().filter(|s| **s == SaleState::Paid).count(),
        4,
        "{states:?}"
    );

    // The day report says what each wallet took, and through which gateway.
    let out = common::procs::scanpay()
        .args(["report", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    seen.push(report.to_string());
    let by_wallet = report["by_wallet"].as_array().unwrap();
    let of = |w: &str| {
        by_wallet
            .iter()
            .find(|l| l["wallet"] == w)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        (
            of("alipay")["count"].as_u64(),
            of("alipay")["gateway"].as_str()
        ),
        (Some(1), Some("alipay-openapi")),
        "{report}"
    );
    assert_eq!(
        (
            of("wechat_pay")["count"].as_u64(),
            of("wechat_pay")["total"].as_str()
        ),
        (Some(3), Some("21.50")),
        "{report}"
    );

    // No WeChat code, private key or APIv3 key in the logs, the journal files or output.
    let mut needles = secrets(&sandbox.dir);
    for code in [
        "134567890123450404",
        "134567890123450000",
        "134567890123450303",
        "134567890123450505",
        "134567890123450909",
    ] {
        needles.push(code.to_string());
    }
    let logs = format!(
        "{}\n{}",
        daemon.stderr(),
        daemon.stdout.lock().unwrap().join("\n")
    );
    none_leaks("the daemon's log", logs.as_bytes(), &needles);
    none_leaks("the journal files", &journal_bytes(&journal), &needles);
    none_leaks("the API's answers", seen.join("\n").as_bytes(), &needles);
}

#[test]
fn killed_while_a_wechat_pay_is_on_the_wire_finishes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = dual_config(&sandbox, None);
    let journal = journal_of(&sandbox);
    // Code 06: charged at once, answered after 20 s; the daemon dies while it waits.
    let mut daemon = Daemon::start(&config, None);
    daemon.feed("10.00\n134567890123450606\n");
    std::thread::sleep(Duration::from_millis(2500));
    daemon.kill9();
    {
        let j = Journal::open_read_only(&journal).unwrap();
        let open = j.open_attempts().unwrap();
        assert_eq!(open.len(), 1, "the crash left the attempt open");
        assert_eq!(open[0].gateway, "wechat-pay");
    }
    let mut daemon = Daemon::start(&config, None);
    wait_for(
        &journal,
        Duration::from_secs(40),
        "the attempt to end",
        |j| j.open_attempts().map(|a| a.is_empty()).unwrap_or(false),
    );
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    assert_eq!(
        assert_journal_and_ledger_agree(&journal, &ledger),
        [SaleState::Paid],
        "the charge is found by query after the restart"
    );
    let mut needles = secrets(&sandbox.dir);
    needles.push("134567890123450606".into());
    none_leaks("the daemon's log", daemon.stderr().as_bytes(), &needles);
    none_leaks("the journal files", &journal_bytes(&journal), &needles);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wechat_refund_is_journaled_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = dual_config(&sandbox, None);
    let journal = journal_of(&sandbox);
    let socket = sandbox.dir.join("api.sock");
    // The daemon dies right after the refund row is written, before it is sent.
    let mut daemon = Daemon::start(&config, Some("before_refund_send"));
    wait_api(&socket, &daemon, false).await;
    daemon.feed("20.00\n134567890123451200\n");
    wait_for(&journal, Duration::from_secs(20), "the sale paid", |j| {
        j.sales(&Default::default())
            .map(|s| s.iter().any(|s| s.state == SaleState::Paid))
            .unwrap_or(false)
    });
    let sale_id = Journal::open_read_only(&journal)
        .unwrap()
        .sales(&Default::default())
        .unwrap()[0]
        .id
        .clone();
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    drop(stream);
    let refund = {
        let socket = socket.clone();
        let path = format!("/v1/sales/{sale_id}/refunds");
        tokio::spawn(async move {
            // The daemon aborts while answering; the answer never comes.
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                call(&socket, "POST", &path, &[], r#"{"amount":"5.00"}"#),
            )
            .await;
        })
    };
    let status = daemon.wait(Duration::from_secs(15));
    assert!(!status.success(), "the failpoint aborted the daemon");
    refund.abort();
    {
        let j = Journal::open_read_only(&journal).unwrap();
        let open = j.open_refunds().unwrap();
        assert_eq!(open.len(), 1, "the refund row was written before the send");
        let request_id = j.attempts(&sale_id).unwrap()[0].request_id.clone();
        let ledger = sandbox.ledger();
        let net = ledger.iter().find(|(id, _)| *id == request_id).unwrap().1;
        assert_eq!(net, 2000, "and nothing was sent");
    }
    // Restarted, the watchdog sends it, under the same id, once.
    let mut daemon = Daemon::start(&config, None);
    wait_for(
        &journal,
        Duration::from_secs(30),
        "the refund to end",
        |j| j.open_refunds().map(|r| r.is_empty()).unwrap_or(false),
    );
    assert!(daemon.terminate().success(), "{}", daemon.stderr());
    let ledger = sandbox.ledger();
    assert_journal_and_ledger_agree(&journal, &ledger);
    let j = Journal::open_read_only(&journal).unwrap();
    let refunds = j.refunds(&sale_id).unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].state, scanpay::state::RefundState::Succeeded);
    let request_id = j.attempts(&sale_id).unwrap()[0].request_id.clone();
    assert_eq!(
        ledger.iter().find(|(id, _)| *id == request_id).unwrap().1,
        1500
    );
}

/// Charges `code` through `scanpay charge` with `config`; returns the sale.
fn charge(config: &Path, amount: &str, code: &str) -> Value {
    let out = common::procs::scanpay()
        .args(["charge", "--amount", amount, "--code", code, "--config"])
        .arg(config)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"))
}

fn reconcile(config: &Path, provider: &str, extra: &[&str]) -> (i32, Value) {
    let date = chrono::Utc::now()
        .with_timezone(&scanpay::clock::beijing())
        .format("%Y-%m-%d")
        .to_string();
    let out = common::procs::scanpay()
        .args([
            "reconcile",
            "--format",
            "json",
            "--provider",
            provider,
            "--date",
            &date,
            "--config",
        ])
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

#[test]
fn each_provider_reconciles_its_own_sales_and_an_altered_wechat_sale_is_reported_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config_from("scanpay-dual.toml");
    let mut paid = Vec::new();
    for (amount, code) in [
        ("10.00", "286000000000300000"),
        ("11.00", "134567890123460000"),
        ("12.00", "134567890123460103"),
        ("13.00", "134567890123460205"),
        ("14.00", "134567890123460301"),
    ] {
        let sale = charge(&config, amount, code);
        if sale["state"] == "paid" {
            paid.push(sale);
        }
    }
    assert_eq!(paid.len(), 4, "{paid:?}");
    let refunded = paid[1]["sale_id"].as_str().unwrap();
    let status = common::procs::scanpay()
        .args(["refund", "--amount", "1.50", "--config"])
        .arg(&config)
        .arg(refunded)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // WeChat Pay's bill: three payments and the refund, its hash checked; nothing of Alipay.
    let (code, report) = reconcile(&config, "wechat", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["differences"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    assert_eq!(report["provider_lines"], 4, "{report}");
    assert_eq!(report["totals"][0]["provider_refunded"], 150, "{report}");
    // The Open Platform's bill: the Alipay sale alone, the WeChat ones not missing from it.
    let (code, report) = reconcile(&config, "alipay", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["provider_lines"], 1, "{report}");

    // A copy of the journal in which one paid WeChat sale lost its state: that one alone.
    let journal = journal_of(&sandbox);
    let copy = sandbox.dir.join("copy.sqlite");
    std::fs::copy(&journal, &copy).unwrap();
    let victim = paid[2]["attempts"][0]["request_id"].as_str().unwrap();
    crate::common::procs::forget_payment(&copy, victim);
    let copy_config = sandbox.dir.join("copy.toml");
    std::fs::write(
        &copy_config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("journal-dual.sqlite", "copy.sqlite"),
    )
    .unwrap();
    let (code, report) = reconcile(&copy_config, "wechat", &[]);
    assert_eq!(code, 1, "{report}");
    let differences = report["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{report}");
    assert_eq!(differences[0]["kind"], "paid_only_at_provider");
    assert_eq!(differences[0]["request_id"], victim);
    let (code, report) = reconcile(&copy_config, "alipay", &[]);
    assert_eq!(code, 0, "the Alipay day is untouched: {report}");
    let out = common::procs::scanpay()
        .args(["reconcile", "--provider", "unionpay", "--config"])
        .arg(&copy_config)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--provider"),
        "{out:?}"
    );
    assert_eq!(code, 2, "an unknown provider is a usage error");
}
