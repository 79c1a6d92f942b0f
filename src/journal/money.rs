//! The `attempt_money` table: what the provider said moved for a paid attempt besides the
//! order amount (migration 9), written in the transaction that marks the attempt paid and
//! read with the attempt.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::JournalError;
use super::query::{self, Cells, corrupt};
use crate::money::breakdown::{Breakdown, Fund, Voucher};
use crate::money::{Amount, Currency};
use crate::state::Cause;

#[derive(Serialize, Deserialize)]
struct StoredFund {
    channel: String,
    minor: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredVoucher {
    id: String,
    name: String,
    kind: String,
    minor: i64,
    merchant_minor: Option<i64>,
    platform_minor: Option<i64>,
}

/// Keeps `money` for attempt `attempt_id`, decided by `cause`; nothing when it is empty.
pub(super) fn write(
    conn: &Connection,
    attempt_id: i64,
    cause: Cause,
    money: &Breakdown,
    at: &str,
) -> Result<(), JournalError> {
    if money.is_empty() {
        return Ok(());
    }
    let source = match cause {
        Cause::PayAnswer => "pay",
        _ => "inquiry",
    };
    let minor = |a: Option<Amount>| a.map(|a| a.minor());
    let funds: Vec<StoredFund> = money
        .funds
        .iter()
        .map(|f| StoredFund {
            channel: f.channel.clone(),
            minor: f.amount.minor(),
        })
        .collect();
    let vouchers: Vec<StoredVoucher> = money
        .vouchers
        .iter()
        .map(|v| StoredVoucher {
            id: v.id.clone(),
            name: v.name.clone(),
            kind: v.kind.clone(),
            minor: v.amount.minor(),
            merchant_minor: minor(v.merchant),
            platform_minor: minor(v.platform),
        })
        .collect();
    let json = |e: serde_json::Error| JournalError::Corrupt(format!("attempt money: {e}"));
    let funds = serde_json::to_string(&funds).map_err(json)?;
    let vouchers = serde_json::to_string(&vouchers).map_err(json)?;
    query::execute(
        conn,
        "INSERT OR REPLACE INTO attempt_money (attempt_id, money_source, buyer_paid_minor,
             received_minor, point_minor, invoice_minor, merchant_discount_minor,
             platform_discount_minor, fund_bills, vouchers, money_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            attempt_id,
            source,
            minor(money.buyer_paid),
            minor(money.received),
            minor(money.points),
            minor(money.invoice),
            money.merchant_discount_minor(),
            money.platform_discount_minor(),
            funds,
            vouchers,
            at,
        ],
    )?;
    Ok(())
}

/// The money of the attempt whose row `c` reads, from column `first` on (see [`COLUMNS`]),
/// in `currency`: `money_source`, `buyer_paid_minor`, `received_minor`, `point_minor`,
/// `invoice_minor`, `fund_bills`, `vouchers` (`attempts.rs` selects them); empty when the
/// attempt has none.
pub(super) fn read(
    c: &Cells<'_, '_>,
    first: usize,
    currency: Currency,
    attempt_id: i64,
) -> Result<Breakdown, JournalError> {
    let source: Option<String> = c.get(first)?;
    if source.is_none() {
        return Ok(Breakdown::default());
    }
    let amount = |i: usize| -> Result<Option<Amount>, JournalError> {
        Ok(c.get::<Option<i64>>(first + i)?
            .map(|m| Amount::from_minor(m, currency)))
    };
    let bad = |what: &str, text: &str| corrupt("attempt_money", attempt_id, what, text);
    let funds_text: String = c.get(first + 5)?;
    let vouchers_text: String = c.get(first + 6)?;
    let funds: Vec<StoredFund> =
        serde_json::from_str(&funds_text).map_err(|_| bad("bad fund_bills", &funds_text))?;
    let vouchers: Vec<StoredVoucher> =
        serde_json::from_str(&vouchers_text).map_err(|_| bad("bad vouchers", &vouchers_text))?;
    let at = |m: i64| Amount::from_minor(m, currency);
    Ok(Breakdown {
        buyer_paid: amount(1)?,
        received: amount(2)?,
        points: amount(3)?,
        invoice: amount(4)?,
        funds: funds
            .into_iter()
            .map(|f| Fund {
                channel: f.channel,
                amount: at(f.minor),
            })
            .collect(),
        vouchers: vouchers
            .into_iter()
            .map(|v| Voucher {
                id: v.id,
                name: v.name,
                kind: v.kind,
                amount: at(v.minor),
                merchant: v.merchant_minor.map(at),
                platform: v.platform_minor.map(at),
            })
            .collect(),
    })
}
