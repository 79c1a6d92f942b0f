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
use crate::money::{Amount, Currency};
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
    let journal = Journal::open_read_only(&config.journal.path).map_err(|e| e.to_string())?;
    let provider = match args.provider.as_deref() {
        None => &config.gateway,
        Some(name) => config
            .gateways()
            .find(|g| match name {
                "wechat" => g.kind() == crate::config::GatewayKind::WechatPay,
                "alipay" => g.kind() != crate::config::GatewayKind::WechatPay,
                _ => false,
            })
            .ok_or_else(|| {
                format!(
                    "--provider {name:?}: no such gateway in {} (alipay or wechat)",
                    config.source
                )
            })?,
    };
    let mut result =
        compare_day_of(&config, provider, &journal, date, args.file.clone(), clock).await?;
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
