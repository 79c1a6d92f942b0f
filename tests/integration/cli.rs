//! The `scanpay` binary as a user and a register run it: demo piped from a file, charge
//! with a config file, check-config, journal commands. Real process, real journal file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn scanpay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scanpay"));
    c.env_remove("SCANPAY_LOG");
    c
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = scanpay()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scanpay");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A sandbox config with short in-doubt windows, its journal beside it.
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"
store_id = "S1"

[gateway]
kind = "sandbox"
timeout_ms = 2000

[journal]
path = "journal.sqlite"

[watchdog]
sale_deadline_s = 5
inquiry_interval_ms = 500
"#;
        std::fs::write(dir.path().join("scanpay.toml"), config).unwrap();
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("scanpay.toml")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.sqlite")
    }

    fn charge(&self, amount: &str, code: &str) -> Output {
        scanpay()
            .arg("charge")
            .arg("--config")
            .arg(self.config())
            .args(["--amount", amount, "--code", code, "--reference", "R-7"])
            .output()
            .unwrap()
    }
}

fn sales_in(journal: &Path) -> i64 {
    let conn = rusqlite::Connection::open(journal).unwrap();
    conn.query_row("SELECT count(*) FROM sales", [], |r| r.get(0))
        .unwrap()
}

/// The demo's members: `bind` draws the binding QR, `approve` plays the customer, a member
/// sale is auto-debited through AMS; a member never bound gets no sale; the Open Platform
/// and WeChat Pay lines still work beside them.
#[test]
fn demo_binds_a_member_and_charges_a_member_sale() {
    let out = run_with_stdin(
        &["demo"],
        b"member M2 3.00\napprove\nbind M1\napprove\nmember M1 12.50\n1.00\n134567890123450000\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["state"], "paid", "{lines:?}");
    assert_eq!(lines[0]["amount"], "12.50");
    assert_eq!(lines[0]["attempts"][0]["method"], "member");
    assert_eq!(lines[0]["attempts"][0]["gateway"], "alipay-ams");
    assert_eq!(lines[1]["state"], "paid", "{lines:?}");
    assert_eq!(lines[1]["attempts"][0]["gateway"], "wechat-pay");
    assert!(stderr.contains("member M2 not charged"), "{stderr}");
    assert!(stderr.contains("no binding waits"), "{stderr}");
    assert!(stderr.contains("to become a member"), "{stderr}");
    assert!(stderr.contains("\u{2588}"), "the QR drawn: {stderr}");
    assert!(
        stderr.contains("member M1 is bound to ALIPAY_CN"),
        "{stderr}"
    );
}

#[test]
fn demo_piped_from_a_file_prints_one_json_line_per_finished_sale() {
    let out = run_with_stdin(
        &["demo"],
        b"12.50\n286000000000000000\n1.00\n286000000000000001\n4006381333931\n3.00\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let states: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["paid", "failed", "cancelled"], "{lines:?}");
    assert_eq!(lines[0]["amount"], "12.50");
    assert_eq!(lines[0]["currency"], "CNY");
    assert_eq!(lines[0]["attempts"][0]["state"], "succeeded");
    assert_eq!(lines[0]["attempts"][0]["code"], "28************0000");
    assert!(
        lines[0]["attempts"][0]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("DEMO01_")
    );
    assert_eq!(
        lines[1]["attempts"][0]["result_code"],
        "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    );
    assert_eq!(
        lines[0]["attempts"][0]["gateway"], "alipay-openapi",
        "the demo runs the real client"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LED green: paid"), "{stderr}");
    assert!(stderr.contains("barcode 4006381333931"), "{stderr}");
    let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("286000000000000000"),
        "a full code was printed"
    );
}

#[test]
fn demo_survives_garbage_from_the_scanner() {
    let mut input = b"12.50\n".to_vec();
    input.extend_from_slice(&[0xff, 0xfe, 0x00, 0x1b, b'[', b'A', b'\n']);
    input.extend_from_slice(&vec![b'9'; 10_000]);
    input.extend_from_slice(b"\n286000000000000000\n");
    let out = run_with_stdin(&["demo"], &input);
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["state"], "paid");
}

/// The demo's temporary directory (journal, keys) as its narration names it.
fn demo_dir(stderr: &str) -> Option<PathBuf> {
    let journal = stderr.split("journal ").nth(1)?.split_whitespace().next()?;
    Some(Path::new(journal).parent()?.to_path_buf())
}

#[test]
fn demo_interrupted_or_ended_leaves_no_keys_behind_and_logs_to_the_file_it_names() {
    // Ended by its input, with a refused amount and a customer who keeps confirming.
    let tmp = tempfile::tempdir().unwrap();
    let mut c = scanpay();
    c.env("TMPDIR", tmp.path());
    let out = {
        let mut child = c
            .arg("demo")
            .env("SCANPAY_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"-5\n0.00\n1.00\n286000000000000003\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sale refused: the amount -5 is not above zero"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sale refused: the amount 0.00 is not above zero"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("customer confirming").count(),
        1,
        "one line for the customer confirming, not one per inquiry: {stderr}"
    );
    assert!(
        !stderr.contains(" INFO ") && !stderr.contains(" WARN "),
        "logs are not narration: {stderr}"
    );
    let log = tmp.path().join("scanpay-demo.log");
    assert!(stderr.contains(&log.display().to_string()), "{stderr}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("INFO"));
    assert_eq!(json_lines(&out)[0]["state"], "paid");
    let dir = demo_dir(&stderr).expect("the narration names the journal");
    assert!(!dir.exists(), "{} left behind", dir.display());

    // Interrupted while waiting for input, and terminated.
    for signal in ["-INT", "-TERM", "-HUP"] {
        let mut child = scanpay()
            .arg("demo")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = crate::common::procs::drain(child.stderr.take().unwrap());
        let started = std::time::Instant::now();
        let dir = loop {
            let text = stderr.lock().unwrap().join("\n");
            if let Some(dir) = demo_dir(&text).filter(|_| text.contains("the demo's log")) {
                break dir;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "the demo did not start: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(dir.exists());
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "{signal}: {status:?}");
        assert!(!dir.exists(), "{signal}: {} left behind", dir.display());
    }
}

#[test]
fn demo_keeps_its_journal_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("demo.sqlite");
    let out = run_with_stdin(
        &["demo", "--journal", journal.to_str().unwrap()],
        b"2.00\n286000000000000000\n",
    );
    assert!(out.status.success());
    assert_eq!(sales_in(&journal), 1);
}

#[test]
fn charge_reads_the_code_from_stdin_to_keep_it_out_of_the_process_list() {
    let s = Setup::new();
    let out = run_with_stdin(
        &[
            "charge",
            "--config",
            s.config().to_str().unwrap(),
            "--amount",
            "1.00",
            "--code",
            "-",
        ],
        b"286000000000000000\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["state"], "paid");
}

#[test]
fn charge_prints_the_sale_and_exits_by_outcome() {
    let s = Setup::new();
    let paid = s.charge("10.00", "286000000000000000");
    assert_eq!(
        paid.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&paid.stderr)
    );
    let sale = &json_lines(&paid)[0];
    assert_eq!(sale["state"], "paid");
    assert_eq!(sale["amount"], "10.00");
    assert_eq!(sale["reference"], "R-7");
    assert!(sale["sale_id"].as_str().unwrap().starts_with('S'));
    assert!(sale["reason"].is_null());
    for key in ["request_id", "state", "result_code"] {
        assert!(!sale["attempts"][0][key].is_null(), "{key}");
    }

    let failed = s.charge("10.00", "286000000000000102");
    assert_eq!(failed.status.code(), Some(1));
    let sale = &json_lines(&failed)[0];
    assert_eq!(sale["state"], "failed");
    assert!(
        sale["reason"]
            .as_str()
            .unwrap()
            .contains("PAYMENT_AUTH_CODE_INVALID")
    );

    // Never pays: inquired until the 5 s deadline, then cancelled.
    let cancelled = s.charge("10.00", "286000000000000104");
    assert_eq!(cancelled.status.code(), Some(1));
    let sale = &json_lines(&cancelled)[0];
    assert_eq!(sale["state"], "cancelled");
    assert_eq!(sale["attempts"][0]["state"], "cancelled");
    assert!(sale["attempts"][0]["inquiries"].as_u64().unwrap() >= 2);

    // Unknown, but the charge went through: found by inquiry.
    let unknown = s.charge("10.00", "286000000000000105");
    assert_eq!(unknown.status.code(), Some(0));
    assert_eq!(json_lines(&unknown)[0]["state"], "paid");
}

#[test]
fn charge_refuses_bad_input_with_exit_2_and_writes_nothing() {
    let s = Setup::new();
    let cases: &[(&str, &str, &str)] = &[
        ("10.005", "286000000000000000", "--amount"),
        ("-1", "286000000000000000", "--amount"),
        ("9000.00", "286000000000000000", "max_amount"),
        ("10.00", "4006381333931", "not a payment code"),
        ("10.00", "134567890123456789", "WeChat Pay"),
    ];
    for (amount, code, expected) in cases {
        let out = s.charge(amount, code);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{amount} {code}: {stderr}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(out.stdout.is_empty());
    }
    assert!(
        !s.journal().exists() || sales_in(&s.journal()) == 0,
        "nothing was written"
    );
}

#[test]
fn charge_with_a_broken_config_names_the_key() {
    let s = Setup::new();
    let text = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("\"CNY\"", "\"YUAN\"");
    std::fs::write(s.config(), text).unwrap();
    let out = s.charge("1.00", "286000000000000000");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[terminal] currency") && stderr.contains("scanpay.toml"),
        "{stderr}"
    );
    assert!(!s.journal().exists(), "nothing was created");
}

#[test]
fn check_config_accepts_the_examples_and_names_what_is_wrong() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["config/scanpay.example.toml", "config/demo.toml"] {
        let out = scanpay()
            .arg("check-config")
            .arg(root.join(file))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = Setup::new();
    std::fs::write(
        s.config(),
        "[terminal]\nid = \"T1\"\ncurrency = \"CNY\"\nmax_amount = \"1\"\nfoo = 1\n",
    )
    .unwrap();
    let out = scanpay()
        .arg("check-config")
        .arg(s.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("foo"));
    let out = scanpay()
        .arg("check-config")
        .arg(s.dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn journal_commands_read_what_charge_wrote() {
    let s = Setup::new();
    let out = s.charge("10.00", "286000000000000000");
    let sale_id = json_lines(&out)[0]["sale_id"].as_str().unwrap().to_string();
    s.charge("2.00", "286000000000000101");

    let config = s.config();
    let journal = |args: &[&str]| {
        let out = scanpay()
            .arg("journal")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = journal(&["list"]);
    assert!(
        list.contains(&sale_id) && list.contains("paid") && list.contains("failed"),
        "{list}"
    );
    let only_paid = journal(&["list", "--state", "paid"]);
    assert!(
        only_paid.contains(&sale_id) && !only_paid.contains("failed"),
        "{only_paid}"
    );

    let shown: Value = serde_json::from_str(&journal(&["show", &sale_id])).unwrap();
    assert_eq!(shown["state"], "paid");

    let csv = journal(&["export", "--format", "csv"]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("sale_id,created_at,sale_state,amount"));
    assert!(rows[1].contains(&sale_id) && rows[1].contains(",10.00,CNY,"));
    let exported: Value = serde_json::from_str(&journal(&["export", "--format", "json"])).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 2);

    let missing = scanpay()
        .args(["journal", "show", "S-nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(2),
        "an unknown sale is a usage error, as in refund and reprint"
    );
    for args in [
        vec!["refund", "S-nope", "--amount", "1.00"],
        vec!["reprint", "S-nope"],
    ] {
        let out = scanpay()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let listed: Value = serde_json::from_str(&journal(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[test]
fn no_full_payment_code_in_logs_or_in_the_journal_of_final_sales() {
    let s = Setup::new();
    let codes = [
        "286000000000000000",
        "286000000000000101",
        "286000000000000105",
        "286000000000000208",
    ];
    let mut logs = Vec::new();
    for code in codes {
        let out = scanpay()
            .env("SCANPAY_LOG", "trace")
            .arg("charge")
            .arg("--config")
            .arg(s.config())
            .args(["--amount", "1.00", "--code", code])
            .output()
            .unwrap();
        logs.extend(out.stdout);
        logs.extend(out.stderr);
    }
    let logs = String::from_utf8_lossy(&logs);
    assert!(
        logs.contains("28************0000"),
        "logs mention the masked code"
    );
    // The journal file byte for byte, once the WAL is checkpointed into it (the WAL holds
    // page images until then; codes are valid for about a minute, the file for years).
    let conn = rusqlite::Connection::open(s.journal()).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let stored = std::fs::read(s.journal()).unwrap();
    for code in codes {
        assert!(!logs.contains(code), "{code} in logs");
        let found = stored.windows(code.len()).any(|w| w == code.as_bytes());
        assert!(!found, "{code} left in the journal file");
    }
}

/// Output that cannot be written (a full disk under `journal list > file`) ends the command
/// with exit 1 and says so, instead of leaving a cut-short file behind an exit 0.
#[test]
fn output_that_cannot_be_written_is_an_error_not_a_silent_success() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite");
    let init = scanpay()
        .args(["journal", "init", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = scanpay()
        .args(["journal", "list", "--journal"])
        .arg(&journal)
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write the output"), "{stderr}");
}

#[test]
fn an_invalid_log_level_is_an_error_that_names_the_levels() {
    let out = scanpay()
        .args(["devices"])
        .env("SCANPAY_LOG", "verbose")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SCANPAY_LOG=\"verbose\"")
            && stderr.contains("off, error, warn, info, debug, trace"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
    let ok = scanpay()
        .args(["devices"])
        .env("SCANPAY_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn output_into_a_pipe_the_reader_closed_ends_quietly() {
    let s = Setup::new();
    s.charge("1.00", "286000000000000000");
    s.charge("1.00", "286000000000000101");
    let config = s.config();
    // `scanpay … | head -1` with the reader already gone: every write meets a closed pipe.
    for args in [
        vec!["journal", "list"],
        vec!["journal", "export"],
        vec!["journal", "export", "--format", "json"],
        vec!["report"],
        vec!["status"],
    ] {
        let mut child = scanpay()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} journal list --config {} | head -1",
            env!("CARGO_BIN_EXE_scanpay"),
            config.display()
        ))
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(String::from_utf8_lossy(&piped.stdout).starts_with("sale "));
}
