//! The TOML configuration: a private serde mirror of the file, converted into a typed,
//! validated [`Config`] at load. Every error names the file, the key and what to do;
//! `config/scanpay.example.toml` documents every key. Each section's mirror and its checks
//! live in the section's file; the settings they build belong to the modules that use them.

mod api;
mod gateway;
mod journal;
mod members;
mod notify;
mod output;
mod reconcile;
mod sales;
mod scanner;
mod terminal;
mod validate;
mod watchdog;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::api::ApiConfig;
use crate::engine::{EngineSettings, TerminalConfig, WatchdogConfig};
use crate::output::led::LedConfig;
use validate::Validator;

pub use gateway::{GatewayKind, GatewaySettings, SandboxSettings};
pub use journal::JournalConfig;
pub use reconcile::ReconcileConfig;

/// The demo's configuration, embedded so `scanpay demo` needs no file.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}; check the path and that scanpay may read it")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: [{section}] {key} = {value}: {why}")]
    Invalid {
        file: String,
        section: &'static str,
        key: &'static str,
        value: String,
        why: String,
    },
    #[error("{file}: [{section}] {key} is missing: {why}")]
    Missing {
        file: String,
        section: &'static str,
        key: &'static str,
        why: &'static str,
    },
}

impl ConfigError {
    /// The `[section] key` the error is about, when it is about one key.
    pub fn key(&self) -> Option<String> {
        match self {
            ConfigError::Invalid { section, key, .. }
            | ConfigError::Missing { section, key, .. } => Some(format!("[{section}] {key}")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (a path, or `<embedded demo>`).
    pub source: String,
    pub terminal: TerminalConfig,
    /// The first gateway configured: the single `[gateway]`, or `[gateway.alipay]` (else
    /// `[gateway.wechat]`).
    pub gateway: GatewaySettings,
    /// The gateways configured beside it, one per wallet (`[gateway.wechat]`).
    pub other_gateways: Vec<GatewaySettings>,
    pub journal: JournalConfig,
    pub watchdog: WatchdogConfig,
    /// `[sales] qr_timeout_s`: how long a code shown for the customer stays payable.
    pub qr_timeout: Duration,
    /// `[notify] listen`: where the payment-notification receiver listens, if anywhere.
    pub notify_listen: Option<std::net::SocketAddr>,
    /// The register's API; `None` when the file has no `[api]` section.
    pub api: Option<ApiConfig>,
    /// Barcode scanners (`[[scanner]]`), in file order.
    pub scanners: Vec<crate::device::ScannerConfig>,
    pub led: LedConfig,
    /// `None` without a `[printer]` section.
    pub printer: Option<crate::output::printer::PrinterConfig>,
    /// The daemon's daily reconciliation; `None` without a `[reconcile]` section.
    pub reconcile: Option<ReconcileConfig>,
    /// `[members]`: member auto-debit bindings.
    pub members: Option<crate::api::members::MembersConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    terminal: Option<terminal::RawTerminal>,
    gateway: Option<gateway::RawGateway>,
    journal: Option<journal::RawJournal>,
    #[serde(default)]
    watchdog: watchdog::RawWatchdog,
    #[serde(default)]
    sales: sales::RawSales,
    notify: Option<notify::RawNotify>,
    api: Option<api::RawApi>,
    #[serde(default)]
    scanner: Vec<scanner::RawScanner>,
    led: Option<output::RawLed>,
    printer: Option<output::RawPrinter>,
    receipt: Option<output::RawReceipt>,
    reconcile: Option<reconcile::RawReconcile>,
    members: Option<members::RawMembers>,
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it (the journal) are
    /// resolved against the file's directory, not the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, &file, base)
    }

    /// Where the file at `path` puts the journal and the API socket (`None` without an
    /// `[api]` section), read even when the rest of it does not check out: `status` still
    /// reports on a daemon whose new file a reload refused. `None` when not even these read.
    pub fn locations(path: &Path) -> Option<(std::path::PathBuf, Option<std::path::PathBuf>)> {
        let text = std::fs::read_to_string(path).ok()?;
        let table: toml::Table = text.parse().ok()?;
        let base = path.parent().unwrap_or(Path::new("."));
        let journal = table.get("journal")?.get("path")?.as_str()?;
        let socket = table.get("api").map(|api| {
            // As `[api]` reads it (`config/api.rs`).
            base.join(
                api.get("socket")
                    .and_then(|s| s.as_str())
                    .unwrap_or("/run/scanpay/api.sock"),
            )
        });
        Some((base.join(journal), socket))
    }

    /// The embedded demo configuration with its journal at `journal`.
    pub fn demo(journal: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::from_toml(DEMO_TOML, "<embedded demo config>", Path::new("."))?;
        config.journal.path = journal.to_path_buf();
        Ok(config)
    }

    /// The engine's settings from this file, with how unclear answers are resolved, which is
    /// the command's choice (see [`EngineSettings`]).
    pub fn engine_settings(
        &self,
        cancel_give_up_after: Option<Duration>,
        resolve_inline: bool,
    ) -> EngineSettings {
        EngineSettings {
            terminal: self.terminal.clone(),
            timeout: self
                .gateways()
                .map(GatewaySettings::timeout)
                .max()
                .unwrap_or_default(),
            watchdog: self.watchdog.clone(),
            qr_timeout: self.qr_timeout,
            cancel_give_up_after,
            resolve_inline,
        }
    }

    /// Every configured gateway, the first one first.
    pub fn gateways(&self) -> impl Iterator<Item = &GatewaySettings> {
        std::iter::once(&self.gateway).chain(self.other_gateways.iter())
    }

    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator {
            file,
            base,
            gateway_section: "gateway",
        }
        .config(raw)
    }
}

impl Validator<'_> {
    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let terminal = self.required(
            raw.terminal,
            "terminal",
            "id",
            "add a [terminal] section with id, currency and max_amount",
        )?;
        let gateway = self.required(
            raw.gateway,
            "gateway",
            "kind",
            "add a [gateway] section; kind = \"sandbox\" for testing",
        )?;
        let journal = self.required(
            raw.journal,
            "journal",
            "path",
            "add a [journal] section naming the journal file",
        )?;
        let time_zone_set = terminal.time_zone_set();
        let mut terminal = self.terminal(terminal)?;
        // `[receipt] utc_offset` came before `[terminal] time_zone`: alone it still names the
        // store's zone, for everything; with it, the store's zone would be set twice.
        if let Some(offset) = raw.receipt.as_ref().and_then(|r| r.utc_offset.as_deref()) {
            if time_zone_set {
                return Err(self.invalid(
                    "receipt",
                    "utc_offset",
                    offset,
                    "the store's time zone is set once, by [terminal] time_zone: remove [receipt] utc_offset",
                ));
            }
            terminal.zone = crate::clock::StoreZone::parse(offset)
                .ok()
                .filter(|z| matches!(z, crate::clock::StoreZone::Fixed(_)))
                .ok_or_else(|| {
                    self.invalid(
                        "receipt",
                        "utc_offset",
                        offset,
                        "an offset like \"+08:00\" (better: [terminal] time_zone)",
                    )
                })?;
        }
        let terminal_id = terminal.id.clone();
        let zone = terminal.zone;
        let mut gateways = self.gateways(gateway)?.into_iter();
        let Some(gateway) = gateways.next() else {
            return Err(self.missing(
                "gateway",
                "kind",
                "add a [gateway] section; kind = \"sandbox\" for testing",
            ));
        };
        let other_gateways: Vec<GatewaySettings> = gateways.collect();
        let gateway_kind = gateway.kind();
        let has_wechat = std::iter::once(&gateway)
            .chain(other_gateways.iter())
            .any(|g| g.kind() == GatewayKind::WechatPay);
        if has_wechat {
            if terminal.currency.code() != "CNY" {
                return Err(self.invalid(
                    "terminal",
                    "currency",
                    terminal.currency.code(),
                    "WeChat Pay code pay charges CNY only",
                ));
            }
            // out_trade_no is at most 32 characters: the id, 25 more, and the tag.
            if terminal.id.len() > 6 {
                return Err(self.invalid(
                    "terminal",
                    "id",
                    &terminal.id,
                    "with WeChat Pay the terminal id is at most 6 characters (its request ids are at most 32)",
                ));
            }
        }
        if gateway_kind == GatewayKind::AlipayOpenapi && terminal.currency.code() != "CNY" {
            return Err(self.invalid(
                "terminal",
                "currency",
                terminal.currency.code(),
                "the Alipay Open Platform gateway charges CNY only",
            ));
        }
        let has_ams = std::iter::once(&gateway)
            .chain(other_gateways.iter())
            .any(|g| g.kind() == GatewayKind::AlipayAms);
        let members = raw
            .members
            .map(|m| self.members(m, has_ams, terminal.currency))
            .transpose()?;
        Ok(Config {
            members,
            source: self.file.to_string(),
            terminal,
            gateway,
            other_gateways,
            journal: self.journal(journal)?,
            watchdog: self.watchdog(raw.watchdog)?,
            qr_timeout: self.sales(raw.sales)?,
            notify_listen: self.notify(raw.notify)?,
            api: raw.api.map(|a| self.api(a)).transpose()?,
            scanners: self.scanners(raw.scanner)?,
            led: self.led(raw.led)?,
            printer: self.printer(raw.printer, raw.receipt, &terminal_id, zone)?,
            reconcile: raw
                .reconcile
                .map(|r| self.reconcile(r, gateway_kind))
                .transpose()?,
        })
    }
}
