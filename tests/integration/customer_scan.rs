//! The customer scans the merchant's code: a real `scanpay run` against `scanpay sandbox`
//! over HTTP with real signatures, for the Open Platform (`alipay.trade.precreate`) and AMS
//! (Order Code, Entry Code). Paid; abandoned until the expiry and cancelled (with the
//! platform's "no such trade until scanned"); cancelled by the register; paid in the moment
//! of the cancel and refunded; the daemon killed while the QR is shown; a payment code
//! scanned while the QR is open, and both ways paying at once. After each, the sandbox's
//! ledger equals the journal.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::call;
use common::procs::{Daemon, SandboxProc, assert_journal_and_ledger_agree};
use scanpay::journal::Journal;
use serde_json::Value;

/// The shortest QR life a provider issues (a minute): the expiry cases wait it out, and the
/// few seconds after it before the sale is cancelled.
const QR_TIMEOUT_S: u64 = 60;

struct Till {
    _dir: tempfile::TempDir,
    sandbox: SandboxProc,
    config: PathBuf,
    daemon: Daemon,
    socket: PathBuf,
    currency: &'static str,
}

async fn till(written: &str, currency: &'static str) -> Till {
    till_with(written, currency, |text| {
        text + &format!(
            "\n[api]\nsocket = \"api.sock\"\n\n[sales]\nqr_timeout_s = {QR_TIMEOUT_S}\n\n[printer]\nkind = \"file\"\npath = \"printer.bin\"\n"
        )
    })
    .await
}

/// A sandbox and a daemon on the sandbox's client config `written`, as `edit` changes it.
async fn till_with(
    written: &str,
    currency: &'static str,
    edit: impl FnOnce(String) -> String,
) -> Till {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config_from(written);
    let text = edit(std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let daemon = start(&config, &socket).await;
    Till {
        _dir: dir,
        sandbox,
        config,
        daemon,
        socket,
        currency,
    }
}

async fn start(config: &Path, socket: &Path) -> Daemon {
    let daemon = Daemon::start(config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(socket).await.is_err() {
        assert!(Instant::now() < end, "no API socket:\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon
}

impl Till {
    fn journal(&self) -> PathBuf {
        // The sandbox's configs name their journal beside them.
        let text = std::fs::read_to_string(&self.config).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("path = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        self.sandbox.dir.join(name)
    }

    async fn qr_sale(&self, amount: &str) -> Value {
        let body = format!(
            r#"{{"amount":"{amount}","currency":"{}","method":"customer_scan"}}"#,
            self.currency
        );
        let (status, sale) = call(&self.socket, "POST", "/v1/sales", &[], &body).await;
        assert_eq!(status, 201, "{sale}\n{}", self.daemon.stderr());
        assert_eq!(sale["state"], "awaiting_payment", "{sale}");
        let qr = &sale["qr"];
        assert_eq!(qr["method"], "order_code", "{sale}");
        assert!(
            qr["content"]
                .as_str()
                .unwrap()
                .starts_with("https://qr.alipay.com/"),
            "{sale}"
        );
        assert_eq!(
            qr["svg_url"],
            format!("/v1/sales/{}/qr.svg", sale["sale_id"].as_str().unwrap())
        );
        sale
    }

    async fn wait_state(&self, id: &str, state: &str, limit: Duration) -> Value {
        let end = Instant::now() + limit;
        loop {
            let (_, sale) = call(&self.socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
            if sale["state"] == state {
                return sale;
            }
            assert!(
                Instant::now() < end,
                "sale {id} never became {state}: {sale}\n{}",
                self.daemon.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The sandbox plays the customer on the code shown for `sale`.
    fn customer(&self, sale: &Value, action: &str) {
        let request_id = sale["qr"]["request_id"].as_str().unwrap();
        let (status, body) = self.sandbox.post(&format!(
            "/_sandbox/customer?code={request_id}&action={action}"
        ));
        assert_eq!(status, 200, "{body}");
    }

    /// No attempt open, and what the sandbox kept equals what the journal says.
    fn books_agree(&self) {
        wait_open_none(&self.journal());
        assert_journal_and_ledger_agree(&self.journal(), &self.sandbox.ledger());
    }
}

fn wait_open_none(journal: &Path) {
    common::procs::wait_for(
        journal,
        Duration::from_secs(30),
        "every attempt final",
        |j| j.open_attempts().is_ok_and(|a| a.is_empty()),
    );
}

fn id(sale: &Value) -> String {
    sale["sale_id"].as_str().unwrap().to_string()
}

/// The sandbox's ledger entry of `request_id`: its state.
async fn ledger_state(t: &Till, request_id: &str) -> String {
    let url = format!("http://127.0.0.1:{}/_sandbox/ledger", t.sandbox.port);
    common::ledger(&url)
        .await
        .into_iter()
        .find(|e| e["request_id"] == request_id)
        .map(|e| e["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

async fn every_way(written: &str, currency: &'static str) {
    let mut t = till(written, currency).await;

    // Paid: the customer scans and confirms; the resolver sees it at its next inquiry.
    let sale = t.qr_sale("8.00").await;
    let (status, _) = call(
        &t.socket,
        "GET",
        &format!("/v1/sales/{}/qr.svg", id(&sale)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    // The slip the customer scans came out of the printer: the QR (`GS ( k`) of the code.
    let content = sale["qr"]["content"].as_str().unwrap().as_bytes().to_vec();
    let printer = t.sandbox.dir.join("printer.bin");
    let store = [
        &[0x1D, 0x28, 0x6B][..],
        &[(content.len() + 3) as u8, 0, 0x31, 0x50, 0x30],
        &content,
    ]
    .concat();
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&printer)
        .unwrap_or_default()
        .windows(store.len())
        .any(|w| w == store.as_slice())
    {
        assert!(Instant::now() < end, "no QR slip printed");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.customer(&sale, "pay");
    let paid = t
        .wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    assert!(paid.get("qr").is_none(), "a paid sale shows no QR: {paid}");
    assert_eq!(paid["attempts"][0]["method"], "order_code");
    t.books_agree();
    let journal = Journal::open_read_only(&t.journal()).unwrap();
    let kinds: Vec<String> = journal
        .events_after(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "qr_presented"), "{kinds:?}");
    drop(journal);

    // A sale whose scan failed switches to a QR, and the customer pays that.
    let body = format!(r#"{{"amount":"9.00","currency":"{}"}}"#, t.currency);
    let (status, sale) = call(&t.socket, "POST", "/v1/sales", &[], &body).await;
    assert_eq!(status, 201, "{sale}");
    t.daemon.feed("286000000000000201\n"); // insufficient balance: not charged
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = call(
            &t.socket,
            "GET",
            &format!("/v1/sales/{}", id(&sale)),
            &[],
            "",
        )
        .await;
        if s["attempts"][0]["state"] == "failed" && s["state"] == "awaiting_scan" {
            break;
        }
        assert!(Instant::now() < end, "the scan never failed: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, switched) = call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/customer_scan", id(&sale)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["state"], "awaiting_payment", "{switched}");
    // Asked again: the same QR.
    let (_, again) = call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/customer_scan", id(&sale)),
        &[],
        r#"{"method":"customer_scan"}"#,
    )
    .await;
    assert_eq!(again["qr"], switched["qr"]);
    t.customer(&switched, "pay");
    t.wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();
    // A sale that is not the one at the till shows no QR.
    let (status, refusal) = call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/customer_scan", id(&sale)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 409, "{refusal}");

    // The customer pays by themselves a moment after the code is issued.
    let (status, _) = t.sandbox.post("/_sandbox/present?auto_pay_after_s=1");
    assert_eq!(status, 200);
    let sale = t.qr_sale("1.00").await;
    t.wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();
    let (status, _) = t.sandbox.post("/_sandbox/present?auto_pay_after_s=off");
    assert_eq!(status, 200);

    // Cancelled by the register: the code is closed, the customer can no longer pay it.
    let sale = t.qr_sale("3.00").await;
    let (status, _) = call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/cancel", id(&sale)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 202);
    let ended = t
        .wait_state(&id(&sale), "cancelled", Duration::from_secs(15))
        .await;
    assert_eq!(ended["attempts"][0]["state"], "cancelled", "{ended}");
    let request_id = sale["qr"]["request_id"].as_str().unwrap();
    assert_eq!(ledger_state(&t, request_id).await, "closed");
    let (status, _) = t
        .sandbox
        .post(&format!("/_sandbox/customer?code={request_id}&action=pay"));
    assert_eq!(status, 409, "a closed code cannot be paid");
    t.books_agree();

    // Paid in the moment the cancel arrives: the cancel refunds it.
    let sale = t.qr_sale("4.00").await;
    t.customer(&sale, "pay_at_cancel");
    call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/cancel", id(&sale)),
        &[],
        "",
    )
    .await;
    let ended = t
        .wait_state(&id(&sale), "cancelled", Duration::from_secs(15))
        .await;
    assert_eq!(ended["attempts"][0]["paid_then_refunded"], true, "{ended}");
    t.books_agree();

    // A payment code scanned while the QR is open is charged; the QR is closed.
    let sale = t.qr_sale("5.00").await;
    t.daemon.feed("286000000000000000\n");
    let paid = t
        .wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();
    let (_, paid_now) = call(
        &t.socket,
        "GET",
        &format!("/v1/sales/{}", id(&sale)),
        &[],
        "",
    )
    .await;
    let methods: Vec<(&str, &str)> = paid_now["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["method"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        methods,
        [("order_code", "cancelled"), ("scanned", "succeeded")],
        "{paid}"
    );

    // Both ways pay at once: the customer pays the QR and the cashier scans a code. The
    // journal takes the first that pays; the other is reversed. One charge in all.
    let sale = t.qr_sale("6.00").await;
    t.customer(&sale, "pay");
    t.daemon.feed("286000000000000100\n");
    t.wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();
    let ledger = t.sandbox.ledger();
    let (_, both) = call(
        &t.socket,
        "GET",
        &format!("/v1/sales/{}", id(&sale)),
        &[],
        "",
    )
    .await;
    let charged: i64 = both["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let rid = a["request_id"].as_str().unwrap();
            ledger.iter().find(|(r, _)| r == rid).map_or(0, |(_, n)| *n)
        })
        .sum();
    assert_eq!(charged, 600, "the customer pays once: {both}");

    // Killed while the QR is shown; the customer pays meanwhile; after the restart the
    // watchdog finds it paid.
    let sale = t.qr_sale("7.00").await;
    t.daemon.kill9();
    t.customer(&sale, "pay");
    t.daemon = start(&t.config, &t.socket).await;
    t.wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();

    // Abandoned: unscanned until the expiry, while the platform says "no such trade" for
    // it; then cancelled, and the code closed.
    let (status, body) = t
        .sandbox
        .post("/_sandbox/present?not_exist_until_scanned=true");
    assert_eq!(status, 200, "{body}");
    let sale = t.qr_sale("2.00").await;
    t.customer(&sale, "abandon");
    let ended = t
        .wait_state(
            &id(&sale),
            "cancelled",
            Duration::from_secs(QR_TIMEOUT_S + 30),
        )
        .await;
    // The provider closed it at its expiry; the sale was cancelled only after that, so the
    // code could not be paid once the sale had ended.
    let attempt = &ended["attempts"][0];
    assert!(
        attempt["state"] == "failed" || attempt["state"] == "cancelled",
        "{ended}"
    );
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let (expires, ended_at) = (time(&sale["qr"]["expires_at"]), time(&ended["updated_at"]));
    // The provider's times are whole seconds.
    assert!(
        ended_at > expires - chrono::TimeDelta::seconds(1),
        "ended before the code's expiry {expires}: {ended}"
    );
    let request_id = sale["qr"]["request_id"].as_str().unwrap();
    assert_eq!(ledger_state(&t, request_id).await, "closed");
    t.books_agree();
    t.daemon.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn open_platform_precreated_qr_every_way() {
    every_way("scanpay.toml", "CNY").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ams_order_code_every_way() {
    every_way("scanpay-ams.toml", "USD").await;
}

/// AMS Entry Code: the register's page asks for the payment with the wallet's user agent
/// and gets the page to send the customer to; the watchdog resolves it like any other.
#[tokio::test(flavor = "multi_thread")]
async fn ams_entry_code_returns_the_redirect_and_resolves() {
    let t = till("scanpay-ams.toml", "USD").await;
    let body = r#"{"amount":"9.00","currency":"USD","method":"entry_code","user_agent":"Mozilla/5.0 AlipayClient/10.5.0"}"#;
    let (status, sale) = call(&t.socket, "POST", "/v1/sales", &[], body).await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["qr"]["method"], "entry_code", "{sale}");
    assert!(
        sale["qr"]["content"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{sale}"
    );
    // No user agent: refused, naming the field, and nothing was created.
    let (status, refusal) = call(
        &t.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"9.00","currency":"USD","method":"entry_code"}"#,
    )
    .await;
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["error"]["field"], "user_agent", "{refusal}");
    t.customer(&sale, "pay");
    t.wait_state(&id(&sale), "paid", Duration::from_secs(15))
        .await;
    t.books_agree();
}

/// The till with a notification receiver and inquiries 30 s apart: a sale turns paid within
/// a second of the customer confirming only because the notification had it inquired.
async fn till_with_notify(
    written: &str,
    currency: &'static str,
    notify_key: &str,
    path: &str,
) -> Till {
    let port = common::free_port();
    till_with(written, currency, |text| {
        text.replace("sale_deadline_s = 6", "sale_deadline_s = 60")
            .replace("inquiry_interval_ms = 500", "inquiry_interval_ms = 30000")
            .replacen(
                "[gateway]\n",
                &format!("[gateway]\n{notify_key} = \"http://127.0.0.1:{port}{path}\"\n"),
                1,
            )
            + &format!(
                "\n[api]\nsocket = \"api.sock\"\n\n[sales]\nqr_timeout_s = 120\n\n[notify]\nlisten = \"127.0.0.1:{port}\"\n"
            )
    })
    .await
}

async fn metric(t: &Till, name: &str) -> u64 {
    let stream = tokio::net::UnixStream::connect(&t.socket).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", "scanpay")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(&format!("{name}_total ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn notified_every_way(written: &str, currency: &'static str, notify_key: &str, path: &str) {
    let t = till_with_notify(written, currency, notify_key, path).await;

    // A verified notification: the resolver inquires at once, well before its next pause.
    let sale = t.qr_sale("8.00").await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // its first inquiry has passed
    let asked = Instant::now();
    t.customer(&sale, "pay");
    t.wait_state(&id(&sale), "paid", Duration::from_secs(10))
        .await;
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert_eq!(metric(&t, "scanpay_notifications_taken").await, 1);
    t.books_agree();

    // Late and twice: each verifies; the payment is inquired, decided once.
    let (status, _) = t
        .sandbox
        .post("/_sandbox/notify?delay_ms=300&duplicate=true");
    assert_eq!(status, 200);
    let sale = t.qr_sale("5.00").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.customer(&sale, "pay");
    t.wait_state(&id(&sale), "paid", Duration::from_secs(10))
        .await;
    t.books_agree();
    let end = Instant::now() + Duration::from_secs(5);
    while metric(&t, "scanpay_notifications_taken").await < 3 {
        assert!(Instant::now() < end, "the duplicate was not received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Altered after signing: refused, counted, nothing changes; the inquiry still finds the
    // payment (here, the register's cancel does, and refunds it).
    let (status, _) = t
        .sandbox
        .post("/_sandbox/notify?delay_ms=0&duplicate=false&corrupt=true");
    assert_eq!(status, 200);
    let sale = t.qr_sale("4.00").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.customer(&sale, "pay");
    let end = Instant::now() + Duration::from_secs(5);
    while metric(&t, "scanpay_notifications_refused").await < 1 {
        assert!(
            Instant::now() < end,
            "the corrupted notification was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, still) = call(
        &t.socket,
        "GET",
        &format!("/v1/sales/{}", id(&sale)),
        &[],
        "",
    )
    .await;
    assert_eq!(
        still["state"], "awaiting_payment",
        "an unverified notification changed it: {still}"
    );
    call(
        &t.socket,
        "POST",
        &format!("/v1/sales/{}/cancel", id(&sale)),
        &[],
        "",
    )
    .await;
    let ended = t
        .wait_state(&id(&sale), "cancelled", Duration::from_secs(15))
        .await;
    assert_eq!(ended["attempts"][0]["paid_then_refunded"], true, "{ended}");
    t.books_agree();
    let log = t.daemon.stderr();
    assert!(log.contains("payment notification refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_platform_notifications_speed_up_and_never_decide() {
    notified_every_way("scanpay.toml", "CNY", "notify_url", "/notify/alipay").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ams_notifications_speed_up_and_never_decide() {
    notified_every_way(
        "scanpay-ams.toml",
        "USD",
        "payment_notify_url",
        "/notify/ams",
    )
    .await;
}
