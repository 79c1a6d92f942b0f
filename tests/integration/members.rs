//! Member auto-debit bindings through the register API against `scanpay sandbox` over HTTP
//! with real AMS signatures: bind (consult), the customer approves in the sandbox, the auth
//! code is exchanged, the binding shows bound without tokens, housekeeping refreshes a token
//! that expires early, DELETE revokes. No token is ever found in the journal, its WAL or the
//! daemon's log.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::free_port;
use crate::common::procs::{Daemon, SandboxProc};

async fn api(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut request = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url),
    };
    if let Some(b) = body {
        request = request
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

fn sandbox_get(sandbox: &SandboxProc, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sandbox.port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap()
}

fn write_key(path: &Path, byte: u8) {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        path,
        base64::engine::general_purpose::STANDARD.encode([byte; 32]),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The sandbox's AMS config with the API on loopback TCP and `[members]`.
fn config(sandbox: &SandboxProc, port: u16, members: &str) -> std::path::PathBuf {
    let path = sandbox.config_from("scanpay-ams.toml");
    let text = std::fs::read_to_string(&path).unwrap()
        + &format!(
            "\n[api]\nsocket = \"api.sock\"\ntcp = \"127.0.0.1:{port}\"\n\n[members]\n{members}"
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn wait_for_api(port: u16, daemon: &Daemon) {
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_binds_refreshes_and_unbinds_and_no_token_is_ever_stored_or_logged() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 42);
    let port = free_port();
    let config = config(
        &sandbox,
        port,
        &format!(
            "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\nrefresh_before_s = 60\nrefresh_check_s = 1\n",
            key.display()
        ),
    );
    let out = crate::common::procs::scanpay()
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("member bindings for ALIPAY_CN"),
        "{said}"
    );
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);

    // Bad input: 400 naming the field, nothing written.
    let (status, e) = api(port, "POST", "/v1/members/a%20b/binding", None).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("member_id")),
        "{e}"
    );
    let (status, _) = api(port, "GET", "/v1/members/M1/binding", None).await;
    assert_eq!(status, 404);
    let (status, e) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": "x"})),
    )
    .await;
    assert_eq!(status, 404, "{e}");

    // Tokens issued from now on live 30 s: inside refresh_before_s, so refreshed at once.
    let (status, _) = sandbox.post("/_sandbox/authorizations/lifetime?access_s=30");
    assert_eq!(status, 200);
    let (status, started) = api(port, "POST", "/v1/members/M1/binding", None).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["state"], "awaiting_approval");
    let auth_state = started["auth_state"].as_str().unwrap().to_string();
    assert!(started["auth_url"].as_str().unwrap().contains(&auth_state));

    let (status, e) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": ""})),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("auth_code")),
        "{e}"
    );
    let (status, approved) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={auth_state}"
    ));
    assert_eq!(status, 200, "{approved}");
    let approved: Value = serde_json::from_str(&approved).unwrap();
    let code = approved["auth_code"].as_str().unwrap();
    let (status, e) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": code, "auth_state": "another"})),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("auth_state")),
        "{e}"
    );
    let (status, bound) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": code, "auth_state": auth_state})),
    )
    .await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["state"], "bound");
    assert_eq!(bound["login_id"], "138****8888");
    // A used code is refused by the wallet and changes nothing.
    let (status, _) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": code})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, again) = api(port, "POST", "/v1/members/M1/binding", None).await;
    assert_eq!(status, 409, "{again}");

    // Housekeeping refreshes the short-lived token.
    let first_expiry = bound["access_token_expires_at"].clone();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let counts = sandbox_get(&sandbox, "/_sandbox/authorizations");
        if counts["refreshed"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            Instant::now() < end,
            "never refreshed: {counts} {}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Later tokens live long: the refreshing stops.
    sandbox.post("/_sandbox/authorizations/lifetime?access_s=86400");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, shown) = api(port, "GET", "/v1/members/M1/binding", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["state"], "bound");
    assert_ne!(shown["access_token_expires_at"], first_expiry, "{shown}");
    let text = shown.to_string();
    assert!(!text.contains("SBX"), "no token in the API: {text}");

    // Every token the sandbox handed out, now while they are in the journal.
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(tokens.len() >= 2);
    let journal = sandbox.dir.join("journal-ams.sqlite");
    let look = |when: &str, tokens: &[String]| {
        // The binding is in these files (the search can find what is there) ...
        let all: Vec<u8> = [journal.clone(), journal.with_extension("sqlite-wal")]
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap_or_default())
            .collect();
        assert!(
            all.windows(b"awaiting_approval".len())
                .any(|w| w == b"awaiting_approval")
                || all
                    .windows(b"138****8888".len())
                    .any(|w| w == b"138****8888"),
            "{when}: the binding is not in {}",
            journal.display()
        );
        // ... and no token is.
        for file in [journal.clone(), journal.with_extension("sqlite-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for t in tokens {
                assert!(
                    !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                    "{when}: a token in {}",
                    file.display()
                );
            }
        }
    };
    look("bound", &tokens);

    // DELETE revokes the current token at the wallet (an old one would be refused).
    let (status, revoked) = api(port, "DELETE", "/v1/members/M1/binding", None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["revoked"],
        1
    );
    assert!(revoked["access_token_expires_at"].is_null());
    look("revoked", &tokens);

    // A token the wallet has ended (expired early at the wallet) is refused by its revoke:
    // DELETE erases it all the same.
    let (status, started) = api(port, "POST", "/v1/members/M2/binding", None).await;
    assert_eq!(status, 201, "{started}");
    let (_, approved) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={}",
        started["auth_state"].as_str().unwrap()
    ));
    let approved: Value = serde_json::from_str(&approved).unwrap();
    let (status, bound) = api(
        port,
        "POST",
        "/v1/members/M2/binding/auth_code",
        Some(json!({"auth_code": approved["auth_code"]})),
    )
    .await;
    assert_eq!(
        (status, bound["state"].as_str()),
        (200, Some("bound")),
        "{bound}"
    );
    assert_eq!(sandbox.post("/_sandbox/authorizations/expire").0, 200);
    let (status, revoked) = api(port, "DELETE", "/v1/members/M2/binding", None).await;
    assert_eq!(
        (status, revoked["state"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["revoked"],
        1
    );
    let (_, shown) = api(port, "GET", "/v1/members/M2/binding", None).await;
    assert_eq!(shown["state"], "revoked");

    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    look("at the end", &tokens);
    daemon.terminate();
    let log = daemon.stderr();
    assert!(log.contains("member_binding_bound"), "{log}");
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "a token in the daemon's log");
    }
}

#[test]
fn a_token_key_others_may_read_is_refused_naming_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 1);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = config(
        &sandbox,
        free_port(),
        &format!(
            "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\n",
            key.display()
        ),
    );
    let out = crate::common::procs::scanpay()
        .args(["check-config"])
        .arg(&config)
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("[members] token_key_file") && err.contains("chmod 600"),
        "{err}"
    );
}

/// Binds `member` through the API and the sandbox's customer; returns nothing, panics on a
/// step that does not answer as documented.
async fn bind(port: u16, sandbox: &SandboxProc, member: &str) {
    let (status, started) = api(port, "POST", &format!("/v1/members/{member}/binding"), None).await;
    assert_eq!(status, 201, "{started}");
    let auth_state = started["auth_state"].as_str().unwrap().to_string();
    let (status, approved) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={auth_state}"
    ));
    assert_eq!(status, 200, "{approved}");
    let approved: Value = serde_json::from_str(&approved).unwrap();
    let (status, bound) = api(
        port,
        "POST",
        &format!("/v1/members/{member}/binding/auth_code"),
        Some(json!({"auth_code": approved["auth_code"], "auth_state": auth_state})),
    )
    .await;
    assert_eq!(
        (status, bound["state"].as_str()),
        (200, Some("bound")),
        "{bound}"
    );
}

async fn wait_sale(port: u16, id: &str, state: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, sale) = api(port, "GET", &format!("/v1/sales/{id}"), None).await;
        if sale["state"] == state {
            return sale;
        }
        assert!(
            Instant::now() < end,
            "sale {id} never became {state}: {sale}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A bound member is charged without a scan (`AGREEMENT_PAYMENT`): paid at once; an unclear
/// answer resolved by inquiry to paid; over a limit the sale waits for a scanned code; a
/// member whose token the wallet ended is refused with nothing created; the ledger equals
/// the journal, and no token is in the journal, its WAL or the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_bound_member_is_charged_without_a_scan_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 7);
    let port = free_port();
    let config = config(
        &sandbox,
        port,
        &format!(
            "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\nmax_per_sale = \"20.00\"\nmax_per_day = \"30.00\"\n",
            key.display()
        ),
    );
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    bind(port, &sandbox, "M7").await;

    let sale = |amount: &str| json!({"amount": amount, "currency": "USD", "member_id": "M7"});
    let (status, paid) = api(port, "POST", "/v1/sales", Some(sale("12.00"))).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["state"], "paid", "{paid}");
    assert_eq!(paid["attempts"][0]["method"], "member");
    assert_eq!(paid["attempts"][0]["code"], "member M7");

    // Unclear (the sandbox answers U for amounts ending in 05, and charged it): inquired.
    let (status, doubt) = api(port, "POST", "/v1/sales", Some(sale("3.05"))).await;
    assert_eq!(status, 201, "{doubt}");
    let id = doubt["sale_id"].as_str().unwrap().to_string();
    let resolved = wait_sale(port, &id, "paid").await;
    assert_eq!(
        resolved["attempts"][0]["result_message"], "inquiry: paid",
        "{resolved}"
    );

    // Over the sale limit: not sent; the sale waits for a scanned code, which pays it.
    let (status, over) = api(port, "POST", "/v1/sales", Some(sale("25.00"))).await;
    assert_eq!(status, 201, "{over}");
    assert_eq!(over["state"], "awaiting_scan", "{over}");
    assert!(over["attempts"].as_array().unwrap().is_empty());
    assert!(
        over["message"].as_str().unwrap().contains("limit"),
        "{over}"
    );
    daemon.feed("286000000000000300\n");
    wait_sale(port, over["sale_id"].as_str().unwrap(), "paid").await;

    // Over the day's limit (12.00 + 3.05 paid; 20.00 more is above 30.00).
    let (status, over) = api(port, "POST", "/v1/sales", Some(sale("20.00"))).await;
    assert_eq!(status, 201);
    assert_eq!(over["state"], "awaiting_scan", "{over}");
    assert!(
        over["message"].as_str().unwrap().contains("a day"),
        "{over}"
    );
    api(
        port,
        "POST",
        &format!("/v1/sales/{}/cancel", over["sale_id"].as_str().unwrap()),
        None,
    )
    .await;

    // Insufficient balance (the sandbox's amounts ending in 01): not charged, the sale ends.
    let (status, poor) = api(port, "POST", "/v1/sales", Some(sale("1.01"))).await;
    assert_eq!(status, 201, "{poor}");
    assert_eq!(poor["state"], "failed", "{poor}");
    assert_eq!(
        poor["attempts"][0]["result_code"], "USER_BALANCE_NOT_ENOUGH",
        "{poor}"
    );

    // The customer revoked the authorization in the wallet: refused, the cashier told to
    // bind again; not charged.
    let (status, _) = sandbox.post("/_sandbox/authorizations/revoke");
    assert_eq!(status, 200);
    let (status, ended) = api(port, "POST", "/v1/sales", Some(sale("2.00"))).await;
    assert_eq!(status, 201, "{ended}");
    assert_eq!(ended["state"], "failed", "{ended}");
    assert_eq!(ended["attempts"][0]["state"], "failed", "{ended}");
    assert_eq!(
        ended["attempts"][0]["result_code"], "INVALID_ACCESS_TOKEN",
        "{ended}"
    );
    assert!(
        ended["message"]
            .as_str()
            .unwrap()
            .contains("bind the wallet again"),
        "{ended}"
    );
    // Not bound: refused before anything is created.
    let (status, e) = api(
        port,
        "POST",
        "/v1/sales",
        Some(json!({"amount": "1.00", "currency": "USD", "member_id": "nobody"})),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("member_not_bound")),
        "{e}"
    );

    let journal = sandbox.dir.join("journal-ams.sqlite");
    crate::common::procs::wait_for(
        &journal,
        Duration::from_secs(20),
        "every attempt final",
        |j| j.open_attempts().is_ok_and(|a| a.is_empty()),
    );
    crate::common::procs::assert_journal_and_ledger_agree(&journal, &sandbox.ledger());
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let log = daemon.stderr();
    for t in &tokens {
        assert!(!log.contains(t.as_str()), "a token in the daemon's log");
        for file in [journal.clone(), journal.with_extension("sqlite-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "a token in {}",
                file.display()
            );
        }
    }
    daemon.terminate();
}

/// A member's barcode at a serial scanner (a pty) charges the armed sale to that member
/// (`[members] barcode_pattern`), by the same rules as `member_id` in `POST /v1/sales`:
/// paid by auto-debit; over the limit the sale keeps waiting and a scanned payment code
/// pays it; a member with no binding is refused, the cashier told why, the sale waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_barcode_at_the_scanner_charges_the_armed_sale_to_the_member() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 11);
    let link = dir.path().join("scanner-front");
    let mut master = crate::scanner::plug(&link);
    let port = free_port();
    let config = config(
        &sandbox,
        port,
        &format!(
            "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\nmax_per_sale = \"20.00\"\nbarcode_pattern = \"MBR-{{id}}\"\n\n[[scanner]]\nname = \"front\"\nkind = \"serial\"\npath = \"{}\"\nbaud = 9600\n",
            key.display(),
            link.display()
        ),
    );
    let daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, health) = api(port, "GET", "/v1/health", None).await;
        if health["scanners"][0]["connected"] == true {
            break;
        }
        assert!(Instant::now() < end, "no scanner: {}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bind(port, &sandbox, "M0000007").await;
    let mut scan = |text: &str| {
        master.write_all(format!("{text}\r\n").as_bytes()).unwrap();
        master.flush().unwrap();
    };
    let sale = |amount: &str| json!({"amount": amount, "currency": "USD"});
    let waiting_with = async |id: &str, words: &str| {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, s) = api(port, "GET", &format!("/v1/sales/{id}"), None).await;
            if s["message"].as_str().is_some_and(|m| m.contains(words)) {
                return s;
            }
            assert!(Instant::now() < end, "sale {id} never said {words:?}: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // Paid by auto-debit: the member's barcode is the sale's only scan.
    let (status, s) = api(port, "POST", "/v1/sales", Some(sale("12.00"))).await;
    assert_eq!(status, 201, "{s}");
    let id = s["sale_id"].as_str().unwrap().to_string();
    scan("MBR-M0000007");
    let paid = wait_sale(port, &id, "paid").await;
    assert_eq!(paid["attempts"][0]["method"], "member", "{paid}");
    assert_eq!(paid["attempts"][0]["code"], "member M0000007", "{paid}");

    // Over the member's limit: nothing sent, the sale waits; the customer's code pays it.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, s) = api(port, "POST", "/v1/sales", Some(sale("25.00"))).await;
    let id = s["sale_id"].as_str().unwrap().to_string();
    scan("MBR-M0000007");
    let over = waiting_with(&id, "limit").await;
    assert_eq!(over["state"], "awaiting_scan", "{over}");
    assert!(over["attempts"].as_array().unwrap().is_empty(), "{over}");
    scan("286000000000000300");
    let paid = wait_sale(port, &id, "paid").await;
    assert_eq!(paid["attempts"][0]["method"], "scanned", "{paid}");

    // A member with no binding: refused with the reason, the sale still waits for a code.
    let (_, s) = api(port, "POST", "/v1/sales", Some(sale("3.00"))).await;
    let id = s["sale_id"].as_str().unwrap().to_string();
    scan("MBR-NOBODY99");
    let refused = waiting_with(&id, "no wallet bound").await;
    assert_eq!(refused["state"], "awaiting_scan", "{refused}");
    assert!(refused["attempts"].as_array().unwrap().is_empty());
    assert!(
        refused["message"].as_str().unwrap().contains("****DY99"),
        "{refused}"
    );
    scan("286000000000000400");
    wait_sale(port, &id, "paid").await;

    // The day's books: one member pay line, for the wallet the member bound.
    let (status, report) = api(port, "GET", "/v1/report", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["member_pay"],
        json!([{"wallet": "ALIPAY_CN", "currency": "USD", "count": 1, "total": "12.00"}]),
        "{report}"
    );
    assert!(
        daemon.stderr().contains("member barcode refused"),
        "{}",
        daemon.stderr()
    );
}

/// `check-config` refuses a member barcode pattern that could frame a payment code, or has no
/// `{id}`, naming the key and what it takes.
#[test]
fn a_barcode_pattern_that_could_take_a_payment_code_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 5);
    for (pattern, words) in [("28{id}", "letter or sign"), ("MBR-", "no {id}")] {
        let config = config(
            &sandbox,
            free_port(),
            &format!(
                "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\nbarcode_pattern = \"{pattern}\"\n",
                key.display()
            ),
        );
        let out = crate::common::procs::scanpay()
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("barcode_pattern") && said.contains(words),
            "{pattern}: {said}"
        );
    }
}

/// Like [`api`], but a connection the daemon dropped (killed at a failpoint) is `None`.
async fn try_api(port: u16, path: &str, body: Value) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn gauge(metrics: &str, name: &str) -> Option<i64> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// Polls GET binding until `state`.
async fn wait_binding(port: u16, daemon: &Daemon, member: &str, state: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, b) = api(port, "GET", &format!("/v1/members/{member}/binding"), None).await;
        if status == 200 && b["state"] == state {
            return b;
        }
        assert!(
            Instant::now() < end,
            "{member} never {state}: {b} {}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events the bus journaled, as `(kind, JSON)`, once `done` holds.
fn wait_events(journal: &Path, done: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let events: Vec<(String, Value)> = scanpay::journal::Journal::open_read_only(journal)
            .and_then(|j| j.events_after(0, 10_000))
            .map(|all| {
                all.into_iter()
                    .map(|(_, kind, data)| (kind, serde_json::from_str(&data).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < end, "events: {events:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Consults and approves `member` in the sandbox; returns `(auth_state, auth_code)`.
async fn consult_and_approve(port: u16, sandbox: &SandboxProc, member: &str) -> (String, String) {
    let (status, started) = api(port, "POST", &format!("/v1/members/{member}/binding"), None).await;
    assert_eq!(status, 201, "{started}");
    let auth_state = started["auth_state"].as_str().unwrap().to_string();
    let (status, approved) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={auth_state}"
    ));
    assert_eq!(status, 200, "{approved}");
    let approved: Value = serde_json::from_str(&approved).unwrap();
    (
        auth_state,
        approved["auth_code"].as_str().unwrap().to_string(),
    )
}

fn members_config(sandbox: &SandboxProc, port: u16, key: &Path, extra: &str) -> std::path::PathBuf {
    config(
        sandbox,
        port,
        &format!(
            "token_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\n{extra}",
            key.display()
        ),
    )
}

/// Neither `secrets` in the journal, its WAL nor `log`.
fn assert_nowhere(journal: &Path, log: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!log.contains(s.as_str()), "a secret in the daemon's log");
        for file in [journal.to_path_buf(), journal.with_extension("sqlite-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret in {}",
                file.display()
            );
        }
    }
}

/// Killed -9 between `applyToken`'s answer and its journaling: the wallet issued tokens
/// scanpay never stored. On restart the sealed auth code is sent again, the wallet refuses
/// it (a code works once), and the binding ends `failed`, told to bind again, reported in
/// health, the metrics and the event stream; never bound without tokens, never tokens
/// without bound. Binding again clears the report.
#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_killed_after_the_wallets_answer_ends_failed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 11);
    let port = free_port();
    let config = members_config(&sandbox, port, &key, "");
    let journal = sandbox.dir.join("journal-ams.sqlite");
    let mut daemon = Daemon::start(&config, Some("member_after_exchange_answer"));
    wait_for_api(port, &daemon);
    let (auth_state, code) = consult_and_approve(port, &sandbox, "M1").await;
    let answer = try_api(
        port,
        "/v1/members/M1/binding/auth_code",
        json!({"auth_code": code, "auth_state": auth_state}),
    )
    .await;
    assert!(answer.is_none(), "answered: {answer:?}");
    daemon.wait(Duration::from_secs(10));
    let first_log = daemon.stderr();
    assert!(
        first_log.contains("failpoint member_after_exchange_answer"),
        "{first_log}"
    );
    // The wallet answered with tokens; the journal holds the sealed code, no token.
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["issued"],
        1
    );
    {
        let j = scanpay::journal::Journal::open_read_only(&journal).unwrap();
        let row = j.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state.as_str(), "exchanging");
        assert!(row.auth_code.is_some() && row.access_token.is_none());
    }

    let started = Instant::now();
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    let failed = wait_binding(port, &daemon, "M1", "failed").await;
    eprintln!("failed after restart in {:?}", started.elapsed());
    assert_eq!(failed["result_code"], "INVALID_CODE", "{failed}");
    assert_eq!(failed["needs_attention"], true, "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("bind the wallet again"),
        "{failed}"
    );
    assert!(failed["access_token_expires_at"].is_null());
    {
        let j = scanpay::journal::Journal::open_read_only(&journal).unwrap();
        let row = j.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state.as_str(), "failed");
        assert!(
            row.auth_code.is_none() && row.access_token.is_none() && row.refresh_token.is_none()
        );
    }
    let (status, health) = api(port, "GET", "/v1/health", None).await;
    assert_eq!(status, 503, "{health}");
    assert!(
        health["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("member_binding_attention")),
        "{health}"
    );
    assert_eq!(
        health["member_bindings_needing_attention"][0]["member_id"], "M1",
        "{health}"
    );
    assert_eq!(
        gauge(
            &metrics(port).await,
            "scanpay_member_bindings_needing_attention"
        ),
        Some(1)
    );
    let events = wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_failed")
    });
    let (_, e) = events
        .iter()
        .find(|(k, _)| k == "member_binding_failed")
        .unwrap();
    assert_eq!(
        (e["member_id"].as_str(), e["state"].as_str()),
        (Some("M1"), Some("failed")),
        "{e}"
    );
    assert_eq!(e["wallet"], "ALIPAY_CN", "{e}");
    let log = daemon.stderr();
    assert!(log.contains("member_binding_failed"), "{log}");
    let status = crate::common::procs::scanpay()
        .arg("status")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(said.contains("ATTENTION member M1 (failed)"), "{said}");

    // Bound again: the report is cleared.
    let (auth_state, code2) = consult_and_approve(port, &sandbox, "M1").await;
    let (status, bound) = api(
        port,
        "POST",
        "/v1/members/M1/binding/auth_code",
        Some(json!({"auth_code": code2, "auth_state": auth_state})),
    )
    .await;
    assert_eq!(
        (status, bound["state"].as_str()),
        (200, Some("bound")),
        "{bound}"
    );
    assert_eq!(bound["needs_attention"], false);
    let (_, health) = api(port, "GET", "/v1/health", None).await;
    assert_eq!(
        health["member_bindings_needing_attention"],
        json!([]),
        "{health}"
    );
    assert_eq!(
        gauge(
            &metrics(port).await,
            "scanpay_member_bindings_needing_attention"
        ),
        Some(0)
    );
    daemon.terminate();
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(tokens.contains(&code) && tokens.contains(&code2));
    let events = wait_events(&journal, |_| true);
    let all_events = format!("{events:?}");
    for t in &tokens {
        assert!(!all_events.contains(t.as_str()), "a secret in an event");
    }
    assert_nowhere(&journal, &(first_log + &daemon.stderr()), &tokens);
}

/// Killed -9 after the exchange was journaled but before `applyToken` left: the restart
/// sends the sealed code, which the wallet takes; the member ends bound with tokens.
#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_killed_before_it_was_sent_ends_bound_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 12);
    let port = free_port();
    let config = members_config(&sandbox, port, &key, "");
    let journal = sandbox.dir.join("journal-ams.sqlite");
    let mut daemon = Daemon::start(&config, Some("member_before_exchange_send"));
    wait_for_api(port, &daemon);
    let (_, code) = consult_and_approve(port, &sandbox, "M1").await;
    let answer = try_api(
        port,
        "/v1/members/M1/binding/auth_code",
        json!({"auth_code": code}),
    )
    .await;
    assert!(answer.is_none(), "answered: {answer:?}");
    daemon.wait(Duration::from_secs(10));
    let first_log = daemon.stderr();
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["issued"],
        0
    );
    {
        let j = scanpay::journal::Journal::open_read_only(&journal).unwrap();
        let row = j.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state.as_str(), "exchanging");
        assert!(row.auth_code.is_some() && row.access_token.is_none());
    }
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    let bound = wait_binding(port, &daemon, "M1", "bound").await;
    assert_eq!(bound["login_id"], "138****8888", "{bound}");
    assert_eq!(bound["needs_attention"], false);
    {
        let j = scanpay::journal::Journal::open_read_only(&journal).unwrap();
        let row = j.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state.as_str(), "bound");
        assert!(row.auth_code.is_none() && row.access_token.is_some());
    }
    wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_bound")
    });
    daemon.terminate();
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(tokens.contains(&code));
    assert_nowhere(&journal, &(first_log + &daemon.stderr()), &tokens);
}

/// The wallet tells scanpay of the approval (`notifyAuthorization` to `[notify] listen`):
/// bound without the register posting the auth code. One for an `authState` no binding
/// awaits is answered and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_authorization_notification_binds_the_member_without_the_register() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 13);
    let port = free_port();
    let notify_port = free_port();
    let config = members_config(
        &sandbox,
        port,
        &key,
        &format!("\n[notify]\nlisten = \"127.0.0.1:{notify_port}\"\n"),
    );
    let journal = sandbox.dir.join("journal-ams.sqlite");
    let (status, set) = sandbox.post(&format!(
        "/_sandbox/authorizations/notify_url?url=http://127.0.0.1:{notify_port}/notify/ams"
    ));
    assert_eq!(status, 200, "{set}");
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    let (_, code) = consult_and_approve(port, &sandbox, "M1").await;
    let bound = wait_binding(port, &daemon, "M1", "bound").await;
    assert_eq!(bound["login_id"], "138****8888", "{bound}");
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["issued"],
        1
    );
    wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_bound")
    });

    // A binding given up (revoked) before its approval: the notification changes nothing.
    let (status, started) = api(port, "POST", "/v1/members/M2/binding", None).await;
    assert_eq!(status, 201, "{started}");
    let (status, _) = api(port, "DELETE", "/v1/members/M2/binding", None).await;
    assert_eq!(status, 200);
    let (status, _) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={}",
        started["auth_state"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    let end = Instant::now() + Duration::from_secs(10);
    while !daemon.stderr().contains("no binding awaits") {
        assert!(Instant::now() < end, "{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, m2) = api(port, "GET", "/v1/members/M2/binding", None).await;
    assert_eq!(m2["state"], "revoked", "{m2}");
    assert_eq!(
        sandbox_get(&sandbox, "/_sandbox/authorizations")["issued"],
        1
    );
    daemon.terminate();
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(tokens.contains(&code));
    assert_nowhere(&journal, &daemon.stderr(), &tokens);
}

/// Signals: a refresh is an event; a refresh the wallet refuses (the customer ended the
/// authorization in the wallet) is an event, a needs-attention item in health and a metric
/// until the member is revoked, which is an event too. No event carries a token.
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_the_wallet_refuses_needs_attention_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    write_key(&key, 14);
    let port = free_port();
    let config = members_config(
        &sandbox,
        port,
        &key,
        "refresh_before_s = 60\nrefresh_check_s = 1\n",
    );
    let journal = sandbox.dir.join("journal-ams.sqlite");
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    sandbox.post("/_sandbox/authorizations/lifetime?access_s=30");
    bind(port, &sandbox, "M1").await;
    wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_refreshed")
    });
    assert_eq!(sandbox.post("/_sandbox/authorizations/revoke").0, 200);
    let events = wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_refresh_failed")
    });
    let (_, e) = events
        .iter()
        .find(|(k, _)| k == "member_binding_refresh_failed")
        .unwrap();
    assert_eq!(
        (e["member_id"].as_str(), e["state"].as_str()),
        (Some("M1"), Some("bound")),
        "{e}"
    );
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("INVALID_REFRESH_TOKEN"),
        "{e}"
    );
    let (_, shown) = api(port, "GET", "/v1/members/M1/binding", None).await;
    assert_eq!(shown["needs_attention"], true, "{shown}");
    assert_eq!(shown["result_code"], "INVALID_REFRESH_TOKEN", "{shown}");
    let (status, health) = api(port, "GET", "/v1/health", None).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        health["member_bindings_needing_attention"][0]["member_id"], "M1",
        "{health}"
    );
    assert_eq!(
        gauge(
            &metrics(port).await,
            "scanpay_member_bindings_needing_attention"
        ),
        Some(1)
    );
    let (status, revoked) = api(port, "DELETE", "/v1/members/M1/binding", None).await;
    assert_eq!(
        (status, revoked["state"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    assert_eq!(revoked["needs_attention"], false);
    let (_, health) = api(port, "GET", "/v1/health", None).await;
    assert_eq!(
        health["member_bindings_needing_attention"],
        json!([]),
        "{health}"
    );
    assert_eq!(
        gauge(
            &metrics(port).await,
            "scanpay_member_bindings_needing_attention"
        ),
        Some(0)
    );
    let events = wait_events(&journal, |e| {
        e.iter().any(|(k, _)| k == "member_binding_revoked")
    });
    daemon.terminate();
    let tokens: Vec<String> = sandbox_get(&sandbox, "/_sandbox/authorizations")["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let all_events = format!("{events:?}");
    for t in &tokens {
        assert!(!all_events.contains(t.as_str()), "a token in an event");
    }
    assert_nowhere(&journal, &daemon.stderr(), &tokens);
}

/// The wallet cannot be reached when the auth code is posted: `202`, the binding stays
/// `exchanging` with the code sealed. Once the wallet is back the daemon sends the code
/// again by itself; this wallet no longer knows it (a code is short-lived and works once)
/// and refuses it, so the binding ends `failed`, told to bind again.
#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_without_an_answer_is_accepted_kept_and_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let sbx_dir = dir.path().join("sbx");
    let mut sandbox = SandboxProc::start(&sbx_dir, 0);
    let sandbox_port = sandbox.port;
    let key = dir.path().join("member-token.key");
    write_key(&key, 15);
    let port = free_port();
    let config = members_config(&sandbox, port, &key, "refresh_check_s = 1\n");
    let mut daemon = Daemon::start(&config, None);
    wait_for_api(port, &daemon);
    let (_, code) = consult_and_approve(port, &sandbox, "M1").await;
    sandbox.stop();
    let (status, text) = try_api(
        port,
        "/v1/members/M1/binding/auth_code",
        json!({"auth_code": code}),
    )
    .await
    .unwrap();
    let accepted: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["state"], "exchanging", "{accepted}");
    assert!(
        accepted["message"].as_str().unwrap().contains("sent again"),
        "{accepted}"
    );
    assert!(!text.contains(&code), "the code in the answer");
    let (status, e) = api(port, "POST", "/v1/members/M1/binding", None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("binding_state")),
        "{e}"
    );

    let sandbox = SandboxProc::start(&sbx_dir, sandbox_port);
    let failed = wait_binding(port, &daemon, "M1", "failed").await;
    assert_eq!(failed["result_code"], "INVALID_CODE", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("bind the wallet again"),
        "{failed}"
    );
    daemon.terminate();
    assert_nowhere(
        &sandbox.dir.join("journal-ams.sqlite"),
        &daemon.stderr(),
        &[code],
    );
}
