//! `scanpay reconcile`: the provider's record of a day against the journal. The Open
//! Platform's trade bill is downloaded (or read from `--file`, a bill zip); an AMS report is
//! read from `--file`. Exit 0 only when both agree, 1 when they differ, 2 when the comparison
//! could not be made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use super::{EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE, ReportFormat, out};
use crate::clock::{Clock, SystemClock, beijing, beijing_day};
use crate::config::{Config, GatewaySettings};
use crate::events::LogObserver;
use crate::gateway::alipay_openapi::OpenApi;
use crate::gateway::{ProviderRecord, alipay_ams, alipay_openapi};
use crate::journal::Journal;
use crate::money::{Amount, Currency};
use crate::reconcile::{self, DifferenceKind, Fix};

pub struct Args {
    pub config: PathBuf,
    pub date: Option<String>,
    pub file: Option<PathBuf>,
    pub format: ReportFormat,
    pub fix: bool,
}

pub async fn run(args: Args) -> u8 {
    match reconcile_day(&args).await {
        Ok(r) => {
            let text = match args.format {
                ReportFormat::Text => reconcile::to_text(&r),
                ReportFormat::Csv => match reconcile::to_csv(&r) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return EXIT_USAGE;
                    }
                },
                ReportFormat::Json => serde_json::to_string(&r).unwrap_or_default(),
            };
            out(text.trim_end());
            if r.matches() { EXIT_OK } else { EXIT_NOT_PAID }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

async fn reconcile_day(args: &Args) -> Result<reconcile::Reconciliation, String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let date = match &args.date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("--date {d:?}: expected YYYY-MM-DD"))?,
        None => previous_day(clock.now()),
    };
    let journal = Journal::open_read_only(&config.journal.path).map_err(|e| e.to_string())?;
    let mut result = compare_day(&config, &journal, date, args.file.clone(), clock).await?;
    drop(journal);
    if args.fix {
        result.fixes = fix(&config, &result).await?;
    }
    Ok(result)
}

/// After `--fix`, the day's stored result (what health shows) counts only what is left.
fn record_fixes(journal: &Journal, r: &reconcile::Reconciliation) {
    let Some(mut last) = reconcile::LastRun::load(journal).ok().flatten() else {
        return;
    };
    if last.date != r.date {
        return;
    }
    let fixed = r.fixes.iter().filter(|f| f.state == "succeeded").count();
    last.differences = last.differences.saturating_sub(fixed);
    last.paid_only_at_provider = last.paid_only_at_provider.saturating_sub(fixed);
    if let Err(e) = last.save(journal) {
        tracing::warn!(error = %e, "cannot record the fixes");
    }
}

/// The provider's last complete day (Beijing time) at `now`.
pub fn previous_day(now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    (now.with_timezone(&beijing()) - chrono::Duration::days(1)).date_naive()
}

/// Compares the provider's record of `date` (`file`, the configured report file, or the
/// downloaded bill) with `journal`.
pub async fn compare_day(
    config: &Config,
    journal: &Journal,
    date: NaiveDate,
    file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<reconcile::Reconciliation, String> {
    let file = file.or_else(|| {
        config
            .reconcile
            .as_ref()
            .and_then(|r| r.report_file_for(date))
    });
    let (source, records) = provider_records(config, date, file.as_ref(), clock).await?;
    let (from, to) = beijing_day(date);
    reconcile::reconcile(
        journal,
        &config.terminal.id,
        date,
        from,
        to,
        &source,
        &records,
    )
    .map_err(|e| e.to_string())
}

/// How long `--fix` keeps resending a refund in doubt; then the daemon (or the next run)
/// finishes it.
const FIX_IN_LINE_FOR: Duration = Duration::from_secs(60);

/// Refunds each payment only the provider recorded, when the journal has its attempt; a
/// payment this journal never made is left to a person (it may be another system's).
async fn fix(config: &Config, r: &reconcile::Reconciliation) -> Result<Vec<Fix>, String> {
    let kept: Vec<_> = r
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::PaidOnlyAtProvider)
        .collect();
    if kept.is_empty() {
        return Ok(Vec::new());
    }
    // Refunds are journaled: this needs the journal to itself.
    let engine = super::open_engine(config, Arc::new(LogObserver), FIX_IN_LINE_FOR).map_err(|e| {
        format!("--fix writes the journal: {e}; stop the daemon (systemctl stop scanpay) for --fix, then start it again")
    })?;
    let mut fixes = Vec::new();
    for d in kept {
        let currency = Currency::from_code(&d.currency).map_err(|e| e.to_string())?;
        let fix = if d.sale_id.is_none() {
            Fix {
                request_id: d.request_id.clone(),
                refund_id: None,
                state: "not_fixed".to_string(),
                detail: "this journal never made the payment: check it with the provider and refund it there".to_string(),
            }
        } else {
            match engine
                .refund_unrecorded_payment(
                    &d.request_id,
                    Amount::from_minor(d.provider_minor, currency),
                )
                .await
            {
                Ok(refund) => Fix {
                    request_id: d.request_id.clone(),
                    refund_id: Some(refund.refund_id.clone()),
                    state: refund.state.to_string(),
                    detail: refund
                        .result_message
                        .clone()
                        .unwrap_or_else(|| "refund sent".to_string()),
                },
                Err(e) => Fix {
                    request_id: d.request_id.clone(),
                    refund_id: None,
                    state: "not_fixed".to_string(),
                    detail: e.to_string(),
                },
            }
        };
        fixes.push(fix);
    }
    let result = reconcile::Reconciliation {
        fixes: fixes.clone(),
        ..r.clone()
    };
    record_fixes(engine.journal(), &result);
    Ok(fixes)
}

async fn provider_records(
    config: &Config,
    date: NaiveDate,
    file: Option<&PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<(String, Vec<ProviderRecord>), String> {
    let read =
        |path: &PathBuf| std::fs::read(path).map_err(|e| format!("--file {}: {e}", path.display()));
    match (&config.gateway, file) {
        (GatewaySettings::Ams(_), Some(path)) => {
            let name = path.display().to_string();
            let records =
                alipay_ams::report::parse(&name, &read(path)?).map_err(|e| e.to_string())?;
            Ok((name, records))
        }
        (GatewaySettings::Ams(_), None) => Err(
            "AMS delivers its transaction reports outside the API: pass the day's report with --file PATH"
                .to_string(),
        ),
        (GatewaySettings::OpenApi(_), Some(path)) => {
            let records =
                alipay_openapi::bill::parse_zip(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path.display().to_string(), records))
        }
        (GatewaySettings::OpenApi(o), None) => {
            let client = OpenApi::new(o.clone(), clock)?;
            let zip = client.download_bill(date).await?;
            let records = alipay_openapi::bill::parse_zip(&zip)
                .map_err(|e| format!("the trade bill for {date}: {e}"))?;
            Ok((format!("the Open Platform trade bill of {date}"), records))
        }
        (GatewaySettings::Sandbox(_), _) => Err(
            "the in-process sandbox keeps no records after the process ends: reconcile against `scanpay sandbox` with the client config it writes"
                .to_string(),
        ),
    }
}

/// After a failed run (bill not ready, gateway unreachable), the daemon tries again this much
/// later, for as long as the day is the same.
const RETRY_AFTER: Duration = Duration::from_secs(30 * 60);
/// The daemon looks at the clock at least this often (a changed time zone, a suspended box).
const CHECK_EVERY: Duration = Duration::from_secs(10 * 60);

/// The daemon's daily reconciliation: at `[reconcile] daily_at` (Beijing time) it compares the
/// provider's previous day with the journal, records the result in the journal, and raises
/// needs-attention when they differ. A run missed while the box was off happens at start.
pub async fn daily(
    config: Config,
    journal: Arc<Journal>,
    observer: Arc<dyn crate::events::Observer>,
    clock: Arc<dyn Clock>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(settings) = config.reconcile.clone() else {
        return;
    };
    loop {
        let now = clock.now();
        let date = previous_day(now);
        let last = reconcile::LastRun::load(&journal).ok().flatten();
        // Beijing time, the provider's: its day ends at midnight there and its bill is ready
        // from about 10:00 there, whatever this machine's time zone.
        let local_now = now.with_timezone(&beijing());
        let due_today = local_now.time() >= settings.daily_at;
        let done = last.as_ref().is_some_and(|l| {
            l.date == date.to_string()
                && (l.error.is_none()
                    || chrono::DateTime::parse_from_rfc3339(&l.ran_at).is_ok_and(|t| {
                        now - t.with_timezone(&chrono::Utc)
                            < chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default()
                    }))
        });
        if due_today && !done {
            // A run only reads and records, so a stop may cut it short: it runs again at
            // the next start.
            tokio::select! {
                _ = run_once(&config, &journal, &*observer, clock.clone(), date) => {}
                _ = stop.cancelled() => return,
            }
        }
        let wait = if due_today {
            CHECK_EVERY
        } else {
            let at = local_now.date_naive().and_time(settings.daily_at);
            (at - local_now.naive_local())
                .to_std()
                .unwrap_or(CHECK_EVERY)
                .min(CHECK_EVERY)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn run_once(
    config: &Config,
    journal: &Journal,
    observer: &dyn crate::events::Observer,
    clock: Arc<dyn Clock>,
    date: NaiveDate,
) {
    let now = clock.now();
    let last = match compare_day(config, journal, date, None, clock).await {
        Ok(r) => {
            let last = reconcile::LastRun::of(&r, now);
            if r.matches() {
                tracing::info!(%date, lines = r.provider_lines, "reconciliation: the provider's record and the journal agree");
            } else {
                tracing::error!(%date, differences = last.differences, paid_only_at_provider = last.paid_only_at_provider, "reconciliation: the provider's record differs from the journal; run scanpay reconcile --date {date}");
                observer.event(&crate::events::Event::ReconciliationMismatch {
                    date: date.to_string(),
                    differences: last.differences,
                    paid_only_at_provider: last.paid_only_at_provider,
                });
            }
            last
        }
        Err(e) => {
            tracing::warn!(%date, error = %e, "reconciliation could not run; trying again later");
            reconcile::LastRun {
                date: date.to_string(),
                ran_at: crate::clock::to_journal(now),
                differences: 0,
                paid_only_at_provider: 0,
                error: Some(e),
            }
        }
    };
    if let Err(e) = last.save(journal) {
        tracing::warn!(error = %e, "cannot record the reconciliation");
    }
}
