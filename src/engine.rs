//! The sale engine: arms a sale, binds the next payment-code scan to it, writes the attempt
//! durably before sending it (invariant 1), maps the gateway's answer to a state, and hands
//! every unclear answer to the [`Resolver`](crate::watchdog::Resolver).
//!
//! Scan rules: a scan that is not a payment code never reaches the gateway; a payment code
//! with no sale armed, while another attempt is in flight, of a wallet the gateway does not
//! take, or already sent under another request id (invariant 4) is refused.

mod settings;

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::clock::Clock;
use crate::events::{Event, Observer};
use crate::gateway::{Gateway, Outcome, PayRequest, Unknown, UnknownKind};
use crate::journal::{AttemptRow, Change, Journal, JournalError, NewAttempt, NewSale};
use crate::money::Amount;
use crate::paycode::{BarcodeKind, PaymentCode, Scan, recognise};
use crate::state::{AttemptState, Cause, SaleState};
use crate::view::RefundView;
use crate::view::SaleView;
use crate::watchdog::{Claim, MSG_PAID, Owners, Resolver, Watchdog, Work, echo_ok};

pub use settings::{EngineSettings, TerminalConfig, WatchdogConfig};

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
    #[error("sale {0} is still open: finish or cancel it first")]
    Busy(String),
    #[error("sale {0} has an attempt in progress; it cannot be aborted now")]
    InProgress(String),
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

#[derive(Default)]
struct Slots {
    /// The sale the next payment code goes to.
    armed: Option<String>,
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
    /// Set at shutdown: no new sale or scan is taken.
    stopping: std::sync::atomic::AtomicBool,
    /// Runs right after an attempt's row is committed (tests force interleavings here).
    #[cfg(test)]
    pub(crate) after_attempt_written: Mutex<Option<Box<dyn Fn() + Send>>>,
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
            stopping: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            after_attempt_written: Mutex::new(None),
        }
    }

    /// Shutdown: from now on new sales and scans are refused; a scan being charged finishes.
    pub fn stop_taking_sales(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a pay request is waiting for its answer right now.
    pub fn on_wire(&self) -> bool {
        self.on_wire.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets go of the sales an earlier run left open: nobody is at the till for them. Those
    /// waiting for a scan expire; those in doubt take no further scan, so however the
    /// watchdog ends their attempt, the sale ends with it instead of reopening unattended.
    pub fn release_earlier_sales(&self) -> Result<Vec<SaleView>, JournalError> {
        let mut expired = Vec::new();
        for sale in self.journal.open_sales()? {
            if sale.state == SaleState::Processing
                && self.armed().as_deref() != Some(sale.id.as_str())
            {
                self.journal.no_more_attempts(&sale.id)?;
            }
            if sale.state == SaleState::AwaitingScan
                && self.armed().as_deref() != Some(sale.id.as_str())
            {
                self.journal.close_sale(
                    &sale.id,
                    SaleState::Expired,
                    "scanpay restarted before a payment code was scanned",
                    self.clock.now(),
                )?;
                let view = self.view(&sale.id)?;
                self.observer
                    .event(&Event::SaleFinished { sale: view.clone() });
                expired.push(view);
            }
        }
        Ok(expired)
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
        }
    }

    /// Whether an attempt is on the wire right now.
    pub fn in_flight(&self) -> bool {
        lock(&self.slots).in_flight.is_some()
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Finishes what an earlier run left open: every attempt in doubt is resolved (with the
    /// same request ids) and sales still awaiting a scan are expired, before new sales start.
    pub async fn recover(&self) -> Result<Vec<SaleView>, JournalError> {
        let mut finished = Vec::new();
        for attempt in self.journal.open_attempts()? {
            let Some(_claim) = self.owners.claim(&attempt.request_id) else {
                continue;
            };
            tracing::warn!(request_id = %attempt.request_id, state = %attempt.state, "resuming attempt left open");
            let a = self
                .resolver
                .resolve(attempt, self.settings.cancel_give_up_after)
                .await?;
            let view = self.view(&a.sale_id)?;
            self.observer
                .event(&Event::SaleFinished { sale: view.clone() });
            finished.push(view);
        }
        for refund in self.journal.open_refunds()? {
            let Some(_claim) = self.owners.claim_work(Work::Refund, &refund.request_id) else {
                continue;
            };
            tracing::warn!(refund = %refund.request_id, state = %refund.state, "resuming refund left open");
            self.resolver
                .resolve_refund(refund, self.settings.cancel_give_up_after)
                .await?;
        }
        finished.extend(self.release_earlier_sales()?);
        self.journal.scrub();
        Ok(finished)
    }

    /// Opens a sale and makes it the one the next payment code is charged to.
    pub fn arm(&self, request: SaleRequest) -> Result<SaleView, EngineError> {
        let terminal = &self.settings.terminal;
        let amount = request.amount;
        if amount.currency() != terminal.currency {
            return Err(EngineError::WrongCurrency {
                amount,
                terminal: terminal.currency.code(),
            });
        }
        if !amount.is_positive() {
            return Err(EngineError::NotPositive(amount));
        }
        if amount.minor() > terminal.max_amount.minor() {
            return Err(EngineError::AboveLimit {
                amount,
                max: terminal.max_amount,
            });
        }
        if self.is_stopping() {
            return Err(EngineError::Preflight {
                code: "unavailable",
                why: "scanpay is stopping; start the sale again in a moment".into(),
            });
        }
        if let Some(check) = &self.preflight
            && let Err(why) = check.check()
        {
            return Err(EngineError::Preflight {
                code: why.0,
                why: why.1,
            });
        }
        check_text("reference", request.reference.as_deref(), 64)?;
        check_text("subject", request.subject.as_deref(), 128)?;
        check_text("idempotency key", request.idempotency_key.as_deref(), 128)?;

        let mut slots = lock(&self.slots);
        if let Some(armed) = slots.armed.clone() {
            match self.journal.sale(&armed)? {
                Some(s) if !s.state.is_final() => {
                    // The register retrying the same request gets the same sale.
                    if request.idempotency_key.is_some()
                        && s.idempotency_key == request.idempotency_key
                    {
                        return Ok(self.view(&s.id)?);
                    }
                    return Err(EngineError::Busy(armed));
                }
                _ => slots.armed = None,
            }
        }
        let now = self.clock.now();
        let new = NewSale {
            id: new_sale_id(now),
            amount,
            reference: request.reference,
            subject: request.subject.unwrap_or_else(|| terminal.subject.clone()),
            idempotency_key: request.idempotency_key,
            max_attempts: request.max_attempts.max(1),
            supersede: request.supersede,
        };
        let supersede = new.supersede && new.reference.is_some();
        let (sale, created) = self.journal.create_sale(&new, now)?;
        if supersede {
            // A sale it replaced is cancelled now, not at its deadline.
            self.wake.notify_one();
        }
        if created || !sale.state.is_final() {
            slots.armed = Some(sale.id.clone());
        }
        drop(slots);
        let view = self.view(&sale.id)?;
        if created {
            tracing::info!(sale = %sale.id, amount = %sale.amount, "sale armed");
            self.observer
                .event(&Event::SaleArmed { sale: view.clone() });
        }
        Ok(view)
    }

    /// Ends the armed sale unpaid before any payment code was charged.
    pub fn abort(&self, sale_id: &str, reason: &str) -> Result<SaleView, EngineError> {
        let mut slots = lock(&self.slots);
        let sale = self
            .journal
            .sale(sale_id)?
            .ok_or_else(|| JournalError::NoSale(sale_id.to_string()))?;
        if sale.state == SaleState::Processing {
            return Err(EngineError::InProgress(sale.id));
        }
        if sale.state == SaleState::AwaitingScan {
            self.journal
                .close_sale(sale_id, SaleState::Cancelled, reason, self.clock.now())?;
        }
        if slots.armed.as_deref() == Some(sale_id) {
            slots.armed = None;
        }
        drop(slots);
        let view = self.view(sale_id)?;
        self.observer
            .event(&Event::SaleFinished { sale: view.clone() });
        Ok(view)
    }

    /// The sale the next payment code goes to, if any.
    pub fn armed(&self) -> Option<String> {
        lock(&self.slots).armed.clone()
    }

    /// Handles one scan: classifies it and, for a payment code with a sale armed, charges
    /// it and sees the attempt through to a known state (or as far as the resolver goes).
    pub async fn scan(&self, raw: &str) -> ScanOutcome {
        let code = match recognise(raw) {
            Scan::Payment(code) => code,
            Scan::Barcode { text, kind } => {
                self.observer.event(&Event::Barcode {
                    text: crate::paycode::mask_long_digit_runs(&text),
                    kind,
                });
                return ScanOutcome::Barcode { text, kind };
            }
            Scan::Garbage { why, len } => {
                tracing::warn!(why, len, "garbage scan dropped");
                self.observer.event(&Event::Garbage { why, len });
                return ScanOutcome::Garbage { why };
            }
        };
        match self.start_attempt(&code) {
            Ok((attempt, guard, claim)) => {
                let outcome = self.charge(attempt, &code).await;
                // Still open: the watchdog takes it from here.
                drop(claim);
                drop(guard);
                if matches!(&outcome, ScanOutcome::Attempted { sale } if !sale.state.is_final()) {
                    self.wake.notify_one();
                }
                outcome
            }
            Err(refusal) => self.refuse(&code, refusal),
        }
    }

    /// Tells the cashier (log, LED, register) why a payment code was not charged.
    fn refuse(&self, code: &PaymentCode, refusal: Refusal) -> ScanOutcome {
        tracing::warn!(code = %code, %refusal, "scan refused");
        self.observer.event(&Event::ScanRefused {
            code_masked: Some(code.masked()),
            reason: refusal.to_string(),
        });
        ScanOutcome::Refused {
            code_masked: code.masked(),
            refusal,
        }
    }

    /// A scan that queued up while a payment was being charged: a payment code is refused
    /// (told to the cashier like any refusal), anything else is handled as usual.
    pub async fn scan_queued(&self, raw: &str) -> ScanOutcome {
        let Scan::Payment(code) = recognise(raw) else {
            return self.scan(raw).await;
        };
        self.refuse(&code, Refusal::ScannedDuringPayment)
    }

    /// Checks every refusal rule and writes the attempt row, under the slot lock so two
    /// scans can never both pass.
    fn start_attempt(
        &self,
        code: &PaymentCode,
    ) -> Result<(AttemptRow, InFlight<'_>, Claim), Refusal> {
        if !self.gateway.accepts(code.wallet()) {
            return Err(Refusal::WalletNotAccepted {
                wallet: code.wallet().display_name(),
                gateway: self.gateway.name(),
            });
        }
        if self.is_stopping() {
            return Err(Refusal::Stopping);
        }
        let mut slots = lock(&self.slots);
        if let Some(request_id) = &slots.in_flight {
            return Err(Refusal::InFlight {
                request_id: request_id.clone(),
            });
        }
        let sale_id = slots.armed.clone().ok_or(Refusal::NoSale)?;
        let now = self.clock.now();
        let journal_err = |e: JournalError| Refusal::Journal(e.to_string());
        let earlier = self
            .journal
            .attempts_with_code(code, now - CODE_REUSE_WINDOW)
            .map_err(journal_err)?;
        // A request that provably never left did not use the code up.
        if let Some(used) = earlier
            .iter()
            .find(|a| a.result_code.as_deref() != Some(NOT_SENT) || a.state != AttemptState::Failed)
        {
            return Err(Refusal::CodeReused {
                request_id: used.request_id.clone(),
            });
        }
        let deadline = now
            + chrono::Duration::from_std(self.settings.watchdog.sale_deadline)
                .unwrap_or(chrono::TimeDelta::MAX);
        let request_id = new_request_id(&self.settings.terminal.id, now);
        // Claimed before the row is written: from its commit on, the watchdog's sweep finds
        // it owned, so no second worker can take it in between.
        let claim = self
            .owners
            .claim(&request_id)
            .ok_or_else(|| Refusal::InFlight {
                request_id: request_id.clone(),
            })?;
        let new = NewAttempt {
            request_id,
            gateway: self.gateway.name(),
            code,
            deadline_at: deadline,
        };
        let attempt = match self.journal.begin_attempt(&sale_id, &new, now) {
            Ok(a) => a,
            Err(e @ (JournalError::SaleState { .. } | JournalError::NoSale(_))) => {
                // The armed sale ended meanwhile (aborted, expired).
                slots.armed = None;
                tracing::debug!(error = %e, "armed sale no longer takes scans");
                return Err(Refusal::NoSale);
            }
            Err(e) => return Err(journal_err(e)),
        };
        #[cfg(test)]
        if let Some(hook) = lock_hook(&self.after_attempt_written).as_ref() {
            hook();
        }
        slots.in_flight = Some(attempt.request_id.clone());
        Ok((attempt, InFlight(&self.slots), claim))
    }

    async fn charge(&self, attempt: AttemptRow, code: &PaymentCode) -> ScanOutcome {
        let sale_id = attempt.sale_id.clone();
        if let Err(e) = self.send_and_resolve(attempt, code).await {
            // The journal failed mid-attempt: the row stays open and the next start
            // resolves it. The register must not treat this as "not paid".
            tracing::error!(sale = %sale_id, error = %e, "journal error during payment; attempt left for recovery");
        }
        let view = match self.view(&sale_id) {
            Ok(v) => v,
            Err(e) => {
                return ScanOutcome::Unrecorded {
                    sale_id,
                    error: e.to_string(),
                };
            }
        };
        if view.state != SaleState::AwaitingScan {
            // Paid, ended, or in doubt and left to the resolver: no longer takes scans, and
            // the terminal is free for the next sale.
            let mut slots = lock(&self.slots);
            if slots.armed.as_deref() == Some(sale_id.as_str()) {
                slots.armed = None;
            }
        }
        if view.state.is_final() {
            self.journal.scrub();
            self.observer
                .event(&Event::SaleFinished { sale: view.clone() });
        }
        ScanOutcome::Attempted { sale: view }
    }

    async fn send_and_resolve(
        &self,
        attempt: AttemptRow,
        code: &PaymentCode,
    ) -> Result<AttemptRow, JournalError> {
        let sale = self
            .journal
            .sale(&attempt.sale_id)?
            .ok_or_else(|| JournalError::NoSale(attempt.sale_id.clone()))?;
        let request = PayRequest {
            request_id: attempt.request_id.clone(),
            code: code.clone(),
            amount: attempt.amount,
            subject: sale.subject.clone(),
            terminal_id: self.settings.terminal.id.clone(),
            store_id: self.settings.terminal.store_id.clone(),
        };
        crate::failpoint::hit("before_send");
        tracing::info!(request_id = %request.request_id, code = %code, amount = %request.amount, "pay");
        self.observer.event(&Event::AttemptSent {
            sale_id: sale.id.clone(),
            request_id: request.request_id.clone(),
            code_masked: code.masked(),
        });
        self.on_wire
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let on_wire = OnWire(&self.on_wire);
        let sent_at = tokio::time::Instant::now();
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.gateway.pay(&request)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Unknown(Unknown::new(
                    UnknownKind::Timeout,
                    format!("no answer within {} ms", self.settings.timeout.as_millis()),
                )),
            };
        drop(on_wire);
        let outcome = match outcome {
            Outcome::Success(paid) if !echo_ok(&paid, attempt.amount) => {
                tracing::error!(request_id = %request.request_id, "pay answer states another amount: not trusted");
                Outcome::Unknown(Unknown::new(
                    UnknownKind::Mismatch,
                    format!(
                        "answer states {:?}, asked {}",
                        paid.amount.map(|a| a.to_string()),
                        attempt.amount
                    ),
                ))
            }
            other => other,
        };
        crate::failpoint::hit("after_pay_answer");
        let now = self.clock.now();
        let (to, c) = match outcome {
            Outcome::Success(paid) => (
                AttemptState::Succeeded,
                Change {
                    result_code: Some("paid".into()),
                    result_message: Some("pay: success".into()),
                    gateway_trade_id: Some(paid.trade_id),
                    message: Some(MSG_PAID.into()),
                    ..Change::default()
                },
            ),
            Outcome::Failed(f) => (
                AttemptState::Failed,
                Change {
                    result_code: Some(f.code),
                    result_message: Some(f.message),
                    message: Some(f.cashier),
                    ..Change::default()
                },
            ),
            Outcome::Rejected(f) => {
                tracing::error!(request_id = %request.request_id, code = %f.code, message = %f.message, "pay refused at the gateway's door: not charged");
                (
                    AttemptState::Failed,
                    Change {
                        result_code: Some(f.code.clone()),
                        result_message: Some(format!(
                            "{}: {}",
                            crate::state::REFUSED_AT_DOOR,
                            f.message
                        )),
                        message: Some(format!("not charged: {} ({})", f.cashier, f.code)),
                        ..Change::default()
                    },
                )
            }
            Outcome::NotSent(why) => (
                AttemptState::Failed,
                Change {
                    result_code: Some(NOT_SENT.into()),
                    result_message: Some(why),
                    message: Some(
                        "the gateway could not be reached; the customer was not charged".into(),
                    ),
                    ..Change::default()
                },
            ),
            Outcome::Unknown(u) => {
                tracing::warn!(request_id = %request.request_id, why = %u, "pay outcome unknown: inquiring");
                let confirming = u.kind == UnknownKind::BuyerConfirming;
                let (a, _) = self.journal.transition(
                    attempt.id,
                    AttemptState::Unknown,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some(u.kind.as_str().into()),
                        result_message: Some(u.detail.clone()),
                        message: Some(if confirming {
                            "customer is confirming the payment in the wallet".into()
                        } else {
                            "checking the payment with the gateway".into()
                        }),
                        // By the monotonic clock: a wall-clock step before the watchdog
                        // takes it over changes nothing.
                        budget_left: Some(
                            self.settings
                                .watchdog
                                .sale_deadline
                                .saturating_sub(sent_at.elapsed()),
                        ),
                        ..Change::default()
                    },
                    now,
                )?;
                self.observer.event(&if confirming {
                    Event::CustomerConfirming {
                        sale_id: a.sale_id.clone(),
                        request_id: a.request_id.clone(),
                    }
                } else {
                    Event::InDoubt {
                        sale_id: a.sale_id.clone(),
                        request_id: a.request_id.clone(),
                        why: u.to_string(),
                    }
                });
                if !self.settings.resolve_inline {
                    // The terminal moves on to the next sale: however this attempt ends, the
                    // sale ends with it (a sale nobody is scanning for must not reopen).
                    self.journal.no_more_attempts(&a.sale_id)?;
                    return Ok(a);
                }
                return self
                    .resolver
                    .resolve(a, self.settings.cancel_give_up_after)
                    .await;
            }
        };
        let (a, _) = self
            .journal
            .transition(attempt.id, to, Cause::PayAnswer, &c, now)?;
        Ok(a)
    }

    pub fn view(&self, sale_id: &str) -> Result<SaleView, JournalError> {
        let (sale, attempts, refunds) = self
            .journal
            .sale_whole(sale_id)?
            .ok_or_else(|| JournalError::NoSale(sale_id.to_string()))?;
        Ok(SaleView::new(&sale, &attempts).with_refunds(&refunds))
    }

    /// The register gave up on a sale in doubt: the watchdog stops waiting and cancels now.
    pub fn expedite(&self, sale_id: &str) -> Result<(), EngineError> {
        self.journal.expedite(sale_id, self.clock.now())?;
        self.wake.notify_one();
        Ok(())
    }

    /// Refunds `amount` of a paid sale. The refund row (with its id) is durable before the
    /// request leaves; an unclear answer is resent under the same id until the gateway states
    /// the outcome (here for a while, then by the watchdog or the next run).
    pub async fn refund(
        &self,
        sale_id: &str,
        amount: Amount,
        reason: Option<String>,
    ) -> Result<RefundView, EngineError> {
        check_text("reason", reason.as_deref(), 256)?;
        let now = self.clock.now();
        let request_id = format!("{}R", new_request_id(&self.settings.terminal.id, now));
        // Claimed before the row exists, as attempts are: the watchdog never takes it too.
        let claim = self
            .owners
            .claim_work(Work::Refund, &request_id)
            .ok_or_else(|| EngineError::InProgress(sale_id.to_string()))?;
        let row =
            self.journal
                .begin_refund(sale_id, &request_id, amount, reason.as_deref(), now)?;
        tracing::info!(sale = %sale_id, refund = %row.request_id, %amount, "refund");
        self.send_refund(row, claim).await
    }

    /// Sends a journaled refund and waits a while for its outcome; one still in doubt is
    /// left to the watchdog.
    async fn send_refund(
        &self,
        row: crate::journal::RefundRow,
        claim: Claim,
    ) -> Result<RefundView, EngineError> {
        let give_up = self
            .settings
            .cancel_give_up_after
            .unwrap_or(self.settings.timeout * 3);
        let row = self.resolver.resolve_refund(row, Some(give_up)).await?;
        drop(claim);
        if !row.state.is_final() {
            self.wake.notify_one();
        }
        Ok(RefundView::new(&row))
    }

    /// Gives back `amount` the provider kept for the payment `request_id` that the journal
    /// has as not paid (reconciliation found it). Journaled before it is sent, like any
    /// refund: asking again while one is pending, in doubt or done refunds nothing more.
    pub async fn refund_unrecorded_payment(
        &self,
        request_id: &str,
        amount: Amount,
    ) -> Result<RefundView, EngineError> {
        let now = self.clock.now();
        let row = self.journal.begin_recovery_refund(
            request_id,
            amount,
            "reconciliation: the provider kept this payment for a sale the journal has as not paid",
            now,
        )?;
        if row.state.is_final() {
            return Ok(RefundView::new(&row));
        }
        // One still open may be the watchdog's already: it finishes it.
        let Some(claim) = self.owners.claim_work(Work::Refund, &row.request_id) else {
            return Ok(RefundView::new(&row));
        };
        tracing::warn!(payment = %request_id, refund = %row.request_id, %amount, "refunding a payment only the provider recorded");
        self.send_refund(row, claim).await
    }
}

/// Refuses empty or over-long text and text with characters that are not printed as what
/// they are: control characters, and format characters that reorder or hide text (a
/// reference shown reversed by U+202E on a receipt or in the provider's records).
fn check_text(what: &'static str, text: Option<&str>, max: usize) -> Result<(), EngineError> {
    match text {
        Some(t)
            if t.is_empty()
                || t.chars().count() > max
                || t.chars().any(|c| c.is_control() || is_format_char(c)) =>
        {
            Err(EngineError::BadText(what, max))
        }
        _ => Ok(()),
    }
}

/// Whether `c` is in Unicode general category Cf (Format): soft hyphen, bidirectional
/// marks, embeddings, overrides and isolates, zero-width characters, the byte order mark,
/// invisible operators, interlinear annotation and tag characters. The standard library
/// has no general-category lookup; this is the category's list as of Unicode 15.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// `S20261122-3f9a0c1e7b`: sortable by day, unique by 40 random bits.
fn new_sale_id(now: DateTime<Utc>) -> String {
    format!(
        "S{}-{:010x}",
        now.format("%Y%m%d"),
        rand::thread_rng().gen_range(0..1u64 << 40)
    )
}

/// `T0001_20261122103000_9f3a0c1e`: letters, digits and `_` only, at most 56 characters, so
/// it is a valid `out_trade_no` and `paymentRequestId`, unique across this merchant's
/// terminals (the terminal id is in it) and across restarts (time plus 32 random bits).
pub fn new_request_id(terminal_id: &str, now: DateTime<Utc>) -> String {
    format!(
        "{terminal_id}_{}_{:08x}",
        now.format("%Y%m%d%H%M%S"),
        rand::thread_rng().r#gen::<u32>()
    )
}

#[cfg(test)]
mod tests;
