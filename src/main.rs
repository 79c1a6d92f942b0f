//! The `scanpay` binary: logging setup, argument parsing, and the exit status.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let cli = scanpay::cli::Cli::parse();
    // Logs go to stderr (journald under systemd); stdout is for results. The demo is
    // quieter by default because it narrates on its own.
    let default = match cli.command {
        scanpay::cli::Command::Demo { .. } | scanpay::cli::Command::Bench { .. } => {
            LevelFilter::WARN
        }
        _ => LevelFilter::INFO,
    };
    let level = std::env::var("SCANPAY_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(default);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    ExitCode::from(scanpay::cli::run(cli))
}
