//! A scan becomes an attempt: the refusal rules, the attempt row written before the pay
//! request leaves (invariant 1), the answer mapped to a state.

use chrono::{DateTime, Utc};
use rand::Rng;

use super::*;
use crate::events::Event;
use crate::gateway::{Outcome, PayRequest, Unknown, UnknownKind};
use crate::journal::{AttemptRow, Change, JournalError, NewAttempt};
use crate::paycode::{PaymentCode, Scan, recognise};
use crate::state::{AttemptState, Cause, SaleState};
use crate::watchdog::{Claim, MSG_PAID, echo_ok};

impl Engine {
    /// Handles one scan: classifies it and, for a payment code with a sale armed, charges
    /// it and sees the attempt through to a known state (or as far as the resolver goes).
    pub async fn scan(&self, raw: &str) -> ScanOutcome {
        if self.take_scan_test() {
            return self.show_test_scan(raw);
        }
        let code = match recognise(raw) {
            Scan::Payment(code) => code,
            Scan::Barcode { text, kind } => {
                self.observer.event(&Event::Barcode {
                    text: crate::paycode::mask_payment_codes(&text),
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
            Ok((attempt, request, guard, claim)) => {
                let outcome = self.charge(attempt, request, &code).await;
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

    /// The operator's scan test: the next scan within `window` is shown and not charged,
    /// whether or not a sale is waiting.
    pub fn arm_scan_test(&self, window: std::time::Duration) {
        *self.scan_test.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now() + window);
    }

    /// Whether the next scan goes to the operator's scan test (not consumed).
    pub fn scan_test_armed(&self) -> bool {
        self.scan_test
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    fn take_scan_test(&self) -> bool {
        let mut armed = self.scan_test.lock().unwrap_or_else(|e| e.into_inner());
        match armed.take() {
            Some(until) => std::time::Instant::now() < until,
            None => false,
        }
    }

    fn show_test_scan(&self, raw: &str) -> ScanOutcome {
        let (text, kind) = match recognise(raw) {
            Scan::Payment(code) => (
                code.masked(),
                format!("{} payment code", code.wallet().display_name()),
            ),
            Scan::Barcode { text, kind } => (
                crate::paycode::mask_payment_codes(&text),
                kind.as_str().to_string(),
            ),
            Scan::Garbage { why, len } => (format!("{len} bytes"), format!("unreadable: {why}")),
        };
        tracing::info!(%text, %kind, "scan test: shown, not charged");
        self.observer.event(&Event::ScanTest {
            text: text.clone(),
            kind: kind.clone(),
        });
        ScanOutcome::Tested { text, kind }
    }

    /// Tells the cashier (log, LED, register) why a payment code was not charged.
    fn refuse(&self, code: &PaymentCode, refusal: Refusal) -> ScanOutcome {
        tracing::warn!(code = %code, %refusal, "scan refused");
        let armed = lock(&self.slots).armed_id().map(str::to_string);
        if let Some(sale_id) = armed
            && !matches!(
                refusal,
                Refusal::InFlight { .. } | Refusal::ScannedDuringPayment
            )
        {
            let message = format!("not charged: {refusal}");
            if let Err(e) = self
                .journal
                .note_refused_scan(&sale_id, &message, self.clock.now())
            {
                tracing::warn!(sale_id = %sale_id, error = %e, "the refusal could not be kept on the sale");
            }
        }
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
    /// scans can never both pass; returns it with its pay request, signed if the gateway
    /// signs ahead.
    fn start_attempt(
        &self,
        code: &PaymentCode,
    ) -> Result<(AttemptRow, PayRequest, InFlight<'_>, Claim), Refusal> {
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
        let armed = slots.armed.clone().ok_or(Refusal::NoSale)?;
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
        // Tagged so that every later call about it reaches the gateway it went to.
        let wallet = code.wallet();
        let request_id = format!(
            "{}{}",
            new_request_id(&self.settings.terminal.id, now),
            self.gateway.request_id_tag(wallet)
        );
        // The gateway's own deadline when it is shorter (WeChat Pay: 30–45 s).
        let in_doubt = match self.gateway.policy_for(&request_id).deadline {
            Some(d) => d.min(self.settings.watchdog.sale_deadline),
            None => self.settings.watchdog.sale_deadline,
        };
        let deadline = now + chrono::Duration::from_std(in_doubt).unwrap_or(chrono::TimeDelta::MAX);
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
            gateway: self.gateway.route(wallet).unwrap_or(self.gateway.name()),
            code,
            deadline_at: deadline,
            signing_key: self.gateway.signing_key(wallet),
        };
        let (written, signed) = self.write_and_sign(armed, &new, now);
        let (attempt, sale) = match written {
            Ok(written) => written,
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
        // Signed from the sale as armed: sent only if that is the sale the attempt was
        // written for.
        let request = match signed {
            Some(signed)
                if signed.amount == attempt.amount
                    && signed.subject == sale.subject
                    && signed.basket == sale.basket =>
            {
                signed
            }
            _ => self.pay_request(&attempt.request_id, code, &sale, &attempt.signing_key),
        };
        Ok((attempt, request, InFlight(&self.slots), claim))
    }

    /// Writes the attempt row on a thread of its own and meanwhile signs its pay request
    /// here: the row's sync waits on the disk and the signature on the CPU, so the two take
    /// the time of the longer. Nothing is sent here: the request leaves only after the row
    /// is durable (invariant 1). The request is signed from `sale` as it was armed; it is
    /// `None` when no thread could be had: it is signed as it is sent then.
    fn write_and_sign(
        &self,
        sale: crate::journal::SaleRow,
        new: &NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> (
        Result<(AttemptRow, crate::journal::SaleRow), JournalError>,
        Option<PayRequest>,
    ) {
        let write = || self.journal.begin_attempt_of(&sale.id, new, now);
        let mut request = self.pay_request(&new.request_id, new.code, &sale, &new.signing_key);
        #[cfg(test)]
        if let Some(hook) = lock_hook(&self.before_attempt_written).as_ref() {
            hook();
        }
        std::thread::scope(|s| {
            let writing = std::thread::Builder::new()
                .name("attempt-write".into())
                .spawn_scoped(s, write);
            let Ok(writing) = writing else {
                return (write(), None);
            };
            // Lets the writer start first where it was queued beside this thread: its SQL is
            // short, and its sync then waits on the disk while this thread signs.
            std::thread::yield_now();
            request.signed = self.gateway.sign_pay(&request);
            // A panic while writing is the scan's, as if it had been written here.
            let written = writing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, Some(request))
        })
    }

    /// The pay request of attempt `request_id` for `code`, from its sale; not signed.
    fn pay_request(
        &self,
        request_id: &str,
        code: &PaymentCode,
        sale: &crate::journal::SaleRow,
        signing_key: &Option<String>,
    ) -> PayRequest {
        PayRequest {
            request_id: request_id.to_string(),
            code: code.clone(),
            amount: sale.amount,
            subject: sale.subject.clone(),
            terminal_id: self.settings.terminal.id.clone(),
            store_id: self.settings.terminal.store_id.clone(),
            signing_key: signing_key.clone(),
            basket: sale.basket.clone(),
            signed: None,
        }
    }

    async fn charge(
        &self,
        attempt: AttemptRow,
        request: PayRequest,
        code: &PaymentCode,
    ) -> ScanOutcome {
        let sale_id = attempt.sale_id.clone();
        // Whether this attempt is what ended the sale (a code paid after the sale's QR was is
        // reversed, and the sale was told paid already).
        let decided = match self.send_and_resolve(attempt, request, code).await {
            Ok(a) => {
                if !a.state.is_final() {
                    // In doubt (or being reversed): the watchdog takes it from here, now.
                    self.wake.notify_one();
                }
                a.state.is_final() && crate::watchdog::decides_sale(&self.journal, &a)
            }
            Err(e) => {
                // The journal failed mid-attempt: the row stays open and the next start
                // resolves it. The register must not treat this as "not paid".
                tracing::error!(sale_id = %sale_id, error = %e, "journal error during payment; attempt left for recovery");
                true
            }
        };
        let view = match self.view(&sale_id) {
            Ok(v) => v,
            Err(e) => {
                return ScanOutcome::Unrecorded {
                    sale_id,
                    error: e.to_string(),
                };
            }
        };
        if !matches!(
            view.state,
            SaleState::AwaitingScan | SaleState::AwaitingPayment
        ) {
            // Paid, ended, or in doubt and left to the resolver: no longer takes scans, and
            // the terminal is free for the next sale (a sale whose QR is still shown keeps
            // taking them).
            let mut slots = lock(&self.slots);
            if slots.armed_id() == Some(sale_id.as_str()) {
                slots.armed = None;
            }
        }
        if view.state.is_final() && decided {
            crate::watchdog::announce_if_final(&*self.observer, &view);
        }
        ScanOutcome::Attempted { sale: view }
    }

    async fn send_and_resolve(
        &self,
        attempt: AttemptRow,
        request: PayRequest,
        code: &PaymentCode,
    ) -> Result<AttemptRow, JournalError> {
        crate::failpoint::hit("before_send");
        tracing::info!(request_id = %request.request_id, code = %code, amount = %request.amount, "pay");
        self.observer.event(&Event::AttemptSent {
            sale_id: attempt.sale_id.clone(),
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
        self.settle(attempt, outcome, sent_at).await
    }

    /// Maps the pay answer of `attempt` (sent at `sent_at`) to its state, and resolves it
    /// when unclear: the same rules for a scanned code and a member's auto-debit.
    pub(super) async fn settle(
        &self,
        attempt: AttemptRow,
        outcome: Outcome<crate::gateway::Paid>,
        sent_at: tokio::time::Instant,
    ) -> Result<AttemptRow, JournalError> {
        let request_id = attempt.request_id.clone();
        let outcome = match outcome {
            Outcome::Success(paid) if !echo_ok(&paid, attempt.amount) => {
                tracing::error!(request_id = %request_id, "pay answer states another amount: not trusted");
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
                    money: Some(paid.money),
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
                tracing::error!(request_id = %request_id, code = %f.code, message = %f.message, "pay refused at the gateway's door: not charged");
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
                tracing::warn!(request_id = %request_id, why = %u, "pay outcome unknown: inquiring");
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
                        // The attempt's own window (a gateway's deadline may be shorter).
                        budget_left: Some(
                            (attempt.deadline_at - attempt.created_at)
                                .to_std()
                                .unwrap_or(self.settings.watchdog.sale_deadline)
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
        let a = match self
            .journal
            .transition(attempt.id, to, Cause::PayAnswer, &c, now)
        {
            Ok((a, _)) => a,
            // The sale's QR was paid first: this payment is given back (docs/design.md §2).
            Err(JournalError::AlreadyPaid { by, .. }) => {
                tracing::warn!(request_id = %attempt.request_id, by = %by, "paid, but the sale was paid already: reversing it");
                let (a, _) = self.journal.transition(
                    attempt.id,
                    AttemptState::Unknown,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some("already_paid".into()),
                        result_message: Some(format!("paid, but the sale was paid by {by} first")),
                        message: Some(
                            "the sale was paid already: this payment is being reversed".into(),
                        ),
                        budget_left: Some(std::time::Duration::ZERO),
                        ..Change::default()
                    },
                    now,
                )?;
                self.journal.expedite_attempt(a.id, now)?;
                let a = self.journal.attempt(a.id)?;
                if !self.settings.resolve_inline {
                    return Ok(a);
                }
                return self
                    .resolver
                    .resolve(a, self.settings.cancel_give_up_after)
                    .await;
            }
            Err(e) => return Err(e),
        };
        if a.state == AttemptState::Succeeded {
            // The sale's QR, if one is shown, is closed now.
            self.resolver
                .nudges
                .siblings(&self.journal, &a.sale_id, &a.request_id);
        }
        tracing::info!(request_id = %a.request_id, sale_id = %a.sale_id, attempt_state = %a.state, "attempt");
        Ok(a)
    }
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
