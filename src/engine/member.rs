//! A bound member charged without a scan (auto-debit, AMS `AGREEMENT_PAYMENT`,
//! docs/protocol.md §18): the attempt is written before the pay leaves (invariant 1), the
//! pay carries the member's access token for that one call, and its answer is mapped and
//! resolved by the same rules as a scanned code's (`scan.rs`, `settle`): paid, not paid, or
//! in doubt until the payment's expiry, then cancelled. A resend uses the same request id.

use super::*;
use crate::events::Event;
use crate::gateway::{AgreementRequest, Outcome, Unknown, UnknownKind};
use crate::journal::NewMemberAttempt;
use crate::paycode::Wallet;
use crate::state::SaleState;

/// The seed's rule: an auto-debit may complete at most a minute after it is asked.
pub const AGREEMENT_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Who is charged, and with what: opened from the member's binding for this one sale.
pub struct MemberCharge {
    pub member_id: String,
    /// The bound wallet's `paymentMethodType`.
    pub wallet_type: String,
    pub access_token: zeroize::Zeroizing<String>,
}

impl Engine {
    /// Charges the armed sale `sale_id` to a bound member; returns the sale as it then stands.
    pub async fn charge_member(
        &self,
        sale_id: &str,
        member: MemberCharge,
    ) -> Result<SaleView, EngineError> {
        if self.is_stopping() {
            return Err(EngineError::Preflight {
                code: "unavailable",
                why: "scanpay is stopping; start the sale again in a moment".into(),
            });
        }
        let now = self.clock.now();
        let expires_in = AGREEMENT_EXPIRY.min(self.settings.watchdog.sale_deadline);
        let deadline =
            now + chrono::Duration::from_std(expires_in).unwrap_or(chrono::TimeDelta::MAX);
        let (attempt, sale, claim) =
            self.start_member(sale_id, &member.member_id, deadline, now)?;
        // A member sale is this one charge: not paid, it ends (the register starts a new
        // sale for a scanned code, or binds the member again).
        if let Err(e) = self.journal.no_more_attempts(sale_id) {
            tracing::warn!(sale_id = %sale_id, error = %e, "the member sale may take another scan");
        }
        let in_flight = InFlight(&self.slots);
        let request = AgreementRequest {
            request_id: attempt.request_id.clone(),
            wallet_type: member.wallet_type,
            access_token: member.access_token,
            amount: attempt.amount,
            subject: sale.subject,
            terminal_id: self.settings.terminal.id.clone(),
            signing_key: attempt.signing_key.clone(),
            basket: sale.basket,
            expires_in,
        };
        crate::failpoint::hit("before_send");
        tracing::info!(request_id = %request.request_id, member_id = %member.member_id, amount = %request.amount, "member auto-debit");
        self.observer.event(&Event::AttemptSent {
            sale_id: attempt.sale_id.clone(),
            request_id: request.request_id.clone(),
            code_masked: attempt.code_masked.clone(),
        });
        self.on_wire
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let on_wire = OnWire(&self.on_wire);
        let sent_at = tokio::time::Instant::now();
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.gateway.pay_agreement(&request))
                .await
            {
                Ok(o) => o,
                Err(_) => Outcome::Unknown(Unknown::new(
                    UnknownKind::Timeout,
                    format!("no answer within {} ms", self.settings.timeout.as_millis()),
                )),
            };
        drop(on_wire);
        drop(request);
        crate::failpoint::hit("after_pay_answer");
        // The wallet no longer takes the member's token: the cashier is told to bind again.
        let outcome = match outcome {
            Outcome::Failed(mut f) if f.code.contains("ACCESS_TOKEN") => {
                f.cashier = "the member's wallet authorization no longer works: bind the wallet again, or scan the customer's payment code".into();
                Outcome::Failed(f)
            }
            other => other,
        };
        let settled = self.settle(attempt, outcome, sent_at).await;
        drop(in_flight);
        drop(claim);
        if let Err(e) = settled {
            tracing::error!(sale_id = %sale_id, error = %e, "journal error during a member's payment; attempt left for recovery");
        }
        let view = self.view(sale_id)?;
        if !matches!(
            view.state,
            SaleState::AwaitingScan | SaleState::AwaitingPayment
        ) {
            let mut slots = lock(&self.slots);
            if slots.armed_id() == Some(sale_id) {
                slots.armed = None;
            }
        }
        if !view.state.is_final() {
            // In doubt: the watchdog takes it from here.
            self.wake.notify_one();
        }
        if view.state.is_final() {
            crate::watchdog::announce_if_final(&*self.observer, &view);
        }
        Ok(view)
    }

    /// Checks the sale is the one at the till with nothing on the wire and writes the
    /// attempt, under the slot lock (as a scan's is).
    fn start_member(
        &self,
        sale_id: &str,
        member_id: &str,
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
        self.start_unscanned(
            sale_id,
            Wallet::AlipayPlus,
            now,
            |request_id, gateway, signing_key| {
                let new = NewMemberAttempt {
                    request_id: request_id.to_string(),
                    gateway,
                    member_id,
                    deadline_at: deadline,
                    signing_key,
                };
                self.journal.begin_member_attempt(sale_id, &new, now)
            },
        )
    }
}
