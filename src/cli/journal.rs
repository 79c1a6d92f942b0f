//! `scanpay journal list|show|export`: read the journal without changing it (`verify`,
//! `init`, `backup` and `restore` are in `journal_files.rs`).

use std::path::PathBuf;

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_OK, ExportFormat, JournalCommand, JournalSource, out};
use crate::api::wire::SaleJson;
use crate::clock::to_journal;
use crate::config::Config;
use crate::journal::{Journal, SaleFilter};
use crate::state::SaleState;
use crate::view::SaleView;

pub fn run(command: JournalCommand) -> Exit {
    match command {
        JournalCommand::List {
            source,
            state,
            limit,
        } => {
            let state = match state.as_deref().map(|s| (s, SaleState::parse(s))) {
                None => None,
                Some((_, Some(s))) => Some(s),
                Some((s, None)) => {
                    return Err(Failure::usage(format!(
                        "--state {s:?}: use one of awaiting_scan, processing, paid, failed, cancelled, expired"
                    )));
                }
            };
            with_journal(&source, |j| list(j, state, limit))
        }
        JournalCommand::Show { source, sale_id } => with_journal(&source, |j| show(j, &sale_id)),
        JournalCommand::Export {
            source,
            format,
            since,
        } => {
            let since = since
                .as_deref()
                .map(parse_day)
                .transpose()
                .map_err(|e| Failure::usage(format!("--since: {e}")))?;
            with_journal(&source, |j| export(j, format, since))
        }
        JournalCommand::Verify { source } => super::journal_files::verify(&source),
        JournalCommand::Init { source, force } => super::journal_files::init(&source, force),
        JournalCommand::Backup { source, dest } => super::journal_files::backup(&source, &dest),
        JournalCommand::Restore { source, src, force } => {
            super::journal_files::restore(&source, &src, force)
        }
    }
}

fn parse_day(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date like 2026-11-22 ({e})"))?;
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The journal a command names, by `--journal` or the config's `[journal] path`.
pub(super) fn journal_path(source: &JournalSource) -> Result<PathBuf, String> {
    match (&source.journal, &source.config) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(c)) => Config::load(c)
            .map(|config| config.journal.path)
            .map_err(|e| e.to_string()),
        (None, None) => Err("name the journal with --config FILE or --journal PATH".into()),
    }
}

pub(super) fn with_journal(
    source: &JournalSource,
    f: impl FnOnce(&Journal) -> anyhow::Result<u8>,
) -> Exit {
    let path = journal_path(source).or_usage()?;
    if !path.exists() {
        return Err(Failure::usage(format!(
            "journal {} does not exist",
            path.display()
        )));
    }
    let journal = Journal::open_read_only(&path).or_usage()?;
    f(&journal).or_failed()
}

fn views(j: &Journal, filter: &SaleFilter) -> anyhow::Result<Vec<SaleView>> {
    let sales = j.sales(filter)?;
    sales
        .iter()
        .map(|s| {
            let attempts = j.attempts(&s.id)?;
            let refunds = j.refunds(&s.id)?;
            Ok(SaleView::new(s, &attempts).with_refunds(&refunds))
        })
        .collect()
}

fn list(j: &Journal, state: Option<SaleState>, limit: u32) -> anyhow::Result<u8> {
    let filter = SaleFilter {
        state,
        limit: Some(limit),
        ..SaleFilter::default()
    };
    out(&format!(
        "{:<22} {:<24} {:<13} {:>14} {:<3} {:>3}  reason",
        "sale", "created", "state", "amount", "", "try"
    ));
    for v in views(j, &filter)? {
        out(&format!(
            "{:<22} {:<24} {:<13} {:>14} {:<3} {:>3}  {}",
            v.sale_id,
            to_journal(v.created_at),
            v.state.as_str(),
            v.amount.to_major_string(),
            v.amount.currency().code(),
            v.attempts.len(),
            v.reason.as_deref().unwrap_or("")
        ));
    }
    Ok(EXIT_OK)
}

fn show(j: &Journal, sale_id: &str) -> anyhow::Result<u8> {
    let Some((sale, attempts, refunds)) = j.sale_whole(sale_id)? else {
        anyhow::bail!("no sale {sale_id:?} in {}", j.path().display());
    };
    let view = SaleView::new(&sale, &attempts).with_refunds(&refunds);
    out(&serde_json::to_string_pretty(&SaleJson::from(&view))?);
    Ok(EXIT_OK)
}

fn export(
    j: &Journal,
    format: ExportFormat,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<u8> {
    let filter = SaleFilter {
        since,
        ..SaleFilter::default()
    };
    let mut sales = views(j, &filter)?;
    sales.reverse(); // oldest first reads like a ledger
    match format {
        ExportFormat::Json => {
            let sales: Vec<SaleJson> = sales.iter().map(SaleJson::from).collect();
            out(&serde_json::to_string_pretty(&sales)?);
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            let header = [
                "sale_id",
                "created_at",
                "sale_state",
                "amount",
                "currency",
                "reference",
                "subject",
                "attempt",
                "request_id",
                "attempt_state",
                "result_code",
                "code",
                "wallet",
                "gateway_trade_id",
                "paid_then_refunded",
                "reason",
            ];
            w.write_record(header)?;
            for s in &sales {
                let (created_at, amount) = (to_journal(s.created_at), s.amount.to_major_string());
                let sale_cols = [
                    s.sale_id.as_str(),
                    created_at.as_str(),
                    s.state.as_str(),
                    amount.as_str(),
                    s.amount.currency().code(),
                    s.reference.as_deref().unwrap_or(""),
                    s.subject.as_str(),
                ];
                let reason = s.reason.as_deref().unwrap_or("");
                if s.attempts.is_empty() {
                    let mut row: Vec<&str> = sale_cols.to_vec();
                    row.extend(["", "", "", "", "", "", "", "", reason]);
                    w.write_record(&row)?;
                }
                for (i, a) in s.attempts.iter().enumerate() {
                    let seq = (i + 1).to_string();
                    let mut row: Vec<&str> = sale_cols.to_vec();
                    row.extend([
                        seq.as_str(),
                        a.request_id.as_str(),
                        a.state.as_str(),
                        a.result_code.as_deref().unwrap_or(""),
                        a.code.as_str(),
                        a.wallet.as_str(),
                        a.gateway_trade_id.as_deref().unwrap_or(""),
                        if a.paid_then_refunded {
                            "true"
                        } else {
                            "false"
                        },
                        reason,
                    ]);
                    w.write_record(&row)?;
                }
            }
            w.flush()?;
        }
    }
    Ok(EXIT_OK)
}
