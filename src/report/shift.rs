//! The shift reports: an X-report of a shift still open (what it holds so far) and the
//! numbered Z-report kept when it closes, with totals per cashier and per wallet and the
//! books, as text, JSON or ESC/POS. A Z-report is made once, at the close, and reprinted
//! from what the journal kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BooksBy, BooksLine, RefundLine, WalletLine, books_lines, books_text};
use crate::clock::{StoreZone, to_journal};
use crate::journal::{Journal, JournalError, SaleFilter, ShiftRow};
use crate::money::{Amount, Currency};
use crate::output::labels::{Label, Language};
use crate::output::layout;
use crate::state::{AttemptState, SaleState};

/// Paid sales of one cashier (the sale's `operator_id`; empty when the register named none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CashierLine {
    pub operator_id: String,
    pub currency: String,
    pub count: u64,
    /// What they ordered, major units.
    pub total: String,
    /// What the store received of them.
    pub received: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShiftReport {
    pub shift_id: i64,
    /// The Z-report's number; `None` for an X-report (the shift is still open).
    pub z_number: Option<i64>,
    pub opened_at: String,
    pub opened_by: Option<String>,
    /// When the shift closed, or when this X-report was made.
    pub until: String,
    pub time_zone: String,
    pub paid_count: u64,
    pub by_cashier: Vec<CashierLine>,
    pub by_wallet: Vec<WalletLine>,
    pub books: Vec<BooksLine>,
    pub refunds: Vec<RefundLine>,
    /// Member sales (auto-debit) per bound wallet, also counted in `by_wallet`; reports
    /// kept before member pay have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_pay: Vec<MemberPayLine>,
}

/// Paid member sales (auto-debit) of one bound wallet (`ALIPAY_CN`) and currency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberPayLine {
    /// The wallet the member bound, as Antom names it.
    pub wallet: String,
    pub currency: String,
    pub count: u64,
    pub total: String,
}

/// The wallet a paid member attempt charged: the one its member bound (kept after a
/// revocation), else the attempt's own.
pub(crate) fn member_wallet(
    journal: &Journal,
    a: &crate::journal::AttemptRow,
) -> Result<Option<String>, JournalError> {
    if a.method != crate::paycode::PayMethod::Member {
        return Ok(None);
    }
    let bound = match a.code_masked.strip_prefix("member ") {
        Some(id) => journal.member_binding(id)?.map(|b| b.wallet),
        None => None,
    };
    Ok(Some(bound.unwrap_or_else(|| a.wallet.as_str().to_string())))
}

/// The report of `shift` over the sales created from its opening to `until`, numbered `z`.
pub fn shift_report(
    journal: &Journal,
    shift: &ShiftRow,
    until: DateTime<Utc>,
    z: Option<i64>,
    zone: StoreZone,
) -> Result<ShiftReport, JournalError> {
    let (from, until) = (shift.opened_at, until.max(shift.opened_at));
    let sales = journal.sales(&SaleFilter {
        since: Some(from),
        until: Some(until),
        ..SaleFilter::default()
    })?;
    type Sum = (u64, i64, i64, Currency);
    let mut cashiers: BTreeMap<(String, String), Sum> = BTreeMap::new();
    let mut wallets: BTreeMap<(String, String, String), Sum> = BTreeMap::new();
    let mut books: BooksBy = BTreeMap::new();
    let mut members: BTreeMap<(String, String), Sum> = BTreeMap::new();
    let mut paid_count = 0;
    for sale in sales.iter().filter(|s| s.state == SaleState::Paid) {
        let Some(a) = journal
            .attempts(&sale.id)?
            .into_iter()
            .find(|a| a.state == AttemptState::Succeeded)
        else {
            continue;
        };
        paid_count += 1;
        let c = sale.amount.currency();
        let received = a.money.received_or(sale.amount).minor();
        let add = |e: &mut Sum| {
            e.0 += 1;
            e.1 += sale.amount.minor();
            e.2 += received;
        };
        let cashier = sale.basket.operator_id.clone().unwrap_or_default();
        add(cashiers
            .entry((cashier, c.code().to_string()))
            .or_insert((0, 0, 0, c)));
        add(wallets
            .entry((
                a.wallet.as_str().to_string(),
                a.gateway.clone(),
                c.code().to_string(),
            ))
            .or_insert((0, 0, 0, c)));
        if let Some(wallet) = member_wallet(journal, &a)? {
            add(members
                .entry((wallet, c.code().to_string()))
                .or_insert((0, 0, 0, c)));
        }
        books
            .entry(c.code().to_string())
            .or_insert_with(|| (super::Books::default(), c))
            .0
            .add(sale.amount, &a.money);
    }
    let mut refunds: BTreeMap<String, (u64, i64, Currency)> = BTreeMap::new();
    for r in journal.refunds_succeeded_between(from, until)? {
        // As the day report: only refunds of paid sales.
        if journal.attempt(r.attempt_id)?.state != AttemptState::Succeeded {
            continue;
        }
        let c = r.amount.currency();
        let e = refunds.entry(c.code().to_string()).or_insert((0, 0, c));
        e.0 += 1;
        e.1 += r.amount.minor();
    }
    let fmt = |minor: i64, c: Currency| Amount::from_minor(minor, c).to_major_string();
    Ok(ShiftReport {
        shift_id: shift.id,
        z_number: z,
        opened_at: to_journal(from),
        opened_by: shift.opened_by.clone(),
        until: to_journal(until),
        time_zone: zone.name(),
        paid_count,
        by_cashier: cashiers
            .into_iter()
            .map(
                |((operator_id, currency), (count, total, received, c))| CashierLine {
                    operator_id,
                    currency,
                    count,
                    total: fmt(total, c),
                    received: fmt(received, c),
                },
            )
            .collect(),
        by_wallet: wallets
            .into_iter()
            .map(
                |((wallet, gateway, currency), (count, total, _, c))| WalletLine {
                    wallet,
                    gateway,
                    currency,
                    count,
                    total: fmt(total, c),
                },
            )
            .collect(),
        member_pay: members
            .into_iter()
            .map(|((wallet, currency), (count, total, _, c))| MemberPayLine {
                wallet,
                currency,
                count,
                total: fmt(total, c),
            })
            .collect(),
        books: books_lines(books, &refunds),
        refunds: refunds
            .into_iter()
            .map(|(currency, (count, minor, c))| RefundLine {
                currency,
                count,
                total: fmt(minor, c),
            })
            .collect(),
    })
}

/// Closes the open shift `id` now: its Z-report made over its sales, numbered and kept in
/// the journal in the closing's transaction. A shift already closed answers its kept report.
pub fn close(
    journal: &Journal,
    id: i64,
    now: DateTime<Utc>,
    zone: StoreZone,
) -> Result<ShiftReport, JournalError> {
    let shift = journal.shift(id)?.ok_or(JournalError::NoShift(id))?;
    if shift.closed_at.is_none() {
        // The number is the journal's to give; the report is written with it below.
        let draft = shift_report(journal, &shift, now, None, zone)?;
        let text = serde_json::to_string(&draft)
            .map_err(|e| JournalError::Corrupt(format!("shift {id} report: {e}")))?;
        journal.close_shift(id, now, &text)?;
    }
    kept(journal, id)
}

/// The Z-report kept for closed shift `id`, with its number.
pub fn kept(journal: &Journal, id: i64) -> Result<ShiftReport, JournalError> {
    let shift = journal.shift(id)?.ok_or(JournalError::NoShift(id))?;
    let (Some(z), Some(text)) = (shift.z_number, &shift.report) else {
        return Err(JournalError::NoShift(id));
    };
    let mut report: ShiftReport = serde_json::from_str(text)
        .map_err(|_| JournalError::Corrupt(format!("shift {id}: its kept report does not read")))?;
    report.z_number = Some(z);
    Ok(report)
}

/// The report as text for people.
pub fn text(r: &ShiftReport) -> String {
    let title = match r.z_number {
        Some(z) => format!("Z-report {z:04}"),
        None => "X-report (shift open)".to_string(),
    };
    let mut out = format!(
        "scanpay {title}, shift {} ({}; {} to {}){}\n",
        r.shift_id,
        r.time_zone,
        r.opened_at,
        r.until,
        r.opened_by
            .as_deref()
            .map(|o| format!(", opened by {o}"))
            .unwrap_or_default()
    );
    out.push_str(&format!("paid sales: {}\n", r.paid_count));
    // One line per cashier, wallet and refund currency: label, currency, count, total.
    let mut row = |label: String, currency: &str, count: u64, total: String| {
        out.push_str(&format!(
            "{label:<14} {currency:<4} {count:>6} {total:>16}\n"
        ));
    };
    for c in &r.by_cashier {
        let who = if c.operator_id.is_empty() {
            "(no cashier)"
        } else {
            &c.operator_id
        };
        row(
            format!("cashier {who}"),
            &c.currency,
            c.count,
            c.total.clone(),
        );
    }
    for w in &r.by_wallet {
        row(
            format!("wallet {}", w.wallet),
            &w.currency,
            w.count,
            w.total.clone(),
        );
    }
    for m in &r.member_pay {
        row(
            format!("member pay {}", m.wallet),
            &m.currency,
            m.count,
            m.total.clone(),
        );
    }
    for f in &r.refunds {
        row(
            "refunded".into(),
            &f.currency,
            f.count,
            format!("-{}", f.total),
        );
    }
    books_text(&r.books, &mut out);
    out
}

/// The report's rows for a slip: a label on the left, its value on the right.
fn slip_rows(r: &ShiftReport, zone: StoreZone, lang: Language) -> Vec<(String, String)> {
    let local = |t: &str| {
        crate::clock::from_journal(t)
            .map(|t| zone.local(t).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| t.to_string())
    };
    let l = |k| lang.label(k);
    let mut rows = vec![(l(Label::PaidSales), r.paid_count.to_string())];
    if let Some(o) = &r.opened_by {
        rows.insert(0, (l(Label::OpenedBy), o.clone()));
    }
    rows.push((l(Label::From), local(&r.opened_at)));
    rows.push((l(Label::Until), local(&r.until)));
    for c in &r.by_cashier {
        let who = if c.operator_id.is_empty() {
            "-"
        } else {
            c.operator_id.as_str()
        };
        let cashier = match lang {
            Language::En => "cashier".to_string(),
            _ => l(Label::Cashier),
        };
        rows.push((
            format!("{cashier} {who} x{}", c.count),
            format!("{} {}", c.total, c.currency),
        ));
    }
    for w in &r.by_wallet {
        rows.push((
            format!("{} x{}", lang.wallet(&w.wallet), w.count),
            format!("{} {}", w.total, w.currency),
        ));
    }
    for m in &r.member_pay {
        rows.push((
            format!("{} {} x{}", l(Label::MemberPay), m.wallet, m.count),
            format!("{} {}", m.total, m.currency),
        ));
    }
    for f in &r.refunds {
        rows.push((
            format!("{} x{}", l(Label::Refunded), f.count),
            format!("-{} {}", f.total, f.currency),
        ));
    }
    for b in &r.books {
        let c = &b.currency;
        rows.push((l(Label::Gross), format!("{} {c}", b.gross)));
        rows.push((
            l(Label::DiscountStore),
            format!("-{} {c}", b.merchant_discount),
        ));
        rows.push((
            l(Label::DiscountWallet),
            format!("-{} {c}", b.platform_discount),
        ));
        rows.push((l(Label::Received), format!("{} {c}", b.received)));
        rows.push((l(Label::NetReceived), format!("{} {c}", b.net_received)));
    }
    rows
}

/// The report as an ESC/POS slip for the receipt printer, each row fitted to `ctx.width`
/// columns (58 mm: 32, 80 mm: 48) by `output::layout::row`: a value that does not fit
/// beside its label goes on the next line, to the right.
pub fn escpos(r: &ShiftReport, ctx: &crate::output::receipt::ReceiptContext) -> Vec<u8> {
    use crate::output::escpos::{Align, EscPos};
    let lang = ctx.language;
    let mut p = EscPos::new(ctx.encoding);
    let title = match r.z_number {
        Some(z) => format!("{} {z:04}", lang.label(Label::ZReport)),
        None => lang.label(Label::XReport),
    };
    p.align(Align::Center);
    for name in &ctx.store_name {
        p.line(name);
    }
    p.bold(true).line(&title).bold(false);
    p.line(&format!(
        "{} {} {} {}",
        lang.label(Label::Shift),
        r.shift_id,
        match lang {
            Language::En => "terminal".to_string(),
            _ => lang.label(Label::Terminal),
        },
        ctx.terminal_id
    ))
    .align(Align::Left);
    p.line(&"-".repeat(ctx.width));
    for (left, right) in slip_rows(r, ctx.zone, lang) {
        for line in layout::row(ctx.width, &left, &right) {
            p.line(&line);
        }
    }
    p.line(&"-".repeat(ctx.width));
    p.feed(2).cut();
    p.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Change, NewAttempt, NewSale};
    use crate::money::basket::Basket;
    use crate::paycode::{Scan, recognise};

    #[test]
    fn z_numbers_follow_closings_never_repeat_and_a_closed_shift_keeps_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let zone = StoreZone::parse("+08:00").unwrap();
        let cny = Currency::from_code("CNY").unwrap();
        let now = Utc::now();
        let first = j.open_shift(Some("C01"), now).unwrap();
        assert!(matches!(
            j.open_shift(None, now),
            Err(JournalError::ShiftOpen(id)) if id == first.id
        ));
        // Two paid sales of two cashiers in the shift.
        for (i, cashier) in ["C01", "C02"].into_iter().enumerate() {
            let new = NewSale {
                id: format!("S{i}"),
                amount: Amount::from_minor(1000, cny),
                reference: None,
                subject: "x".into(),
                idempotency_key: None,
                max_attempts: 1,
                supersede: false,
                basket: Basket {
                    operator_id: Some(cashier.into()),
                    ..Basket::default()
                },
            };
            j.create_sale(&new, now).unwrap();
            let Scan::Payment(code) = recognise(&format!("28600000000000020{i}")) else {
                panic!()
            };
            let a = j
                .begin_attempt(
                    &new.id,
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
            j.transition(
                a.id,
                AttemptState::Succeeded,
                crate::state::Cause::PayAnswer,
                &Change::default(),
                now,
            )
            .unwrap();
        }
        let later = now + chrono::Duration::seconds(1);
        let x = shift_report(&j, &first, later, None, zone).unwrap();
        assert_eq!(x.z_number, None);
        let cashiers: Vec<(&str, u64)> = x
            .by_cashier
            .iter()
            .map(|c| (c.operator_id.as_str(), c.count))
            .collect();
        assert_eq!(cashiers, [("C01", 1), ("C02", 1)]);
        let z = close(&j, first.id, later, zone).unwrap();
        assert_eq!(z.z_number, Some(1));
        assert_eq!(z.paid_count, 2);
        assert_eq!(close(&j, first.id, later, zone).unwrap(), z, "closed once");
        assert_eq!(kept(&j, first.id).unwrap(), z);
        for n in 2..=3 {
            let s = j.open_shift(None, later).unwrap();
            let z = close(&j, s.id, later, zone).unwrap();
            assert_eq!(z.z_number, Some(n));
            assert_eq!(z.paid_count, 0, "the first shift's sales are its own");
        }
        assert_eq!(j.shift_by_z(2).unwrap().map(|s| s.z_number), Some(Some(2)));
        // The number is the journal's: a second row under a number is refused.
        let dup = rusqlite::Connection::open(j.path())
            .unwrap()
            .execute("UPDATE shifts SET z_number = 1 WHERE z_number = 3", []);
        assert!(dup.is_err());
    }

    /// A closed shift with two cashiers (one with a Chinese name), a voucher and a refund.
    fn sample() -> ShiftReport {
        ShiftReport {
            shift_id: 7,
            z_number: Some(7),
            opened_at: "2026-12-03T01:00:00.000Z".into(),
            opened_by: Some("C01".into()),
            until: "2026-12-03T09:00:00.000Z".into(),
            time_zone: "+08:00".into(),
            paid_count: 3,
            by_cashier: vec![
                CashierLine {
                    operator_id: "C01".into(),
                    currency: "CNY".into(),
                    count: 2,
                    total: "20.00".into(),
                    received: "18.00".into(),
                },
                CashierLine {
                    operator_id: "李雷".into(),
                    currency: "CNY".into(),
                    count: 1,
                    total: "5.00".into(),
                    received: "5.00".into(),
                },
            ],
            by_wallet: vec![WalletLine {
                wallet: "alipay".into(),
                gateway: "alipay-openapi".into(),
                currency: "CNY".into(),
                count: 3,
                total: "25.00".into(),
            }],
            books: vec![BooksLine {
                currency: "CNY".into(),
                gross: "25.00".into(),
                discount: "2.00".into(),
                merchant_discount: "2.00".into(),
                platform_discount: "0.00".into(),
                received: "23.00".into(),
                refunded: "1.00".into(),
                net_received: "22.00".into(),
                received_unstated: 0,
            }],
            refunds: vec![RefundLine {
                currency: "CNY".into(),
                count: 1,
                total: "1.00".into(),
            }],
            member_pay: vec![],
        }
    }

    #[test]
    fn member_pay_has_a_line_per_bound_wallet_in_each_language() {
        let mut r = sample();
        r.member_pay = vec![MemberPayLine {
            wallet: "ALIPAY_CN".into(),
            currency: "CNY".into(),
            count: 2,
            total: "24.50".into(),
        }];
        let t = text(&r);
        assert!(
            t.contains("member pay ALIPAY_CN CNY       2            24.50"),
            "{t}"
        );
        for (lang, label) in [
            (Language::En, "member pay ALIPAY_CN x2"),
            (Language::Zh, "会员代扣 ALIPAY_CN x2"),
        ] {
            let rows = slip_rows(&r, StoreZone::parse("+08:00").unwrap(), lang);
            assert!(
                rows.iter().any(|(k, v)| k == label && v == "24.50 CNY"),
                "{rows:?}"
            );
        }
        // A report kept before member pay reads back without the line, and writes none.
        let mut json = serde_json::to_value(sample()).unwrap();
        assert!(json.get("member_pay").is_none());
        json.as_object_mut().unwrap().remove("member_pay");
        let back: ShiftReport = serde_json::from_value(json).unwrap();
        assert!(back.member_pay.is_empty());
    }

    #[test]
    fn golden_z_reports_58_and_80_mm() {
        use crate::output::escpos::Encoding;
        let r = sample();
        for width in [32, 48] {
            let ctx = crate::output::receipt::ReceiptContext {
                store_name: vec!["扫码小店".into()],
                terminal_id: "T0001".into(),
                header: vec![],
                footer: vec![],
                width,
                encoding: Encoding::Gb18030,
                zone: StoreZone::parse("+08:00").unwrap(),
                language: Language::En,
            };
            let bytes = escpos(&r, &ctx);
            let name = format!("shift_z_report_{}mm.bin", if width == 32 { 58 } else { 80 });
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(&name);
            if std::env::var_os("SCANPAY_BLESS").is_some() {
                std::fs::write(&path, &bytes).unwrap();
            }
            let expected = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (SCANPAY_BLESS=1 writes it)", path.display()));
            assert!(expected == bytes, "{name} differs from the golden bytes");
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("Z-REPORT 0007"), "{text}");
            assert!(text.contains("cashier C01 x2"), "{text}");
        }
    }

    #[test]
    fn golden_z_report_in_chinese_lines_up() {
        for (width, name) in [
            (32, "shift_z_report_58mm_zh.bin"),
            (48, "shift_z_report_80mm_zh.bin"),
        ] {
            chinese_z_report(width, name);
        }
    }

    fn chinese_z_report(width: usize, name: &str) {
        use crate::output::escpos::Encoding;
        let ctx = crate::output::receipt::ReceiptContext {
            store_name: vec!["扫码小店".into()],
            terminal_id: "T0001".into(),
            header: vec![],
            footer: vec![],
            width,
            encoding: Encoding::Gb18030,
            zone: StoreZone::parse("+08:00").unwrap(),
            language: Language::Zh,
        };
        let bytes = escpos(&sample(), &ctx);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("SCANPAY_BLESS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (SCANPAY_BLESS=1 writes it)", path.display()));
        assert!(expected == bytes, "{name} differs from the golden bytes");
        let lines = crate::output::receipt::tests::printed_lines(&bytes);
        let text = lines.join("\n");
        assert!(text.contains("Z报表 0007"), "{text}");
        for (label, value) in [
            ("收银员 李雷 x1", "5.00 CNY"),
            ("商户优惠", "-2.00 CNY"),
            ("净收", "22.00 CNY"),
            ("支付宝 x3", "25.00 CNY"),
        ] {
            let line = lines
                .iter()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no {label} in {text}"));
            assert!(line.ends_with(value), "{line:?}");
            assert_eq!(layout::columns(line), width, "{line:?}");
        }
        assert!(!text.contains("net received"), "{text}");
    }
}
