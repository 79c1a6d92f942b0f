//! The gateway path: scan to wire through a timestamping proxy in front of the HTTP
//! sandbox, signing cost, and sales per second.

use super::percentile;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::EventBus;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{Engine, EngineSettings, SaleRequest, ScanOutcome};
use crate::events::{Fanout, LogObserver, Observer};
use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
use crate::gateway::keys::PrivateKey;
use crate::journal::{Checkpoint, DiskUse, Journal};
use crate::money::{Amount, Currency};
use crate::sandbox::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID};

/// When requests' and answers' first bytes passed the proxy.
pub(super) type Stamps = Arc<Mutex<Vec<Instant>>>;

/// A TCP proxy that remembers when the first byte of a request passes (`arrivals`) and, if
/// asked, when the first byte of each answer comes back (`answers`): the gateway's service
/// time lies between the two.
async fn timestamping_proxy(
    upstream: std::net::SocketAddr,
    arrivals: Stamps,
    answers: Option<Stamps>,
) -> Result<std::net::SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (arrivals, answers) = (arrivals.clone(), answers.clone());
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
                let down = async {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if let Some(answers) = &answers
                            && buf[..n].starts_with(b"HTTP/")
                        {
                            answers
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(Instant::now());
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    Ok(addr)
}

/// A register beside the till while the sales run, over the real API on loopback: one
/// polling `GET /v1/sales` every [`POLL_EVERY`] and one holding `GET /v1/events` open.
/// What they read shows they were there.
struct RegisterLoad {
    stop: tokio_util::sync::CancellationToken,
    polls: Arc<std::sync::atomic::AtomicU64>,
    event_bytes: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    clients: Option<std::thread::JoinHandle<()>>,
}

/// Faster than any register polls, so a poll often meets a scan.
const POLL_EVERY: Duration = Duration::from_millis(5);

impl RegisterLoad {
    async fn start(
        work: &Path,
        engine: Arc<Engine>,
        monitor: Arc<crate::gateway::monitor::Monitored<dyn crate::gateway::Gateway>>,
        bus: Arc<EventBus>,
        observer: Arc<dyn Observer>,
    ) -> Result<RegisterLoad, String> {
        let api = crate::api::ApiConfig {
            socket: work.join("api.sock"),
            socket_mode: 0o600,
            group: None,
            tcp: Some(([127, 0, 0, 1], 0).into()),
            token: None,
        };
        let listeners = crate::api::bind(&api).map_err(|e| e.to_string())?;
        let addr = listeners.tcp_addr().ok_or("the API's TCP address")?;
        let state = crate::api::ApiState {
            engine,
            monitor,
            bus,
            observer,
            scanners: Default::default(),
            printer: None,
            connections: Default::default(),
            operations: None,
            members: None,
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let event_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        let serve_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _ = crate::api::serve(&api, listeners, state, serve_stop).await;
        }));
        // The register is another process: its clients run on a thread of their own.
        let (client_stop, poll_count, sse_bytes) =
            (stop.clone(), polls.clone(), event_bytes.clone());
        let clients = std::thread::Builder::new()
            .name("bench-register".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(register_clients(addr, client_stop, poll_count, sse_bytes));
            })
            .map_err(|e| format!("the register's thread: {e}"))?;
        Ok(RegisterLoad {
            stop,
            polls,
            event_bytes,
            tasks,
            clients: Some(clients),
        })
    }

    /// Stops both clients and the API; returns the polls answered and the event bytes read.
    async fn stop(mut self) -> (u64, u64) {
        self.stop.cancel();
        if let Some(clients) = self.clients.take() {
            let _ = tokio::task::spawn_blocking(move || clients.join()).await;
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        (
            self.polls.load(std::sync::atomic::Ordering::Relaxed),
            self.event_bytes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// The register's two clients: a poll of the newest sales every [`POLL_EVERY`], and the
/// event stream held open, until `stop`.
async fn register_clients(
    addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    polls: Arc<std::sync::atomic::AtomicU64>,
    event_bytes: Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let client = reqwest::Client::new();
    let poll = async {
        let url = format!("http://{addr}/v1/sales?limit=50");
        while !stop.is_cancelled() {
            if let Ok(r) = client.get(&url).send().await
                && r.bytes().await.is_ok()
            {
                polls.fetch_add(1, Relaxed);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    };
    let stream = async {
        let Ok(mut r) = client.get(format!("http://{addr}/v1/events")).send().await else {
            return;
        };
        while let Ok(Some(c)) = r.chunk().await {
            event_bytes.fetch_add(c.len() as u64, Relaxed);
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = async { tokio::join!(poll, stream) } => {}
    }
}

/// What the gateway path measured.
pub(super) struct GatewayPath {
    pub wire_p50: Duration,
    pub wire_p99: Duration,
    /// The register's polls of `/v1/sales` answered, and event-stream bytes read, while the
    /// sales ran.
    pub register_polls: u64,
    pub register_event_bytes: u64,
    pub sales_per_s: f64,
    pub sales_per_s_4_terminals: f64,
    /// The journal's syncs and bytes from each scan to its sale paid, one entry a sale.
    pub pay_path: Vec<DiskUse>,
    /// The journal's syncs and bytes over the whole run of sequential sales (arming, events,
    /// the identity file), and `/proc/self/io` write_bytes over the pay paths.
    pub all: DiskUse,
    pub io_write_bytes: Option<u64>,
}

/// `write_bytes` of `/proc/self/io`: what this process has sent towards the disk.
fn io_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// A sandbox on loopback with its keys in `dir`, and a timestamping proxy in front of it:
/// the sandbox, the proxy's address, and the requests' stamps.
pub(super) async fn proxied_sandbox(
    dir: &Path,
    answers: Option<Stamps>,
) -> Result<(crate::cli::sandbox::Running, std::net::SocketAddr, Stamps), String> {
    let sandbox = crate::cli::sandbox::start(
        ([127, 0, 0, 1], 0).into(),
        dir,
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
        .map_err(|e| format!("the sandbox's address: {e}"))?;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let proxy = timestamping_proxy(upstream, arrivals.clone(), answers).await?;
    Ok((sandbox, proxy, arrivals))
}

pub(super) async fn gateway_path(work: PathBuf, n: usize) -> Result<GatewayPath, String> {
    let work = work.as_path();
    let (sandbox, proxy, arrivals) = proxied_sandbox(&work.join("sandbox"), None).await?;
    let app_key = PrivateKey::load(
        sandbox
            .keys
            .app_private_key_file
            .as_ref()
            .ok_or("no app key")?,
    )
    .map_err(|e| e.to_string())?;
    let config = Config::demo(Path::new("unused")).map_err(|e| e.to_string())?;
    type Parts = (
        Engine,
        Arc<crate::gateway::monitor::Monitored<dyn crate::gateway::Gateway>>,
        Arc<EventBus>,
        Arc<dyn Observer>,
    );
    let terminal_parts = |i: usize| -> Result<Parts, String> {
        let settings = OpenApiSettings {
            url: url::Url::parse(&format!("http://{proxy}/gateway.do"))
                .map_err(|e| e.to_string())?,
            app_id: DEFAULT_APP_ID.into(),
            private_key: app_key.clone(),
            alipay_public_key: sandbox.keys.gateway_key.public_key(),
            app_auth_token: None,
            notify_url: None,
            seller_id: None,
            sys_service_provider_id: None,
            timeout: Duration::from_secs(5),
            cert_mode: None,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let inner: Arc<dyn crate::gateway::Gateway> =
            Arc::new(OpenApi::new(settings, clock.clone())?);
        // Monitored, as the daemon has it: every outcome updates the gateway's health.
        let monitor = Arc::new(crate::gateway::monitor::Monitored::new(
            inner,
            clock.clone(),
        ));
        let journal = Arc::new(
            Journal::open(&work.join(format!("terminal{i}.sqlite"))).map_err(|e| e.to_string())?,
        );
        // The register's event bus, as `scanpay run` has it with an [api] section: events
        // are journaled as the daemon does.
        let bus = EventBus::start(journal.clone());
        let observer: Arc<dyn Observer> =
            Arc::new(Fanout(vec![Arc::new(LogObserver), bus.clone()]));
        let engine = Engine::new(
            journal,
            monitor.clone(),
            clock,
            observer.clone(),
            EngineSettings {
                terminal: config.terminal.clone(),
                timeout: Duration::from_secs(5),
                watchdog: config.watchdog.clone(),
                qr_timeout: config.qr_timeout,
                cancel_give_up_after: Some(Duration::from_secs(10)),
                resolve_inline: true,
            },
        );
        Ok((engine, monitor, bus, observer))
    };
    let terminal = |i: usize| terminal_parts(i).map(|(engine, ..)| engine);
    let cny = Currency::from_code("CNY").map_err(|e| e.to_string())?;
    let sale = |engine: &Engine| -> Result<(), String> {
        engine
            .arm(SaleRequest::at_the_till(Amount::from_minor(100, cny)))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // One terminal: time each scan to its request's first byte at the gateway's socket,
    // with a register polling and streaming events beside it.
    let (engine, monitor, bus, observer) = terminal_parts(0)?;
    let engine = Arc::new(engine);
    let journal = engine.journal().clone();
    let register = RegisterLoad::start(work, engine.clone(), monitor, bus, observer).await?;
    let mut wire = Vec::with_capacity(n);
    let mut pay_path = Vec::with_capacity(n);
    let mut io_bytes = Some(0u64);
    let mut busy = Duration::ZERO;
    let all_before = journal.disk_use();
    for i in 0..n {
        // A till is idle between sales (the basket is being scanned): the daemon's
        // housekeeping checkpoints the WAL then, and the next sale writes over its file from
        // the start. Not counted in the sales per second.
        journal.checkpoint(Checkpoint::Restart, Duration::from_secs(1));
        let started = Instant::now();
        sale(&engine)?;
        let code = format!("2860{:012}00", i);
        let (disk_before, io_before) = (journal.disk_use(), io_write_bytes());
        let t = Instant::now();
        let outcome = engine.scan(&code).await;
        busy += started.elapsed();
        pay_path.push(journal.disk_use().since(disk_before));
        io_bytes = match (io_bytes, io_before, io_write_bytes()) {
            (Some(sum), Some(a), Some(b)) => Some(sum + b.saturating_sub(a)),
            _ => None,
        };
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
    let sequential = n as f64 / busy.as_secs_f64().max(1e-9);
    let (register_polls, register_event_bytes) = register.stop().await;
    // What the sales left behind (the last one's events, the identity file) lands too.
    journal.flush_identity();
    tokio::time::sleep(Duration::from_millis(200)).await;
    journal.flush_identity();
    let all = journal.disk_use().since(all_before);
    let p50 = percentile(&mut wire, 0.5);
    let p99 = percentile(&mut wire, 0.99);
    // Four terminals at once, one sandbox.
    let engines: Vec<Engine> = (1..=4).map(terminal).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let runs = engines.into_iter().enumerate().map(|(t, engine)| {
        async move {
            for i in 0..n / 2 {
                engine
                    .arm(SaleRequest::at_the_till(Amount::from_minor(100, cny)))
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
    Ok(GatewayPath {
        wire_p50: p50,
        wire_p99: p99,
        register_polls,
        register_event_bytes,
        sales_per_s: sequential,
        sales_per_s_4_terminals: parallel,
        pay_path,
        all,
        io_write_bytes: io_bytes,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every paid sale, through the real engine, Open Platform client, event bus and HTTP
    /// sandbox, takes at most two fsyncs between its scan and its outcome: the attempt row,
    /// then the outcome. Counted by the journal, never timed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paid_sale_takes_two_fsyncs_from_scan_to_paid() {
        let dir = tempfile::tempdir().unwrap();
        let path = gateway_path(dir.path().to_path_buf(), 12).await.unwrap();
        assert_eq!(path.pay_path.len(), 12);
        for (i, used) in path.pay_path.iter().enumerate() {
            assert!(used.syncs <= 2, "sale {i}: {used:?}");
            assert!(used.bytes <= 65_536, "sale {i}: {used:?}");
        }
        // The rest of a sale (arming it, its events, the identity file) is off that path but
        // still written.
        assert!(path.all.syncs > 12 * 2, "{:?}", path.all);
    }
}
