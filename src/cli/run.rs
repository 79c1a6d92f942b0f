//! `scanpay run --config FILE`: the daemon. It opens the journal (one writer), hands every
//! attempt an earlier run left open to the watchdog before it takes a scan, tells systemd it
//! is ready, watches the gateway's reachability (refusing new sales at once while it is
//! unreachable), and on SIGTERM stops taking scans, lets a pay request on the wire get its
//! answer or time out, and exits 0 with the journal consistent.
//!
//! With `--stdin` it takes the register's amounts and the scanner's codes as lines on stdin
//! (the demo's protocol) and prints each finished sale as a JSON line on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::console::{self, Line};
use super::{EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE, build_gateway};
use crate::api::{ApiState, EventBus};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::device::{Debounce, DeviceEvent, DeviceEventKind, Frame, ScannerStates};
use crate::engine::{Engine, EngineSettings, Preflight, SaleRequest, ScanOutcome};
use crate::events::{Fanout, JsonLines, LogObserver, Observer};
use crate::gateway::Gateway;
use crate::gateway::monitor::{Monitored, Reachability};
use crate::journal::Journal;
use crate::money::Amount;
use crate::systemd::{Notifier, watchdog_ping_interval};

/// Used by recovery in line; the daemon hands unclear answers to the watchdog at once.
const INLINE_CANCEL_FOR: Duration = Duration::from_secs(15);
/// While idle or offline, a probe request this often tells whether the gateway answers.
const PROBE_IDLE_AFTER: Duration = Duration::from_secs(30);
const PROBE_OFFLINE_EVERY: Duration = Duration::from_secs(5);
const SCRUB_RETRY_EVERY: Duration = Duration::from_secs(10);
/// A loop is considered alive if it ticked within this long.
const ALIVE_WITHIN_S: i64 = 10;

pub struct Args {
    pub config: PathBuf,
    pub stdin: bool,
}

/// Refuses a sale while the gateway is unreachable, refusing or not answering, or the clock
/// is implausible: before this scanpay was built, before the journal's latest write (it was
/// set back), or far from the gateway's.
struct DaemonPreflight {
    monitor: Arc<Monitored<dyn Gateway>>,
    clock: Arc<dyn Clock>,
    /// The earliest plausible time: the build, or the journal's latest write at start.
    floor: chrono::DateTime<chrono::Utc>,
}

/// How far behind the journal's latest write the clock may be (an NTP correction) before it
/// counts as set back.
const CLOCK_BEHIND_JOURNAL: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

fn built_at() -> chrono::DateTime<chrono::Utc> {
    env!("SCANPAY_BUILT_AT")
        .parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_default()
}

impl Preflight for DaemonPreflight {
    fn check(&self) -> Result<(), (&'static str, String)> {
        let now = self.clock.now();
        // The gateway's own clock, when it agrees with ours, outweighs the floor: a journal
        // written while the clock ran ahead must not lock the till out once it is right.
        let confirmed = self.monitor.clock_agrees();
        if now < self.floor && !confirmed {
            return Err((
                "clock",
                format!(
                    "this machine's clock says {}, before {} (when this scanpay was built, or the journal's latest write): set the time (NTP) before taking payments",
                    crate::clock::to_journal(now),
                    crate::clock::to_journal(self.floor)
                ),
            ));
        }
        if let Some(skew) = self.monitor.clock_skew_s()
            && skew.abs() > crate::gateway::CLOCK_SKEW_REFUSE_S
        {
            return Err((
                "clock",
                format!(
                    "this machine's clock is {skew} s off the gateway's (more than {} s): set the time (NTP) before taking payments",
                    crate::gateway::CLOCK_SKEW_REFUSE_S
                ),
            ));
        }
        match self.monitor.reachability().refusal() {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

pub async fn run(args: Args) -> u8 {
    // A file-size limit (systemd's LimitFSIZE=) reached must look like a full disk (the
    // write fails, the sale is refused), not kill the daemon mid-payment.
    // SAFETY: installs SIG_IGN, no handler code runs; done before any thread is spawned
    // by this function.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = match build_gateway(&config, clock.clone()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let notifier = Notifier::from_env();
    let stop_requested = shutdown_signals();
    let mut stop_requested = Box::pin(stop_requested);
    let journal = match open_journal(&config, &notifier, &mut stop_requested).await {
        Ok(Some(j)) => Arc::new(j),
        Ok(None) => return EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let monitor: Arc<Monitored<dyn Gateway>> = Arc::new(Monitored::new(gateway, clock.clone()));
    let mut observers: Vec<Arc<dyn Observer>> = vec![Arc::new(LogObserver)];
    if args.stdin {
        observers.push(Arc::new(JsonLines));
    }
    let (outputs, printer) = crate::output::from_config(&config);
    observers.extend(outputs);
    let bus = config
        .api
        .as_ref()
        .map(|_| EventBus::start(journal.clone()));
    if let Some(bus) = &bus {
        observers.push(bus.clone());
    }
    let observer: Arc<dyn Observer> = Arc::new(Fanout(observers));
    let engine = Arc::new(
        Engine::new(
            journal.clone(),
            monitor.clone(),
            clock.clone(),
            observer.clone(),
            EngineSettings {
                terminal: config.terminal.clone(),
                timeout: config.gateway.timeout,
                watchdog: config.watchdog.clone(),
                cancel_give_up_after: Some(INLINE_CANCEL_FOR),
                resolve_inline: false,
            },
        )
        .with_preflight(Arc::new(DaemonPreflight {
            monitor: monitor.clone(),
            clock: clock.clone(),
            floor: journal
                .latest_timestamp()
                .ok()
                .flatten()
                .map(|t| t - CLOCK_BEHIND_JOURNAL)
                .unwrap_or_default()
                .max(built_at()),
        })),
    );
    // Recovery: every attempt left open is the watchdog's before any new scan is taken. A
    // journal that cannot be written now (full disk) is retried by housekeeping; sales are
    // refused until then.
    let released = match engine.release_earlier_sales() {
        Ok(_) => true,
        Err(e) if e.is_unwritable() => {
            tracing::error!(error = %e, "the journal cannot be written: sales are refused until it can be");
            false
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_NOT_PAID;
        }
    };
    let watchdog = Arc::new(engine.watchdog());
    let resumed = match watchdog.sweep() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: reading open attempts: {e}");
            return EXIT_NOT_PAID;
        }
    };
    tracing::info!(
        resumed,
        gateway = monitor.name(),
        journal = %config.journal.path.display(),
        "scanpay running"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scanner_states = Arc::new(ScannerStates::default());
    let (device_tx, device_rx) = tokio::sync::mpsc::unbounded_channel();
    let devices_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for scanner in &config.scanners {
        crate::device::spawn(scanner.clone(), device_tx.clone(), devices_stop.clone());
    }
    drop(device_tx);
    let api_task = match (&config.api, &bus) {
        (Some(api), Some(bus)) => {
            // Bound before READY=1, so a register that starts after scanpay finds the API and a
            // busy address stops the start instead of a running daemon.
            let listeners = match crate::api::bind(api) {
                Ok(listeners) => listeners,
                Err(e) => {
                    eprintln!("error: {}: {e}", config.source);
                    return EXIT_USAGE;
                }
            };
            let state = ApiState {
                engine: engine.clone(),
                monitor: monitor.clone(),
                bus: bus.clone(),
                scanners: scanner_states.clone(),
                printer: printer.clone(),
                connections: Default::default(),
            };
            let api = api.clone();
            let rx = stop_rx.clone();
            tracing::info!(socket = %api.socket.display(), tcp = ?api.tcp, "register API listening");
            Some(tokio::spawn(async move {
                if let Err(e) = crate::api::serve(&api, listeners, state, rx).await {
                    tracing::error!(error = %e, "register API stopped");
                }
            }))
        }
        _ => {
            tracing::info!("no [api] section: the register API is off");
            None
        }
    };
    notifier.ready(&status_line(&engine, &monitor, &watchdog));

    let heartbeat = watchdog.heartbeat.clone();
    let watchdog_task = tokio::spawn(watchdog.clone().run(stop_rx.clone()));
    let housekeeping = tokio::spawn(housekeeping(
        engine.clone(),
        monitor.clone(),
        watchdog.clone(),
        observer.clone(),
        config.terminal.id.clone(),
        released,
        stop_rx.clone(),
    ));

    let daily_reconcile = tokio::spawn(super::reconcile::daily(
        config.clone(),
        journal.clone(),
        observer.clone(),
        clock.clone(),
        stop_rx.clone(),
    ));

    let input = async {
        let scanners = scanner_loop(
            &engine,
            device_rx,
            &scanner_states,
            &observer,
            !config.scanners.is_empty(),
        );
        if args.stdin {
            tokio::select! {
                _ = read_stdin(&engine, &config) => {}
                _ = scanners => {}
            }
        } else {
            scanners.await;
        }
    };
    let mut input = std::pin::pin!(input);
    tokio::select! {
        _ = &mut input => tracing::info!("input ended"),
        _ = &mut stop_requested => {
            tracing::info!("stop requested");
            engine.stop_taking_sales();
            // A scan being charged finishes: its pay request gets its answer or times out. No
            // new one starts; whatever stays in doubt is resolved after the next start.
            let limit = config.gateway.timeout + Duration::from_secs(1);
            let _ = tokio::time::timeout(limit, async {
                while engine.in_flight() {
                    tokio::select! {
                        _ = &mut input => break,
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            })
            .await;
        }
    }
    notifier.stopping();
    devices_stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let _ = watchdog_task.await;
    daily_reconcile.abort();
    if let Some(task) = api_task {
        // Event streams never end on their own: give requests a moment, then close.
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            tracing::debug!("API connections closed at shutdown");
        }
        if let Some(api) = &config.api {
            let _ = std::fs::remove_file(&api.socket);
        }
    }
    housekeeping.abort();
    drop(heartbeat);
    // No sale waits on it now: let readers finish, so no page with a code stays in the WAL.
    journal.scrub_waiting(Duration::from_secs(3));
    tracing::info!(open = ?journal.open_attempts().map(|a| a.len()), "scanpay stopped");
    EXIT_OK
}

/// How often a journal that cannot be opened (full or read-only disk) is tried again.
const JOURNAL_RETRY_EVERY: Duration = Duration::from_secs(5);

/// Opens the journal. While it cannot be opened because the disk is full or read-only, the
/// daemon stays up: it tells systemd it is ready (degraded), serves an API that answers
/// `503 journal_unwritable`, and tries again every few seconds. `None`: stopped meanwhile.
async fn open_journal(
    config: &Config,
    notifier: &Notifier,
    stop_requested: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
) -> Result<Option<Journal>, crate::journal::JournalError> {
    let mut unavailable: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> = None;
    let why = crate::api::unavailable::Why::default();
    let ping = watchdog_ping_interval();
    loop {
        match Journal::open(&config.journal.path) {
            Ok(j) => {
                if let Some((stop, task)) = unavailable.take() {
                    let _ = stop.send(true);
                    let _ = task.await;
                    tracing::info!("the journal opens again: taking sales");
                }
                return Ok(Some(j));
            }
            Err(e) if e.is_unwritable() => {
                let now = crate::clock::to_journal(chrono::Utc::now());
                why.set(&now, &e.to_string());
                if unavailable.is_none() {
                    tracing::error!(error = %e, "the journal cannot be opened: serving health only, retrying every {} s", JOURNAL_RETRY_EVERY.as_secs());
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    let task = match &config.api {
                        Some(api) => match crate::api::bind(api) {
                            Ok(listeners) => tokio::spawn(crate::api::unavailable::serve(
                                listeners,
                                why.clone(),
                                rx,
                            )),
                            Err(bind) => {
                                tracing::error!(error = %bind, "register API not served");
                                tokio::spawn(async {})
                            }
                        },
                        None => tokio::spawn(async {}),
                    };
                    unavailable = Some((tx, task));
                    notifier.ready(&format!("journal cannot be written: {e}"));
                }
            }
            Err(e) => return Err(e),
        }
        let wait = ping.map_or(JOURNAL_RETRY_EVERY, |p| p.min(JOURNAL_RETRY_EVERY));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop_requested.as_mut() => {
                if let Some((stop, task)) = unavailable.take() {
                    let _ = stop.send(true);
                    let _ = task.await;
                }
                notifier.stopping();
                return Ok(None);
            }
        }
        notifier.watchdog();
    }
}

/// Double triggers: the same code from the same scanner within this window is read once.
const DOUBLE_TRIGGER: Duration = Duration::from_millis(1500);

/// Takes scans and connect/disconnect news from the scanner threads, in order.
async fn scanner_loop(
    engine: &Engine,
    mut events: tokio::sync::mpsc::UnboundedReceiver<DeviceEvent>,
    states: &ScannerStates,
    observer: &Arc<dyn Observer>,
    any: bool,
) {
    if !any {
        return std::future::pending().await;
    }
    let mut debounce = Debounce::new(DOUBLE_TRIGGER);
    // Scans that arrived while a payment was being charged, handled before newer ones.
    let mut queued: std::collections::VecDeque<DeviceEvent> = Default::default();
    loop {
        let (event, during_payment) = match queued.pop_front() {
            Some(event) => (event, true),
            None => match events.recv().await {
                Some(event) => (event, false),
                None => return,
            },
        };
        let scanner = event.scanner;
        match event.kind {
            DeviceEventKind::Connected { detail } => {
                tracing::info!(%scanner, %detail, "scanner connected");
                states.set(&scanner, true, &detail);
                observer.event(&crate::events::Event::ScannerConnected { scanner, detail });
            }
            DeviceEventKind::Disconnected { why } => {
                tracing::warn!(%scanner, %why, "scanner missing; retrying");
                states.set(&scanner, false, &why);
                observer.event(&crate::events::Event::ScannerDisconnected { scanner, why });
            }
            DeviceEventKind::Frame(Frame::Scan { text, symbology }) => {
                if !debounce.accept(&scanner, &text, std::time::Instant::now()) {
                    tracing::debug!(%scanner, "double trigger dropped");
                    continue;
                }
                tracing::debug!(%scanner, ?symbology, "scan");
                let outcome = if during_payment {
                    engine.scan_queued(&text).await
                } else {
                    engine.scan(&text).await
                };
                match outcome {
                    ScanOutcome::Refused { refusal, .. } => {
                        tracing::info!(%scanner, %refusal, "scan refused");
                    }
                    // What came in while the payment was on the wire may be meant for the
                    // next sale: never charge it to whatever sale is armed by now.
                    ScanOutcome::Attempted { .. } | ScanOutcome::Unrecorded { .. } => {
                        while let Ok(event) = events.try_recv() {
                            queued.push_back(event);
                        }
                    }
                    ScanOutcome::Barcode { .. } | ScanOutcome::Garbage { .. } => {}
                }
            }
            DeviceEventKind::Frame(Frame::Garbage { why, len }) => {
                tracing::warn!(%scanner, why, len, "unreadable scan dropped");
                observer.event(&crate::events::Event::Garbage { why, len });
            }
        }
    }
}

async fn read_stdin(engine: &Engine, config: &Config) {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "stdin");
                return;
            }
        }
        match console::parse(&buf) {
            Line::Empty => {}
            Line::Quit => return,
            Line::Cancel => {
                if let Some(id) = engine.armed()
                    && let Err(e) = engine.abort(&id, "cancelled by the cashier")
                {
                    tracing::warn!(error = %e, "cannot cancel");
                }
            }
            Line::Amount(text) => {
                let amount = match Amount::parse(&text, config.terminal.currency) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "not an amount");
                        continue;
                    }
                };
                let request = SaleRequest {
                    amount,
                    reference: None,
                    subject: None,
                    idempotency_key: None,
                    max_attempts: 1,
                    supersede: false,
                };
                if let Err(e) = engine.arm(request) {
                    tracing::warn!(error = %e, "sale refused");
                    eprintln!("sale refused: {e}");
                }
            }
            Line::Scan(text) => {
                if let ScanOutcome::Refused { refusal, .. } = engine.scan(&text).await {
                    eprintln!("scan refused: {refusal}");
                }
            }
        }
    }
}

/// Probes the gateway while idle or offline, keeps `status` informed through the journal,
/// updates systemd's STATUS= and pings its watchdog while the loops are alive.
/// Events a register can still replay with `Last-Event-ID` (weeks of a busy till).
const EVENTS_KEPT: i64 = 200_000;
const PRUNE_EVENTS_EVERY: Duration = Duration::from_secs(3600);

async fn housekeeping(
    engine: Arc<Engine>,
    monitor: Arc<Monitored<dyn Gateway>>,
    watchdog: Arc<crate::watchdog::Watchdog>,
    observer: Arc<dyn Observer>,
    terminal_id: String,
    mut released: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let journal = engine.journal().clone();
    let mut last_reachability = Reachability::Unknown;
    let mut clock_off = false;
    let notifier = Notifier::from_env();
    let ping = watchdog_ping_interval();
    let mut last_saved = String::new();
    let mut last_status = String::new();
    let mut last_probe = tokio::time::Instant::now();
    let mut last_ping = tokio::time::Instant::now();
    // Pruned once soon after start, then hourly.
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut last_write_probe = tokio::time::Instant::now();
    let mut last_scrub = tokio::time::Instant::now();
    loop {
        // Online, a probe only fills a long silence. Offline, sales are refused until the
        // gateway answers, so it is asked every few seconds, not after half a minute of quiet.
        // Sales refused for the clock are probed as often: only answers move the skew.
        let clock_refused = monitor
            .clock_skew_s()
            .is_some_and(|k| k.abs() > crate::gateway::CLOCK_SKEW_REFUSE_S);
        let due = if monitor.is_offline() || clock_refused {
            PROBE_OFFLINE_EVERY
        } else {
            PROBE_IDLE_AFTER
        };
        let idle = monitor.idle_for().is_none_or(|d| d >= due);
        if idle && !engine.in_flight() && last_probe.elapsed() >= due {
            last_probe = tokio::time::Instant::now();
            monitor.probe(&terminal_id).await;
        }
        // The clock against the gateway's: told once when it goes off, and once when back.
        if let Some(skew) = monitor.clock_skew_s() {
            let off = skew.abs() > crate::gateway::CLOCK_SKEW_WARN_S;
            if off != clock_off {
                clock_off = off;
                observer.event(&crate::events::Event::ClockSkew { skew_s: skew, off });
            }
        }
        let reachability = monitor.reachability();
        if std::mem::discriminant(&reachability) != std::mem::discriminant(&last_reachability) {
            match &reachability {
                Reachability::Online { .. } => observer.event(&crate::events::Event::GatewayOnline),
                Reachability::Unknown => {}
                refusing => {
                    let why = refusing.refusal().map(|r| r.1).unwrap_or_default();
                    observer.event(&crate::events::Event::GatewayOffline { why })
                }
            }
            last_reachability = reachability;
        }
        // Written only when it changes: a journal write is an fsync.
        let saved = serde_json::json!({
            "pid": std::process::id(),
            "reachability": monitor.reachability(),
            "last_error": monitor.last_error(),
        })
        .to_string();
        if saved != last_saved {
            match journal.set_meta("daemon_status", &saved) {
                Ok(()) => last_saved = saved,
                Err(e) => tracing::warn!(error = %e, "cannot record the daemon status"),
            }
        }
        let status = status_line(&engine, &monitor, &watchdog);
        if status != last_status {
            notifier.status(&status);
            last_status = status;
        }
        // A checkpoint a reader blocked is retried, so a payment code does not linger in the
        // WAL of a quiet till until the next sale.
        if journal.scrub_pending() && last_scrub.elapsed() >= SCRUB_RETRY_EVERY {
            last_scrub = tokio::time::Instant::now();
            journal.scrub();
        }
        // While the journal cannot be written, a small write now and then finds out when
        // it can again, so health clears without waiting for the next sale.
        if journal.write_failure().is_some() && last_write_probe.elapsed() >= PROBE_OFFLINE_EVERY {
            last_write_probe = tokio::time::Instant::now();
            let _ = journal.set_meta("write_probe", &crate::clock::to_journal(chrono::Utc::now()));
        }
        // The sales an earlier run left open, let go of once the journal can be written.
        if !released && journal.write_failure().is_none() {
            match engine.release_earlier_sales() {
                Ok(_) => released = true,
                Err(e) => tracing::warn!(error = %e, "earlier sales not released yet"),
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVENTS_EVERY) && !engine.in_flight() {
            last_prune = Some(tokio::time::Instant::now());
            match journal.prune_events(EVENTS_KEPT) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    dropped = n,
                    kept = EVENTS_KEPT,
                    "old register events pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot prune old register events"),
            }
        }
        if let Some(every) = ping
            && last_ping.elapsed() >= every
        {
            let alive = chrono::Utc::now().timestamp() - watchdog.heartbeat.load(Ordering::Relaxed)
                <= ALIVE_WITHIN_S;
            if alive {
                notifier.watchdog();
                last_ping = tokio::time::Instant::now();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn status_line(
    engine: &Engine,
    monitor: &Monitored<dyn Gateway>,
    watchdog: &crate::watchdog::Watchdog,
) -> String {
    let gateway = match monitor.reachability() {
        Reachability::Online { .. } => "online",
        Reachability::Offline { .. } => "OFFLINE",
        Reachability::NotAnswering { .. } => "NOT ANSWERING",
        Reachability::Refusing { .. } => "REFUSING OUR CREDENTIALS",
        Reachability::Unknown => "not contacted yet",
    };
    format!(
        "gateway {gateway}; {} payment(s) in doubt; sale {}",
        watchdog.owners.count(),
        engine.armed().as_deref().unwrap_or("none")
    )
}

/// SIGTERM and SIGINT, registered at once: a signal that arrives before the main loop waits
/// for it (right after READY=1) must still mean "stop cleanly", not the default action.
fn shutdown_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut term), Err(_)) => {
                term.recv().await;
            }
            _ => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::gateway::alipay_openapi::{OpenApi, OpenApiSettings};
    use crate::gateway::keys::PrivateKey;

    /// The real Open Platform client against the sandbox over HTTP, its wall clock apart
    /// from the sandbox's by `off`.
    async fn monitored(
        dir: &std::path::Path,
        clock: Arc<TokioClock>,
    ) -> (Arc<Monitored<dyn Gateway>>, super::super::sandbox::Running) {
        let sandbox = super::super::sandbox::start(
            ([127, 0, 0, 1], 0).into(),
            dir,
            crate::sandbox::DEFAULT_APP_ID,
            crate::sandbox::DEFAULT_CLIENT_ID,
            None,
        )
        .await
        .unwrap();
        let key = PrivateKey::load(sandbox.keys.app_private_key_file.as_ref().unwrap()).unwrap();
        let settings = OpenApiSettings {
            url: url::Url::parse(&sandbox.url).unwrap(),
            app_id: crate::sandbox::DEFAULT_APP_ID.into(),
            private_key: key,
            alipay_public_key: sandbox.keys.gateway_key.public_key(),
            app_auth_token: None,
            notify_url: None,
            seller_id: None,
            timeout: Duration::from_secs(5),
        };
        let client: Arc<dyn Gateway> = Arc::new(OpenApi::new(settings, clock.clone()).unwrap());
        (Arc::new(Monitored::new(client, clock)), sandbox)
    }

    #[tokio::test]
    async fn sales_are_refused_while_the_clock_is_implausible() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TokioClock::starting_at(chrono::Utc::now()));
        let (monitor, _sandbox) = monitored(&dir.path().join("sbx"), clock.clone()).await;
        let preflight = |floor| DaemonPreflight {
            monitor: monitor.clone(),
            clock: clock.clone(),
            floor,
        };
        // Set back behind the journal's latest write (or the build), and no gateway answer
        // yet to say otherwise.
        assert_eq!(preflight(built_at()).check(), Ok(()));
        let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
        let (code, message) = preflight(later).check().unwrap_err();
        assert_eq!(code, "clock");
        assert!(message.contains("set the time"), "{message}");
        // The gateway's clock agrees with ours: the journal was written while the clock ran
        // ahead, and the till is not locked out.
        monitor.probe("T0001").await;
        assert_eq!(preflight(later).check(), Ok(()));
        // An hour off the gateway's clock: one answer is not enough, every recent one is.
        clock.step(-chrono::TimeDelta::hours(1));
        monitor.probe("T0001").await;
        assert_eq!(preflight(chrono::DateTime::default()).check(), Ok(()));
        for _ in 0..crate::gateway::http_skew_samples() {
            monitor.probe("T0001").await;
        }
        let skew = monitor.clock_skew_s().unwrap();
        assert!((3590..=3610).contains(&skew), "{skew}");
        let (code, message) = preflight(chrono::DateTime::default()).check().unwrap_err();
        assert_eq!(code, "clock");
        assert!(message.contains("off the gateway's"), "{message}");
        // Set right again: the next answer clears it.
        clock.step(chrono::TimeDelta::hours(1));
        monitor.probe("T0001").await;
        assert_eq!(preflight(chrono::DateTime::default()).check(), Ok(()));
    }
}
