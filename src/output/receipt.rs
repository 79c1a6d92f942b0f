//! Receipt content as plain lines, independent of where it is printed.

use super::escpos::{Align, EscPos};
use super::labels::{Label, Language};
use super::layout;
use crate::state::SaleState;
use crate::view::SaleView;

pub fn lines(
    sale: &SaleView,
    terminal_id: &str,
    zone: crate::clock::StoreZone,
    width: usize,
) -> Vec<String> {
    let rule = "-".repeat(width);
    let title = match sale.state {
        SaleState::Paid => "PAYMENT RECEIPT",
        SaleState::Cancelled => "PAYMENT CANCELLED",
        _ => "PAYMENT NOT COMPLETED",
    };
    let mut out = vec![rule.clone(), format!("{title:^width$}"), rule.clone()];
    // By display columns: a cashier's Chinese name takes two a character.
    let mut field = |k: &str, v: &str| out.extend(layout::row(width, k, v));
    field("Terminal", terminal_id);
    field("Sale", &sale.sale_id);
    field(
        "Time",
        &zone
            .local(sale.updated_at)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
    );
    if let Some(r) = &sale.reference {
        field("Reference", r);
    }
    if let Some(c) = cashier(sale) {
        field("Cashier", &c);
    }
    field("Amount", &sale.amount.to_string());
    field("State", sale.state.as_str());
    if let Some(a) = sale.attempts.last() {
        field("Wallet", a.wallet.as_str());
        match a.code.strip_prefix("member ") {
            Some(member) if a.method.as_str() == "member" => {
                field("Member", &crate::view::mask_member_id(member))
            }
            _ => field("Code", &a.code),
        }
        if let Some(t) = &a.gateway_trade_id {
            field("Trade no", t);
        }
        if a.paid_then_refunded {
            field("Note", "paid, then refunded");
        }
    }
    if let Some(a) = paid_attempt(sale) {
        for (k, v) in money_lines(sale.amount, a, Language::En) {
            field(&k, &v);
        }
    }
    if let Some(by) = &sale.superseded_by {
        field("Replaced", by);
    }
    out.push(rule.clone());
    if let Some(m) = &sale.message {
        out.push(m.clone());
    }
    out
}

/// The cashier as the register named them: `name (id)`, or either alone.
fn cashier(sale: &SaleView) -> Option<String> {
    let b = &sale.basket;
    match (&b.operator_name, &b.operator_id) {
        (Some(n), Some(i)) => Some(format!("{n} ({i})")),
        (Some(n), None) => Some(n.clone()),
        (None, Some(i)) => Some(i.clone()),
        (None, None) => None,
    }
}

fn paid_attempt(sale: &SaleView) -> Option<&crate::view::AttemptView> {
    sale.attempts
        .iter()
        .find(|a| a.state == crate::state::AttemptState::Succeeded)
}

/// The lines of what the provider said moved besides the order amount `order`: each
/// discount (and who funds it), what the customer paid and what the store received. None for
/// a plain payment, where both are the order amount.
fn money_lines(
    order: crate::money::Amount,
    a: &crate::view::AttemptView,
    lang: Language,
) -> Vec<(String, String)> {
    let m = &a.money;
    let is_order = |x: Option<crate::money::Amount>| x.is_none_or(|x| x == order);
    if m.vouchers.is_empty() && is_order(m.buyer_paid) && is_order(m.received) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for v in &m.vouchers {
        let by = match (v.merchant, v.platform) {
            (Some(s), _) if s.is_positive() => format!(" ({})", lang.label(Label::ByStore)),
            (_, Some(p)) if p.is_positive() => format!(" ({})", lang.label(Label::ByWallet)),
            _ => String::new(),
        };
        let name = if v.name.is_empty() {
            lang.label(Label::Discount)
        } else {
            v.name.clone()
        };
        out.push((format!("{name}{by}"), format!("-{}", v.amount)));
    }
    if let Some(b) = m.buyer_paid {
        out.push((lang.label(Label::CustomerPaid), b.to_string()));
    }
    if let Some(r) = m.received {
        out.push((lang.label(Label::StoreReceived), r.to_string()));
    }
    out
}

/// What every printed slip needs besides the sale.
#[derive(Debug, Clone)]
pub struct ReceiptContext {
    /// The store's name, one bold line each (both languages: the Chinese, then the English).
    pub store_name: Vec<String>,
    pub terminal_id: String,
    pub header: Vec<String>,
    pub footer: Vec<String>,
    /// Columns per line: 32 on 58 mm paper, 48 on 80 mm.
    pub width: usize,
    pub encoding: super::escpos::Encoding,
    /// The store's time zone: times on slips are the store's local time.
    pub zone: crate::clock::StoreZone,
    /// The labels' language.
    pub language: Language,
}

/// The store's local time for the slip.
fn local(t: chrono::DateTime<chrono::Utc>, ctx: &ReceiptContext) -> String {
    ctx.zone.local(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A label and its value on one line, or two when they do not fit (`layout::row`).
pub fn field(p: &mut EscPos, width: usize, key: &str, value: &str) {
    for line in layout::row(width, key, value) {
        p.line(&line);
    }
}

/// Text wrapped to the line by columns (`layout::wrap`).
pub fn wrapped(p: &mut EscPos, width: usize, text: &str) {
    for line in layout::wrap(text, width) {
        p.line(&line);
    }
}

/// The store's name and header, centred, then the slip's title and a rule.
pub fn heading(p: &mut EscPos, ctx: &ReceiptContext, title: &str) {
    p.align(Align::Center);
    for name in &ctx.store_name {
        p.bold(true);
        wrapped(p, ctx.width, name);
        p.bold(false);
    }
    for h in &ctx.header {
        wrapped(p, ctx.width, h);
    }
    p.bold(true);
    wrapped(p, ctx.width, title);
    p.bold(false).align(Align::Left);
    p.line(&"-".repeat(ctx.width));
}

fn ending(p: &mut EscPos, ctx: &ReceiptContext) {
    p.line(&"-".repeat(ctx.width)).align(Align::Center);
    for f in &ctx.footer {
        wrapped(p, ctx.width, f);
    }
    p.align(Align::Left).feed(2).cut();
}

/// The ESC/POS receipt of a finished sale: a paid receipt, or a reversal slip when a
/// payment made meanwhile was refunded by the cancel. `copy` prints the merchant copy's
/// label.
pub fn escpos_sale(sale: &SaleView, ctx: &ReceiptContext, copy: bool) -> Vec<u8> {
    let lang = ctx.language;
    let reversed = sale.reversed();
    let title = lang.label(match (sale.state, reversed) {
        (SaleState::Paid, _) => Label::Receipt,
        (_, true) => Label::Reversed,
        _ => Label::NotCompleted,
    });
    let w = ctx.width;
    let l = |k| lang.label(k);
    let mut p = EscPos::new(ctx.encoding);
    heading(&mut p, ctx, &title);
    if copy {
        p.align(Align::Center)
            .line(&l(Label::MerchantCopy))
            .align(Align::Left);
    }
    field(&mut p, w, &l(Label::Terminal), &ctx.terminal_id);
    field(&mut p, w, &l(Label::Sale), &sale.sale_id);
    field(&mut p, w, &l(Label::Time), &local(sale.updated_at, ctx));
    if let Some(r) = &sale.reference {
        field(&mut p, w, &l(Label::Reference), r);
    }
    if let Some(c) = cashier(sale) {
        field(&mut p, w, &l(Label::Cashier), &c);
    }
    p.align(Align::Center).bold(true).double(true);
    p.line(&sale.amount.to_string());
    p.double(false).bold(false).align(Align::Left);
    field(
        &mut p,
        w,
        &l(Label::State),
        &lang.state(sale.state.as_str()),
    );
    let paid = paid_attempt(sale);
    if let Some(a) = paid.or(sale.attempts.last()) {
        field(
            &mut p,
            w,
            &l(Label::Wallet),
            &lang.wallet(a.wallet.as_str()),
        );
        match a.code.strip_prefix("member ") {
            // Auto-debit: no code was scanned; the member, masked as on every slip.
            Some(member) if a.method.as_str() == "member" => field(
                &mut p,
                w,
                &l(Label::Member),
                &crate::view::mask_member_id(member),
            ),
            _ => field(&mut p, w, &l(Label::Code), &a.code),
        }
        if let Some(t) = &a.gateway_trade_id {
            field(&mut p, w, &l(Label::TradeNo), t);
        }
    }
    if let Some(a) = paid {
        for (k, v) in money_lines(sale.amount, a, lang) {
            field(&mut p, w, &k, &v);
        }
    }
    if reversed {
        wrapped(&mut p, w, &l(Label::RefundedInFull));
    }
    if let Some(by) = &sale.superseded_by {
        field(&mut p, w, &l(Label::ReplacedBy), by);
    }
    for r in &sale.refunds {
        field(
            &mut p,
            w,
            &format!("{} {}", l(Label::Refund), lang.state(r.state.as_str())),
            &format!("-{}", r.amount),
        );
    }
    if let Some(m) = &sale.message {
        wrapped(&mut p, w, m);
    }
    let qr = paid
        .and_then(|a| a.gateway_trade_id.clone())
        .unwrap_or_else(|| sale.sale_id.clone());
    p.align(Align::Center).qr(&qr, 6).align(Align::Left);
    ending(&mut p, ctx);
    p.into_bytes()
}

/// The slip of a refund of part (or all) of a paid sale.
pub fn escpos_refund(refund: &crate::view::RefundView, ctx: &ReceiptContext) -> Vec<u8> {
    let lang = ctx.language;
    let l = |k| lang.label(k);
    let w = ctx.width;
    let mut p = EscPos::new(ctx.encoding);
    heading(&mut p, ctx, &l(Label::RefundTitle));
    field(&mut p, w, &l(Label::Terminal), &ctx.terminal_id);
    field(&mut p, w, &l(Label::Sale), &refund.sale_id);
    field(&mut p, w, &l(Label::Refund), &refund.refund_id);
    field(&mut p, w, &l(Label::Time), &local(refund.created_at, ctx));
    p.align(Align::Center).bold(true).double(true);
    p.line(&format!("-{}", refund.amount));
    p.double(false).bold(false).align(Align::Left);
    field(
        &mut p,
        w,
        &l(Label::State),
        &lang.state(refund.state.as_str()),
    );
    if let Some(r) = &refund.reason {
        field(&mut p, w, &l(Label::Reason), r);
    }
    p.align(Align::Center)
        .qr(&refund.refund_id, 6)
        .align(Align::Left);
    ending(&mut p, ctx);
    p.into_bytes()
}

#[cfg(test)]
mod golden {
    use super::*;
    use crate::output::escpos::Encoding;
    use crate::state::AttemptState;
    use crate::view::AttemptView;

    fn ctx() -> ReceiptContext {
        ReceiptContext {
            store_name: vec!["扫码小店 Demo Cafe".into()],
            terminal_id: "T0001".into(),
            header: vec!["Main St 1".into()],
            footer: vec!["谢谢惠顾 Thank you".into()],
            width: 32,
            encoding: Encoding::Gb18030,
            zone: crate::clock::StoreZone::parse("+08:00").unwrap(),
            language: Language::En,
        }
    }

    fn sale(state: SaleState, attempt: AttemptState, refunded: bool) -> SaleView {
        SaleView {
            sale_id: "S20261122-7462c83930".into(),
            state,
            amount: crate::money::Amount::parse(
                "12.50",
                crate::money::Currency::from_code("CNY").unwrap(),
            )
            .unwrap(),
            reference: Some("R-1".into()),
            subject: "Coffee".into(),
            created_at: crate::clock::from_journal("2026-11-22T02:00:08.538Z").unwrap(),
            updated_at: crate::clock::from_journal("2026-11-22T02:00:08.540Z").unwrap(),
            attempts: vec![AttemptView {
                request_id: "T0001_20261122020008_f6a72928".into(),
                state: attempt,
                result_code: Some("paid".into()),
                result_message: None,
                code: "28************0000".into(),
                wallet: crate::paycode::Wallet::Alipay,
                gateway: "alipay-openapi".into(),
                gateway_trade_id: Some("2026112222001400001234567890".into()),
                paid_then_refunded: refunded,
                needs_attention: None,
                inquiries: 0,
                cancels: 0,
                created_at: crate::clock::from_journal("2026-11-22T02:00:08.539Z").unwrap(),
                deadline_at: crate::clock::from_journal("2026-11-22T02:01:08.539Z").unwrap(),
                signing_key: None,
                money: Default::default(),
                method: crate::paycode::PayMethod::Scanned,
            }],
            refunds: vec![],
            reason: None,
            message: Some("paid".into()),
            superseded_by: None,
            basket: Default::default(),
            qr: None,
        }
    }

    /// Compares with `tests/golden/<name>`; `SCANPAY_BLESS=1` writes it instead.
    fn golden(name: &str, bytes: &[u8]) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("SCANPAY_BLESS").is_some() {
            std::fs::write(&path, bytes).unwrap();
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (SCANPAY_BLESS=1 writes it)", path.display()));
        assert!(expected == bytes, "{name} differs from the golden bytes");
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn paid_receipt() {
        let b = escpos_sale(
            &sale(SaleState::Paid, AttemptState::Succeeded, false),
            &ctx(),
            false,
        );
        assert!(
            b.starts_with(&[0x1B, 0x40, 0x1C, 0x26]),
            "ESC @ then Chinese mode"
        );
        assert!(b.ends_with(&[0x1D, 0x56, 0x42, 0x03]), "ends with the cut");
        assert!(contains(&b, b"12.50 CNY"));
        assert!(contains(&b, &[0xD0, 0xBB, 0xD0, 0xBB]), "谢谢 in GB18030");
        assert!(contains(&b, b"2026-11-22 10:00:08"), "store time, UTC+8");
        let qr = [
            &[0x1D, 0x28, 0x6B, 31, 0x00, 0x31, 0x50, 0x30][..],
            b"2026112222001400001234567890",
        ]
        .concat();
        assert!(contains(&b, &qr), "the trade number as a QR code");
        golden("paid_receipt.bin", &b);
    }

    #[test]
    fn member_sale_receipt() {
        let mut s = sale(SaleState::Paid, AttemptState::Succeeded, false);
        let a = &mut s.attempts[0];
        a.method = crate::paycode::PayMethod::Member;
        a.code = "member M00000042".into();
        a.wallet = crate::paycode::Wallet::AlipayPlus;
        a.gateway = "alipay-ams".into();
        a.gateway_trade_id = Some("20261122114010800100188000001234".into());
        let mut c = ctx();
        c.language = Language::Both;
        let b = escpos_sale(&s, &c, false);
        assert!(contains(&b, b"*****0042"), "the member, masked");
        assert!(!contains(&b, b"M00000042"), "never the whole member id");
        assert!(contains(&b, b"Alipay+"), "the wallet");
        golden("member_sale_receipt.bin", &b);
    }

    #[test]
    fn reversal_slip() {
        let b = escpos_sale(
            &sale(SaleState::Cancelled, AttemptState::Cancelled, true),
            &ctx(),
            false,
        );
        assert!(contains(&b, b"PAYMENT REVERSED"));
        assert!(contains(&b, b"refunded in full"));
        golden("reversal_slip.bin", &b);
    }

    #[test]
    fn z_report() {
        let r = crate::report::DayReport {
            date: "2026-11-22".into(),
            time_zone: "+08:00".into(),
            from: "2026-11-21T16:00:00.000Z".into(),
            until: "2026-11-22T16:00:00.000Z".into(),
            lines: vec![crate::report::Line {
                state: SaleState::Paid,
                currency: "CNY".into(),
                count: 3,
                total: "22.49".into(),
            }],
            refunds: vec![crate::report::RefundLine {
                currency: "CNY".into(),
                count: 1,
                total: "2.50".into(),
            }],
            net: vec![crate::report::RefundLine {
                currency: "CNY".into(),
                count: 0,
                total: "19.99".into(),
            }],
            books: Vec::new(),
            // One wallet: the Z-report prints no per-wallet lines.
            by_wallet: vec![crate::report::WalletLine {
                wallet: "alipay".into(),
                gateway: "alipay-openapi".into(),
                currency: "CNY".into(),
                count: 3,
                total: "22.49".into(),
            }],
            member_pay: vec![],
            in_doubt: vec![],
            needs_attention: vec![],
        };
        let b = crate::report::escpos(&r, &ctx());
        assert!(contains(&b, b"Z-REPORT") && contains(&b, b"19.99"));
        assert!(b.ends_with(&[0x1D, 0x56, 0x42, 0x03]));
        golden("z_report.bin", &b);
    }
}

#[cfg(test)]
pub(crate) mod tests;
