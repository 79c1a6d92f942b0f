//! The `scanpay` binary: logging setup, argument parsing, and the exit status.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let cli = scanpay::cli::Cli::parse();
    // Logs go to stderr (journald under systemd); stdout is for results. The demo narrates
    // on its own, so its logs go to a file it names; bench only warns.
    let demo = matches!(cli.command, scanpay::cli::Command::Demo { .. });
    let default = match cli.command {
        scanpay::cli::Command::Bench { .. } => LevelFilter::WARN,
        _ => LevelFilter::INFO,
    };
    let level = match std::env::var("SCANPAY_LOG") {
        Err(_) => default,
        Ok(v) if v.trim().is_empty() => default,
        Ok(v) => match v.trim().parse::<LevelFilter>() {
            Ok(level) => level,
            Err(_) => {
                eprintln!(
                    "error: SCANPAY_LOG={v:?} is not a log level: use one of off, error, warn, info, debug, trace (or leave it unset for info)"
                );
                return ExitCode::from(scanpay::cli::EXIT_USAGE);
            }
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    if demo {
        match scanpay::cli::open_demo_log() {
            Ok(file) => builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init(),
            Err(e) => {
                eprintln!("error: cannot write the demo's log in the temporary directory: {e}");
                return ExitCode::from(scanpay::cli::EXIT_FAILED);
            }
        }
    } else if let Some(journald) = journald() {
        // Under systemd (it sets JOURNAL_STREAM when stderr is the journal): straight to
        // journald, each field its own journal field (REQUEST_ID, SALE_ID, ATTEMPT_STATE, …;
        // docs/operations.md §5), instead of text on stderr that journald would store whole.
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(journald.with_filter(level))
            .init();
    } else {
        builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
    ExitCode::from(scanpay::cli::run(cli))
}

/// The journald layer, when stderr goes to the journal and its socket answers.
fn journald() -> Option<tracing_journald::Layer> {
    // systemd sets JOURNAL_STREAM to the device and inode of the journal stream; a process
    // started from a shell that merely inherited it has another stderr (systemd.exec(5)).
    let stream = std::env::var("JOURNAL_STREAM").ok()?;
    let (dev, ino) = stream.split_once(':')?;
    let stat = nix::sys::stat::fstat(std::io::stderr()).ok()?;
    if dev.parse::<u64>().ok()? != stat.st_dev || ino.parse::<u64>().ok()? != stat.st_ino {
        return None;
    }
    match tracing_journald::layer() {
        Ok(layer) => Some(
            layer
                .with_field_prefix(None)
                .with_syslog_identifier("scanpay".to_string()),
        ),
        Err(e) => {
            eprintln!("warning: journald's socket does not answer ({e}): logging to stderr");
            None
        }
    }
}
