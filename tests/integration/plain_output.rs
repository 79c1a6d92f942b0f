//! What people and the register read carries no Rust debug text: `/v1/health`, `status`,
//! and every command's error paths, with devices missing and bad arguments of every kind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::call;
use crate::common::procs::Daemon;

/// Shapes `{:?}` gives and no sentence does.
const DEBUG_TEXT: &[&str] = &[
    "Ok(", "Err(", "Some(", "None", "(\"", "(Other)", "Os {", "kind: ", "{ code:", "Error {",
    "Custom {", "\\\"", "[\"",
];

fn debug_text_in(what: &str, text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let p = DEBUG_TEXT.iter().find(|p| line.contains(*p))?;
            Some(format!("{what}: {p:?} in {line}"))
        })
        .collect()
}

fn scanpay(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(args)
        .current_dir(dir)
        .env_remove("SCANPAY_LOG")
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn health_status_and_every_error_path_read_as_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("scanpay.toml");
    // A printer that refuses connections and a scanner that is not plugged in.
    std::fs::write(
        &config,
        "[terminal]\nid = \"T0001\"\ncurrency = \"CNY\"\nmax_amount = \"5000.00\"\n\n\
         [gateway]\nkind = \"sandbox\"\n\n[journal]\npath = \"journal.sqlite\"\n\n\
         [api]\nsocket = \"api.sock\"\n\n\
         [printer]\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\n\n\
         [[scanner]]\nname = \"front\"\nkind = \"serial\"\npath = \"/dev/scanpay-none\"\nbaud = 9600\n",
    )
    .unwrap();
    let mut found = Vec::new();
    let mut daemon = Daemon::start(&config, None);
    let socket = d.join("api.sock");
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(Instant::now() < end, "no API: {}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A sale whose scan is refused, one paid and printed (to a printer that is not there).
    daemon.feed("1.00\n134567890123456789\n");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, sales) = call(&socket, "GET", "/v1/sales", &[], "").await;
    let waiting = &sales["sales"][0];
    assert_eq!(waiting["state"], "awaiting_scan", "{sales}");
    assert!(
        waiting["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("not charged: ") && m.contains("WeChat")),
        "the refused scan is on the sale for the register: {waiting}"
    );
    daemon.feed("286000000000000000\n");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A test print to a printer that refuses the connection: 502, and says why.
    let (status, printed) = call(&socket, "POST", "/v1/printer/test", &[], "").await;
    assert_eq!(status, 502, "{printed}");
    assert!(
        printed["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("not printed: ") && r.contains("127.0.0.1:9")),
        "{printed}"
    );
    found.extend(debug_text_in("/v1/printer/test", &printed.to_string()));
    let (_, health) = call(&socket, "GET", "/v1/health", &[], "").await;
    found.extend(debug_text_in("/v1/health", &health.to_string()));
    let (_, sales) = call(&socket, "GET", "/v1/sales", &[], "").await;
    for sale in sales["sales"].as_array().into_iter().flatten() {
        assert!(
            sale["message"].is_string(),
            "every sale has a message for the cashier: {sale}"
        );
    }
    found.extend(debug_text_in("/v1/sales", &sales.to_string()));
    let c = config.to_str().unwrap();
    found.extend(debug_text_in(
        "status --json",
        &scanpay(&["status", "--json", "--config", c], d),
    ));
    found.extend(debug_text_in(
        "status",
        &scanpay(&["status", "--config", c], d),
    ));
    daemon.terminate();
    found.extend(debug_text_in("the daemon's log", &daemon.stderr()));

    let broken = d.join("broken.toml");
    std::fs::write(&broken, "[terminal\nid = 1").unwrap();
    let b = broken.to_str().unwrap();
    let missing = d.join("nowhere/scanpay.toml");
    let m = missing.to_str().unwrap();
    let not_a_journal = d.join("not-a-journal.sqlite");
    std::fs::write(&not_a_journal, b"not sqlite at all, just words").unwrap();
    let n = not_a_journal.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "charge",
            "--config",
            m,
            "--amount",
            "1.00",
            "--code",
            "286000000000000000",
        ],
        vec![
            "charge",
            "--config",
            b,
            "--amount",
            "1.00",
            "--code",
            "286000000000000000",
        ],
        vec![
            "charge",
            "--config",
            c,
            "--amount",
            "-5",
            "--code",
            "286000000000000000",
        ],
        vec![
            "charge", "--config", c, "--amount", "1.00", "--code", "hello",
        ],
        vec![
            "charge",
            "--config",
            c,
            "--amount",
            "1.00",
            "--code",
            "134567890123456789",
        ],
        vec![
            "refund",
            "--config",
            c,
            "S20260101-0000000000",
            "--amount",
            "1.00",
        ],
        vec![
            "refund",
            "--config",
            c,
            "S20260101-0000000000",
            "--amount",
            "x",
        ],
        vec!["reprint", "--config", c, "S20260101-0000000000"],
        vec!["report", "--config", c, "--date", "yesterday"],
        vec!["report", "--journal", n],
        vec!["report", "--config", m],
        vec!["status", "--journal", n],
        vec!["status", "--config", b],
        vec!["journal", "list", "--config", c, "--state", "lost"],
        vec!["journal", "list", "--journal", n],
        vec!["journal", "show", "--config", c, "S1"],
        vec!["journal", "export", "--config", c, "--since", "monday"],
        vec!["journal", "verify", "--journal", n],
        vec![
            "journal",
            "backup",
            "--config",
            c,
            "/nonexistent/dir/backup.sqlite",
        ],
        vec!["journal", "restore", "--config", c, n],
        vec!["check-config", m],
        vec!["check-config", b],
        vec!["check-config", c],
        vec!["reconcile", "--config", c, "--date", "2026-13-01"],
        vec!["reconcile", "--config", c],
        vec!["run", "--config", b],
        vec!["devices"],
    ];
    for args in &cases {
        found.extend(debug_text_in(&args.join(" "), &scanpay(args, d)));
    }
    assert!(
        found.is_empty(),
        "debug text reaches people:\n{}",
        found.join("\n")
    );
}
