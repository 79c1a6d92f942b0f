//! What real gateways answer at the edges, through the binary against `scanpay sandbox`:
//! payments the gateway never created, requests refused at its door (unsigned), system
//! errors in the platform's other spelling, and what `check-config --probe` says of wrong
//! credentials. Each run ends with the sandbox's ledger, the journal and the outputs checked.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::procs::{SandboxProc, assert_journal_and_ledger_agree, scanpay};
use scanpay::gateway::keys::PrivateKey;
use scanpay::journal::Journal;
use serde_json::Value;

/// The sandbox client configs' in-doubt window (`SandboxProc::config_from`).
const DEADLINE: Duration = Duration::from_secs(6);

fn charge(config: &Path, amount: &str, code: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = scanpay()
        .arg("charge")
        .arg("--config")
        .arg(config)
        .args(["--amount", amount, "--code", code])
        .env("SCANPAY_LOG", "debug")
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn sale_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no sale printed; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap()
}

/// A config of the sandbox's with one line replaced (`key = ...` by `with`).
fn config_with(sbx: &SandboxProc, written: &str, key: &str, with: &str) -> PathBuf {
    let base = sbx.config_from(written);
    let text = std::fs::read_to_string(&base).unwrap();
    let has_key = text.lines().any(|l| l.starts_with(&format!("{key} =")));
    let text: String = text
        .lines()
        .flat_map(|l| {
            if l.starts_with(&format!("{key} =")) {
                vec![with.to_string()]
            } else if !has_key && l.starts_with("kind = ") {
                // A key the written config leaves at its default goes into [gateway].
                vec![l.to_string(), with.to_string()]
            } else {
                vec![l.to_string()]
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = sbx
        .dir
        .join(format!("{}-{key}.toml", written.trim_end_matches(".toml")));
    std::fs::write(&path, text).unwrap();
    path
}

/// A private key the sandbox has never seen, mode 0600.
fn stranger_key(dir: &Path) -> PathBuf {
    let path = dir.join("stranger_key.pem");
    if !path.exists() {
        PrivateKey::generate(2048, "stranger")
            .unwrap()
            .write_pem(&path)
            .unwrap();
    }
    path
}

fn journal_of(config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("path = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    config.parent().unwrap().join(name)
}

fn assert_no_attention(journal: &Path) {
    let j = Journal::open_read_only(journal).unwrap();
    let flagged = j.attempts_needing_attention().unwrap();
    assert!(flagged.is_empty(), "flagged for a person: {flagged:?}");
}

/// No byte sequence of the full code in any of the journal's files.
fn assert_code_absent(journal: &Path, code: &str, outputs: &[&[u8]]) {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", journal.display()));
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(code.len()).any(|w| w == code.as_bytes()),
                "the full code is in {}",
                file.display()
            );
        }
    }
    for out in outputs {
        let text = String::from_utf8_lossy(out);
        assert!(
            !text.contains(code),
            "the full code is in the output:\n{text}"
        );
    }
}

#[test]
fn a_payment_the_gateway_never_created_ends_not_charged_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    for (written, amount, expected_code) in [
        ("scanpay.toml", "3.10", "ACQ.TRADE_NOT_EXIST"),
        ("scanpay-ams.toml", "3.10", "ORDER_NOT_EXIST"),
    ] {
        let config = sbx.config_from(written);
        // 10: "unknown" and never created; 11: reset before it was processed.
        for code in ["286000000000000010", "286000000000000111"] {
            let (out, took) = charge(&config, amount, code);
            let sale = sale_of(&out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{written} {code}: {sale}\n{stderr}"
            );
            assert_eq!(sale["state"], "failed", "{sale}");
            assert_eq!(sale["attempts"][0]["result_code"], "not_created", "{sale}");
            let message = sale["message"].as_str().unwrap_or("");
            assert!(message.contains(expected_code), "{message}");
            assert!(
                stderr.contains("not paid") && stderr.contains(expected_code),
                "{stderr}"
            );
            assert!(
                took < DEADLINE + Duration::from_secs(5),
                "{written} {code}: took {took:?}"
            );
            assert_no_attention(&journal_of(&config));
        }
        assert_journal_and_ledger_agree(&journal_of(&config), &sbx.ledger());
    }
}

#[test]
fn a_system_error_spelled_with_the_aop_prefix_is_found_paid_by_inquiry() {
    let dir = tempfile::tempdir().unwrap();
    for (written, code) in [
        ("scanpay.toml", "286000000000000012"),
        ("scanpay-ams.toml", "286000000000000112"),
    ] {
        // One sandbox per gateway: its ledger is then this journal's alone.
        let sbx = SandboxProc::start(&dir.path().join(written), 0);
        let config = sbx.config_from(written);
        let (out, _) = charge(&config, "4.12", code);
        let sale = sale_of(&out);
        assert_eq!(out.status.code(), Some(0), "{written}: {sale}");
        assert_eq!(sale["state"], "paid");
        assert_eq!(
            sale["attempts"][0]["result_message"], "inquiry: paid",
            "{written}: decided by inquiry, not by the pay answer: {sale}"
        );
        assert_journal_and_ledger_agree(&journal_of(&config), &sbx.ledger());
    }
}

#[test]
fn a_request_refused_at_the_door_ends_not_charged_at_once_and_leaks_no_code() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    let stranger = stranger_key(dir.path());
    let cases = [
        (
            config_with(
                &sbx,
                "scanpay.toml",
                "private_key_file",
                &format!("private_key_file = \"{}\"", stranger.display()),
            ),
            "isv.invalid-signature",
        ),
        (
            config_with(
                &sbx,
                "scanpay.toml",
                "app_id",
                "app_id = \"2021009999999999\"",
            ),
            "isv.invalid-app-id",
        ),
        (
            config_with(
                &sbx,
                "scanpay-ams.toml",
                "private_key_file",
                &format!("private_key_file = \"{}\"", stranger.display()),
            ),
            "INVALID_SIGNATURE",
        ),
        (
            config_with(
                &sbx,
                "scanpay-ams.toml",
                "client_id",
                "client_id = \"SANDBOX_NOSUCHCLIENT\"",
            ),
            "CLIENT_INVALID",
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let code = format!("2860000000000{i:03}00");
        let (out, took) = charge(config, "5.00", &code);
        let sale = sale_of(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{expected}: {sale}\n{stderr}");
        assert_eq!(sale["state"], "failed");
        assert_eq!(sale["attempts"][0]["result_code"], *expected, "{sale}");
        assert_eq!(sale["attempts"][0]["inquiries"], 0, "no inquiry was needed");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(took < Duration::from_secs(5), "{expected}: took {took:?}");
        let journal = journal_of(config);
        assert_no_attention(&journal);
        // The gateway's message quotes the signed content, auth_code included: scrubbed.
        assert_code_absent(&journal, &code, &[&out.stdout, &out.stderr]);
        let show = scanpay()
            .args(["journal", "export", "--format", "json", "--journal"])
            .arg(&journal)
            .output()
            .unwrap();
        assert_code_absent(&journal, &code, &[&show.stdout, &show.stderr]);
    }
    assert!(sbx.ledger().is_empty(), "nothing reached the ledger");
}

fn probe(config: &Path) -> Output {
    scanpay()
        .args(["check-config", "--probe"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_config_probe_fails_on_each_wrong_credential_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    for written in ["scanpay.toml", "scanpay-ams.toml"] {
        let out = probe(&sbx.config_from(written));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{written}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("OK   gateway"));
    }
    let stranger = stranger_key(dir.path());
    let key = format!("private_key_file = \"{}\"", stranger.display());
    let wrong_alipay_key = dir.path().join("wrong_alipay_public.pem");
    PrivateKey::generate(2048, "other")
        .unwrap()
        .public_key()
        .write_pem(&wrong_alipay_key)
        .unwrap();
    let alipay = format!(
        "alipay_public_key_file = \"{}\"",
        wrong_alipay_key.display()
    );
    let cases = [
        (
            config_with(&sbx, "scanpay.toml", "private_key_file", &key),
            &["private_key_file", "开发设置"][..],
        ),
        (
            config_with(
                &sbx,
                "scanpay.toml",
                "app_id",
                "app_id = \"2021009999999999\"",
            ),
            &["app_id", "APPID"][..],
        ),
        (
            config_with(&sbx, "scanpay.toml", "alipay_public_key_file", &alipay),
            &["alipay_public_key_file", "支付宝公钥"][..],
        ),
        (
            config_with(&sbx, "scanpay-ams.toml", "private_key_file", &key),
            &["private_key_file", "Key configuration"][..],
        ),
        (
            config_with(
                &sbx,
                "scanpay-ams.toml",
                "client_id",
                "client_id = \"SANDBOX_NOSUCHCLIENT\"",
            ),
            &["client_id", "Client ID"][..],
        ),
        (
            config_with(&sbx, "scanpay-ams.toml", "key_version", "key_version = 7"),
            &["key_version"][..],
        ),
    ];
    for (config, names) in cases {
        let out = probe(&config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{}: {stderr}", config.display());
        let line = stderr
            .lines()
            .find(|l| l.starts_with("FAIL gateway"))
            .unwrap_or_else(|| panic!("no FAIL gateway line:\n{stderr}"));
        for name in names {
            assert!(line.contains(name), "{name} not in {line}");
        }
    }
}

/// A daemon with the register API, on a copy of the sandbox's config whose gateway URL is
/// `url`.
fn daemon_at(sbx: &SandboxProc, url: &str) -> (common::procs::Daemon, PathBuf) {
    let text = std::fs::read_to_string(sbx.config())
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("url = ") {
                format!("url = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n[api]\nsocket = \"api-edge.sock\"\n";
    let config = sbx.dir.join("daemon-edge.toml");
    std::fs::write(&config, text).unwrap();
    let daemon = common::procs::Daemon::start(&config, None);
    let socket = sbx.dir.join("api-edge.sock");
    let end = Instant::now() + Duration::from_secs(15);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < end, "no API socket:\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, socket)
}

async fn wait_health(socket: &Path, state: &str, daemon: &common::procs::Daemon) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, health) = common::call(socket, "GET", "/v1/health", &[], "").await;
        if health["gateway"]["reachability"]["state"] == state {
            return health;
        }
        assert!(
            Instant::now() < end,
            "gateway never {state}: {health}\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SALE: &str = r#"{"amount":"2.00","currency":"CNY"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_that_never_left_refuses_new_sales_until_the_gateway_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    let port = sbx.port;
    sbx.stop(); // the gateway's port is closed now
    let (mut daemon, socket) = daemon_at(&sbx, &format!("http://127.0.0.1:{port}/gateway.do"));
    let (st, first) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 201, "{first}");
    let id = first["sale_id"].as_str().unwrap().to_string();
    daemon.feed("286000000000000300\n");
    // The pay could not leave: not charged, and the gateway is offline at once.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sale) = common::call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        if sale["attempts"][0]["result_code"] == "not_sent" {
            break;
        }
        assert!(Instant::now() < end, "{sale}\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (st, refused) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "offline", "{refused}");
    let (st, health) = common::call(&socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(st, 503);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["gateway"]["reachability"]["state"], "offline");
    // The gateway comes back on the same port: the offline probe finds it.
    let _back = SandboxProc::start(&sbx.dir, port);
    wait_health(&socket, "online", &daemon).await;
    let (st, cancel) =
        common::call(&socket, "POST", &format!("/v1/sales/{id}/cancel"), &[], "").await;
    assert_eq!(st, 200, "{cancel}");
    let (st, sale) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 201, "taken again: {sale}");
}

/// A gateway that takes every connection, reads the request and closes without answering.
fn answers_nothing() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/gateway.do",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        use std::io::Read;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut buf);
            drop(stream);
        }
    });
    (url, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_loses_every_answer_refuses_new_sales_after_three_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    let (url, _gateway) = answers_nothing();
    let (mut daemon, socket) = daemon_at(&sbx, &url);
    let (st, first) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 201, "{first}");
    daemon.feed("286000000000000400\n");
    // The pay's answer is lost (in doubt); so are the inquiries that follow: after the
    // third lost answer in a row the gateway counts as not answering.
    let health = wait_health(&socket, "not_answering", &daemon).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["gateway"]["reachability"]["lost_answers"]
            .as_u64()
            .unwrap()
            >= 3,
        "{health}"
    );
    assert_eq!(
        health["gateway"]["sales_refused"]["code"], "offline",
        "{health}"
    );
    let (st, refused) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "offline");
    let message = refused["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("not answering"), "{message}");
    // The sale in doubt stays open for the watchdog; nothing is lost.
    let (_, sale) = common::call(
        &socket,
        "GET",
        &format!("/v1/sales/{}", first["sale_id"].as_str().unwrap()),
        &[],
        "",
    )
    .await;
    assert!(
        matches!(sale["state"].as_str(), Some("processing")),
        "{sale}"
    );
}

#[test]
fn a_customer_who_pays_as_the_cancel_arrives_is_refunded_and_told_so() {
    let dir = tempfile::tempdir().unwrap();
    for written in ["scanpay.toml", "scanpay-ams.toml"] {
        let sbx = SandboxProc::start(&dir.path().join(written), 0);
        let config = sbx.config_from(written);
        let (out, _) = charge(&config, "6.13", "286000000000000013");
        let sale = sale_of(&out);
        assert_eq!(out.status.code(), Some(1), "{written}: {sale}");
        assert_eq!(sale["state"], "cancelled", "{written}: {sale}");
        assert_eq!(
            sale["attempts"][0]["paid_then_refunded"], true,
            "{written}: the cancel refunded a payment: {sale}"
        );
        let message = sale["message"].as_str().unwrap_or("");
        assert!(message.contains("refunded"), "{message}");
        assert_journal_and_ledger_agree(&journal_of(&config), &sbx.ledger());
        assert_eq!(sbx.ledger()[0].1, 0, "charged, then given back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusing_the_credentials_refuses_new_sales_with_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let sbx = SandboxProc::start(&dir.path().join("sbx"), 0);
    let url = format!("http://127.0.0.1:{}/gateway.do", sbx.port);
    let (mut daemon, socket) = daemon_at(&sbx, &url);
    // The same daemon, but with an app id the gateway does not know.
    let _ = daemon.terminate();
    let config = sbx.dir.join("daemon-edge.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "app_id = \"2021000000000001\"",
        "app_id = \"2021009999999999\"",
    );
    std::fs::write(&config, text).unwrap();
    let _ = std::fs::remove_file(&socket);
    let mut daemon = common::procs::Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < end, "no API socket:\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, first) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 201, "{first}");
    let id = first["sale_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    daemon.feed("286000000000000500\n");
    let health = wait_health(&socket, "refusing", &daemon).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        health["gateway"]["reachability"]["code"],
        "isv.invalid-app-id"
    );
    assert_eq!(
        health["gateway"]["sales_refused"]["code"], "gateway_refusing",
        "{health}"
    );
    let (_, sale) = common::call(&socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!(sale["attempts"][0]["state"], "failed", "{sale}");
    assert_eq!(sale["attempts"][0]["result_code"], "isv.invalid-app-id");
    let (st, refused) = common::call(&socket, "POST", "/v1/sales", &[], SALE).await;
    assert_eq!(st, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "gateway_refusing");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("isv.invalid-app-id"),
        "{refused}"
    );
    let status = scanpay()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("REFUSING") && text.contains("isv.invalid-app-id"),
        "{text}"
    );
    let metrics = {
        let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .uri("/metrics")
            .header("host", "scanpay")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    };
    assert!(
        metrics.contains("scanpay_gateway_state{state=\"refusing\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("scanpay_gateway_up 0"), "{metrics}");
    assert!(sbx.ledger().is_empty());
}
