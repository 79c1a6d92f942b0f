//! The `scanpay` commands. `main.rs` only parses and calls [`run`]; each command lives in
//! its own module and returns the process exit status.

mod bench;
mod charge;
mod check;
mod demo;
mod exit;
mod journal;
mod journal_files;
mod output;
mod reconcile;
mod refund;
mod run;
pub mod sandbox;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::daemon::wiring::{build_gateway, open_engine};

/// Exit status: the sale was paid / the command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status: the sale was not paid (or the command found a problem).
pub const EXIT_NOT_PAID: u8 = 1;
/// Exit status: usage or configuration error; nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the payment is in doubt (may have been charged); the journal keeps the
/// attempt open and the next run (or the daemon) resolves it. Not "not paid".
pub const EXIT_IN_DOUBT: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "scanpay",
    version,
    about = "Point-of-sale payment daemon for Alipay payment codes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Try scanpay with no hardware and no config: the sandbox gateway, a temporary journal,
    /// stdin as the scanner (a line like 12.50 starts a sale, a line of digits is a scan)
    Demo {
        /// Keep the journal in this file instead of a temporary one
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// Take one payment: charge CODE for AMOUNT through the configured gateway and print the
    /// sale as JSON. Exit 0 paid, 1 not paid, 2 usage or config error, 3 still in doubt
    Charge {
        #[arg(long)]
        config: PathBuf,
        /// Amount in major units, e.g. 12.50
        #[arg(long)]
        amount: String,
        /// The payment code scanned from the customer's wallet; `-` reads it from stdin, which
        /// keeps it out of the process list
        #[arg(long)]
        code: String,
        #[arg(long)]
        subject: Option<String>,
        /// The register's own reference for the sale
        #[arg(long)]
        reference: Option<String>,
    },
    /// The daemon: take sales and scans, resolve every payment in doubt, through restarts and
    /// outages. Stops cleanly on SIGTERM
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Take amounts and scans as lines on stdin (as the demo does) and print each finished
        /// sale as a JSON line; ends at end of input
        #[arg(long)]
        stdin: bool,
    },
    /// Show the journal's state: sales by state, payments in doubt, what needs a person, and
    /// the gateway's reachability as the daemon last saw it
    Status {
        #[command(flatten)]
        source: JournalSource,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Refund (part of) a paid sale through its gateway and print the refund as JSON. Exit 0
    /// refunded, 1 refused, 2 usage error (nothing sent), 3 still in doubt
    Refund {
        #[arg(long)]
        config: PathBuf,
        sale_id: String,
        /// Amount in major units, at most what is left of the payment
        #[arg(long)]
        amount: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// The end-of-day report: counts and sums by state and currency, refunds, what is in
    /// doubt or needs a person; --print sends it to the receipt printer as a Z-report
    Report {
        #[command(flatten)]
        source: JournalSource,
        /// Local date, YYYY-MM-DD; default today
        #[arg(long)]
        date: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Also print it on the [printer] of --config
        #[arg(long)]
        print: bool,
    },
    /// Measure speed and footprint against baselines taken in the same run (fsync, RSA
    /// signing); prints a table and one JSON line. Also qualifies a new box's disk
    Bench {
        /// Fewer rounds and a smaller journal: finishes within a minute
        #[arg(long)]
        quick: bool,
        /// Directory on the disk to measure (work files go in a temporary subdirectory)
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Compare the provider's record of a day (the Open Platform's trade bill, downloaded; or
    /// an AMS transaction report, --file) with the journal, trade by trade. Exit 0 only when
    /// they agree, 1 when they differ, 2 when they could not be compared
    Reconcile {
        #[arg(long, default_value = "/etc/scanpay/scanpay.toml")]
        config: PathBuf,
        /// The provider's day (Beijing time), YYYY-MM-DD; default yesterday
        #[arg(long)]
        date: Option<String>,
        /// The provider's file for the day: an AMS transaction report (CSV), or an Open
        /// Platform bill zip already downloaded
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Refund, through the gateway and journaled like any refund, each payment the
        /// provider kept for a sale the journal has as not paid. Needs the daemon stopped;
        /// running it twice refunds once
        #[arg(long)]
        fix: bool,
        /// With several gateways, whose records: alipay or wechat (default: the first)
        #[arg(long)]
        provider: Option<String>,
    },
    /// Print a sale's receipt again on the configured printer
    Reprint {
        #[arg(long)]
        config: PathBuf,
        sale_id: String,
    },
    /// Read the journal: list sales, show one, export them
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Validate a config file and what it points at (keys, journal directory, scanners,
    /// printer, LEDs), one line per check with the fix; exit 2 when the file is wrong, 1 when a
    /// check fails
    CheckConfig {
        file: PathBuf,
        /// Also ask the gateway (a signed, harmless inquiry) whether it answers and verifies
        #[arg(long)]
        probe: bool,
    },
    /// List candidate scanners: HID devices (hidraw) with vendor:product, names and serial
    /// numbers, and serial ports, with the [[scanner]] values to use
    Devices,
    /// Run the sandbox gateway as an HTTP server speaking the Alipay Open Platform protocol
    /// (POST /gateway.do), the Antom AMS protocol (POST /ams/api/v1/payments/*) and WeChat
    /// Pay APIv3 (/v3/...), with GET /_sandbox/ledger. Keys and client configs go to --dir
    Sandbox {
        /// Address to listen on, e.g. 127.0.0.1:8089 (port 0 picks a free one)
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: std::net::SocketAddr,
        /// Where the sandbox keeps its keys and writes scanpay.toml for clients
        #[arg(long, default_value = "scanpay-sandbox")]
        dir: PathBuf,
        /// The Open Platform app id clients must send
        #[arg(long, default_value = crate::sandbox::DEFAULT_APP_ID)]
        app_id: String,
        /// The AMS client id clients must send
        #[arg(long, default_value = crate::sandbox::DEFAULT_CLIENT_ID)]
        client_id: String,
        /// Verify requests with this app public key instead of a generated app key pair
        #[arg(long)]
        app_public_key: Option<PathBuf>,
        /// WeChat Pay behaviours no source confirms, comma-separated: userpaying-code,
        /// unsigned-202, unsigned-errors, reverse-429, reverse-unknown-200, revoked-bare, probe
        #[arg(long, default_value = "")]
        wechat_mode: crate::sandbox::WechatModes,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct JournalSource {
    /// Config file naming the journal ([journal] path)
    #[arg(long, conflicts_with = "journal")]
    pub config: Option<PathBuf>,
    /// Journal file to read directly
    #[arg(long)]
    pub journal: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Sales, newest first
    List {
        #[command(flatten)]
        source: JournalSource,
        /// Only sales in this state (awaiting_scan, processing, paid, failed, cancelled, expired)
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One sale with its attempts, as JSON
    Show {
        #[command(flatten)]
        source: JournalSource,
        sale_id: String,
    },
    /// Every sale (optionally from a day on), as CSV (one row per attempt) or JSON
    Export {
        #[command(flatten)]
        source: JournalSource,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// First day to include, YYYY-MM-DD (UTC)
        #[arg(long)]
        since: Option<String>,
    },
    /// Check the journal's files against its identity and SQLite's integrity check, as
    /// `scanpay run` does at start; changes nothing (the daemon may be running)
    Verify {
        #[command(flatten)]
        source: JournalSource,
    },
    /// Make a new, empty journal; with --force, archive the files that are there first
    Init {
        #[command(flatten)]
        source: JournalSource,
        /// Archive an existing journal (into a directory beside it) and start over
        #[arg(long)]
        force: bool,
    },
    /// A consistent copy of the journal into DEST, while the daemon runs, verified after
    /// writing
    Backup {
        #[command(flatten)]
        source: JournalSource,
        dest: PathBuf,
    },
    /// Put the backup SRC in place of the journal (the daemon stopped); the files there are
    /// archived first
    Restore {
        #[command(flatten)]
        source: JournalSource,
        src: PathBuf,
        /// Restore even a backup older than what the journal issued, or of another journal
        #[arg(long)]
        force: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Csv,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

fn devices() -> u8 {
    out("HID devices (kind = \"hid-keyboard\" or \"hid-pos\"):");
    match crate::device::hid::list() {
        Ok(list) if list.is_empty() => out("  none"),
        Ok(list) => list.iter().for_each(|l| out(&format!("  {l}"))),
        Err(e) => out(&format!("  cannot enumerate: {e}")),
    }
    out("serial ports (kind = \"serial\", path = ...):");
    match serialport::available_ports() {
        Ok(ports) if ports.is_empty() => out("  none"),
        Ok(ports) => {
            for p in ports {
                let usb = match p.port_type {
                    serialport::SerialPortType::UsbPort(u) => format!(
                        "usb {:04x}:{:04x} {} {} serial {:?}",
                        u.vid,
                        u.pid,
                        u.manufacturer.unwrap_or_default(),
                        u.product.unwrap_or_default(),
                        u.serial_number.unwrap_or_default()
                    ),
                    other => format!("{other:?}"),
                };
                out(&format!("  path = {:?}  {usb}", p.port_name));
            }
        }
        Err(e) => out(&format!("  cannot enumerate: {e}")),
    }
    out("Give scanners stable names with udev rules (udev/70-scanpay.rules) and use those paths.");
    EXIT_OK
}

/// `println!` through [`out`], so a closed pipe does not take the process down.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out(&format!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stdout. A reader that went away (a closed pipe) must not take the
/// process down with it (`println!` would panic); any other failure (a full disk under
/// `journal export > file`) ends the command with exit 1, so a cut-short file is never
/// taken for a whole one.
pub fn out(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(i32::from(EXIT_NOT_PAID));
        }
        _ => {}
    }
}

/// Runs the parsed command and returns the process exit status.
pub fn run(cli: Cli) -> u8 {
    // Two workers: a journal checkpoint or a sysfs write on one never stalls the API and
    // the watchdog on the other.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_NOT_PAID;
        }
    };
    let status = dispatch(cli.command, &runtime).unwrap_or_else(exit::Failure::report);
    // tokio's stdin reader is a blocking thread that may never return while the pipe is
    // open; do not wait for it.
    runtime.shutdown_background();
    status
}

/// Runs one command to its exit status.
fn dispatch(command: Command, runtime: &tokio::runtime::Runtime) -> exit::Exit {
    match command {
        Command::Demo { journal } => runtime.block_on(demo::run(journal)),
        Command::Charge {
            config,
            amount,
            code,
            subject,
            reference,
        } => runtime.block_on(charge::run(charge::Args {
            config,
            amount,
            code,
            subject,
            reference,
        })),
        Command::Journal { command } => journal::run(command),
        Command::Refund {
            config,
            sale_id,
            amount,
            reason,
        } => runtime.block_on(refund::run(refund::Args {
            config,
            sale_id,
            amount,
            reason,
        })),
        Command::Run { config, stdin } => runtime.block_on(run::run(run::Args { config, stdin })),
        Command::Status { source, json } => runtime.block_on(status::run(&source, json)),
        Command::CheckConfig { file, probe } => Ok(runtime.block_on(check::run(&file, probe))),
        Command::Devices => Ok(devices()),
        Command::Report {
            source,
            date,
            format,
            print,
        } => output::report(&source, date.as_deref(), format, print),
        Command::Reprint { config, sale_id } => output::reprint(&config, &sale_id),
        Command::Reconcile {
            config,
            date,
            file,
            format,
            fix,
            provider,
        } => runtime.block_on(reconcile::run(reconcile::Args {
            config,
            date,
            file,
            format,
            fix,
            provider,
        })),
        Command::Bench { quick, dir } => {
            let plan = if quick {
                bench::Plan::quick()
            } else {
                bench::Plan::full()
            };
            let figures = runtime
                .block_on(bench::run(plan, &dir))
                .map_err(|e| exit::Failure::failed(format!("bench: {e}")))?;
            out(&figures.to_string());
            Ok(EXIT_OK)
        }
        Command::Sandbox {
            listen,
            dir,
            app_id,
            client_id,
            app_public_key,
            wechat_mode,
        } => runtime.block_on(sandbox::run(sandbox::Args {
            wechat_mode,
            listen,
            dir,
            app_id,
            client_id,
            app_public_key,
        })),
    }
}
