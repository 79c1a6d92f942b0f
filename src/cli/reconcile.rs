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
use crate::config::{Config, GatewayKind};
use crate::events::LogObserver;
use crate::journal::Journal;
use crate::money::{Amount, Currency};
use crate::reconcile::{self, DifferenceKind, Fix, ProviderRecord};

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
    // The provider's day is a Beijing-time day; by default yesterday's, the last complete one.
    let date = match &args.date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("--date {d:?}: expected YYYY-MM-DD"))?,
        None => (clock.now().with_timezone(&beijing()) - chrono::Duration::days(1)).date_naive(),
    };
    let (source, records) = provider_records(&config, date, args.file.as_ref(), clock).await?;
    let journal = Journal::open_read_only(&config.journal.path).map_err(|e| e.to_string())?;
    let (from, to) = beijing_day(date);
    let mut result = reconcile::reconcile(
        &journal,
        &config.terminal.id,
        date,
        from,
        to,
        &source,
        &records,
    )
    .map_err(|e| e.to_string())?;
    drop(journal);
    if args.fix {
        result.fixes = fix(&config, &result).await?;
    }
    Ok(result)
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
    match (config.gateway.kind, file) {
        (GatewayKind::AlipayAms, Some(path)) => {
            let name = path.display().to_string();
            let records =
                reconcile::ams_report::parse(&name, &read(path)?).map_err(|e| e.to_string())?;
            Ok((name, records))
        }
        (GatewayKind::AlipayAms, None) => Err(
            "AMS delivers its transaction reports outside the API: pass the day's report with --file PATH"
                .to_string(),
        ),
        (GatewayKind::AlipayOpenapi, Some(path)) => {
            let records =
                reconcile::alipay_bill::parse_zip(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path.display().to_string(), records))
        }
        (GatewayKind::AlipayOpenapi, None) => {
            let o = config.gateway.openapi.as_ref().ok_or_else(|| {
                format!("{}: [gateway] kind = \"alipay-openapi\" without its keys", config.source)
            })?;
            let client = super::openapi_client(o, config.gateway.timeout, clock)?;
            let zip = client.download_bill(date).await?;
            let records = reconcile::alipay_bill::parse_zip(&zip)
                .map_err(|e| format!("the trade bill for {date}: {e}"))?;
            Ok((format!("the Open Platform trade bill of {date}"), records))
        }
        (GatewayKind::Sandbox, _) => Err(
            "the in-process sandbox keeps no records after the process ends: reconcile against `scanpay sandbox` with the client config it writes"
                .to_string(),
        ),
    }
}
