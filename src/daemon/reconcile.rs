//! The daemon's daily reconciliation, and the provider's records a config points at (the
//! downloaded trade bill, or an AMS report file), which `scanpay reconcile` reads too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::clock::{Clock, beijing, beijing_day};
use crate::config::{Config, GatewaySettings};
use crate::engine::Engine;
use crate::gateway::alipay_openapi::OpenApi;
use crate::gateway::{ProviderRecord, alipay_ams, alipay_openapi, wechat_pay};
use crate::journal::Journal;
use crate::money::{Amount, Currency};
use crate::reconcile::{self, DifferenceKind, Fix};

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
    compare_day_of(config, &config.gateway, journal, date, file, clock).await
}

/// [`compare_day`] with the records of `provider`, one of the configured gateways, compared
/// with the attempts that went to it.
pub async fn compare_day_of(
    config: &Config,
    provider: &GatewaySettings,
    journal: &Journal,
    date: NaiveDate,
    file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<reconcile::Reconciliation, String> {
    // The configured report file is the first gateway's.
    let file = file.or_else(|| {
        config
            .reconcile
            .as_ref()
            .filter(|_| std::ptr::eq(provider, &config.gateway))
            .and_then(|r| r.report_file_for(date))
    });
    let (source, records) = provider_records(provider, date, file.as_ref(), clock).await?;
    let (from, to) = beijing_day(date);
    // With several gateways, the provider's records are compared with its own attempts.
    let gateway = (!config.other_gateways.is_empty()).then(|| provider.kind().as_str());
    reconcile::reconcile_gateway(
        journal,
        &config.terminal.id,
        gateway,
        config.terminal.zone,
        date,
        from,
        to,
        &source,
        &records,
    )
    .map_err(|e| e.to_string())
}

async fn provider_records(
    provider: &GatewaySettings,
    date: NaiveDate,
    file: Option<&PathBuf>,
    clock: Arc<dyn Clock>,
) -> Result<(String, Vec<ProviderRecord>), String> {
    let read =
        |path: &PathBuf| read_record(path).map_err(|e| format!("--file {}: {e}", path.display()));
    match (provider, file) {
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
        (GatewaySettings::Wechat(_), Some(path)) => {
            let records = wechat_pay::bill::parse(&read(path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path.display().to_string(), records))
        }
        (GatewaySettings::Wechat(w), None) => {
            let client = wechat_pay::WechatPay::new(w.clone(), clock)?;
            let bytes = client.download_bill(date).await?;
            let records = wechat_pay::bill::parse(&bytes)
                .map_err(|e| format!("the WeChat Pay trade bill for {date}: {e}"))?;
            Ok((format!("the WeChat Pay trade bill of {date}"), records))
        }
        (GatewaySettings::Sandbox(_), _) => Err(
            "the in-process sandbox keeps no records after the process ends: reconcile against `scanpay sandbox` with the client config it writes"
                .to_string(),
        ),
    }
}

/// Largest provider record file read: a day's bill or report is far smaller.
const MAX_RECORD_FILE: u64 = 64 * 1024 * 1024;

/// A provider's record file: one open, a regular file, at most [`MAX_RECORD_FILE`] bytes
/// (a device or a pipe named by mistake is refused, not read forever).
fn read_record(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_FILE {
        return Err(std::io::Error::other(
            "larger than 64 MiB: not a day's record",
        ));
    }
    Ok(bytes)
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
    // Each provider's record against its own attempts; one record of the day for all.
    let mut last = reconcile::LastRun {
        date: date.to_string(),
        ran_at: crate::clock::to_journal(now),
        differences: 0,
        paid_only_at_provider: 0,
        error: None,
    };
    for provider in config.gateways() {
        let kind = provider.kind().as_str();
        match compare_day_of(config, provider, journal, date, None, clock.clone()).await {
            Ok(r) => {
                let one = reconcile::LastRun::of(&r, now);
                if r.matches() {
                    tracing::info!(%date, gateway = kind, lines = r.provider_lines, "reconciliation: the provider's record and the journal agree");
                } else {
                    tracing::error!(%date, gateway = kind, differences = one.differences, paid_only_at_provider = one.paid_only_at_provider, "reconciliation: the provider's record differs from the journal; run scanpay reconcile --date {date}");
                    observer.event(&crate::events::Event::ReconciliationMismatch {
                        date: date.to_string(),
                        differences: one.differences,
                        paid_only_at_provider: one.paid_only_at_provider,
                    });
                }
                last.differences += one.differences;
                last.paid_only_at_provider += one.paid_only_at_provider;
            }
            Err(e) => {
                tracing::warn!(%date, gateway = kind, error = %e, "reconciliation could not run; trying again later");
                let e = if config.other_gateways.is_empty() {
                    e
                } else {
                    format!("{kind}: {e}")
                };
                last.error = Some(match last.error.take() {
                    Some(before) => format!("{before}; {e}"),
                    None => e,
                });
            }
        }
    }
    if let Err(e) = last.save(journal) {
        tracing::warn!(error = %e, "cannot record the reconciliation");
    }
}

/// The configured gateway whose records `name` asks for: `alipay` or `wechat`; the first
/// gateway when `None`.
pub fn provider_named<'c>(
    config: &'c Config,
    name: Option<&str>,
) -> Result<&'c GatewaySettings, String> {
    let Some(name) = name else {
        return Ok(&config.gateway);
    };
    config
        .gateways()
        .find(|g| match name {
            "wechat" => g.kind() == crate::config::GatewayKind::WechatPay,
            "alipay" => g.kind() != crate::config::GatewayKind::WechatPay,
            _ => false,
        })
        .ok_or_else(|| {
            format!(
                "{name:?}: no such gateway in {} (alipay or wechat)",
                config.source
            )
        })
}

/// After a fix, the day's stored result (what health shows) counts only what is left.
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

/// Refunds each payment only the provider recorded, when the journal has its attempt; a
/// payment this journal never made is left to a person (it may be another system's). Each
/// refund is journaled before it is sent and made at most once, however often this runs
/// (`Engine::refund_unrecorded_payment`): the CLI's `--fix` and the API's do the same.
pub async fn fix(engine: &Engine, r: &reconcile::Reconciliation) -> Vec<Fix> {
    let mut fixes = Vec::new();
    for d in r
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::PaidOnlyAtProvider)
    {
        let not_fixed = |detail: String| Fix {
            request_id: d.request_id.clone(),
            refund_id: None,
            state: "not_fixed".to_string(),
            detail,
        };
        let fix = match (d.sale_id.as_ref(), Currency::from_code(&d.currency)) {
            (None, _) => not_fixed("this journal never made the payment: check it with the provider and refund it there".to_string()),
            (Some(_), Err(e)) => not_fixed(e.to_string()),
            (Some(_), Ok(currency)) => match engine
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
                Err(e) => not_fixed(e.to_string()),
            },
        };
        fixes.push(fix);
    }
    let result = reconcile::Reconciliation {
        fixes: fixes.clone(),
        ..r.clone()
    };
    record_fixes(engine.journal(), &result);
    fixes
}
