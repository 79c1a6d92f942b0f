//! `scanpay refund --config FILE SALE_ID --amount A`: refund (part of) a paid sale through
//! its gateway; the refund is journaled before it is sent and resent under the same id until
//! its outcome is known. Prints the refund as one JSON object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_IN_DOUBT, EXIT_NOT_PAID, EXIT_OK};
use crate::config::Config;
use crate::engine::EngineError;
use crate::events::LogObserver;
use crate::journal::JournalError;
use crate::money::Amount;
use crate::state::RefundState;

/// How long the command keeps resending a refund in doubt; then the next run (or the
/// daemon) finishes it.
const REFUND_IN_LINE_FOR: Duration = Duration::from_secs(60);

pub struct Args {
    pub config: PathBuf,
    pub sale_id: String,
    pub amount: String,
    pub reason: Option<String>,
}

pub async fn run(args: Args) -> Exit {
    let config = Config::load(&args.config).or_usage()?;
    let amount = Amount::parse(&args.amount, config.terminal.currency)
        .map_err(|e| Failure::usage(format!("--amount {:?}: {e}", args.amount)))?;
    let engine =
        super::open_engine(&config, Arc::new(LogObserver), REFUND_IN_LINE_FOR).or_usage()?;
    match engine.refund(&args.sale_id, amount, args.reason).await {
        Ok(refund) => {
            super::out(&crate::api::wire::refund_line(&refund));
            Ok(match refund.state {
                RefundState::Succeeded => EXIT_OK,
                RefundState::Failed => EXIT_NOT_PAID,
                RefundState::Pending | RefundState::Unknown => EXIT_IN_DOUBT,
            })
        }
        // Refused before anything was sent: wrong sale, wrong amount.
        Err(EngineError::Journal(e @ (JournalError::NoSale(_) | JournalError::Refund { .. }))) => {
            Err(Failure::usage(e))
        }
        Err(e @ EngineError::BadText(..)) => Err(Failure::usage(e)),
        Err(e) => Err(Failure::new(EXIT_IN_DOUBT, e)),
    }
}
