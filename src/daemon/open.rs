//! Opening the journal at start. While the disk is full or read-only the daemon stays up,
//! degraded, instead of failing its start: systemd would only restart it into the same wall.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::journal::Journal;
use crate::systemd::{Notifier, watchdog_ping_interval};

/// How often a journal that cannot be opened (full or read-only disk) is tried again.
const JOURNAL_RETRY_EVERY: Duration = Duration::from_secs(5);

/// Opens the journal. While it cannot be opened because the disk is full or read-only, the
/// daemon stays up: it tells systemd it is ready (degraded), serves an API that answers
/// `503 journal_unwritable`, and tries again every few seconds. `None`: stopped meanwhile.
pub async fn open_journal(
    config: &Config,
    notifier: &Notifier,
    stop: &CancellationToken,
) -> Result<Option<Journal>, crate::journal::JournalError> {
    // The health-only API while the journal cannot be opened: its own stop, a child of the
    // daemon's, so it ends both when the journal opens and when the daemon stops.
    let mut unavailable: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    let why = crate::api::unavailable::Why::default();
    let ping = watchdog_ping_interval();
    loop {
        match Journal::open(&config.journal.path) {
            Ok(j) => {
                if let Some((api_stop, task)) = unavailable.take() {
                    api_stop.cancel();
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
                    let api_stop = stop.child_token();
                    let task = match &config.api {
                        Some(api) => match crate::api::bind(api) {
                            Ok(listeners) => tokio::spawn(crate::api::unavailable::serve(
                                listeners,
                                why.clone(),
                                api_stop.clone(),
                            )),
                            Err(bind) => {
                                tracing::error!(error = %bind, "register API not served");
                                tokio::spawn(async {})
                            }
                        },
                        None => tokio::spawn(async {}),
                    };
                    unavailable = Some((api_stop, task));
                    notifier.ready(&format!("journal cannot be written: {e}"));
                }
            }
            Err(e) => return Err(e),
        }
        let wait = ping.map_or(JOURNAL_RETRY_EVERY, |p| p.min(JOURNAL_RETRY_EVERY));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {
                if let Some((_, task)) = unavailable.take() {
                    let _ = task.await;
                }
                notifier.stopping();
                return Ok(None);
            }
        }
        notifier.watchdog();
    }
}
