//! `scanpay run --config FILE [--stdin]`: loads the config and runs the daemon (`daemon/`).

use std::path::PathBuf;

use super::{EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE};
use crate::config::Config;

pub struct Args {
    pub config: PathBuf,
    pub stdin: bool,
}

pub async fn run(args: Args) -> u8 {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match crate::daemon::run(config, args.stdin).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                crate::daemon::Error::Usage(_) => EXIT_USAGE,
                crate::daemon::Error::Failed(_) => EXIT_NOT_PAID,
            }
        }
    }
}
