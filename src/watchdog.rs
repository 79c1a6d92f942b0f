//! Turning an attempt in doubt into a known one: inquire until the deadline, then cancel
//! until a cancel is confirmed. This is the one place that knows the rules; the sale engine
//! calls it for an unclear pay answer and at startup for every attempt left open.
//!
//! Rules (PROTOCOL.md section 6): at least one inquiry before any cancel; a verified paid
//! answer ends `succeeded`, a verified closed/failed one ends `failed`; anything else
//! (waiting, not found, no answer, bad signature) keeps inquiring until the deadline; then
//! cancel with the same request id, retried with backoff until the gateway confirms it.
//! A cancel that refunds a payment the customer made meanwhile ends `cancelled` with
//! "paid then refunded" recorded.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::clock::Clock;
use crate::events::{Event, Observer};
use crate::gateway::{Cancelled, Gateway, Outcome, TradeStatus, Unknown, UnknownKind};
use crate::journal::{AttemptRow, Change, Counter, Journal, JournalError};
use crate::money::Amount;
use crate::state::{AttemptState, Cause};

/// First pause between two cancel requests; it doubles up to [`CANCEL_BACKOFF_MAX`].
const CANCEL_BACKOFF_START: Duration = Duration::from_secs(1);
const CANCEL_BACKOFF_MAX: Duration = Duration::from_secs(60);

pub struct Resolver {
    pub journal: Arc<Journal>,
    pub gateway: Arc<dyn Gateway>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    /// Longest wait for one gateway answer.
    pub timeout: Duration,
    pub inquiry_interval: Duration,
    /// Stop retrying cancels after this long and leave the attempt `cancelling` in the
    /// journal for the next run (a one-shot command must end). `None`: never stop.
    pub cancel_give_up_after: Option<Duration>,
}

/// Cashier messages for the ways an in-doubt attempt ends.
pub const MSG_PAID: &str = "paid";
pub const MSG_CANCELLED: &str = "payment not completed and cancelled: the customer was not charged";
pub const MSG_REFUNDED: &str =
    "the customer paid after the deadline; the payment was cancelled and refunded in full";

impl Resolver {
    /// Drives `attempt` until it is final, or (with `cancel_give_up_after`) until cancelling
    /// has been tried for that long. Returns the attempt as the journal now has it.
    pub async fn resolve(&self, attempt: AttemptRow) -> Result<AttemptRow, JournalError> {
        let mut a = attempt;
        if a.state == AttemptState::Pending {
            // Written but maybe never sent, or sent and unanswered: only the gateway knows.
            a = self.move_to(
                &a,
                AttemptState::Unknown,
                Cause::Recovery,
                change(
                    "recovered",
                    "open at startup: the pay request may have been sent",
                ),
            )?;
        }
        if a.state == AttemptState::Unknown {
            a = self.inquire_until_deadline(a).await?;
        }
        if a.state == AttemptState::Cancelling {
            a = self.cancel_until_confirmed(a).await?;
        }
        Ok(a)
    }

    async fn inquire_until_deadline(&self, mut a: AttemptRow) -> Result<AttemptRow, JournalError> {
        // The deadline is wall time (it survives restarts); a monotonic budget caps the wait
        // too, so a clock stepped backwards cannot stretch it.
        let started = tokio::time::Instant::now();
        let budget = (a.deadline_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        loop {
            let outcome = self.with_timeout(self.gateway.inquire(&a.request_id)).await;
            match outcome {
                Outcome::Success(TradeStatus::Paid(paid)) if echo_ok(&paid, a.amount) => {
                    let c = Change {
                        result_code: Some("paid".into()),
                        result_message: Some("inquiry: paid".into()),
                        gateway_trade_id: Some(paid.trade_id),
                        message: Some(MSG_PAID.into()),
                        ..Change::default()
                    };
                    return self.move_to(&a, AttemptState::Succeeded, Cause::Inquiry, c);
                }
                Outcome::Success(TradeStatus::Paid(paid)) => {
                    let why = format!(
                        "inquiry says paid {:?} under {}, not the {} asked: will cancel",
                        paid.amount.map(|x| x.to_string()),
                        paid.trade_id,
                        a.amount
                    );
                    tracing::error!(request_id = %a.request_id, %why, "amount mismatch");
                    self.note(&a, Counter::Inquiry, UnknownKind::Mismatch.as_str(), &why)?;
                }
                Outcome::Success(TradeStatus::Closed(f)) => {
                    let c = Change {
                        result_code: Some(f.code),
                        result_message: Some(f.message),
                        message: Some(f.cashier),
                        ..Change::default()
                    };
                    return self.move_to(&a, AttemptState::Failed, Cause::Inquiry, c);
                }
                Outcome::Success(TradeStatus::Waiting) => {
                    self.note(&a, Counter::Inquiry, "waiting", "customer is confirming")?;
                    self.observer.event(&Event::CustomerConfirming {
                        sale_id: a.sale_id.clone(),
                        request_id: a.request_id.clone(),
                    });
                }
                Outcome::Success(TradeStatus::NotFound) => {
                    self.note(
                        &a,
                        Counter::Inquiry,
                        "not_found",
                        "gateway has no such payment yet",
                    )?;
                }
                Outcome::Failed(f) => {
                    self.note(&a, Counter::Inquiry, &f.code, &f.message)?;
                }
                Outcome::Unknown(u) => {
                    self.note(&a, Counter::Inquiry, u.kind.as_str(), &u.detail)?;
                }
                Outcome::NotSent(why) => {
                    self.note(&a, Counter::Inquiry, "not_sent", &why)?;
                }
            }
            let now = self.clock.now();
            let left = (a.deadline_at - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(budget.saturating_sub(started.elapsed()));
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(self.inquiry_interval)).await;
            a = self.journal.attempt(a.id)?;
        }
        let a = self.move_to(
            &a,
            AttemptState::Cancelling,
            Cause::Deadline,
            change("cancelling", "no final answer by the deadline: cancelling"),
        )?;
        self.observer.event(&Event::Cancelling {
            sale_id: a.sale_id.clone(),
            request_id: a.request_id.clone(),
        });
        Ok(a)
    }

    async fn cancel_until_confirmed(&self, a: AttemptRow) -> Result<AttemptRow, JournalError> {
        let started = tokio::time::Instant::now();
        let mut backoff = CANCEL_BACKOFF_START;
        loop {
            let outcome = self.with_timeout(self.gateway.cancel(&a.request_id)).await;
            match outcome {
                Outcome::Success(action) => {
                    let refunded = action == Cancelled::Refunded;
                    let (code, text, msg) = if refunded {
                        (
                            "cancelled_refunded",
                            "cancel refunded a payment made meanwhile",
                            MSG_REFUNDED,
                        )
                    } else {
                        (
                            "cancelled",
                            "cancel closed the unpaid payment",
                            MSG_CANCELLED,
                        )
                    };
                    if refunded {
                        tracing::warn!(request_id = %a.request_id, "customer paid before the cancel: refunded in full");
                    }
                    let c = Change {
                        result_code: Some(code.into()),
                        result_message: Some(text.into()),
                        paid_then_refunded: refunded,
                        message: Some(msg.into()),
                        ..Change::default()
                    };
                    let a = self.move_to(&a, AttemptState::Cancelled, Cause::CancelAnswer, c)?;
                    if a.needs_attention.is_some() {
                        self.journal.flag_attention(a.id, None, self.clock.now())?;
                    }
                    return self.journal.attempt(a.id);
                }
                Outcome::Failed(f) => {
                    // A definite refusal (window closed, frozen trade): keep trying, slowly,
                    // and make sure a person hears of it.
                    let why = format!(
                        "cancel refused ({}: {}); reverse this payment by hand if it persists",
                        f.code, f.message
                    );
                    self.note(&a, Counter::Cancel, &f.code, &f.message)?;
                    self.journal
                        .flag_attention(a.id, Some(&why), self.clock.now())?;
                    tracing::error!(request_id = %a.request_id, %why, "cancel refused");
                    self.observer.event(&Event::NeedsAttention {
                        sale_id: a.sale_id.clone(),
                        request_id: a.request_id.clone(),
                        why,
                    });
                    backoff = CANCEL_BACKOFF_MAX;
                }
                Outcome::Unknown(u) => {
                    self.note(&a, Counter::Cancel, u.kind.as_str(), &u.detail)?
                }
                Outcome::NotSent(why) => self.note(&a, Counter::Cancel, "not_sent", &why)?,
            }
            if let Some(limit) = self.cancel_give_up_after
                && started.elapsed() >= limit
            {
                tracing::warn!(request_id = %a.request_id, "cancel not confirmed yet; left for the next run");
                return self.journal.attempt(a.id);
            }
            let jitter = rand::thread_rng().gen_range(0.0..0.25);
            tokio::time::sleep(backoff.mul_f64(1.0 + jitter)).await;
            backoff = (backoff * 2).min(CANCEL_BACKOFF_MAX);
        }
    }

    async fn with_timeout<T>(
        &self,
        call: impl std::future::Future<Output = Outcome<T>>,
    ) -> Outcome<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Unknown(Unknown::new(
                UnknownKind::Timeout,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    fn note(
        &self,
        a: &AttemptRow,
        counter: Counter,
        code: &str,
        text: &str,
    ) -> Result<(), JournalError> {
        tracing::debug!(request_id = %a.request_id, ?counter, code, text, "still in doubt");
        self.journal
            .note(a.id, counter, code, text, self.clock.now())
    }

    fn move_to(
        &self,
        a: &AttemptRow,
        to: AttemptState,
        cause: Cause,
        c: Change,
    ) -> Result<AttemptRow, JournalError> {
        tracing::info!(request_id = %a.request_id, from = %a.state, %to, ?cause, "attempt");
        let (a, _sale) = self
            .journal
            .transition(a.id, to, cause, &c, self.clock.now())?;
        Ok(a)
    }
}

/// A success is trusted only for the amount that was asked (when the answer states one).
pub fn echo_ok(paid: &crate::gateway::Paid, asked: Amount) -> bool {
    paid.amount.is_none_or(|a| a == asked)
}

fn change(code: &str, text: &str) -> Change {
    Change {
        result_code: Some(code.to_string()),
        result_message: Some(text.to_string()),
        ..Change::default()
    }
}
