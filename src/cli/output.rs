//! `scanpay report` and `scanpay reprint`.

use std::path::Path;

use super::journal::with_journal;
use super::{EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE, JournalSource, ReportFormat, out};
use crate::config::Config;
use crate::journal::Journal;
use crate::output::printer::{PrinterQueue, send};
use crate::view::SaleView;

pub fn report(source: &JournalSource, date: Option<&str>, format: ReportFormat, print: bool) -> u8 {
    let date = match date {
        None => chrono::Local::now().date_naive(),
        Some(d) => match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: --date {d:?}: a date like 2026-11-22 ({e})");
                return EXIT_USAGE;
            }
        },
    };
    let printer = if print {
        let Some(path) = &source.config else {
            eprintln!("error: --print needs --config (the [printer] to use)");
            return EXIT_USAGE;
        };
        match Config::load(path) {
            Ok(c) => match c.printer {
                Some(p) => Some(p),
                None => {
                    eprintln!("error: {}: no [printer] section to print on", c.source);
                    return EXIT_USAGE;
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    } else {
        None
    };
    with_journal(source, |j| {
        let r = crate::report::day_report(j, date).map_err(|e| e.to_string())?;
        match format {
            ReportFormat::Text => out(crate::report::text(&r).trim_end()),
            ReportFormat::Csv => out(crate::report::csv(&r)?.trim_end()),
            ReportFormat::Json => {
                out(&serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?)
            }
        }
        if let Some(p) = printer {
            send(&p.kind, &crate::report::escpos(&r, &p.receipt))
                .map_err(|e| format!("printing: {e}"))?;
        }
        Ok(EXIT_OK)
    })
}

pub fn reprint(config: &Path, sale_id: &str) -> u8 {
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let Some(printer) = config.printer.clone() else {
        eprintln!("error: {}: no [printer] section", config.source);
        return EXIT_USAGE;
    };
    let journal = match Journal::open_read_only(&config.journal.path) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let view = match journal.sale_whole(sale_id) {
        Ok(Some((sale, attempts, refunds))) => {
            SaleView::new(&sale, &attempts).with_refunds(&refunds)
        }
        Ok(None) => {
            eprintln!("error: no sale {sale_id:?} in {}", journal.path().display());
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_NOT_PAID;
        }
    };
    let queue = PrinterQueue::start(printer.clone());
    for slip in queue.sale_slips(&view) {
        if let Err(e) = send(&printer.kind, &slip) {
            eprintln!("error: printing: {e}; check the printer (paper, power, cable)");
            return EXIT_NOT_PAID;
        }
    }
    EXIT_OK
}
