//! The line protocol of stdin for the demo and `scanpay run --stdin`: a line that is an
//! amount (`12.50`, or up to 8 digits) starts a sale, a longer line is a scan, `cancel`
//! aborts the waiting sale, `qr` shows the waiting sale's QR for the customer to scan (the
//! demo's `scan-qr` plays the customer paying it), `quit` ends. The demo also takes `bind M1`
//! (a member's binding QR), `approve` (the customer approves it in the wallet) and
//! `member M1 12.50` (a sale charged to a bound member). Bytes, not text: a scanner can send anything.

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Empty,
    Quit,
    Cancel,
    /// Show the waiting sale's QR for the customer to scan.
    Qr,
    /// The demo plays the customer paying the QR shown (the sandbox's admin call).
    CustomerPaysQr,
    /// The demo starts member `0`'s wallet binding (its QR shown).
    Bind(String),
    /// The demo plays the customer approving the binding shown (the sandbox's admin call).
    Approve,
    /// The demo charges a sale of `amount` to a bound member.
    Member {
        member_id: String,
        amount: String,
    },
    Amount(String),
    Scan(String),
}

pub fn parse(raw: &[u8]) -> Line {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_end_matches(['\r', '\n']).trim();
    match line {
        "" => Line::Empty,
        "quit" | "exit" => Line::Quit,
        "cancel" => Line::Cancel,
        "qr" => Line::Qr,
        "scan-qr" => Line::CustomerPaysQr,
        "approve" => Line::Approve,
        _ if line.starts_with("bind ") => Line::Bind(line["bind ".len()..].trim().to_string()),
        _ if line.starts_with("member ") => {
            let mut words = line["member ".len()..].split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(member_id), Some(amount), None) => Line::Member {
                    member_id: member_id.to_string(),
                    amount: amount.to_string(),
                },
                // Not the command's shape: judged as a scan (a barcode may say anything).
                _ => Line::Scan(text.trim_end_matches(['\r', '\n']).to_string()),
            }
        }
        _ if is_amount(line) => Line::Amount(line.to_string()),
        // Scans keep their bytes (lossily decoded) so garbage is judged by the engine.
        _ => Line::Scan(text.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// An amount has a decimal point, or is a short number; payment codes are 16+ digits. A
/// sign makes it an amount too (`-5` is refused as an amount, never sent as a scan).
fn is_amount(line: &str) -> bool {
    let unsigned = line.strip_prefix(['-', '+']).unwrap_or(line);
    let digits_or_dot =
        !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    digits_or_dot && (unsigned.contains('.') || unsigned.len() <= 8 || unsigned.len() < line.len())
}

/// A sale's amount from an amount line: what the cashier is told when it is not one, or not
/// above zero (`-5`, `0.00`).
pub fn sale_amount(
    text: &str,
    currency: crate::money::Currency,
) -> Result<crate::money::Amount, String> {
    let refused = || format!("sale refused: the amount {text} is not above zero");
    match crate::money::Amount::parse(text.trim_start_matches('+'), currency) {
        Ok(a) if a.is_positive() => Ok(a),
        Ok(_) => Err(refused()),
        Err(_) if text.starts_with('-') => Err(refused()),
        Err(e) => Err(format!("not an amount: {e}")),
    }
}

/// Prints every finished sale as one JSON line on stdout (the register's view of the
/// daemon when it is driven through stdin).
pub struct JsonLines;

impl crate::events::Observer for JsonLines {
    fn event(&self, event: &crate::events::Event) {
        if let crate::events::Event::SaleFinished { sale } = event {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", crate::api::wire::sale_line(sale));
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_scans_and_commands_are_told_apart() {
        assert_eq!(parse(b"12.50\n"), Line::Amount("12.50".into()));
        assert_eq!(parse(b"12\r\n"), Line::Amount("12".into()));
        assert_eq!(parse(b"-5\n"), Line::Amount("-5".into()));
        assert_eq!(parse(b"-\n"), Line::Scan("-".into()));
        assert_eq!(
            parse(b"286000000000000000\n"),
            Line::Scan("286000000000000000".into())
        );
        assert_eq!(
            parse(b"4006381333931\n"),
            Line::Scan("4006381333931".into())
        );
        assert_eq!(parse(b"abc\n"), Line::Scan("abc".into()));
        assert_eq!(parse(b"  \n"), Line::Empty);
        assert_eq!(parse(b"cancel\n"), Line::Cancel);
        assert_eq!(parse(b"quit"), Line::Quit);
        assert!(matches!(parse(&[0xff, 0x00, b'\n']), Line::Scan(_)));
        assert_eq!(parse(b"bind M1\n"), Line::Bind("M1".into()));
        assert_eq!(parse(b"approve\n"), Line::Approve);
        assert_eq!(
            parse(b"member M1 12.50\n"),
            Line::Member {
                member_id: "M1".into(),
                amount: "12.50".into()
            }
        );
        assert_eq!(parse(b"member M1\n"), Line::Scan("member M1".into()));
    }
}
