//! `scanpay reconcile`: the provider's record of a day against the journal. The Open
//! Platform's trade bill is downloaded (or read from `--file`, a bill zip); an AMS report is
//! read from `--file`. Exit 0 only when both agree, 1 when they differ, 2 when the comparison
//! could not be made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use super::exit::{Exit, OrExit};
use super::{EXIT_FAILED, EXIT_OK, ReportFormat, out};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::daemon::reconcile::{compare_day_of, previous_day};
use crate::events::LogObserver;
use crate::journal::Journal;
use crate::reconcile::{self, DifferenceKind, Fix};

pub struct Args {
    pub config: PathBuf,
    pub date: Option<String>,
    pub file: Option<PathBuf>,
    pub format: ReportFormat,
    pub fix: bool,
    /// Which configured gateway's records: `alipay` or `wechat`; the first one by default.
    pub provider: Option<String>,
}

pub async fn run(args: Args) -> Exit {
    let r = reconcile_day(&args).await.or_usage()?;
    let text = match args.format {
        ReportFormat::Text => reconcile::to_text(&r),
        ReportFormat::Csv => reconcile::to_csv(&r).or_usage()?,
        ReportFormat::Json => serde_json::to_string(&r).unwrap_or_default(),
    };
    out(text.trim_end());
    Ok(if r.matches() { EXIT_OK } else { EXIT_FAILED })
}

async fn reconcile_day(args: &Args) -> Result<reconcile::Reconciliation, String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let date = match &args.date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("--date {d:?}: expected YYYY-MM-DD"))?,
        None => previous_day(clock.now()),
    };
    // With the daemon running, it holds the journal: it does the fix itself.
    if args.fix
        && let Some(api) = &config.api
        && let Some(result) = fix_by_daemon(&api.socket, date, args).await?
    {
        return Ok(result);
    }
    let journal = Journal::open_read_only(&config.journal.path).map_err(|e| e.to_string())?;
    let provider = crate::daemon::reconcile::provider_named(&config, args.provider.as_deref())
        .map_err(|e| format!("--provider {e}"))?;
    let mut result =
        compare_day_of(&config, provider, &journal, date, args.file.clone(), clock).await?;
    drop(journal);
    if args.fix {
        result.fixes = fix(&config, &result).await?;
    }
    Ok(result)
}

/// How long the daemon may take to reconcile and fix: the provider's record, then each
/// refund sent and waited for a while.
const DAEMON_FIX_LIMIT: Duration = Duration::from_secs(300);

/// `--fix` through the running daemon's API (`POST /v1/reconcile`); `None` when no daemon
/// answers on its socket.
async fn fix_by_daemon(
    socket: &std::path::Path,
    date: NaiveDate,
    args: &Args,
) -> Result<Option<reconcile::Reconciliation>, String> {
    let file = match &args.file {
        Some(f) => Some(
            std::fs::canonicalize(f)
                .map_err(|e| format!("--file {}: {e}", f.display()))?
                .display()
                .to_string(),
        ),
        None => None,
    };
    let body = serde_json::json!({
        "date": date.to_string(),
        "provider": args.provider,
        "fix": true,
        "file": file,
        "operator": std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).ok(),
    });
    let key = format!(
        "cli-reconcile-{date}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    use super::daemon_api::{CallError, call};
    let headers = [("idempotency-key", key.as_str())];
    match call(
        socket,
        "POST",
        "/v1/reconcile",
        &headers,
        Some(&body),
        DAEMON_FIX_LIMIT,
    )
    .await
    {
        Err(CallError::NoDaemon) => Ok(None),
        Err(CallError::NoAnswer(why)) => Err(format!(
            "the daemon took the fix and did not answer ({why}): what it refunded is in the journal; run the same command again (a refund is never made twice)"
        )),
        Ok((200, v)) => {
            tracing::info!(socket = %socket.display(), "the running daemon reconciled and fixed");
            serde_json::from_value(v)
                .map(Some)
                .map_err(|e| format!("the daemon's answer does not read: {e}"))
        }
        Ok((_, v)) => Err(format!(
            "the daemon refused the fix: {}",
            v["error"]["message"].as_str().unwrap_or("no reason given")
        )),
    }
}

/// How long `--fix` keeps resending a refund in doubt; then the daemon (or the next run)
/// finishes it.
const FIX_IN_LINE_FOR: Duration = Duration::from_secs(60);

/// `--fix` without a daemon: this process opens the journal and refunds, as the daemon would.
async fn fix(config: &Config, r: &reconcile::Reconciliation) -> Result<Vec<Fix>, String> {
    if !r
        .differences
        .iter()
        .any(|d| d.kind == DifferenceKind::PaidOnlyAtProvider)
    {
        return Ok(Vec::new());
    }
    // Refunds are journaled: this needs the journal to itself.
    let engine = super::open_engine(config, Arc::new(LogObserver), FIX_IN_LINE_FOR).map_err(|e| {
        format!("--fix writes the journal: {e}; start the daemon (it does the fix while it runs), or stop the one holding the journal")
    })?;
    Ok(crate::daemon::reconcile::fix(&engine, r).await)
}
