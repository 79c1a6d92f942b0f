//! What an operator does through the API with the daemon running, against `scanpay sandbox`:
//! a payment whose cancel is refused (a trade frozen by risk control, code `15`) is flagged,
//! retried, settled by hand with a note (who and when in the journal, the money state left
//! as the gateway confirmed it, never flagged again); reconciliation with `fix` refunds what
//! the CLI's `--fix` would, once, and the CLI's `--fix` asks the running daemon.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::procs::{Daemon, SandboxProc, scanpay};
use crate::common::{free_port, led_dir};
use scanpay::journal::Journal;

/// The sandbox's config with the API on a socket and loopback TCP, and a file printer.
fn with_api(config: &Path, port: u16) {
    let slips = config.with_file_name("slips.bin");
    let text = std::fs::read_to_string(config).unwrap()
        + &format!(
            "\n[api]\nsocket = \"api.sock\"\ntcp = \"127.0.0.1:{port}\"\n\n[printer]\nkind = \"file\"\npath = \"{}\"\n",
            slips.display()
        );
    std::fs::write(config, text).unwrap();
}

fn wait_for_api(port: u16, daemon: &Daemon) {
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One call to the TCP API: the status and the JSON answered.
async fn api(port: u16, method: &str, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut request = match method {
        "GET" => http.get(url),
        _ => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    };
    if let Some(k) = key {
        request = request.header("idempotency-key", k);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Waits until `GET /v1/attention` lists `n` items; returns them.
async fn attention(port: u16, n: usize, limit: Duration) -> Vec<Value> {
    let end = Instant::now() + limit;
    loop {
        let (_, list) = api(port, "GET", "/v1/attention", None, json!({})).await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n {
            return items;
        }
        assert!(Instant::now() < end, "attention never listed {n}: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn unfreeze(sandbox: &SandboxProc, request_id: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap();
    write!(
        s,
        "POST /_sandbox/trades/{request_id}/unfreeze HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_whose_cancel_is_refused_is_retried_and_settled_by_hand_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = free_port();
    with_api(&config, port);
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);

    // Two customers who never confirm, on trades risk control froze: at the 20 s deadline
    // each cancel is refused, and each payment is flagged for a person.
    daemon.feed("10.00\n286000000000001115\n");
    attention(port, 1, Duration::from_secs(60)).await;
    daemon.feed("20.00\n286000000000002215\n");
    let items = attention(port, 2, Duration::from_secs(60)).await;
    let (a, b) = (&items[1], &items[0]);
    assert_eq!(a["amount"], "10.00", "{items:?}");
    for item in [a, b] {
        assert_eq!(item["kind"], "cancel_not_confirmed", "{item}");
        assert_eq!(item["state"], "cancelling");
        assert_eq!(item["actions"], json!(["retry", "settle"]));
        assert!(
            item["why"]
                .as_str()
                .unwrap()
                .contains("REASON_TRADE_BEEN_FREEZEN"),
            "{item}"
        );
        assert!(item["deadline_at"].is_string(), "{item}");
    }
    let a_id = a["request_id"].as_str().unwrap().to_string();
    let b_id = b["request_id"].as_str().unwrap().to_string();
    let path = |id: &str| format!("/v1/attention/{id}");

    // Refused with the reason, changing nothing: (body, key, status, error code, field).
    let refusals = [
        (
            json!({"action": "settle", "note": "x"}),
            None,
            400,
            "invalid_field",
            Some("Idempotency-Key"),
        ),
        (
            json!({"action": "settle"}),
            Some("k0"),
            400,
            "invalid_field",
            Some("note"),
        ),
        (
            json!({"action": "refund"}),
            Some("k0"),
            409,
            "action_does_not_apply",
            None,
        ),
        (
            json!({"action": "pay twice"}),
            Some("k0"),
            400,
            "invalid_field",
            Some("action"),
        ),
    ];
    for (body, key, status, code, field) in refusals {
        let (got, e) = api(port, "POST", &path(&b_id), key, body.clone()).await;
        assert_eq!(
            (
                got,
                e["error"]["code"].as_str(),
                e["error"]["field"].as_str()
            ),
            (status, Some(code), field),
            "{body}: {e}"
        );
    }
    let (status, _) = api(
        port,
        "POST",
        &path("nosuch"),
        Some("k0"),
        json!({"action": "retry"}),
    )
    .await;
    assert_eq!(status, 404);

    // B is settled by hand: the flag closes, the attempt stays as the gateway left it.
    let settle = json!({"action": "settle", "note": "reversed in the Alipay merchant console", "operator": "Li Wei"});
    let (status, settled) = api(port, "POST", &path(&b_id), Some("settle-b"), settle.clone()).await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["replayed"], false);
    assert_eq!(settled["result"]["state"], "cancelling");
    let (status, again) = api(port, "POST", &path(&b_id), Some("settle-b"), settle).await;
    assert_eq!(
        (status, &again["replayed"], &again["id"]),
        (200, &json!(true), &settled["id"])
    );
    let (status, e) = api(
        port,
        "POST",
        &path(&a_id),
        Some("settle-b"),
        json!({"action": "retry"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("idempotency_conflict")),
        "{e}"
    );
    let left = attention(port, 1, Duration::from_secs(5)).await;
    assert_eq!(left[0]["request_id"], a_id.as_str());

    // A retry while still frozen: both resolvers cancel again at once; A stays flagged, B is
    // refused as well but not flagged again.
    let journal_path = sandbox.journal();
    let cancels = |id: &str| {
        let j = Journal::open_read_only(&journal_path).unwrap();
        j.attempt_by_request_id(id).unwrap().unwrap().cancels
    };
    let (a_before, b_before) = (cancels(&a_id), cancels(&b_id));
    let (status, retried) = api(
        port,
        "POST",
        &path(&a_id),
        Some("retry-a-1"),
        json!({"action": "retry"}),
    )
    .await;
    assert_eq!(status, 200, "{retried}");
    let end = Instant::now() + Duration::from_secs(10);
    while cancels(&a_id) == a_before || cancels(&b_id) == b_before {
        assert!(Instant::now() < end, "the retry sent no cancel");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = attention(port, 1, Duration::from_secs(5)).await;
    assert_eq!(
        still[0]["request_id"],
        a_id.as_str(),
        "B is not flagged again"
    );

    // Unfrozen, A's retry goes through: cancelled, the flag cleared by the gateway's word.
    unfreeze(&sandbox, &a_id);
    unfreeze(&sandbox, &b_id);
    let (status, _) = api(
        port,
        "POST",
        &path(&a_id),
        Some("retry-a-2"),
        json!({"action": "retry"}),
    )
    .await;
    assert_eq!(status, 200);
    attention(port, 0, Duration::from_secs(15)).await;
    crate::common::procs::wait_for(
        &journal_path,
        Duration::from_secs(15),
        "both cancelled",
        |j| {
            [&a_id, &b_id].iter().all(|id| {
                j.attempt_by_request_id(id)
                    .unwrap()
                    .is_some_and(|a| a.state == scanpay::state::AttemptState::Cancelled)
            })
        },
    );
    let (_, log) = api(port, "GET", "/v1/actions", None, json!({})).await;
    daemon.terminate();

    // The journal says who did what, when, and what they were told.
    let j = Journal::open_read_only(&journal_path).unwrap();
    let actions = j.actions(50).unwrap();
    let settle = actions
        .iter()
        .find(|a| a.action == "settle")
        .expect("settle recorded");
    assert_eq!(settle.target.as_deref(), Some(b_id.as_str()));
    assert_eq!(settle.operator.as_deref(), Some("Li Wei"));
    assert_eq!(
        settle.note.as_deref(),
        Some("reversed in the Alipay merchant console")
    );
    assert!(
        settle.actor.starts_with("tcp 127.0.0.1:"),
        "{}",
        settle.actor
    );
    assert!((chrono::Utc::now() - settle.at).num_seconds() < 120);
    assert_eq!(actions.iter().filter(|a| a.action == "retry").count(), 2);
    assert_eq!(
        actions.iter().filter(|a| a.action == "settle").count(),
        1,
        "the replay did nothing"
    );
    assert_eq!(log["actions"].as_array().unwrap().len(), 3, "{log}");
    crate::common::procs::assert_journal_and_ledger_agree(&journal_path, &sandbox.ledger());
}

fn beijing_today() -> String {
    chrono::Utc::now()
        .with_timezone(&scanpay::clock::beijing())
        .format("%Y-%m-%d")
        .to_string()
}

fn charge(config: &Path, amount: &str, code: &str) -> Value {
    let out = scanpay()
        .args(["charge", "--amount", amount, "--code", code, "--config"])
        .arg(config)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"))
}

/// A copy of the sandbox's journal in which the paid sale `victim` lost its state, and a
/// config for it named `name`.
fn altered_copy(sandbox: &SandboxProc, config: &Path, victim: &str, name: &str) -> PathBuf {
    let copy = sandbox.dir.join(format!("{name}.sqlite"));
    std::fs::copy(sandbox.journal(), &copy).unwrap();
    crate::common::procs::forget_payment(&copy, victim);
    let copy_config = sandbox.dir.join(format!("{name}.toml"));
    std::fs::write(
        &copy_config,
        std::fs::read_to_string(config)
            .unwrap()
            .replace("journal.sqlite", &format!("{name}.sqlite"))
            .replace("api.sock", &format!("{name}.sock")),
    )
    .unwrap();
    copy_config
}

fn cli_reconcile(config: &Path, fix: bool) -> (i32, Value, String) {
    let mut cmd = scanpay();
    cmd.args([
        "reconcile",
        "--format",
        "json",
        "--date",
        &beijing_today(),
        "--config",
    ])
    .arg(config);
    if fix {
        cmd.arg("--fix");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_with_fix_through_the_running_daemon_refunds_what_the_cli_would_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = free_port();
    with_api(&config, port);
    let mut paid = Vec::new();
    for (i, ending) in ["00", "00", "05"].iter().enumerate() {
        let sale = charge(
            &config,
            &format!("1{i}.00"),
            &format!("2860000000005{i:03}{ending}"),
        );
        assert_eq!(sale["state"], "paid", "{sale}");
        paid.push(sale);
    }
    let victim = paid[1]["attempts"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_daemon = altered_copy(&sandbox, &config, &victim, "by-daemon");
    let mut daemon = Daemon::start(&by_daemon, None);
    wait_for_api(port, &daemon);
    let date = beijing_today();
    // Without a key a fix is refused; a plain comparison is not.
    let (status, e) = api(
        port,
        "POST",
        "/v1/reconcile",
        None,
        json!({"date": date, "fix": true}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("Idempotency-Key")),
        "{e}"
    );
    let (status, e) = api(
        port,
        "POST",
        "/v1/reconcile",
        Some("r0"),
        json!({"date": "yesterday"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("date")),
        "{e}"
    );
    let (status, plain) = api(port, "POST", "/v1/reconcile", None, json!({"date": date})).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(
        plain["differences"][0]["request_id"],
        victim.as_str(),
        "{plain}"
    );
    assert_eq!(plain["fixes"], json!([]));
    // What the CLI's --fix would refund: the payments only the provider kept (read-only, so
    // it runs beside the daemon).
    let (code, cli, _) = cli_reconcile(&by_daemon, false);
    assert_eq!(code, 1, "{cli}");
    let would_fix: Vec<&str> = cli["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "paid_only_at_provider")
        .map(|d| d["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(would_fix, [victim.as_str()], "{cli}");
    let before = sandbox.ledger();

    let ask = json!({"date": date, "fix": true, "operator": "Li Wei"});
    let (status, fixed) = api(port, "POST", "/v1/reconcile", Some("fix-1"), ask.clone()).await;
    assert_eq!(status, 200, "{fixed}");
    let fixes = fixed["fixes"].as_array().unwrap();
    assert_eq!(fixes.len(), 1, "{fixed}");
    assert_eq!(fixes[0]["request_id"], victim.as_str());
    assert_eq!(fixes[0]["state"], "succeeded");
    let after_fix = sandbox.ledger();
    for ((id, net_before), (_, net_after)) in before.iter().zip(&after_fix) {
        if *id == victim {
            assert_eq!(*net_after, 0, "the kept money went back");
        } else {
            assert_eq!(net_before, net_after, "{id} untouched");
        }
    }
    let (status, replay) = api(port, "POST", "/v1/reconcile", Some("fix-1"), ask).await;
    assert_eq!(
        (status, &replay),
        (200, &fixed),
        "the same key answers the same"
    );
    let (status, e) = api(
        port,
        "POST",
        "/v1/reconcile",
        Some("fix-1"),
        json!({"date": date}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("idempotency_conflict")),
        "the same key for another request: {e}"
    );
    // A record file is named only over the socket.
    let (status, e) = api(
        port,
        "POST",
        "/v1/reconcile",
        None,
        json!({"file": "/etc/passwd"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("file")),
        "{e}"
    );

    // The CLI's --fix, with the daemon running, asks it: no "journal in use" error.
    let (code, through, stderr) = cli_reconcile(&by_daemon, true);
    assert_eq!(code, 0, "{through} {stderr}");
    assert_eq!(through["fixes"], json!([]), "{through}");
    assert_eq!(sandbox.ledger(), after_fix, "still refunded once");
    daemon.terminate();

    let j = Journal::open_read_only(&sandbox.dir.join("by-daemon.sqlite")).unwrap();
    let (_, _, refunds) = j
        .sale_whole(paid[1]["sale_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(refunds.len(), 1, "one refund row: {refunds:?}");
    let runs: Vec<_> = j
        .actions(50)
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "reconcile")
        .collect();
    assert_eq!(
        runs.len(),
        3,
        "a plain run, the fix (once), the CLI's: {runs:?}"
    );
    assert!(
        runs.iter().any(|a| a.actor.starts_with("socket uid ")),
        "{runs:?}"
    );
    assert!(runs.iter().any(|a| a.operator.as_deref() == Some("Li Wei")));
}

#[tokio::test(flavor = "multi_thread")]
async fn device_tests_probe_and_reprints_through_the_api_are_done_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = free_port();
    with_api(&config, port);
    let (green, red) = (led_dir(dir.path(), "green"), led_dir(dir.path(), "red"));
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[led]\nkind = \"sysfs\"\ngreen = \"{}\"\nred = \"{}\"\n",
            green.display(),
            red.display()
        );
    std::fs::write(&config, text).unwrap();
    let slips = config.with_file_name("slips.bin");
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);

    let (status, probe) = api(port, "POST", "/v1/gateway/probe", None, json!({})).await;
    assert_eq!(status, 200, "{probe}");
    assert_eq!(probe["ok"], true);
    assert!(
        probe["checks"][0]["text"]
            .as_str()
            .unwrap()
            .contains("signature verified"),
        "{probe}"
    );

    // The LED shows every pattern in turn: red blinks (needs attention) and green lights.
    let (status, led) = api(port, "POST", "/v1/led/test", None, json!({})).await;
    assert_eq!(status, 200, "{led}");
    assert_eq!(led["patterns"].as_array().unwrap().len(), 10, "{led}");
    let (mut green_on, mut red_blink) = (false, false);
    let end = Instant::now() + Duration::from_secs(20);
    while !(green_on && red_blink) {
        assert!(
            Instant::now() < end,
            "the LED did not cycle: green {green_on}, red blink {red_blink}"
        );
        green_on |= std::fs::read_to_string(green.join("brightness")).unwrap_or_default() == "1";
        red_blink |= std::fs::read_to_string(red.join("trigger")).unwrap_or_default() == "timer";
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The scan test: with a sale waiting, the next scan is shown and not charged; the one
    // after it pays as usual.
    let (status, armed) = api(port, "POST", "/v1/scanner/test", None, json!({})).await;
    assert_eq!(status, 200, "{armed}");
    daemon.feed("7.00\n286000000000004400\n");
    let journal = sandbox.journal();
    crate::common::procs::wait_for(
        &journal,
        Duration::from_secs(15),
        "the scan test's event",
        |j| {
            j.events_after(0, 1000)
                .unwrap()
                .iter()
                .any(|(_, kind, _)| kind == "scan_test")
        },
    );
    let events = Journal::open_read_only(&journal)
        .unwrap()
        .events_after(0, 1000)
        .unwrap();
    let (_, _, shown) = events
        .iter()
        .find(|(_, kind, _)| kind == "scan_test")
        .unwrap();
    assert!(
        shown.contains("28************4400") && shown.contains("payment code"),
        "{shown}"
    );
    assert!(!shown.contains("286000000000004400"), "masked: {shown}");
    assert!(
        sandbox.ledger().is_empty(),
        "nothing charged: {:?}",
        sandbox.ledger()
    );
    // A paid sale's receipt again, and the day's Z-report.
    daemon.feed("286000000000004400\n");
    let end = Instant::now() + Duration::from_secs(15);
    let sale_id = loop {
        let (_, list) = api(port, "GET", "/v1/sales?state=paid&limit=1", None, json!({})).await;
        if let Some(id) = list["sales"][0]["sale_id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < end, "no paid sale: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let printed = |min: usize| {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let bytes = std::fs::read(&slips).unwrap_or_default();
            if bytes.len() >= min {
                return bytes;
            }
            assert!(Instant::now() < end, "only {} bytes printed", bytes.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = printed(1).len();
    let (status, again) = api(
        port,
        "POST",
        &format!("/v1/sales/{sale_id}/receipt"),
        None,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let after_reprint = printed(first * 2).len();
    let (status, z) = api(port, "POST", "/v1/report/print", None, json!({})).await;
    assert_eq!(status, 200, "{z}");
    printed(after_reprint + 1);
    let (status, e) = api(port, "POST", "/v1/sales/S-nosuch/receipt", None, json!({})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
    daemon.terminate();

    let j = Journal::open_read_only(&journal).unwrap();
    let done: Vec<String> = j
        .actions(20)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for wanted in [
        "gateway_probe",
        "led_test",
        "scanner_test",
        "reprint",
        "print_report",
    ] {
        assert!(
            done.iter().any(|a| a == wanted),
            "{wanted} recorded: {done:?}"
        );
    }
}
