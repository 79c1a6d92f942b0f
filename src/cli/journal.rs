//! `scanpay journal list|show|export`: read the journal without changing it (`verify`,
//! `init`, `backup` and `restore` are in `journal_files.rs`).

use std::path::PathBuf;

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_OK, ExportFormat, JournalCommand, JournalSource, TextFormat, out};
use crate::api::wire::SaleJson;
use crate::clock::{StoreZone, to_journal};
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
            format,
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
            with_journal(&source, |j| list(j, state, limit, format))
        }
        JournalCommand::Show { source, sale_id } => {
            let journal = open(&source)?;
            let Some((sale, attempts, refunds)) = journal.sale_whole(&sale_id).or_failed()? else {
                return Err(Failure::usage(format!(
                    "no sale {sale_id:?} in {}",
                    journal.path().display()
                )));
            };
            let view = SaleView::new(&sale, &attempts).with_refunds(&refunds);
            out(&serde_json::to_string_pretty(&SaleJson::from(&view)).or_failed()?);
            Ok(EXIT_OK)
        }
        JournalCommand::Export {
            source,
            format,
            since,
            date,
        } => {
            let zone = store_zone(&source).or_usage()?;
            let day = |flag: &str, text: &str| {
                crate::clock::parse_date(text).map_err(|e| Failure::usage(format!("{flag}: {e}")))
            };
            let window = match (since.as_deref(), date.as_deref()) {
                (_, Some(d)) => {
                    let (from, to) = zone.day(day("--date", d)?);
                    (Some(from), Some(to))
                }
                (Some(s), None) => (Some(zone.midnight(day("--since", s)?)), None),
                (None, None) => (None, None),
            };
            with_journal(&source, |j| export(j, format, window, zone))
        }
        JournalCommand::Verify { source } => super::journal_files::verify(&source),
        JournalCommand::Init { source, force } => super::journal_files::init(&source, force),
        JournalCommand::Backup { source, dest } => super::journal_files::backup(&source, &dest),
        JournalCommand::Restore { source, src, force } => {
            super::journal_files::restore(&source, &src, force)
        }
    }
}

/// The config a journal-reading command reads: `--config`, else the package's when it is
/// there; none when the journal is named directly.
pub(super) fn source_config(source: &JournalSource) -> Option<PathBuf> {
    let default = std::path::Path::new(super::DEFAULT_CONFIG);
    match (&source.journal, &source.config) {
        (Some(_), _) => None,
        (None, Some(c)) => Some(c.clone()),
        (None, None) => default.exists().then(|| default.to_path_buf()),
    }
}

/// The store's time zone for a command reading the journal: `[terminal] time_zone` of its
/// config, or the host's zone when the journal is named directly.
pub(super) fn store_zone(source: &JournalSource) -> Result<StoreZone, String> {
    match source_config(source) {
        Some(c) => Config::load(&c)
            .map(|config| config.terminal.zone)
            .map_err(|e| e.to_string()),
        None => Ok(StoreZone::Host),
    }
}

/// The journal a command names, by `--journal` or the config's `[journal] path`.
pub(super) fn journal_path(source: &JournalSource) -> Result<PathBuf, String> {
    if let Some(p) = &source.journal {
        return Ok(p.clone());
    }
    let config = source_config(source).ok_or_else(|| {
        format!(
            "no {} here: name the journal with --config FILE or --journal PATH",
            super::DEFAULT_CONFIG
        )
    })?;
    Config::load(&config)
        .map(|config| config.journal.path)
        .map_err(|e| e.to_string())
}

pub(super) fn with_journal(
    source: &JournalSource,
    f: impl FnOnce(&Journal) -> anyhow::Result<u8>,
) -> Exit {
    f(&open(source)?).or_failed()
}

/// The journal a command names, opened to read.
fn open(source: &JournalSource) -> Result<Journal, Failure> {
    let path = journal_path(source).or_usage()?;
    if !path.exists() {
        return Err(Failure::usage(format!(
            "journal {} does not exist",
            path.display()
        )));
    }
    Journal::open_read_only(&path).or_usage()
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

fn list(
    j: &Journal,
    state: Option<SaleState>,
    limit: u32,
    format: TextFormat,
) -> anyhow::Result<u8> {
    let filter = SaleFilter {
        state,
        limit: Some(limit),
        ..SaleFilter::default()
    };
    if format == TextFormat::Json {
        let sales = views(j, &filter)?;
        let sales: Vec<SaleJson> = sales.iter().map(SaleJson::from).collect();
        out(&serde_json::to_string_pretty(&sales)?);
        return Ok(EXIT_OK);
    }
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

fn export(
    j: &Journal,
    format: ExportFormat,
    window: crate::report::Window,
    zone: StoreZone,
) -> anyhow::Result<u8> {
    let (since, until) = window;
    let filter = SaleFilter {
        since,
        until,
        ..SaleFilter::default()
    };
    let mut sales = views(j, &filter)?;
    sales.reverse(); // oldest first reads like a ledger
    match format {
        ExportFormat::Json => {
            let sales: Vec<SaleJson> = sales.iter().map(SaleJson::from).collect();
            out(&serde_json::to_string_pretty(&sales)?);
        }
        ExportFormat::Csv => out(crate::report::export_csv(j, &sales, window, zone)?.trim_end()),
    }
    Ok(EXIT_OK)
}
