//! The `scanpay` commands. `main.rs` only parses and calls [`run`]; each command lives in
//! its own module and returns the process exit status.

mod bench;
mod charge;
mod check;
mod daemon_api;
mod demo;
mod exit;
mod journal;
mod journal_files;
mod keys;
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
/// Exit status: the sale or refund was not made (the gateway said no).
pub const EXIT_NOT_PAID: u8 = 1;
/// Exit status: the command ran and found a problem (a check failed, the records differ,
/// something needs a person) or could not finish its work (I/O, the printer). The same
/// number as [`EXIT_NOT_PAID`]: 1 is "not done", 2 "not even started".
pub const EXIT_FAILED: u8 = 1;
/// Exit status: usage or configuration error; nothing was changed.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the payment is in doubt (may have been charged); the journal keeps the
/// attempt open and the next run (or the daemon) resolves it. Not "not paid".
pub const EXIT_IN_DOUBT: u8 = 3;

/// The config file every command reads when `--config` is not given (the package's).
pub const DEFAULT_CONFIG: &str = "/etc/scanpay/scanpay.toml";

/// The exit statuses, one table for every command (README.md "Exit status").
const EXIT_TABLE: &str = "\
Exit status (every command):
  0  done: paid, refunded, the check passed, the records agree
  1  not done: not paid or refund refused; or a check failed, the records differ,
     something needs a person, or the work could not be finished (I/O, printer)
  2  not started: a usage or configuration error, an unknown sale; nothing was changed
  3  in doubt: the payment or refund may have gone through; the journal keeps it open
     and the daemon (or the next command) finishes it";

#[derive(Parser, Debug)]
#[command(
    name = "scanpay",
    version,
    about = "Point-of-sale payment daemon for Alipay payment codes",
    after_help = EXIT_TABLE
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Try scanpay with no hardware and no config: the sandbox gateway, a temporary journal,
    /// stdin as the scanner (a line like 12.50 starts a sale, a line of digits is a scan)
    #[command(
        after_help = "Example:\n  scanpay demo                      # then type 12.50, then 286000000000000000"
    )]
    Demo {
        /// Keep the journal in this file instead of a temporary one
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// Take one payment: charge CODE for AMOUNT through the configured gateway and print the
    /// sale as JSON. Exit 0 paid, 1 not paid, 2 usage or config error, 3 still in doubt
    #[command(
        after_help = "Example:\n  scanpay charge --config scanpay-sandbox/scanpay.toml --amount 12.50 --code 286000000000000000"
    )]
    Charge {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Amount in major units, e.g. 12.50
        #[arg(long)]
        amount: String,
        /// The payment code scanned from the customer's wallet; `-` reads it from stdin, which
        /// keeps it out of the process list
        #[arg(long)]
        code: String,
        /// The order subject the customer sees in their wallet (default: [terminal] subject)
        #[arg(long)]
        subject: Option<String>,
        /// The register's own reference for the sale
        #[arg(long)]
        reference: Option<String>,
    },
    /// The daemon: take sales and scans, resolve every payment in doubt, through restarts and
    /// outages. Stops cleanly on SIGTERM
    #[command(after_help = "Example:\n  scanpay run --config /etc/scanpay/scanpay.toml")]
    Run {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Take amounts and scans as lines on stdin (as the demo does) and print each finished
        /// sale as a JSON line; ends at end of input
        #[arg(long)]
        stdin: bool,
    },
    /// Show the journal's state: sales by state, payments in doubt, what needs a person, and
    /// the gateway's reachability as the daemon last saw it
    #[command(
        after_help = "Example:\n  scanpay status --config /etc/scanpay/scanpay.toml --format json"
    )]
    Status {
        #[command(flatten)]
        source: JournalSource,
        /// Text for people, or one JSON object
        #[arg(long, value_enum, default_value_t = TextFormat::Text)]
        format: TextFormat,
        /// The same as --format json
        #[arg(long)]
        json: bool,
    },
    /// Refund (part of) a paid sale through its gateway and print the refund as JSON. Exit 0
    /// refunded, 1 refused, 2 usage error (nothing sent), 3 still in doubt
    #[command(
        after_help = "Example:\n  scanpay refund --config /etc/scanpay/scanpay.toml S20261202-3f9a0c1e7b --amount 2.50 --reason \"returned\""
    )]
    Refund {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The paid sale to refund (`S20261202-…`, as `journal list` shows)
        sale_id: String,
        /// Amount in major units, at most what is left of the payment
        #[arg(long)]
        amount: String,
        /// Why, for the provider's records and the refund slip
        #[arg(long)]
        reason: Option<String>,
    },
    /// The end-of-day report: counts and sums by state and currency, refunds, what is in
    /// doubt or needs a person; --print sends it to the receipt printer as a Z-report
    #[command(
        after_help = "Example:\n  scanpay report --config /etc/scanpay/scanpay.toml --date 2026-12-01 --format csv"
    )]
    Report {
        #[command(flatten)]
        source: JournalSource,
        /// Local date, YYYY-MM-DD; default today
        #[arg(long)]
        date: Option<String>,
        /// Text for people, CSV for a spreadsheet, or JSON
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Also print it on the [printer] of --config
        #[arg(long)]
        print: bool,
        /// A shift's report instead of the day's: its kept Z-report once closed (a reprint),
        /// an X-report while open. Shifts are numbered as their Z-reports
        #[arg(long, conflicts_with = "date")]
        shift: Option<i64>,
    },
    /// Measure speed and footprint against baselines taken in the same run (fsync, RSA
    /// signing); prints a table and one JSON line. Also qualifies a new box's disk
    #[command(after_help = "Example:\n  scanpay bench --quick --dir /var/lib/scanpay")]
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
    #[command(
        after_help = "Example:\n  scanpay reconcile --config /etc/scanpay/scanpay.toml --date 2026-12-01"
    )]
    Reconcile {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The provider's day (Beijing time), YYYY-MM-DD; default yesterday
        #[arg(long)]
        date: Option<String>,
        /// The provider's file for the day: an AMS transaction report (CSV), or an Open
        /// Platform bill zip already downloaded
        #[arg(long)]
        file: Option<PathBuf>,
        /// Text for people, CSV for a spreadsheet, or JSON
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Refund, through the gateway and journaled like any refund, each payment the
        /// provider kept for a sale the journal has as not paid. With the daemon running,
        /// the daemon does it (asked over its socket); running it twice refunds once
        #[arg(long)]
        fix: bool,
        /// With several gateways, whose records: alipay or wechat (default: the first)
        #[arg(long)]
        provider: Option<String>,
    },
    /// Print a sale's receipt again on the configured printer
    #[command(
        after_help = "Example:\n  scanpay reprint --config /etc/scanpay/scanpay.toml S20261202-3f9a0c1e7b"
    )]
    Reprint {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The sale whose receipt to print (`S20261202-…`)
        sale_id: String,
    },
    /// Read the journal: list sales, show one, export them
    #[command(
        after_help = "Example:\n  scanpay journal list --config /etc/scanpay/scanpay.toml --state paid --limit 10"
    )]
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Change the merchant key while the daemon runs: check the new key with a signed inquiry,
    /// then switch the config to it and reload the daemon
    #[command(
        after_help = "Example:\n  scanpay keys rotate --config /etc/scanpay/scanpay.toml --private-key /etc/scanpay/keys/app_private_key-2027.pem"
    )]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Validate a config file and what it points at (keys, journal directory, scanners,
    /// printer, LEDs), one line per check with the fix; exit 2 when the file is wrong, 1 when a
    /// check fails
    #[command(after_help = "Example:\n  scanpay check-config /etc/scanpay/scanpay.toml --probe")]
    CheckConfig {
        /// The config file to check
        file: PathBuf,
        /// Also ask the gateway (a signed, harmless inquiry) whether it answers and verifies
        #[arg(long)]
        probe: bool,
    },
    /// List candidate scanners: HID devices (hidraw) with vendor:product, names and serial
    /// numbers, and serial ports, with the [[scanner]] values to use
    #[command(after_help = "Example:\n  scanpay devices")]
    Devices,
    /// Run the sandbox gateway as an HTTP server speaking the Alipay Open Platform protocol
    /// (POST /gateway.do), the Antom AMS protocol (POST /ams/api/v1/payments/*) and WeChat
    /// Pay APIv3 (/v3/...), with GET /_sandbox/ledger. Keys and client configs go to --dir
    #[command(
        after_help = "Example:\n  scanpay sandbox --listen 127.0.0.1:8089 --dir scanpay-sandbox"
    )]
    Sandbox {
        /// Address to listen on, e.g. 127.0.0.1:8089 (port 0 picks a free one)
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
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
        /// Play the Open Platform app in certificate mode: issue a root CA, the Alipay and the
        /// app certificates into --dir, write scanpay-cert.toml, require app_cert_sn and
        /// alipay_root_cert_sn on every request
        #[arg(long)]
        cert_mode: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct JournalSource {
    /// Config file naming the journal ([journal] path) and the store's time zone
    /// [default: /etc/scanpay/scanpay.toml]
    #[arg(long, conflicts_with = "journal")]
    pub config: Option<PathBuf>,
    /// Journal file to read directly
    #[arg(long)]
    pub journal: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// The planned key change: reads the new private key (mode 0600) and the config that names
    /// it, proves them with a signed inquiry to the gateway, then replaces the config file
    /// (the previous one kept as FILE.<time>.bak) and asks the running daemon to reload.
    /// Payments journaled before end with the key they began with. Exit 0 switched, 1 the
    /// check or the daemon refused (the file is as it was), 2 usage or config error
    #[command(
        after_help = "Example:\n  scanpay keys rotate --config /etc/scanpay/scanpay.toml --private-key /etc/scanpay/keys/merchant_private_key-2.pem --key-version 2\n\nUpload the new public key to the provider first (Open Platform: the app's 接口加签方式; Antom: a new key version)."
    )]
    Rotate {
        /// The config file
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The new merchant private key (PEM or base64, PKCS#1 or PKCS#8, mode 0600)
        #[arg(long)]
        private_key: PathBuf,
        /// Open Platform certificate mode: the app certificate issued for the new key
        #[arg(long)]
        app_cert: Option<PathBuf>,
        /// Antom (AMS): the key version the new key was uploaded under
        #[arg(long)]
        key_version: Option<u32>,
        /// Which gateway's key: alipay (default) or wechat
        #[arg(long, default_value = "alipay")]
        wallet: String,
        /// WeChat Pay: the new merchant API certificate's serial number
        #[arg(long)]
        serial_no: Option<String>,
        /// Prove the key by inquiring this request id (default: the terminal's probe id)
        #[arg(long)]
        request_id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Sales, newest first
    #[command(
        after_help = "Example:\n  scanpay journal list --config /etc/scanpay/scanpay.toml --state paid | head"
    )]
    List {
        #[command(flatten)]
        source: JournalSource,
        /// Only sales in this state (awaiting_scan, processing, paid, failed, cancelled, expired)
        #[arg(long)]
        state: Option<String>,
        /// At most this many sales
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Text columns, or one JSON array of the sales
        #[arg(long, value_enum, default_value_t = TextFormat::Text)]
        format: TextFormat,
    },
    /// One sale with its attempts, as JSON
    #[command(
        after_help = "Example:\n  scanpay journal show --config /etc/scanpay/scanpay.toml S20261202-3f9a0c1e7b"
    )]
    Show {
        #[command(flatten)]
        source: JournalSource,
        /// The sale to show (`S20261202-…`)
        sale_id: String,
    },
    /// Every sale (optionally from a store day on, or of one store day), as CSV (one row per
    /// attempt and one per refund; the `booked` column sums to the day report's net) or JSON
    #[command(
        after_help = "Example:\n  scanpay journal export --config /etc/scanpay/scanpay.toml --date 2026-12-01 > 2026-12-01.csv"
    )]
    Export {
        #[command(flatten)]
        source: JournalSource,
        /// CSV (one row per attempt and per refund) or JSON (one object per sale)
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// First store day to include, YYYY-MM-DD (in [terminal] time_zone)
        #[arg(long, conflicts_with = "date")]
        since: Option<String>,
        /// Only this store day, YYYY-MM-DD: its sales, and the refunds made on it
        #[arg(long)]
        date: Option<String>,
    },
    /// Check the journal's files against its identity and SQLite's integrity check, as
    /// `scanpay run` does at start; changes nothing (the daemon may be running)
    #[command(after_help = "Example:\n  scanpay journal verify --config /etc/scanpay/scanpay.toml")]
    Verify {
        #[command(flatten)]
        source: JournalSource,
    },
    /// Make a new, empty journal; with --force, archive the files that are there first
    #[command(
        after_help = "Example:\n  scanpay journal init --journal /var/lib/scanpay/journal.sqlite"
    )]
    Init {
        #[command(flatten)]
        source: JournalSource,
        /// Archive an existing journal (into a directory beside it) and start over
        #[arg(long)]
        force: bool,
    },
    /// A consistent copy of the journal into DEST, while the daemon runs, verified after
    /// writing
    #[command(
        after_help = "Example:\n  scanpay journal backup --config /etc/scanpay/scanpay.toml /mnt/usb/journal-2026-12-02.sqlite"
    )]
    Backup {
        #[command(flatten)]
        source: JournalSource,
        /// Where to write the copy (a new file)
        dest: PathBuf,
    },
    /// Put the backup SRC in place of the journal (the daemon stopped); the files there are
    /// archived first
    #[command(
        after_help = "Example:\n  scanpay journal restore --config /etc/scanpay/scanpay.toml /mnt/usb/journal-2026-12-02.sqlite"
    )]
    Restore {
        #[command(flatten)]
        source: JournalSource,
        /// The backup to restore (made by `journal backup`)
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
pub enum TextFormat {
    Text,
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
                    serialport::SerialPortType::PciPort => "pci".to_string(),
                    serialport::SerialPortType::BluetoothPort => "bluetooth".to_string(),
                    serialport::SerialPortType::Unknown => "built in or virtual".to_string(),
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
            std::process::exit(i32::from(EXIT_FAILED));
        }
        _ => {}
    }
}

static DEMO_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Opens the demo's log (its narration is on the screen): one file, replaced by each run,
/// outside the demo's temporary directory so it outlives the demo; a file of its own when
/// another user's is in the way. The demo names it.
pub fn open_demo_log() -> std::io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    let (path, file) = match std::fs::File::create(dir.join("scanpay-demo.log")) {
        Ok(file) => (dir.join("scanpay-demo.log"), file),
        Err(_) => {
            let path = dir.join(format!("scanpay-demo-{}.log", std::process::id()));
            let file = std::fs::File::create(&path)?;
            (path, file)
        }
    };
    let _ = DEMO_LOG.set(path);
    Ok(file)
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
            return EXIT_FAILED;
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
        Command::Status {
            source,
            format,
            json,
        } => runtime.block_on(status::run(&source, json || format == TextFormat::Json)),
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    config,
                    private_key,
                    app_cert,
                    key_version,
                    wallet,
                    serial_no,
                    request_id,
                },
        } => {
            let wechat = match wallet.as_str() {
                "alipay" => false,
                "wechat" => true,
                other => {
                    return Err(exit::Failure::usage(format!(
                        "--wallet {other:?}: alipay or wechat"
                    )));
                }
            };
            runtime.block_on(keys::rotate(keys::RotateArgs {
                config,
                private_key,
                app_cert,
                key_version,
                wechat,
                serial_no,
                request_id,
            }))
        }
        Command::CheckConfig { file, probe } => Ok(runtime.block_on(check::run(&file, probe))),
        Command::Devices => Ok(devices()),
        Command::Report {
            source,
            format,
            print,
            shift: Some(shift),
            ..
        } => output::shift_report(&source, shift, format, print),
        Command::Report {
            source,
            date,
            format,
            print,
            shift: None,
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
            if !dir.is_dir() {
                return Err(exit::Failure::usage(format!(
                    "--dir {}: not a directory; name a directory on the disk to measure",
                    dir.display()
                )));
            }
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
            cert_mode,
        } => runtime.block_on(sandbox::run(sandbox::Args {
            wechat_mode,
            cert_mode,
            listen,
            dir,
            app_id,
            client_id,
            app_public_key,
        })),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command says what it does with an example, and every flag what it is for.
    #[test]
    fn every_command_and_flag_explains_itself() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_subcommands().next().is_none() {
                let example = cmd
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Example:\n  scanpay "));
                if !example {
                    missing.push(format!("{path}: no example"));
                }
            }
            if cmd.get_about().is_none() && path.contains(' ') && path != " scanpay" {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}: no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
