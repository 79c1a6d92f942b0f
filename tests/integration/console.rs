//! The operator's console in a real headless Chromium, driven over WebDriver (chromedriver,
//! Debian's `chromium-driver`): it loads from the daemon, shows a payment in doubt as it
//! happens, prints a test slip from its button, and speaks Chinese. Each state is saved as
//! a screenshot under the test's output directory for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::free_port;
use crate::common::procs::{Daemon, SandboxProc};

struct Driver {
    child: Child,
    url: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(profile: &Path) -> Option<Driver> {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let end = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < end, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=420,900", "--lang=en-US",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let mut driver = Driver {
            child,
            url,
            session: String::new(),
            http,
        };
        let created = driver.call("POST", "/session", caps).await;
        driver.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(driver)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let text = request.send().await.unwrap().text().await.unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn text_of(&self, css: &str) -> String {
        let found = self
            .session(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let Some(id) = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
        else {
            return String::new();
        };
        self.session("GET", &format!("/element/{id}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.session("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .session(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {css}: {found}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Waits until the text of `css` contains `wanted`.
    async fn wait_for(&self, css: &str, wanted: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text_of(css).await;
            if text.contains(wanted) {
                return text;
            }
            assert!(
                Instant::now() < end,
                "{css} never showed {wanted:?}: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.session("GET", "/screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        eprintln!("console screenshot: {}", path.display());
        path
    }
}

/// A daemon on a fresh sandbox with the API on loopback TCP (and `extra` config), and a
/// headless Chromium on its console page; `None` where chromedriver is not installed.
struct Console {
    // Dropped in this order: the browser, the daemon, then the sandbox and its directory.
    driver: Driver,
    daemon: Daemon,
    sandbox: SandboxProc,
    shots: PathBuf,
    _dir: tempfile::TempDir,
}

async fn open_console(extra: impl Fn(&Path) -> String) -> Option<Console> {
    if Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "chromedriver not installed (apt-get install chromium chromium-driver): console not tested in a browser"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[api]\nsocket = \"api.sock\"\ntcp = \"127.0.0.1:{port}\"\n")
        + &extra(&sandbox.dir);
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let driver = Driver::start(&dir.path().join("chromium-profile"))
        .await
        .expect("chromedriver starts");
    driver
        .session(
            "POST",
            "/url",
            json!({"url": format!("http://127.0.0.1:{port}/console")}),
        )
        .await;
    Some(Console {
        driver,
        daemon,
        sandbox,
        shots,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_the_till_live_and_prints_a_test_slip_in_a_real_browser() {
    let Some(Console {
        driver,
        mut daemon,
        sandbox,
        shots,
        _dir,
    }) = open_console(|dir| {
        format!(
            "\n[printer]\nkind = \"file\"\npath = \"{}\"\n",
            dir.join("slips.bin").display()
        )
    })
    .await
    else {
        return;
    };
    let slips = sandbox.dir.join("slips.bin");
    driver.wait_for("#status", "OK").await;
    driver.wait_for("#reasons", "Everything is working").await;
    driver.screenshot(&shots, "1-idle").await;

    // A customer who keeps confirming: the payment is in doubt, and the page shows it live.
    daemon.feed("12.50\n286000000000000004\n");
    let doubt = driver.wait_for("#doubt", "12.50 CNY").await;
    // Inquiring until its deadline, then cancelling: the page says which.
    assert!(
        doubt.contains("cancels at") || doubt.contains("being cancelled"),
        "{doubt}"
    );
    driver.screenshot(&shots, "2-in-doubt").await;

    driver.click("#print-test").await;
    let result = driver.wait_for("#print-result", "printed").await;
    let printed = std::fs::read(&slips).unwrap();
    assert!(
        printed.windows(9).any(|w| w == b"TEST SLIP"),
        "the slip reached the printer: {result}"
    );
    driver.screenshot(&shots, "3-test-slip").await;

    driver.click("#lang").await;
    driver.wait_for("h1", "扫码支付 控制台").await;
    driver.wait_for("#status", "正常").await;
    driver.screenshot(&shots, "4-chinese").await;

    // The watchdog ends the payment at its deadline (cancelled), and the page follows.
    driver.wait_for("#doubt", "无").await;
    driver.wait_for("#totals", "已撤销").await;
    driver.screenshot(&shots, "5-cancelled").await;
    driver.session("DELETE", "", json!({})).await;
    daemon.terminate();

    // The test print is journaled: who, what, how it went.
    let journal = scanpay::journal::Journal::open_read_only(&sandbox.journal()).unwrap();
    let events = journal.events_after(0, 1000).unwrap();
    let (_, _, action) = events
        .iter()
        .find(|(_, kind, _)| kind == "operator_action")
        .expect("the test print is journaled");
    assert!(
        action.contains("\"actor\":\"tcp 127.0.0.1:") && action.contains("printer_test"),
        "{action}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_needing_a_person_is_listed_and_settled_from_its_button_in_a_real_browser() {
    let Some(Console {
        driver,
        mut daemon,
        sandbox,
        shots,
        _dir,
    }) = open_console(|_| String::new()).await
    else {
        return;
    };
    driver.wait_for("#status", "OK").await;

    // A customer who never confirms, on a trade risk control froze: its cancel is refused,
    // and the page lists it with the actions it takes.
    daemon.feed("18.80\n286000000000003315\n");
    let end = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let text = driver.text_of("#attention").await;
        if text.contains("REASON_TRADE_BEEN_FREEZEN") {
            break text;
        }
        assert!(Instant::now() < end, "never listed: {text:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        listed.contains("18.80 CNY") && listed.contains("Settled by hand"),
        "{listed}"
    );
    driver.wait_for("#status", "Needs a look").await;
    driver.screenshot(&shots, "6-needs-attention").await;

    // Settled by hand, with a note and a name, from its button.
    // The list is drawn again on every event: click until the form opens.
    let end = Instant::now() + Duration::from_secs(10);
    while driver.text_of("#attention-what").await.is_empty() {
        assert!(Instant::now() < end, "the settle form never opened");
        driver.click("#attention button[data-action=settle]").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    driver
        .type_into("#attention-note", "reversed in the merchant console")
        .await;
    driver.type_into("#attention-operator", "Li Wei").await;
    driver.screenshot(&shots, "7-settling").await;
    driver.click("#attention-confirm").await;
    driver.wait_for("#attention-done", "settled by hand").await;
    driver.wait_for("#attention", "None.").await;
    driver.wait_for("#actions", "settle").await;
    let actions = driver.text_of("#actions").await;
    assert!(
        actions.contains("Li Wei") && actions.contains("reversed in the merchant console"),
        "{actions}"
    );
    driver.screenshot(&shots, "8-settled").await;

    // A reconciliation of today from the page: the sandbox's bill agrees with the journal.
    driver.click("#reconcile-run").await;
    driver.wait_for("#reconcile-result", "No differences").await;
    driver.screenshot(&shots, "9-reconciled").await;
    driver.session("DELETE", "", json!({})).await;
    daemon.terminate();

    // The journal: who settled it, when, with what note; the payment still as the gateway
    // left it (cancelling), no longer flagged.
    let journal = scanpay::journal::Journal::open_read_only(&sandbox.journal()).unwrap();
    let settle = journal
        .actions(20)
        .unwrap()
        .into_iter()
        .find(|a| a.action == "settle")
        .expect("the settle is journaled");
    assert!(
        settle.actor.starts_with("tcp 127.0.0.1:"),
        "{}",
        settle.actor
    );
    assert_eq!(settle.operator.as_deref(), Some("Li Wei"));
    assert_eq!(
        settle.note.as_deref(),
        Some("reversed in the merchant console")
    );
    let attempt = journal
        .attempt_by_request_id(settle.target.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(attempt.state, scanpay::state::AttemptState::Cancelling);
    assert_eq!(attempt.needs_attention, None);
}
