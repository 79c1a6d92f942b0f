//! The Open Platform client over real HTTP on loopback: against the sandbox server (in this
//! process and as a separate `scanpay sandbox` process), and against a fake server serving
//! answers that must not be trusted.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::ledger;
use scanpay::clock::{Clock, SystemClock};
use scanpay::config::Config;
use scanpay::engine::{Engine, EngineSettings, SaleRequest, ScanOutcome};
use scanpay::events::LogObserver;
use scanpay::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use scanpay::gateway::keys::{PrivateKey, PublicKey};
use scanpay::gateway::{Gateway, Outcome, PayRequest, UnknownKind};
use scanpay::journal::Journal;
use scanpay::money::{Amount, Currency};
use scanpay::paycode::{Scan, recognise};
use scanpay::sandbox::DEFAULT_APP_ID;
use scanpay::state::{AttemptState, SaleState};
use serde_json::Value;

fn cny(text: &str) -> Amount {
    Amount::parse(text, Currency::from_code("CNY").unwrap()).unwrap()
}

fn client(
    url: &str,
    key: PrivateKey,
    alipay: PublicKey,
    app_id: &str,
    timeout: Duration,
) -> OpenApi {
    let settings = OpenApiSettings {
        url: url::Url::parse(url).unwrap(),
        app_id: app_id.to_string(),
        private_key: key,
        alipay_public_key: alipay,
        app_auth_token: None,
        notify_url: None,
        seller_id: None,
        sys_service_provider_id: None,
        timeout,
        cert_mode: None,
    };
    OpenApi::new(settings, Arc::new(SystemClock)).unwrap()
}

fn pay_request(request_id: &str, code: &str) -> PayRequest {
    let Scan::Payment(code) = recognise(code) else {
        panic!("{code}")
    };
    PayRequest {
        request_id: request_id.to_string(),
        code,
        amount: cny("10.00"),
        subject: "test".into(),
        terminal_id: "T1".into(),
        store_id: Some("S1".into()),
        signing_key: None,
        basket: Default::default(),
        signed: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_code_through_the_real_http_client_and_the_ledger_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let app_key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
    let alipay = sandbox.keys.gateway_key.public_key();
    let mut config = Config::demo(Path::new("unused")).unwrap();
    config.watchdog.sale_deadline = Duration::from_secs(6);
    config.watchdog.inquiry_interval = Some(Duration::from_millis(500));
    let expected = [
        ("00", SaleState::Paid),
        ("01", SaleState::Failed),
        ("02", SaleState::Failed),
        ("03", SaleState::Paid),
        ("04", SaleState::Cancelled),
        ("05", SaleState::Paid),
        ("06", SaleState::Paid),
        ("07", SaleState::Paid),
        ("08", SaleState::Paid),
        ("09", SaleState::Failed),
    ];
    // One terminal (engine and journal) per code, all against one sandbox, concurrently.
    let mut runs = Vec::new();
    for (ending, want) in expected {
        let journal =
            Arc::new(Journal::open(&dir.path().join(format!("j{ending}.sqlite"))).unwrap());
        let gateway = Arc::new(client(
            &sandbox.url,
            app_key.clone(),
            alipay.clone(),
            DEFAULT_APP_ID,
            Duration::from_secs(2),
        ));
        let settings = EngineSettings {
            terminal: config.terminal.clone(),
            timeout: Duration::from_secs(2),
            watchdog: config.watchdog.clone(),
            qr_timeout: Duration::from_secs(120),
            cancel_give_up_after: Some(Duration::from_secs(10)),
            resolve_inline: true,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let engine = Engine::new(
            journal.clone(),
            gateway,
            clock,
            Arc::new(LogObserver),
            settings,
        );
        runs.push(tokio::spawn(async move {
            engine.arm(SaleRequest::at_the_till(cny("10.00"))).unwrap();
            let outcome = engine.scan(&format!("2860000000000000{ending}")).await;
            let ScanOutcome::Attempted { sale } = outcome else {
                panic!("{ending}: {outcome:?}")
            };
            assert_eq!(sale.state, want, "code {ending}: {sale:?}");
            (ending, journal)
        }));
    }
    let mut journals = Vec::new();
    for run in runs {
        journals.push(run.await.unwrap());
    }
    let ledger = ledger(&sandbox.ledger_url).await;
    assert_eq!(ledger.len(), 10);
    for (ending, journal) in journals {
        let sale = &journal.sales(&Default::default()).unwrap()[0];
        let attempt = &journal.attempts(&sale.id).unwrap()[0];
        let entry = ledger
            .iter()
            .find(|e| e["request_id"] == attempt.request_id.as_str())
            .unwrap();
        let net =
            entry["charged_minor"].as_i64().unwrap() - entry["refunded_minor"].as_i64().unwrap();
        let paid = attempt.state == AttemptState::Succeeded;
        assert_eq!(net, if paid { 1000 } else { 0 }, "code {ending}: {entry}");
        assert!(journal.open_attempts().unwrap().is_empty(), "{ending}");
    }
}

#[tokio::test]
async fn a_request_the_gateway_cannot_verify_is_refused_and_charges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let alipay = sandbox.keys.gateway_key.public_key();
    let stranger = PrivateKey::generate(2048, "stranger").unwrap();
    let wrong_key = client(
        &sandbox.url,
        stranger,
        alipay.clone(),
        DEFAULT_APP_ID,
        Duration::from_secs(5),
    );
    // Refused at the door, unsigned (as the platform does): believed, nothing moved.
    let Outcome::Rejected(f) = wrong_key
        .pay(&pay_request("T1_a", "286000000000000000"))
        .await
    else {
        panic!()
    };
    assert_eq!(f.code, "isv.invalid-signature");
    assert!(f.cashier.contains("not charged"), "{}", f.cashier);

    let app_key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
    let wrong_app = client(
        &sandbox.url,
        app_key,
        alipay,
        "2021999999999999",
        Duration::from_secs(5),
    );
    let Outcome::Rejected(f) = wrong_app
        .pay(&pay_request("T1_b", "286000000000000100"))
        .await
    else {
        panic!()
    };
    assert_eq!(f.code, "isv.invalid-app-id");
    assert!(
        ledger(&sandbox.ledger_url).await.is_empty(),
        "nothing reached the ledger"
    );
}

/// A pay request signed ahead (`sign_pay`, while its attempt's row is synced) is sent as it
/// was signed, but only by the client that signed it and only for the request it was signed
/// for: any other signs the request afresh.
#[tokio::test]
async fn a_request_signed_ahead_is_sent_only_by_its_signer_for_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let app_key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
    let alipay = sandbox.keys.gateway_key.public_key();
    let new_client = || {
        client(
            &sandbox.url,
            app_key.clone(),
            alipay.clone(),
            DEFAULT_APP_ID,
            Duration::from_secs(5),
        )
    };
    let (a, b) = (new_client(), new_client());
    let paid_minor = |o: Outcome<scanpay::gateway::Paid>| match o {
        Outcome::Success(p) => p.amount.map(|a| a.minor()),
        other => panic!("{other:?}"),
    };
    // Each request is signed at 10.00 and then asks for 20.00: which amount is charged
    // shows whether the signature made ahead was sent.
    let ahead = |client: &OpenApi, request_id: &str, code: &str| {
        let signed = client.sign_pay(&pay_request(request_id, code));
        assert!(signed.is_some(), "the Open Platform client signs ahead");
        signed
    };
    let mut by_a = pay_request("T1_a", "286000000000000000");
    by_a.signed = ahead(&a, "T1_a", "286000000000000000");
    by_a.amount = cny("20.00");
    assert_eq!(paid_minor(a.pay(&by_a).await), Some(1000), "sent as signed");

    let mut not_by_b = pay_request("T1_b", "286000000000000100");
    not_by_b.signed = ahead(&a, "T1_b", "286000000000000100");
    not_by_b.amount = cny("20.00");
    assert_eq!(
        paid_minor(b.pay(&not_by_b).await),
        Some(2000),
        "signed afresh"
    );

    let mut another = pay_request("T1_c", "286000000000000200");
    another.signed = ahead(&a, "T1_x", "286000000000000200");
    another.amount = cny("20.00");
    assert_eq!(
        paid_minor(a.pay(&another).await),
        Some(2000),
        "signed afresh"
    );

    let charged: Vec<(String, i64)> = ledger(&sandbox.ledger_url)
        .await
        .iter()
        .map(|e| {
            (
                e["request_id"].as_str().unwrap().to_string(),
                e["charged_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        charged,
        [
            ("T1_a".to_string(), 1000),
            ("T1_b".to_string(), 2000),
            ("T1_c".to_string(), 2000)
        ]
    );
}

#[tokio::test]
async fn an_answer_signed_by_another_key_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::sandbox(dir.path()).await;
    let app_key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
    // Trusting the wrong Alipay key: even a real success proves nothing.
    let c = client(
        &sandbox.url,
        app_key.clone(),
        app_key.public_key(),
        DEFAULT_APP_ID,
        Duration::from_secs(5),
    );
    let outcome = c.pay(&pay_request("T1_c", "286000000000000000")).await;
    assert!(
        matches!(&outcome, Outcome::Unknown(u) if u.kind == UnknownKind::BadSignature),
        "{outcome:?}"
    );
}

async fn fake_server(answers: Vec<Vec<u8>>) -> String {
    format!("{}/gateway.do", common::fake_http(answers).await.0)
}

fn http(status: &str, body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn answers_that_cannot_be_trusted_are_unknown_never_success_never_failure() {
    let alipay = PrivateKey::generate(1024, "fake alipay").unwrap();
    let app = PrivateKey::generate(1024, "app").unwrap();
    let node = r#"{"code":"10000","msg":"Success","trade_no":"2024","out_trade_no":"T1_x","total_amount":"10.00"}"#;
    let signed = |content: &str| {
        format!(
            r#"{{"alipay_trade_pay_response":{content},"sign":"{}"}}"#,
            alipay.sign_sha256_base64(content.as_bytes())
        )
    };
    let good = signed(node);
    let failure_node = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.BUYER_BALANCE_NOT_ENOUGH","out_trade_no":"T1_x"}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", http("200 OK", "this is not json", "")),
        (
            "HTML error page",
            http(
                "502 Bad Gateway",
                "<html><body>502 Bad Gateway</body></html>",
                "",
            ),
        ),
        (
            "HTML with 200",
            http("200 OK", "<html><body>maintenance</body></html>", ""),
        ),
        (
            "missing node",
            http(
                "200 OK",
                r#"{"other_response":{"code":"10000"},"sign":"x"}"#,
                "",
            ),
        ),
        (
            "unsigned success",
            http(
                "200 OK",
                &format!(r#"{{"alipay_trade_pay_response":{node}}}"#),
                "",
            ),
        ),
        (
            "unsigned failure",
            http(
                "200 OK",
                &format!(r#"{{"alipay_trade_pay_response":{failure_node}}}"#),
                "",
            ),
        ),
        (
            "tampered amount",
            http("200 OK", &good.replace("\"10.00\"", "\"1.00\""), ""),
        ),
        (
            "second node injected",
            http(
                "200 OK",
                &good.replace(
                    ",\"sign\"",
                    &format!(",\"alipay_trade_pay_response\":{node},\"sign\""),
                ),
                "",
            ),
        ),
        (
            "truncated body",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                good.len(),
                &good[..good.len() / 2]
            )
            .into_bytes(),
        ),
        ("connection closed without answer", Vec::new()),
        ("empty 200", http("200 OK", "", "")),
    ];
    let url = fake_server(cases.iter().map(|(_, a)| a.clone()).collect()).await;
    let c = client(
        &url,
        app,
        alipay.public_key(),
        DEFAULT_APP_ID,
        Duration::from_secs(5),
    );
    for (what, _) in &cases {
        let outcome = c.pay(&pay_request("T1_x", "286000000000000000")).await;
        assert!(
            matches!(outcome, Outcome::Unknown(_)),
            "{what}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_correctly_signed_answer_is_believed_and_the_clock_is_compared() {
    let alipay = PrivateKey::generate(1024, "fake alipay").unwrap();
    let app = PrivateKey::generate(1024, "app").unwrap();
    let node = r#"{"code":"10000","msg":"Success","trade_no":"2024","out_trade_no":"T1_x","total_amount":"10.00"}"#;
    let body = format!(
        r#"{{"alipay_trade_pay_response":{node},"sign":"{}"}}"#,
        alipay.sign_sha256_base64(node.as_bytes())
    );
    let url = fake_server(vec![http(
        "200 OK",
        &body,
        "Date: Wed, 01 Jan 2020 00:00:00 GMT\r\n",
    )])
    .await;
    let c = client(
        &url,
        app,
        alipay.public_key(),
        DEFAULT_APP_ID,
        Duration::from_secs(5),
    );
    let Outcome::Success(paid) = c.pay(&pay_request("T1_x", "286000000000000000")).await else {
        panic!()
    };
    assert_eq!(paid.trade_id, "2024");
    assert_eq!(paid.amount, Some(cny("10.00")));
    assert!(
        c.clock_skew_s().unwrap() < -86_400,
        "a gateway clock years behind is measured"
    );
}

#[tokio::test]
async fn a_refused_connection_is_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    drop(listener);
    let key = PrivateKey::generate(1024, "k").unwrap();
    let c = client(
        &url,
        key.clone(),
        key.public_key(),
        DEFAULT_APP_ID,
        Duration::from_secs(2),
    );
    let outcome = c.pay(&pay_request("T1_y", "286000000000000000")).await;
    assert!(matches!(outcome, Outcome::NotSent(_)), "{outcome:?}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `scanpay sandbox` on a free port; returns it with its client config path.
fn sandbox_process(dir: &Path) -> (Killed, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut config, mut ledger) = (String::new(), String::new());
    while config.is_empty() || ledger.is_empty() {
        let line = lines
            .next()
            .expect("sandbox printed its addresses")
            .unwrap();
        if let Some(c) = line.trim().strip_prefix("client config: ") {
            config = c.to_string();
        }
        if let Some(l) = line.trim().strip_prefix("ledger: ") {
            ledger = l.to_string();
        }
    }
    (Killed(child), config, ledger)
}

#[tokio::test]
async fn charge_against_the_sandbox_process_is_paid() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, config, ledger_url) = sandbox_process(&dir.path().join("sbx"));
    let check = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(["check-config", &config])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args([
            "charge",
            "--config",
            &config,
            "--amount",
            "10.00",
            "--code",
            "286000000000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sale: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sale["state"], "paid");
    assert_eq!(sale["attempts"][0]["gateway"], "alipay-openapi");
    let ledger = ledger(&ledger_url).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["charged_minor"], 1000);
    assert_eq!(ledger[0]["request_id"], sale["attempts"][0]["request_id"]);

    // Refund part of it through the same gateway, then try to refund more than is left.
    let sale_id = sale["sale_id"].as_str().unwrap();
    let refund = |amount: &str| {
        Command::new(env!("CARGO_BIN_EXE_scanpay"))
            .args([
                "refund",
                "--config",
                &config,
                sale_id,
                "--amount",
                amount,
                "--reason",
                "one item returned",
            ])
            .output()
            .unwrap()
    };
    let out = refund("4.00");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["state"].as_str(), r["amount"].as_str()),
        (Some("succeeded"), Some("4.00"))
    );
    let too_much = refund("6.01");
    assert_eq!(too_much.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_much.stderr).contains("left to refund"));
    let after = self::ledger(&ledger_url).await;
    assert_eq!(after[0]["refunded_minor"], 400);
    let shown = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(["journal", "show", sale_id, "--config", &config])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["refunds"][0]["state"], "succeeded");
    // The Open Platform names a refund only by our out_request_no: that is its id here,
    // not the trade's number every refund of the sale shares.
    assert_eq!(
        shown["refunds"][0]["gateway_refund_id"],
        shown["refunds"][0]["refund_id"]
    );
}

#[test]
fn check_config_catches_the_app_key_in_place_of_alipays() {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        scanpay::sandbox::SandboxKeys::load_or_create(&dir.path().join("k"), 1024, None).unwrap();
    let write = |alipay_key: &str| {
        let config = format!(
            "[terminal]\nid = \"T1\"\ncurrency = \"CNY\"\nmax_amount = \"100.00\"\n\n[gateway]\nkind = \"alipay-openapi\"\nurl = \"https://openapi.alipay.com/gateway.do\"\napp_id = \"2021000000000001\"\nprivate_key_file = \"k/app_private_key.pem\"\nalipay_public_key_file = \"{alipay_key}\"\n\n[journal]\npath = \"j.sqlite\"\n"
        );
        std::fs::write(dir.path().join("c.toml"), config).unwrap();
        Command::new(env!("CARGO_BIN_EXE_scanpay"))
            .arg("check-config")
            .arg(dir.path().join("c.toml"))
            .output()
            .unwrap()
    };
    let ok = write("k/alipay_public_key.pem");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mistake = write("k/app_public_key.pem");
    assert_eq!(mistake.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&mistake.stderr);
    assert!(
        stderr.contains("alipay_public_key_file") && stderr.contains("own public key"),
        "{stderr}"
    );
    // A private key others may read is refused, naming the fix.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        keys.app_private_key_file.as_ref().unwrap(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let loose = write("k/alipay_public_key.pem");
    assert_eq!(loose.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&loose.stderr).contains("chmod 600"));
}
