//! The end-of-day report: for one local day, sales counted and summed by state and currency,
//! refunds, and what is still in doubt or needs a person. Text, CSV, JSON, or an ESC/POS
//! Z-report for the receipt printer.

pub mod shift;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::clock::{StoreZone, to_journal};
use serde::Serialize;

use crate::journal::{Journal, JournalError, SaleFilter};
use crate::money::{Amount, Currency};
use crate::state::{AttemptState, RefundState, SaleState};
use crate::view::SaleView;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Line {
    pub state: SaleState,
    pub currency: String,
    pub count: u64,
    /// Major units, e.g. "125.50".
    pub total: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RefundLine {
    pub currency: String,
    pub count: u64,
    pub total: String,
}

/// Paid sales by the wallet that paid them and the gateway that charged it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WalletLine {
    pub wallet: String,
    pub gateway: String,
    pub currency: String,
    pub count: u64,
    pub total: String,
}

/// The store's books of the day in one currency, major units: what paid sales ordered
/// (`gross`), the discounts the provider stated (merchant- and platform-funded apart), what
/// the store received (the provider's `receipt_amount`; the order amount where it stated
/// none), the refunds, and what is left received (`net_received`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BooksLine {
    pub currency: String,
    pub gross: String,
    /// Both discounts together.
    pub discount: String,
    pub merchant_discount: String,
    pub platform_discount: String,
    pub received: String,
    pub refunded: String,
    pub net_received: String,
    /// Paid sales whose provider stated no received amount (counted at the order amount).
    pub received_unstated: u64,
}

/// One currency's books, minor units, while the day is summed.
#[derive(Default)]
pub(crate) struct Books {
    gross: i64,
    merchant: i64,
    platform: i64,
    received: i64,
    unstated: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Open {
    pub sale_id: String,
    pub request_id: String,
    pub state: String,
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayReport {
    /// The store day, in `time_zone`.
    pub date: String,
    /// The store's time zone (`[terminal] time_zone`; `host` for the machine's own).
    pub time_zone: String,
    pub from: String,
    pub until: String,
    pub lines: Vec<Line>,
    pub refunds: Vec<RefundLine>,
    /// Paid minus refunded, per currency.
    pub net: Vec<RefundLine>,
    /// Paid sales per wallet and gateway.
    pub by_wallet: Vec<WalletLine>,
    /// Gross, discounts, received and net received, per currency.
    pub books: Vec<BooksLine>,
    /// Paid member sales (auto-debit) per bound wallet, also counted in `by_wallet`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub member_pay: Vec<shift::MemberPayLine>,
    pub in_doubt: Vec<Open>,
    pub needs_attention: Vec<Open>,
}

/// The report of `date`, a day in the store's time zone (docs/operations.md §"One store day").
pub fn day_report(
    journal: &Journal,
    date: NaiveDate,
    zone: StoreZone,
) -> Result<DayReport, JournalError> {
    let (start, end) = zone.day(date);
    let sales = journal.sales(&SaleFilter {
        since: Some(start),
        until: Some(end),
        ..SaleFilter::default()
    })?;
    let mut by: BTreeMap<(String, &'static str), (u64, i64, Currency)> = BTreeMap::new();
    let mut refunds: BTreeMap<String, (u64, i64, Currency)> = BTreeMap::new();
    let mut paid: BTreeMap<String, (i64, Currency)> = BTreeMap::new();
    let mut wallets: BTreeMap<(String, String, String), (u64, i64, Currency)> = BTreeMap::new();
    let mut books: BooksBy = BTreeMap::new();
    let mut members: BTreeMap<(String, String), (u64, i64, Currency)> = BTreeMap::new();
    for sale in &sales {
        if sale.state == SaleState::Paid
            && let Some(a) = journal
                .attempts(&sale.id)?
                .into_iter()
                .find(|a| a.state == crate::state::AttemptState::Succeeded)
        {
            let c = sale.amount.currency();
            let e = wallets
                .entry((
                    a.wallet.as_str().to_string(),
                    a.gateway.clone(),
                    c.code().to_string(),
                ))
                .or_insert((0, 0, c));
            e.0 += 1;
            e.1 += sale.amount.minor();
            if let Some(wallet) = shift::member_wallet(journal, &a)? {
                let m = members
                    .entry((wallet, c.code().to_string()))
                    .or_insert((0, 0, c));
                m.0 += 1;
                m.1 += sale.amount.minor();
            }
            books
                .entry(c.code().to_string())
                .or_insert_with(|| (Books::default(), c))
                .0
                .add(sale.amount, &a.money);
        }
        let c = sale.amount.currency();
        let e = by
            .entry((c.code().to_string(), sale.state.as_str()))
            .or_insert((0, 0, c));
        e.0 += 1;
        e.1 += sale.amount.minor();
        if sale.state == SaleState::Paid {
            paid.entry(c.code().to_string()).or_insert((0, c)).0 += sale.amount.minor();
        }
    }
    for r in journal.refunds_succeeded_between(start, end)? {
        // A refund of money the provider kept for an unpaid attempt (reconciliation) is not
        // a refund of a paid sale: the report never counted that payment.
        if journal.attempt(r.attempt_id)?.state != crate::state::AttemptState::Succeeded {
            continue;
        }
        let c = r.amount.currency();
        let e = refunds.entry(c.code().to_string()).or_insert((0, 0, c));
        e.0 += 1;
        e.1 += r.amount.minor();
    }
    let fmt = |minor: i64, c: Currency| Amount::from_minor(minor, c).to_major_string();
    let lines = by
        .into_iter()
        .map(|((currency, state), (count, minor, c))| Line {
            state: SaleState::parse(state).unwrap_or(SaleState::Failed),
            currency,
            count,
            total: fmt(minor, c),
        })
        .collect();
    // A day may have refunds and no sales: its net is negative.
    for (currency, (_, _, c)) in &refunds {
        paid.entry(currency.clone()).or_insert((0, *c));
    }
    let net = paid
        .iter()
        .map(|(currency, (minor, c))| {
            let back = refunds.get(currency).map(|r| r.1).unwrap_or(0);
            RefundLine {
                currency: currency.clone(),
                count: 0,
                total: fmt(minor - back, *c),
            }
        })
        .collect();
    for (currency, (_, _, c)) in &refunds {
        books
            .entry(currency.clone())
            .or_insert_with(|| (Books::default(), *c));
    }
    let books = books_lines(books, &refunds);
    let refunds = refunds
        .into_iter()
        .map(|(currency, (count, minor, c))| RefundLine {
            currency,
            count,
            total: fmt(minor, c),
        })
        .collect();
    let by_wallet = wallets
        .into_iter()
        .map(
            |((wallet, gateway, currency), (count, minor, c))| WalletLine {
                wallet,
                gateway,
                currency,
                count,
                total: fmt(minor, c),
            },
        )
        .collect();
    let open = |a: crate::journal::AttemptRow| Open {
        sale_id: a.sale_id,
        request_id: a.request_id,
        state: a.state.as_str().to_string(),
        why: a.needs_attention,
    };
    Ok(DayReport {
        date: date.to_string(),
        time_zone: zone.name(),
        from: crate::clock::to_journal(start),
        until: crate::clock::to_journal(end),
        lines,
        refunds,
        net,
        by_wallet,
        books,
        member_pay: members
            .into_iter()
            .map(
                |((wallet, currency), (count, minor, c))| shift::MemberPayLine {
                    wallet,
                    currency,
                    count,
                    total: fmt(minor, c),
                },
            )
            .collect(),
        in_doubt: journal.open_attempts()?.into_iter().map(open).collect(),
        needs_attention: journal
            .attempts_needing_attention()?
            .into_iter()
            .map(open)
            .collect(),
    })
}

/// Per-currency sums of a stretch of sales while they are added up.
pub(crate) type BooksBy = BTreeMap<String, (Books, Currency)>;

impl Books {
    /// Adds a paid sale of `amount` whose paid attempt stated `money`.
    pub(crate) fn add(&mut self, amount: Amount, money: &crate::money::breakdown::Breakdown) {
        self.gross += amount.minor();
        self.merchant += money.merchant_discount_minor();
        self.platform += money.platform_discount_minor();
        self.received += money.received_or(amount).minor();
        self.unstated += u64::from(money.received.is_none());
    }
}

/// The books lines of summed sales, less the refunds per currency (count, minor units).
pub(crate) fn books_lines(
    books: BooksBy,
    refunds: &BTreeMap<String, (u64, i64, Currency)>,
) -> Vec<BooksLine> {
    let fmt = |minor: i64, c: Currency| Amount::from_minor(minor, c).to_major_string();
    books
        .into_iter()
        .map(|(currency, (b, c))| {
            let back = refunds.get(&currency).map(|r| r.1).unwrap_or(0);
            BooksLine {
                gross: fmt(b.gross, c),
                discount: fmt(b.merchant + b.platform, c),
                merchant_discount: fmt(b.merchant, c),
                platform_discount: fmt(b.platform, c),
                received: fmt(b.received, c),
                refunded: fmt(back, c),
                net_received: fmt(b.received - back, c),
                received_unstated: b.unstated,
                currency,
            }
        })
        .collect()
}

/// The books lines as text rows, as the day report and the shift reports print them.
pub(crate) fn books_text(books: &[BooksLine], out: &mut String) {
    for b in books {
        let row = |k: &str, v: &str| format!("{k:<14} {:<4} {:>6} {v:>16}\n", b.currency, "");
        out.push_str(&row("gross", &b.gross));
        out.push_str(&row("discount", &format!("-{}", b.discount)));
        out.push_str(&row("  merchant", &format!("-{}", b.merchant_discount)));
        out.push_str(&row("  platform", &format!("-{}", b.platform_discount)));
        out.push_str(&row("received", &b.received));
        out.push_str(&row("net received", &b.net_received));
    }
}

pub fn text(r: &DayReport) -> String {
    let mut out = format!(
        "scanpay day report {} (store time {}; {} to {})\n",
        r.date, r.time_zone, r.from, r.until
    );
    out.push_str(&format!(
        "{:<14} {:<4} {:>6} {:>16}\n",
        "state", "cur", "count", "total"
    ));
    for l in &r.lines {
        out.push_str(&format!(
            "{:<14} {:<4} {:>6} {:>16}\n",
            l.state.as_str(),
            l.currency,
            l.count,
            l.total
        ));
    }
    for f in &r.refunds {
        out.push_str(&format!(
            "{:<14} {:<4} {:>6} {:>16}\n",
            "refunded",
            f.currency,
            f.count,
            format!("-{}", f.total)
        ));
    }
    for n in &r.net {
        out.push_str(&format!(
            "{:<14} {:<4} {:>6} {:>16}\n",
            "net", n.currency, "", n.total
        ));
    }
    books_text(&r.books, &mut out);
    // With several wallets in the day, what each took (one wallet: the lines above say it).
    if r.by_wallet.len() > 1 {
        for w in &r.by_wallet {
            out.push_str(&format!(
                "{:<14} {:<4} {:>6} {:>16}  {}\n",
                format!("paid {}", w.wallet),
                w.currency,
                w.count,
                w.total,
                w.gateway
            ));
        }
    }
    for m in &r.member_pay {
        out.push_str(&format!(
            "{:<14} {:<4} {:>6} {:>16}\n",
            format!("member pay {}", m.wallet),
            m.currency,
            m.count,
            m.total
        ));
    }
    out.push_str(&format!("in doubt: {}\n", r.in_doubt.len()));
    for o in &r.in_doubt {
        out.push_str(&format!("  {} {} {}\n", o.sale_id, o.request_id, o.state));
    }
    out.push_str(&format!("needs attention: {}\n", r.needs_attention.len()));
    for o in &r.needs_attention {
        out.push_str(&format!(
            "  {} {}: {}\n",
            o.sale_id,
            o.request_id,
            o.why.as_deref().unwrap_or("")
        ));
    }
    out
}

pub fn csv(r: &DayReport) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["date", "kind", "state", "currency", "count", "total"])
        .map_err(|e| e.to_string())?;
    for l in &r.lines {
        w.write_record([
            r.date.as_str(),
            "sales",
            l.state.as_str(),
            &l.currency,
            &l.count.to_string(),
            &l.total,
        ])
        .map_err(|e| e.to_string())?;
    }
    for f in &r.refunds {
        w.write_record([
            r.date.as_str(),
            "refunds",
            "succeeded",
            &f.currency,
            &f.count.to_string(),
            &f.total,
        ])
        .map_err(|e| e.to_string())?;
    }
    for n in &r.net {
        w.write_record([r.date.as_str(), "net", "", &n.currency, "", &n.total])
            .map_err(|e| e.to_string())?;
    }
    for b in &r.books {
        for (kind, total) in [
            ("gross", &b.gross),
            ("discount", &b.discount),
            ("discount_merchant", &b.merchant_discount),
            ("discount_platform", &b.platform_discount),
            ("received", &b.received),
            ("net_received", &b.net_received),
        ] {
            w.write_record([r.date.as_str(), kind, "", &b.currency, "", total])
                .map_err(|e| e.to_string())?;
        }
    }
    for l in &r.by_wallet {
        w.write_record([
            r.date.as_str(),
            &format!("paid_{}", l.wallet),
            &l.gateway,
            &l.currency,
            &l.count.to_string(),
            &l.total,
        ])
        .map_err(|e| e.to_string())?;
    }
    for m in &r.member_pay {
        w.write_record([
            r.date.as_str(),
            &format!("member_pay_{}", m.wallet),
            "",
            &m.currency,
            &m.count.to_string(),
            &m.total,
        ])
        .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// The report as an ESC/POS Z-report.
pub fn escpos(r: &DayReport, ctx: &crate::output::receipt::ReceiptContext) -> Vec<u8> {
    use crate::output::escpos::{Align, EscPos};
    let mut p = EscPos::new(ctx.encoding);
    p.align(Align::Center)
        .bold(true)
        .line("Z-REPORT")
        .bold(false);
    p.line(&format!("{} terminal {}", r.date, ctx.terminal_id))
        .align(Align::Left);
    p.line(&"-".repeat(ctx.width));
    for line in text(r).lines().skip(1) {
        p.line(line);
    }
    p.feed(2).cut();
    p.into_bytes()
}

/// A stretch of time `[since, until)`; `None` leaves that side open.
pub type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Why an export could not be made: the journal could not be read, or the CSV not written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("writing the CSV: {0}")]
    Csv(#[from] csv::Error),
}

impl From<csv::IntoInnerError<csv::Writer<Vec<u8>>>> for ExportError {
    fn from(e: csv::IntoInnerError<csv::Writer<Vec<u8>>>) -> ExportError {
        ExportError::Csv(csv::Error::from(e.into_error()))
    }
}

/// One row per attempt (a sale without one gets one row) and one per refund. `booked` is
/// what the row adds to the day report's net, on `store_date`: the paid attempt of a paid
/// sale its amount, a refund that went through (in the window) minus its amount, all else
/// zero. So the column of a day's export sums to that day's report net. `received` is what
/// the store received of a paid attempt (the provider's word, else its amount); `operator_id`
/// the sale's cashier.
pub fn export_csv(
    j: &Journal,
    sales: &[SaleView],
    (since, until): Window,
    zone: StoreZone,
) -> Result<String, ExportError> {
    let in_window = |t: DateTime<Utc>| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
    let day = |t: DateTime<Utc>| zone.date_of(t).to_string();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "sale_id",
        "created_at",
        "sale_state",
        "amount",
        "currency",
        "reference",
        "subject",
        "attempt",
        "request_id",
        "attempt_state",
        "result_code",
        "code",
        "wallet",
        "gateway_trade_id",
        "paid_then_refunded",
        "reason",
        "record",
        "store_date",
        "refund_id",
        "refund_state",
        "refund_amount",
        "gateway_refund_id",
        "booked",
        "received",
        "operator_id",
    ])?;
    let zero = |s: &SaleView| Amount::from_minor(0, s.amount.currency()).to_major_string();
    let mut listed = std::collections::HashSet::new();
    let mut refunds = Vec::new();
    for s in sales {
        let (created_at, amount) = (to_journal(s.created_at), s.amount.to_major_string());
        let sale_cols = [
            s.sale_id.as_str(),
            created_at.as_str(),
            s.state.as_str(),
            amount.as_str(),
            s.amount.currency().code(),
            s.reference.as_deref().unwrap_or(""),
            s.subject.as_str(),
        ];
        let reason = s.reason.as_deref().unwrap_or("");
        let store_date = day(s.created_at);
        let zero = zero(s);
        let operator = s.basket.operator_id.as_deref().unwrap_or("");
        if s.attempts.is_empty() {
            let mut row: Vec<&str> = sale_cols.to_vec();
            row.extend(["", "", "", "", "", "", "", "", reason, "sale", &store_date]);
            row.extend(["", "", "", "", zero.as_str(), "", operator]);
            w.write_record(&row)?;
        }
        for (i, a) in s.attempts.iter().enumerate() {
            let seq = (i + 1).to_string();
            let booked = if s.state == SaleState::Paid && a.state == AttemptState::Succeeded {
                amount.clone()
            } else {
                zero.clone()
            };
            // What the store received of a paid attempt, as the provider stated it.
            let received = if a.state == AttemptState::Succeeded {
                a.money.received_or(s.amount).to_major_string()
            } else {
                String::new()
            };
            let mut row: Vec<&str> = sale_cols.to_vec();
            row.extend([
                seq.as_str(),
                a.request_id.as_str(),
                a.state.as_str(),
                a.result_code.as_deref().unwrap_or(""),
                a.code.as_str(),
                a.wallet.as_str(),
                a.gateway_trade_id.as_deref().unwrap_or(""),
                if a.paid_then_refunded {
                    "true"
                } else {
                    "false"
                },
                reason,
                "attempt",
                &store_date,
                "",
                "",
                "",
                "",
                booked.as_str(),
                received.as_str(),
                operator,
            ]);
            w.write_record(&row)?;
        }
        listed.insert(s.sale_id.clone());
        refunds.extend(j.refunds(&s.sale_id)?);
    }
    // Refunds made in the window of sales made before it.
    if let Some(since) = since {
        let later =
            j.refunds_succeeded_between(since, until.unwrap_or(DateTime::<Utc>::MAX_UTC))?;
        refunds.extend(later.into_iter().filter(|r| !listed.contains(&r.sale_id)));
    }
    for r in &refunds {
        let Some(sale) = j.sale(&r.sale_id)? else {
            continue;
        };
        let attempt = j.attempt(r.attempt_id)?;
        // As the day report: a refund of money the provider kept for an unpaid attempt
        // (reconciliation) takes back nothing the report counted.
        let counts = r.state == RefundState::Succeeded
            && attempt.state == AttemptState::Succeeded
            && in_window(r.updated_at);
        let booked = if counts {
            format!("-{}", r.amount.to_major_string())
        } else {
            Amount::from_minor(0, r.amount.currency()).to_major_string()
        };
        let created_at = to_journal(r.created_at);
        let when = if r.state == RefundState::Succeeded {
            r.updated_at
        } else {
            r.created_at
        };
        w.write_record([
            sale.id.as_str(),
            created_at.as_str(),
            sale.state.as_str(),
            "",
            r.amount.currency().code(),
            sale.reference.as_deref().unwrap_or(""),
            sale.subject.as_str(),
            "",
            attempt.request_id.as_str(),
            attempt.state.as_str(),
            r.result_code.as_deref().unwrap_or(""),
            "",
            "",
            attempt.gateway_trade_id.as_deref().unwrap_or(""),
            "",
            r.reason.as_deref().unwrap_or(""),
            "refund",
            &day(when),
            r.request_id.as_str(),
            r.state.as_str(),
            &r.amount.to_major_string(),
            r.gateway_refund_id.as_deref().unwrap_or(""),
            &booked,
            "",
            sale.basket.operator_id.as_deref().unwrap_or(""),
        ])?;
    }
    // Every field written is a Rust string, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&w.into_inner()?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_wallets_are_listed_each_with_its_gateway() {
        let line = |wallet: &str, gateway: &str, total: &str| WalletLine {
            wallet: wallet.into(),
            gateway: gateway.into(),
            currency: "CNY".into(),
            count: 1,
            total: total.into(),
        };
        let mut r = DayReport {
            date: "2026-12-01".into(),
            time_zone: "+08:00".into(),
            from: String::new(),
            until: String::new(),
            lines: vec![],
            refunds: vec![],
            net: vec![],
            by_wallet: vec![line("alipay", "alipay-openapi", "1.00")],
            books: vec![],
            member_pay: vec![],
            in_doubt: vec![],
            needs_attention: vec![],
        };
        assert!(
            !text(&r).contains("paid alipay"),
            "one wallet: nothing more"
        );
        r.by_wallet.push(line("wechat_pay", "wechat-pay", "2.00"));
        let t = text(&r);
        assert!(
            t.contains("paid alipay") && t.contains("alipay-openapi"),
            "{t}"
        );
        assert!(
            t.contains("paid wechat_pay") && t.contains("2.00") && t.contains("wechat-pay"),
            "{t}"
        );
        let c = csv(&r).unwrap();
        assert!(
            c.contains("2026-12-01,paid_wechat_pay,wechat-pay,CNY,1,2.00"),
            "{c}"
        );
    }
    use crate::journal::{Change, NewAttempt, NewSale};
    use crate::paycode::{Scan, recognise};
    use crate::state::{AttemptState, Cause, RefundState};

    #[test]
    fn sums_equal_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let cny = Currency::from_code("CNY").unwrap();
        let now = chrono::Utc::now();
        let zone = StoreZone::parse("-05:00").unwrap();
        let mut expected_paid = 0;
        for (i, (minor, paid)) in [(1250, true), (300, false), (999, true), (1, true)]
            .into_iter()
            .enumerate()
        {
            let id = format!("S{i}");
            let new = NewSale {
                id: id.clone(),
                amount: Amount::from_minor(minor, cny),
                reference: None,
                subject: "x".into(),
                idempotency_key: None,
                max_attempts: 1,
                supersede: false,
                basket: Default::default(),
            };
            j.create_sale(&new, now).unwrap();
            let Scan::Payment(code) = recognise(&format!("2860000000000001{i:02}")) else {
                panic!()
            };
            let a = j
                .begin_attempt(
                    &id,
                    &NewAttempt {
                        request_id: format!("R{i}"),
                        gateway: "sandbox",
                        code: &code,
                        deadline_at: now,
                        signing_key: None,
                    },
                    now,
                )
                .unwrap();
            let to = if paid {
                AttemptState::Succeeded
            } else {
                AttemptState::Failed
            };
            // S2 had a merchant voucher of 1.00 and a platform one of 0.50.
            let money = (i == 2).then(|| {
                use crate::money::breakdown::{Breakdown, Voucher};
                let at = |m| Amount::from_minor(m, cny);
                let voucher = |merchant, platform| Voucher {
                    id: "V".into(),
                    name: "v".into(),
                    kind: "ALIPAY_FIX_VOUCHER".into(),
                    amount: at(merchant + platform),
                    merchant: Some(at(merchant)),
                    platform: Some(at(platform)),
                };
                Breakdown {
                    received: Some(at(minor - 100)),
                    buyer_paid: Some(at(minor - 150)),
                    vouchers: vec![voucher(100, 0), voucher(0, 50)],
                    ..Breakdown::default()
                }
            });
            let change = Change {
                money,
                ..Change::default()
            };
            j.transition(a.id, to, Cause::PayAnswer, &change, now)
                .unwrap();
            if paid {
                expected_paid += minor;
            }
        }
        let r = j
            .begin_refund("S0", "RF1", Amount::from_minor(250, cny), None, now)
            .unwrap();
        j.refund_transition(r.id, RefundState::Succeeded, "ok", "ok", None, now)
            .unwrap();
        let report = day_report(&j, zone.date_of(now), zone).unwrap();
        let paid = report
            .lines
            .iter()
            .find(|l| l.state == SaleState::Paid)
            .unwrap();
        assert_eq!(
            (paid.count, paid.total.as_str()),
            (
                3,
                Amount::from_minor(expected_paid, cny)
                    .to_major_string()
                    .as_str()
            )
        );
        let failed = report
            .lines
            .iter()
            .find(|l| l.state == SaleState::Failed)
            .unwrap();
        assert_eq!((failed.count, failed.total.as_str()), (1, "3.00"));
        assert_eq!(report.refunds[0].total, "2.50");
        let b = &report.books[0];
        let books = (
            b.gross.as_str(),
            b.discount.as_str(),
            b.merchant_discount.as_str(),
            b.platform_discount.as_str(),
            b.received.as_str(),
            b.refunded.as_str(),
            b.net_received.as_str(),
            b.received_unstated,
        );
        assert_eq!(
            books,
            ("22.50", "1.50", "1.00", "0.50", "21.50", "2.50", "19.00", 2)
        );
        let t = text(&report);
        assert!(t.contains("net received") && t.contains("19.00"), "{t}");
        assert_eq!(
            report.net[0].total,
            Amount::from_minor(expected_paid - 250, cny).to_major_string()
        );
        assert!(text(&report).contains("net"));
        assert!(csv(&report).unwrap().lines().count() >= 4);
        let yesterday = zone.date_of(now).pred_opt().unwrap();
        assert!(
            day_report(&j, yesterday, zone).unwrap().lines.is_empty(),
            "another day has no sales"
        );

        // A refund made tomorrow for one of today's sales counts tomorrow, not today.
        let tomorrow_at = now + chrono::Duration::days(1);
        let late = j
            .begin_refund("S0", "RF2", Amount::from_minor(100, cny), None, tomorrow_at)
            .unwrap();
        j.refund_transition(
            late.id,
            RefundState::Succeeded,
            "ok",
            "ok",
            None,
            tomorrow_at,
        )
        .unwrap();
        let today = day_report(&j, zone.date_of(now), zone).unwrap();
        assert_eq!(today.refunds[0].total, "2.50");
        let tomorrow = day_report(&j, zone.date_of(tomorrow_at), zone).unwrap();
        assert!(tomorrow.lines.is_empty());
        assert_eq!(
            (
                tomorrow.refunds[0].count,
                tomorrow.refunds[0].total.as_str()
            ),
            (1, "1.00")
        );
        assert_eq!(tomorrow.net[0].total, "-1.00");
    }
}
