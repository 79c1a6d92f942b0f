//! The matching, without I/O: the provider's lines of the day summed per request id and refund
//! id, set against the journal's side, into differences and totals per currency.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Checked, Difference, DifferenceKind, JournalPayment, JournalSide, Totals};
use crate::gateway::{ProviderRecord, RecordKind};
use crate::money::Currency;
use crate::state::RefundState;

/// What the matching finds.
pub(super) struct Compared {
    pub(super) differences: Vec<Difference>,
    pub(super) totals: Vec<Totals>,
    pub(super) unconfirmed_checked: Vec<Checked>,
}

/// Each request id's money on the provider's side of the day, minor units.
#[derive(Default)]
struct ProviderSide {
    paid: i64,
    /// What the payment lines say the store received; `None` when a line does not say.
    received: Option<i64>,
    /// Whether any payment line was read yet (`received` starts stated).
    any_payment: bool,
    /// Given back by a cancel (a refund line without a refund id).
    reversed: i64,
    /// Refund lines with a refund id.
    refunded: i64,
    trade_id: Option<String>,
    currency: Option<Currency>,
}

/// The day being compared: both sides and its bounds.
struct Day<'a> {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The provider's side by request id.
    provider: BTreeMap<&'a str, ProviderSide>,
    /// The provider's refund lines by refund id: the first line, and the sum of all.
    provider_refunds: BTreeMap<&'a str, (&'a ProviderRecord, i64)>,
    journal: &'a JournalSide,
}

/// What both sides have under one request id.
#[derive(Clone, Copy)]
struct Pair<'a> {
    id: &'a str,
    provider: Option<&'a ProviderSide>,
    journal: Option<&'a JournalPayment>,
}

impl<'a> Day<'a> {
    fn pair(&'a self, id: &'a str) -> Pair<'a> {
        Pair {
            id,
            provider: self.provider.get(id),
            journal: self.journal.payments.get(id),
        }
    }

    /// The request ids either side has an event of one kind for.
    fn ids_either_side(
        &'a self,
        on_provider: impl Fn(&ProviderSide) -> bool,
        in_journal: impl Fn(&JournalPayment) -> bool,
    ) -> BTreeSet<&'a str> {
        self.provider
            .iter()
            .filter(|(_, s)| on_provider(s))
            .map(|(id, _)| *id)
            .chain(
                self.journal
                    .payments
                    .iter()
                    .filter(|(_, j)| in_journal(j))
                    .map(|(id, _)| id.as_str()),
            )
            .collect()
    }
}

impl Pair<'_> {
    /// A difference of this request id's payment or cancel.
    fn difference(
        self,
        kind: DifferenceKind,
        provider_minor: i64,
        journal_minor: i64,
        detail: String,
    ) -> Difference {
        Difference {
            kind,
            request_id: self.id.to_string(),
            refund_id: None,
            sale_id: self.journal.map(|j| j.sale_id.clone()),
            trade_id: self.provider.and_then(|s| s.trade_id.clone()),
            currency: self
                .provider
                .and_then(|s| s.currency)
                .or_else(|| self.journal.map(|j| j.amount.currency()))
                .map_or_else(String::new, |c| c.code().to_string()),
            provider_minor,
            journal_minor,
            detail,
        }
    }

    fn journal_state(self) -> String {
        self.journal.map_or(
            "unknown to the journal".to_string(),
            JournalPayment::describe,
        )
    }
}

fn total(totals: &mut BTreeMap<String, Totals>, currency: Currency) -> &mut Totals {
    totals
        .entry(currency.code().to_string())
        .or_insert_with(|| Totals {
            currency: currency.code().to_string(),
            ..Totals::default()
        })
}

/// Matches this terminal's provider lines of `[from, to)` against the journal's side.
pub(super) fn compare(
    records: &[&ProviderRecord],
    journal: &JournalSide,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Compared {
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut day = Day {
        from,
        to,
        provider: BTreeMap::new(),
        provider_refunds: BTreeMap::new(),
        journal,
    };
    for r in records.iter().copied() {
        let t = total(&mut totals, r.amount.currency());
        match r.kind {
            RecordKind::Payment => t.provider_paid += r.amount.minor(),
            RecordKind::Refund => t.provider_refunded += r.amount.minor(),
        }
        let side = day.provider.entry(r.request_id.as_str()).or_default();
        side.trade_id.get_or_insert_with(|| r.trade_id.clone());
        side.currency.get_or_insert(r.amount.currency());
        match (r.kind, &r.refund_id) {
            (RecordKind::Payment, _) => {
                side.paid += r.amount.minor();
                let received = r.money.received.map(|a| a.minor());
                side.received = match (side.any_payment, side.received, received) {
                    (false, _, stated) => stated,
                    (true, Some(sum), Some(more)) => Some(sum + more),
                    _ => None,
                };
                side.any_payment = true;
                t.provider_received += received.unwrap_or(r.amount.minor());
            }
            (RecordKind::Refund, None) => side.reversed += r.amount.minor(),
            (RecordKind::Refund, Some(id)) => {
                side.refunded += r.amount.minor();
                day.provider_refunds.entry(id.as_str()).or_insert((r, 0)).1 += r.amount.minor();
            }
        }
    }

    let mut differences = Vec::new();
    payments(&day, &mut totals, &mut differences);
    reversals(&day, &mut totals, &mut differences);
    refunds(&day, &mut totals, &mut differences);
    differences.sort_by(|a, b| (a.kind, &a.request_id).cmp(&(b.kind, &b.request_id)));
    // Every attempt that ended not charged on the gateway's word alone is looked up
    // explicitly: a trade created late cannot slip through.
    let unconfirmed_checked = journal
        .payments
        .iter()
        .filter_map(|(id, j)| {
            j.unconfirmed.map(|why| Checked {
                request_id: id.clone(),
                sale_id: j.sale_id.clone(),
                why: why.into(),
                paid_at_provider: day.provider.get(id.as_str()).is_some_and(|s| s.paid > 0),
            })
        })
        .collect();
    Compared {
        differences,
        totals: totals.into_values().collect(),
        unconfirmed_checked,
    }
}

/// Payments made on the day: every id with a payment line, and every attempt the journal has
/// as paid that day.
fn payments(day: &Day, totals: &mut BTreeMap<String, Totals>, out: &mut Vec<Difference>) {
    let (from, to) = (day.from, day.to);
    for id in day.ids_either_side(|s| s.paid > 0, |j| j.paid_within(from, to)) {
        let pair = day.pair(id);
        let (p, j) = (pair.provider, pair.journal);
        let p_paid = p.map_or(0, |s| s.paid);
        let j_paid = j.map_or(0, JournalPayment::paid_minor);
        if let Some(j) = j.filter(|j| j.paid_within(from, to)) {
            let t = total(totals, j.amount.currency());
            t.journal_paid += j_paid;
            t.journal_received += j.received.map_or(j_paid, |r| r.minor());
        }
        let journal_state = pair.journal_state();
        if p_paid > 0 && j_paid == 0 {
            // Money given back the same day (a cancel, or a refund such as --fix makes)
            // leaves nothing kept.
            let kept = p_paid - p.map_or(0, |s| s.reversed + s.refunded);
            if kept > 0 {
                let fixed = day
                    .journal
                    .refunds_of_unpaid
                    .get(id)
                    .into_iter()
                    .flatten()
                    .map(|r| format!("; refund {} is {} in the journal", r.request_id, r.state))
                    .collect::<String>();
                out.push(pair.difference(
                    DifferenceKind::PaidOnlyAtProvider,
                    kept,
                    0,
                    format!("the provider kept the money; {journal_state}{fixed}"),
                ));
            }
        } else if p_paid == 0 && j_paid > 0 {
            let midnight = j.is_some_and(|j| j.created_at < from);
            out.push(pair.difference(
                DifferenceKind::PaidOnlyInJournal,
                0,
                j_paid,
                if midnight {
                    "the provider has no such payment this day; it was made before midnight and may be on the previous day's record".to_string()
                } else {
                    "the provider has no such payment".to_string()
                },
            ));
        } else if p_paid != j_paid {
            out.push(pair.difference(
                DifferenceKind::AmountMismatch,
                p_paid,
                j_paid,
                "paid on both sides, for different amounts".to_string(),
            ));
        } else if let (Some(p_received), Some(j_received)) = (
            p.and_then(|s| s.received),
            j.and_then(|j| j.received).map(|r| r.minor()),
        ) && p_received != j_received
        {
            out.push(pair.difference(
                DifferenceKind::ReceivedMismatch,
                p_received,
                j_received,
                "paid on both sides for the same amount, but the store received different amounts (discounts differ)".to_string(),
            ));
        }
    }
}

/// Cancels that gave money back on the day.
fn reversals(day: &Day, totals: &mut BTreeMap<String, Totals>, out: &mut Vec<Difference>) {
    let (from, to) = (day.from, day.to);
    for id in day.ids_either_side(|s| s.reversed > 0, |j| j.reversed_within(from, to)) {
        let pair = day.pair(id);
        let (p, j) = (pair.provider, pair.journal);
        let p_reversed = p.map_or(0, |s| s.reversed);
        let j_reversed = j
            .filter(|j| j.reversed_within(from, to))
            .map_or(0, |j| j.amount.minor());
        if let Some(j) = j.filter(|j| j.reversed_within(from, to)) {
            total(totals, j.amount.currency()).journal_refunded += j_reversed;
        }
        // A cancel that gave back a payment the journal never had as paid is already a
        // paid-only-at-provider matter (or nothing, when nothing was kept).
        if p_reversed != j_reversed && (j_reversed > 0 || j.is_some_and(JournalPayment::paid)) {
            let state = pair.journal_state();
            out.push(pair.difference(
                DifferenceKind::RefundMismatch,
                p_reversed,
                j_reversed,
                format!("the cancel's refund differs; {state}"),
            ));
        }
    }
}

/// Refunds made on the day, by refund id.
fn refunds(day: &Day, totals: &mut BTreeMap<String, Totals>, out: &mut Vec<Difference>) {
    let (from, to) = (day.from, day.to);
    let journal_refunds = &day.journal.refunds;
    for r in journal_refunds.values().map(|r| &r.row) {
        if r.state == RefundState::Succeeded && r.created_at >= from && r.created_at < to {
            total(totals, r.amount.currency()).journal_refunded += r.amount.minor();
        }
    }
    let refund_ids: BTreeSet<&str> = day
        .provider_refunds
        .keys()
        .copied()
        .chain(journal_refunds.keys().map(String::as_str))
        .collect();
    for refund_id in refund_ids {
        let p = day.provider_refunds.get(refund_id);
        let refund = journal_refunds.get(refund_id);
        let row = refund.map(|r| &r.row);
        let p_minor = p.map_or(0, |(_, m)| *m);
        let j_minor = row
            .filter(|r| r.state == RefundState::Succeeded)
            .map_or(0, |r| r.amount.minor());
        // A refund still in doubt in the journal is the watchdog's; it is not a difference
        // until it ends.
        if p_minor == j_minor || row.is_some_and(|r| !r.state.is_final() && p.is_none()) {
            continue;
        }
        let payment = match (p, refund) {
            (Some((rec, _)), _) => rec.request_id.clone(),
            (None, Some(r)) => r.payment_request_id.clone(),
            (None, None) => String::new(),
        };
        let j = day.journal.payments.get(&payment);
        let side = day.provider.get(payment.as_str());
        let detail = match (p, row) {
            (None, _) => "refunded in the journal, not at the provider".to_string(),
            (Some(_), Some(r)) => format!("refund at the provider; {} in the journal", r.state),
            (Some(_), None) => "refund at the provider; unknown to the journal".to_string(),
        };
        out.push(Difference {
            kind: DifferenceKind::RefundMismatch,
            request_id: payment.clone(),
            refund_id: Some(refund_id.to_string()),
            sale_id: row
                .map(|r| r.sale_id.clone())
                .or_else(|| j.map(|j| j.sale_id.clone())),
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
}
