//! The sale and attempt state machines of docs/design.md §2, as pure functions: no I/O here.
//!
//! The journal stores a flat state tag per row; every change goes through
//! [`check_attempt_transition`], so an illegal move (anything out of `succeeded`, a failure
//! turned into a success by anything but an inquiry) is refused before it is written.

use std::fmt;

/// Result code of an attempt whose payment the provider never created (a cancel found no
/// such payment): not charged. Reconciliation looks for it on the provider's bill anyway.
pub const NOT_CREATED: &str = "not_created";

/// How the result message of an attempt refused at the gateway's door begins (the request
/// was refused before any processing, in an answer that may be unsigned): not charged, and
/// reconciliation looks for it on the provider's bill anyway.
pub const REFUSED_AT_DOOR: &str = "refused at the gateway's door";

/// Why an attempt ended not charged on the gateway's word alone, without a signed final
/// state of the payment: `None` for every other attempt.
pub fn ended_unconfirmed(
    state: AttemptState,
    result_code: Option<&str>,
    result_message: Option<&str>,
) -> Option<&'static str> {
    if state != AttemptState::Failed {
        return None;
    }
    if result_code == Some(NOT_CREATED) {
        Some("never created")
    } else if result_message.is_some_and(|m| m.starts_with(REFUSED_AT_DOOR)) {
        Some("refused at the door")
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// Row written, request id fixed; the pay request may or may not have left.
    Pending,
    Succeeded,
    /// Definitely not charged.
    Failed,
    /// The pay request may have been charged; the watchdog must find out.
    Unknown,
    /// Given up waiting; cancel requests are being sent until one is confirmed.
    Cancelling,
    /// Reversed: closed unpaid, or paid and refunded in full by the cancel.
    Cancelled,
}

impl AttemptState {
    pub const ALL: [AttemptState; 6] = [
        AttemptState::Pending,
        AttemptState::Succeeded,
        AttemptState::Failed,
        AttemptState::Unknown,
        AttemptState::Cancelling,
        AttemptState::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptState::Pending => "pending",
            AttemptState::Succeeded => "succeeded",
            AttemptState::Failed => "failed",
            AttemptState::Unknown => "unknown",
            AttemptState::Cancelling => "cancelling",
            AttemptState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<AttemptState> {
        AttemptState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Final states never change again (except `failed → succeeded` through an inquiry).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            AttemptState::Succeeded | AttemptState::Failed | AttemptState::Cancelled
        )
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a transition: the rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The answer (or lack of one) to the pay request.
    PayAnswer,
    /// A verified inquiry answer.
    Inquiry,
    /// The in-doubt deadline passed.
    Deadline,
    /// A verified cancel answer.
    CancelAnswer,
    /// Found non-final in the journal at startup.
    Recovery,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal attempt transition {from} -> {to} by {cause:?}")]
pub struct IllegalTransition {
    pub from: AttemptState,
    pub to: AttemptState,
    pub cause: Cause,
}

/// Refuses every move the attempt state machine does not have.
pub fn check_attempt_transition(
    from: AttemptState,
    to: AttemptState,
    cause: Cause,
) -> Result<(), IllegalTransition> {
    use AttemptState::*;
    use Cause::*;
    let legal = match (from, to) {
        (Pending, Succeeded | Failed) => cause == PayAnswer,
        (Pending, Unknown) => matches!(cause, PayAnswer | Recovery),
        // A retried pay request can answer too, with the same request id.
        (Unknown, Succeeded) => matches!(cause, Inquiry | PayAnswer),
        (Unknown, Failed) => cause == Inquiry,
        (Unknown, Cancelling) => cause == Deadline,
        // Only the provider's own record can overturn a failure (e.g. a reconciliation).
        (Failed, Succeeded) => cause == Inquiry,
        (Cancelling, Cancelled) => cause == CancelAnswer,
        // The cancel found no such payment: it was never created, nothing was charged.
        (Cancelling, Failed) => cause == CancelAnswer,
        _ => false,
    };
    if legal {
        Ok(())
    } else {
        Err(IllegalTransition { from, to, cause })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    AwaitingScan,
    /// A code the merchant shows waits for the customer to pay it (the journal keeps the
    /// sale `processing`; its view says this).
    AwaitingPayment,
    Processing,
    Paid,
    Failed,
    Cancelled,
    Expired,
}

impl SaleState {
    pub const ALL: [SaleState; 7] = [
        SaleState::AwaitingScan,
        SaleState::AwaitingPayment,
        SaleState::Processing,
        SaleState::Paid,
        SaleState::Failed,
        SaleState::Cancelled,
        SaleState::Expired,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            SaleState::AwaitingScan => "awaiting_scan",
            SaleState::AwaitingPayment => "awaiting_payment",
            SaleState::Processing => "processing",
            SaleState::Paid => "paid",
            SaleState::Failed => "failed",
            SaleState::Cancelled => "cancelled",
            SaleState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<SaleState> {
        SaleState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the cashier is shown for a sale nothing more specific was said about.
    pub fn cashier_default(&self) -> &'static str {
        match self {
            SaleState::AwaitingScan => "waiting for the customer's payment code",
            SaleState::AwaitingPayment => "waiting for the customer to scan the QR and pay",
            SaleState::Processing => "charging: waiting for the gateway",
            SaleState::Paid => "paid",
            SaleState::Failed => "not paid",
            SaleState::Cancelled => "cancelled: not paid",
            SaleState::Expired => "no payment code was scanned in time: not paid",
        }
    }

    /// The state as a sentence's end: "sale S1 {words}" (`failed` is "was not paid").
    pub fn in_words(&self) -> &'static str {
        match self {
            SaleState::AwaitingScan => "is waiting for a scan",
            SaleState::AwaitingPayment => "is waiting for the customer to pay its QR",
            SaleState::Processing => "is being charged",
            SaleState::Paid => "is paid",
            SaleState::Failed => "was not paid (failed)",
            SaleState::Cancelled => "was cancelled",
            SaleState::Expired => "expired without a payment",
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            SaleState::AwaitingScan | SaleState::AwaitingPayment | SaleState::Processing
        )
    }
}

impl fmt::Display for SaleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sale's state once one of its attempts reached `attempt`, given how many attempts the
/// sale has used and may use. A failed or reversed attempt leaves the sale open for another
/// scan while attempts remain.
pub fn sale_state_after(attempt: AttemptState, used: u32, allowed: u32) -> SaleState {
    let more_allowed = used < allowed;
    match attempt {
        AttemptState::Pending | AttemptState::Unknown | AttemptState::Cancelling => {
            SaleState::Processing
        }
        AttemptState::Succeeded => SaleState::Paid,
        AttemptState::Failed if more_allowed => SaleState::AwaitingScan,
        AttemptState::Failed => SaleState::Failed,
        AttemptState::Cancelled if more_allowed => SaleState::AwaitingScan,
        AttemptState::Cancelled => SaleState::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptState::*;

    const CAUSES: [Cause; 5] = [
        Cause::PayAnswer,
        Cause::Inquiry,
        Cause::Deadline,
        Cause::CancelAnswer,
        Cause::Recovery,
    ];

    #[test]
    fn nothing_leaves_succeeded_or_cancelled() {
        for to in AttemptState::ALL {
            for cause in CAUSES {
                assert!(check_attempt_transition(Succeeded, to, cause).is_err());
                assert!(check_attempt_transition(Cancelled, to, cause).is_err());
            }
        }
    }

    #[test]
    fn failed_becomes_succeeded_only_through_an_inquiry() {
        for cause in CAUSES {
            let ok = check_attempt_transition(Failed, Succeeded, cause).is_ok();
            assert_eq!(ok, cause == Cause::Inquiry, "{cause:?}");
        }
        for to in [Pending, Unknown, Cancelling, Cancelled, Failed] {
            for cause in CAUSES {
                assert!(check_attempt_transition(Failed, to, cause).is_err());
            }
        }
    }

    #[test]
    fn the_documented_graph_and_nothing_else() {
        let legal: &[(AttemptState, AttemptState, Cause)] = &[
            (Pending, Succeeded, Cause::PayAnswer),
            (Pending, Failed, Cause::PayAnswer),
            (Pending, Unknown, Cause::PayAnswer),
            (Pending, Unknown, Cause::Recovery),
            (Unknown, Succeeded, Cause::Inquiry),
            (Unknown, Succeeded, Cause::PayAnswer),
            (Unknown, Failed, Cause::Inquiry),
            (Unknown, Cancelling, Cause::Deadline),
            (Failed, Succeeded, Cause::Inquiry),
            (Cancelling, Cancelled, Cause::CancelAnswer),
            (Cancelling, Failed, Cause::CancelAnswer),
        ];
        for from in AttemptState::ALL {
            for to in AttemptState::ALL {
                for cause in CAUSES {
                    let expected = legal.contains(&(from, to, cause));
                    assert_eq!(
                        check_attempt_transition(from, to, cause).is_ok(),
                        expected,
                        "{from} -> {to} by {cause:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn cancelling_cannot_turn_into_a_success() {
        for cause in CAUSES {
            assert!(check_attempt_transition(Cancelling, Succeeded, cause).is_err());
        }
    }

    #[test]
    fn sale_follows_its_attempt() {
        assert_eq!(sale_state_after(Succeeded, 1, 1), SaleState::Paid);
        assert_eq!(sale_state_after(Unknown, 1, 1), SaleState::Processing);
        assert_eq!(sale_state_after(Failed, 1, 1), SaleState::Failed);
        assert_eq!(sale_state_after(Failed, 1, 3), SaleState::AwaitingScan);
        assert_eq!(sale_state_after(Cancelled, 1, 1), SaleState::Cancelled);
        assert_eq!(sale_state_after(Cancelled, 2, 3), SaleState::AwaitingScan);
    }

    #[test]
    fn tags_round_trip() {
        for s in AttemptState::ALL {
            assert_eq!(AttemptState::parse(s.as_str()), Some(s));
        }
        for s in SaleState::ALL {
            assert_eq!(SaleState::parse(s.as_str()), Some(s));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Row written, refund id fixed; the request may or may not have left.
    Pending,
    Succeeded,
    Failed,
    /// Sent, outcome not known: resent with the same id until final.
    Unknown,
}

impl RefundState {
    pub const ALL: [RefundState; 4] = [
        RefundState::Pending,
        RefundState::Succeeded,
        RefundState::Failed,
        RefundState::Unknown,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
            RefundState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<RefundState> {
        RefundState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_final(&self) -> bool {
        matches!(self, RefundState::Succeeded | RefundState::Failed)
    }
}

impl fmt::Display for RefundState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refunds move forward only: pending → anything, unknown → final, final → nothing.
pub fn check_refund_transition(from: RefundState, to: RefundState) -> Result<(), String> {
    use RefundState::*;
    let legal = matches!(
        (from, to),
        (Pending, Succeeded | Failed | Unknown) | (Unknown, Succeeded | Failed)
    );
    if legal {
        Ok(())
    } else {
        Err(format!("illegal refund transition {from} -> {to}"))
    }
}

#[cfg(test)]
mod refund_tests {
    use super::*;

    #[test]
    fn refunds_only_move_forward() {
        use RefundState::*;
        for to in RefundState::ALL {
            assert!(check_refund_transition(Succeeded, to).is_err());
            assert!(check_refund_transition(Failed, to).is_err());
        }
        assert!(check_refund_transition(Unknown, Pending).is_err());
        assert!(check_refund_transition(Unknown, Succeeded).is_ok());
        assert!(check_refund_transition(Pending, Unknown).is_ok());
    }
}
