//! Golden bytes of a paid receipt with a store voucher (order 10.00, merchant voucher 2.00,
//! paid 8.00) on both paper widths in each language, and its columns checked line by line.
//! `SCANPAY_BLESS=1` writes the files in `tests/golden/` instead of comparing.

use super::*;
use crate::money::breakdown::{Breakdown, Voucher};
use crate::money::{Amount, Currency};
use crate::output::escpos::Encoding;
use crate::state::AttemptState;
use crate::view::AttemptView;

fn cny(text: &str) -> Amount {
    Amount::parse(text, Currency::from_code("CNY").unwrap()).unwrap()
}

pub(crate) fn ctx(width: usize, language: Language) -> ReceiptContext {
    let (name, header, footer) = match language {
        Language::Zh => ("扫码小店", "中山路1号", "谢谢惠顾"),
        Language::En => ("Demo Cafe", "Main St 1", "Thank you"),
        Language::Both => ("扫码小店", "中山路1号 Main St 1", "谢谢惠顾"),
    };
    let mut store_name = vec![name.to_string()];
    let mut footer = vec![footer.to_string()];
    if language == Language::Both {
        store_name.push("Demo Cafe".into());
        footer.push("Thank you".into());
    }
    ReceiptContext {
        store_name,
        terminal_id: "T0001".into(),
        header: vec![header.into()],
        footer,
        width,
        encoding: Encoding::Gb18030,
        zone: crate::clock::StoreZone::parse("+08:00").unwrap(),
        language,
    }
}

pub(crate) fn sale() -> SaleView {
    let at = |t| crate::clock::from_journal(t).unwrap();
    SaleView {
        sale_id: "S20261203-1f0c9a2b7d".into(),
        state: SaleState::Paid,
        amount: cny("10.00"),
        reference: Some("R-7".into()),
        subject: "Coffee".into(),
        created_at: at("2026-12-03T02:00:08.538Z"),
        updated_at: at("2026-12-03T02:00:09.540Z"),
        attempts: vec![AttemptView {
            request_id: "T0001_20261203020008_a1b2c3d4".into(),
            state: AttemptState::Succeeded,
            result_code: Some("paid".into()),
            result_message: None,
            code: "28************0000".into(),
            wallet: crate::paycode::Wallet::Alipay,
            gateway: "alipay-openapi".into(),
            gateway_trade_id: Some("2026120322001400001234567890".into()),
            paid_then_refunded: false,
            needs_attention: None,
            inquiries: 0,
            cancels: 0,
            created_at: at("2026-12-03T02:00:08.539Z"),
            deadline_at: at("2026-12-03T02:01:08.539Z"),
            signing_key: None,
            money: Breakdown {
                buyer_paid: Some(cny("8.00")),
                received: Some(cny("8.00")),
                vouchers: vec![Voucher {
                    id: "V1".into(),
                    name: String::new(),
                    kind: "DISCOUNT".into(),
                    amount: cny("2.00"),
                    merchant: Some(cny("2.00")),
                    platform: Some(cny("0.00")),
                }],
                ..Breakdown::default()
            },
            method: crate::paycode::PayMethod::Scanned,
        }],
        refunds: vec![],
        reason: None,
        message: None,
        superseded_by: None,
        basket: crate::money::basket::Basket {
            operator_id: Some("C01".into()),
            operator_name: Some("李雷".into()),
            ..Default::default()
        },
        qr: None,
    }
}

/// The printed text of ESC/POS bytes, one string per line, without the commands this
/// builder sends (`ESC @`, `FS &`, `ESC a/E/d n`, `GS ! n`, `GS V B n`, `GS ( k`).
pub(crate) fn printed_lines(bytes: &[u8]) -> Vec<String> {
    let mut text = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let skip = match (bytes[i], bytes.get(i + 1).copied()) {
            (0x1B, Some(0x40)) | (0x1C, Some(0x26)) => 2,
            (0x1B, Some(0x61 | 0x45 | 0x64)) | (0x1D, Some(0x21)) => 3,
            (0x1D, Some(0x56)) => 4,
            (0x1D, Some(0x28)) => {
                let len = usize::from(bytes[i + 3]) + 256 * usize::from(bytes[i + 4]);
                5 + len
            }
            _ => 0,
        };
        if skip == 0 {
            text.push(bytes[i]);
            i += 1;
        } else {
            i += skip;
        }
    }
    let (decoded, _, bad) = encoding_rs::GB18030.decode(&text);
    assert!(!bad, "the text is GB18030");
    decoded.split('\n').map(str::to_string).collect()
}

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

#[test]
fn golden_voucher_receipts_in_each_language_and_width_line_up() {
    let cases = [
        (32, Language::Zh, "voucher_receipt_58mm_zh.bin"),
        (32, Language::En, "voucher_receipt_58mm_en.bin"),
        (48, Language::Zh, "voucher_receipt_80mm_zh.bin"),
        (48, Language::En, "voucher_receipt_80mm_en.bin"),
        (32, Language::Both, "voucher_receipt_58mm_both.bin"),
    ];
    for (width, lang, name) in cases {
        let bytes = escpos_sale(&sale(), &ctx(width, lang), false);
        let lines = printed_lines(&bytes);
        for l in &lines {
            assert!(
                layout::columns(l) <= width,
                "{name}: {l:?} is wider than {width}"
            );
        }
        // Each label's row fills the line exactly (the value flush right), or the label
        // is alone on its line and its value fills the next.
        for (label, value) in [
            (Label::Cashier, "李雷 (C01)"),
            (Label::Discount, "-2.00 CNY"),
            (Label::CustomerPaid, "8.00 CNY"),
            (Label::StoreReceived, "8.00 CNY"),
            (Label::Wallet, &lang.wallet("alipay")),
            (Label::TradeNo, "2026120322001400001234567890"),
        ] {
            let key = lang.label(label);
            let at = lines
                .iter()
                .position(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("{name}: no {key:?} in {lines:#?}"));
            let row = if lines[at].ends_with(value) {
                &lines[at]
            } else {
                assert!(!lines[at].contains(value), "{name}: {:?}", lines[at]);
                &lines[at + 1]
            };
            assert!(row.ends_with(value), "{name}: {row:?}");
            assert_eq!(layout::columns(row), width, "{name}: {row:?}");
        }
        assert!(lines.iter().any(|l| l == "10.00 CNY"), "the order amount");
        golden(name, &bytes);
    }
}

#[test]
fn labels_follow_the_language() {
    let text = |lang| printed_lines(&escpos_sale(&sale(), &ctx(32, lang), false)).join("\n");
    let zh = text(Language::Zh);
    assert!(zh.contains("支付凭证") && zh.contains("优惠 (商户)") && zh.contains("实付"));
    assert!(
        !zh.contains("Customer paid") && !zh.contains("Demo Cafe"),
        "{zh}"
    );
    let en = text(Language::En);
    assert!(en.contains("PAYMENT RECEIPT") && en.contains("Discount (store)"));
    assert!(!en.contains("实付") && !en.contains("扫码小店"), "{en}");
    let both = text(Language::Both);
    assert!(both.contains("实付 Customer paid") && both.contains("扫码小店\nDemo Cafe"));
}
