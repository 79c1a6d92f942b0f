//! The Antom AMS client over real HTTP on loopback: against the sandbox server, against a
//! separate `scanpay sandbox` process with `scanpay charge`, and against a fake server that
//! tampers with answers or throttles.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ledger;
use scanpay::clock::{Clock, SystemClock};
use scanpay::config::Config;
use scanpay::engine::{Engine, EngineSettings, SaleRequest, ScanOutcome};
use scanpay::events::LogObserver;
use scanpay::gateway::alipay_ams::wire::{Merchant, sign_content, signature_header};
use scanpay::gateway::alipay_ams::{Ams, AmsSettings};
use scanpay::gateway::keys::{PrivateKey, PublicKey};
use scanpay::gateway::{Gateway, Outcome, PayRequest, RefundRequest, TradeStatus, UnknownKind};
use scanpay::journal::Journal;
use scanpay::money::{Amount, Currency};
use scanpay::paycode::{Scan, recognise};
use scanpay::sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID};
use scanpay::state::{AttemptState, SaleState};
use serde_json::{Value, json};

fn usd(minor: i64) -> Amount {
    Amount::from_minor(minor, Currency::from_code("USD").unwrap())
}

fn merchant() -> Merchant {
    Merchant {
        reference_merchant_id: "M0001".into(),
        merchant_name: "Test Cafe".into(),
        merchant_mcc: "5812".into(),
        reference_store_id: "S0001".into(),
        store_name: "Test Cafe Main St".into(),
        merchant_region: None,
        settlement_currency: None,
        payment_notify_url: None,
    }
}

fn client(origin: &str, client_id: &str, key: PrivateKey, alipay: PublicKey) -> Ams {
    let settings = AmsSettings {
        origin: url::Url::parse(origin).unwrap(),
        client_id: client_id.to_string(),
        key_version: 1,
        private_key: key,
        alipay_public_key: alipay,
        merchant: merchant(),
        payment_expiry: Some(Duration::from_secs(180)),
        timeout: Duration::from_secs(2),
    };
    Ams::new(settings, Arc::new(SystemClock)).unwrap()
}

fn pay_request(request_id: &str, code: &str, amount: Amount) -> PayRequest {
    let Scan::Payment(code) = recognise(code) else {
        panic!("{code}")
    };
    PayRequest {
        request_id: request_id.to_string(),
        code,
        amount,
        subject: "coffee".into(),
        terminal_id: "T1".into(),
        store_id: None,
        signing_key: None,
        basket: Default::default(),
        signed: None,
    }
}

async fn sandbox(dir: &Path) -> (scanpay::cli::sandbox::Running, PrivateKey, PublicKey) {
    let running = scanpay::cli::sandbox::start(
        ([127, 0, 0, 1], 0).into(),
        dir,
        DEFAULT_APP_ID,
        DEFAULT_CLIENT_ID,
        None,
    )
    .await
    .unwrap();
    let app = PrivateKey::load(running.keys.app_private_key_file.as_ref().unwrap()).unwrap();
    let alipay = running.keys.gateway_key.public_key();
    (running, app, alipay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_code_through_the_real_ams_client_and_the_ledger_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, alipay) = sandbox(&dir.path().join("sbx")).await;
    let mut config = Config::demo(Path::new("unused")).unwrap();
    config.terminal.currency = Currency::from_code("USD").unwrap();
    config.terminal.max_amount = usd(500_000);
    config.watchdog.sale_deadline = Duration::from_secs(6);
    config.watchdog.inquiry_interval = Some(Duration::from_millis(500));
    let table = [
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
    let mut runs = Vec::new();
    for (ending, want) in table {
        let journal =
            Arc::new(Journal::open(&dir.path().join(format!("j{ending}.sqlite"))).unwrap());
        let gateway = Arc::new(client(
            &sbx.origin,
            DEFAULT_CLIENT_ID,
            app.clone(),
            alipay.clone(),
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
            engine.arm(SaleRequest::at_the_till(usd(1231))).unwrap();
            let outcome = engine.scan(&format!("2860000000000000{ending}")).await;
            let ScanOutcome::Attempted { sale } = outcome else {
                panic!("{ending}: {outcome:?}")
            };
            assert_eq!(sale.state, want, "code {ending}: {sale:?}");
            assert_eq!(sale.attempts[0].gateway, "alipay-ams");
            (ending, journal)
        }));
    }
    let mut journals = Vec::new();
    for run in runs {
        journals.push(run.await.unwrap());
    }
    let ledger = ledger(&sbx.ledger_url).await;
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
        assert_eq!(net, if paid { 1231 } else { 0 }, "code {ending}: {entry}");
    }
}

#[tokio::test]
async fn refunds_and_their_inquiry_go_through_ams() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, alipay) = sandbox(&dir.path().join("sbx")).await;
    let c = client(&sbx.origin, DEFAULT_CLIENT_ID, app, alipay);
    let Outcome::Success(paid) = c
        .pay(&pay_request("T1_r", "286000000000000000", usd(1000)))
        .await
    else {
        panic!()
    };
    let refund = RefundRequest {
        refund_id: "T1_r_R1".into(),
        payment_request_id: "T1_r".into(),
        trade_id: Some(paid.trade_id),
        amount: usd(400),
        reason: Some("one item returned".into()),
    };
    assert!(matches!(
        c.inquire_refund(&refund).await,
        Outcome::Success(false)
    ));
    assert!(matches!(c.refund(&refund).await, Outcome::Success(_)));
    assert!(
        matches!(c.refund(&refund).await, Outcome::Success(_)),
        "same refund id: same result, once"
    );
    assert_eq!(c.inquire_refund(&refund).await, Outcome::Success(true));
    let ledger = ledger(&sbx.ledger_url).await;
    assert_eq!(ledger[0]["refunded_minor"], 400);
    // Without the payment id the client finds it by inquiry.
    let second = RefundRequest {
        refund_id: "T1_r_R2".into(),
        trade_id: None,
        amount: usd(100),
        ..refund
    };
    assert!(matches!(c.refund(&second).await, Outcome::Success(_)));
    assert_eq!(ledger_refunded(&sbx.ledger_url).await, 500);
}

async fn ledger_refunded(url: &str) -> i64 {
    ledger(url).await[0]["refunded_minor"].as_i64().unwrap()
}

#[tokio::test]
async fn requests_the_gateway_cannot_verify_are_refused_and_charge_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, alipay) = sandbox(&dir.path().join("sbx")).await;
    let stranger = PrivateKey::generate(1024, "stranger").unwrap();
    let wrong_key = client(&sbx.origin, DEFAULT_CLIENT_ID, stranger, alipay.clone());
    // Refused at the door, unsigned: believed as a refusal that moved nothing.
    let Outcome::Rejected(f) = wrong_key
        .pay(&pay_request("T1_a", "286000000000000000", usd(100)))
        .await
    else {
        panic!()
    };
    assert_eq!(f.code, "INVALID_SIGNATURE");
    let wrong_client = client(&sbx.origin, "SANDBOX_OTHER", app, alipay.clone());
    let outcome = wrong_client
        .pay(&pay_request("T1_b", "286000000000000100", usd(100)))
        .await;
    assert!(
        matches!(&outcome, Outcome::Rejected(f) if f.code == "CLIENT_INVALID"),
        "{outcome:?}"
    );
    assert!(ledger(&sbx.ledger_url).await.is_empty());
    // An unsigned answer that is not a refusal at the door proves nothing.
    let body = r#"{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"ok"},"paymentId":"P","paymentRequestId":"T1_c"}"#;
    let unsigned = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (url, _) = fake_ams(vec![unsigned.into_bytes()]).await;
    let stranger = PrivateKey::generate(1024, "stranger").unwrap();
    let faked = client(&url, DEFAULT_CLIENT_ID, stranger, alipay);
    let outcome = faked
        .pay(&pay_request("T1_c", "286000000000000200", usd(100)))
        .await;
    assert!(
        matches!(&outcome, Outcome::Unknown(u) if u.kind == UnknownKind::BadSignature),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_sandbox_refuses_a_wallet_pay_that_names_no_settlement_currency() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, _) = sandbox(&dir.path().join("sbx")).await;
    let path = "/ams/sandbox/api/v1/payments/pay";
    let send = |body: Value| {
        let body = body.to_string();
        let time = "2026-12-02T10:00:00+08:00";
        let content = sign_content("POST", path, DEFAULT_CLIENT_ID, time, &body);
        let signature = signature_header(1, &app.sign_sha256_base64(content.as_bytes()));
        let request = reqwest::Client::new()
            .post(format!("{}{path}", sbx.origin.trim_end_matches('/')))
            .header("content-type", "application/json; charset=UTF-8")
            .header("client-id", DEFAULT_CLIENT_ID)
            .header("request-time", time)
            .header("signature", signature)
            .body(body)
            .timeout(Duration::from_secs(10));
        async move {
            let answer = request.send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&answer).unwrap()
        }
    };
    let mut pay = json!({
        "productCode": "IN_STORE_PAYMENT",
        "paymentRequestId": "T1_s",
        "paymentAmount": {"currency": "USD", "value": "100"},
        "paymentMethod": {"paymentMethodType": "CONNECT_WALLET", "paymentMethodId": "286000000000000000"},
        "paymentFactor": {"inStorePaymentScenario": "PaymentCode"},
        "order": {"orderDescription": "coffee", "env": {"storeTerminalId": "T1"}},
    });
    let refused = send(pay.clone()).await;
    assert_eq!(
        refused["result"],
        json!({"resultStatus": "F", "resultCode": "PARAM_ILLEGAL",
            "resultMessage": "settlementStrategy.settlementCurrency is required for CONNECT_WALLET"})
    );
    assert!(ledger(&sbx.ledger_url).await.is_empty());
    pay["settlementStrategy"] = json!({"settlementCurrency": "USD"});
    let paid = send(pay).await;
    assert_eq!(paid["result"]["resultStatus"], "S", "{paid}");
    assert_eq!(ledger(&sbx.ledger_url).await.len(), 1);
}

async fn fake_ams(answers: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    common::fake_http(answers).await
}

/// An HTTP answer signed as the gateway would sign it (optionally with changes after signing).
fn answer(
    gateway: &PrivateKey,
    path: &str,
    body: &str,
    tamper: impl Fn(String, String, String) -> (String, String, String),
) -> Vec<u8> {
    let time = "1704081602345".to_string();
    let content = sign_content("POST", path, "C1", &time, body);
    let sig = signature_header(1, &gateway.sign_sha256_base64(content.as_bytes()));
    let (body, time, sig) = tamper(body.to_string(), time, sig);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nclient-id: C1\r\nresponse-time: {time}\r\nsignature: {sig}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn tampered_answers_are_unknown_and_a_faithful_one_is_believed() {
    let gateway = PrivateKey::generate(1024, "gw").unwrap();
    let app = PrivateKey::generate(1024, "app").unwrap();
    let path = "/ams/api/v1/payments/pay";
    let paid = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS", "resultMessage": "success"},
        "paymentRequestId": "R1", "paymentId": "P1", "paymentAmount": {"currency": "USD", "value": "1231"}})
    .to_string();
    let keep = |b, t, s| (b, t, s);
    let answers = vec![
        answer(&gateway, path, &paid, |b: String, t, s| {
            (b.replace("1231", "1"), t, s)
        }),
        answer(&gateway, path, &paid, |b, _t, s| {
            (b, "1704081602346".to_string(), s)
        }),
        answer(&gateway, path, &paid, |b, t, _s| {
            (
                b,
                t,
                "algorithm=RSA256,keyVersion=1,signature=AAAA".to_string(),
            )
        }),
        answer(&gateway, path, &paid, |b, t, _s| (b, t, String::new())),
        answer(&app, path, &paid, keep),
        answer(&gateway, path, &paid, keep),
    ];
    let (origin, _) = fake_ams(answers).await;
    let c = client(&origin, "C1", app.clone(), gateway.public_key());
    for what in [
        "tampered body",
        "tampered response-time",
        "garbage signature",
        "no signature",
        "signed by another key",
    ] {
        let outcome = c
            .pay(&pay_request("R1", "286000000000000000", usd(1231)))
            .await;
        assert!(
            matches!(&outcome, Outcome::Unknown(u) if u.kind == UnknownKind::BadSignature),
            "{what}: {outcome:?}"
        );
    }
    let Outcome::Success(p) = c
        .pay(&pay_request("R1", "286000000000000000", usd(1231)))
        .await
    else {
        panic!()
    };
    assert_eq!((p.trade_id.as_str(), p.amount), ("P1", Some(usd(1231))));
}

#[tokio::test]
async fn a_throttled_pay_is_resent_with_the_same_request_id_and_bytes() {
    let gateway = PrivateKey::generate(1024, "gw").unwrap();
    let app = PrivateKey::generate(1024, "app").unwrap();
    let path = "/ams/api/v1/payments/pay";
    let throttled = json!({"result": {"resultStatus": "U", "resultCode": "REQUEST_TRAFFIC_EXCEED_LIMIT", "resultMessage": "slow down"}}).to_string();
    let paid = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS", "resultMessage": "success"},
        "paymentRequestId": "R9", "paymentId": "P9"})
    .to_string();
    let keep = |b, t, s| (b, t, s);
    let (origin, seen) = fake_ams(vec![
        answer(&gateway, path, &throttled, keep),
        answer(&gateway, path, &paid, keep),
    ])
    .await;
    let c = client(&origin, "C1", app, gateway.public_key());
    let outcome = c
        .pay(&pay_request("R9", "286000000000000000", usd(500)))
        .await;
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the resend is the same request");
    let body: Value = serde_json::from_str(&seen[0]).unwrap();
    assert_eq!(body["paymentRequestId"], "R9");
    assert_eq!(
        body["paymentAmount"],
        json!({"currency": "USD", "value": "500"})
    );
    assert_eq!(body["productCode"], "IN_STORE_PAYMENT");
    assert_eq!(
        body["settlementStrategy"],
        json!({"settlementCurrency": "USD"}),
        "unconfigured, the payment's own currency"
    );
    assert!(
        body["paymentExpiryTime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00")
    );
}

#[tokio::test]
async fn inquiry_and_cancel_report_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, alipay) = sandbox(&dir.path().join("sbx")).await;
    let c = client(&sbx.origin, DEFAULT_CLIENT_ID, app, alipay);
    assert_eq!(
        c.inquire("T1_none").await,
        Outcome::Success(TradeStatus::NotFound)
    );
    c.pay(&pay_request("T1_p", "286000000000000005", usd(100)))
        .await;
    assert!(matches!(
        c.inquire("T1_p").await,
        Outcome::Success(TradeStatus::Paid(_))
    ));
    assert_eq!(
        c.cancel("T1_p").await,
        Outcome::Success(scanpay::gateway::Cancelled::Refunded)
    );
    assert!(matches!(
        c.inquire("T1_p").await,
        Outcome::Success(TradeStatus::Reversed(_))
    ));
    c.pay(&pay_request("T1_w", "286000000000000104", usd(100)))
        .await;
    assert_eq!(
        c.inquire("T1_w").await,
        Outcome::Success(TradeStatus::Waiting)
    );
    assert_eq!(
        c.cancel("T1_w").await,
        Outcome::Success(scanpay::gateway::Cancelled::Closed)
    );
    let net: i64 = ledger(&sbx.ledger_url)
        .await
        .iter()
        .map(|e| e["charged_minor"].as_i64().unwrap() - e["refunded_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(net, 0);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn charge_with_an_ams_config_against_the_sandbox_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path().join("sbx"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let config = BufReader::new(stdout)
        .lines()
        .map(|l| l.unwrap())
        .find_map(|l| {
            l.trim()
                .strip_prefix("AMS client config: ")
                .map(str::to_string)
        })
        .expect("the sandbox wrote an AMS client config");
    let charge = |code: &str| {
        Command::new(env!("CARGO_BIN_EXE_scanpay"))
            .args([
                "charge", "--config", &config, "--amount", "12.31", "--code", code,
            ])
            .output()
            .unwrap()
    };
    let out = charge("286000000000000000");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sale: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (sale["state"].as_str(), sale["currency"].as_str()),
        (Some("paid"), Some("USD"))
    );
    assert_eq!(sale["attempts"][0]["gateway"], "alipay-ams");
    for (code, state, exit) in [
        ("286000000000000101", "failed", 1),
        ("286000000000000105", "paid", 0),
        ("286000000000000109", "failed", 1),
    ] {
        let out = charge(code);
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sale: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(sale["state"], state, "{code}");
    }
}

/// A cancel is decided by what Antom states after it: a failed inquiry before it does not
/// hold the cancel back, and a failed inquiry after it leaves the outcome unknown (never
/// "closed unpaid"), so the cancel is resent.
#[tokio::test]
async fn a_cancel_whose_inquiry_fails_is_unknown_not_closed() {
    let gateway = PrivateKey::generate(1024, "gw").unwrap();
    let bad_gateway =
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    let cancelled = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS", "resultMessage": "success"},
        "paymentRequestId": "T1_race", "paymentId": "P1", "cancelTime": "2026-12-02T10:00:00+08:00"})
    .to_string();
    let (url, seen) = fake_ams(vec![
        bad_gateway.clone(),
        answer(
            &gateway,
            "/ams/api/v1/payments/cancel",
            &cancelled,
            |b, t, s| (b, t, s),
        ),
        bad_gateway,
    ])
    .await;
    let key = PrivateKey::generate(1024, "app").unwrap();
    let c = client(&url, "C1", key, gateway.public_key());
    let outcome = c.cancel("T1_race").await;
    assert!(matches!(outcome, Outcome::Unknown(_)), "{outcome:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "inquiry, cancel, inquiry: {seen:?}");
    assert!(seen.iter().all(|b| b.contains("T1_race")));
}

/// The basket's goods go to AMS as `order.goods`: the sandbox reads them off the wire and
/// refuses goods that do not come to the amount, charging nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goods_reach_the_ams_sandbox_as_order_goods_and_must_come_to_the_amount() {
    use scanpay::money::basket::{Basket, Goods};
    let dir = tempfile::tempdir().unwrap();
    let (sbx, app, alipay) = sandbox(&dir.path().join("sbx")).await;
    let c = client(&sbx.origin, DEFAULT_CLIENT_ID, app, alipay);
    let basket = |price| Basket {
        goods: vec![Goods {
            id: "A1".into(),
            name: "Latte".into(),
            quantity: 2,
            price: usd(price),
            category: None,
        }],
        ..Basket::default()
    };
    let short = PayRequest {
        basket: basket(300),
        ..pay_request("T1_goods_short", "286000000000000500", usd(700))
    };
    assert!(
        matches!(c.pay(&short).await, Outcome::Failed(_)),
        "goods short of the amount are refused"
    );
    let fits = PayRequest {
        basket: basket(350),
        ..pay_request("T1_goods_fit", "286000000000000400", usd(700))
    };
    assert!(matches!(c.pay(&fits).await, Outcome::Success(_)));
    let body = reqwest::get(&sbx.ledger_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let seen = entries
        .iter()
        .find(|e| e["request_id"] == "T1_goods_fit")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        seen["goods"],
        serde_json::json!([{"goods_id": "A1", "quantity": 2, "price_minor": 350}])
    );
    assert!(
        entries
            .iter()
            .all(|e| e["request_id"] != "T1_goods_short" || e["charged_minor"] == 0),
        "{body}"
    );
}
