//! `scanpay refund --config FILE SALE_ID --amount A`: refund (part of) a paid sale through
//! its gateway; the refund is journaled before it is sent and resent under the same id until
//! its outcome is known. Prints the refund as one JSON object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{EXIT_IN_DOUBT, EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE, build_gateway};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{Engine, EngineError, EngineSettings};
use crate::events::LogObserver;
use crate::journal::{Journal, JournalError};
use crate::money::Amount;
use crate::state::RefundState;

pub struct Args {
    pub config: PathBuf,
    pub sale_id: String,
    pub amount: String,
    pub reason: Option<String>,
}

pub async fn run(args: Args) -> u8 {
    let usage = |m: String| {
        eprintln!("error: {m}");
        EXIT_USAGE
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    let amount = match Amount::parse(&args.amount, config.terminal.currency) {
        Ok(a) => a,
        Err(e) => return usage(format!("--amount {:?}: {e}", args.amount)),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = match build_gateway(&config, clock.clone()) {
        Ok(g) => g,
        Err(e) => return usage(e),
    };
    let journal = match Journal::open(&config.journal.path) {
        Ok(j) => Arc::new(j),
        Err(e) => return usage(e.to_string()),
    };
    let engine = Engine::new(
        journal,
        gateway,
        clock,
        Arc::new(LogObserver),
        EngineSettings {
            terminal: config.terminal.clone(),
            timeout: config.gateway.timeout,
            watchdog: config.watchdog.clone(),
            cancel_give_up_after: Some(Duration::from_secs(60)),
            resolve_inline: true,
        },
    );
    match engine.refund(&args.sale_id, amount, args.reason).await {
        Ok(refund) => {
            super::out(&refund.to_json_line());
            match refund.state {
                RefundState::Succeeded => EXIT_OK,
                RefundState::Failed => EXIT_NOT_PAID,
                RefundState::Pending | RefundState::Unknown => EXIT_IN_DOUBT,
            }
        }
        // Refused before anything was sent: wrong sale, wrong amount.
        Err(EngineError::Journal(e @ (JournalError::NoSale(_) | JournalError::Refund { .. }))) => {
            usage(e.to_string())
        }
        Err(e @ EngineError::BadText(..)) => usage(e.to_string()),
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_IN_DOUBT
        }
    }
}
