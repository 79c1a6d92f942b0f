//! Recognising what a scanner read: an Alipay payment code, another wallet's code, or
//! something that is not a payment code at all (a product barcode, a URL, garbage).
//!
//! Local recognition only routes and rejects; the gateway has the final word on a code.
//! Formats (docs/protocol.md §11): Alipay user codes are 16–24 digits starting with 25–30;
//! Alipay+ codes are 17–32 digits; WeChat Pay codes are 18 digits starting with 10–15;
//! UnionPay QR codes are 19 digits starting with 62; face-pay tokens are `fp` + 33 chars.
//!
//! A payment code is a bearer secret while it is valid, so [`PaymentCode`] only ever shows
//! itself masked (docs/design.md §3.5); [`PaymentCode::expose`] is for the wire only.

use std::fmt;

/// Longest scan accepted at all; anything longer is garbage, not a code.
pub const MAX_SCAN_LEN: usize = 512;

/// How the customer pays an attempt: the cashier scans the customer's code, or the customer
/// scans the merchant's (an order's QR, or the store's entry code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    Scanned,
    OrderCode,
    EntryCode,
    /// A bound member charged without a scan (auto-debit).
    Member,
}

impl PayMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            PayMethod::Scanned => "scanned",
            PayMethod::OrderCode => "order_code",
            PayMethod::EntryCode => "entry_code",
            PayMethod::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<PayMethod> {
        [
            PayMethod::Scanned,
            PayMethod::OrderCode,
            PayMethod::EntryCode,
            PayMethod::Member,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// Whether the customer scans what the merchant shows.
    pub fn presented(&self) -> bool {
        matches!(self, PayMethod::OrderCode | PayMethod::EntryCode)
    }
}

/// The wallet a payment code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wallet {
    /// Alipay (China) user payment code.
    Alipay,
    /// Alipay+ code of a partner wallet (accepted through Antom AMS).
    AlipayPlus,
    WechatPay,
    UnionPay,
    /// Alipay face-pay token (`scene=security_code`), not a scanned code.
    AlipayFacePay,
}

impl Wallet {
    /// Every wallet.
    pub const ALL: &'static [Wallet] = &[
        Wallet::Alipay,
        Wallet::AlipayPlus,
        Wallet::WechatPay,
        Wallet::UnionPay,
        Wallet::AlipayFacePay,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Wallet::Alipay => "alipay",
            Wallet::AlipayPlus => "alipay_plus",
            Wallet::WechatPay => "wechat_pay",
            Wallet::UnionPay => "union_pay",
            Wallet::AlipayFacePay => "alipay_face_pay",
        }
    }

    pub fn parse(s: &str) -> Option<Wallet> {
        Wallet::ALL.iter().copied().find(|w| w.as_str() == s)
    }

    /// The name a cashier knows it by.
    pub fn display_name(&self) -> &'static str {
        match self {
            Wallet::Alipay => "Alipay",
            Wallet::AlipayPlus => "Alipay+",
            Wallet::WechatPay => "WeChat Pay",
            Wallet::UnionPay => "UnionPay",
            Wallet::AlipayFacePay => "Alipay face pay",
        }
    }
}

/// A scanned payment code. Debug and Display show it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentCode {
    code: String,
    wallet: Wallet,
}

impl PaymentCode {
    pub fn wallet(&self) -> Wallet {
        self.wallet
    }

    /// The full code, for the gateway request and the journal only. Never log it.
    pub fn expose(&self) -> &str {
        &self.code
    }

    pub fn masked(&self) -> String {
        mask(&self.code)
    }
}

impl fmt::Debug for PaymentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentCode({:?}, {})", self.wallet, self.masked())
    }
}

impl fmt::Display for PaymentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// What a scan turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A payment code of a wallet scanpay may charge (subject to the gateway's support).
    Payment(PaymentCode),
    /// Not a payment code: a product barcode or other text, passed on to the register.
    Barcode { text: String, kind: BarcodeKind },
    /// Bytes no scanner of a checkout should produce (control or binary data, over-long).
    Garbage { why: &'static str, len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BarcodeKind {
    Ean13,
    Ean8,
    UpcA,
    Url,
    Other,
}

impl BarcodeKind {
    /// The name the register's `barcode` event gives it.
    pub fn as_str(&self) -> &'static str {
        match self {
            BarcodeKind::Ean13 => "ean13",
            BarcodeKind::Ean8 => "ean8",
            BarcodeKind::UpcA => "upc_a",
            BarcodeKind::Url => "url",
            BarcodeKind::Other => "other",
        }
    }
}

/// Classifies one scan (terminator already removed). Surrounding ASCII whitespace is ignored.
pub fn recognise(raw: &str) -> Scan {
    if raw.len() > MAX_SCAN_LEN {
        return Scan::Garbage {
            why: "longer than any barcode a checkout scans",
            len: raw.len(),
        };
    }
    let text = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Scan::Garbage {
            why: "empty",
            len: raw.len(),
        };
    }
    // GS (0x1D) is FNC1, the separator of GS1 element strings; no other control belongs.
    if text.chars().any(|c| c.is_control() && c != '\u{1d}') {
        return Scan::Garbage {
            why: "contains control characters",
            len: raw.len(),
        };
    }
    if let Some(wallet) = wallet_of(text) {
        return Scan::Payment(PaymentCode {
            code: text.to_string(),
            wallet,
        });
    }
    Scan::Barcode {
        text: text.to_string(),
        kind: barcode_kind(text),
    }
}

fn wallet_of(text: &str) -> Option<Wallet> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits {
        let face_pay = text.len() == 35
            && text.starts_with("fp")
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        return face_pay.then_some(Wallet::AlipayFacePay);
    }
    let len = text.len();
    let prefix: u8 = text.get(..2)?.parse().ok()?;
    match (len, prefix) {
        (16..=24, 25..=30) => Some(Wallet::Alipay),
        (18, 10..=15) => Some(Wallet::WechatPay),
        (19, 62) => Some(Wallet::UnionPay),
        // Alipay+ partner wallets (docs/protocol.md §11): the mainstream form is 24 digits,
        // a 6-digit issuer id, business type `02` (UPM), 16 digits of user number; the
        // legacy forms start with 28 and are matched as Alipay above. Any other long number
        // (a loyalty card, a gift card, a GS1 string) is the register's, not a wallet's.
        (24, _) if text.get(6..8) == Some("02") => Some(Wallet::AlipayPlus),
        _ => None,
    }
}

fn barcode_kind(text: &str) -> BarcodeKind {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    match (digits, text.len()) {
        (true, 13) if gtin_check_digit_ok(text) => BarcodeKind::Ean13,
        (true, 8) if gtin_check_digit_ok(text) => BarcodeKind::Ean8,
        (true, 12) if gtin_check_digit_ok(text) => BarcodeKind::UpcA,
        _ if text.starts_with("http://") || text.starts_with("https://") => BarcodeKind::Url,
        _ => BarcodeKind::Other,
    }
}

/// GS1 check digit: weights 3,1,3,… from the right, excluding the check digit itself.
fn gtin_check_digit_ok(digits: &str) -> bool {
    let values: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    let Some((&check, body)) = values.split_last() else {
        return false;
    };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == check
}

/// Masks a code for logs and receipts: first 2 and last 4 characters kept, the rest `*`
/// (`28**************9400`). Short strings are masked entirely.
pub fn mask(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let keep_tail = chars.len() - 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i < 2 || i >= keep_tail { c } else { '*' })
        .collect()
}

/// Masks every run of 16 or more digits in text from outside (a gateway's message) before
/// it is stored or shown: no product code is that long, a code of any wallet may be.
pub fn mask_long_digit_runs(text: &str) -> String {
    mask_digit_runs(text, |run| run.len() >= 16)
}

/// Masks, in a barcode passed on to the register, every run of digits that could itself be
/// a payment code of a wallet scanpay recognises (a code glued to other text). Everything
/// else is the register's as scanned: product codes, loyalty and gift card numbers, GS1.
pub fn mask_payment_codes(text: &str) -> String {
    mask_digit_runs(text, |run| wallet_of(run).is_some())
}

fn mask_digit_runs(text: &str, secret: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if secret(run) {
            out.push_str(&mask(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// What a member's card or app barcode looks like (`[members] barcode_pattern`,
/// docs/operations.md §4.5): literal text around one `{id}`, e.g. `"MBR-{id}"`. The id is
/// 1 to 64 of `A-Z a-z 0-9 - _ .`. The literal part holds a letter or sign, so a payment
/// code (digits only) never matches; and a scan that is a payment code is one, whatever
/// the pattern says ([`MemberBarcode::member_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberBarcode {
    prefix: String,
    suffix: String,
}

/// The longest member id a barcode may carry (as `POST /v1/members/{id}` takes).
pub const MEMBER_ID_MAX: usize = 64;

impl MemberBarcode {
    pub fn parse(pattern: &str) -> Result<MemberBarcode, String> {
        const WANT: &str = "literal text around one {id}, e.g. \"MBR-{id}\"";
        let (prefix, suffix) = pattern
            .split_once("{id}")
            .ok_or_else(|| format!("no {{id}} in it: {WANT}"))?;
        if suffix.contains("{id}") {
            return Err(format!("{{id}} more than once: {WANT}"));
        }
        let literal = format!("{prefix}{suffix}");
        if literal.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("spaces and control characters are not scanned: leave them out".into());
        }
        if literal.bytes().all(|b| b.is_ascii_digit()) {
            // Digits alone could frame a payment code: "28{id}" would take one.
            return Err(format!(
                "the text around {{id}} needs a letter or sign, so no payment code matches it: {WANT}"
            ));
        }
        // A face-pay code is 35 letters and digits starting "fp": a barcode of letters and
        // digits alone that can start so would be taken for one.
        if literal.bytes().all(|b| b.is_ascii_alphanumeric())
            && ("fp".starts_with(prefix) || prefix.starts_with("fp"))
        {
            return Err(
                "\"fp…\" is how a face-pay code starts: give the pattern a prefix that does not start with \"f\" or \"fp\", or a sign such as \"-\"".into(),
            );
        }
        Ok(MemberBarcode {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The member id `raw` names, when it is this pattern's barcode and no payment code.
    pub fn member_id<'a>(&self, raw: &'a str) -> Option<&'a str> {
        let text = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if matches!(recognise(text), Scan::Payment(_)) {
            return None;
        }
        let id = text
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        let ok = !id.is_empty()
            && !id.starts_with('.')
            && id.len() <= MEMBER_ID_MAX
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        ok.then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_barcodes_and_payment_codes_are_never_mistaken_for_each_other() {
        let p = MemberBarcode::parse("MBR-{id}").unwrap();
        assert_eq!(p.member_id("MBR-M0042\r\n"), Some("M0042"));
        assert_eq!(p.member_id("MBR-"), None);
        assert_eq!(p.member_id("MBR-a b"), None);
        assert_eq!(p.member_id("mbr-M1"), None);
        assert_eq!(p.member_id("286000000000000300"), None);
        let suffixed = MemberBarcode::parse("{id}#M").unwrap();
        assert_eq!(suffixed.member_id("123456#M"), Some("123456"));
        // Digits only around {id}, or nothing at all, could take a payment code.
        for bad in [
            "28{id}",
            "{id}",
            "MBR",
            "{id}{id}x",
            "M {id}",
            "fp{id}",
            "f{id}",
            "fp{id}X",
            "{id}X",
        ] {
            assert!(MemberBarcode::parse(bad).is_err(), "{bad}");
        }
        // A code a wallet recognises is a payment code even where a pattern fits it.
        // (Such a pattern is refused; one made anyway still yields to the payment code.)
        let fp = MemberBarcode {
            prefix: "f".into(),
            suffix: String::new(),
        };
        let face = format!("fp{}", "a".repeat(33));
        assert_eq!(fp.member_id(&face), None);
        assert!(matches!(recognise("MBR-M0042"), Scan::Barcode { .. }));
    }

    fn wallet(text: &str) -> Option<Wallet> {
        match recognise(text) {
            Scan::Payment(code) => Some(code.wallet()),
            _ => None,
        }
    }

    #[test]
    fn recognition_table() {
        let table: &[(&str, Option<Wallet>)] = &[
            // Alipay: 16–24 digits, prefix 25–30.
            ("286000000000000000", Some(Wallet::Alipay)),
            ("2500000000000000", Some(Wallet::Alipay)),
            ("300000000000000000000000", Some(Wallet::Alipay)),
            ("28763443825664394", Some(Wallet::Alipay)),
            ("251001020123456789012345", Some(Wallet::Alipay)),
            // Prefix outside 25–30 with an Alipay length is another wallet or nothing.
            ("310000000000000000", None),
            ("240000000000000000", None),
            // 15 digits is too short for any wallet.
            ("280000000000000", None),
            // WeChat Pay 18 digits starting 10–15; UnionPay 19 digits starting 62.
            ("134567890123456789", Some(Wallet::WechatPay)),
            ("101234567890123456", Some(Wallet::WechatPay)),
            ("6212345678901234567", Some(Wallet::UnionPay)),
            // Alipay+ partner codes: 24 digits, business type 02 after the 6-digit issuer.
            ("608001020123456789012345", Some(Wallet::AlipayPlus)),
            ("608001030123456789012345", None),
            ("12345678901234567890123456789012", None),
            // A loyalty number and a GS1 DataBar element string are barcodes.
            ("98765432109876543210", None),
            ("01095011015300033103000123", None),
            // Face-pay token.
            (
                "fp1234567890abcdefghij1234567890abc",
                Some(Wallet::AlipayFacePay),
            ),
            // Product barcodes and other text.
            ("4006381333931", None),
            ("96385074", None),
            ("036000291452", None),
            ("https://qr.alipay.com/bax01234", None),
            ("28600000000000000a", None),
            ("hello", None),
        ];
        for (text, expected) in table {
            assert_eq!(wallet(text), *expected, "{text}");
        }
    }

    #[test]
    fn product_barcodes_are_named() {
        let kind = |t: &str| match recognise(t) {
            Scan::Barcode { kind, .. } => kind,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(kind("4006381333931"), BarcodeKind::Ean13);
        assert_eq!(kind("4006381333932"), BarcodeKind::Other, "bad check digit");
        assert_eq!(kind("96385074"), BarcodeKind::Ean8);
        assert_eq!(kind("036000291452"), BarcodeKind::UpcA);
        assert_eq!(kind("https://example.com/x"), BarcodeKind::Url);
    }

    #[test]
    fn garbage_is_refused_not_passed_on() {
        assert!(matches!(recognise(""), Scan::Garbage { .. }));
        assert!(matches!(recognise("   "), Scan::Garbage { .. }));
        assert!(matches!(recognise("28\u{0}6000"), Scan::Garbage { .. }));
        assert!(matches!(recognise("\u{1b}[A"), Scan::Garbage { .. }));
        assert!(matches!(
            recognise(&"2".repeat(MAX_SCAN_LEN + 1)),
            Scan::Garbage { .. }
        ));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(wallet(" 286000000000000000\r"), Some(Wallet::Alipay));
    }

    #[test]
    fn long_digit_runs_in_barcodes_are_masked() {
        assert_eq!(mask_long_digit_runs("4006381333931"), "4006381333931");
        assert_eq!(
            mask_long_digit_runs("card 4111111111111111 exp"),
            "card 41**********1111 exp"
        );
        assert_eq!(
            mask_long_digit_runs("https://x/1234567"),
            "https://x/1234567"
        );
    }

    #[test]
    fn barcodes_reach_the_register_as_scanned_unless_they_hold_a_payment_code() {
        for text in [
            "4006381333931",              // EAN-13
            "98765432109876543210",       // a 20-digit loyalty number
            "01095011015300033103000123", // GS1 DataBar, fixed-length AIs
            "0109501101530003",           /* GTIN */
            // GS1 DataBar Expanded with an FNC1:
            "010950110153000310ABC123\u{1d}17271231",
        ] {
            let Scan::Barcode { text: scanned, .. } = recognise(text) else {
                panic!("{text:?} is not a barcode: {:?}", recognise(text))
            };
            assert_eq!(mask_payment_codes(&scanned), text);
        }
        assert_eq!(
            mask_payment_codes("ORDER-286000000000000000"),
            "ORDER-28************0000"
        );
        assert_eq!(
            mask_payment_codes("x134567890123456789y"),
            "x13************6789y",
            "a WeChat Pay code"
        );
    }

    #[test]
    fn masking_keeps_prefix_and_last_four() {
        assert_eq!(mask("28123456789012349400"), "28**************9400");
        assert_eq!(mask("286000000000000000"), "28************0000");
        assert_eq!(mask("12345"), "*****");
        let code = match recognise("28123456789012349400") {
            Scan::Payment(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(code.to_string(), "28**************9400");
        assert!(!format!("{code:?}").contains("1234567890"));
    }
}
