//! Payments flagged for a person, and what an operator may do about each: retry its cancel
//! now, reverse it by a refund, or record that it was settled by hand. Every action is
//! recorded in the journal (`operator_actions`) with who, when and the answer, and is
//! idempotent under its request id. Settling changes no money state: the watchdog keeps
//! resolving the attempt by the gateway's word, it only stops calling for a person
//! (docs/operations.md, "Needs attention").

use chrono::{DateTime, Utc};

use super::sale::check_text;
use super::*;
use crate::journal::{ActionRow, AttemptRow, NewAction};
use crate::state::AttemptState;

/// What an item needs, in the words of its `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKind {
    /// Open, cancelling, its cancel refused or not confirmed while its window is open.
    CancelNotConfirmed,
    /// Open, its cancel window closed: only a refund (or the provider's console) reverses it.
    CancelWindowClosed,
    /// Final, paid, while another attempt of the same sale was paid too.
    PaidTwice,
    /// Final, flagged for another reason.
    Other,
}

impl AttentionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttentionKind::CancelNotConfirmed => "cancel_not_confirmed",
            AttentionKind::CancelWindowClosed => "cancel_window_closed",
            AttentionKind::PaidTwice => "paid_twice",
            AttentionKind::Other => "flagged",
        }
    }

    /// The actions that apply, the one to try first first.
    pub fn actions(self) -> &'static [OperatorAction] {
        use OperatorAction::*;
        match self {
            AttentionKind::CancelNotConfirmed => &[Retry, Settle],
            AttentionKind::CancelWindowClosed => &[Refund, Retry, Settle],
            // Which payment to give back is the provider's portal's call (the sale's own
            // refunds draw on its first paid attempt): settled by hand.
            AttentionKind::PaidTwice => &[Settle],
            AttentionKind::Other => &[Settle],
        }
    }
}

/// What an operator asks for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Send the next cancel (or refund) now instead of after the backoff.
    Retry,
    /// Give the money back by a full refund, journaled first like every refund.
    Refund,
    /// The operator settled it by hand (with the provider, with the customer): the flag
    /// closes, the money state stays as the gateway last confirmed it.
    Settle,
}

impl OperatorAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorAction::Retry => "retry",
            OperatorAction::Refund => "refund",
            OperatorAction::Settle => "settle",
        }
    }

    pub fn parse(s: &str) -> Option<OperatorAction> {
        match s {
            "retry" => Some(OperatorAction::Retry),
            "refund" => Some(OperatorAction::Refund),
            "settle" => Some(OperatorAction::Settle),
            _ => None,
        }
    }
}

/// One payment flagged for a person.
#[derive(Debug, Clone)]
pub struct AttentionItem {
    pub attempt: AttemptRow,
    pub kind: AttentionKind,
    /// When its cancel window closes (open attempts).
    pub deadline: Option<DateTime<Utc>>,
}

/// Who asks, and under which request id.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    pub request_id: &'a str,
    pub actor: &'a str,
    pub operator: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// Why an action was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no payment {0:?} is flagged for a person")]
    NotFlagged(String),
    #[error("{action} does not apply to this payment ({kind}); it takes: {takes}")]
    DoesNotApply {
        action: &'static str,
        kind: &'static str,
        takes: String,
    },
    #[error("settling by hand needs a note saying how it was settled (1 to 500 characters)")]
    NoteNeeded,
    #[error("{0}")]
    Engine(#[from] EngineError),
}

impl From<JournalError> for ActionError {
    fn from(e: JournalError) -> ActionError {
        ActionError::Engine(EngineError::Journal(e))
    }
}

/// What an action did, as recorded.
#[derive(Debug, Clone)]
pub struct Acted {
    pub row: ActionRow,
    /// Whether this is the stored answer of an earlier request with the same id.
    pub replayed: bool,
}

impl Engine {
    /// Every payment flagged for a person, newest first, with what it needs.
    pub fn attention(&self) -> Result<Vec<AttentionItem>, JournalError> {
        let now = self.clock.now();
        let mut items = Vec::new();
        for attempt in self.journal.attempts_needing_attention()? {
            items.push(self.classify(attempt, now)?);
        }
        Ok(items)
    }

    fn classify(
        &self,
        attempt: AttemptRow,
        now: DateTime<Utc>,
    ) -> Result<AttentionItem, JournalError> {
        let policy = self.gateway.policy_for(&attempt.request_id);
        let closes_at = policy.cancel_window.closes_at(attempt.created_at);
        let kind = if !attempt.state.is_final() {
            if now >= closes_at && !policy.refund_after_window {
                AttentionKind::CancelWindowClosed
            } else {
                AttentionKind::CancelNotConfirmed
            }
        } else if attempt.state == AttemptState::Succeeded
            && self
                .journal
                .sale_whole(&attempt.sale_id)?
                .is_some_and(|(_, attempts, _)| {
                    attempts
                        .iter()
                        .any(|a| a.id != attempt.id && a.state == AttemptState::Succeeded)
                })
        {
            AttentionKind::PaidTwice
        } else {
            AttentionKind::Other
        };
        let deadline = (!attempt.state.is_final()).then_some(closes_at);
        Ok(AttentionItem {
            attempt,
            kind,
            deadline,
        })
    }

    /// An earlier action under `request_id`, if there is one.
    pub fn recorded_action(&self, request_id: &str) -> Result<Option<ActionRow>, JournalError> {
        self.journal.action(request_id)
    }

    /// Takes `action` on the flagged payment sent under `payment`, records it, and returns
    /// the record. The same request id answers the first record again.
    pub async fn act_on_attention(
        &self,
        payment: &str,
        action: OperatorAction,
        asked: Asked<'_>,
    ) -> Result<Acted, ActionError> {
        if let Some(row) = self.journal.action(asked.request_id)? {
            return Ok(Acted {
                row,
                replayed: true,
            });
        }
        check_text("note", asked.note, 500)?;
        check_text("operator", asked.operator, 100)?;
        let now = self.clock.now();
        let item = self
            .journal
            .attempt_by_request_id(payment)?
            .filter(|a| a.needs_attention.is_some())
            .map(|a| self.classify(a, now))
            .transpose()?
            .ok_or_else(|| ActionError::NotFlagged(payment.to_string()))?;
        if !item.kind.actions().contains(&action) {
            return Err(ActionError::DoesNotApply {
                action: action.as_str(),
                kind: item.kind.as_str(),
                takes: item
                    .kind
                    .actions()
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let a = &item.attempt;
        let store = |result: serde_json::Value| {
            let text = result.to_string();
            self.journal.record_action(
                &NewAction {
                    request_id: Some(asked.request_id),
                    actor: asked.actor,
                    operator: asked.operator,
                    action: action.as_str(),
                    target: Some(payment),
                    note: asked.note,
                    status: 200,
                    result: &text,
                },
                now,
            )
        };
        let row = match (action, item.kind) {
            (OperatorAction::Settle, _) => {
                if asked.note.is_none() {
                    return Err(ActionError::NoteNeeded);
                }
                // Recorded first, with the reason seen: from then on the watchdog does not
                // flag it again for that reason. Only that flag is cleared: one raised since
                // the operator looked stays.
                let seen = a.needs_attention.clone().unwrap_or_default();
                let row = store(serde_json::json!({
                    "done": "settled by hand: the flag is closed; the payment's state stays as the gateway confirmed it",
                    "state": a.state.as_str(),
                    "why": seen,
                }))?;
                self.journal.clear_attention(a.id, &seen, now)?;
                tracing::warn!(request_id = %a.request_id, actor = asked.actor, "settled by hand");
                row
            }
            (OperatorAction::Retry, _) => {
                let row = store(serde_json::json!({
                    "done": "the next cancel is sent now",
                    "state": a.state.as_str(),
                }))?;
                self.resolver.retry_now.ask();
                self.wake.notify_one();
                row
            }
            // Only a closed cancel window takes a refund (checked above).
            (OperatorAction::Refund, _) => {
                // Recorded first: the watchdog reads it and reverses by a full refund under
                // the payment's fixed refund id, so asking twice refunds once.
                let row = store(serde_json::json!({
                    "done": "reversing by a full refund now; the payment ends cancelled once the gateway confirms it",
                    "state": a.state.as_str(),
                }))?;
                self.resolver.retry_now.ask();
                self.wake.notify_one();
                row
            }
        };
        Ok(Acted {
            row,
            replayed: false,
        })
    }

    /// Records an action that is not about a flagged payment (a reconciliation, a device
    /// test), unless its request id is recorded already; returns the record.
    pub fn record_operator_action(&self, new: &NewAction<'_>) -> Result<Acted, JournalError> {
        if let Some(key) = new.request_id
            && let Some(row) = self.journal.action(key)?
        {
            return Ok(Acted {
                row,
                replayed: true,
            });
        }
        let row = self.journal.record_action(new, self.clock.now())?;
        Ok(Acted {
            row,
            replayed: false,
        })
    }
}
