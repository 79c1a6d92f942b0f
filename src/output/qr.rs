//! The QR a customer scans, drawn for each place it is shown: the demo's terminal (half-block
//! characters), the customer display (SVG) and the receipt printer (ESC/POS `GS ( k`, in
//! `escpos.rs`). The QR is made here from the content the provider issued; nothing is
//! fetched (docs/devices.md §10.2, §13).

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// The QR for `content`, at medium error correction (a screen or a receipt, not a poster).
fn code(content: &str) -> Option<QrCode> {
    QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M).ok()
}

/// Lines of half-block characters, light on dark as a terminal shows it best: two modules
/// per character cell, with the quiet zone. Empty for content no QR can hold.
pub fn terminal_lines(content: &str) -> Vec<String> {
    let Some(code) = code(content) else {
        return Vec::new();
    };
    code.render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An SVG image of the QR, at least `size` pixels wide; `None` for content no QR can hold.
pub fn svg(content: &str, size: u32) -> Option<String> {
    let code = code(content)?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(size, size)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build(),
    )
}

/// The slip a customer scans to pay: the store, the amount, the QR (`GS ( k`), and until
/// when it can be paid, in words in both languages (docs/devices.md §10.2, §13).
pub fn escpos_slip(
    ctx: &super::receipt::ReceiptContext,
    amount: crate::money::Amount,
    content: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    use super::escpos::{Align, EscPos};
    let mut p = EscPos::new(ctx.encoding);
    p.align(Align::Center);
    for name in &ctx.store_name {
        p.bold(true).line(name).bold(false);
    }
    p.line("请扫码付款 Scan to pay");
    p.double(true).line(&amount.to_string()).double(false);
    p.qr(content, 8);
    let until = ctx.zone.local(expires_at).format("%H:%M:%S");
    p.line(&format!("有效至 {until}"));
    p.line(&format!("Valid until {until}"));
    p.line(&format!("Terminal {}", ctx.terminal_id));
    p.align(Align::Left).feed(3).cut();
    p.into_bytes()
}

/// The slip a customer scans with the wallet to become a member (a binding started,
/// `member_binding_started`): the store, the words in both languages, the QR of the
/// approval URL, the member id masked and the wallet.
pub fn escpos_binding_slip(
    ctx: &super::receipt::ReceiptContext,
    member_id: &str,
    wallet: &str,
    auth_url: &str,
) -> Vec<u8> {
    use super::escpos::{Align, EscPos};
    let mut p = EscPos::new(ctx.encoding);
    p.align(Align::Center);
    for name in &ctx.store_name {
        p.bold(true).line(name).bold(false);
    }
    p.line("请用钱包扫码，成为会员");
    p.line("Scan with your wallet to become a member");
    p.qr(auth_url, 6);
    p.line(&format!(
        "会员 Member {}",
        crate::view::mask_member_id(member_id)
    ));
    p.line(&format!("钱包 Wallet {wallet}"));
    p.line(&format!("Terminal {}", ctx.terminal_id));
    p.align(Align::Left).feed(3).cut();
    p.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_is_drawn_for_a_provider_url_and_refused_for_what_none_can_hold() {
        let url = "https://qr.alipay.com/bax01234567890abcdef";
        let lines = terminal_lines(url);
        assert!(lines.len() > 10, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
        let image = svg(url, 256).expect("svg");
        assert!(
            image.starts_with("<?xml") && image.contains("<svg"),
            "{image}"
        );
        let too_long = "x".repeat(5000);
        assert!(terminal_lines(&too_long).is_empty());
        assert!(svg(&too_long, 256).is_none());
    }

    #[test]
    fn the_binding_slip_carries_the_approval_url_in_its_qr() {
        let ctx = super::super::receipt::ReceiptContext {
            store_name: vec!["扫码小店 Demo Cafe".into()],
            terminal_id: "T0001".into(),
            header: vec![],
            footer: vec![],
            width: 32,
            encoding: super::super::escpos::Encoding::Gb18030,
            zone: crate::clock::StoreZone::parse("+08:00").unwrap(),
            language: super::super::labels::Language::En,
        };
        let url = "https://render.alipay.com/p/auth?authState=0123abcd";
        let slip = escpos_binding_slip(&ctx, "M00000042", "ALIPAY_CN", url);
        let at = slip
            .windows(3)
            .position(|w| w == [0x1d, 0x28, 0x6b])
            .expect("GS ( k");
        assert!(
            slip[at..].windows(url.len()).any(|w| w == url.as_bytes()),
            "the URL is stored in the QR"
        );
        let text = String::from_utf8_lossy(&slip);
        assert!(
            text.contains("*****0042") && !text.contains("M00000042"),
            "{text}"
        );
        assert!(text.contains("ALIPAY_CN"), "{text}");
    }
}
