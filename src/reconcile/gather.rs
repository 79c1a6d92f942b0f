//! The journal's side of a day: every read reconciliation makes. The attempts and refunds of
//! the day, those the provider's lines name though the journal has them on another day, the
//! payment each refund belongs to, and the refunds already made of a payment only the
//! provider has as paid.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{JournalPayment, JournalRefund, JournalSide};
use crate::gateway::{ProviderRecord, RecordKind};
use crate::journal::{Journal, JournalError, SaleFilter};

/// Reads what the journal has of `[from, to)` and of every id in `records` (this terminal's
/// lines).
pub(super) fn journal_side(
    journal: &Journal,
    records: &[&ProviderRecord],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    gateway: Option<&str>,
) -> Result<JournalSide, JournalError> {
    let ours = |a: &crate::journal::AttemptRow| gateway.is_none_or(|g| a.gateway == g);
    // The journal's attempts of the day (made or ended in it), and any a line names.
    let mut payments: BTreeMap<String, JournalPayment> = BTreeMap::new();
    let filter = SaleFilter {
        since: Some(from),
        until: Some(to),
        ..SaleFilter::default()
    };
    for sale in journal.sales(&filter)? {
        for a in journal.attempts(&sale.id)?.into_iter().filter(ours) {
            payments.insert(a.request_id.clone(), JournalPayment::of(&a));
        }
    }
    for a in journal
        .attempts_updated_between(from, to)?
        .into_iter()
        .filter(ours)
    {
        payments.insert(a.request_id.clone(), JournalPayment::of(&a));
    }
    for r in records {
        if !payments.contains_key(&r.request_id)
            && let Some(a) = journal.attempt_by_request_id(&r.request_id)?
        {
            payments.insert(r.request_id.clone(), JournalPayment::of(&a));
        }
    }

    // A payment the provider has and the journal has unpaid may already be given back; the
    // difference names those refunds.
    let mut refunds_of_unpaid: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == RecordKind::Payment) {
        if let Some(j) = payments.get(&r.request_id).filter(|j| j.paid_minor() == 0)
            && !refunds_of_unpaid.contains_key(&r.request_id)
        {
            let of_attempt = journal
                .refunds(&j.sale_id)?
                .into_iter()
                .filter(|refund| refund.attempt_id == j.attempt_id)
                .collect();
            refunds_of_unpaid.insert(r.request_id.clone(), of_attempt);
        }
    }

    // Refunds made on the day, and any a line names, by refund id.
    let mut rows = BTreeMap::new();
    for r in journal.refunds_created_between(from, to)? {
        rows.insert(r.request_id.clone(), r);
    }
    let named = records
        .iter()
        .filter(|r| r.kind == RecordKind::Refund)
        .filter_map(|r| r.refund_id.as_deref());
    for refund_id in named {
        if !rows.contains_key(refund_id)
            && let Some(r) = journal.refund_by_request_id(refund_id)?
        {
            rows.insert(r.request_id.clone(), r);
        }
    }
    let request_id_of_attempt: BTreeMap<i64, &str> = payments
        .iter()
        .map(|(id, j)| (j.attempt_id, id.as_str()))
        .collect();
    let mut refunds = BTreeMap::new();
    for (refund_id, row) in rows {
        let payment_request_id = match request_id_of_attempt.get(&row.attempt_id) {
            Some(id) => id.to_string(),
            None => {
                let a = journal.attempt(row.attempt_id)?;
                // A refund of a payment that went to another gateway is on its records.
                if !ours(&a) {
                    continue;
                }
                a.request_id
            }
        };
        refunds.insert(
            refund_id,
            JournalRefund {
                row,
                payment_request_id,
            },
        );
    }
    Ok(JournalSide {
        payments,
        refunds,
        refunds_of_unpaid,
    })
}
