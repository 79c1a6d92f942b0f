//! Turning every attempt in doubt into a known one: inquire until the deadline, then cancel
//! until a cancel is confirmed, through restarts and outages.
//!
//! [`Resolver`] holds the rules for one attempt; [`Watchdog`] owns every open attempt in the
//! journal that nobody else is working on, and keeps resolving them for as long as the daemon
//! runs. The sale engine resolves its own fresh attempt in line (so the cashier gets an answer)
//! and hands it to the watchdog if it is still open when the engine stops waiting.
//! [`Owners`] makes sure no attempt is worked on twice at the same time.
//!
//! Rules (docs/protocol.md §9): at least one inquiry before any cancel; a verified paid
//! answer ends `succeeded`, a verified closed/failed one ends `failed`; anything else
//! (waiting, not found, no answer, bad signature) keeps inquiring until the deadline; then
//! cancel with the same request id, retried with backoff until the gateway confirms it. A
//! cancel that refunds a payment the customer made meanwhile ends `cancelled` with "paid then
//! refunded" recorded. An attempt whose cancel window is about to close is flagged for a
//! person well before it closes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{Backoff, Clock};
use crate::events::{Event, Observer};
use crate::gateway::{
    Cancelled, Gateway, Outcome, RefundRequest, TradeStatus, Unknown, UnknownKind,
};
use crate::journal::{AttemptRow, Change, Counter, Journal, JournalError, RefundRow};
use crate::money::Amount;
use crate::state::{AttemptState, Cause, RefundState};
use crate::view::SaleView;

/// First pause between two cancel requests; it doubles up to [`CANCEL_BACKOFF_MAX`].
const CANCEL_BACKOFF_START: Duration = Duration::from_secs(1);
const CANCEL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Raise the alarm this long before an attempt's cancel window closes.
const CANCEL_WINDOW_ALERT: chrono::TimeDelta = chrono::TimeDelta::hours(2);
/// How often the watchdog looks for open attempts nobody works on.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// With nothing open the sweep only keeps the heartbeat: the engine wakes the watchdog when
/// it hands an attempt over, so an idle daemon need not wake every second.
const SWEEP_IDLE_EVERY: Duration = Duration::from_secs(10);

pub use crate::state::NOT_CREATED;

/// Why an attempt is flagged once its cancel window has closed unreversed.
pub const WINDOW_CLOSED: &str = "the cancel window has closed and the payment is not reversed: check it with the provider and refund by hand";

/// An operator's "retry now", counted, so that a resolver whose request was out when it
/// was asked still sees it before its next pause.
#[derive(Default)]
pub struct RetryNow {
    asked: AtomicU64,
    notify: tokio::sync::Notify,
}

impl RetryNow {
    pub fn ask(&self) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// Verified word from the provider (a payment notification) that an attempt moved: its
/// resolver inquires at once instead of at its next pause. It never decides anything
/// itself; the inquiry does.
#[derive(Default)]
pub struct Nudges {
    ids: Mutex<HashSet<String>>,
    notify: tokio::sync::Notify,
}

impl Nudges {
    pub fn nudge(&self, request_id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        // Nudges of attempts nobody resolves any more are not kept forever.
        if ids.len() >= 1024 {
            ids.clear();
        }
        ids.insert(request_id.to_string());
        drop(ids);
        self.notify.notify_waiters();
    }

    /// Every open attempt of `sale_id` but `except`: the sale was paid by `except`, so they
    /// are cancelled now (the journal expedited them) rather than at their next inquiry.
    pub fn siblings(&self, journal: &Journal, sale_id: &str, except: &str) {
        if let Ok(all) = journal.attempts(sale_id) {
            for a in all {
                if a.request_id != except && !a.state.is_final() {
                    self.nudge(&a.request_id);
                }
            }
        }
    }

    fn take(&self, request_id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(request_id)
    }
}

/// How a pause between two cancels ended.
enum Pause {
    Slept,
    Retry,
    Stopped,
}

/// Cashier messages for the ways an in-doubt attempt ends.
pub const MSG_PAID: &str = "paid";
pub const MSG_CANCELLED: &str = "payment not completed and cancelled: the customer was not charged";
pub const MSG_QR_CLOSED: &str = "the QR was closed before the customer paid: not charged";
pub const MSG_REFUNDED: &str =
    "the customer paid after the deadline; the payment was cancelled and refunded in full";

/// What is being worked on right now: attempts and refunds, by request id. Keyed by the
/// request id, not the row id, so the engine can claim an attempt before its row exists: the
/// watchdog's sweep can never see a fresh attempt unowned.
#[derive(Default)]
pub struct Owners(Mutex<HashSet<(Work, String)>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    Attempt,
    Refund,
}

/// Ownership of one attempt or refund; released on drop.
pub struct Claim {
    owners: Arc<Owners>,
    key: (Work, String),
}

impl Owners {
    /// Takes the attempt sent under `request_id` unless someone already works on it.
    pub fn claim(self: &Arc<Self>, request_id: &str) -> Option<Claim> {
        self.claim_work(Work::Attempt, request_id)
    }

    pub fn claim_work(self: &Arc<Self>, work: Work, request_id: &str) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (work, request_id.to_string());
        set.insert(key.clone()).then(|| Claim {
            owners: self.clone(),
            key,
        })
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self.owners.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.key);
    }
}

pub struct Resolver {
    pub journal: Arc<Journal>,
    pub gateway: Arc<dyn Gateway>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    /// Longest wait for one gateway answer.
    pub timeout: Duration,
    /// Fixed pause between inquiries; `None`: the gateway's policy, with jitter.
    pub inquiry_interval: Option<Duration>,
    /// Cancelled when the daemon stops: a resolver then returns at its next pause, leaving
    /// the attempt open in the journal for the next start (a request on the wire first gets
    /// its answer or times out).
    pub stop: CancellationToken,
    /// An operator's "retry now": every resolver cancelling sends its next cancel (or
    /// refund) at once, one asked while its request was out included.
    pub retry_now: Arc<RetryNow>,
    /// Payment notifications: the attempt named is inquired at once.
    pub nudges: Arc<Nudges>,
}

impl Resolver {
    /// Sleeps `pause` between two inquiries of `request_id`, cut short by a notification
    /// about it; false when the daemon stopped meanwhile.
    async fn pause_or_nudge(&self, pause: Duration, request_id: &str) -> bool {
        let end = tokio::time::Instant::now() + pause;
        loop {
            let notified = self.nudges.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.nudges.take(request_id) {
                return true;
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                _ = notified => {}
                _ = tokio::time::sleep_until(end) => return true,
            }
        }
    }

    /// Whether the daemon is stopping: no new request is sent, nothing new is decided.
    fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Sleeps `pause`; false when the daemon stopped meanwhile.
    async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
            _ = self.stop.cancelled() => false,
        }
    }

    /// Sleeps `pause` between two cancels, cut short by an operator's retry asked since
    /// `seen` (the retries this resolver has answered), during the pause or before it.
    async fn pause_or_retry(&self, pause: Duration, seen: &mut u64) -> Pause {
        let notified = self.retry_now.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let asked = self.retry_now.asked.load(Ordering::SeqCst);
        if asked != *seen {
            *seen = asked;
            return Pause::Retry;
        }
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Pause::Stopped,
            _ = notified => {
                *seen = self.retry_now.asked.load(Ordering::SeqCst);
                Pause::Retry
            }
            _ = tokio::time::sleep(pause) => Pause::Slept,
        }
    }

    /// Drives `attempt` until it is final, or (with `give_up_after`) until cancelling has
    /// been tried for that long; the attempt then stays `cancelling` in the journal for the
    /// watchdog or the next run. Returns the attempt as the journal now has it.
    pub async fn resolve(
        &self,
        attempt: AttemptRow,
        give_up_after: Option<Duration>,
    ) -> Result<AttemptRow, JournalError> {
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
            a = self.cancel_until_confirmed(a, give_up_after).await?;
        }
        Ok(a)
    }

    fn next_inquiry_pause(&self, request_id: &str) -> Duration {
        if let Some(fixed) = self.inquiry_interval {
            return fixed;
        }
        let policy = self.gateway.policy_for(request_id);
        let (min, max) = (policy.inquiry_interval_min, policy.inquiry_interval_max);
        if max <= min {
            return min;
        }
        rand::thread_rng().gen_range(min..=max)
    }

    async fn inquire_until_deadline(&self, mut a: AttemptRow) -> Result<AttemptRow, JournalError> {
        // The in-doubt window runs on the monotonic clock: a step of the wall clock (NTP
        // after a boot without RTC, an operator's `date`) neither cancels every attempt at
        // once nor stretches a wait. What is left of it is kept with each inquiry, so a
        // restart resumes that, not the wall-time deadline.
        let started = tokio::time::Instant::now();
        let budget = a.budget_left(self.clock.now());
        // A gateway that wants a pause before its first inquiry (WeChat Pay: 5 s after the
        // pay, docs/gateways.md §8.6) gets it, within the budget; a restarted one has had it.
        let first = self.gateway.policy_for(&a.request_id).first_inquiry_after;
        let since = (self.clock.now() - a.created_at)
            .to_std()
            .unwrap_or_default();
        if let Some(wait) = first.checked_sub(since)
            && !wait.is_zero()
            && !a.expedited()
            && !self.pause(wait.min(budget)).await
        {
            return Ok(a);
        }
        loop {
            if self.stopped() {
                return Ok(a);
            }
            let outcome = self.with_timeout(self.gateway.inquire(&a.request_id)).await;
            // Measured after the answer, so a restart resumes what was really left.
            let left_now = budget.saturating_sub(started.elapsed());
            match outcome {
                Outcome::Success(TradeStatus::Paid(paid)) if echo_ok(&paid, a.amount) => {
                    let c = Change {
                        result_code: Some("paid".into()),
                        result_message: Some("inquiry: paid".into()),
                        gateway_trade_id: Some(paid.trade_id),
                        money: Some(paid.money),
                        message: Some(MSG_PAID.into()),
                        ..Change::default()
                    };
                    return match self.move_to(&a, AttemptState::Succeeded, Cause::Inquiry, c) {
                        // The register replaced the sale meanwhile: give the money back.
                        Err(JournalError::Superseded { by, .. }) => self.start_cancelling(
                            &a,
                            &format!("paid, but superseded by sale {by}: reversing it"),
                        ),
                        // The sale's other way of paying won (its QR, or a scanned code).
                        Err(JournalError::AlreadyPaid { by, .. }) => self.start_cancelling(
                            &a,
                            &format!("paid, but the sale was paid by {by} first: reversing it"),
                        ),
                        other => other,
                    };
                }
                Outcome::Success(TradeStatus::Paid(paid)) => {
                    let why = format!(
                        "inquiry says paid {:?} under {}, not the {} asked: will cancel",
                        paid.amount.map(|x| x.to_string()),
                        paid.trade_id,
                        a.amount
                    );
                    tracing::error!(request_id = %a.request_id, %why, "amount mismatch");
                    self.note(
                        &a,
                        Some(left_now),
                        Counter::Inquiry,
                        UnknownKind::Mismatch.as_str(),
                        &why,
                    )?;
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
                    self.note(
                        &a,
                        Some(left_now),
                        Counter::Inquiry,
                        "waiting",
                        "customer is confirming",
                    )?;
                    if !self.beside_paid(&a) {
                        self.observer.event(&Event::CustomerConfirming {
                            sale_id: a.sale_id.clone(),
                            request_id: a.request_id.clone(),
                        });
                    }
                }
                Outcome::Success(TradeStatus::Reversed(_)) => {
                    // Someone's cancel already gave the money back: the cancel path records
                    // it (a resent cancel is answered the same way).
                    return self.start_cancelling(&a, "inquiry: paid, then reversed by a cancel");
                }
                Outcome::Success(TradeStatus::NotFound) => {
                    self.note(
                        &a,
                        Some(left_now),
                        Counter::Inquiry,
                        "not_found",
                        "gateway has no such payment yet",
                    )?;
                }
                Outcome::Failed(f) | Outcome::Rejected(f) => {
                    self.note(&a, Some(left_now), Counter::Inquiry, &f.code, &f.message)?
                }
                Outcome::Unknown(u) => self.note(
                    &a,
                    Some(left_now),
                    Counter::Inquiry,
                    u.kind.as_str(),
                    &u.detail,
                )?,
                Outcome::NotSent(why) => {
                    self.note(&a, Some(left_now), Counter::Inquiry, "not_sent", &why)?
                }
            }
            let left = if a.expedited() {
                Duration::ZERO
            } else {
                budget.saturating_sub(started.elapsed())
            };
            if left.is_zero() {
                break;
            }
            if !self
                .pause_or_nudge(
                    left.min(self.next_inquiry_pause(&a.request_id)),
                    &a.request_id,
                )
                .await
            {
                return Ok(a);
            }
            a = self.journal.attempt(a.id)?;
            if a.expedited() {
                // The register gave up on it (or superseded it): cancel now.
                break;
            }
        }
        self.start_cancelling(&a, "no final answer by the deadline: cancelling")
    }

    fn start_cancelling(&self, a: &AttemptRow, why: &str) -> Result<AttemptRow, JournalError> {
        // Stopping: the attempt stays in doubt; the next start inquires and cancels it.
        if self.stopped() {
            return Ok(a.clone());
        }
        let a = self.move_to(
            a,
            AttemptState::Cancelling,
            Cause::Deadline,
            change("cancelling", why),
        )?;
        crate::failpoint::hit("before_cancel");
        if !self.beside_paid(&a) {
            self.observer.event(&Event::Cancelling {
                sale_id: a.sale_id.clone(),
                request_id: a.request_id.clone(),
            });
        }
        Ok(a)
    }

    /// Whether another attempt of `a`'s sale paid it: closing `a` then is bookkeeping, not
    /// news for the cashier or the customer (the sale was told paid already).
    fn beside_paid(&self, a: &AttemptRow) -> bool {
        a.state != AttemptState::Succeeded && !decides_sale(&self.journal, a)
    }

    async fn cancel_until_confirmed(
        &self,
        a: AttemptRow,
        give_up_after: Option<Duration>,
    ) -> Result<AttemptRow, JournalError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Backoff::new(CANCEL_BACKOFF_START, CANCEL_BACKOFF_MAX);
        // Retries asked before this cancel loop began are answered by its first cancel.
        let mut retries_seen = self.retry_now.asked.load(Ordering::SeqCst);
        let policy = self.gateway.policy_for(&a.request_id);
        let closes_at = policy.cancel_window.closes_at(a.created_at);
        // Not sooner than the gateway allows after the pay (WeChat Pay: 15 s).
        let not_before =
            a.created_at + chrono::Duration::from_std(policy.cancel_not_before).unwrap_or_default();
        if let Ok(wait) = (not_before - self.clock.now()).to_std()
            && !wait.is_zero()
            && !self.pause(wait).await
        {
            return self.journal.attempt(a.id);
        }
        loop {
            if self.stopped() {
                return self.journal.attempt(a.id);
            }
            // An operator may ask for the refund once the window has closed, where the
            // gateway's policy leaves it to a person.
            let refund = self.clock.now() >= closes_at
                && (policy.refund_after_window || self.journal.refund_asked(&a.request_id)?);
            let outcome = if refund {
                // Past the window a cancel cannot reverse it: a full refund under a fixed id.
                self.with_timeout(crate::gateway::reverse_by_refund(
                    &*self.gateway,
                    &a.request_id,
                ))
                .await
            } else {
                self.with_timeout(self.gateway.cancel(&a.request_id)).await
            };
            match outcome {
                // A presented code the customer never scanned: the platform may say "no such
                // trade" and close it all the same (docs/protocol.md §17). Closed unpaid.
                Outcome::Success(Cancelled::NotCreated { code }) if a.method.presented() => {
                    let c = Change {
                        result_code: Some("cancelled".into()),
                        result_message: Some(format!(
                            "cancel closed the code before the customer scanned it ({code})"
                        )),
                        message: Some(MSG_QR_CLOSED.into()),
                        ..Change::default()
                    };
                    let a = self.move_to(&a, AttemptState::Cancelled, Cause::CancelAnswer, c)?;
                    return self.journal.attempt(a.id);
                }
                Outcome::Success(Cancelled::NotCreated { code }) => {
                    // No such payment at the provider: the pay request never created one
                    // (lost before it was processed, or never sent). Not charged. A trade
                    // created late anyway shows on the provider's bill: reconciliation
                    // checks every attempt that ended this way (docs/gateways.md).
                    tracing::warn!(request_id = %a.request_id, code, "the gateway never created this payment: not charged");
                    let c = Change {
                        result_code: Some(NOT_CREATED.into()),
                        result_message: Some(format!("cancel: no such payment ({code})")),
                        message: Some(format!(
                            "not charged: the gateway never created this payment ({code})"
                        )),
                        ..Change::default()
                    };
                    let a = self.move_to(&a, AttemptState::Failed, Cause::CancelAnswer, c)?;
                    if a.needs_attention.is_some() {
                        self.journal.flag_attention(a.id, None, self.clock.now())?;
                    }
                    return self.journal.attempt(a.id);
                }
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
                Outcome::Failed(f) | Outcome::Rejected(f) => {
                    // A definite refusal (frozen trade, merchant balance, our credentials
                    // refused at the door): keep trying,
                    // slowly, and make sure a person hears of it.
                    let why = format!(
                        "cancel refused ({}: {}); reverse this payment by hand if it persists",
                        f.code, f.message
                    );
                    self.note(&a, None, Counter::Cancel, &f.code, &f.message)?;
                    self.alert(&a, &why)?;
                    backoff.hold_at_max();
                }
                Outcome::Unknown(u) => {
                    self.note(&a, None, Counter::Cancel, u.kind.as_str(), &u.detail)?
                }
                Outcome::NotSent(why) => self.note(&a, None, Counter::Cancel, "not_sent", &why)?,
            }
            let now = self.clock.now();
            if now >= closes_at && !refund {
                self.alert(&a, WINDOW_CLOSED)?;
            } else if now < closes_at && closes_at - now <= CANCEL_WINDOW_ALERT {
                let why = format!(
                    "cancel not confirmed and its window closes at {}: restore the gateway connection",
                    crate::clock::to_journal(closes_at)
                );
                self.alert(&a, &why)?;
            }
            if let Some(limit) = give_up_after
                && started.elapsed() >= limit
            {
                tracing::warn!(request_id = %a.request_id, "cancel not confirmed yet; handed to the watchdog");
                return self.journal.attempt(a.id);
            }
            let jitter = rand::thread_rng().gen_range(0.0..0.25);
            match self
                .pause_or_retry(backoff.pause().mul_f64(1.0 + jitter), &mut retries_seen)
                .await
            {
                Pause::Stopped => return self.journal.attempt(a.id),
                Pause::Retry => backoff = Backoff::new(CANCEL_BACKOFF_START, CANCEL_BACKOFF_MAX),
                Pause::Slept => {}
            }
        }
    }

    /// Sends refund `r` (again, with the same id: providers refund an id at most once) until
    /// the gateway states its outcome, or until `give_up_after`. A refund the gateway says it
    /// has not received is resent; one it refuses ends `failed`.
    pub async fn resolve_refund(
        &self,
        r: RefundRow,
        give_up_after: Option<Duration>,
    ) -> Result<RefundRow, JournalError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Backoff::new(CANCEL_BACKOFF_START, CANCEL_BACKOFF_MAX);
        let attempt = self.journal.attempt(r.attempt_id)?;
        let request = RefundRequest {
            refund_id: r.request_id.clone(),
            payment_request_id: attempt.request_id.clone(),
            trade_id: attempt.gateway_trade_id.clone(),
            amount: r.amount,
            reason: r.reason.clone(),
        };
        let mut r = r;
        loop {
            if self.stopped() {
                return Ok(r);
            }
            // After an unclear first try, ask before resending.
            if r.state == RefundState::Unknown
                && let Outcome::Success(true) = self
                    .with_timeout(self.gateway.inquire_refund(&request))
                    .await
            {
                return self.refund_to(
                    &r,
                    RefundState::Succeeded,
                    "refunded",
                    "refund query: done",
                    None,
                );
            }
            let outcome = self.with_timeout(self.gateway.refund(&request)).await;
            match outcome {
                Outcome::Success(done) => {
                    return self.refund_to(
                        &r,
                        RefundState::Succeeded,
                        "refunded",
                        "refund: done",
                        done.provider_refund_id.as_deref(),
                    );
                }
                Outcome::Failed(f) => {
                    tracing::warn!(refund = %r.request_id, code = %f.code, "refund refused");
                    return self.refund_to(&r, RefundState::Failed, &f.code, &f.message, None);
                }
                Outcome::NotSent(why) if r.state == RefundState::Pending => {
                    // It never left: nothing happened, the refund simply failed.
                    return self.refund_to(&r, RefundState::Failed, "not_sent", &why, None);
                }
                Outcome::Rejected(f) if r.state == RefundState::Pending => {
                    // Refused at the door: nothing happened either.
                    return self.refund_to(&r, RefundState::Failed, &f.code, &f.message, None);
                }
                Outcome::Rejected(f) => {
                    tracing::warn!(refund = %r.request_id, code = %f.code, "refund retry refused at the door")
                }
                Outcome::NotSent(why) => {
                    tracing::debug!(refund = %r.request_id, %why, "refund retry not sent")
                }
                Outcome::Unknown(u) => {
                    if r.state == RefundState::Pending {
                        r = self.refund_to(
                            &r,
                            RefundState::Unknown,
                            u.kind.as_str(),
                            &u.detail,
                            None,
                        )?;
                    }
                }
            }
            if let Some(limit) = give_up_after
                && started.elapsed() >= limit
            {
                return Ok(r);
            }
            if !self.pause(backoff.pause()).await {
                return Ok(r);
            }
        }
    }

    fn refund_to(
        &self,
        r: &RefundRow,
        to: RefundState,
        code: &str,
        text: &str,
        provider_id: Option<&str>,
    ) -> Result<RefundRow, JournalError> {
        tracing::info!(refund = %r.request_id, from = %r.state, %to, "refund");
        // A refund that went through is known by the provider's own id where it gives one
        // (AMS `refundId`), else by our request id, which is how the provider names it
        // (the Open Platform's `out_request_no`; its answer carries only the trade's number).
        let provider_id = match to {
            RefundState::Succeeded => provider_id.or(Some(r.request_id.as_str())),
            _ => provider_id,
        };
        let row =
            self.journal
                .refund_transition(r.id, to, code, text, provider_id, self.clock.now())?;
        self.observer.event(&Event::Refund {
            refund: crate::view::RefundView::new(&row),
        });
        Ok(row)
    }

    /// Flags the attempt for a person (once per distinct reason) and tells the outputs. An
    /// attempt an operator settled by hand is not flagged again: it is still resolved, but
    /// the person has seen to it (docs/operations.md, "Needs attention").
    fn alert(&self, a: &AttemptRow, why: &str) -> Result<(), JournalError> {
        let current = self.journal.attempt(a.id)?;
        if current.needs_attention.as_deref() == Some(why) {
            return Ok(());
        }
        if self.journal.settled_by_hand(&a.request_id, why)? {
            tracing::warn!(request_id = %a.request_id, why, "settled by hand earlier: not flagged again");
            return Ok(());
        }
        tracing::error!(request_id = %a.request_id, why, "needs attention");
        self.journal
            .flag_attention(a.id, Some(why), self.clock.now())?;
        self.observer.event(&Event::NeedsAttention {
            sale_id: a.sale_id.clone(),
            request_id: a.request_id.clone(),
            why: why.to_string(),
        });
        Ok(())
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

    /// Records a request that changed nothing; `budget` is what is left of the in-doubt
    /// window, kept with it so a restart resumes the same budget (docs/operations.md).
    fn note(
        &self,
        a: &AttemptRow,
        budget: Option<Duration>,
        counter: Counter,
        code: &str,
        text: &str,
    ) -> Result<(), JournalError> {
        tracing::debug!(request_id = %a.request_id, ?counter, code, text, "still in doubt");
        self.journal
            .note(a.id, counter, code, text, budget, self.clock.now())
    }

    fn move_to(
        &self,
        a: &AttemptRow,
        to: AttemptState,
        cause: Cause,
        c: Change,
    ) -> Result<AttemptRow, JournalError> {
        tracing::info!(request_id = %a.request_id, sale_id = %a.sale_id, from = %a.state, attempt_state = %to, ?cause, "attempt");
        let (a, _sale) = self
            .journal
            .transition(a.id, to, cause, &c, self.clock.now())?;
        if to == AttemptState::Succeeded {
            self.nudges
                .siblings(&self.journal, &a.sale_id, &a.request_id);
        }
        Ok(a)
    }
}

/// Owns every open attempt nobody else works on, for as long as the daemon runs.
pub struct Watchdog {
    pub resolver: Arc<Resolver>,
    pub owners: Arc<Owners>,
    /// Unix seconds of the last sweep, for the systemd watchdog ping.
    pub heartbeat: Arc<AtomicI64>,
    /// Notified when the engine hands over an attempt, so it is taken up at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Where the resolvers run, so that the daemon's stop joins them.
    pub tasks: TaskTracker,
}

impl Watchdog {
    /// Claims and starts resolving every open attempt not yet owned; returns how many.
    pub fn sweep(&self) -> Result<usize, JournalError> {
        let mut started = 0;
        for attempt in self.resolver.journal.open_attempts()? {
            let Some(claim) = self.owners.claim(&attempt.request_id) else {
                continue;
            };
            started += 1;
            tracing::info!(request_id = %attempt.request_id, state = %attempt.state, "watchdog takes over attempt");
            let resolver = self.resolver.clone();
            self.tasks.spawn(async move {
                let _claim = claim;
                let sale_id = attempt.sale_id.clone();
                match resolver.resolve(attempt, None).await {
                    Ok(a) if a.state.is_final() && decides_sale(&resolver.journal, &a) => {
                        announce(&resolver, &sale_id)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(sale_id = %sale_id, error = %e, "watchdog: journal error; retried on the next sweep")
                    }
                }
            });
        }
        for refund in self.resolver.journal.open_refunds()? {
            let Some(claim) = self.owners.claim_work(Work::Refund, &refund.request_id) else {
                continue;
            };
            started += 1;
            tracing::info!(refund = %refund.request_id, state = %refund.state, "watchdog takes over refund");
            let resolver = self.resolver.clone();
            self.tasks.spawn(async move {
                let _claim = claim;
                if let Err(e) = resolver.resolve_refund(refund, None).await {
                    tracing::error!(error = %e, "watchdog: journal error on a refund; retried on the next sweep");
                }
            });
        }
        Ok(started)
    }

    /// Runs its resolvers on `tasks` (the daemon's tracker) instead of a tracker of its own.
    pub fn tracked_by(mut self, tasks: TaskTracker) -> Watchdog {
        self.tasks = tasks;
        self
    }

    /// Sweeps every second while anything is open, every few seconds otherwise, until `stop`
    /// is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let pause = match self.sweep() {
                Ok(_) if self.owners.count() == 0 => SWEEP_IDLE_EVERY,
                Ok(_) => SWEEP_EVERY,
                Err(e) => {
                    tracing::error!(error = %e, "watchdog cannot read the journal");
                    SWEEP_EVERY
                }
            };
            self.heartbeat
                .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Whether `attempt`, just ended, is what ended its sale: not one closed beside the payment
/// that did (the sale's QR after a scanned code paid, or the reverse), which was told then.
pub fn decides_sale(journal: &Journal, attempt: &AttemptRow) -> bool {
    attempt.state == AttemptState::Succeeded
        || !journal
            .attempts(&attempt.sale_id)
            .is_ok_and(|all| all.iter().any(|a| a.state == AttemptState::Succeeded))
}

/// Tells the outputs that a sale finished after the watchdog resolved its attempt.
fn announce(resolver: &Resolver, sale_id: &str) {
    if let Err(e) = finish(&resolver.journal, &*resolver.observer, sale_id) {
        tracing::error!(sale_id = %sale_id, error = %e, "cannot read the finished sale");
    }
}

/// Reads a sale whole and tells the outputs it finished, if it has.
pub fn finish(
    journal: &Journal,
    observer: &dyn Observer,
    sale_id: &str,
) -> Result<SaleView, JournalError> {
    let (sale, attempts, refunds) = journal
        .sale_whole(sale_id)?
        .ok_or_else(|| JournalError::NoSale(sale_id.to_string()))?;
    let view = SaleView::new(&sale, &attempts).with_refunds(&refunds);
    announce_if_final(observer, &view);
    Ok(view)
}

/// The one place `SaleFinished` is emitted: only for a sale in a final state.
pub fn announce_if_final(observer: &dyn Observer, view: &SaleView) {
    if view.state.is_final() {
        observer.event(&Event::SaleFinished { sale: view.clone() });
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
