//! The daemon (`scanpay run`). It opens the journal (one writer), hands every attempt an
//! earlier run left open to the watchdog before it takes a scan, tells systemd it is ready,
//! watches the gateway's reachability (refusing new sales at once while it is unreachable),
//! and on SIGTERM stops taking scans, lets a pay request on the wire get its answer or time
//! out, stops every task through one signal, joins them, and exits with the journal
//! consistent.
//!
//! With `stdin` it takes the register's amounts and the scanner's codes as lines on stdin
//! (the demo's protocol, `console.rs`) and prints each finished sale as a JSON line.

pub mod console;
mod housekeeping;
mod intake;
mod notify;
mod open;
pub mod operations;
mod preflight;
pub mod reconcile;
pub mod reload;
pub mod shutdown;
mod trim;
pub mod wiring;

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ApiState, EventBus};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::device::ScannerStates;
use crate::engine::Engine;
use crate::events::{Fanout, LogObserver, Observer};
use crate::gateway::Gateway;
use crate::gateway::monitor::Monitored;
use crate::systemd::Notifier;
use housekeeping::Housekeeping;
use preflight::DaemonPreflight;
use shutdown::Shutdown;

/// Used by recovery in line; the daemon hands unclear answers to the watchdog at once.
const INLINE_CANCEL_FOR: Duration = Duration::from_secs(15);
/// Scans and plug news waiting for the intake; a scanner thread waits when it is full.
const DEVICE_EVENTS_QUEUED: usize = 64;
/// How long event streams and other requests get to end once the daemon stops.
const TASKS_END_WITHIN: Duration = Duration::from_secs(2);

/// Why the daemon did not run or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or what it points at is wrong; nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// The journal could not be read at start.
    #[error("{0}")]
    Failed(String),
}

/// Runs the daemon until SIGTERM (or, with `stdin`, the end of input).
pub async fn run(config: Config, stdin: bool) -> Result<(), Error> {
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = wiring::build_gateway(&config, clock.clone()).map_err(Error::Usage)?;
    let notifier = Notifier::from_env();
    let shutdown = Shutdown::new();
    let stop = shutdown.token();
    // SIGTERM only asks: the API, scanners, housekeeping and systemd pings keep going while a
    // payment on the wire gets its answer; `stop` reaches the tasks after that. Registered
    // now, so a signal from here on means "stop cleanly".
    let requested = tokio_util::sync::CancellationToken::new();
    let signals = shutdown::signals();
    // SIGHUP reloads (below); taken from here on, so an early one never ends the process.
    let hangups = shutdown::hangups();
    let signalled = requested.clone();
    tokio::spawn(async move {
        signals.await;
        tracing::info!("stop requested");
        signalled.cancel();
    });
    let journal = match open::open_journal(&config, &notifier, &requested).await {
        Ok(Some(j)) => Arc::new(j),
        Ok(None) => return Ok(()),
        Err(e) => return Err(Error::Usage(e.to_string())),
    };
    // The gateway clients a reload replaces; what learns reachability sees them as one.
    let keys = Arc::new(crate::gateway::keyring::KeyRing::new(gateway));
    let reloader = Arc::new(reload::Reloader::new(&config, clock.clone(), keys.clone()));
    let monitor: Arc<Monitored<dyn Gateway>> = Arc::new(Monitored::new(keys, clock.clone()));
    let mut observers: Vec<Arc<dyn Observer>> = vec![Arc::new(LogObserver)];
    if stdin {
        observers.push(Arc::new(console::JsonLines));
    }
    let (outputs, printer) = crate::output::start(
        &config.led,
        config.printer.clone(),
        &config.terminal.id,
        config.terminal.zone,
    );
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
            config.engine_settings(Some(INLINE_CANCEL_FOR), false),
        )
        .with_preflight(Arc::new(DaemonPreflight::new(
            monitor.clone(),
            clock.clone(),
            &journal,
        ))),
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
        Err(e) => return Err(Error::Failed(e.to_string())),
    };
    let watchdog = Arc::new(engine.watchdog().tracked_by(shutdown.tasks()));
    let resumed = watchdog
        .sweep()
        .map_err(|e| Error::Failed(format!("reading open attempts: {e}")))?;
    tracing::info!(
        resumed,
        gateway = monitor.name(),
        journal = %config.journal.path.display(),
        "scanpay running"
    );
    let members = wiring::build_members(&config, journal.clone(), clock.clone(), observer.clone())
        .map_err(Error::Usage)?;
    let scanner_states = Arc::new(ScannerStates::default());
    let (device_tx, device_rx) = tokio::sync::mpsc::channel(DEVICE_EVENTS_QUEUED);
    for scanner in &config.scanners {
        crate::device::spawn(scanner.clone(), device_tx.clone(), stop.clone());
    }
    drop(device_tx);
    // The API ends on the same signal but is joined on its own: event streams never end by
    // themselves, and its socket file is removed once it has.
    let mut api_task = None;
    match (&config.api, &bus) {
        (Some(api), Some(bus)) => {
            // Bound before READY=1, so a register that starts after scanpay finds the API and a
            // busy address stops the start instead of a running daemon.
            let listeners = crate::api::bind(api)
                .map_err(|e| Error::Usage(format!("{}: {e}", config.source)))?;
            let state = ApiState {
                engine: engine.clone(),
                monitor: monitor.clone(),
                bus: bus.clone(),
                observer: observer.clone(),
                scanners: scanner_states.clone(),
                printer: printer.clone(),
                connections: Default::default(),
                operations: Some(Arc::new(operations::DaemonOperations {
                    config: config.clone(),
                    clock: clock.clone(),
                    gateway: monitor.clone(),
                    reloader: reloader.clone(),
                })),
                members: members.clone(),
            };
            let api = api.clone();
            let api_stop = stop.clone();
            tracing::info!(
                socket = %api.socket.display(),
                tcp = %api.tcp.map_or("off".to_string(), |a| a.to_string()),
                "register API listening"
            );
            api_task = Some(tokio::spawn(async move {
                if let Err(e) = crate::api::serve(&api, listeners, state, api_stop).await {
                    tracing::error!(error = %e, "register API stopped");
                }
            }));
        }
        _ => tracing::info!("no [api] section: the register API is off"),
    }
    // Bound before READY=1, as the API is: a busy address stops the start.
    let notify_listener = notify::bind(&config)
        .await
        .map_err(|e| Error::Usage(format!("{}: {e}", config.source)))?;
    if let Some(listener) = notify_listener {
        shutdown.spawn({
            let (config, engine, stop) = (config.clone(), engine.clone(), stop.clone());
            let members = members.clone();
            async move { notify::serve(listener, &config, engine, members, stop).await }
        });
    }
    notifier.ready(&housekeeping::status_line(&engine, &monitor, &watchdog));
    let dropped = trim::drop_start_up_pages();
    tracing::debug!(
        kib = dropped / 1024,
        "the binary's start-up pages unmapped (they stay cached)"
    );

    shutdown.spawn(watchdog.clone().run(stop.clone()));
    shutdown.spawn(reload_on_hangup(hangups, reloader.clone(), stop.clone()));
    shutdown.spawn(
        Housekeeping::new(
            engine.clone(),
            monitor.clone(),
            watchdog.clone(),
            observer.clone(),
            config.terminal.id.clone(),
            released,
        )
        .with_members(members.clone())
        .run(stop.clone()),
    );
    shutdown.spawn(reconcile::daily(
        config.clone(),
        journal.clone(),
        observer.clone(),
        clock.clone(),
        stop.clone(),
    ));

    let input = async {
        let scanners = intake::scanner_loop(
            &engine,
            device_rx,
            &scanner_states,
            &observer,
            members.as_deref(),
            !config.scanners.is_empty(),
        );
        if stdin {
            tokio::select! {
                _ = intake::read_stdin(&engine, config.terminal.currency, members.as_deref(), &*observer) => {}
                _ = scanners => {}
            }
        } else {
            scanners.await;
        }
    };
    let mut input = std::pin::pin!(input);
    let mut asked_at = None;
    tokio::select! {
        _ = &mut input => tracing::info!("input ended"),
        _ = requested.cancelled() => {
            asked_at = Some(tokio::time::Instant::now());
            engine.stop_taking_sales();
            // Resolvers return at their next step; one with a request on the wire gets its
            // answer or its timeout, like the scan being charged. No new request starts;
            // whatever stays in doubt is resolved after the next start.
            engine.stop_resolving();
            let limit = config.gateway.timeout() + Duration::from_secs(1);
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
    // Requests started before the stop end within the gateway timeout of it.
    let tasks_by = asked_at.unwrap_or_else(tokio::time::Instant::now)
        + config.gateway.timeout()
        + TASKS_END_WITHIN;
    notifier.stopping();
    engine.stop_taking_sales();
    engine.stop_resolving();
    shutdown.trigger();
    let limit = tasks_by.saturating_duration_since(tokio::time::Instant::now());
    if !shutdown.join(limit.max(TASKS_END_WITHIN)).await {
        tracing::warn!("some tasks did not end in time; what they had open stays in the journal");
    }
    if let Some(task) = api_task {
        if tokio::time::timeout(TASKS_END_WITHIN, task).await.is_err() {
            tracing::debug!("API connections closed at shutdown");
        }
        if let Some(api) = &config.api {
            let _ = std::fs::remove_file(&api.socket);
        }
    }
    // No sale waits on it now: the register's last events are stored, and the main file
    // holds everything once readers let go.
    if let Err(e) = journal.write_queued_events() {
        tracing::warn!(error = %e, "the last register events were not journaled");
    }
    journal.checkpoint(crate::journal::Checkpoint::Truncate, Duration::from_secs(3));
    match journal.open_attempts() {
        Ok(open) => tracing::info!(in_doubt = open.len(), "scanpay stopped"),
        Err(e) => tracing::info!(error = %e, "scanpay stopped"),
    }
    Ok(())
}

/// Each SIGHUP reloads the configuration (the unit's `ExecReload=`), one at a time, until
/// the daemon stops.
async fn reload_on_hangup(
    mut hangups: Option<tokio::signal::unix::Signal>,
    reloader: Arc<reload::Reloader>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(hangups) = hangups.as_mut() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                let reloader = reloader.clone();
                // Reading keys and certificates is file I/O and RSA parsing: off the runtime.
                let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
            }
        }
    }
}
