//! What a chain's monitoring reads: every metric the shipped Prometheus rules and Grafana
//! dashboard name is served by a running daemon's `/metrics`, and the rules pass promtool.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::procs::{Daemon, SandboxProc, scanpay};

/// The `scanpay_…` names in `text` (PromQL in rules or panels).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("scanpay_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // A panel title or an alert name is not a metric.
        let before = rest[..at].chars().last();
        if before.is_none_or(|c| !c.is_ascii_alphanumeric()) {
            names.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    names
}

/// The metric names `/metrics` serves (histogram and counter series by their own names).
fn served(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

async fn get_metrics(socket: &Path) -> String {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: scanpay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_name_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // Certificate mode: the certificates' ends are served too.
    let sandbox = SandboxProc::start_with(&dir.path().join("sbx"), "127.0.0.1:0", &["--cert-mode"]);
    let config = sandbox.config_from("scanpay-cert.toml");
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[api]\nsocket = \"api.sock\"\n\n[printer]\nkind = \"file\"\npath = \"slips.bin\"\n\n\
           [[scanner]]\nname = \"front\"\nkind = \"serial\"\npath = \"/dev/scanpay-none\"\nbaud = 9600\n\n\
           [reconcile]\ndaily_at = \"00:00\"\n";
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, None);
    let socket = sandbox.dir.join("api.sock");
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.feed("1.00\n286000000000000000\n");
    // The sale is paid (the gateway's clock is then known) and the day reconciled.
    let end = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = get_metrics(&socket).await;
        if m.contains("scanpay_reconcile_differences")
            && m.contains("scanpay_sales{state=\"paid\"} 1")
        {
            break m;
        }
        assert!(Instant::now() < end, "{m}\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.terminate();
    let served = served(&metrics);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(repo.join("deploy/prometheus/scanpay.rules.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("deploy/grafana/scanpay-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push_str(target["expr"].as_str().expect("an expr"));
            exprs.push('\n');
        }
    }
    let rule_exprs: String = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect::<Vec<_>>()
        .join("\n");
    let named = metric_names(&rule_exprs);
    assert!(named.len() >= 10, "{named:?}");
    let named: BTreeSet<String> = named.into_iter().chain(metric_names(&exprs)).collect();
    let missing: Vec<&String> = named.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named but not served: {missing:?}\n{metrics}"
    );
    assert!(
        metrics.contains("scanpay_build_info{version=\""),
        "{metrics}"
    );

    // promtool's own checks, where it is installed (.ci/run installs it).
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("promtool not installed (apt-get install prometheus): rules not checked by it");
        return;
    }
    let rules_dir = repo.join("deploy/prometheus");
    for args in [
        ["check", "rules", "scanpay.rules.yml"],
        ["test", "rules", "scanpay.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&rules_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "promtool {args:?}: {out:?}");
    }
}

/// One journald native-protocol datagram: `KEY=value` lines, or `KEY\n<u64 LE length><bytes>\n`.
fn journal_fields(datagram: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut fields = std::collections::BTreeMap::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &rest[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).to_string(),
                String::from_utf8_lossy(&line[eq + 1..]).to_string(),
            );
            rest = &rest[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).to_string();
            let len = u64::from_le_bytes(rest[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = &rest[nl + 9..nl + 9 + len];
            fields.insert(key, String::from_utf8_lossy(value).to_string());
            rest = &rest[nl + 9 + len + 1..];
        }
    }
    fields
}

/// Under systemd (JOURNAL_STREAM set) the log goes to journald's socket, each field its own
/// journal field for a log shipper to index: REQUEST_ID, SALE_ID, ATTEMPT_STATE; no full
/// payment code in any of them. Played with a socket of our own at journald's address, where
/// no journald runs (the test steps aside where one does).
#[test]
fn under_systemd_logs_reach_journald_with_their_fields() {
    let socket = std::path::Path::new("/run/systemd/journal/socket");
    if socket.exists() {
        eprintln!("a journald runs here: its socket is left alone, the journald fields not tested");
        return;
    }
    let dir = std::path::Path::new("/run/systemd/journal");
    let made_dirs = !dir.exists();
    if std::fs::create_dir_all(dir).is_err() {
        eprintln!("cannot make /run/systemd/journal (not root?): the journald fields not tested");
        return;
    }
    let listener = std::os::unix::net::UnixDatagram::bind(socket).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&sandbox_dir.path().join("sbx"), 0);
    let code = "286000000000006600";
    // JOURNAL_STREAM names the stream stderr is (device:inode), as systemd sets it.
    let stderr_path = sandbox_dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let (dev, ino) = (
        std::os::unix::fs::MetadataExt::dev(&meta),
        std::os::unix::fs::MetadataExt::ino(&meta),
    );
    let run = |stream: &str, err: std::fs::File, code: &str| {
        scanpay()
            .args(["charge", "--amount", "6.60", "--code", code, "--config"])
            .arg(sandbox.config())
            .env("JOURNAL_STREAM", stream)
            .env("SCANPAY_LOG", "info")
            .stderr(err)
            .output()
            .unwrap()
    };
    let out = run(&format!("{dev}:{ino}"), stderr, code);
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = listener.recv(&mut buf) {
        datagrams.push(journal_fields(&buf[..n]));
    }
    // An inherited JOURNAL_STREAM that is not this stderr: logs stay on stderr.
    let other_path = sandbox_dir.path().join("stderr-inherited");
    let inherited = run(
        "8:1234",
        std::fs::File::create(&other_path).unwrap(),
        "286000000000006700",
    );
    let mut stray = 0;
    while listener.recv(&mut buf).is_ok() {
        stray += 1;
    }
    let _ = std::fs::remove_file(socket);
    if made_dirs {
        let _ = std::fs::remove_dir("/run/systemd/journal");
        let _ = std::fs::remove_dir("/run/systemd");
    }
    assert!(
        out.status.success(),
        "{:?}",
        std::fs::read_to_string(&stderr_path)
    );
    assert!(inherited.status.success());
    assert_eq!(
        stray, 0,
        "an inherited JOURNAL_STREAM sent logs to journald"
    );
    assert!(
        std::fs::read_to_string(&other_path)
            .unwrap()
            .contains("pay"),
        "the log stayed on stderr"
    );
    assert!(!datagrams.is_empty(), "nothing reached journald");
    let attempt = datagrams
        .iter()
        .find(|f| f.get("MESSAGE").map(String::as_str) == Some("attempt"))
        .unwrap_or_else(|| panic!("no attempt line: {datagrams:?}"));
    assert_eq!(attempt["ATTEMPT_STATE"], "succeeded", "{attempt:?}");
    assert!(attempt["REQUEST_ID"].starts_with("T"), "{attempt:?}");
    assert!(attempt["SALE_ID"].starts_with("S"), "{attempt:?}");
    assert_eq!(attempt["SYSLOG_IDENTIFIER"], "scanpay");
    assert_eq!(attempt["PRIORITY"], "5", "info is journald's notice");
    for f in &datagrams {
        for value in f.values() {
            assert!(
                !value.contains(code),
                "a full payment code reached the journal: {f:?}"
            );
        }
    }
    let written = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(written.is_empty(), "nothing on stderr besides: {written}");
}
