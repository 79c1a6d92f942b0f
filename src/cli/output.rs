//! `scanpay report` and `scanpay reprint`.

use std::path::Path;

use super::exit::{Exit, Failure, OrExit};
use super::journal::with_journal;
use super::{EXIT_OK, JournalSource, ReportFormat, out};
use crate::config::Config;
use crate::journal::Journal;
use crate::output::printer::{PrinterQueue, send};
use crate::view::SaleView;

/// `scanpay report --shift N`: the shift's kept Z-report (a reprint, the same bytes as at
/// its close), or an X-report of it while it is open.
pub fn shift_report(source: &JournalSource, id: i64, format: ReportFormat, print: bool) -> Exit {
    let zone = super::journal::store_zone(source).or_usage()?;
    let printer = printer_of(source, print)?;
    if format == ReportFormat::Csv {
        return Err(Failure::usage("--shift: text or JSON (--format text|json)"));
    }
    with_journal(source, |j| {
        let Some(shift) = j.shift(id)? else {
            return Err(anyhow::anyhow!("no shift {id} in {}", j.path().display()));
        };
        let r = if shift.closed_at.is_some() {
            crate::report::shift::kept(j, id)?
        } else {
            crate::report::shift::shift_report(j, &shift, chrono::Utc::now(), None, zone)?
        };
        match format {
            ReportFormat::Json => out(&serde_json::to_string_pretty(&r)?),
            _ => out(crate::report::shift::text(&r).trim_end()),
        }
        if let Some(p) = printer {
            send(&p.kind, &crate::report::shift::escpos(&r, &p.receipt))
                .map_err(|e| anyhow::anyhow!("printing: {e}"))?;
        }
        Ok(EXIT_OK)
    })
}

/// The [printer] of `source`'s --config when `print` asks for it.
fn printer_of(
    source: &JournalSource,
    print: bool,
) -> Result<Option<crate::output::printer::PrinterConfig>, Failure> {
    if !print {
        return Ok(None);
    }
    let path = source
        .config
        .as_ref()
        .ok_or_else(|| Failure::usage("--print needs --config (the [printer] to use)"))?;
    let c = Config::load(path).or_usage()?;
    let p = c
        .printer
        .ok_or_else(|| Failure::usage(format!("{}: no [printer] section to print on", c.source)))?;
    Ok(Some(p))
}

pub fn report(
    source: &JournalSource,
    date: Option<&str>,
    format: ReportFormat,
    print: bool,
) -> Exit {
    let zone = super::journal::store_zone(source).or_usage()?;
    let date = match date {
        None => zone.date_of(chrono::Utc::now()),
        Some(d) => {
            crate::clock::parse_date(d).map_err(|e| Failure::usage(format!("--date: {e}")))?
        }
    };
    let printer = printer_of(source, print)?;
    with_journal(source, |j| {
        let r = crate::report::day_report(j, date, zone)?;
        match format {
            ReportFormat::Text => out(crate::report::text(&r).trim_end()),
            ReportFormat::Csv => out(crate::report::csv(&r)
                .map_err(anyhow::Error::msg)?
                .trim_end()),
            ReportFormat::Json => out(&serde_json::to_string_pretty(&r)?),
        }
        if let Some(p) = printer {
            send(&p.kind, &crate::report::escpos(&r, &p.receipt))
                .map_err(|e| anyhow::anyhow!("printing: {e}"))?;
        }
        Ok(EXIT_OK)
    })
}

pub fn reprint(config: &Path, sale_id: &str) -> Exit {
    let config = Config::load(config).or_usage()?;
    let printer = config
        .printer
        .clone()
        .ok_or_else(|| Failure::usage(format!("{}: no [printer] section", config.source)))?;
    let journal = Journal::open_read_only(&config.journal.path).or_usage()?;
    let (sale, attempts, refunds) = journal.sale_whole(sale_id).or_failed()?.ok_or_else(|| {
        Failure::usage(format!(
            "no sale {sale_id:?} in {}",
            journal.path().display()
        ))
    })?;
    let view = SaleView::new(&sale, &attempts).with_refunds(&refunds);
    let queue = PrinterQueue::start(printer.clone());
    for slip in queue.sale_slips(&view) {
        send(&printer.kind, &slip).map_err(|e| {
            Failure::failed(format!(
                "printing: {e}; check the printer (paper, power, cable)"
            ))
        })?;
    }
    Ok(EXIT_OK)
}
