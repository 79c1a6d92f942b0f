//! `scanpay run --config FILE [--stdin]`: loads the config and runs the daemon (`daemon/`).

use std::path::PathBuf;

use super::EXIT_OK;
use super::exit::{Exit, Failure, OrExit};
use crate::config::Config;

pub struct Args {
    pub config: PathBuf,
    pub stdin: bool,
}

pub async fn run(args: Args) -> Exit {
    let config = Config::load(&args.config).or_usage()?;
    match crate::daemon::run(config, args.stdin).await {
        Ok(()) => Ok(EXIT_OK),
        Err(e @ crate::daemon::Error::Usage(_)) => Err(Failure::usage(e)),
        Err(e @ crate::daemon::Error::Failed(_)) => Err(Failure::failed(e)),
    }
}
