//! `scanpay bench`: figures for speed, each next to the baseline it is bounded by, measured
//! in the same run on the same disk: a raw `fsync` (the floor of write-before-send) and an
//! RSA-2048 signature. Prints a table and one final JSON line with every figure.
//!
//! - journal: commit latency of an attempt write and of a state change, vs fsync;
//! - scan to wire: from handing a scan to the engine to the first byte of the pay request at
//!   the gateway's socket (a timestamping proxy in front of the HTTP sandbox), vs
//!   fsync + signature;
//! - gateway path: sign and verify cost; sales per second, sequential and with 4 terminals;
//! - startup: open + recovery scan of a journal with many finished sales and some in doubt,
//!   next to one ten times smaller (it must not grow with finished sales);
//! - footprint: idle RSS and wake-ups of `scanpay run`, binary size.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::gateway::keys::PrivateKey;

mod charge;
mod customer_scan;
mod footprint;
use footprint::idle_daemon;
use gateway_path::gateway_path;
use journal::{journal_commits, startup};
use openssl::openssl_speed;
mod gateway_path;
mod journal;
mod openssl;

pub struct Plan {
    pub fsyncs: usize,
    pub commits: usize,
    pub signatures: usize,
    pub sales: usize,
    /// Finished sales in the big startup journal (the small one has a tenth).
    pub history: usize,
    pub in_doubt: usize,
    pub idle: Duration,
    /// QR sales paid by the sandbox's customer, with a notification receiver.
    pub qr_sales: usize,
    /// `scanpay charge` processes.
    pub charges: usize,
}

impl Plan {
    pub fn quick() -> Plan {
        Plan {
            fsyncs: 50,
            commits: 200,
            signatures: 50,
            sales: 100,
            history: 100_000,
            in_doubt: 100,
            qr_sales: 5,
            charges: 10,
            // Long enough to hold the idle daemon's timers (ten seconds apart) more than once.
            idle: Duration::from_secs(12),
        }
    }
    pub fn full() -> Plan {
        Plan {
            fsyncs: 500,
            commits: 2000,
            signatures: 500,
            sales: 500,
            history: 1_000_000,
            in_doubt: 1000,
            qr_sales: 20,
            charges: 30,
            idle: Duration::from_secs(30),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// `d` as a multiple of `floor`: "1.42x fsync".
fn times(d: Duration, floor: Duration, what: &str) -> String {
    format!(
        "{:.2}x {what}",
        d.as_secs_f64() / floor.as_secs_f64().max(1e-9)
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

struct Report {
    rows: Vec<(String, String, String)>,
    figures: Map<String, Value>,
}

impl Report {
    fn add(&mut self, what: &str, value: String, against: String) {
        crate::cli::out(&format!("{what:<36} {value:>14}   {against}"));
        self.rows.push((what.to_string(), value, against));
    }
    fn figure(&mut self, key: &str, v: f64) {
        self.figures
            .insert(key.to_string(), json!((v * 1000.0).round() / 1000.0));
    }
}

/// Runs the benchmarks with working files under `dir` (its disk is the one measured).
pub async fn run(plan: Plan, dir: &Path) -> Result<Value, String> {
    let work = tempfile::Builder::new()
        .prefix("scanpay-bench-")
        .tempdir_in(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let work = work.path();
    let mut r = Report {
        rows: Vec::new(),
        figures: Map::new(),
    };
    crate::cli::out(&format!(
        "{:<36} {:>14}   baseline / note",
        "measure", "value"
    ));

    // Baseline 1: a raw fsync of a small write on this disk.
    let mut fsyncs = Vec::with_capacity(plan.fsyncs);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(work.join("fsync.bin")).map_err(|e| e.to_string())?;
        for _ in 0..plan.fsyncs {
            let t = Instant::now();
            f.write_all(&[0u8; 4096]).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
            fsyncs.push(t.elapsed());
        }
    }
    let fsync = percentile(&mut fsyncs, 0.5);
    r.add(
        "fsync (4 KiB write), p50",
        format!("{:.3} ms", ms(fsync)),
        "the floor of every durable write".into(),
    );
    r.figure("fsync_ms", ms(fsync));

    // Baseline 2: RSA-2048 sign and verify.
    let key = PrivateKey::generate(2048, "bench").map_err(|e| e.to_string())?;
    let public = key.public_key();
    let message =
        b"app_id=2021000000000001&biz_content={...}&method=alipay.trade.pay&sign_type=RSA2";
    let mut signs = Vec::new();
    let mut verifies = Vec::new();
    for _ in 0..plan.signatures {
        let t = Instant::now();
        let sig = key.sign_sha256_base64(message);
        signs.push(t.elapsed());
        let t = Instant::now();
        let ok = public.verify_sha256_base64(message, &sig);
        verifies.push(t.elapsed());
        if !ok {
            return Err("signature did not verify".into());
        }
    }
    let sign = percentile(&mut signs, 0.5);
    let verify = percentile(&mut verifies, 0.5);
    let openssl = openssl_speed();
    let against = |ours: Duration, theirs: Option<f64>| match theirs {
        Some(theirs) if theirs > 0.0 => {
            format!("openssl {theirs:.3} ms; {:.2}x", ms(ours) / theirs)
        }
        _ => "openssl speed not available".to_string(),
    };
    r.add(
        "RSA-2048 sign, p50",
        format!("{:.3} ms", ms(sign)),
        against(sign, openssl.map(|o| o.sign_ms)),
    );
    r.add(
        "RSA-2048 verify, p50",
        format!("{:.3} ms", ms(verify)),
        against(verify, openssl.map(|o| o.verify_ms)),
    );
    r.figure("sign_ms", ms(sign));
    r.figure("verify_ms", ms(verify));
    if let Some(o) = openssl {
        r.figure("openssl_sign_ms", o.sign_ms);
        r.figure("openssl_verify_ms", o.verify_ms);
    }

    // Journal commits.
    let (attempt_p50, attempt_p99, change_p50, per_s) = journal_commits(work, plan.commits)?;
    r.add(
        "journal: attempt write, p50",
        format!("{:.3} ms", ms(attempt_p50)),
        times(attempt_p50, fsync, "fsync"),
    );
    r.add(
        "journal: attempt write, p99",
        format!("{:.3} ms", ms(attempt_p99)),
        String::new(),
    );
    r.add(
        "journal: state change, p50",
        format!("{:.3} ms", ms(change_p50)),
        times(change_p50, fsync, "fsync"),
    );
    r.add(
        "journal: commits per second",
        format!("{per_s:.0}"),
        format!("raw fsyncs/s {:.0}", 1.0 / fsync.as_secs_f64().max(1e-9)),
    );
    r.figure("journal_commit_ms_p50", ms(attempt_p50));
    r.figure("journal_commit_ms_p99", ms(attempt_p99));
    r.figure("journal_commits_per_s", per_s);

    // Scan to wire and sales per second, through the real client and the HTTP sandbox.
    // On a runtime worker, as `scanpay run` runs the engine.
    let path = tokio::spawn(gateway_path(work.to_path_buf(), plan.sales))
        .await
        .map_err(|e| e.to_string())??;
    let (wire_p50, wire_p99) = (path.wire_p50, path.wire_p99);
    let (sequential, parallel) = (path.sales_per_s, path.sales_per_s_4_terminals);
    let floor = fsync + sign;
    r.add(
        "scan to wire, p50",
        format!("{:.3} ms", ms(wire_p50)),
        format!(
            "fsync + sign = {:.3} ms; overhead {:+.3} ms",
            ms(floor),
            ms(wire_p50) - ms(floor)
        ),
    );
    r.add(
        "scan to wire, p99",
        format!("{:.3} ms", ms(wire_p99)),
        format!(
            "overhead {:+.3} ms; register polled {} times, {} KB of events streamed",
            ms(wire_p99) - ms(floor),
            path.register_polls,
            path.register_event_bytes / 1000
        ),
    );
    r.add(
        "sales per second, 1 terminal",
        format!("{sequential:.1}"),
        "sandbox on loopback".into(),
    );
    r.add(
        "sales per second, 4 terminals",
        format!("{parallel:.1}"),
        "4 journals, one sandbox".into(),
    );
    let sales = path.pay_path.len().max(1) as f64;
    let per_sale = |total: u64| total as f64 / sales;
    let syncs = per_sale(path.pay_path.iter().map(|u| u.syncs).sum());
    let syncs_max = path.pay_path.iter().map(|u| u.syncs).max().unwrap_or(0);
    let bytes = per_sale(path.pay_path.iter().map(|u| u.bytes).sum());
    let bytes_max = path.pay_path.iter().map(|u| u.bytes).max().unwrap_or(0);
    r.add(
        "fsyncs per sale, scan to paid",
        format!("{syncs:.2}"),
        format!(
            "most {syncs_max}; whole sale {:.2} (arming, events, identity)",
            per_sale(path.all.syncs)
        ),
    );
    r.add(
        "bytes written per sale, scan to paid",
        format!("{:.0}", bytes),
        format!(
            "most {bytes_max}; whole sale {:.0}{}",
            per_sale(path.all.bytes),
            path.io_write_bytes
                .map(|b| format!("; /proc/self/io {:.0}", per_sale(b)))
                .unwrap_or_default()
        ),
    );
    r.figure("fsyncs_per_sale", syncs);
    r.figure("fsyncs_per_sale_max", syncs_max as f64);
    r.figure("fsyncs_per_sale_whole", per_sale(path.all.syncs));
    r.figure("bytes_written_per_sale", bytes);
    r.figure("bytes_written_per_sale_max", bytes_max as f64);
    r.figure("bytes_written_per_sale_whole", per_sale(path.all.bytes));
    if let Some(b) = path.io_write_bytes {
        r.figure("io_write_bytes_per_sale", per_sale(b));
    }
    r.figure("scan_to_wire_ms_p50", ms(wire_p50));
    r.figure("scan_to_wire_ms_p99", ms(wire_p99));
    r.figure("scan_to_wire_floor_ms", ms(floor));
    r.figure("register_polls", path.register_polls as f64);
    r.figure("sales_per_s", sequential);
    r.figure("sales_per_s_4_terminals", parallel);

    // The customer scans: confirmation to paid, with notifications and by inquiry alone.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let notified = median(customer_scan::confirm_to_paid(work, plan.qr_sales, true).await?);
    let inquired = median(customer_scan::confirm_to_paid(work, plan.qr_sales.min(3), false).await?);
    r.add(
        "QR confirmed to paid, notified, p50",
        format!("{notified:.1} ms"),
        "target 1000 ms: a notification has it inquired at once".into(),
    );
    r.add(
        "QR confirmed to paid, inquiries only, p50",
        format!("{inquired:.1} ms"),
        "bounded by the inquiry pace (Open Platform 3-6 s)".into(),
    );
    r.figure("qr_confirmed_to_paid_notified_ms", notified);
    r.figure("qr_confirmed_to_paid_inquiry_ms", inquired);

    // The whole process: `scanpay charge`, the gateway's service time taken off.
    let runs = charge::charges(work, plan.charges).await?;
    let millis = |d: Duration| d.as_secs_f64() * 1000.0;
    let wall = median(runs.iter().map(|r| millis(r.wall)).collect());
    let client = median(
        runs.iter()
            .map(|r| millis(r.wall.saturating_sub(r.gateway)))
            .collect(),
    );
    let cpu = median(runs.iter().map(|r| millis(r.cpu)).collect());
    let gateway = median(runs.iter().map(|r| millis(r.gateway)).collect());
    let peak = runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0;
    r.add(
        "scanpay charge, client side, p50",
        format!("{client:.1} ms"),
        format!(
            "wall {wall:.1} ms less the gateway's {gateway:.1} ms; {} processes",
            runs.len()
        ),
    );
    r.add(
        "scanpay charge, CPU, p50",
        format!("{cpu:.1} ms"),
        "user + system of the process".into(),
    );
    r.add(
        "scanpay charge, peak RSS",
        format!("{peak:.1} MB"),
        "the most any run took".into(),
    );
    r.figure("charge_wall_ms", wall);
    r.figure("charge_client_ms", client);
    r.figure("charge_gateway_ms", gateway);
    r.figure("charge_cpu_ms", cpu);
    r.figure("charge_peak_rss_mb", peak);

    // Startup against history.
    let (small, big) = startup(work, plan.history, plan.in_doubt)?;
    r.add(
        &format!(
            "startup, {} sales + {} in doubt",
            plan.history, plan.in_doubt
        ),
        format!("{:.3} ms", ms(big)),
        format!("{} sales: {:.3} ms", plan.history / 10, ms(small)),
    );
    r.figure("startup_ms", ms(big));
    r.figure("startup_ms_tenth_history", ms(small));

    // Footprint.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    let (rss, wakeups) = idle_daemon(work, plan.idle).await.unwrap_or((0.0, 0.0));
    r.add(
        "idle RSS of scanpay run",
        format!("{rss:.1} MB"),
        String::new(),
    );
    r.add(
        "idle wake-ups per second",
        format!("{wakeups:.1}"),
        "context switches of the idle daemon".into(),
    );
    r.add(
        "binary size",
        format!("{:.1} MB", binary as f64 / 1_048_576.0),
        String::new(),
    );
    r.figure("idle_rss_mb", rss);
    r.figure("idle_wakeups_per_s", wakeups);
    r.figure("binary_mb", binary as f64 / 1_048_576.0);
    Ok(Value::Object(r.figures))
}
