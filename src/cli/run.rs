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
    // On a worker of the runtime, not the thread that waits for it: the tasks a scan wakes
    // (the HTTP connection that sends the pay request) then run on the same worker right
    // after, instead of waiting for another thread to be woken.
    let ended = match tokio::spawn(crate::daemon::run(config, args.stdin)).await {
        Ok(ended) => ended,
        // A panic goes on as it would have in this thread.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return Err(Failure::failed(format!("the daemon stopped: {e}"))),
    };
    match ended {
        Ok(()) => Ok(EXIT_OK),
        Err(e @ crate::daemon::Error::Usage(_)) => Err(Failure::usage(e)),
        Err(e @ crate::daemon::Error::Failed(_)) => Err(Failure::failed(e)),
    }
}
