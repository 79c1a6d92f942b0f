//! The register's API through a real Unix socket of a real `scanpay run`, against
//! `scanpay sandbox`: create → scan → paid, idempotency, busy, cancel, refund, bad requests
//! that change nothing, the event stream in order and resumed from `Last-Event-ID`.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::procs::{Daemon, SandboxProc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use scanpay::journal::Journal;
use serde_json::Value;

struct Setup {
    _dir: tempfile::TempDir,
    sandbox: SandboxProc,
    daemon: Daemon,
    socket: PathBuf,
}

async fn setup() -> Setup {
    setup_with(|config| Daemon::start(config, None)).await
}

/// A sandbox and a daemon serving the API on a socket, the daemon started by `start` with
/// its config.
async fn setup_with(start: impl FnOnce(&Path) -> Daemon) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let text = std::fs::read_to_string(&config).unwrap() + "\n[api]\nsocket = \"api.sock\"\n";
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let daemon = start(&config);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            Instant::now() < end,
            "the API socket did not appear:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Setup {
        _dir: dir,
        sandbox,
        daemon,
        socket,
    }
}

use common::call;

fn sales_in(s: &Setup) -> usize {
    Journal::open_read_only(&s.sandbox.journal())
        .unwrap()
        .sales(&Default::default())
        .unwrap()
        .len()
}

async fn wait_state(s: &Setup, id: &str, state: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, sale) = call(&s.socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
        if sale["state"] == state {
            return sale;
        }
        assert!(
            Instant::now() < end,
            "sale {id} never became {state}: {sale}\n{}",
            s.daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_scan_paid_and_the_socket_is_0660() {
    let mut s = setup().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (status, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"12.50","currency":"CNY","reference":"R-1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["state"], "awaiting_scan");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000000\n");
    let sale = wait_state(&s, &id, "paid").await;
    assert_eq!(sale["reference"], "R-1");
    assert_eq!(sale["attempts"][0]["code"], "28************0000");
    assert!(sale["attempts"][0]["gateway_trade_id"].is_string());
    let (status, list) = call(&s.socket, "GET", "/v1/sales?state=paid", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(list["sales"].as_array().unwrap().len(), 1);
    let (status, health) = call(&s.socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert_eq!(health["gateway"]["reachability"]["state"], "online");
    let stream = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri("/metrics")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let text = sender
        .send_request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("scanpay_sales{state=\"paid\"} 1"), "{text}");
    assert!(
        text.contains("scanpay_gateway_request_seconds_count"),
        "{text}"
    );
    // scanpay status asks the running daemon.
    let status = common::procs::scanpay()
        .args(["status", "--json", "--config"])
        .arg(s.sandbox.dir.join("daemon-scanpay.toml"))
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["daemon"]["running"], true, "{status}");
    assert_eq!(status["gateway"]["state"], "online");
    assert_eq!(status["sales"]["paid"], 1);
    assert!(s.daemon.terminate().success());
    assert!(!s.socket.exists(), "the socket is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_busy_cancel_and_refund() {
    let mut s = setup().await;
    let body = r#"{"amount":"10.00","currency":"CNY","reference":"R-7"}"#;
    let key = [("Idempotency-Key", "reg-42")];
    let (st1, a) = call(&s.socket, "POST", "/v1/sales", &key, body).await;
    let (st2, b) = call(&s.socket, "POST", "/v1/sales", &key, body).await;
    assert_eq!((st1, st2), (201, 200));
    assert_eq!(
        a["sale_id"], b["sale_id"],
        "the retry returns the same sale"
    );
    let (st, e) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &key,
        r#"{"amount":"11.00","currency":"CNY","reference":"R-7"}"#,
    )
    .await;
    assert_eq!(st, 422, "{e}");
    let (st, busy) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"1.00","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(st, 409, "{busy}");
    assert_eq!(busy["error"]["sale_id"], a["sale_id"]);
    assert_eq!(sales_in(&s), 1);

    // Cancel before any scan.
    let id = a["sale_id"].as_str().unwrap();
    let (st, c) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!((st, c["state"].as_str()), (200, Some("cancelled")), "{c}");
    let (st, _) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(st, 409);

    // Paid, then partly refunded, then the rest by cancel.
    let (_, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"8.00","currency":"CNY"}"#,
    )
    .await;
    let id = sale["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000100\n");
    wait_state(&s, &id, "paid").await;
    let (st, r) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/refunds"),
        &[],
        r#"{"amount":"3.00","reason":"returned"}"#,
    )
    .await;
    assert_eq!((st, r["state"].as_str()), (201, Some("succeeded")), "{r}");
    let (st, _) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/refunds"),
        &[],
        r#"{"amount":"5.01"}"#,
    )
    .await;
    assert_eq!(st, 409);
    let (st, c) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(c["refunds"][1]["amount"], "5.00");
    let ledger = s.sandbox.ledger();
    assert!(
        ledger.iter().all(|(_, net)| *net == 0),
        "everything paid was refunded: {ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_in_doubt_cancelled_by_the_register_is_reversed_without_waiting() {
    let mut s = setup().await;
    let (_, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"5.00","currency":"CNY"}"#,
    )
    .await;
    let id = sale["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000104\n"); // the customer never confirms
    wait_state(&s, &id, "processing").await;
    let started = Instant::now();
    let (st, _) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(st, 202);
    let sale = wait_state(&s, &id, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the 6 s deadline"
    );
    assert_eq!(sale["attempts"][0]["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_naming_the_field_and_change_nothing() {
    let s = setup().await;
    let cases: &[(&str, Option<&str>)] = &[
        ("not json", None),
        (r#"{"amount":"1.00"}"#, None),
        (r#"{"amount":"1.00","currency":"CNY","colour":"red"}"#, None),
        (r#"{"amount":1.00,"currency":"CNY"}"#, None),
        (r#"{"amount":"1e3","currency":"CNY"}"#, Some("amount")),
        (r#"{"amount":"-1","currency":"CNY"}"#, Some("amount")),
        (r#"{"amount":"1.005","currency":"CNY"}"#, Some("amount")),
        (r#"{"amount":"0.00","currency":"CNY"}"#, Some("amount")),
        (r#"{"amount":"5000.01","currency":"CNY"}"#, Some("amount")),
        (r#"{"amount":"1.00","currency":"XYZ"}"#, Some("currency")),
        (r#"{"amount":"1.00","currency":"USD"}"#, Some("currency")),
        (
            r#"{"amount":"1.00","currency":"CNY","reference":""}"#,
            Some("reference"),
        ),
        // Format characters that reorder or hide text: RIGHT-TO-LEFT OVERRIDE, raw and
        // escaped, ZERO WIDTH SPACE and a byte order mark.
        (
            "{\"amount\":\"1.00\",\"currency\":\"CNY\",\"reference\":\"R-\u{202E}1\"}",
            Some("reference"),
        ),
        (
            r#"{"amount":"1.00","currency":"CNY","subject":"Tea \u202E"}"#,
            Some("subject"),
        ),
        (
            r#"{"amount":"1.00","currency":"CNY","reference":"R\u200B1"}"#,
            Some("reference"),
        ),
        (
            r#"{"amount":"1.00","currency":"CNY","subject":"\uFEFFTea"}"#,
            Some("subject"),
        ),
    ];
    for (body, field) in cases {
        let (status, e) = call(&s.socket, "POST", "/v1/sales", &[], body).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e["error"]["message"].is_string(), "{e}");
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], *f, "{body}: {e}");
        }
    }
    let (status, _) = call(&s.socket, "GET", "/v1/sales?state=nope", &[], "").await;
    assert_eq!(status, 400);
    let (status, _) = call(&s.socket, "GET", "/v1/sales/S-nope", &[], "").await;
    assert_eq!(status, 404);
    let (status, _) = call(&s.socket, "GET", "/v1/nothing", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(sales_in(&s), 0, "nothing was created");
}

/// Reads SSE events (id, kind) from a stream until `n` arrived.
async fn read_events(
    socket: &Path,
    last_event_id: Option<i64>,
    n: usize,
) -> Vec<(i64, String, Value)> {
    read_events_until(socket, last_event_id, Duration::from_secs(20), |events| {
        events.len() >= n
    })
    .await
}

/// Reads SSE events from a stream until `done` holds for those received, for at most
/// `limit`.
async fn read_events_until(
    socket: &Path,
    last_event_id: Option<i64>,
    limit: Duration,
    done: impl Fn(&[(i64, String, Value)]) -> bool,
) -> Vec<(i64, String, Value)> {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .uri("/v1/events")
        .header("host", "x");
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = String::new();
    let mut events = Vec::new();
    let end = Instant::now() + limit;
    while !done(&events) {
        assert!(Instant::now() < end, "only {} events: {text}", events.len());
        let Ok(Some(Ok(frame))) = tokio::time::timeout(limit, body.frame()).await else {
            panic!("stream ended: {text}");
        };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (0, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().unwrap();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap();
                }
            }
            if !kind.is_empty() {
                events.push((id, kind, data));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_and_resume_from_last_event_id() {
    let mut s = setup().await;
    let socket = s.socket.clone();
    let listener = tokio::spawn(async move { read_events(&socket, None, 3).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"2.00","currency":"CNY"}"#,
    )
    .await;
    s.daemon.feed("286000000000000200\n");
    let id = sale["sale_id"].as_str().unwrap();
    wait_state(&s, id, "paid").await;
    let live = listener.await.unwrap();
    let kinds: Vec<&str> = live.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds[..3],
        ["sale_armed", "attempt_sent", "sale_finished"][..],
        "{live:?}"
    );
    assert!(live.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    assert_eq!(live[2].2["sale"]["state"], "paid");
    let attempt_code = live[1].2["code_masked"].as_str().unwrap();
    assert_eq!(
        attempt_code, "28************0200",
        "scans are masked in events"
    );

    // A register that saw only the first event reconnects and gets the rest, once each.
    let resumed = read_events(&s.socket, Some(live[0].0), 2).await;
    assert_eq!(
        resumed.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        [live[1].0, live[2].0]
    );

    // An id beyond the journal's newest (a register that talked to another journal) still
    // gets the live events.
    let socket = s.socket.clone();
    let stranger = tokio::spawn(async move { read_events(&socket, Some(1_000_000_000), 1).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, next) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"3.00","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(st, 201, "{next}");
    let got = stranger.await.unwrap();
    assert_eq!(got[0].1, "sale_armed");
    assert_eq!(got[0].2["sale"]["sale_id"], next["sale_id"]);
}

/// One HTTP/1.1 request over TCP; returns the status code.
fn tcp_status(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = "GET /v1/health HTTP/1.1\r\nConnection: close\r\n".to_string();
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_needs_the_token_and_refuses_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token = "register-token-0123456789";
    let with_tcp_api = |config: &Path| {
        let text = std::fs::read_to_string(config).unwrap()
            + &format!("\n[api]\nsocket = \"api.sock\"\ntcp = \"{addr}\"\ntoken = \"{token}\"\n");
        std::fs::write(config, text).unwrap();
    };
    with_tcp_api(&config);
    let daemon = Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < end, "no TCP API:\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bearer = format!("Bearer {token}");
    let host = addr.to_string();
    let ok = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
    assert_eq!(tcp_status(addr, &ok), 200);
    assert_eq!(tcp_status(addr, &[("Host", host.as_str())]), 401);
    assert_eq!(
        tcp_status(
            addr,
            &[
                ("Host", host.as_str()),
                ("Authorization", "Bearer wrong-token-000000000")
            ]
        ),
        401
    );
    let mut from_page = ok.to_vec();
    from_page.push(("Origin", "http://shop.example"));
    assert_eq!(tcp_status(addr, &from_page), 403);
    let rebound = [
        ("Host", "evil.example:8089"),
        ("Authorization", bearer.as_str()),
    ];
    assert_eq!(tcp_status(addr, &rebound), 403);
    assert_eq!(
        tcp_status(
            addr,
            &[("Host", "localhost"), ("Authorization", bearer.as_str())]
        ),
        200
    );

    // A second daemon on the same address stops at start, naming the key.
    let other = dir.path().join("other");
    let second = SandboxProc::start(&other, 0);
    let second_config = second.config();
    with_tcp_api(&second_config);
    let mut clash = Daemon::start(&second_config, None);
    let status = clash.wait(Duration::from_secs(15));
    assert!(!status.success());
    assert!(clash.stderr().contains("[api] tcp"), "{}", clash.stderr());
}

/// Sets the daemon's file-size limit (soft only, so it can be lifted again): at 0 every write
/// to the journal fails as on a full disk.
fn limit_file_size(s: &Setup, bytes: Option<u64>) {
    let limit = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", s.daemon.child.id()))
        .arg(format!("--fsize={limit}:"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_sales_clearly_charges_nothing_and_health_keeps_answering() {
    let mut s = setup().await;
    let sale = |n: u32| format!(r#"{{"amount":"{n}.00","currency":"CNY"}}"#);
    let (_, first) = call(&s.socket, "POST", "/v1/sales", &[], &sale(1)).await;
    s.daemon.feed("286000000000000100\n");
    wait_state(&s, first["sale_id"].as_str().unwrap(), "paid").await;

    // Full before a sale is opened: the register is told why; health says what is wrong.
    limit_file_size(&s, Some(0));
    let (status, refused) = call(&s.socket, "POST", "/v1/sales", &[], &sale(2)).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "journal_unwritable");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk is full or read-only"), "{message}");
    let (status, health) = call(&s.socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["journal"]["ok"], false);
    assert!(health["journal"]["write_failure"]["error"].is_string());
    assert_eq!(sales_in(&s), 1, "nothing half-written");

    // Space again: health clears by itself, sales open.
    limit_file_size(&s, None);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, health) = call(&s.socket, "GET", "/v1/health", &[], "").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < end, "health never cleared: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, second) = call(&s.socket, "POST", "/v1/sales", &[], &sale(3)).await;
    assert_eq!(status, 201, "{second}");
    let id = second["sale_id"].as_str().unwrap().to_string();

    // Full between opening a sale and the scan: the code is not sent, so nothing is charged.
    limit_file_size(&s, Some(0));
    s.daemon.feed("286000000000000200\n");
    let end = Instant::now() + Duration::from_secs(10);
    while !s
        .daemon
        .stderr()
        .contains("the journal cannot record the payment")
    {
        assert!(
            Instant::now() < end,
            "scan not refused:\n{}",
            s.daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, view) = call(&s.socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!(view["state"], "awaiting_scan", "{view}");
    assert_eq!(view["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.sandbox.ledger().len(),
        1,
        "the refused code was never sent"
    );

    // And once it can write again, the same sale takes a code and is paid.
    limit_file_size(&s, None);
    s.daemon.feed("286000000000000300\n");
    wait_state(&s, &id, "paid").await;
    assert!(s.daemon.terminate().success(), "{}", s.daemon.stderr());
    common::procs::assert_journal_and_ledger_agree(&s.sandbox.journal(), &s.sandbox.ledger());
}

/// One basket, one payment: a second sale for the reference of a sale still in doubt is
/// refused, naming it; with `"supersede": true` it goes ahead and the earlier one is
/// cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_in_doubt_blocks_a_second_sale_unless_it_is_superseded() {
    let mut s = setup().await;
    let create = |body: &'static str| {
        let socket = s.socket.clone();
        async move { call(&socket, "POST", "/v1/sales", &[], body).await }
    };
    let (st, first) = create(r#"{"amount":"5.00","currency":"CNY","reference":"BASKET-7"}"#).await;
    assert_eq!(st, 201, "{first}");
    let first_id = first["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000104\n"); // the customer never confirms: in doubt
    wait_state(&s, &first_id, "processing").await;
    // The terminal frees itself once the attempt is in doubt; until then it is busy.
    let end = Instant::now() + Duration::from_secs(10);
    let (st, refused) = loop {
        let (st, body) =
            create(r#"{"amount":"5.00","currency":"CNY","reference":"BASKET-7"}"#).await;
        if body["error"]["code"] != "busy" || Instant::now() > end {
            break (st, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "reference_in_doubt");
    assert_eq!(refused["error"]["sale_id"], first_id.as_str());
    assert_eq!(sales_in(&s), 1, "nothing was created");
    // Another basket is not held up.
    let (st, other) = create(r#"{"amount":"1.00","currency":"CNY","reference":"BASKET-8"}"#).await;
    assert_eq!(st, 201, "{other}");
    let other_id = other["sale_id"].as_str().unwrap().to_string();
    let (st, _) = call(
        &s.socket,
        "POST",
        &format!("/v1/sales/{other_id}/cancel"),
        &[],
        "",
    )
    .await;
    assert_eq!(st, 200);

    let (st, second) =
        create(r#"{"amount":"5.00","currency":"CNY","reference":"BASKET-7","supersede":true}"#)
            .await;
    assert_eq!(st, 201, "{second}");
    let second_id = second["sale_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let earlier = wait_state(&s, &first_id, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled at once, not at the deadline"
    );
    assert_eq!(earlier["superseded_by"], second_id.as_str());
    assert_eq!(earlier["attempts"][0]["state"], "cancelled");
    // The new sale takes the customer's payment as usual.
    s.daemon.feed("286000000000000200\n");
    wait_state(&s, &second_id, "paid").await;
    let ledger = s.sandbox.ledger();
    let net: i64 = ledger.iter().map(|(_, net)| net).sum();
    assert_eq!(net, 500, "one payment for the basket: {ledger:?}");
}

/// Sends `request` as it is over a new connection and reads the answer to the end: the
/// status and the JSON body.
async fn raw(socket: &Path, request: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer, then the connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    (status, json)
}

/// The errors axum answers by itself (routing, body limit, path and query decoding) carry
/// the same JSON as the API's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answers_the_documented_json() {
    let s = setup().await;
    let big = format!(
        r#"{{"amount":"1.00","currency":"CNY","subject":"{}"}}"#,
        "x".repeat(20 * 1024)
    );
    let (status, e) = call(&s.socket, "POST", "/v1/sales", &[], &big).await;
    assert_error(status, &e, 413, "payload_too_large");
    let (status, e) = call(&s.socket, "DELETE", "/v1/sales", &[], "").await;
    assert_error(status, &e, 405, "method_not_allowed");
    let (status, e) = call(&s.socket, "GET", "/v1/sales?limit=many", &[], "").await;
    assert_error(status, &e, 400, "bad_request");
    let (status, e) = call(&s.socket, "GET", "/v1/nothing/%FF", &[], "").await;
    assert_error(status, &e, 404, "not_found");
    // A sale id that does not decode to UTF-8.
    let (status, e) = raw(
        &s.socket,
        b"GET /v1/sales/%FF%FE HTTP/1.1\r\nHost: scanpay\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_error(status, &e, 400, "bad_request");
    assert!(e["error"]["message"].is_string(), "{e}");
    // A body announced over the limit is refused before it is read.
    let (status, e) = raw(
        &s.socket,
        b"POST /v1/sales HTTP/1.1\r\nHost: scanpay\r\nConnection: close\r\nContent-Length: 1000000\r\n\r\n{",
    )
    .await;
    assert_error(status, &e, 413, "payload_too_large");
    // A body that does not arrive is given up on, and the connection freed.
    let (status, e) = raw(
        &s.socket,
        b"POST /v1/sales HTTP/1.1\r\nHost: scanpay\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{\"amount\"",
    )
    .await;
    assert_error(status, &e, 408, "request_timeout");
    assert_eq!(sales_in(&s), 0, "nothing was created");
}

/// An error answer in the documented JSON, with its status and code.
fn assert_error(status: u16, e: &Value, expected_status: u16, code: &str) {
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (expected_status, Some(code)),
        "{e}"
    );
}

/// One request over a new connection, like `call`, but `None` when the connection is closed
/// before an answer (the daemon at its connection limit) or no answer comes within 10 s.
async fn try_call(socket: &Path, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    tokio::time::timeout(
        Duration::from_secs(10),
        try_call_once(socket, method, path, body),
    )
    .await
    .ok()?
}

async fn try_call_once(
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, Value)> {
    let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scanpay")
        .body(Full::new(Bytes::from(body.to_string())))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// `try_call` until it is answered, for at most 30 s.
async fn call_until_answered(s: &Setup, method: &str, path: &str, body: &str) -> (u16, Value) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(answer) = try_call(&s.socket, method, path, body).await {
            return answer;
        }
        assert!(
            Instant::now() < end,
            "{method} {path} never answered:\n{}",
            s.daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon's soft limit on open files, from /proc.
fn nofile_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// 2,000 connections that never send a request, from a client in the socket's group, under
/// the default soft limit of 1,024 descriptors: the daemon keeps descriptors for its own
/// work, sheds the idle connections, and a sale is still created and paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_stop_a_sale() {
    const IDLE: usize = 2000;
    // This test process needs a descriptor per connection, and more for the daemons its
    // neighbours start.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = IDLE as u64 + 1000;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < wanted {
        println!("skipped: the hard limit on open files is {hard}, below {wanted}");
        return;
    }
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).unwrap();
    }
    let mut s = setup_with(|config| Daemon::start_with_nofile(config, 1024)).await;
    assert_eq!(nofile_soft_limit(s.daemon.child.id()), 1024);

    let mut idle = Vec::with_capacity(IDLE);
    let end = Instant::now() + Duration::from_secs(30);
    while idle.len() < IDLE {
        match tokio::net::UnixStream::connect(&s.socket).await {
            Ok(stream) => idle.push(stream),
            // The listen backlog is full for a moment.
            Err(_) => {
                assert!(Instant::now() < end, "only {} connections", idle.len());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    let (status, sale) = call_until_answered(
        &s,
        "POST",
        "/v1/sales",
        r#"{"amount":"4.20","currency":"CNY","reference":"CROWDED"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000000\n");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, view) = call_until_answered(&s, "GET", &format!("/v1/sales/{id}"), "").await;
        if view["state"] == "paid" {
            break;
        }
        assert!(
            Instant::now() < end,
            "never paid: {view}\n{}",
            s.daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stderr = s.daemon.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    assert_eq!(
        stderr.matches("API connection limit reached").count(),
        1,
        "one warning for the burst:\n{stderr}"
    );

    let stream = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .uri("/metrics")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    let metric = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(metric("scanpay_api_connection_limit"), 512);
    assert!(
        metric("scanpay_api_connections_refused_total") >= (IDLE - 512) as u64,
        "{text}"
    );
    drop(idle);
}

/// A connection that sends half a request head, or nothing, is closed by the daemon soon;
/// one idle between requests for longer than that is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_silent_connections_are_closed_idle_ones_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    let closed_within = |mut stream: tokio::net::UnixStream, limit: Duration| async move {
        let started = Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "still open after {limit:?}");
        started.elapsed()
    };
    let mut half = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: scan")
        .await
        .unwrap();
    let half = tokio::spawn(closed_within(half, Duration::from_secs(15)));
    let silent = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let silent = tokio::spawn(closed_within(silent, Duration::from_secs(15)));

    // Keep-alive: a second request 7 s after the first (longer than a head may take, shorter
    // than the idle timeout) is answered on the same connection.
    let stream = tokio::net::UnixStream::connect(&s.socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let health = || {
        hyper::Request::builder()
            .uri("/v1/health")
            .header("host", "scanpay")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let first = sender.send_request(health()).await.unwrap();
    assert_eq!(first.status(), 200);
    first.into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let second = sender.send_request(health()).await.unwrap();
    assert_eq!(second.status(), 200);

    half.await.unwrap();
    silent.await.unwrap();
}

/// An event stream is a response being written, not an idle connection: it stays open past
/// the idle timeout and still carries events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_idle_timeout() {
    let s = setup().await;
    let socket = s.socket.clone();
    // Other events (the gateway found reachable) may come first.
    let armed = |events: &[(i64, String, Value)]| events.iter().any(|e| e.1 == "sale_armed");
    let listener = tokio::spawn(async move {
        read_events_until(&socket, None, Duration::from_secs(60), armed).await
    });
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert!(!listener.is_finished(), "the stream ended early");
    let (status, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"1.00","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let events = listener.await.unwrap();
    let armed = events.iter().find(|e| e.1 == "sale_armed").unwrap();
    assert_eq!(armed.2["sale"]["sale_id"], sale["sale_id"]);
}

/// SIGTERM while a payment is on the wire: until it has its answer, the register still gets
/// answers (health, the sale, a clear "stopping" for a new sale), then the daemon exits 0.
#[tokio::test]
async fn the_api_answers_while_a_stop_waits_for_the_payment_on_the_wire() {
    let mut s = setup().await;
    let (status, sale) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"12.50","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    // Code 06: the sandbox answers after 20 s, the client gives up at its 5 s timeout.
    s.daemon.feed("286000000000000006\n");
    wait_state(&s, &id, "processing").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, health) = call(&s.socket, "GET", "/v1/health", &[], "").await;
    assert_eq!(status, 200, "{health}");
    let (status, again) = call(&s.socket, "GET", &format!("/v1/sales/{id}"), &[], "").await;
    assert_eq!((status, again["state"].as_str()), (200, Some("processing")));
    let (status, refused) = call(
        &s.socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"1.00","currency":"CNY"}"#,
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    assert!(
        s.daemon.wait(Duration::from_secs(20)).success(),
        "{}",
        s.daemon.stderr()
    );
}

/// Campaign fields: a basket that does not come to the amount is refused naming the line,
/// and creates nothing; a valid one is journaled, printed (the cashier) and reaches the
/// sandbox, which reads it off the wire into its ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_fields_are_checked_against_the_amount_and_reach_the_gateway() {
    let receipt = std::sync::Arc::new(std::sync::Mutex::new(PathBuf::new()));
    let printed = receipt.clone();
    let mut s = setup_with(move |config| {
        let path = config.with_file_name("receipt.bin");
        *printed.lock().unwrap() = path.clone();
        let text = std::fs::read_to_string(config).unwrap().replacen(
            "[gateway]\n",
            "[gateway]\nsys_service_provider_id = \"2088000000000042\"\n",
            1,
        ) + &format!(
            "\n[printer]\nkind = \"file\"\npath = \"{}\"\n",
            path.display()
        );
        std::fs::write(config, text).unwrap();
        Daemon::start(config, None)
    })
    .await;
    let goods = |second_price: &str| {
        format!(
            r#"{{"amount":"10.00","currency":"CNY","undiscountable_amount":"2.00","discountable_amount":"8.00",
                "goods_detail":[{{"goods_id":"A1","goods_name":"Latte","quantity":2,"price":"3.00","goods_category":"coffee"}},
                                {{"goods_id":"B7","goods_name":"Cake","quantity":1,"price":"{second_price}"}}],
                "operator_id":"C01","operator_name":"Li Lei"}}"#
        )
    };
    let bad: &[(String, &str)] = &[
        (goods("3.99"), "goods_detail[1].price"),
        (goods("4.01"), "goods_detail[1].price"),
        (goods("4.001"), "goods_detail[1].price"),
        (
            goods("4.00").replace("\"quantity\":2", "\"quantity\":0"),
            "goods_detail[0].quantity",
        ),
        (
            goods("4.00").replace("\"quantity\":2", "\"quantity\":1.5"),
            "goods_detail[0].quantity",
        ),
        (
            goods("4.00").replace("\"price\":\"3.00\"", "\"price\":3"),
            "goods_detail[0].price",
        ),
        (
            goods("4.00").replace("\"Latte\"", "\"La\\u202Ete\""),
            "goods_detail[0].goods_name",
        ),
        (
            goods("4.00").replace("\"8.00\"", "\"7.00\""),
            "discountable_amount",
        ),
        (
            goods("4.00").replace("\"2.00\"", "\"2.x\""),
            "undiscountable_amount",
        ),
        (goods("4.00").replace("\"C01\"", "\"\""), "operator_id"),
    ];
    for (body, field) in bad {
        let (status, e) = call(&s.socket, "POST", "/v1/sales", &[], body).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(*field)),
            "{body}: {e}"
        );
    }
    assert_eq!(sales_in(&s), 0, "nothing was created");

    let (status, sale) = call(&s.socket, "POST", "/v1/sales", &[], &goods("4.00")).await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["goods_detail"][1]["goods_id"], "B7");
    assert_eq!(sale["operator_id"], "C01");
    let id = sale["sale_id"].as_str().unwrap().to_string();
    s.daemon.feed("286000000000000000\n");
    let sale = wait_state(&s, &id, "paid").await;
    assert_eq!(sale["operator_name"], "Li Lei", "{sale}");
    let request_id = sale["attempts"][0]["request_id"].as_str().unwrap();

    // The sandbox read them off the wire.
    let ledger = common::ledger(&format!(
        "http://127.0.0.1:{}/_sandbox/ledger",
        s.sandbox.port
    ))
    .await;
    let entry = ledger
        .iter()
        .find(|e| e["request_id"] == request_id)
        .unwrap_or_else(|| panic!("{ledger:?}"));
    assert_eq!(entry["operator_id"], "C01", "{entry}");
    assert_eq!(entry["undiscountable_minor"], 200, "{entry}");
    assert_eq!(
        entry["sys_service_provider_id"], "2088000000000042",
        "{entry}"
    );
    let seen: Vec<(String, u64, i64)> = entry["goods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["goods_id"].as_str().unwrap().to_string(),
                g["quantity"].as_u64().unwrap(),
                g["price_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("A1".into(), 2, 300), ("B7".into(), 1, 400)]);

    // The cashier is on the receipt and in `journal show`.
    let path = receipt.lock().unwrap().clone();
    let end = Instant::now() + Duration::from_secs(10);
    let bytes = loop {
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(7).any(|w| w == b"Cashier") || Instant::now() > end {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cashier = b"Li Lei (C01)";
    assert!(
        bytes.windows(cashier.len()).any(|w| w == cashier),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let out = common::procs::scanpay()
        .args(["journal", "show", "--journal"])
        .arg(s.sandbox.journal())
        .arg(&id)
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(shown["operator_id"], "C01");
    assert_eq!(shown["goods_detail"][0]["quantity"], 2);
}

/// Shifts over the API: open, an X-report while open, close with a numbered Z-report per
/// cashier and wallet, printed; closing again answers the same; the next shift's Z-report
/// takes the next number; `scanpay report --shift N` reprints the kept one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifts_close_with_numbered_z_reports_per_cashier_and_wallet() {
    let receipt = std::sync::Arc::new(std::sync::Mutex::new(PathBuf::new()));
    let printed = receipt.clone();
    let mut s = setup_with(move |config| {
        let path = config.with_file_name("receipt.bin");
        *printed.lock().unwrap() = path.clone();
        let text = std::fs::read_to_string(config).unwrap()
            + &format!(
                "\n[printer]\nkind = \"file\"\npath = \"{}\"\n",
                path.display()
            );
        std::fs::write(config, text).unwrap();
        Daemon::start(config, None)
    })
    .await;
    let (status, shift) = call(
        &s.socket,
        "POST",
        "/v1/shifts",
        &[],
        r#"{"operator_id":"C01"}"#,
    )
    .await;
    assert_eq!(status, 201, "{shift}");
    let id = shift["shift_id"].as_i64().unwrap();
    let (status, e) = call(&s.socket, "POST", "/v1/shifts", &[], "").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("shift_open")),
        "{e}"
    );

    for (cashier, code) in [("C01", "286000000000000216"), ("C02", "286000000000000200")] {
        let body = format!(r#"{{"amount":"10.00","currency":"CNY","operator_id":"{cashier}"}}"#);
        let (status, sale) = call(&s.socket, "POST", "/v1/sales", &[], &body).await;
        assert_eq!(status, 201, "{sale}");
        s.daemon.feed(&format!("{code}\n"));
        wait_state(&s, sale["sale_id"].as_str().unwrap(), "paid").await;
    }
    let (status, x) = call(
        &s.socket,
        "GET",
        &format!("/v1/shifts/{id}/report"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{x}");
    assert!(x["z_number"].is_null(), "an X-report: {x}");
    let cashiers: Vec<(String, String)> = x["by_cashier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["operator_id"].as_str().unwrap().to_string(),
                c["received"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        cashiers,
        [
            ("C01".into(), "8.00".into()),
            ("C02".into(), "10.00".into())
        ],
        "{x}"
    );

    let close = format!("/v1/shifts/{id}/close");
    let (status, z) = call(&s.socket, "POST", &close, &[], "").await;
    assert_eq!((status, z["z_number"].as_i64()), (200, Some(1)), "{z}");
    assert_eq!(z["paid_count"], 2);
    assert_eq!(z["by_wallet"][0]["total"], "20.00");
    assert_eq!(z["books"][0]["net_received"], "18.00");
    let (_, again) = call(&s.socket, "POST", &close, &[], "").await;
    assert_eq!(again, z, "closing again answers the same Z-report");

    let (_, next) = call(&s.socket, "POST", "/v1/shifts", &[], "").await;
    let next_id = next["shift_id"].as_i64().unwrap();
    let (_, z2) = call(
        &s.socket,
        "POST",
        &format!("/v1/shifts/{next_id}/close"),
        &[],
        "",
    )
    .await;
    assert_eq!(z2["z_number"], 2, "{z2}");
    assert_eq!(z2["paid_count"], 0);
    let (status, _) = call(&s.socket, "GET", "/v1/shifts/999/report", &[], "").await;
    assert_eq!(status, 404);

    // Printed at the close, and reprinted as kept.
    let path = receipt.lock().unwrap().clone();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(13).any(|w| w == b"Z-REPORT 0002") {
            assert!(bytes.windows(13).any(|w| w == b"Z-REPORT 0001"));
            break;
        }
        assert!(Instant::now() < end, "no Z-report printed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = common::procs::scanpay()
        .args([
            "report",
            "--shift",
            &id.to_string(),
            "--format",
            "json",
            "--journal",
        ])
        .arg(s.sandbox.journal())
        .output()
        .unwrap();
    let reprint: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(reprint, z, "the reprint is the kept report");
}
