//! Reconciliation: the provider's own record of a day's money (the Open Platform's daily trade
//! bill, or an AMS transaction report) against the journal's, line by line, by request id
//! (`out_trade_no` / `paymentRequestId`) and refund id. Every one-sided or unequal trade is a
//! [`Difference`]; the dangerous one is money kept by the provider for a sale the journal says
//! is not paid.
//!
//! Here: the types and [`reconcile`]. `gather` reads the journal's side of the day, `compare`
//! matches the two sides without I/O, `render` writes the text and CSV reports.

mod compare;
mod gather;
mod render;
#[cfg(test)]
mod tests;

pub use render::{to_csv, to_text};

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::gateway::ProviderRecord;
pub use crate::journal::meta::LastRun;
use crate::journal::{AttemptRow, Journal, JournalError, RefundRow};
use crate::money::Amount;
use crate::state::AttemptState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// The provider kept money for a trade the journal does not have as paid: the customer
    /// may be charged for a sale the register thinks failed. `--fix` refunds it.
    PaidOnlyAtProvider,
    /// The journal says paid; the provider has no such payment.
    PaidOnlyInJournal,
    /// Both have the payment, for different amounts.
    AmountMismatch,
    /// Refunds (or a cancel's reversal) differ between the two.
    RefundMismatch,
    /// Both have the payment for the same amount, but what the store received (the amount
    /// less merchant-funded discounts) differs. Compared only where both sides state it.
    ReceivedMismatch,
}

impl DifferenceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DifferenceKind::PaidOnlyAtProvider => "paid_only_at_provider",
            DifferenceKind::PaidOnlyInJournal => "paid_only_in_journal",
            DifferenceKind::AmountMismatch => "amount_mismatch",
            DifferenceKind::RefundMismatch => "refund_mismatch",
            DifferenceKind::ReceivedMismatch => "received_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// The payment's request id.
    pub request_id: String,
    /// The refund's id, for a refund difference.
    pub refund_id: Option<String>,
    pub sale_id: Option<String>,
    pub trade_id: Option<String>,
    pub currency: String,
    /// Minor units the provider records (paid, or refunded for a refund difference).
    pub provider_minor: i64,
    /// Minor units the journal records, likewise.
    pub journal_minor: i64,
    /// In plain words, with the journal's state.
    pub detail: String,
}

/// Sums per currency on each side, minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub currency: String,
    pub provider_paid: i64,
    pub provider_refunded: i64,
    pub journal_paid: i64,
    pub journal_refunded: i64,
    /// What the store received of the payments, where the side states it (otherwise their
    /// amount).
    #[serde(default)]
    pub provider_received: i64,
    #[serde(default)]
    pub journal_received: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconciliation {
    /// The provider's day (Beijing time for both Alipay gateways).
    pub date: String,
    /// That day in the store's time, e.g. `2026-11-30 17:00 to 2026-12-01 17:00 (Asia/Bangkok)`.
    pub store_time: String,
    /// Where the provider's record came from.
    pub source: String,
    pub provider_lines: usize,
    /// Lines of other terminals or systems on the same merchant account (their request ids
    /// do not start with this terminal's id): not compared.
    pub other_lines: usize,
    pub differences: Vec<Difference>,
    pub totals: Vec<Totals>,
    /// What `--fix` did, one entry per payment it refunded or tried to.
    pub fixes: Vec<Fix>,
    /// Attempts of the day that ended not charged on the gateway's word alone (never
    /// created, refused at the door), each looked up on the provider's record: a payment
    /// created late after all is a `paid_only_at_provider` difference.
    pub unconfirmed_checked: Vec<Checked>,
}

/// One attempt that ended not charged without a signed final state, as reconciliation found
/// it on the provider's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub request_id: String,
    pub sale_id: String,
    /// `never created` or `refused at the door`.
    pub why: std::borrow::Cow<'static, str>,
    /// Whether the provider's record of the day has a payment under it.
    pub paid_at_provider: bool,
}

/// A refund `--fix` made (or found already made) for money only the provider recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fix {
    pub request_id: String,
    pub refund_id: Option<String>,
    /// `succeeded`, `failed`, `pending`, `unknown`, or `not_fixed` with the reason.
    pub state: String,
    pub detail: String,
}

impl Reconciliation {
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The journal's side of a day, as [`gather`] reads it.
struct JournalSide {
    /// Attempts made or ended in the day, and any a provider line names, by request id.
    payments: BTreeMap<String, JournalPayment>,
    /// Refunds made in the day, and any a provider line names, by refund id.
    refunds: BTreeMap<String, JournalRefund>,
    /// The refunds of each attempt the provider has a payment for while the journal has it
    /// unpaid (such as `--fix` makes), by the attempt's request id.
    refunds_of_unpaid: BTreeMap<String, Vec<RefundRow>>,
}

/// One refund as the journal has it, with the request id of the payment it gives back.
struct JournalRefund {
    row: RefundRow,
    payment_request_id: String,
}

/// One payment as the journal has it.
struct JournalPayment {
    attempt_id: i64,
    sale_id: String,
    amount: Amount,
    /// What the provider said the store received, when it said (`attempt_money`).
    received: Option<Amount>,
    state: AttemptState,
    /// Paid, then given back by the cancel.
    reversed: bool,
    /// Ended not charged on the gateway's word alone (`state::ended_unconfirmed`).
    unconfirmed: Option<&'static str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl JournalPayment {
    fn of(a: &AttemptRow) -> JournalPayment {
        JournalPayment {
            attempt_id: a.id,
            sale_id: a.sale_id.clone(),
            amount: a.amount,
            received: a.money.received,
            state: a.state,
            reversed: a.paid_then_refunded,
            unconfirmed: crate::state::ended_unconfirmed(
                a.state,
                a.result_code.as_deref(),
                a.result_message.as_deref(),
            ),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }

    /// The customer paid (even if a cancel gave it back later).
    fn paid(&self) -> bool {
        self.state == AttemptState::Succeeded || self.reversed
    }

    /// What the customer paid, minor units; 0 when not paid.
    fn paid_minor(&self) -> i64 {
        if self.paid() { self.amount.minor() } else { 0 }
    }

    /// Paid within `[from, to)`, as far as the journal knows: a paid attempt by when it
    /// ended, a reversed one by when it was made (the moment it was paid is not kept).
    fn paid_within(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let at = if self.reversed {
            self.created_at
        } else {
            self.updated_at
        };
        self.paid() && at >= from && at < to
    }

    /// Given back by its cancel within `[from, to)`.
    fn reversed_within(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.reversed && self.updated_at >= from && self.updated_at < to
    }

    fn describe(&self) -> String {
        if self.reversed {
            "cancelled and refunded in the journal".to_string()
        } else if let Some(why) = self.unconfirmed {
            format!(
                "failed in the journal ({why}: the gateway said no payment exists, yet it was created)"
            )
        } else {
            format!("{} in the journal", self.state)
        }
    }
}

/// Compares the provider's records of the day `[from, to)` with the journal. The day's
/// events are compared, not whole trades: payments made that day, cancels that gave money
/// back that day, refunds made that day, each matched by request id or refund id. Lines of
/// other terminals (request ids not starting with `terminal_id`) are only counted.
#[allow(clippy::too_many_arguments)]
pub fn reconcile(
    journal: &Journal,
    terminal_id: &str,
    zone: crate::clock::StoreZone,
    date: NaiveDate,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    source: &str,
    records: &[ProviderRecord],
) -> Result<Reconciliation, JournalError> {
    reconcile_gateway(
        journal,
        terminal_id,
        None,
        zone,
        date,
        from,
        to,
        source,
        records,
    )
}

/// [`reconcile`], of the attempts that went to `gateway` only (when several gateways are
/// configured, each provider's records are compared with its own attempts).
#[allow(clippy::too_many_arguments)]
pub fn reconcile_gateway(
    journal: &Journal,
    terminal_id: &str,
    gateway: Option<&str>,
    zone: crate::clock::StoreZone,
    date: NaiveDate,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    source: &str,
    records: &[ProviderRecord],
) -> Result<Reconciliation, JournalError> {
    let prefix = format!("{terminal_id}_");
    let (records, others): (Vec<&ProviderRecord>, Vec<&ProviderRecord>) = records
        .iter()
        .partition(|r| r.request_id.starts_with(&prefix));
    let side = gather::journal_side(journal, &records, from, to, gateway)?;
    let compared = compare::compare(&records, &side, from, to);
    Ok(Reconciliation {
        date: date.to_string(),
        store_time: store_time(zone, from, to),
        source: source.to_string(),
        provider_lines: records.len(),
        other_lines: others.len(),
        differences: compared.differences,
        totals: compared.totals,
        fixes: Vec::new(),
        unconfirmed_checked: compared.unconfirmed_checked,
    })
}

/// The provider's day `[from, to)` as the store's clock reads it.
fn store_time(zone: crate::clock::StoreZone, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let at = |t: DateTime<Utc>| zone.local(t).format("%Y-%m-%d %H:%M").to_string();
    format!("{} to {} ({})", at(from), at(to), zone.name())
}

// The record is the journal's (kept in its `meta`); what a reconciliation puts in it is here.
impl LastRun {
    pub fn of(r: &Reconciliation, ran_at: DateTime<Utc>) -> LastRun {
        LastRun {
            date: r.date.clone(),
            ran_at: crate::clock::to_journal(ran_at),
            differences: r.differences.len(),
            paid_only_at_provider: r
                .differences
                .iter()
                .filter(|d| d.kind == DifferenceKind::PaidOnlyAtProvider)
                .count(),
            error: None,
        }
    }
}
