//! Reconciliation: the provider's own record of a day's money (the Open Platform's daily trade
//! bill, or an AMS transaction report) against the journal's, line by line, by request id
//! (`out_trade_no` / `paymentRequestId`) and refund id. Every one-sided or unequal trade is a
//! [`Difference`]; the dangerous one is money kept by the provider for a sale the journal says
//! is not paid.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::gateway::{ProviderRecord, RecordKind};
use crate::journal::{Journal, JournalError, SaleFilter};
use crate::money::{Amount, Currency};
use crate::state::{AttemptState, RefundState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
}

impl DifferenceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DifferenceKind::PaidOnlyAtProvider => "paid_only_at_provider",
            DifferenceKind::PaidOnlyInJournal => "paid_only_in_journal",
            DifferenceKind::AmountMismatch => "amount_mismatch",
            DifferenceKind::RefundMismatch => "refund_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub currency: String,
    pub provider_paid: i64,
    pub provider_refunded: i64,
    pub journal_paid: i64,
    pub journal_refunded: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub date: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub request_id: String,
    pub sale_id: String,
    /// `never created` or `refused at the door`.
    pub why: &'static str,
    /// Whether the provider's record of the day has a payment under it.
    pub paid_at_provider: bool,
}

/// A refund `--fix` made (or found already made) for money only the provider recorded.
#[derive(Debug, Clone, Serialize)]
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

/// One payment as the journal has it.
struct JournalPayment {
    attempt_id: i64,
    sale_id: String,
    amount: Amount,
    state: AttemptState,
    /// Paid, then given back by the cancel.
    reversed: bool,
    /// Ended not charged on the gateway's word alone (`state::ended_unconfirmed`).
    unconfirmed: Option<&'static str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl JournalPayment {
    fn of(a: &crate::journal::AttemptRow) -> JournalPayment {
        JournalPayment {
            attempt_id: a.id,
            sale_id: a.sale_id.clone(),
            amount: a.amount,
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

/// Each request id's money on the provider's side of the day, minor units.
#[derive(Default)]
struct ProviderSide {
    paid: i64,
    /// Given back by a cancel (a refund line without a refund id).
    reversed: i64,
    /// Refund lines with a refund id.
    refunded: i64,
    trade_id: Option<String>,
    currency: Option<Currency>,
}

/// The request ids either side has an event of one kind for.
fn ids_either_side<'a>(
    provider: &BTreeMap<&'a str, ProviderSide>,
    journal: &'a BTreeMap<String, JournalPayment>,
    on_provider: impl Fn(&ProviderSide) -> bool,
    in_journal: impl Fn(&JournalPayment) -> bool,
) -> BTreeSet<&'a str> {
    provider
        .iter()
        .filter(|(_, s)| on_provider(s))
        .map(|(id, _)| *id)
        .chain(
            journal
                .iter()
                .filter(|(_, j)| in_journal(j))
                .map(|(id, _)| id.as_str()),
        )
        .collect()
}

fn total(totals: &mut BTreeMap<String, Totals>, currency: Currency) -> &mut Totals {
    totals
        .entry(currency.code().to_string())
        .or_insert_with(|| Totals {
            currency: currency.code().to_string(),
            ..Totals::default()
        })
}

/// Compares the provider's records of the day `[from, to)` with the journal. The day's
/// events are compared, not whole trades: payments made that day, cancels that gave money
/// back that day, refunds made that day, each matched by request id or refund id. Lines of
/// other terminals (request ids not starting with `terminal_id`) are only counted.
pub fn reconcile(
    journal: &Journal,
    terminal_id: &str,
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

    // The journal's attempts of the day (made or ended in it), and any a line names.
    let mut journal_payments: BTreeMap<String, JournalPayment> = BTreeMap::new();
    let filter = SaleFilter {
        since: Some(from),
        until: Some(to),
        ..SaleFilter::default()
    };
    for sale in journal.sales(&filter)? {
        for a in journal.attempts(&sale.id)? {
            journal_payments.insert(a.request_id.clone(), JournalPayment::of(&a));
        }
    }
    for a in journal.attempts_updated_between(from, to)? {
        journal_payments.insert(a.request_id.clone(), JournalPayment::of(&a));
    }
    for r in &records {
        if !journal_payments.contains_key(&r.request_id)
            && let Some(a) = journal.attempt_by_request_id(&r.request_id)?
        {
            journal_payments.insert(r.request_id.clone(), JournalPayment::of(&a));
        }
    }

    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut provider: BTreeMap<&str, ProviderSide> = BTreeMap::new();
    let mut provider_refunds: BTreeMap<&str, (&ProviderRecord, i64)> = BTreeMap::new();
    for r in records.iter().copied() {
        let t = total(&mut totals, r.amount.currency());
        match r.kind {
            RecordKind::Payment => t.provider_paid += r.amount.minor(),
            RecordKind::Refund => t.provider_refunded += r.amount.minor(),
        }
        let side = provider.entry(r.request_id.as_str()).or_default();
        side.trade_id.get_or_insert_with(|| r.trade_id.clone());
        side.currency.get_or_insert(r.amount.currency());
        match (r.kind, &r.refund_id) {
            (RecordKind::Payment, _) => side.paid += r.amount.minor(),
            (RecordKind::Refund, None) => side.reversed += r.amount.minor(),
            (RecordKind::Refund, Some(id)) => {
                side.refunded += r.amount.minor();
                provider_refunds.entry(id.as_str()).or_insert((r, 0)).1 += r.amount.minor();
            }
        }
    }

    let mut differences = Vec::new();
    let mut push = |kind,
                    id: &str,
                    refund_id: Option<String>,
                    p: Option<&ProviderSide>,
                    j: Option<&JournalPayment>,
                    provider_minor,
                    journal_minor,
                    detail: String| {
        differences.push(Difference {
            kind,
            request_id: id.to_string(),
            refund_id,
            sale_id: j.map(|j| j.sale_id.clone()),
            trade_id: p.and_then(|s| s.trade_id.clone()),
            currency: p
                .and_then(|s| s.currency)
                .or_else(|| j.map(|j| j.amount.currency()))
                .map_or_else(String::new, |c| c.code().to_string()),
            provider_minor,
            journal_minor,
            detail,
        })
    };

    // Payments made on the day: every id with a payment line, and every attempt the journal
    // has as paid that day.
    let payment_ids = ids_either_side(
        &provider,
        &journal_payments,
        |s| s.paid > 0,
        |j| j.paid_within(from, to),
    );
    for id in payment_ids {
        let p = provider.get(id);
        let j = journal_payments.get(id);
        let p_paid = p.map_or(0, |s| s.paid);
        let j_paid = j.filter(|j| j.paid()).map_or(0, |j| j.amount.minor());
        if let Some(j) = j.filter(|j| j.paid_within(from, to)) {
            total(&mut totals, j.amount.currency()).journal_paid += j_paid;
        }
        let journal_state = j.map_or(
            "unknown to the journal".to_string(),
            JournalPayment::describe,
        );
        if p_paid > 0 && j_paid == 0 {
            // Money given back the same day (a cancel, or a refund such as --fix makes)
            // leaves nothing kept.
            let kept = p_paid - p.map_or(0, |s| s.reversed + s.refunded);
            if kept > 0 {
                let fixed = match j {
                    Some(j) => journal
                        .refunds(&j.sale_id)?
                        .into_iter()
                        .filter(|r| r.attempt_id == j.attempt_id)
                        .map(|r| format!("; refund {} is {} in the journal", r.request_id, r.state))
                        .collect::<String>(),
                    None => String::new(),
                };
                push(
                    DifferenceKind::PaidOnlyAtProvider,
                    id,
                    None,
                    p,
                    j,
                    kept,
                    0,
                    format!("the provider kept the money; {journal_state}{fixed}"),
                );
            }
        } else if p_paid == 0 && j_paid > 0 {
            let midnight = j.is_some_and(|j| j.created_at < from);
            push(
                DifferenceKind::PaidOnlyInJournal,
                id,
                None,
                p,
                j,
                0,
                j_paid,
                if midnight {
                    "the provider has no such payment this day; it was made before midnight and may be on the previous day's record".to_string()
                } else {
                    "the provider has no such payment".to_string()
                },
            );
        } else if p_paid != j_paid {
            push(
                DifferenceKind::AmountMismatch,
                id,
                None,
                p,
                j,
                p_paid,
                j_paid,
                "paid on both sides, for different amounts".to_string(),
            );
        }
    }

    // Cancels that gave money back on the day.
    let reversal_ids = ids_either_side(
        &provider,
        &journal_payments,
        |s| s.reversed > 0,
        |j| j.reversed_within(from, to),
    );
    for id in reversal_ids {
        let p = provider.get(id);
        let j = journal_payments.get(id);
        let p_reversed = p.map_or(0, |s| s.reversed);
        let j_reversed = j
            .filter(|j| j.reversed_within(from, to))
            .map_or(0, |j| j.amount.minor());
        if let Some(j) = j.filter(|j| j.reversed_within(from, to)) {
            total(&mut totals, j.amount.currency()).journal_refunded += j_reversed;
        }
        // A cancel that gave back a payment the journal never had as paid is already a
        // paid-only-at-provider matter (or nothing, when nothing was kept).
        if p_reversed != j_reversed && (j_reversed > 0 || j.is_some_and(JournalPayment::paid)) {
            let state = j.map_or(
                "unknown to the journal".to_string(),
                JournalPayment::describe,
            );
            push(
                DifferenceKind::RefundMismatch,
                id,
                None,
                p,
                j,
                p_reversed,
                j_reversed,
                format!("the cancel's refund differs; {state}"),
            );
        }
    }

    // Refunds made on the day, by refund id.
    let mut journal_refunds = BTreeMap::new();
    for r in journal.refunds_created_between(from, to)? {
        journal_refunds.insert(r.request_id.clone(), r);
    }
    for refund_id in provider_refunds.keys() {
        if !journal_refunds.contains_key(*refund_id)
            && let Some(r) = journal.refund_by_request_id(refund_id)?
        {
            journal_refunds.insert(r.request_id.clone(), r);
        }
    }
    for r in journal_refunds.values() {
        if r.state == RefundState::Succeeded && r.created_at >= from && r.created_at < to {
            total(&mut totals, r.amount.currency()).journal_refunded += r.amount.minor();
        }
    }
    let refund_ids: BTreeSet<&str> = provider_refunds
        .keys()
        .copied()
        .chain(journal_refunds.keys().map(String::as_str))
        .collect();
    for refund_id in refund_ids {
        let p = provider_refunds.get(refund_id);
        let row = journal_refunds.get(refund_id);
        let p_minor = p.map_or(0, |(_, m)| *m);
        let j_minor = row
            .filter(|r| r.state == RefundState::Succeeded)
            .map_or(0, |r| r.amount.minor());
        // A refund still in doubt in the journal is the watchdog's; it is not a difference
        // until it ends.
        if p_minor == j_minor || row.is_some_and(|r| !r.state.is_final() && p.is_none()) {
            continue;
        }
        let payment = match (p, row) {
            (Some((rec, _)), _) => rec.request_id.clone(),
            (None, Some(r)) => journal.attempt(r.attempt_id)?.request_id,
            (None, None) => String::new(),
        };
        let j = journal_payments.get(&payment);
        let side = provider.get(payment.as_str());
        let detail = match (p, row) {
            (None, _) => "refunded in the journal, not at the provider".to_string(),
            (Some(_), Some(r)) => format!("refund at the provider; {} in the journal", r.state),
            (Some(_), None) => "refund at the provider; unknown to the journal".to_string(),
        };
        let mut d_sale = row.map(|r| r.sale_id.clone());
        differences.push(Difference {
            kind: DifferenceKind::RefundMismatch,
            request_id: payment.clone(),
            refund_id: Some(refund_id.to_string()),
            sale_id: d_sale.take().or_else(|| j.map(|j| j.sale_id.clone())),
            trade_id: p
                .map(|(rec, _)| rec.trade_id.clone())
                .or_else(|| side.and_then(|s| s.trade_id.clone())),
            currency: p
                .map(|(rec, _)| rec.amount.currency())
                .or_else(|| row.map(|r| r.amount.currency()))
                .map_or_else(String::new, |c| c.code().to_string()),
            provider_minor: p_minor,
            journal_minor: j_minor,
            detail,
        });
    }
    differences.sort_by(|a, b| (a.kind, &a.request_id).cmp(&(b.kind, &b.request_id)));
    // Every attempt that ended not charged on the gateway's word alone is looked up
    // explicitly: a trade created late cannot slip through.
    let unconfirmed_checked = journal_payments
        .iter()
        .filter_map(|(id, j)| {
            j.unconfirmed.map(|why| Checked {
                request_id: id.clone(),
                sale_id: j.sale_id.clone(),
                why,
                paid_at_provider: provider.get(id.as_str()).is_some_and(|s| s.paid > 0),
            })
        })
        .collect();
    Ok(Reconciliation {
        date: date.to_string(),
        source: source.to_string(),
        provider_lines: records.len(),
        other_lines: others.len(),
        differences,
        totals: totals.into_values().collect(),
        fixes: Vec::new(),
        unconfirmed_checked,
    })
}

/// The journal `meta` key under which the daemon keeps its last daily reconciliation.
pub const LAST_RUN_KEY: &str = "reconcile_last";

/// What the daemon's last daily reconciliation found, for health, metrics and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LastRun {
    /// The provider's day compared.
    pub date: String,
    pub ran_at: String,
    pub differences: usize,
    pub paid_only_at_provider: usize,
    /// Why the comparison could not be made (bill not ready, gateway unreachable).
    pub error: Option<String>,
}

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

    pub fn load(journal: &Journal) -> Option<LastRun> {
        let text = journal.meta(LAST_RUN_KEY).ok()??;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        journal.set_meta(
            LAST_RUN_KEY,
            &serde_json::to_string(self).unwrap_or_default(),
        )
    }
}

fn major(minor: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Ok(c) => Amount::from_minor(minor, c).to_major_string(),
        Err(_) => minor.to_string(),
    }
}

/// The text report an operator reads.
pub fn to_text(r: &Reconciliation) -> String {
    let mut out = format!(
        "Reconciliation {} against {} ({} provider lines)\n",
        r.date, r.source, r.provider_lines
    );
    for t in &r.totals {
        out.push_str(&format!(
            "  {}: provider paid {} refunded {}; journal paid {} refunded {}\n",
            t.currency,
            major(t.provider_paid, &t.currency),
            major(t.provider_refunded, &t.currency),
            major(t.journal_paid, &t.currency),
            major(t.journal_refunded, &t.currency),
        ));
    }
    if r.other_lines > 0 {
        out.push_str(&format!(
            "  {} line(s) of other terminals on the same account not compared\n",
            r.other_lines
        ));
    }
    if !r.unconfirmed_checked.is_empty() {
        let found = r
            .unconfirmed_checked
            .iter()
            .filter(|c| c.paid_at_provider)
            .count();
        out.push_str(&format!(
            "  {} attempt(s) ended not charged on the gateway's word alone (never created, refused at the door): looked up on the provider's record, {found} paid there\n",
            r.unconfirmed_checked.len()
        ));
    }
    for f in &r.fixes {
        out.push_str(&format!(
            "  fix {}: refund {} {}: {}\n",
            f.request_id,
            f.refund_id.as_deref().unwrap_or("-"),
            f.state,
            f.detail
        ));
    }
    if r.differences.is_empty() {
        out.push_str("No differences: the provider's record and the journal agree.\n");
        return out;
    }
    out.push_str(&format!("{} difference(s):\n", r.differences.len()));
    for d in &r.differences {
        out.push_str(&format!(
            "  {:<22} {} {}{} provider {} journal {} {}: {}\n",
            d.kind.as_str(),
            d.request_id,
            d.sale_id.as_deref().unwrap_or("-"),
            d.refund_id
                .as_deref()
                .map(|id| format!(" refund {id}"))
                .unwrap_or_default(),
            major(d.provider_minor, &d.currency),
            major(d.journal_minor, &d.currency),
            d.currency,
            d.detail,
        ));
    }
    if r.differences
        .iter()
        .any(|d| d.kind == DifferenceKind::PaidOnlyAtProvider)
    {
        out.push_str(
            "paid_only_at_provider: the customer was charged for a sale the journal has as not paid; refund it (scanpay reconcile --fix) or check it with the provider.\n",
        );
    }
    out
}

/// One CSV row per difference, with a header.
pub fn to_csv(r: &Reconciliation) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "kind",
        "request_id",
        "refund_id",
        "sale_id",
        "trade_id",
        "currency",
        "provider",
        "journal",
        "detail",
    ])?;
    for d in &r.differences {
        w.write_record([
            d.kind.as_str(),
            &d.request_id,
            d.refund_id.as_deref().unwrap_or(""),
            d.sale_id.as_deref().unwrap_or(""),
            d.trade_id.as_deref().unwrap_or(""),
            &d.currency,
            &major(d.provider_minor, &d.currency),
            &major(d.journal_minor, &d.currency),
            &d.detail,
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Change, NewAttempt, NewSale};
    use crate::paycode::{Scan, recognise};
    use crate::state::Cause;

    fn cny(minor: i64) -> Amount {
        Amount::from_minor(minor, Currency::from_code("CNY").unwrap())
    }

    /// A journal with one sale per `(request id, minor units, final state)`, made now.
    fn journal(sales: &[(&str, i64, AttemptState)]) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        for (i, (request_id, minor, state)) in sales.iter().enumerate() {
            let new = NewSale {
                id: format!("S{i}"),
                amount: cny(*minor),
                reference: None,
                subject: "x".into(),
                idempotency_key: None,
                max_attempts: 1,
                supersede: false,
            };
            j.create_sale(&new, Utc::now()).unwrap();
            let Scan::Payment(code) = recognise(&format!("2860000000000{i:05}")) else {
                panic!()
            };
            let attempt = NewAttempt {
                request_id: request_id.to_string(),
                gateway: "sandbox",
                code: &code,
                deadline_at: Utc::now(),
            };
            let a = j.begin_attempt(&new.id, &attempt, Utc::now()).unwrap();
            let change = Change {
                paid_then_refunded: *state == AttemptState::Cancelled && *minor > 0 && i % 2 == 1,
                ..Change::default()
            };
            let via = if *state == AttemptState::Cancelled {
                j.transition(
                    a.id,
                    AttemptState::Unknown,
                    Cause::PayAnswer,
                    &Change::default(),
                    Utc::now(),
                )
                .unwrap();
                j.transition(
                    a.id,
                    AttemptState::Cancelling,
                    Cause::Deadline,
                    &Change::default(),
                    Utc::now(),
                )
                .unwrap();
                Cause::CancelAnswer
            } else {
                Cause::PayAnswer
            };
            j.transition(a.id, *state, via, &change, Utc::now())
                .unwrap();
        }
        (dir, j)
    }

    fn line(
        kind: RecordKind,
        request_id: &str,
        minor: i64,
        refund_id: Option<&str>,
    ) -> ProviderRecord {
        ProviderRecord {
            kind,
            request_id: request_id.into(),
            trade_id: format!("trade-{request_id}"),
            amount: cny(minor),
            refund_id: refund_id.map(str::to_string),
            at: String::new(),
            line: 0,
        }
    }

    fn compare(j: &Journal, records: &[ProviderRecord]) -> Reconciliation {
        let today = Utc::now().date_naive();
        let from = today.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::Duration::days(1);
        reconcile(
            j,
            "T",
            today,
            from,
            from + chrono::Duration::days(3),
            "test",
            records,
        )
        .unwrap()
    }

    /// A failed attempt ended with `result_code`/`result_message` as the engine and the
    /// watchdog write them for "never created" and "refused at the door".
    fn end_unconfirmed(j: &Journal, request_id: &str, code: &str, message: &str) {
        let a = j.attempt_by_request_id(request_id).unwrap().unwrap();
        let conn = rusqlite::Connection::open(j.path()).unwrap();
        conn.execute(
            "UPDATE attempts SET result_code = ?2, result_message = ?3 WHERE id = ?1",
            rusqlite::params![a.id, code, message],
        )
        .unwrap();
    }

    #[test]
    fn attempts_ended_on_the_gateways_word_alone_are_looked_up_on_the_bill() {
        let (_d, j) = journal(&[
            ("T_never", 300, AttemptState::Failed),
            ("T_door", 400, AttemptState::Failed),
            ("T_late", 500, AttemptState::Failed),
            ("T_declined", 600, AttemptState::Failed),
        ]);
        end_unconfirmed(
            &j,
            "T_never",
            crate::state::NOT_CREATED,
            "cancel: no such payment",
        );
        end_unconfirmed(
            &j,
            "T_door",
            "isv.invalid-signature",
            &format!("{}: 验签出错", crate::state::REFUSED_AT_DOOR),
        );
        end_unconfirmed(
            &j,
            "T_late",
            crate::state::NOT_CREATED,
            "cancel: no such payment",
        );
        // The "never created" payment T_late was created after all.
        let r = compare(&j, &[line(RecordKind::Payment, "T_late", 500, None)]);
        let checked: Vec<(&str, &str, bool)> = r
            .unconfirmed_checked
            .iter()
            .map(|c| (c.request_id.as_str(), c.why, c.paid_at_provider))
            .collect();
        assert_eq!(
            checked,
            [
                ("T_door", "refused at the door", false),
                ("T_late", "never created", true),
                ("T_never", "never created", false),
            ],
            "an ordinary decline is not in the list"
        );
        assert_eq!(r.differences.len(), 1, "{:?}", r.differences);
        let d = &r.differences[0];
        assert_eq!(d.kind, DifferenceKind::PaidOnlyAtProvider);
        assert_eq!(d.request_id, "T_late");
        assert!(d.detail.contains("never created"), "{}", d.detail);
        let text = to_text(&r);
        assert!(text.contains("3 attempt(s) ended not charged"), "{text}");
        assert!(text.contains("1 paid there"), "{text}");
    }

    #[test]
    fn agreeing_records_have_no_difference_and_equal_totals() {
        let (_d, j) = journal(&[
            ("T_paid", 1250, AttemptState::Succeeded),
            ("T_failed", 900, AttemptState::Failed),
            ("T_closed", 300, AttemptState::Cancelled),
            ("T_reversed", 700, AttemptState::Cancelled),
        ]);
        let r = compare(
            &j,
            &[
                line(RecordKind::Payment, "T_paid", 1250, None),
                line(RecordKind::Payment, "T_reversed", 700, None),
                line(RecordKind::Refund, "T_reversed", 700, None),
            ],
        );
        assert!(r.matches(), "{:?}", r.differences);
        let t = &r.totals[0];
        assert_eq!((t.provider_paid, t.journal_paid), (1950, 1950));
        assert_eq!((t.provider_refunded, t.journal_refunded), (700, 700));
    }

    #[test]
    fn each_kind_of_difference_is_reported_exactly_once() {
        let (_d, j) = journal(&[
            ("T_kept", 1250, AttemptState::Failed),
            ("T_missing", 500, AttemptState::Succeeded),
            ("T_amount", 800, AttemptState::Succeeded),
            ("T_refund", 1000, AttemptState::Succeeded),
        ]);
        let r = compare(
            &j,
            &[
                line(RecordKind::Payment, "T_kept", 1250, None),
                line(RecordKind::Payment, "T_unknown", 400, None),
                line(RecordKind::Payment, "T_amount", 810, None),
                line(RecordKind::Payment, "T_refund", 1000, None),
                line(
                    RecordKind::Refund,
                    "T_refund",
                    100,
                    Some("R_only_at_provider"),
                ),
            ],
        );
        let got: Vec<(DifferenceKind, &str, Option<&str>, i64, i64)> = r
            .differences
            .iter()
            .map(|d| {
                (
                    d.kind,
                    d.request_id.as_str(),
                    d.refund_id.as_deref(),
                    d.provider_minor,
                    d.journal_minor,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (DifferenceKind::PaidOnlyAtProvider, "T_kept", None, 1250, 0),
                (
                    DifferenceKind::PaidOnlyAtProvider,
                    "T_unknown",
                    None,
                    400,
                    0
                ),
                (DifferenceKind::PaidOnlyInJournal, "T_missing", None, 0, 500),
                (DifferenceKind::AmountMismatch, "T_amount", None, 810, 800),
                (
                    DifferenceKind::RefundMismatch,
                    "T_refund",
                    Some("R_only_at_provider"),
                    100,
                    0
                ),
            ]
        );
        assert!(r.differences[1].detail.contains("unknown to the journal"));
        assert_eq!(r.differences[0].sale_id.as_deref(), Some("S0"));
        let csv = to_csv(&r).unwrap();
        assert_eq!(csv.lines().count(), 6);
        assert!(to_text(&r).contains("5 difference(s)"));
    }

    #[test]
    fn a_refund_of_an_earlier_days_payment_matches_on_its_own_day() {
        let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
        // The day being reconciled starts after the payment.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let from = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let refund = j
            .begin_refund("S0", "R1", cny(250), None, Utc::now())
            .unwrap();
        j.refund_transition(
            refund.id,
            RefundState::Succeeded,
            "SUCCESS",
            "ok",
            None,
            Utc::now(),
        )
        .unwrap();
        let r = reconcile(
            &j,
            "T",
            from.date_naive(),
            from,
            from + chrono::Duration::days(1),
            "test",
            &[line(RecordKind::Refund, "T_paid", 250, Some("R1"))],
        )
        .unwrap();
        assert!(r.matches(), "{:?}", r.differences);
        assert_eq!(r.totals[0].journal_paid, 0, "the payment was another day's");
        assert_eq!(r.totals[0].journal_refunded, 250);
    }

    #[test]
    fn other_terminals_lines_are_counted_not_compared() {
        let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
        let r = compare(
            &j,
            &[
                line(RecordKind::Payment, "T_paid", 1250, None),
                line(RecordKind::Payment, "T2_other_till", 999, None),
            ],
        );
        assert!(r.matches(), "{:?}", r.differences);
        assert_eq!((r.provider_lines, r.other_lines), (1, 1));
    }

    #[test]
    fn a_recovery_refund_is_written_once_and_only_for_an_unpaid_final_attempt() {
        let (_d, j) = journal(&[
            ("T_kept", 1250, AttemptState::Failed),
            ("T_paid", 500, AttemptState::Succeeded),
        ]);
        let first = j
            .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
            .unwrap();
        let again = j
            .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
            .unwrap();
        assert_eq!(first.id, again.id, "the same refund, not a second");
        assert_eq!(
            (first.sale_id.as_str(), first.request_id.as_str()),
            ("S0", "T_keptX1")
        );
        for (request_id, amount) in [("T_paid", 500), ("T_kept", 1251), ("T_nothing", 1)] {
            let refused = j.begin_recovery_refund(request_id, cny(amount), "r", Utc::now());
            assert!(refused.is_err(), "{request_id} {amount}");
        }
        // After a failed one, the next try is a new refund under a new id.
        j.refund_transition(
            first.id,
            RefundState::Failed,
            "FAIL",
            "no",
            None,
            Utc::now(),
        )
        .unwrap();
        let retry = j
            .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
            .unwrap();
        assert_eq!(retry.request_id, "T_keptX2");

        // It does not use up what a paid attempt of the same sale can still refund.
        let sale = NewSale {
            id: "S_two".into(),
            amount: cny(1250),
            reference: None,
            subject: "x".into(),
            idempotency_key: None,
            max_attempts: 2,
            supersede: false,
        };
        j.create_sale(&sale, Utc::now()).unwrap();
        for (i, (request_id, to)) in [
            ("T_first", AttemptState::Failed),
            ("T_second", AttemptState::Succeeded),
        ]
        .into_iter()
        .enumerate()
        {
            let Scan::Payment(code) = recognise(&format!("28600000000009{i:04}")) else {
                panic!()
            };
            let new = NewAttempt {
                request_id: request_id.into(),
                gateway: "sandbox",
                code: &code,
                deadline_at: Utc::now(),
            };
            let a = j.begin_attempt("S_two", &new, Utc::now()).unwrap();
            j.transition(a.id, to, Cause::PayAnswer, &Change::default(), Utc::now())
                .unwrap();
        }
        j.begin_recovery_refund("T_first", cny(1250), "r", Utc::now())
            .unwrap();
        j.begin_refund("S_two", "R_customer", cny(1250), None, Utc::now())
            .unwrap();
    }

    #[test]
    fn a_journal_refund_missing_at_the_provider_is_a_refund_mismatch() {
        let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
        let refund = j
            .begin_refund("S0", "R1", cny(250), None, Utc::now())
            .unwrap();
        j.refund_transition(
            refund.id,
            RefundState::Succeeded,
            "SUCCESS",
            "ok",
            None,
            Utc::now(),
        )
        .unwrap();
        let r = compare(&j, &[line(RecordKind::Payment, "T_paid", 1250, None)]);
        assert_eq!(r.differences.len(), 1, "{:?}", r.differences);
        let d = &r.differences[0];
        assert_eq!(
            (d.kind, d.refund_id.as_deref(), d.request_id.as_str()),
            (DifferenceKind::RefundMismatch, Some("R1"), "T_paid")
        );
        assert_eq!((d.provider_minor, d.journal_minor), (0, 250));
        // And once the provider lists it, they agree.
        let r = compare(
            &j,
            &[
                line(RecordKind::Payment, "T_paid", 1250, None),
                line(RecordKind::Refund, "T_paid", 250, Some("R1")),
            ],
        );
        assert!(r.matches(), "{:?}", r.differences);
    }
}
