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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{Engine, EngineSettings, SaleRequest, ScanOutcome};
use crate::events::LogObserver;
use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use crate::gateway::keys::PrivateKey;
use crate::journal::Journal;
use crate::money::{Amount, Currency};
use crate::sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID};

pub struct Plan {
    pub fsyncs: usize,
    pub commits: usize,
    pub signatures: usize,
    pub sales: usize,
    /// Finished sales in the big startup journal (the small one has a tenth).
    pub history: usize,
    pub in_doubt: usize,
    pub idle: Duration,
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
            idle: Duration::from_secs(2),
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
            idle: Duration::from_secs(5),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
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
        format!(
            "{:.2}x fsync",
            attempt_p50.as_secs_f64() / fsync.as_secs_f64().max(1e-9)
        ),
    );
    r.add(
        "journal: attempt write, p99",
        format!("{:.3} ms", ms(attempt_p99)),
        String::new(),
    );
    r.add(
        "journal: state change, p50",
        format!("{:.3} ms", ms(change_p50)),
        format!(
            "{:.2}x fsync",
            change_p50.as_secs_f64() / fsync.as_secs_f64().max(1e-9)
        ),
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
    let (wire_p50, wire_p99, sequential, parallel) = gateway_path(work, plan.sales).await?;
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
        String::new(),
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
    r.figure("scan_to_wire_ms_p50", ms(wire_p50));
    r.figure("scan_to_wire_ms_p99", ms(wire_p99));
    r.figure("scan_to_wire_floor_ms", ms(floor));
    r.figure("sales_per_s", sequential);
    r.figure("sales_per_s_4_terminals", parallel);

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

/// OpenSSL's RSA-2048 figures on this machine, the baseline of our signer.
#[derive(Clone, Copy, Debug, PartialEq)]
struct OpensslSpeed {
    sign_ms: f64,
    verify_ms: f64,
}

fn openssl_speed() -> Option<OpensslSpeed> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048"])
        .output()
        .ok()?;
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the sign and verify times of `openssl speed rsa2048`:
///
/// ```text
///                   sign    verify    sign/s verify/s
/// rsa 2048 bits 0.000272s 0.000020s   3681.0  50899.0
/// ```
///
/// Columns are found by the header line, since OpenSSL 3.2 and later add encrypt and decrypt
/// columns (and a KEM table whose row reads `rsa2048`); without a header, the first two times
/// are sign and verify.
fn parse_openssl_speed(text: &str) -> Option<OpensslSpeed> {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = lines
        .iter()
        .position(|t| t.first() == Some(&"rsa") && t.get(1) == Some(&"2048"))?;
    let header = lines[..row]
        .iter()
        .rev()
        .find(|t| t.contains(&"sign") && t.contains(&"verify"));
    let column = |name: &str, otherwise: usize| {
        header
            .and_then(|h| h.iter().position(|c| *c == name))
            .unwrap_or(otherwise)
    };
    // The row starts with three words of name: `rsa 2048 bits`.
    let seconds = |i: usize| -> Option<f64> {
        let cell = lines[row].get(3 + i)?.strip_suffix('s')?;
        cell.parse().ok()
    };
    Some(OpensslSpeed {
        sign_ms: seconds(column("sign", 0))? * 1000.0,
        verify_ms: seconds(column("verify", 1))? * 1000.0,
    })
}

fn journal_commits(work: &Path, n: usize) -> Result<(Duration, Duration, Duration, f64), String> {
    use crate::journal::{Change, NewAttempt, NewSale};
    use crate::paycode::{Scan, recognise};
    use crate::state::{AttemptState, Cause};
    let journal = Journal::open(&work.join("commits.sqlite")).map_err(|e| e.to_string())?;
    let cny = Currency::from_code("CNY").map_err(|e| e.to_string())?;
    let (mut attempts, mut changes) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let started = Instant::now();
    for i in 0..n {
        let now = chrono::Utc::now();
        let id = format!("S{i}");
        let new = NewSale {
            id: id.clone(),
            amount: Amount::from_minor(100, cny),
            reference: None,
            subject: "bench".into(),
            idempotency_key: None,
            max_attempts: 1,
            supersede: false,
        };
        journal.create_sale(&new, now).map_err(|e| e.to_string())?;
        let Scan::Payment(code) = recognise(&format!("28{:016}", i)) else {
            return Err("code".into());
        };
        let t = Instant::now();
        let a = journal
            .begin_attempt(
                &id,
                &NewAttempt {
                    request_id: format!("B{i}"),
                    gateway: "sandbox",
                    code: &code,
                    deadline_at: now,
                },
                now,
            )
            .map_err(|e| e.to_string())?;
        attempts.push(t.elapsed());
        let t = Instant::now();
        journal
            .transition(
                a.id,
                AttemptState::Succeeded,
                Cause::PayAnswer,
                &Change::default(),
                now,
            )
            .map_err(|e| e.to_string())?;
        changes.push(t.elapsed());
    }
    let per_s = (3 * n) as f64 / started.elapsed().as_secs_f64();
    let p50 = percentile(&mut attempts, 0.5);
    let p99 = percentile(&mut attempts, 0.99);
    Ok((p50, p99, percentile(&mut changes, 0.5), per_s))
}

/// A TCP proxy that remembers when the first byte of a request passes.
async fn timestamping_proxy(
    upstream: std::net::SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
) -> Result<std::net::SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if buf[..n].starts_with(b"POST ") {
                            arrivals
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(Instant::now());
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    Ok(addr)
}

async fn gateway_path(work: &Path, n: usize) -> Result<(Duration, Duration, f64, f64), String> {
    let sandbox = crate::cli::sandbox::start(
        ([127, 0, 0, 1], 0).into(),
        &work.join("sandbox"),
        DEFAULT_APP_ID,
        DEFAULT_CLIENT_ID,
        None,
    )
    .await?;
    let upstream: std::net::SocketAddr = sandbox
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/gateway.do")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let proxy = timestamping_proxy(upstream, arrivals.clone()).await?;
    let app_key = PrivateKey::load(
        sandbox
            .keys
            .app_private_key_file
            .as_ref()
            .ok_or("no app key")?,
    )
    .map_err(|e| e.to_string())?;
    let config = Config::demo(Path::new("unused")).map_err(|e| e.to_string())?;
    let terminal = |i: usize| -> Result<Engine, String> {
        let settings = OpenApiSettings {
            url: url::Url::parse(&format!("http://{proxy}/gateway.do"))
                .map_err(|e| e.to_string())?,
            app_id: DEFAULT_APP_ID.into(),
            private_key: app_key.clone(),
            alipay_public_key: sandbox.keys.gateway_key.public_key(),
            app_auth_token: None,
            notify_url: None,
            seller_id: None,
            timeout: Duration::from_secs(5),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let gateway = Arc::new(OpenApi::new(settings, clock.clone())?);
        let journal = Arc::new(
            Journal::open(&work.join(format!("terminal{i}.sqlite"))).map_err(|e| e.to_string())?,
        );
        Ok(Engine::new(
            journal,
            gateway,
            clock,
            Arc::new(LogObserver),
            EngineSettings {
                terminal: config.terminal.clone(),
                timeout: Duration::from_secs(5),
                watchdog: config.watchdog.clone(),
                cancel_give_up_after: Some(Duration::from_secs(10)),
                resolve_inline: true,
            },
        ))
    };
    let cny = Currency::from_code("CNY").map_err(|e| e.to_string())?;
    let sale = |engine: &Engine| -> Result<(), String> {
        engine
            .arm(SaleRequest {
                amount: Amount::from_minor(100, cny),
                reference: None,
                subject: None,
                idempotency_key: None,
                max_attempts: 1,
                supersede: false,
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // One terminal: time each scan to its request's first byte at the gateway's socket.
    let engine = terminal(0)?;
    let mut wire = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        sale(&engine)?;
        let code = format!("2860{:012}00", i);
        let t = Instant::now();
        let outcome = engine.scan(&code).await;
        if !matches!(&outcome, ScanOutcome::Attempted { sale } if sale.state == crate::state::SaleState::Paid)
        {
            return Err(format!("sale {i} not paid: {outcome:?}"));
        }
        let arrived = arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .find(|a| *a >= t);
        if let Some(a) = arrived {
            wire.push(a - t);
        }
    }
    let sequential = n as f64 / started.elapsed().as_secs_f64();
    let p50 = percentile(&mut wire, 0.5);
    let p99 = percentile(&mut wire, 0.99);
    // Four terminals at once, one sandbox.
    let engines: Vec<Engine> = (1..=4).map(terminal).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let runs = engines.into_iter().enumerate().map(|(t, engine)| {
        async move {
            for i in 0..n / 2 {
                engine
                    .arm(SaleRequest {
                        amount: Amount::from_minor(100, cny),
                        reference: None,
                        subject: None,
                        idempotency_key: None,
                        max_attempts: 1,
                        supersede: false,
                    })
                    .map_err(|e| e.to_string())?;
                // Each terminal its own codes: the sandbox refuses a code used before.
                let code = format!("28{}{:013}00", 5 + t, i);
                engine.scan(&code).await;
            }
            Ok::<(), String>(())
        }
    });
    for r in futures_join(runs.collect()).await {
        r?;
    }
    let parallel = (4 * (n / 2)) as f64 / started.elapsed().as_secs_f64();
    arrivals.lock().unwrap_or_else(|e| e.into_inner()).clear();
    Ok((p50, p99, sequential, parallel))
}

/// Runs futures concurrently on the current task and collects their results in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Fills a journal with `history` finished sales and `in_doubt` open attempts, then times
/// open + the recovery queries; also for a tenth of the history.
fn startup(work: &Path, history: usize, in_doubt: usize) -> Result<(Duration, Duration), String> {
    let time = |sales: usize, name: &str| -> Result<Duration, String> {
        let path = work.join(name);
        fill(&path, sales, in_doubt)?;
        let t = Instant::now();
        let j = Journal::open(&path).map_err(|e| e.to_string())?;
        let open = j.open_attempts().map_err(|e| e.to_string())?;
        let _ = j.open_sales().map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if open.len() != in_doubt {
            return Err(format!(
                "expected {in_doubt} open attempts, found {}",
                open.len()
            ));
        }
        Ok(took)
    };
    Ok((
        time(history / 10, "history-small.sqlite")?,
        time(history, "history-big.sqlite")?,
    ))
}

fn fill(path: &PathBuf, sales: usize, in_doubt: usize) -> Result<(), String> {
    drop(Journal::open(path).map_err(|e| e.to_string())?);
    let mut conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(|e| e.to_string())?;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let now = crate::clock::to_journal(chrono::Utc::now());
        let mut sale = tx
            .prepare("INSERT INTO sales (id, created_at, updated_at, amount_minor, currency, subject, max_attempts, state) VALUES (?1, ?2, ?2, 100, 'CNY', 'x', 1, ?3)")
            .map_err(|e| e.to_string())?;
        let mut attempt = tx
            .prepare("INSERT INTO attempts (sale_id, seq, request_id, gateway, wallet, code_masked, code, code_hash, amount_minor, currency, state, created_at, updated_at, deadline_at) VALUES (?1, 1, ?1, 'sandbox', 'alipay', '28**', ?3, ?1, 100, 'CNY', ?2, ?4, ?4, ?4)")
            .map_err(|e| e.to_string())?;
        for i in 0..sales + in_doubt {
            let open = i >= sales;
            let id = format!("S{i:09}");
            sale.execute(rusqlite::params![
                id,
                now,
                if open { "processing" } else { "paid" }
            ])
            .map_err(|e| e.to_string())?;
            let code: Option<String> = open.then(|| format!("28{i:016}"));
            attempt
                .execute(rusqlite::params![
                    id,
                    if open { "unknown" } else { "succeeded" },
                    code,
                    now
                ])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Starts `scanpay run` (in-process sandbox, no devices) and reads its RSS and context
/// switches while idle.
async fn idle_daemon(work: &Path, idle: Duration) -> Option<(f64, f64)> {
    let dir = work.join("idle");
    std::fs::create_dir_all(&dir).ok()?;
    let config = dir.join("scanpay.toml");
    std::fs::write(&config, "[terminal]\nid = \"T1\"\ncurrency = \"CNY\"\nmax_amount = \"100.00\"\n[gateway]\nkind = \"sandbox\"\n[journal]\npath = \"journal.sqlite\"\n").ok()?;
    let mut child = std::process::Command::new(std::env::current_exe().ok()?)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let switches = || -> Option<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            for l in status.lines() {
                if l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
                {
                    total += l.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                }
            }
        }
        Some(total)
    };
    let before = switches()?;
    tokio::time::sleep(idle).await;
    let after = switches()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    Some((
        rss_kb / 1024.0,
        (after - before) as f64 / idle.as_secs_f64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn openssl_speed_output_is_read_by_its_header() {
        let three_0 = "options: bn(64,64)\n\
                       \x20                 sign    verify    sign/s verify/s\n\
                       rsa 2048 bits 0.000272s 0.000020s   3681.0  50899.0\n";
        let o = parse_openssl_speed(three_0).unwrap();
        assert!(
            close(o.sign_ms, 0.272) && close(o.verify_ms, 0.020),
            "{o:?}"
        );

        // OpenSSL 3.2 and later: encrypt and decrypt columns, then a KEM table.
        let three_5 = "                   sign    verify    encrypt   decrypt   sign/s verify/s  encr./s  decr./s\n\
                       rsa  2048 bits 0.000611s 0.000018s 0.000019s 0.000600s   1636.7  55245.0  52631.6   1666.7\n\
                       \x20                              keygen    encaps    decaps keygens/s  encaps/s  decaps/s\n\
                       \x20                   rsa2048 0.040000s 0.000020s 0.000600s      25.0   50000.0   1666.7\n";
        let o = parse_openssl_speed(three_5).unwrap();
        assert!(
            close(o.sign_ms, 0.611) && close(o.verify_ms, 0.018),
            "{o:?}"
        );

        let no_header = "rsa 2048 bits 0.000611s 0.000018s 1636.7 55245.0\n";
        let o = parse_openssl_speed(no_header).unwrap();
        assert!(
            close(o.sign_ms, 0.611) && close(o.verify_ms, 0.018),
            "{o:?}"
        );

        for broken in [
            "",
            "rsa 2048 bits\n",
            "rsa 2048 bits x y\n",
            "rsa 4096 bits 1s 1s\n",
        ] {
            assert_eq!(parse_openssl_speed(broken), None, "{broken}");
        }
    }
}
