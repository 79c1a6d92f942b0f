//! The customer display in a real headless browser (Debian's Chromium) against a real
//! `scanpay run` and `scanpay sandbox`: the page shows the open sale's QR, the QR decoded
//! from a screenshot (`zbarimg`) is the sale's QR content, and the page left open turns to
//! "paid" when the sandbox plays the customer paying, driven by the event stream alone.
//! Skipped, saying so, where Chromium or zbarimg is not installed (`.ci/run` installs both).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{Daemon, SandboxProc};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chromium(args: &[&str], url: &str, profile: &Path) -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=720,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// `GET path` on the daemon's TCP listener; status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customer_display_shows_the_qr_and_then_paid() {
    if !have("chromium") || !have("zbarimg") {
        eprintln!(
            "SKIPPED: the customer display test needs chromium and zbarimg (apt-get install chromium zbar-tools)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let config = sandbox.config();
    let port = common::free_port();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[api]\nsocket = \"api.sock\"\ntcp = \"127.0.0.1:{port}\"\n\n[sales]\nqr_timeout_s = 120\n"
        );
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let daemon = Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < end, "no API:\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The page is plain HTML with everything inline, and nothing on it polls.
    let (status, page) = get(port, "/display");
    assert_eq!(status, 200);
    assert!(!page.contains("setInterval"), "the display must not poll");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no external assets"
    );

    let (status, sale) = common::call(
        &socket,
        "POST",
        "/v1/sales",
        &[],
        r#"{"amount":"8.00","currency":"CNY","method":"customer_scan"}"#,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let content = sale["qr"]["content"].as_str().unwrap().to_string();
    let sale_id = sale["sale_id"].as_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/display");

    // A screenshot of the page with the QR open; the QR in it decodes to the sale's.
    let shot = dir.path().join("display-qr.png");
    let status = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--virtual-time-budget=4000",
        ],
        &url,
        &dir.path().join("profile-1"),
    )
    .stdout(Stdio::null())
    .status()
    .unwrap();
    assert!(status.success() && shot.exists(), "no screenshot");
    if let Some(keep) = std::env::var_os("SCANPAY_SCREENSHOTS") {
        std::fs::copy(&shot, Path::new(&keep).join("display-qr.png")).unwrap();
    }
    let decoded = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&shot)
        .output()
        .unwrap();
    let decoded = String::from_utf8_lossy(&decoded.stdout).trim().to_string();
    assert_eq!(decoded, content, "the screenshot's QR is not the sale's");

    // The page stays open while the customer pays; what it shows at the end came from the
    // event stream (the page never reloads). Read through the DevTools protocol.
    let mut page = Devtools::open(&url, &dir.path().join("profile-2"));
    let state = |page: &mut Devtools| page.eval("document.getElementById('screen').dataset.state");
    let end = Instant::now() + Duration::from_secs(20);
    while state(&mut page) != "qr" {
        assert!(Instant::now() < end, "the page never showed the QR");
        std::thread::sleep(Duration::from_millis(100));
    }
    let request_id = sale["qr"]["request_id"].as_str().unwrap();
    let (status, body) = sandbox.post(&format!("/_sandbox/customer?code={request_id}&action=pay"));
    assert_eq!(status, 200, "{body}");
    let end = Instant::now() + Duration::from_secs(15);
    while state(&mut page) != "paid" {
        assert!(Instant::now() < end, "the open page did not turn to paid");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = page.eval("document.documentElement.outerHTML");
    if let Some(keep) = std::env::var_os("SCANPAY_SCREENSHOTS") {
        use base64::Engine;
        let shot = page.send(
            Some(&page.session.clone()),
            "Page.captureScreenshot",
            serde_json::json!({}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or(""))
            .unwrap();
        std::fs::write(Path::new(&keep).join("display-paid.png"), png).unwrap();
    }
    assert!(dom.contains("支付成功"), "{dom}");
    assert!(dom.contains(&format!(r#"data-sale="{sale_id}""#)), "{dom}");
}

/// A member binding started at the register is shown on the open page as a QR that
/// decodes (`zbarimg`) to exactly the binding's approval URL, in both languages, and the
/// receipt printer gets the slip with the same URL in its QR (`GS ( k`).
#[tokio::test(flavor = "multi_thread")]
async fn a_member_binding_shows_its_approval_qr_and_prints_its_slip() {
    if !have("chromium") || !have("zbarimg") {
        eprintln!(
            "SKIPPED: the customer display test needs chromium and zbarimg (apt-get install chromium zbar-tools)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let key = dir.path().join("member-token.key");
    {
        use base64::Engine as _;
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &key,
            base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let slips = dir.path().join("printer.bin");
    let config = sandbox.config_from("scanpay-ams.toml");
    let port = common::free_port();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[api]\nsocket = \"api.sock\"\ntcp = \"127.0.0.1:{port}\"\n\n[printer]\nkind = \"file\"\npath = \"{}\"\n\n[members]\ntoken_key_file = \"{}\"\nauth_redirect_url = \"https://shop.example/member/bound\"\n",
            slips.display(),
            key.display()
        );
    std::fs::write(&config, text).unwrap();
    let socket = sandbox.dir.join("api.sock");
    let daemon = Daemon::start(&config, None);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < end, "no API:\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://127.0.0.1:{port}/display");
    let mut page = Devtools::open(&url, &dir.path().join("profile"));
    let end = Instant::now() + Duration::from_secs(20);
    while page.eval("document.getElementById('screen').dataset.live || ''") != "1" {
        assert!(
            Instant::now() < end,
            "the page never followed the event stream"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, started) =
        common::call(&socket, "POST", "/v1/members/M00000042/binding", &[], "").await;
    assert_eq!(status, 201, "{started}");
    let auth_url = started["auth_url"].as_str().unwrap().to_string();
    let end = Instant::now() + Duration::from_secs(20);
    while page.eval(
        "(document.getElementById('screen').dataset.state === 'bind' && !document.getElementById('qr').hidden && document.getElementById('qr').complete) ? 'shown' : ''",
    ) != "shown"
    {
        assert!(Instant::now() < end, "the page never showed the binding's QR");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = page.eval("document.documentElement.outerHTML");
    assert!(dom.contains("请用钱包扫码，成为会员"), "{dom}");
    assert!(
        dom.contains("Scan with your wallet to become a member"),
        "{dom}"
    );
    use base64::Engine;
    let shot = page.send(
        Some(&page.session.clone()),
        "Page.captureScreenshot",
        serde_json::json!({}),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap_or(""))
        .unwrap();
    let file = dir.path().join("display-binding.png");
    std::fs::write(&file, &png).unwrap();
    if let Some(keep) = std::env::var_os("SCANPAY_SCREENSHOTS") {
        std::fs::copy(&file, Path::new(&keep).join("display-binding.png")).unwrap();
    }
    let decoded = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&file)
        .output()
        .unwrap();
    let decoded = String::from_utf8_lossy(&decoded.stdout).trim().to_string();
    assert_eq!(
        decoded, auth_url,
        "the screenshot's QR is not the binding's URL"
    );

    // The slip: the QR's data is the URL, the member id masked.
    let end = Instant::now() + Duration::from_secs(10);
    let bytes = loop {
        let bytes = std::fs::read(&slips).unwrap_or_default();
        if bytes
            .windows(auth_url.len())
            .any(|w| w == auth_url.as_bytes())
        {
            break bytes;
        }
        assert!(
            Instant::now() < end,
            "no binding slip printed:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let qr = bytes
        .windows(3)
        .position(|w| w == [0x1d, 0x28, 0x6b])
        .expect("the slip has a QR (GS ( k)");
    assert!(
        bytes[qr..]
            .windows(auth_url.len())
            .any(|w| w == auth_url.as_bytes())
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("*****0042") && !text.contains("M00000042"),
        "{text}"
    );
    // Not logged at info: the URL is for the customer's screen and slip.
    assert!(!daemon.stderr().contains(&auth_url), "{}", daemon.stderr());

    // The customer approves: the QR goes and the screen says the member is bound.
    let auth_state = started["auth_state"].as_str().unwrap();
    let (status, approved) = sandbox.post(&format!(
        "/_sandbox/authorizations/approve?auth_state={auth_state}"
    ));
    assert_eq!(status, 200, "{approved}");
    let approved: serde_json::Value = serde_json::from_str(&approved).unwrap();
    let body = serde_json::json!({"auth_code": approved["auth_code"], "auth_state": auth_state});
    let (status, bound) = common::call(
        &socket,
        "POST",
        "/v1/members/M00000042/binding/auth_code",
        &[],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{bound}");
    let end = Instant::now() + Duration::from_secs(20);
    while page.eval(
        "(document.getElementById('screen').dataset.state === 'bound' && document.getElementById('qr').hidden) ? 'bound' : ''",
    ) != "bound"
    {
        assert!(Instant::now() < end, "the page kept the binding's QR after approval");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = page.eval("document.documentElement.outerHTML");
    assert!(
        dom.contains("会员已开通") && dom.contains("You are a member now"),
        "{dom}"
    );
}

/// A headless Chromium driven over `--remote-debugging-pipe`: DevTools protocol messages,
/// NUL-terminated JSON, on the browser's fds 3 (in) and 4 (out).
struct Devtools {
    child: std::process::Child,
    to: std::io::PipeWriter,
    from: std::io::BufReader<std::io::PipeReader>,
    session: String,
    next: u64,
}

impl Devtools {
    fn open(url: &str, profile: &Path) -> Devtools {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let (cmd_read, to) = std::io::pipe().unwrap();
        let (from, out_write) = std::io::pipe().unwrap();
        let (r, w) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut cmd = chromium(&["--remote-debugging-pipe"], url, profile);
        cmd.stdout(Stdio::null());
        // SAFETY: fcntl and dup2 are async-signal-safe; they only place the two pipe ends at
        // 3 and 4. Copied above 10 first: a pipe end may itself be 3 or 4 (dup2 of an fd onto
        // itself would keep its close-on-exec flag, or overwrite the other end).
        unsafe {
            cmd.pre_exec(move || {
                let (r2, w2) = (
                    libc::fcntl(r, libc::F_DUPFD, 10),
                    libc::fcntl(w, libc::F_DUPFD, 10),
                );
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd_read);
        drop(out_write);
        let mut d = Devtools {
            child,
            to,
            from: std::io::BufReader::new(from),
            session: String::new(),
            next: 0,
        };
        let end = Instant::now() + Duration::from_secs(20);
        let target = loop {
            let targets = d.send(None, "Target.getTargets", serde_json::json!({}));
            if let Some(t) = targets["targetInfos"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["type"] == "page"))
            {
                break t["targetId"].as_str().unwrap().to_string();
            }
            assert!(Instant::now() < end, "no page target: {targets}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let attached = d.send(
            None,
            "Target.attachToTarget",
            serde_json::json!({"targetId": target, "flatten": true}),
        );
        d.session = attached["sessionId"].as_str().unwrap().to_string();
        d
    }

    /// Sends one command and returns its result, skipping the events in between.
    fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        use std::io::{BufRead, Write};
        self.next += 1;
        let mut message = serde_json::json!({"id": self.next, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = serde_json::json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        loop {
            let mut buf = Vec::new();
            self.from.read_until(0, &mut buf).unwrap();
            assert!(!buf.is_empty(), "the browser closed its DevTools pipe");
            buf.pop();
            let answer: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            if answer["id"] == self.next {
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page, as a string.
    fn eval(&mut self, expression: &str) -> String {
        let session = self.session.clone();
        let r = self.send(
            Some(&session),
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].as_str().unwrap_or("").to_string()
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
