//! A code the merchant shows for the customer to scan (docs/gateways.md §11): the attempt is
//! written before the provider is asked for the code (invariant 1, as for a scanned one),
//! the code goes to the register and the outputs, and the watchdog resolves it like any
//! payment in doubt, with the code's expiry as its deadline. A payment code scanned while it
//! is shown is charged beside it; the first that pays wins (`journal::attempts`).

use super::*;
use crate::events::Event;
use crate::gateway::{Outcome, PresentRequest, Presentation};
use crate::journal::{Change, NewPresented};
use crate::paycode::Wallet;
use crate::state::{AttemptState, Cause};

/// How long after a presented code's expiry at the provider its sale is cancelled: by
/// then the provider has closed it itself, whatever the clocks' small differences.
pub const CLOSED_BY_PROVIDER_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Engine {
    /// Shows a code for the armed sale `sale_id`: an order's QR, or the payment an entry
    /// code's page asked for. Returns the sale, with its `qr` once the provider issued one.
    pub async fn present(&self, sale_id: &str, how: Presentation) -> Result<SaleView, EngineError> {
        if self.is_stopping() {
            return Err(EngineError::Preflight {
                code: "unavailable",
                why: "scanpay is stopping; start the sale again in a moment".into(),
            });
        }
        let wallet = Wallet::Alipay;
        let now = self.clock.now();
        // Whole minutes (the Open Platform's unit), so the provider closes the code exactly
        // then; the watchdog inquires until a little after, and only then cancels: a code
        // can never be paid after its sale has ended (docs/gateways.md §11).
        let expires_in = std::time::Duration::from_secs(
            self.settings.qr_timeout.as_secs().div_ceil(60).max(1) * 60,
        );
        let expiry = now + chrono::Duration::from_std(expires_in).unwrap_or(chrono::TimeDelta::MAX);
        let deadline =
            expiry + chrono::Duration::from_std(CLOSED_BY_PROVIDER_MARGIN).unwrap_or_default();
        let method = how.method();
        let (attempt, sale, claim) =
            self.start_presented(sale_id, wallet, method, deadline, now)?;
        let request_id = attempt.request_id.clone();
        let in_flight = InFlight(&self.slots);
        let request = PresentRequest {
            request_id: request_id.clone(),
            wallet,
            how,
            amount: attempt.amount,
            subject: sale.subject,
            terminal_id: self.settings.terminal.id.clone(),
            store_id: self.settings.terminal.store_id.clone(),
            signing_key: attempt.signing_key.clone(),
            basket: sale.basket,
            expires_in,
        };
        crate::failpoint::hit("before_send");
        tracing::info!(request_id = %request_id, amount = %request.amount, method = method.as_str(), "present");
        let sent_at = tokio::time::Instant::now();
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.gateway.present(&request)).await
            {
                Ok(o) => o,
                Err(_) => Outcome::Unknown(crate::gateway::Unknown::new(
                    crate::gateway::UnknownKind::Timeout,
                    format!("no answer within {} ms", self.settings.timeout.as_millis()),
                )),
            };
        crate::failpoint::hit("after_pay_answer");
        let left = (expires_in + CLOSED_BY_PROVIDER_MARGIN).saturating_sub(sent_at.elapsed());
        let now = self.clock.now();
        let result = match outcome {
            Outcome::Success(p) => {
                // What the customer is told: the provider's expiry, never past the sale's.
                let expires_at = p.expires_at.map_or(expiry, |at| at.min(expiry));
                let (a, _) = self.journal.transition(
                    attempt.id,
                    AttemptState::Unknown,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some("code_issued".into()),
                        result_message: Some("code issued: waiting for the customer".into()),
                        message: Some(
                            crate::state::SaleState::AwaitingPayment
                                .cashier_default()
                                .into(),
                        ),
                        budget_left: Some(left),
                        presented: Some((p.content.clone(), Some(expires_at))),
                        ..Change::default()
                    },
                    now,
                )?;
                self.observer.event(&Event::QrPresented {
                    sale_id: a.sale_id.clone(),
                    request_id: a.request_id.clone(),
                    method: method.as_str(),
                    content: p.content,
                    amount: a.amount,
                    expires_at,
                });
                Ok(())
            }
            Outcome::Unknown(u) => {
                // No code reached the register, so no customer can pay it: close it now.
                tracing::warn!(request_id = %request_id, why = %u, "code not issued clearly: closing it");
                let (a, _) = self.journal.transition(
                    attempt.id,
                    AttemptState::Unknown,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some(u.kind.as_str().into()),
                        result_message: Some(u.detail.clone()),
                        message: Some(
                            "the QR could not be issued: closing it with the gateway".into(),
                        ),
                        budget_left: Some(std::time::Duration::ZERO),
                        ..Change::default()
                    },
                    now,
                )?;
                self.journal.expedite_attempt(a.id, now)?;
                self.observer.event(&Event::InDoubt {
                    sale_id: a.sale_id.clone(),
                    request_id: a.request_id.clone(),
                    why: u.to_string(),
                });
                Ok(())
            }
            Outcome::Failed(f) | Outcome::Rejected(f) => self
                .journal
                .transition(
                    attempt.id,
                    AttemptState::Failed,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some(f.code.clone()),
                        result_message: Some(f.message.clone()),
                        message: Some(format!("no QR: {} ({})", f.cashier, f.code)),
                        ..Change::default()
                    },
                    now,
                )
                .map(|_| ()),
            Outcome::NotSent(why) => self
                .journal
                .transition(
                    attempt.id,
                    AttemptState::Failed,
                    Cause::PayAnswer,
                    &Change {
                        result_code: Some(NOT_SENT.into()),
                        result_message: Some(why),
                        message: Some("no QR: the gateway could not be reached".into()),
                        ..Change::default()
                    },
                    now,
                )
                .map(|_| ()),
        };
        drop(in_flight);
        drop(claim);
        // The watchdog owns it from here: inquiries until the customer pays or it expires.
        self.wake.notify_one();
        result?;
        let view = self.view(sale_id)?;
        if view.state.is_final() {
            crate::watchdog::announce_if_final(&*self.observer, &view);
        }
        Ok(view)
    }

    /// Checks the sale is the one at the till with nothing on the wire, and writes the
    /// attempt, under the slot lock (as a scan's is).
    fn start_presented(
        &self,
        sale_id: &str,
        wallet: Wallet,
        method: crate::paycode::PayMethod,
        deadline: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<
        (
            crate::journal::AttemptRow,
            crate::journal::SaleRow,
            crate::watchdog::Claim,
        ),
        EngineError,
    > {
        self.start_unscanned(sale_id, wallet, now, |request_id, gateway, signing_key| {
            let new = NewPresented {
                request_id: request_id.to_string(),
                gateway,
                wallet,
                method,
                deadline_at: deadline,
                signing_key,
            };
            self.journal.begin_presented(sale_id, &new, now)
        })
    }

    /// The checks and the claim every attempt without a scanned code needs, under the slot
    /// lock (as a scan's are): the sale is the one at the till, nothing is on the wire. Then
    /// `write` journals the attempt under a fresh request id for `wallet`'s gateway.
    pub(super) fn start_unscanned(
        &self,
        sale_id: &str,
        wallet: Wallet,
        now: chrono::DateTime<chrono::Utc>,
        write: impl FnOnce(
            &str,
            &str,
            Option<String>,
        ) -> Result<
            (crate::journal::AttemptRow, crate::journal::SaleRow),
            JournalError,
        >,
    ) -> Result<
        (
            crate::journal::AttemptRow,
            crate::journal::SaleRow,
            crate::watchdog::Claim,
        ),
        EngineError,
    > {
        let mut slots = lock(&self.slots);
        if slots.armed_id() != Some(sale_id) {
            return Err(EngineError::NotWaiting(sale_id.to_string()));
        }
        if slots.in_flight.is_some() {
            return Err(EngineError::InProgress(sale_id.to_string()));
        }
        let request_id = format!(
            "{}{}",
            new_request_id(&self.settings.terminal.id, now),
            self.gateway.request_id_tag(wallet)
        );
        let Some(claim) = self.owners.claim(&request_id) else {
            return Err(EngineError::InProgress(sale_id.to_string()));
        };
        let gateway = self.gateway.route(wallet).unwrap_or(self.gateway.name());
        let (attempt, sale) = match write(&request_id, gateway, self.gateway.signing_key(wallet)) {
            Ok(written) => written,
            Err(JournalError::SaleState { .. } | JournalError::NoAttemptsLeft(_)) => {
                return Err(EngineError::NotWaiting(sale_id.to_string()));
            }
            Err(JournalError::AttemptOpen(id)) => return Err(EngineError::InProgress(id)),
            Err(e) => return Err(e.into()),
        };
        slots.in_flight = Some(request_id);
        Ok((attempt, sale, claim))
    }

    /// Resolves the open attempts of `sale_id` here and now (a one-shot command has no
    /// watchdog): its QR is inquired until paid or expired and cancelled. Returns the sale.
    pub async fn resolve_sale(&self, sale_id: &str) -> Result<SaleView, EngineError> {
        let mut decided = false;
        for attempt in self.journal.attempts(sale_id)? {
            if attempt.state.is_final() {
                continue;
            }
            let Some(_claim) = self.owners.claim(&attempt.request_id) else {
                continue;
            };
            let a = self.journal.attempt(attempt.id)?;
            let a = self
                .resolver
                .resolve(a, self.settings.cancel_give_up_after)
                .await?;
            decided |= a.state.is_final() && crate::watchdog::decides_sale(&self.journal, &a);
        }
        let view = self.view(sale_id)?;
        if !matches!(
            view.state,
            crate::state::SaleState::AwaitingScan | crate::state::SaleState::AwaitingPayment
        ) {
            let mut slots = lock(&self.slots);
            if slots.armed_id() == Some(sale_id) {
                slots.armed = None;
            }
        }
        if decided {
            crate::watchdog::announce_if_final(&*self.observer, &view);
        }
        Ok(view)
    }
}
