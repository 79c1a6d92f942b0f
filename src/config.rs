//! The TOML configuration: a private serde mirror of the file, converted into a typed,
//! validated [`Config`] at load. Every error names the file, the key and what to do;
//! `config/scanpay.example.toml` documents every key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::ApiConfig;
use crate::engine::{EngineSettings, TerminalConfig, WatchdogConfig};
use crate::gateway::alipay_ams::AmsSettings;
use crate::gateway::alipay_openapi::OpenApiSettings;
use crate::gateway::keys::{PrivateKey, PublicKey};
use crate::money::{Amount, Currency};
use crate::output::led::LedConfig;

/// The demo's configuration, embedded so `scanpay demo` needs no file.
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");

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
    pub gateway: GatewaySettings,
    pub journal: JournalConfig,
    pub watchdog: WatchdogConfig,
    /// The register's API; `None` when the file has no `[api]` section.
    pub api: Option<ApiConfig>,
    /// Barcode scanners (`[[scanner]]`), in file order.
    pub scanners: Vec<crate::device::ScannerConfig>,
    pub led: LedConfig,
    /// `None` without a `[printer]` section.
    pub printer: Option<crate::output::printer::PrinterConfig>,
    /// The daemon's daily reconciliation; `None` without a `[reconcile]` section.
    pub reconcile: Option<ReconcileConfig>,
}

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time of day (Beijing time, the provider's) at which the daemon reconciles the
    /// previous day.
    pub daily_at: chrono::NaiveTime,
    /// The provider's file for a day, `{date}` standing for YYYY-MM-DD (required for AMS,
    /// whose reports arrive outside the API; the Open Platform's bill is downloaded).
    pub report_file: Option<String>,
}

impl ReconcileConfig {
    /// The report file for `date`, if one is configured.
    pub fn report_file_for(&self, date: chrono::NaiveDate) -> Option<PathBuf> {
        self.report_file
            .as_ref()
            .map(|t| PathBuf::from(t.replace("{date}", &date.format("%Y-%m-%d").to_string())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum GatewayKind {
    #[serde(rename = "sandbox")]
    Sandbox,
    #[serde(rename = "alipay-openapi")]
    AlipayOpenapi,
    #[serde(rename = "alipay-ams")]
    AlipayAms,
}

impl GatewayKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            GatewayKind::Sandbox => "sandbox",
            GatewayKind::AlipayOpenapi => "alipay-openapi",
            GatewayKind::AlipayAms => "alipay-ams",
        }
    }
}

/// The gateway and its keys: each kind carries what it needs, so a kind without its keys
/// cannot be configured.
#[derive(Debug, Clone)]
pub enum GatewaySettings {
    Sandbox(SandboxSettings),
    OpenApi(OpenApiSettings),
    Ams(AmsSettings),
}

/// `kind = "sandbox"`: the in-process sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Refused when the gateway is built: the in-process sandbox has no URL.
    pub url: Option<String>,
    /// Longest wait for one gateway answer; past it the outcome is unknown.
    pub timeout: Duration,
}

impl GatewaySettings {
    pub fn kind(&self) -> GatewayKind {
        match self {
            GatewaySettings::Sandbox(_) => GatewayKind::Sandbox,
            GatewaySettings::OpenApi(_) => GatewayKind::AlipayOpenapi,
            GatewaySettings::Ams(_) => GatewayKind::AlipayAms,
        }
    }

    /// Longest wait for one gateway answer; past it the outcome is unknown.
    pub fn timeout(&self) -> Duration {
        match self {
            GatewaySettings::Sandbox(s) => s.timeout,
            GatewaySettings::OpenApi(o) => o.timeout,
            GatewaySettings::Ams(a) => a.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub path: PathBuf,
}

const TIMEOUT_MS_DEFAULT: u64 = 15_000;
const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=120_000;
/// PROTOCOL.md: query for about 60 s after an unclear answer, then cancel.
const SALE_DEADLINE_S_DEFAULT: u64 = 60;
const SALE_DEADLINE_S_RANGE: std::ops::RangeInclusive<u64> = 5..=900;
const INQUIRY_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 500..=60_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    terminal: Option<RawTerminal>,
    gateway: Option<RawGateway>,
    journal: Option<RawJournal>,
    #[serde(default)]
    watchdog: RawWatchdog,
    api: Option<RawApi>,
    #[serde(default)]
    scanner: Vec<RawScanner>,
    led: Option<RawLed>,
    printer: Option<RawPrinter>,
    receipt: Option<RawReceipt>,
    reconcile: Option<RawReconcile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    daily_at: Option<String>,
    report_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLed {
    kind: Option<String>,
    green: Option<String>,
    red: Option<String>,
    yellow: Option<String>,
    blue: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrinter {
    kind: Option<String>,
    path: Option<String>,
    address: Option<String>,
    baud: Option<u32>,
    width: Option<u32>,
    encoding: Option<String>,
    copies: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReceipt {
    store_name: Option<String>,
    #[serde(default)]
    header: Vec<String>,
    #[serde(default)]
    footer: Vec<String>,
    merchant_copy: Option<bool>,
    utc_offset: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanner {
    name: Option<String>,
    kind: Option<String>,
    path: Option<String>,
    usb: Option<String>,
    serial_number: Option<String>,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<String>,
    stop_bits: Option<u8>,
    terminator: Option<String>,
    idle_timeout_ms: Option<u64>,
    prefix: Option<String>,
    suffix: Option<String>,
    aim: Option<String>,
    layout: Option<String>,
    tab_ends_scan: Option<bool>,
    grab: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    socket: Option<String>,
    socket_mode: Option<String>,
    group: Option<String>,
    tcp: Option<String>,
    allow_remote: Option<bool>,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerminal {
    id: Option<String>,
    currency: Option<String>,
    max_amount: Option<String>,
    store_id: Option<String>,
    subject: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    kind: Option<GatewayKind>,
    url: Option<String>,
    timeout_ms: Option<u64>,
    app_id: Option<String>,
    private_key_file: Option<String>,
    alipay_public_key_file: Option<String>,
    app_auth_token: Option<String>,
    notify_url: Option<String>,
    seller_id: Option<String>,
    client_id: Option<String>,
    key_version: Option<u32>,
    reference_merchant_id: Option<String>,
    merchant_name: Option<String>,
    merchant_mcc: Option<String>,
    reference_store_id: Option<String>,
    store_name: Option<String>,
    merchant_region: Option<String>,
    settlement_currency: Option<String>,
    payment_notify_url: Option<String>,
    payment_expiry_s: Option<u64>,
}

impl RawGateway {
    /// Keys only the Open Platform takes.
    fn openapi_only(&self) -> [(&'static str, Option<String>); 4] {
        [
            ("app_id", self.app_id.clone()),
            ("app_auth_token", self.app_auth_token.clone()),
            ("notify_url", self.notify_url.clone()),
            ("seller_id", self.seller_id.clone()),
        ]
    }

    /// Keys only AMS takes.
    fn ams_only(&self) -> [(&'static str, Option<String>); 11] {
        [
            ("client_id", self.client_id.clone()),
            ("key_version", self.key_version.map(|v| v.to_string())),
            ("reference_merchant_id", self.reference_merchant_id.clone()),
            ("merchant_name", self.merchant_name.clone()),
            ("merchant_mcc", self.merchant_mcc.clone()),
            ("reference_store_id", self.reference_store_id.clone()),
            ("store_name", self.store_name.clone()),
            ("merchant_region", self.merchant_region.clone()),
            ("settlement_currency", self.settlement_currency.clone()),
            ("payment_notify_url", self.payment_notify_url.clone()),
            (
                "payment_expiry_s",
                self.payment_expiry_s.map(|v| v.to_string()),
            ),
        ]
    }

    fn key_files(&self) -> [(&'static str, Option<String>); 2] {
        [
            ("private_key_file", self.private_key_file.clone()),
            (
                "alipay_public_key_file",
                self.alipay_public_key_file.clone(),
            ),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    path: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    sale_deadline_s: Option<u64>,
    inquiry_interval_ms: Option<u64>,
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
            timeout: self.gateway.timeout(),
            watchdog: self.watchdog.clone(),
            cancel_give_up_after,
            resolve_inline,
        }
    }

    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { file }.config(raw, base)
    }
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn invalid(
        &self,
        section: &'static str,
        key: &'static str,
        value: impl std::fmt::Debug,
        why: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            section,
            key,
            value: format!("{value:?}"),
            why: why.into(),
        }
    }

    fn missing(&self, section: &'static str, key: &'static str, why: &'static str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.to_string(),
            section,
            key,
            why,
        }
    }

    fn config(&self, raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let terminal = raw.terminal.ok_or_else(|| {
            self.missing(
                "terminal",
                "id",
                "add a [terminal] section with id, currency and max_amount",
            )
        })?;
        let gateway = raw.gateway.ok_or_else(|| {
            self.missing(
                "gateway",
                "kind",
                "add a [gateway] section; kind = \"sandbox\" for testing",
            )
        })?;
        let journal = raw.journal.ok_or_else(|| {
            self.missing(
                "journal",
                "path",
                "add a [journal] section naming the journal file",
            )
        })?;
        let terminal = self.terminal(terminal)?;
        let terminal_id = terminal.id.clone();
        let gateway = self.gateway(gateway, base)?;
        let gateway_kind = gateway.kind();
        if gateway_kind == GatewayKind::AlipayOpenapi && terminal.currency.code() != "CNY" {
            return Err(self.invalid(
                "terminal",
                "currency",
                terminal.currency.code(),
                "the Alipay Open Platform gateway charges CNY only",
            ));
        }
        Ok(Config {
            source: self.file.to_string(),
            terminal,
            gateway,
            journal: self.journal(journal, base)?,
            watchdog: self.watchdog(raw.watchdog)?,
            api: raw.api.map(|a| self.api(a, base)).transpose()?,
            scanners: self.scanners(raw.scanner, base)?,
            led: self.led(raw.led, base)?,
            printer: self.printer(raw.printer, raw.receipt, base, &terminal_id)?,
            reconcile: raw
                .reconcile
                .map(|r| self.reconcile(r, base, gateway_kind))
                .transpose()?,
        })
    }

    fn reconcile(
        &self,
        raw: RawReconcile,
        base: &Path,
        kind: GatewayKind,
    ) -> Result<ReconcileConfig, ConfigError> {
        let at = raw.daily_at.ok_or_else(|| {
            self.missing(
                "reconcile",
                "daily_at",
                "the Beijing time to reconcile the previous day, e.g. daily_at = \"10:30\" (the Open Platform's bill is ready from about 10:00)",
            )
        })?;
        let daily_at = chrono::NaiveTime::parse_from_str(&at, "%H:%M")
            .map_err(|_| self.invalid("reconcile", "daily_at", &at, "use HH:MM, e.g. \"10:30\""))?;
        if kind == GatewayKind::AlipayAms && raw.report_file.is_none() {
            return Err(self.missing(
                "reconcile",
                "report_file",
                "AMS delivers its reports outside the API: name where the day's report lands, with {date} for YYYY-MM-DD",
            ));
        }
        let report_file = match raw.report_file {
            None => None,
            Some(t) if !t.contains("{date}") => {
                return Err(self.invalid(
                    "reconcile",
                    "report_file",
                    &t,
                    "must contain {date}, which stands for the day (YYYY-MM-DD)",
                ));
            }
            Some(t) => Some(base.join(t).display().to_string()),
        };
        Ok(ReconcileConfig {
            daily_at,
            report_file,
        })
    }

    fn terminal(&self, raw: RawTerminal) -> Result<TerminalConfig, ConfigError> {
        let id = raw.id.ok_or_else(|| {
            self.missing("terminal", "id", "name this terminal, e.g. id = \"T0001\"")
        })?;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(self.invalid(
                "terminal",
                "id",
                &id,
                "use 1 to 32 ASCII letters and digits; it becomes part of every gateway request id",
            ));
        }
        let currency_text = raw.currency.ok_or_else(|| {
            self.missing(
                "terminal",
                "currency",
                "set the ISO 4217 currency, e.g. currency = \"CNY\"",
            )
        })?;
        let currency = Currency::from_code(&currency_text)
            .map_err(|e| self.invalid("terminal", "currency", &currency_text, e.to_string()))?;
        let max_text = raw.max_amount.ok_or_else(|| {
            self.missing(
                "terminal",
                "max_amount",
                "set the largest sale this terminal may take, e.g. max_amount = \"5000.00\"",
            )
        })?;
        let max_amount = Amount::parse(&max_text, currency)
            .map_err(|e| self.invalid("terminal", "max_amount", &max_text, e.to_string()))?;
        if !max_amount.is_positive() {
            return Err(self.invalid("terminal", "max_amount", &max_text, "must be above zero"));
        }
        if let Some(store) = &raw.store_id
            && (store.is_empty() || store.len() > 32 || store.chars().any(char::is_control))
        {
            return Err(self.invalid(
                "terminal",
                "store_id",
                store,
                "use 1 to 32 printable characters",
            ));
        }
        let subject = raw.subject.unwrap_or_else(|| "Purchase".to_string());
        if subject.is_empty()
            || subject.chars().count() > 128
            || subject.chars().any(char::is_control)
        {
            return Err(self.invalid(
                "terminal",
                "subject",
                &subject,
                "use 1 to 128 printable characters",
            ));
        }
        Ok(TerminalConfig {
            id,
            currency,
            max_amount,
            store_id: raw.store_id,
            subject,
        })
    }

    fn gateway(&self, raw: RawGateway, base: &Path) -> Result<GatewaySettings, ConfigError> {
        let kind = raw.kind.ok_or_else(|| {
            self.missing(
                "gateway",
                "kind",
                "choose the payment gateway: kind = \"sandbox\"",
            )
        })?;
        if let Some(url) = &raw.url {
            check_url(url).map_err(|why| self.invalid("gateway", "url", url, why))?;
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(TIMEOUT_MS_DEFAULT);
        if !TIMEOUT_MS_RANGE.contains(&timeout_ms) {
            return Err(self.invalid(
                "gateway",
                "timeout_ms",
                timeout_ms,
                format!(
                    "must be between {} and {} milliseconds",
                    TIMEOUT_MS_RANGE.start(),
                    TIMEOUT_MS_RANGE.end()
                ),
            ));
        }
        let foreign: Vec<(&'static str, Option<String>)> = match kind {
            GatewayKind::Sandbox => raw
                .openapi_only()
                .into_iter()
                .chain(raw.ams_only())
                .chain(raw.key_files())
                .collect(),
            GatewayKind::AlipayOpenapi => raw.ams_only().into_iter().collect(),
            GatewayKind::AlipayAms => raw.openapi_only().into_iter().collect(),
        };
        if let Some((key, Some(value))) = foreign.into_iter().find(|(_, v)| v.is_some()) {
            return Err(self.invalid(
                "gateway",
                key,
                value,
                format!("not used with kind = \"{}\"; remove it", kind.as_str()),
            ));
        }
        let timeout = Duration::from_millis(timeout_ms);
        Ok(match kind {
            GatewayKind::Sandbox => GatewaySettings::Sandbox(SandboxSettings {
                url: raw.url,
                timeout,
            }),
            GatewayKind::AlipayOpenapi => {
                GatewaySettings::OpenApi(self.openapi(&raw, base, timeout)?)
            }
            GatewayKind::AlipayAms => GatewaySettings::Ams(self.ams(&raw, base, timeout)?),
        })
    }

    fn openapi(
        &self,
        raw: &RawGateway,
        base: &Path,
        timeout: Duration,
    ) -> Result<OpenApiSettings, ConfigError> {
        let url_text = raw.url.as_ref().ok_or_else(|| {
            self.missing(
                "gateway",
                "url",
                "set the gateway URL, e.g. url = \"https://openapi.alipay.com/gateway.do\"",
            )
        })?;
        let url = url::Url::parse(url_text)
            .map_err(|e| self.invalid("gateway", "url", url_text, format!("not a URL: {e}")))?;
        let app_id = raw.app_id.clone().ok_or_else(|| {
            self.missing(
                "gateway",
                "app_id",
                "set the app id from the Alipay Open Platform console",
            )
        })?;
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(
                "gateway",
                "app_id",
                &app_id,
                "an Alipay app id is all digits, e.g. 2021000000000001",
            ));
        }
        let (private_key, alipay_public_key) = self.key_pair(raw, base, "Open Platform")?;
        for (key, value) in [
            ("app_auth_token", &raw.app_auth_token),
            ("notify_url", &raw.notify_url),
            ("seller_id", &raw.seller_id),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(char::is_control))
            {
                return Err(self.invalid(
                    "gateway",
                    key,
                    v,
                    "must be non-empty printable text, or left out",
                ));
            }
        }
        Ok(OpenApiSettings {
            url,
            app_id,
            private_key,
            alipay_public_key,
            app_auth_token: raw.app_auth_token.clone(),
            notify_url: raw.notify_url.clone(),
            seller_id: raw.seller_id.clone(),
            timeout,
        })
    }

    /// The merchant's private key and the gateway's public key, with the classic mix-up
    /// (the merchant's own public key configured as the gateway's) named.
    fn key_pair(
        &self,
        raw: &RawGateway,
        base: &Path,
        console: &str,
    ) -> Result<(PrivateKey, PublicKey), ConfigError> {
        let private_file = raw.private_key_file.as_ref().ok_or_else(|| {
            self.missing(
                "gateway",
                "private_key_file",
                "name the merchant's RSA private key file (mode 0600)",
            )
        })?;
        let private_key = PrivateKey::load(&base.join(private_file)).map_err(|e| {
            self.invalid("gateway", "private_key_file", private_file, e.to_string())
        })?;
        let public_file = raw.alipay_public_key_file.as_ref().ok_or_else(|| {
            self.missing(
                "gateway",
                "alipay_public_key_file",
                "name the file holding Alipay's public key",
            )
        })?;
        let alipay_public_key = PublicKey::load(&base.join(public_file)).map_err(|e| {
            self.invalid(
                "gateway",
                "alipay_public_key_file",
                public_file,
                e.to_string(),
            )
        })?;
        if alipay_public_key.same_key(&private_key.public_key()) {
            return Err(self.invalid(
                "gateway",
                "alipay_public_key_file",
                public_file,
                format!("this is your own public key, not Alipay's: in the {console} console, copy the \"Alipay public key\" (支付宝公钥), not your app's public key (应用公钥)"),
            ));
        }
        Ok((private_key, alipay_public_key))
    }

    fn ams(
        &self,
        raw: &RawGateway,
        base: &Path,
        timeout: Duration,
    ) -> Result<AmsSettings, ConfigError> {
        let url_text = raw.url.as_ref().ok_or_else(|| {
            self.missing(
                "gateway",
                "url",
                "set the AMS origin, e.g. url = \"https://open-sea-global.alipay.com\"",
            )
        })?;
        let origin = url::Url::parse(url_text)
            .map_err(|e| self.invalid("gateway", "url", url_text, format!("not a URL: {e}")))?;
        if origin.path() != "/" || origin.query().is_some() {
            return Err(self.invalid(
                "gateway",
                "url",
                url_text,
                "give the origin only (scheme, host, port); scanpay appends /ams/api/v1/...",
            ));
        }
        let required = |key: &'static str, value: &Option<String>, why: &'static str| match value
            .as_ref()
            .filter(|v| !v.is_empty())
        {
            Some(v) if v.chars().count() <= 256 && !v.chars().any(char::is_control) => {
                Ok(v.clone())
            }
            Some(v) => Err(self.invalid(
                "gateway",
                key,
                v,
                "use printable text of at most 256 characters",
            )),
            None => Err(self.missing("gateway", key, why)),
        };
        let client_id = required(
            "client_id",
            &raw.client_id,
            "set the client id from the Antom dashboard",
        )?;
        let key_version = raw.key_version.unwrap_or(1);
        if key_version == 0 {
            return Err(self.invalid(
                "gateway",
                "key_version",
                key_version,
                "key versions start at 1",
            ));
        }
        let (private_key, alipay_public_key) = self.key_pair(raw, base, "Antom")?;
        let merchant_mcc = required(
            "merchant_mcc",
            &raw.merchant_mcc,
            "set the merchant category code, e.g. \"5812\"",
        )?;
        if merchant_mcc.len() != 4 || !merchant_mcc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(
                "gateway",
                "merchant_mcc",
                &merchant_mcc,
                "an MCC is 4 digits, e.g. \"5812\"",
            ));
        }
        if let Some(region) = &raw.merchant_region
            && (region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(self.invalid(
                "gateway",
                "merchant_region",
                region,
                "a 2-letter region code, e.g. \"SG\"",
            ));
        }
        if let Some(c) = &raw.settlement_currency {
            Currency::from_code(c)
                .map_err(|e| self.invalid("gateway", "settlement_currency", c, e.to_string()))?;
        }
        if let Some(u) = &raw.payment_notify_url {
            url::Url::parse(u).map_err(|e| {
                self.invalid(
                    "gateway",
                    "payment_notify_url",
                    u,
                    format!("not a URL: {e}"),
                )
            })?;
        }
        let payment_expiry = match raw.payment_expiry_s {
            Some(s) if (30..=86_400).contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(self.invalid(
                    "gateway",
                    "payment_expiry_s",
                    s,
                    "must be between 30 and 86400 seconds",
                ));
            }
            None => None,
        };
        Ok(AmsSettings {
            origin,
            client_id,
            key_version,
            private_key,
            alipay_public_key,
            merchant: crate::gateway::alipay_ams::wire::Merchant {
                reference_merchant_id: required(
                    "reference_merchant_id",
                    &raw.reference_merchant_id,
                    "set your merchant reference id",
                )?,
                merchant_name: required(
                    "merchant_name",
                    &raw.merchant_name,
                    "set the merchant name",
                )?,
                merchant_mcc,
                reference_store_id: required(
                    "reference_store_id",
                    &raw.reference_store_id,
                    "set your store reference id",
                )?,
                store_name: required("store_name", &raw.store_name, "set the store name")?,
                merchant_region: raw.merchant_region.clone(),
                settlement_currency: raw.settlement_currency.clone(),
                payment_notify_url: raw.payment_notify_url.clone(),
            },
            payment_expiry,
            timeout,
        })
    }

    fn led(&self, raw: Option<RawLed>, base: &Path) -> Result<LedConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(LedConfig::None);
        };
        let kind = raw.kind.unwrap_or_else(|| "sysfs".to_string());
        match kind.as_str() {
            "none" => Ok(LedConfig::None),
            "terminal" => Ok(LedConfig::Terminal),
            "sysfs" => {
                let path = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
                let leds = crate::output::led::SysfsLeds {
                    green: path(&raw.green),
                    red: path(&raw.red),
                    yellow: path(&raw.yellow),
                    blue: path(&raw.blue),
                };
                if leds.green.is_none() && leds.red.is_none() {
                    return Err(self.missing("led", "green", "name at least the green and red LED directories, e.g. green = \"/sys/class/leds/scanpay:green\""));
                }
                Ok(LedConfig::Sysfs(leds))
            }
            "gpio" => Err(self.invalid("led", "kind", &kind, "GPIO LEDs are not supported yet: expose them as LED-class devices (gpio-leds in the device tree) and use \"sysfs\"")),
            other => Err(self.invalid("led", "kind", other, "\"sysfs\", \"terminal\" or \"none\"")),
        }
    }

    fn printer(
        &self,
        raw: Option<RawPrinter>,
        receipt: Option<RawReceipt>,
        base: &Path,
        terminal_id: &str,
    ) -> Result<Option<crate::output::printer::PrinterConfig>, ConfigError> {
        use crate::output::printer::{PrinterConfig, PrinterKind};
        let Some(raw) = raw else { return Ok(None) };
        let receipt = receipt.unwrap_or_default();
        let kind_text = raw.kind.clone().unwrap_or_else(|| "none".to_string());
        let need_path = || {
            raw.path.as_ref().map(|p| base.join(p)).ok_or_else(|| {
                self.missing(
                    "printer",
                    "path",
                    "name the device or file, e.g. path = \"/dev/usb/lp0\"",
                )
            })
        };
        let kind = match kind_text.as_str() {
            "none" => PrinterKind::None,
            "file" => PrinterKind::File(need_path()?),
            "serial" => PrinterKind::Serial {
                path: need_path()?,
                baud: raw.baud.unwrap_or(9600),
            },
            "tcp" => {
                let address = raw.address.clone().ok_or_else(|| {
                    self.missing(
                        "printer",
                        "address",
                        "the printer's host and port, e.g. address = \"192.0.2.10:9100\"",
                    )
                })?;
                let address = if address.contains(':') {
                    address
                } else {
                    format!("{address}:9100")
                };
                PrinterKind::Tcp(address)
            }
            other => {
                return Err(self.invalid(
                    "printer",
                    "kind",
                    other,
                    "\"file\", \"tcp\", \"serial\" or \"none\"",
                ));
            }
        };
        let width = match raw.width.unwrap_or(58) {
            58 => 32,
            80 => 48,
            other => {
                return Err(self.invalid(
                    "printer",
                    "width",
                    other,
                    "the paper width in mm: 58 or 80",
                ));
            }
        };
        let enc_text = raw
            .encoding
            .clone()
            .unwrap_or_else(|| "gb18030".to_string());
        let encoding = crate::output::escpos::Encoding::parse(&enc_text).ok_or_else(|| {
            self.invalid(
                "printer",
                "encoding",
                &enc_text,
                "\"gb18030\" (Chinese printers) or \"ascii\"",
            )
        })?;
        let copies = raw.copies.unwrap_or(1);
        if !(1..=3).contains(&copies) {
            return Err(self.invalid("printer", "copies", copies, "1 to 3"));
        }
        for line in receipt
            .header
            .iter()
            .chain(&receipt.footer)
            .chain(&receipt.store_name)
        {
            if line.chars().count() > 64 || line.chars().any(char::is_control) {
                return Err(self.invalid(
                    "receipt",
                    "header",
                    line,
                    "lines of at most 64 printable characters",
                ));
            }
        }
        let utc_offset_s = match &receipt.utc_offset {
            None => chrono::Local::now().offset().local_minus_utc(),
            Some(text) => {
                chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{text}"))
                    .map(|t| t.offset().local_minus_utc())
                    .map_err(|_| {
                        self.invalid("receipt", "utc_offset", text, "an offset like \"+08:00\"")
                    })?
            }
        };
        Ok(Some(PrinterConfig {
            kind,
            copies,
            merchant_copy: receipt.merchant_copy.unwrap_or(false),
            receipt: crate::output::receipt::ReceiptContext {
                store_name: receipt.store_name,
                terminal_id: terminal_id.to_string(),
                header: receipt.header,
                footer: receipt.footer,
                width,
                encoding,
                utc_offset_s,
            },
        }))
    }

    fn scanners(
        &self,
        raw: Vec<RawScanner>,
        base: &Path,
    ) -> Result<Vec<crate::device::ScannerConfig>, ConfigError> {
        use crate::device::{
            FrameConfig, Layout, Parity, ScannerConfig, ScannerKind, Selector, SerialSettings,
            Terminator,
        };
        let mut out: Vec<ScannerConfig> = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let name = r.name.unwrap_or_else(|| format!("scanner-{}", i + 1));
            if name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.invalid(
                    "scanner",
                    "name",
                    &name,
                    "use 1 to 32 letters, digits, '-' or '_'",
                ));
            }
            if out.iter().any(|s| s.name == name) {
                return Err(self.invalid(
                    "scanner",
                    "name",
                    &name,
                    "two scanners have this name; names must differ",
                ));
            }
            let kind_text = r.kind.ok_or_else(|| {
                self.missing(
                    "scanner",
                    "kind",
                    "choose \"serial\", \"hid-keyboard\" or \"hid-pos\"",
                )
            })?;
            let kind = ScannerKind::parse(&kind_text).ok_or_else(|| {
                self.invalid(
                    "scanner",
                    "kind",
                    &kind_text,
                    "one of \"serial\", \"hid-keyboard\", \"hid-pos\"",
                )
            })?;
            let selector = match (&r.path, &r.usb) {
                (Some(p), None) => Selector::Path(base.join(p)),
                (None, Some(u)) if kind != ScannerKind::Serial => {
                    let parsed = u.split_once(':').and_then(|(v, p)| {
                        Some((
                            u16::from_str_radix(v, 16).ok()?,
                            u16::from_str_radix(p, 16).ok()?,
                        ))
                    });
                    let (vid, pid) = parsed.ok_or_else(|| {
                        self.invalid(
                            "scanner",
                            "usb",
                            u,
                            "vendor:product in hex, as `scanpay devices` shows, e.g. \"0c2e:0b61\"",
                        )
                    })?;
                    Selector::Usb {
                        vid,
                        pid,
                        serial: r.serial_number.clone(),
                    }
                }
                (None, Some(u)) => {
                    return Err(self.invalid(
                        "scanner",
                        "usb",
                        u,
                        "serial scanners are chosen by path; use a udev symlink for a stable one",
                    ));
                }
                (Some(_), Some(u)) => {
                    return Err(self.invalid(
                        "scanner",
                        "usb",
                        u,
                        "give either path or usb, not both",
                    ));
                }
                (None, None) => {
                    return Err(self.missing(
                        "scanner",
                        "path",
                        "name the device (path or udev symlink), or usb = \"vid:pid\" for HID",
                    ));
                }
            };
            let baud = r.baud.unwrap_or(9600);
            if !(300..=4_000_000).contains(&baud) {
                return Err(self.invalid(
                    "scanner",
                    "baud",
                    baud,
                    "a serial speed such as 9600 or 115200",
                ));
            }
            let data_bits = r.data_bits.unwrap_or(8);
            if !(5..=8).contains(&data_bits) {
                return Err(self.invalid("scanner", "data_bits", data_bits, "5 to 8"));
            }
            let parity = match r.parity.as_deref().unwrap_or("none") {
                "none" => Parity::None,
                "odd" => Parity::Odd,
                "even" => Parity::Even,
                other => {
                    return Err(self.invalid(
                        "scanner",
                        "parity",
                        other,
                        "\"none\", \"odd\" or \"even\"",
                    ));
                }
            };
            let stop_bits = r.stop_bits.unwrap_or(1);
            if !(1..=2).contains(&stop_bits) {
                return Err(self.invalid("scanner", "stop_bits", stop_bits, "1 or 2"));
            }
            let term_text = r.terminator.unwrap_or_else(|| "crlf".to_string());
            let terminator = Terminator::parse(&term_text).ok_or_else(|| {
                self.invalid(
                    "scanner",
                    "terminator",
                    &term_text,
                    "\"cr\", \"lf\", \"crlf\" or \"none\"",
                )
            })?;
            let idle = r.idle_timeout_ms.unwrap_or(100);
            if !(10..=5000).contains(&idle) {
                return Err(self.invalid(
                    "scanner",
                    "idle_timeout_ms",
                    idle,
                    "between 10 and 5000 milliseconds",
                ));
            }
            let strip_aim = match r.aim.as_deref().unwrap_or("strip") {
                "strip" => true,
                "keep" => false,
                other => {
                    return Err(self.invalid("scanner", "aim", other, "\"strip\" or \"keep\""));
                }
            };
            let layout_text = r.layout.unwrap_or_else(|| "us".to_string());
            let layout = Layout::parse(&layout_text).ok_or_else(|| {
                self.invalid("scanner", "layout", &layout_text, "\"us\" or \"de\"")
            })?;
            out.push(ScannerConfig {
                name,
                kind,
                selector,
                serial: SerialSettings {
                    baud,
                    data_bits,
                    parity,
                    stop_bits,
                },
                frame: FrameConfig {
                    terminator,
                    idle: Duration::from_millis(idle),
                    prefix: r.prefix.unwrap_or_default().into_bytes(),
                    suffix: r.suffix.unwrap_or_default().into_bytes(),
                    strip_aim,
                },
                layout,
                tab_ends_scan: r.tab_ends_scan.unwrap_or(false),
                grab: r.grab.unwrap_or(true),
            });
        }
        Ok(out)
    }

    fn api(&self, raw: RawApi, base: &Path) -> Result<ApiConfig, ConfigError> {
        let socket = base.join(raw.socket.as_deref().unwrap_or("/run/scanpay/api.sock"));
        let mode_text = raw.socket_mode.unwrap_or_else(|| "0660".to_string());
        let socket_mode = u32::from_str_radix(mode_text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o007 == 0)
            .ok_or_else(|| {
                self.invalid(
                    "api",
                    "socket_mode",
                    &mode_text,
                    "an octal mode without access for others, e.g. \"0660\"",
                )
            })?;
        let tcp = match &raw.tcp {
            None => None,
            Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                self.invalid("api", "tcp", text, "an address like \"127.0.0.1:8089\"")
            })?),
        };
        let allow_remote = raw.allow_remote.unwrap_or(false);
        if let Some(addr) = tcp
            && !addr.ip().is_loopback()
            && !allow_remote
        {
            return Err(self.invalid(
                "api",
                "tcp",
                addr.to_string(),
                "not a loopback address: the register API is local; set allow_remote = true with a token to expose it",
            ));
        }
        if let Some(t) = &raw.token
            && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.invalid(
                "api",
                "token",
                "(hidden)",
                "use at least 16 printable characters without spaces",
            ));
        }
        if allow_remote && raw.token.is_none() {
            return Err(self.missing("api", "token", "allow_remote = true needs a bearer token"));
        }
        Ok(ApiConfig {
            socket,
            socket_mode,
            group: raw.group,
            tcp,
            token: raw.token,
        })
    }

    fn journal(&self, raw: RawJournal, base: &Path) -> Result<JournalConfig, ConfigError> {
        let path = raw.path.ok_or_else(|| {
            self.missing(
                "journal",
                "path",
                "name the journal file, e.g. path = \"/var/lib/scanpay/journal.sqlite\"",
            )
        })?;
        if path.is_empty() {
            return Err(self.invalid("journal", "path", &path, "must name a file"));
        }
        Ok(JournalConfig {
            path: base.join(path),
        })
    }

    fn watchdog(&self, raw: RawWatchdog) -> Result<WatchdogConfig, ConfigError> {
        let deadline_s = raw.sale_deadline_s.unwrap_or(SALE_DEADLINE_S_DEFAULT);
        if !SALE_DEADLINE_S_RANGE.contains(&deadline_s) {
            return Err(self.invalid(
                "watchdog",
                "sale_deadline_s",
                deadline_s,
                format!(
                    "must be between {} and {} seconds",
                    SALE_DEADLINE_S_RANGE.start(),
                    SALE_DEADLINE_S_RANGE.end()
                ),
            ));
        }
        if let Some(interval_ms) = raw.inquiry_interval_ms {
            if !INQUIRY_INTERVAL_MS_RANGE.contains(&interval_ms) {
                return Err(self.invalid(
                    "watchdog",
                    "inquiry_interval_ms",
                    interval_ms,
                    format!(
                        "must be between {} and {} milliseconds",
                        INQUIRY_INTERVAL_MS_RANGE.start(),
                        INQUIRY_INTERVAL_MS_RANGE.end()
                    ),
                ));
            }
            if interval_ms >= deadline_s * 1000 {
                return Err(self.invalid(
                    "watchdog",
                    "inquiry_interval_ms",
                    interval_ms,
                    "must be shorter than sale_deadline_s, or no inquiry happens before the cancel",
                ));
            }
        }
        Ok(WatchdogConfig {
            sale_deadline: Duration::from_secs(deadline_s),
            inquiry_interval: raw.inquiry_interval_ms.map(Duration::from_millis),
        })
    }
}

/// Gateway URLs are HTTPS, except plain HTTP to this machine (the sandbox on loopback).
fn check_url(text: &str) -> Result<(), &'static str> {
    use url::Host;
    let url = url::Url::parse(text)
        .map_err(|_| "not a URL: write it like https://openapi.alipay.com/gateway.do")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user names and passwords do not belong in the gateway URL");
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(
            "use an https:// URL; plain http:// is allowed only for loopback hosts (127.0.0.1, localhost, [::1])",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway]
kind = "sandbox"

[journal]
path = "journal.sqlite"
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("/etc/scanpay"))
    }

    fn error(text: &str) -> String {
        load(text)
            .expect_err("config should be refused")
            .to_string()
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.terminal.id, "T0001");
        assert_eq!(c.terminal.currency.code(), "CNY");
        assert_eq!(c.terminal.max_amount.minor(), 500_000);
        assert_eq!(c.gateway.kind(), GatewayKind::Sandbox);
        assert_eq!(c.gateway.timeout(), Duration::from_millis(15_000));
        assert_eq!(c.journal.path, Path::new("/etc/scanpay/journal.sqlite"));
        assert_eq!(c.watchdog.sale_deadline, Duration::from_secs(60));
    }

    #[test]
    fn embedded_demo_and_example_configs_load() {
        Config::demo(Path::new("/tmp/x.sqlite")).unwrap();
        let example = include_str!("../config/scanpay.example.toml");
        Config::from_toml(example, "scanpay.example.toml", Path::new("/")).unwrap();
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "currency = \"CNY\"",
                "currency = \"XYZ\"",
                "[terminal] currency",
            ),
            (
                "max_amount = \"5000.00\"",
                "max_amount = \"50.005\"",
                "[terminal] max_amount",
            ),
            (
                "max_amount = \"5000.00\"",
                "max_amount = \"0\"",
                "[terminal] max_amount",
            ),
            ("id = \"T0001\"", "id = \"T 1\"", "[terminal] id"),
            ("id = \"T0001\"", "", "[terminal] id is missing"),
            (
                "kind = \"sandbox\"",
                "kind = \"sandbox\"\ntimeout_ms = 5",
                "[gateway] timeout_ms",
            ),
            (
                "kind = \"sandbox\"",
                "kind = \"sandbox\"\nurl = \"http://example.com/gateway.do\"",
                "[gateway] url",
            ),
            ("path = \"journal.sqlite\"", "path = \"\"", "[journal] path"),
            (
                "path = \"journal.sqlite\"",
                "path = \"journal.sqlite\"\n[reconcile]\ndaily_at = \"25:00\"",
                "[reconcile] daily_at",
            ),
            (
                "path = \"journal.sqlite\"",
                "path = \"journal.sqlite\"\n[reconcile]\nreport_file = \"r.csv\"",
                "[reconcile] daily_at is missing",
            ),
            (
                "path = \"journal.sqlite\"",
                "path = \"journal.sqlite\"\n[reconcile]\ndaily_at = \"10:30\"\nreport_file = \"r.csv\"",
                "[reconcile] report_file",
            ),
        ];
        for (from, to, expected) in cases {
            let text = GOOD.replace(from, to);
            let message = error(&text);
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
            assert!(message.starts_with("test.toml: "), "{message}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let message = error(&GOOD.replace("currency", "curency"));
        assert!(message.contains("curency"), "{message}");
        let message = error(&GOOD.replace("kind = \"sandbox\"", "kind = \"paypal\""));
        assert!(
            message.contains("paypal") && message.contains("sandbox"),
            "{message}"
        );
        let message = error(&GOOD.replace(
            "kind = \"sandbox\"",
            "kind = \"sandbox\"\ntimeout_ms = \"fast\"",
        ));
        assert!(message.contains("timeout_ms"), "{message}");
        let message = error("[terminal\nid=1");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn scanners_are_checked() {
        let with = |s: &str| format!("{GOOD}\n[[scanner]]\n{s}\n");
        let c = load(&with("kind = \"serial\"\npath = \"/dev/scanpay/scanner-1\"\nbaud = 115200\nterminator = \"cr\"")).unwrap();
        assert_eq!(c.scanners.len(), 1);
        assert_eq!(c.scanners[0].name, "scanner-1");
        assert_eq!(c.scanners[0].serial.baud, 115200);
        let hid = load(&with(
            "kind = \"hid-pos\"\nusb = \"0c2e:0b61\"\nserial_number = \"X1\"",
        ))
        .unwrap();
        assert!(matches!(
            hid.scanners[0].selector,
            crate::device::Selector::Usb {
                vid: 0x0c2e,
                pid: 0x0b61,
                ..
            }
        ));
        for (bad, key) in [
            ("kind = \"laser\"\npath = \"x\"", "[scanner] kind"),
            ("kind = \"serial\"", "[scanner] path"),
            ("kind = \"serial\"\nusb = \"0c2e:0b61\"", "[scanner] usb"),
            ("kind = \"hid-pos\"\nusb = \"nope\"", "[scanner] usb"),
            (
                "kind = \"serial\"\npath = \"x\"\nbaud = 7",
                "[scanner] baud",
            ),
            (
                "kind = \"serial\"\npath = \"x\"\nterminator = \"semicolon\"",
                "[scanner] terminator",
            ),
            (
                "kind = \"hid-keyboard\"\npath = \"x\"\nlayout = \"dvorak\"",
                "[scanner] layout",
            ),
        ] {
            assert!(
                error(&with(bad)).contains(key),
                "{bad}: {}",
                error(&with(bad))
            );
        }
        let twice = format!(
            "{GOOD}\n[[scanner]]\nname = \"a\"\nkind = \"serial\"\npath = \"x\"\n[[scanner]]\nname = \"a\"\nkind = \"serial\"\npath = \"y\"\n"
        );
        assert!(error(&twice).contains("[scanner] name"));
    }

    #[test]
    fn api_keys_are_checked() {
        let with = |api: &str| format!("{GOOD}\n[api]\n{api}\n");
        let c = load(&with("socket = \"api.sock\"")).unwrap();
        let api = c.api.unwrap();
        assert_eq!(api.socket, Path::new("/etc/scanpay/api.sock"));
        assert_eq!(api.socket_mode, 0o660);
        assert!(load(GOOD).unwrap().api.is_none());
        assert!(error(&with("socket_mode = \"0666\"")).contains("[api] socket_mode"));
        assert!(error(&with("tcp = \"0.0.0.0:8089\"")).contains("[api] tcp"));
        assert!(
            error(&with("tcp = \"0.0.0.0:8089\"\nallow_remote = true")).contains("[api] token")
        );
        assert!(
            load(&with(
                "tcp = \"0.0.0.0:8089\"\nallow_remote = true\ntoken = \"0123456789abcdef\""
            ))
            .is_ok()
        );
        let short = error(&with("token = \"short\""));
        assert!(
            short.contains("[api] token") && !short.contains("short\""),
            "{short}"
        );
    }

    #[test]
    fn watchdog_interval_must_fit_in_the_deadline() {
        let text = format!("{GOOD}\n[watchdog]\nsale_deadline_s = 5\ninquiry_interval_ms = 6000\n");
        assert!(error(&text).contains("[watchdog] inquiry_interval_ms"));
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(check_url("https://openapi.alipay.com/gateway.do").is_ok());
        assert!(check_url("http://127.0.0.1:8080/gateway.do").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://localhost.evil.com/").is_err());
        assert!(check_url("http://127.0.0.1@evil.example/").is_err());
        assert!(check_url("http://127.evil.example/").is_err());
        assert!(check_url("http://localhost:@evil/").is_err());
        assert!(check_url("https://user:pw@openapi.alipay.com/").is_err());
        assert!(check_url("http://10.0.0.1/").is_err());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
    }
}
