//! The `attempts` table: a payment attempt from the write before its pay request to its
//! final state, with the sale it moves along.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use super::query::{self, Cells, Table, corrupt};
use super::sales::sale_in;
use super::{Journal, JournalError, SaleRow, hex};
use crate::clock::to_journal;
use crate::money::Amount;
use crate::money::breakdown::Breakdown;
use crate::paycode::{PayMethod, PaymentCode, Wallet};
use crate::state::{AttemptState, Cause, SaleState, check_attempt_transition, sale_state_after};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: i64,
    pub sale_id: String,
    pub seq: u32,
    pub request_id: String,
    pub gateway: String,
    pub wallet: Wallet,
    pub code_masked: String,
    /// Always `None` for attempts this version writes; a journal from an earlier version may
    /// hold the full code of an attempt still open, dropped when it ends.
    pub code: Option<String>,
    pub amount: Amount,
    pub state: AttemptState,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_trade_id: Option<String>,
    pub paid_then_refunded: bool,
    pub needs_attention: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When inquiring stops and cancelling starts.
    pub deadline_at: DateTime<Utc>,
    pub pay_requests: u32,
    pub inquiries: u32,
    pub cancels: u32,
    /// What was left of the in-doubt window, and the wall time it was measured at.
    pub budget_left_ms: Option<i64>,
    pub budget_at: Option<DateTime<Utc>>,
    /// The merchant key the pay request was signed with (`Gateway::signing_key`); `None`
    /// for attempts journaled before keys were recorded, or by a gateway without one.
    pub signing_key: Option<String>,
    /// What the provider said moved besides the order amount, when paid (`attempt_money`).
    pub money: Breakdown,
    /// How the customer pays it: a scanned code, or one the merchant presented.
    pub method: PayMethod,
    /// For a presented code: what the customer scans (or is sent to), once issued, and
    /// until when the provider takes payment for it.
    pub presented: Option<String>,
    pub presented_expires_at: Option<DateTime<Utc>>,
}

impl AttemptRow {
    /// A presented code issued and waiting for the customer to pay it (no one has given up
    /// on it): a scanned code may be charged beside it.
    pub fn awaiting_customer(&self) -> bool {
        self.method.presented() && self.state == AttemptState::Unknown && !self.expedited()
    }

    /// The register gave up on the attempt (cancel, supersede): its deadline was moved to
    /// its creation, so it is cancelled now.
    pub fn expedited(&self) -> bool {
        self.deadline_at <= self.created_at
    }

    /// What is left of the in-doubt window at `now`. From the kept budget, less the wall
    /// time since it was kept, never less than nothing and never more than was left: a clock
    /// stepped back cannot stretch it. Without a kept budget (older rows), the deadline.
    pub fn budget_left(&self, now: DateTime<Utc>) -> std::time::Duration {
        if self.expedited() {
            return std::time::Duration::ZERO;
        }
        let ms = match (self.budget_left_ms, self.budget_at) {
            (Some(left), Some(at)) => {
                let since = (now - at).num_milliseconds().clamp(0, left.max(0));
                left.max(0) - since
            }
            _ => (self.deadline_at - now).num_milliseconds().max(0),
        };
        std::time::Duration::from_millis(ms.max(0) as u64)
    }
}

#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub request_id: String,
    pub gateway: &'a str,
    pub code: &'a PaymentCode,
    pub deadline_at: DateTime<Utc>,
    /// The merchant key the pay request will be signed with (`Gateway::signing_key`).
    pub signing_key: Option<String>,
}

/// What a transition records besides the new state. `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_trade_id: Option<String>,
    pub paid_then_refunded: bool,
    /// Cashier message for the sale.
    pub message: Option<String>,
    /// What is left of the in-doubt window now (kept with the attempt, see `budget_left`).
    pub budget_left: Option<std::time::Duration>,
    /// What the provider said moved, kept when the attempt becomes paid.
    pub money: Option<Breakdown>,
    /// A presented code as issued: its content and expiry.
    pub presented: Option<(String, Option<DateTime<Utc>>)>,
}

/// A presented code's attempt, before the provider is asked for the code.
#[derive(Debug, Clone)]
pub struct NewPresented<'a> {
    pub request_id: String,
    pub gateway: &'a str,
    pub wallet: Wallet,
    pub method: PayMethod,
    pub deadline_at: DateTime<Utc>,
    pub signing_key: Option<String>,
}

/// What an attempt is paid with, as written.
enum Source<'a> {
    Code(&'a PaymentCode),
    Presented {
        wallet: Wallet,
        method: PayMethod,
    },
    /// A bound member, by id (not a secret; the token is never written here).
    Member {
        member_id: &'a str,
    },
}

/// A member's auto-debit attempt, before it is sent.
#[derive(Debug, Clone)]
pub struct NewMemberAttempt<'a> {
    pub request_id: String,
    pub gateway: &'a str,
    pub member_id: &'a str,
    pub deadline_at: DateTime<Utc>,
    pub signing_key: Option<String>,
}

/// Which request counter to bump.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Pay,
    Inquiry,
    Cancel,
}

/// The "attempt" a scan is while its row is being written (no row id is 0).
const SCAN_BEING_WRITTEN: i64 = 0;

impl Journal {
    /// A fingerprint of a payment code, to recognise reuse without keeping the code.
    pub fn code_hash(&self, code: &PaymentCode) -> String {
        let mut h = Sha256::new();
        h.update(self.code_salt.as_bytes());
        h.update(code.expose().as_bytes());
        hex(&h.finalize())
    }

    pub fn attempts(&self, sale_id: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let conn = self.read();
        attempts_in(&conn, sale_id)
    }

    pub fn attempt(&self, id: i64) -> Result<AttemptRow, JournalError> {
        let conn = self.conn();
        attempt_in(&conn, id)
    }

    pub fn attempt_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Option<AttemptRow>, JournalError> {
        query::row(&self.conn(), "WHERE request_id = ?1", [request_id])
    }

    /// Writes a new attempt (state `pending`) and moves its sale to `processing`, in one
    /// durable transaction. This must return before the pay request is sent (invariant 1).
    pub fn begin_attempt(
        &self,
        sale_id: &str,
        new: &NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<AttemptRow, JournalError> {
        self.begin_attempt_of(sale_id, new, now).map(|(a, _)| a)
    }

    /// [`Journal::begin_attempt`], with the sale as it was read in the same transaction
    /// (before its move to processing): the pay request needs its subject, and reading it
    /// again would be one more query between the commit and the request.
    pub fn begin_attempt_of(
        &self,
        sale_id: &str,
        new: &NewAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        self.begin(
            sale_id,
            &new.request_id,
            new.gateway,
            Source::Code(new.code),
            new.deadline_at,
            new.signing_key.as_deref(),
            now,
        )
    }

    /// Writes the attempt of a code the merchant presents (state `pending`, its sale to
    /// `processing`), durably, before the provider is asked for the code. A sale awaiting a
    /// scan takes one; it does not count against the sale's scans.
    pub fn begin_presented(
        &self,
        sale_id: &str,
        new: &NewPresented<'_>,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        self.begin(
            sale_id,
            &new.request_id,
            new.gateway,
            Source::Presented {
                wallet: new.wallet,
                method: new.method,
            },
            new.deadline_at,
            new.signing_key.as_deref(),
            now,
        )
    }

    /// Writes a member's auto-debit attempt (`pending`, its sale to `processing`), durably,
    /// before the pay leaves; it counts as one of the sale's scans.
    pub fn begin_member_attempt(
        &self,
        sale_id: &str,
        new: &NewMemberAttempt<'_>,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        self.begin(
            sale_id,
            &new.request_id,
            new.gateway,
            Source::Member {
                member_id: new.member_id,
            },
            new.deadline_at,
            new.signing_key.as_deref(),
            now,
        )
    }

    /// [`Journal::write_attempt`] with register events held back: from the scan on, a batch
    /// of them whose time came while this row is being written would put a commit in front
    /// of the pay request; from the commit on, they wait for the outcome's.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &self,
        sale_id: &str,
        request_id: &str,
        gateway: &str,
        source: Source<'_>,
        deadline_at: DateTime<Utc>,
        signing_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        self.paying.start(SCAN_BEING_WRITTEN);
        let written = self.write_attempt(
            sale_id,
            request_id,
            gateway,
            source,
            deadline_at,
            signing_key,
            now,
        );
        match &written {
            Ok((attempt, _)) => self.paying.start(attempt.id),
            Err(_) => {
                self.paying.end(SCAN_BEING_WRITTEN);
            }
        }
        written
    }

    /// What `member_id` paid, or may yet have paid, by auto-debit since `since`, in minor
    /// units: paid attempts and those still in doubt (one may yet turn out paid, and the
    /// limit must hold then too); a refund does not give a limit back.
    pub fn member_paid_since(
        &self,
        member_id: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, JournalError> {
        let sum: Option<i64> = query::value(
            &self.conn(),
            "SELECT coalesce(sum(amount_minor), 0) FROM attempts
             WHERE method = 'member' AND code_masked = ?1
               AND state NOT IN ('failed', 'cancelled') AND created_at >= ?2",
            params![format!("member {member_id}"), to_journal(since)],
        )?;
        Ok(sum.unwrap_or(0))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_attempt(
        &self,
        sale_id: &str,
        request_id: &str,
        gateway: &str,
        source: Source<'_>,
        deadline_at: DateTime<Utc>,
        signing_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sale = sale_in(&tx, sale_id)?;
        let attempts = attempts_in(&tx, sale_id)?;
        let scanned = matches!(source, Source::Code(_) | Source::Member { .. });
        // A code scanned while the sale's QR waits for the customer is taken: the first
        // that pays wins, and the other is reversed (docs/design.md §2).
        let beside_qr = scanned
            && sale.state == SaleState::Processing
            && attempts.iter().any(|a| !a.state.is_final())
            && attempts
                .iter()
                .filter(|a| !a.state.is_final())
                .all(|a| a.awaiting_customer());
        if sale.state != SaleState::AwaitingScan && !beside_qr {
            return Err(JournalError::SaleState {
                sale: sale.id,
                state: sale.state,
                expected: "awaiting_scan",
            });
        }
        if !beside_qr && attempts.iter().any(|a| !a.state.is_final()) {
            return Err(JournalError::AttemptOpen(sale.id));
        }
        let seq = attempts.len() as u32 + 1;
        let scans = attempts.iter().filter(|a| !a.method.presented()).count() as u32;
        if scanned && scans + 1 > sale.max_attempts {
            return Err(JournalError::NoAttemptsLeft(sale.id));
        }
        let (wallet, masked, hash, method) = match source {
            Source::Code(code) => (code.wallet(), code.masked(), self.code_hash(code), None),
            // Nothing secret: the customer's wallet never shows the merchant a code.
            Source::Presented { wallet, method } => (
                wallet,
                match method {
                    PayMethod::EntryCode => "entry code".to_string(),
                    _ => "order QR".to_string(),
                },
                format!("presented:{request_id}"),
                Some(method.as_str()),
            ),
            Source::Member { member_id } => (
                Wallet::AlipayPlus,
                format!("member {member_id}"),
                format!("member:{request_id}"),
                Some(PayMethod::Member.as_str()),
            ),
        };
        let t = to_journal(now);
        query::execute(
            &tx,
            "INSERT INTO attempts (sale_id, seq, request_id, gateway, wallet, code_masked, code,
                                   code_hash, amount_minor, currency, state, created_at,
                                   updated_at, deadline_at, pay_requests, budget_left_ms,
                                   budget_at, signing_key, method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11, ?12, 1, ?13,
                     ?11, ?14, ?15)",
            params![
                sale_id,
                seq,
                request_id,
                gateway,
                wallet.as_str(),
                masked,
                // The full code is never written: nothing needs it after the request left (a
                // resend happens within the call; recovery inquires and cancels by request
                // id), and SQLite can leave old cell bytes in a page's unused space even with
                // secure_delete. The salted fingerprint is enough to refuse a reused code.
                Option::<String>::None,
                hash,
                sale.amount.minor(),
                sale.amount.currency().code(),
                t,
                to_journal(deadline_at),
                (deadline_at - now).num_milliseconds().max(0),
                signing_key,
                method,
            ],
        )?;
        let id = tx.last_insert_rowid();
        query::execute(
            &tx,
            "UPDATE sales SET state = 'processing', updated_at = ?2, reason = NULL, message = NULL
             WHERE id = ?1",
            params![sale_id, t],
        )?;
        let attempt = attempt_in(&tx, id)?;
        self.commit(tx)?;
        // Register events wait for the outcome's commit from here on.
        if let Some(k) = &self.identity {
            k.request(&attempt.request_id);
        }
        Ok((attempt, sale))
    }

    /// Moves an attempt to `to` (checked against the state machine) and its sale to the
    /// matching state, in one transaction, with the register events waiting for a commit.
    /// Final attempts lose their full code.
    pub fn transition(
        &self,
        attempt_id: i64,
        to: AttemptState,
        cause: Cause,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        let result = self.transition_in(attempt_id, to, cause, change, now);
        self.answered(attempt_id);
        result
    }

    fn transition_in(
        &self,
        attempt_id: i64,
        to: AttemptState,
        cause: Cause,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(AttemptRow, SaleRow), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let attempt = attempt_in(&tx, attempt_id)?;
        check_attempt_transition(attempt.state, to, cause)?;
        if to == AttemptState::Succeeded
            && let Some(by) = query::value::<String>(
                &tx,
                "SELECT by_sale FROM supersessions WHERE sale_id = ?1",
                [&attempt.sale_id],
            )?
        {
            // The register replaced this sale: its payment is reversed, never taken.
            return Err(JournalError::Superseded {
                sale: attempt.sale_id,
                by,
            });
        }
        let siblings = attempts_in(&tx, &attempt.sale_id)?;
        if to == AttemptState::Succeeded
            && attempt.state != AttemptState::Failed
            && let Some(paid) = siblings
                .iter()
                .find(|a| a.id != attempt.id && a.state == AttemptState::Succeeded)
        {
            // The sale's other way of paying won: this payment is reversed, never taken.
            return Err(JournalError::AlreadyPaid {
                sale: attempt.sale_id,
                by: paid.request_id.clone(),
            });
        }
        let mut attention = None;
        if attempt.state == AttemptState::Failed && to == AttemptState::Succeeded {
            // Overturning a failure: the sale's other attempts decide whether that is safe.
            let others = siblings.iter().filter(|a| a.id != attempt.id);
            if others.clone().any(|a| !a.state.is_final()) {
                return Err(JournalError::AttemptOpen(attempt.sale_id));
            }
            if others.clone().any(|a| a.state == AttemptState::Succeeded) {
                attention = Some("two attempts of this sale were paid: refund one of them");
            }
        }
        let t = to_journal(now);
        query::execute(
            &tx,
            "UPDATE attempts SET
                 state = ?2,
                 result_code = COALESCE(?3, result_code),
                 result_message = COALESCE(?4, result_message),
                 gateway_trade_id = COALESCE(?5, gateway_trade_id),
                 paid_then_refunded = paid_then_refunded OR ?6,
                 code = CASE WHEN ?7 THEN NULL ELSE code END,
                 updated_at = ?8,
                 needs_attention = COALESCE(?9, needs_attention),
                 budget_left_ms = COALESCE(?10, budget_left_ms),
                 budget_at = CASE WHEN ?10 IS NULL THEN budget_at ELSE ?8 END,
                 presented = COALESCE(?11, presented),
                 presented_expires_at = COALESCE(?12, presented_expires_at)
             WHERE id = ?1",
            params![
                attempt_id,
                to.as_str(),
                change.result_code,
                change.result_message,
                change.gateway_trade_id,
                change.paid_then_refunded,
                to.is_final(),
                t,
                attention,
                change.budget_left.map(|b| b.as_millis() as i64),
                change.presented.as_ref().map(|(c, _)| c.as_str()),
                change
                    .presented
                    .as_ref()
                    .and_then(|(_, at)| at.map(to_journal)),
            ],
        )?;
        if to == AttemptState::Succeeded
            && let Some(money) = &change.money
        {
            super::money::write(&tx, attempt_id, cause, money, &t)?;
        }
        if to == AttemptState::Succeeded {
            // The first way that pays wins: the sale's other open attempts (its QR while a
            // scanned code paid, or the reverse) are cancelled now.
            query::execute(
                &tx,
                "UPDATE attempts SET deadline_at = created_at, budget_left_ms = 0, updated_at = ?3
                 WHERE sale_id = ?1 AND id != ?2 AND state IN ('pending','unknown')",
                params![attempt.sale_id, attempt_id, t],
            )?;
        }
        let sale = sale_in(&tx, &attempt.sale_id)?;
        let others_open = siblings
            .iter()
            .any(|a| a.id != attempt.id && !a.state.is_final());
        let scans = siblings.iter().filter(|a| !a.method.presented()).count() as u32;
        let sale_state = if to == AttemptState::Succeeded {
            SaleState::Paid
        } else if sale.state == SaleState::Paid {
            // Another attempt paid the sale; this one (cancelled now) changes nothing.
            SaleState::Paid
        } else if !to.is_final() || others_open {
            SaleState::Processing
        } else if attempt.method.presented()
            && (to == AttemptState::Cancelled || cause == Cause::Inquiry)
        {
            // The QR expired (closed by us or by the provider) or the register cancelled it:
            // the sale ends with it.
            SaleState::Cancelled
        } else {
            sale_state_after(to, scans, sale.max_attempts)
        };
        if sale.state.is_final() && sale_state != sale.state && to != AttemptState::Succeeded {
            // A closed sale only changes when a late success overturns it.
            return Err(JournalError::SaleState {
                sale: sale.id,
                state: sale.state,
                expected: "open",
            });
        }
        let reason = match to {
            AttemptState::Failed | AttemptState::Cancelled => Some(reason_text(
                change
                    .result_code
                    .as_deref()
                    .or(attempt.result_code.as_deref()),
                change
                    .result_message
                    .as_deref()
                    .or(attempt.result_message.as_deref()),
            )),
            _ => None,
        };
        // A paid sale keeps what its payment said, whatever its other attempts do after.
        if !(sale.state == SaleState::Paid && to != AttemptState::Succeeded) {
            query::execute(
                &tx,
                "UPDATE sales SET state = ?2, reason = ?3, message = COALESCE(?4, message),
                                  updated_at = ?5
                 WHERE id = ?1",
                params![sale.id, sale_state.as_str(), reason, change.message, t],
            )?;
        }
        let attempt = attempt_in(&tx, attempt_id)?;
        let sale = sale_in(&tx, &sale.id)?;
        // The events ride on this commit; one that cannot be stored stays queued and never
        // holds up the outcome.
        let events = self.write_waiting(&tx).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "events left for their own commit");
            Vec::new()
        });
        self.commit(tx)?;
        // Out of the queue before the connection is free, so no other commit writes them again.
        self.stored(events);
        Ok((attempt, sale))
    }

    /// The attempt's pay request is back (an outcome or a note was written, or failed to
    /// be): the event bus need not wait for it any longer.
    fn answered(&self, attempt_id: i64) {
        if self.paying.end(attempt_id) {
            self.events_stored.notify_one();
            if let Some(k) = &self.identity {
                k.nudge();
            }
        }
    }

    /// Counts one more request of `counter`'s kind and records its latest result, without
    /// changing the state (an inquiry that learned nothing new, a cancel to retry).
    pub fn note(
        &self,
        attempt_id: i64,
        counter: Counter,
        result_code: &str,
        result_message: &str,
        budget_left: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let column = match counter {
            Counter::Pay => "pay_requests",
            Counter::Inquiry => "inquiries",
            Counter::Cancel => "cancels",
        };
        let t = to_journal(now);
        let changed = self.track(query::execute(
            &self.conn(),
            &format!(
                "UPDATE attempts SET {column} = {column} + 1, result_code = ?2,
                                     result_message = ?3, updated_at = ?4,
                                     budget_left_ms = COALESCE(?5, budget_left_ms),
                                     budget_at = CASE WHEN ?5 IS NULL THEN budget_at ELSE ?4 END
                 WHERE id = ?1"
            ),
            params![
                attempt_id,
                result_code,
                result_message,
                t,
                budget_left.map(|b| b.as_millis() as i64)
            ],
        ));
        self.answered(attempt_id);
        if changed? == 1 {
            Ok(())
        } else {
            Err(JournalError::NoAttempt(attempt_id))
        }
    }

    /// Marks an attempt as needing a person (or clears the mark with `None`).
    pub fn flag_attention(
        &self,
        attempt_id: i64,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.track(query::execute(
            &self.conn(),
            "UPDATE attempts SET needs_attention = ?2, updated_at = ?3 WHERE id = ?1",
            params![attempt_id, why, to_journal(now)],
        ))?;
        Ok(())
    }

    /// Clears the attempt's flag if it is still `seen` (a person settled that one; a newer
    /// reason stays). Returns whether it was cleared.
    pub fn clear_attention(
        &self,
        attempt_id: i64,
        seen: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        let changed = self.track(query::execute(
            &self.conn(),
            "UPDATE attempts SET needs_attention = NULL, updated_at = ?3
             WHERE id = ?1 AND needs_attention = ?2",
            params![attempt_id, seen, to_journal(now)],
        ))?;
        Ok(changed == 1)
    }

    /// Moves the in-doubt deadline of a sale's open attempts to `now`: the watchdog stops
    /// waiting and cancels (the register gave up on the sale). The sale takes no more scans.
    pub fn expedite(&self, sale_id: &str, now: DateTime<Utc>) -> Result<usize, JournalError> {
        self.no_more_attempts(sale_id)?;
        let changed = self.track(query::execute(
            &self.conn(),
            "UPDATE attempts SET deadline_at = created_at, budget_left_ms = 0, updated_at = ?2
             WHERE sale_id = ?1 AND state IN ('pending','unknown')",
            params![sale_id, to_journal(now)],
        ))?;
        Ok(changed)
    }

    /// The watchdog stops waiting for this one attempt and cancels it now.
    pub fn expedite_attempt(
        &self,
        attempt_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.track(query::execute(
            &self.conn(),
            "UPDATE attempts SET deadline_at = created_at, budget_left_ms = 0, updated_at = ?2
             WHERE id = ?1 AND state IN ('pending','unknown')",
            params![attempt_id, to_journal(now)],
        ))?;
        Ok(())
    }

    /// Every attempt not yet final, oldest first (uses the partial index).
    pub fn open_attempts(&self) -> Result<Vec<AttemptRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE state IN ('pending','unknown','cancelling') ORDER BY id",
            [],
        )
    }

    /// Attempts whose last change fell in `[since, until)` (for a final attempt: when it
    /// ended), oldest first.
    pub fn attempts_updated_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, JournalError> {
        // Each half through its partial index (`attempts_ended`, `attempts_open`).
        query::rows(
            &self.conn(),
            "WHERE id IN (
                 SELECT id FROM attempts WHERE state IN ('succeeded','failed','cancelled')
                   AND updated_at >= ?1 AND updated_at < ?2
                 UNION ALL
                 SELECT id FROM attempts WHERE state IN ('pending','unknown','cancelling')
                   AND updated_at >= ?1 AND updated_at < ?2)
             ORDER BY id",
            params![to_journal(since), to_journal(until)],
        )
    }

    /// Attempts that sent `code` (by fingerprint) and were created at or after `since`.
    pub fn attempts_with_code(
        &self,
        code: &PaymentCode,
        since: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, JournalError> {
        query::rows(
            &self.conn(),
            "WHERE code_hash = ?1 AND created_at >= ?2",
            params![self.code_hash(code), to_journal(since)],
        )
    }

    /// Attempts flagged for a person, newest first.
    pub fn attempts_needing_attention(&self) -> Result<Vec<AttemptRow>, JournalError> {
        query::rows(
            &self.read(),
            "WHERE needs_attention IS NOT NULL ORDER BY id DESC",
            [],
        )
    }
}

fn reason_text(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
        (Some(c), _) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "not paid".to_string(),
    }
}

impl Table for AttemptRow {
    const SELECT: &'static str = "SELECT id, sale_id, seq, request_id, gateway, wallet,
        code_masked, code, amount_minor, currency, state, result_code, result_message,
        gateway_trade_id, paid_then_refunded, needs_attention, created_at, updated_at,
        deadline_at, pay_requests, inquiries, cancels, budget_left_ms, budget_at,
        signing_key, money_source, buyer_paid_minor, received_minor, point_minor,
        invoice_minor, fund_bills, vouchers, method, presented, presented_expires_at
        FROM attempts LEFT JOIN attempt_money ON attempt_money.attempt_id = attempts.id";

    fn from_row(r: &Row<'_>) -> Result<AttemptRow, JournalError> {
        let id: i64 = r.get(0)?;
        let c = Cells::new(r, "attempt", id);
        let state = c.parsed(10, "unknown state", AttemptState::parse)?;
        let code: Option<String> = c.get(7)?;
        // Pair check of the write side: a final attempt never keeps its full code.
        if state.is_final() && code.is_some() {
            return Err(corrupt(
                "attempt",
                id,
                "final but still holds its code",
                state.as_str(),
            ));
        }
        let amount = c.amount(8, 9)?;
        Ok(AttemptRow {
            money: super::money::read(&c, 25, amount.currency(), id)?,
            id,
            sale_id: c.get(1)?,
            seq: c.get(2)?,
            request_id: c.get(3)?,
            gateway: c.get(4)?,
            wallet: c.parsed(5, "unknown wallet", Wallet::parse)?,
            code_masked: c.get(6)?,
            code,
            amount,
            state,
            result_code: c.get(11)?,
            result_message: c.get(12)?,
            gateway_trade_id: c.get(13)?,
            paid_then_refunded: c.get(14)?,
            needs_attention: c.get(15)?,
            created_at: c.time(16)?,
            updated_at: c.time(17)?,
            deadline_at: c.time(18)?,
            pay_requests: c.get(19)?,
            inquiries: c.get(20)?,
            cancels: c.get(21)?,
            budget_left_ms: c.get(22)?,
            budget_at: c.time_or_none(23)?,
            signing_key: c.get(24)?,
            method: match c.get::<Option<String>>(32)? {
                None => PayMethod::Scanned,
                Some(_) => c.parsed(32, "unknown method", PayMethod::parse)?,
            },
            presented: c.get(33)?,
            presented_expires_at: c.time_or_none(34)?,
        })
    }
}

pub(super) fn attempt_in(conn: &Connection, id: i64) -> Result<AttemptRow, JournalError> {
    query::row(conn, "WHERE id = ?1", [id])?.ok_or(JournalError::NoAttempt(id))
}

pub(super) fn attempts_in(
    conn: &Connection,
    sale_id: &str,
) -> Result<Vec<AttemptRow>, JournalError> {
    query::rows(conn, "WHERE sale_id = ?1 ORDER BY seq", [sale_id])
}

/// Whether the journal has an attempt under `request_id`.
pub(super) fn has_attempt(conn: &Connection, request_id: &str) -> Result<bool, JournalError> {
    let sql = "SELECT 1 FROM attempts WHERE request_id = ?1";
    Ok(query::value::<i64>(conn, sql, [request_id])?.is_some())
}
