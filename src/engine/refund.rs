//! Refunds of paid sales, and of payments only the provider recorded: journaled under their
//! own id before they are sent, resent under it until the gateway states the outcome.

use super::sale::check_text;
use super::*;
use crate::money::Amount;
use crate::view::RefundView;
use crate::watchdog::{Claim, Work};

impl Engine {
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
        tracing::info!(sale_id = %sale_id, refund = %row.request_id, %amount, "refund");
        crate::failpoint::hit("before_refund_send");
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
        self.refund_attempt(
            request_id,
            amount,
            "reconciliation: the provider kept this payment for a sale the journal has as not paid",
        )
        .await
    }

    /// Gives back `amount` of the payment `request_id` outside its sale's own refunds: one
    /// reconciliation found unrecorded, or the second payment of a sale paid twice. Once only,
    /// as [`Engine::refund_unrecorded_payment`] says.
    pub async fn refund_attempt(
        &self,
        request_id: &str,
        amount: Amount,
        reason: &str,
    ) -> Result<RefundView, EngineError> {
        let now = self.clock.now();
        let row = self
            .journal
            .begin_recovery_refund(request_id, amount, reason, now)?;
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
