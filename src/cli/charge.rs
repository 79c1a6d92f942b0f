//! `scanpay charge`: one complete sale through the configured gateway, with the same
//! inquiry and cancel rules as the daemon; prints the sale as one JSON object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_IN_DOUBT, EXIT_NOT_PAID, EXIT_OK, build_gateway};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{Engine, SaleRequest, ScanOutcome};
use crate::events::LogObserver;
use crate::journal::Journal;
use crate::money::Amount;
use crate::paycode::{Scan, recognise};
use crate::state::SaleState;

/// A one-shot command must end: cancels not confirmed by then stay in the journal and are
/// finished by the next run (or the daemon).
const CANCEL_GIVE_UP_AFTER: Duration = Duration::from_secs(120);

pub struct Args {
    pub config: PathBuf,
    pub amount: String,
    pub code: String,
    pub subject: Option<String>,
    pub reference: Option<String>,
}

pub async fn run(args: Args) -> Exit {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let amount = match Amount::parse(&args.amount, config.terminal.currency) {
        Ok(a) => a,
        Err(e) => return usage(&format!("--amount {:?}: {e}", args.amount)),
    };
    let code = if args.code == "-" {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            return usage(&format!("--code -: cannot read the code from stdin: {e}"));
        }
        line
    } else {
        args.code
    };
    // Refuse a code that is not a payment code before anything is written.
    let wallet = match recognise(&code) {
        Scan::Payment(code) => code.wallet(),
        Scan::Barcode { kind, .. } => {
            return usage(&format!(
                "--code: not a payment code (looks like {kind:?}); scan the customer's payment code"
            ));
        }
        Scan::Garbage { why, .. } => return usage(&format!("--code: not a payment code ({why})")),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = match build_gateway(&config, clock.clone()) {
        Ok(g) => g,
        Err(e) => return usage(&e),
    };
    if !gateway.accepts(wallet) {
        return usage(&format!(
            "--code: a {} code, not accepted by the {} gateway; ask for an accepted wallet",
            wallet.display_name(),
            gateway.name()
        ));
    }
    let journal = match Journal::open(&config.journal.path) {
        Ok(j) => Arc::new(j),
        Err(e) => return usage(&e.to_string()),
    };
    let (mut observers, printer) = crate::output::start(
        &config.led,
        config.printer.clone(),
        &config.terminal.id,
        config.terminal.zone,
    );
    observers.push(Arc::new(LogObserver));
    let engine = Engine::new(
        journal,
        gateway,
        clock,
        Arc::new(crate::events::Fanout(observers)),
        config.engine_settings(Some(CANCEL_GIVE_UP_AFTER), true),
    );
    if let Err(e) = engine.recover().await {
        return Err(Failure::failed(format!("finishing earlier attempts: {e}")));
    }
    let sale = match engine.arm(SaleRequest {
        amount,
        reference: args.reference,
        subject: args.subject,
        idempotency_key: None,
        max_attempts: 1,
        supersede: false,
        basket: Default::default(),
    }) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let sale = match engine.scan(&code).await {
        ScanOutcome::Attempted { sale } => sale,
        ScanOutcome::Unrecorded { sale_id, error } => {
            return Err(Failure::new(
                EXIT_IN_DOUBT,
                format!(
                    "sale {sale_id}: the payment may have gone through but the journal cannot be read ({error}); the next run resolves it"
                ),
            ));
        }
        ScanOutcome::Refused { refusal, .. } => {
            match engine.journal().close_sale(
                &sale.sale_id,
                SaleState::Failed,
                &refusal.to_string(),
                chrono::Utc::now(),
            ) {
                Ok(_) => {}
                Err(e) => eprintln!("error: {e}"),
            }
            engine.view(&sale.sale_id).or_failed()?
        }
        ScanOutcome::Barcode { .. } | ScanOutcome::Garbage { .. } | ScanOutcome::Tested { .. } => {
            // Checked above (and no scan test is armed here); kept for completeness.
            return usage("--code: not a payment code");
        }
    };
    super::out(&crate::api::wire::sale_line(&sale));
    // What this process took at most (`scanpay bench` reads it): VmHWM of its own memory
    // since exec, which a parent's wait cannot tell apart from the parent's own.
    if let Some(kb) = peak_rss_kb() {
        tracing::debug!(peak_rss_kb = kb, "scanpay charge: resident memory at most");
    }
    if let Some(p) = &printer {
        // The receipt of this sale is queued; give the printer a moment before exiting.
        p.flush(std::time::Duration::from_secs(10));
    }
    Ok(if sale.state == SaleState::Paid {
        EXIT_OK
    } else if !sale.state.is_final() {
        eprintln!(
            "in doubt: sale {} may have been charged; the journal keeps it open and the next run (or the daemon) finishes it",
            sale.sale_id
        );
        EXIT_IN_DOUBT
    } else {
        eprintln!(
            "not paid: {} ({})",
            sale.message
                .as_deref()
                .unwrap_or("the payment did not go through"),
            sale.reason.as_deref().unwrap_or(sale.state.as_str())
        );
        EXIT_NOT_PAID
    })
}

fn usage(message: &str) -> Exit {
    Err(Failure::usage(message))
}

/// `VmHWM` of `/proc/self/status`, in KiB: the most this process's memory held resident.
fn peak_rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
