//! The store's books against `scanpay sandbox` over loopback: a 10.00 sale paid with the
//! sandbox's merchant-funded voucher of 2.00 (code ending `16`). The receipt printed to a
//! file shows the order, the voucher and the 8.00 received; `scanpay report` shows gross,
//! discount and net received; `scanpay reconcile` agrees with the sandbox's trade bill, and
//! reports a difference once the journal's received amount is altered in the SQLite file.

use crate::common;

use std::path::Path;
use std::process::Stdio;

use common::procs::{SandboxProc, scanpay};
use serde_json::Value;

fn run_json(config: &Path, args: &[&str]) -> (i32, Value) {
    let out = scanpay()
        .args(args)
        .arg("--config")
        .arg(config)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn beijing_today() -> String {
    chrono::Utc::now()
        .with_timezone(&scanpay::clock::beijing())
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn a_merchant_voucher_sale_is_printed_reported_and_reconciled_by_what_the_store_received() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProc::start(&dir.path().join("sbx"), 0);
    let receipt = sandbox.dir.join("receipt.bin");
    let config = sandbox.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[printer]\nkind = \"file\"\npath = \"{}\"\n",
        receipt.display()
    ));
    std::fs::write(&config, text).unwrap();

    let (code, sale) = run_json(
        &config,
        &[
            "charge",
            "--amount",
            "10.00",
            "--code",
            "286000000000000016",
        ],
    );
    assert_eq!((code, sale["state"].as_str()), (0, Some("paid")), "{sale}");
    let request_id = sale["attempts"][0]["request_id"].as_str().unwrap();
    let money = &sale["attempts"][0]["money"];
    assert_eq!(money["received"], "8.00", "{sale}");
    assert_eq!(money["merchant_discount"], "2.00", "{sale}");
    assert_eq!(money["vouchers"][0]["merchant_funded"], "2.00", "{sale}");

    // The receipt: the order, the voucher (the store funds it), paid and received.
    let bytes = std::fs::read(&receipt).unwrap();
    for needle in [
        "10.00 CNY",
        "(store)",
        "-2.00 CNY",
        "Customer paid",
        "Store received",
        "8.00 CNY",
    ] {
        assert!(
            contains(&bytes, needle),
            "{needle:?} not on the receipt: {}",
            String::from_utf8_lossy(&bytes)
        );
    }

    // The journal kept what the pay answer stated.
    let conn = rusqlite::Connection::open(sandbox.journal()).unwrap();
    let (source, received, merchant, vouchers): (String, i64, i64, String) = conn
        .query_row(
            "SELECT money_source, received_minor, merchant_discount_minor, vouchers
             FROM attempt_money JOIN attempts ON attempts.id = attempt_money.attempt_id
             WHERE attempts.request_id = ?1",
            [request_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((source.as_str(), received, merchant), ("pay", 800, 200));
    assert!(vouchers.contains("店铺满减券"), "{vouchers}");

    // The day report: gross 10.00, discount 2.00 (the merchant's), net received 8.00.
    let (code, report) = run_json(&config, &["report", "--format", "json"]);
    assert_eq!(code, 0, "{report}");
    let books = &report["books"][0];
    let got: Vec<&str> = [
        "gross",
        "discount",
        "merchant_discount",
        "platform_discount",
        "received",
        "net_received",
    ]
    .iter()
    .map(|k| books[*k].as_str().unwrap_or("?"))
    .collect();
    assert_eq!(
        got,
        ["10.00", "2.00", "2.00", "0.00", "8.00", "8.00"],
        "{report}"
    );
    let out = scanpay()
        .args(["report", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
    };
    assert_eq!(line("gross").as_deref(), Some("10.00"), "{text}");
    assert_eq!(line("discount").as_deref(), Some("-2.00"), "{text}");
    assert_eq!(line("net received").as_deref(), Some("8.00"), "{text}");

    // A payment the inquiry found paid (code 03: the customer confirms ~3 s later) keeps
    // what the query answer stated, asked for with query_options.
    let (code, confirmed) = run_json(
        &config,
        &["charge", "--amount", "5.00", "--code", "286000000000000103"],
    );
    assert_eq!(
        (code, confirmed["state"].as_str()),
        (0, Some("paid")),
        "{confirmed}"
    );
    let (source, received, funds): (String, i64, String) = conn
        .query_row(
            "SELECT money_source, received_minor, fund_bills
             FROM attempt_money JOIN attempts ON attempts.id = attempt_money.attempt_id
             WHERE attempts.request_id = ?1",
            [confirmed["attempts"][0]["request_id"].as_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((source.as_str(), received), ("inquiry", 500));
    assert!(funds.contains("ALIPAYACCOUNT"), "{funds}");

    // Reconciliation against the sandbox's trade bill agrees, received amounts included
    // (both sales).
    let date = beijing_today();
    let (code, r) = run_json(&config, &["reconcile", "--format", "json", "--date", &date]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["differences"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["totals"][0]["provider_paid"], 1500);
    assert_eq!(r["totals"][0]["provider_received"], 1300);
    assert_eq!(r["totals"][0]["journal_received"], 1300);

    // The journal's received amount altered in the file: reported, for that payment alone.
    conn.execute(
        "UPDATE attempt_money SET received_minor = 750 WHERE attempt_id =
             (SELECT id FROM attempts WHERE request_id = ?1)",
        [request_id],
    )
    .unwrap();
    drop(conn);
    let (code, r) = run_json(&config, &["reconcile", "--format", "json", "--date", &date]);
    assert_eq!(code, 1, "{r}");
    let differences = r["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{r}");
    assert_eq!(differences[0]["kind"], "received_mismatch");
    assert_eq!(differences[0]["request_id"], request_id);
    assert_eq!(
        (
            &differences[0]["provider_minor"],
            &differences[0]["journal_minor"]
        ),
        (&Value::from(800), &Value::from(750))
    );
}
