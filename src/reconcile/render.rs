//! A reconciliation as people and spreadsheets read it: the operator's text report and one CSV
//! row per difference, amounts in major units.

use super::{DifferenceKind, Reconciliation};
use crate::money::{Amount, Currency};

fn major(minor: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Ok(c) => Amount::from_minor(minor, c).to_major_string(),
        Err(_) => minor.to_string(),
    }
}

/// The text report an operator reads.
pub fn to_text(r: &Reconciliation) -> String {
    let mut out = format!(
        "Reconciliation {} (the provider's day, Beijing time; store time {}) against {} ({} provider lines)\n",
        r.date, r.store_time, r.source, r.provider_lines
    );
    for t in &r.totals {
        out.push_str(&format!(
            "  {}: provider paid {} (received {}) refunded {}; journal paid {} (received {}) refunded {}\n",
            t.currency,
            major(t.provider_paid, &t.currency),
            major(t.provider_received, &t.currency),
            major(t.provider_refunded, &t.currency),
            major(t.journal_paid, &t.currency),
            major(t.journal_received, &t.currency),
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
