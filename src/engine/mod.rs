//! The sale engine: arms a sale, binds the next payment-code scan to it, writes the attempt
//! durably before sending it (invariant 1), maps the gateway's answer to a state, and hands
//! every unclear answer to the [`Resolver`](crate::watchdog::Resolver).
//!
//! Scan rules: a scan that is not a payment code never reaches the gateway; a payment code
//! with no sale armed, while another attempt is in flight, of a wallet the gateway does not
//! take, or already sent under another request id (invariant 4) is refused.

pub mod attention;
mod member;
mod present;
mod refund;
mod sale;
mod scan;
mod settings;

pub use member::{AGREEMENT_EXPIRY, MemberCharge};
pub use scan::new_request_id;
pub use settings::{EngineSettings, TerminalConfig, WatchdogConfig};

use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::events::Observer;
use crate::gateway::Gateway;
use crate::journal::{Journal, JournalError};
use crate::money::Amount;
use crate::paycode::BarcodeKind;
use crate::view::SaleView;
use crate::watchdog::{Owners, Resolver, Watchdog};

/// A code seen within this window is the same customer's code: never send it again.
/// Payment codes live about a minute; a day is far beyond any reuse by the same wallet.
const CODE_REUSE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Result code recorded for a pay request that never left this machine.
pub const NOT_SENT: &str = "not_sent";

/// A check run before a sale is armed, so a sale that cannot be taken is refused before the
/// customer's code is used (gateway offline, clock far off). A refusal is an error code for
/// the register (`offline`, `gateway_refusing`, `unavailable`) and a message.
pub trait Preflight: Send + Sync {
    fn check(&self) -> Result<(), (&'static str, String)>;
}

/// What the register asks for.
#[derive(Debug, Clone)]
pub struct SaleRequest {
    pub amount: Amount,
    pub reference: Option<String>,
    pub subject: Option<String>,
    pub idempotency_key: Option<String>,
    /// How many scans the sale may consume before it ends unpaid.
    pub max_attempts: u32,
    /// Cancel (and reverse, if paid) a sale still in doubt for the same reference instead of
    /// being refused with `reference_in_doubt`.
    pub supersede: bool,
    /// Campaign fields (discountable parts, goods, cashier), checked against the amount.
    pub basket: crate::money::basket::Basket,
}

impl SaleRequest {
    /// A sale keyed in at the till: the amount alone, one scan.
    pub fn at_the_till(amount: Amount) -> SaleRequest {
        SaleRequest {
            amount,
            reference: None,
            subject: None,
            idempotency_key: None,
            max_attempts: 1,
            supersede: false,
            basket: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("amount {amount} is not in this terminal's currency {terminal}")]
    WrongCurrency {
        amount: Amount,
        terminal: &'static str,
    },
    #[error("amount {0} must be above zero")]
    NotPositive(Amount),
    #[error("amount {amount} is above this terminal's limit of {max} ([terminal] max_amount)")]
    AboveLimit { amount: Amount, max: Amount },
    #[error("{0} must be 1 to {1} printable characters")]
    BadText(&'static str, usize),
    #[error("{}: {}", .0.field, .0.why)]
    Basket(crate::money::basket::BasketError),
    #[error("sale {0} is still open: finish or cancel it first")]
    Busy(String),
    #[error("sale {0} has an attempt in progress; it cannot be aborted now")]
    InProgress(String),
    #[error("sale {0} is not the one waiting for a payment at this till")]
    NotWaiting(String),
    #[error("sale refused before any scan: {why}")]
    Preflight { code: &'static str, why: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Why a payment-code scan was not charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSale,
    /// scanpay is shutting down.
    Stopping,
    /// Scanned while another payment was being charged: by the time it could be handled it
    /// may belong to the next customer's sale, so it is not charged.
    ScannedDuringPayment,
    InFlight {
        request_id: String,
    },
    CodeReused {
        request_id: String,
    },
    WalletNotAccepted {
        wallet: &'static str,
        gateway: &'static str,
    },
    Journal(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stopping => f.write_str("scanpay is stopping: this scan was not charged"),
            Refusal::ScannedDuringPayment => f.write_str(
                "scanned while another payment was being charged: not charged; scan it again",
            ),
            Refusal::NoSale => f.write_str(
                "scan without sale: no sale is waiting for a payment code; start the sale first",
            ),
            Refusal::InFlight { request_id } => write!(
                f,
                "a payment is in progress ({request_id}); wait for its result"
            ),
            Refusal::CodeReused { request_id } => write!(
                f,
                "this code was already used ({request_id}); ask the customer to refresh the code"
            ),
            Refusal::WalletNotAccepted { wallet, gateway } => write!(
                f,
                "this is a {wallet} code, not accepted by the {gateway} gateway; ask for an accepted wallet"
            ),
            Refusal::Journal(e) => write!(
                f,
                "the journal cannot record the payment ({e}); nothing was charged"
            ),
        }
    }
}

// One value per scan, moved once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ScanOutcome {
    Barcode {
        text: String,
        kind: BarcodeKind,
    },
    Garbage {
        why: &'static str,
    },
    Refused {
        code_masked: String,
        refusal: Refusal,
    },
    /// The operator's scan test took it: shown, not charged.
    Tested {
        text: String,
        kind: String,
    },
    /// The scan was charged (or tried); the sale as it now stands. A sale still
    /// `processing` is in doubt: its attempt stays open in the journal until resolved.
    Attempted {
        sale: SaleView,
    },
    /// The pay request went out but the journal could not be read back: the payment may
    /// have gone through. The journal's owner resolves it at its next start.
    Unrecorded {
        sale_id: String,
        error: String,
    },
}

impl Slots {
    fn armed_id(&self) -> Option<&str> {
        self.armed.as_ref().map(|s| s.id.as_str())
    }
}

#[derive(Default)]
struct Slots {
    /// The sale the next payment code goes to, as it was when armed: a pay request takes
    /// its amount, subject and basket, which do not change once it is written (and are
    /// checked against the attempt's write). Its state is the journal's to tell.
    armed: Option<crate::journal::SaleRow>,
    /// Request id of the attempt on the wire.
    in_flight: Option<String>,
}

pub struct Engine {
    journal: Arc<Journal>,
    gateway: Arc<dyn Gateway>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    settings: EngineSettings,
    resolver: Arc<Resolver>,
    owners: Arc<Owners>,
    preflight: Option<Arc<dyn Preflight>>,
    slots: Mutex<Slots>,
    /// True while a pay request is on the wire (shutdown waits for its answer or timeout).
    on_wire: std::sync::atomic::AtomicBool,
    /// Wakes the watchdog when an attempt in doubt is handed to it.
    wake: Arc<tokio::sync::Notify>,
    /// Until when the next scan is the operator's scan test: shown, never charged.
    scan_test: Mutex<Option<std::time::Instant>>,
    /// Set at shutdown: no new sale or scan is taken.
    stopping: std::sync::atomic::AtomicBool,
    /// Runs right after an attempt's row is committed (tests force interleavings here).
    #[cfg(test)]
    pub(crate) after_attempt_written: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// Runs before the attempt's row is written, once the sale its request is signed from
    /// was read.
    #[cfg(test)]
    pub(crate) before_attempt_written: Mutex<Option<Box<dyn Fn() + Send>>>,
}

#[cfg(test)]
fn lock_hook<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clears the on-the-wire flag however the pay request ends (answer, timeout, dropped).
struct OnWire<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for OnWire<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Clears the in-flight slot however the attempt ends (answer, error, or the future dropped
/// at shutdown: the journal then holds the attempt open for recovery).
struct InFlight<'a>(&'a Mutex<Slots>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.0).in_flight = None;
    }
}

fn lock(m: &Mutex<Slots>) -> MutexGuard<'_, Slots> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    pub fn new(
        journal: Arc<Journal>,
        gateway: Arc<dyn Gateway>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn Observer>,
        settings: EngineSettings,
    ) -> Engine {
        let resolver = Arc::new(Resolver {
            journal: journal.clone(),
            gateway: gateway.clone(),
            clock: clock.clone(),
            observer: observer.clone(),
            timeout: settings.timeout,
            inquiry_interval: settings.watchdog.inquiry_interval,
            stop: tokio_util::sync::CancellationToken::new(),
            retry_now: Arc::default(),
            nudges: Arc::default(),
        });
        Engine {
            journal,
            gateway,
            clock,
            observer,
            settings,
            resolver,
            owners: Arc::new(Owners::default()),
            preflight: None,
            slots: Mutex::new(Slots::default()),
            on_wire: std::sync::atomic::AtomicBool::new(false),
            wake: Arc::new(tokio::sync::Notify::new()),
            scan_test: Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            after_attempt_written: Mutex::new(None),
            #[cfg(test)]
            before_attempt_written: Mutex::new(None),
        }
    }

    /// Shutdown: from now on new sales and scans are refused; a scan being charged finishes.
    pub fn stop_taking_sales(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Shutdown, once no pay request is on the wire: resolvers return at their next pause
    /// and leave what is open to the next start.
    pub fn stop_resolving(&self) {
        self.resolver.stop.cancel();
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a pay request is waiting for its answer right now.
    pub fn on_wire(&self) -> bool {
        self.on_wire.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `check` before every sale is armed.
    pub fn with_preflight(mut self, check: Arc<dyn Preflight>) -> Engine {
        self.preflight = Some(check);
        self
    }

    /// A watchdog sharing this engine's resolver and ownership of attempts.
    pub fn watchdog(&self) -> Watchdog {
        Watchdog {
            resolver: self.resolver.clone(),
            owners: self.owners.clone(),
            heartbeat: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            wake: self.wake.clone(),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Whether an attempt is on the wire right now.
    pub fn in_flight(&self) -> bool {
        lock(&self.slots).in_flight.is_some()
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The sale the next payment code goes to, if any.
    /// The store's time zone (`[terminal] time_zone`).
    pub fn zone(&self) -> crate::clock::StoreZone {
        self.settings.terminal.zone
    }

    /// A verified payment notification named `request_id`: its resolver inquires now.
    pub fn nudge(&self, request_id: &str) {
        self.resolver.nudges.nudge(request_id);
    }

    pub fn armed(&self) -> Option<String> {
        lock(&self.slots).armed_id().map(str::to_string)
    }
}

#[cfg(test)]
mod tests;
