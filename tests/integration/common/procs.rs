//! The binary as processes: `scanpay sandbox` and `scanpay run`, with their output drained
//! on threads so pipes never fill or close early.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanpay::journal::Journal;
use scanpay::state::{AttemptState, RefundState, SaleState};
use serde_json::Value;

pub fn scanpay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scanpay"));
    c.env_remove("SCANPAY_LOG")
        .env_remove("SCANPAY_FAILPOINT")
        .env_remove("NOTIFY_SOCKET");
    c
}

/// Collects a child's output lines on a thread, so its pipe never fills or closes early.
pub fn drain(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => return,
            }
        }
    });
    lines
}

pub struct SandboxProc {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl SandboxProc {
    pub fn start(dir: &Path, port: u16) -> SandboxProc {
        SandboxProc::start_on(dir, &format!("127.0.0.1:{port}"))
    }

    /// `scanpay sandbox --listen LISTEN`, the port read from the address it prints for clients.
    pub fn start_on(dir: &Path, listen: &str) -> SandboxProc {
        SandboxProc::start_with(dir, listen, &[])
    }

    /// [`SandboxProc::start_on`] with more flags (`--cert-mode`).
    pub fn start_with(dir: &Path, listen: &str, flags: &[&str]) -> SandboxProc {
        let mut child = scanpay()
            .args(["sandbox", "--listen", listen, "--dir"])
            .arg(dir)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        // "… gateway at http://HOST:PORT/gateway.do"
        let port = first
            .strip_suffix("/gateway.do")
            .and_then(|url| url.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        // Its configs are written by the time it prints the ledger address.
        for line in lines.by_ref() {
            if line.unwrap().trim().starts_with("ledger:") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        SandboxProc {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client config with short in-doubt windows, beside the sandbox's keys.
    pub fn config(&self) -> PathBuf {
        self.config_from("scanpay.toml")
    }

    /// The same, from one of the configs the sandbox wrote (`scanpay-ams.toml`).
    pub fn config_from(&self, written: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.dir.join(written))
            .unwrap()
            .replace("timeout_ms = 5000", "timeout_ms = 2000")
            .replace("sale_deadline_s = 20", "sale_deadline_s = 6")
            .replace("inquiry_interval_ms = 1000", "inquiry_interval_ms = 500");
        let path = self.dir.join(format!("daemon-{written}"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `POST path` to the sandbox (its admin calls); the status code and the body.
    pub fn post(&self, path: &str) -> (u16, String) {
        post_to(self.port, path)
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal.sqlite")
    }

    /// The ledger as `(request id, net minor units taken from the customer)`.
    pub fn ledger(&self) -> Vec<(String, i64)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .write_all(b"GET /_sandbox/ledger HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        let entries: Vec<Value> = serde_json::from_str(body).unwrap();
        entries
            .iter()
            .map(|e| {
                let net =
                    e["charged_minor"].as_i64().unwrap() - e["refunded_minor"].as_i64().unwrap();
                (e["request_id"].as_str().unwrap().to_string(), net)
            })
            .collect()
    }
}

/// `POST path` to a server on loopback `port`; the status code and the body.
pub fn post_to(port: u16, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "POST {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, body.to_string())
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Daemon {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(config: &Path, failpoint: Option<&str>) -> Daemon {
        let mut cmd = scanpay();
        cmd.args(["run", "--stdin", "--config"]).arg(config);
        if let Some(f) = failpoint {
            cmd.env("SCANPAY_FAILPOINT", f);
        }
        Daemon::spawn(cmd)
    }

    /// `scanpay run --stdin` with its soft limit on open files set to `soft`, as systemd's
    /// `LimitNOFILE=` would: util-linux `prlimit` sets it and then runs the daemon in its
    /// place (same pid). Without this the daemon inherits the test process's limit.
    pub fn start_with_nofile(config: &Path, soft: u64) -> Daemon {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={soft}:"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_scanpay"))
            .args(["run", "--stdin", "--config"])
            .arg(config)
            .env_remove("SCANPAY_LOG")
            .env_remove("SCANPAY_FAILPOINT")
            .env_remove("NOTIFY_SOCKET");
        Daemon::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .env("SCANPAY_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Daemon {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    pub fn feed(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(&mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.wait(Duration::from_secs(15))
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "daemon did not exit; stderr:\n{}",
                self.stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the journal (read-only, as the daemon runs) until `done` holds.
pub fn wait_for(journal: &Path, limit: Duration, what: &str, done: impl Fn(&Journal) -> bool) {
    let end = Instant::now() + limit;
    loop {
        if let Ok(j) = Journal::open_read_only(journal)
            && done(&j)
        {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every attempt and refund final; for each request id the sandbox saw, the money it kept
/// equals what the journal says (the amount less succeeded refunds iff paid, else nothing);
/// one paid attempt at most per sale; the file sound. Returns the sales' final states.
pub fn assert_journal_and_ledger_agree(journal: &Path, ledger: &[(String, i64)]) -> Vec<SaleState> {
    let j = Journal::open_read_only(journal).unwrap();
    j.integrity_check().unwrap();
    assert!(j.open_attempts().unwrap().is_empty(), "attempts still open");
    assert!(j.open_refunds().unwrap().is_empty(), "refunds still open");
    let mut states = Vec::new();
    for sale in j.sales(&Default::default()).unwrap() {
        let attempts = j.attempts(&sale.id).unwrap();
        let refunded: i64 = j
            .refunds(&sale.id)
            .unwrap()
            .iter()
            .filter(|r| r.state == RefundState::Succeeded)
            .map(|r| r.amount.minor())
            .sum();
        let paid: Vec<_> = attempts
            .iter()
            .filter(|a| a.state == AttemptState::Succeeded)
            .collect();
        assert!(paid.len() <= 1, "sale {} paid twice", sale.id);
        assert_eq!(
            sale.state == SaleState::Paid,
            paid.len() == 1,
            "sale {} is {} with {} paid attempts",
            sale.id,
            sale.state,
            paid.len()
        );
        for a in &attempts {
            let net = ledger
                .iter()
                .find(|(id, _)| *id == a.request_id)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let expected = if a.state == AttemptState::Succeeded {
                a.amount.minor() - refunded
            } else {
                0
            };
            assert_eq!(
                net, expected,
                "attempt {} is {} but the ledger says {net}",
                a.request_id, a.state
            );
        }
        states.push(sale.state);
    }
    for (request_id, net) in ledger {
        if *net != 0 {
            assert!(
                j.attempt_by_request_id(request_id).unwrap().is_some(),
                "money taken under {request_id}, unknown to the journal"
            );
        }
    }
    states
}

/// Damages a journal copy the way reconciliation must catch: the paid attempt `request_id`
/// and its sale lose their state (they read `failed`), while the provider kept the money.
pub fn forget_payment(journal: &Path, request_id: &str) {
    let db = rusqlite::Connection::open(journal).unwrap();
    db.execute(
        "UPDATE attempts SET state = 'failed' WHERE request_id = ?1",
        [request_id],
    )
    .unwrap();
    db.execute(
        "UPDATE sales SET state = 'failed' WHERE id = (SELECT sale_id FROM attempts WHERE request_id = ?1)",
        [request_id],
    )
    .unwrap();
}
