//! The sandbox's code table: what it does with a scanned code, by the code's last two digits
//! (the table is in [`super`]'s documentation), and the refusals of the failing endings.

use std::time::Duration;

use crate::gateway::Failure;

/// How long the customer takes to confirm for code `03`.
pub const CONFIRM_DELAY: Duration = Duration::from_secs(3);
/// How long the sandbox takes to answer code `06`.
pub const SLOW_ANSWER: Duration = Duration::from_secs(20);

/// What the sandbox does with a code, by its last two digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Success,
    InsufficientBalance,
    ExpiredCode,
    ConfirmThenPay,
    ConfirmNeverPays,
    UnknownButPaid,
    SlowButPaid,
    DropAfterCharge,
    BadSignatureButPaid,
    RiskReject,
    NeverCreatedUnknown,
    NeverCreatedDropped,
    SystemErrorButPaid,
    PaysAtCancel,
    /// `15` (Alipay codes): the customer must confirm and never pays, and risk control
    /// froze the trade: every cancel is refused (`ACQ.REASON_TRADE_BEEN_FREEZEN`) until the
    /// admin call `POST /_sandbox/trades/{request_id}/unfreeze`.
    FrozenAtCancel,
    /// WeChat Pay `14`: `429 FREQUENCY_LIMITED`, nothing created.
    RateLimited,
}

/// Whether `code` is a WeChat Pay payment code (18 digits, `10`–`15`): those follow the
/// WeChat table, which differs from the Alipay one only at `09` and `14`.
pub fn is_wechat_code(code: &str) -> bool {
    code.len() == 18
        && code.bytes().all(|b| b.is_ascii_digit())
        && matches!(&code[..2], "10" | "11" | "12" | "13" | "14" | "15")
}

pub fn scenario(code: &str) -> Scenario {
    let ending = code.get(code.len().saturating_sub(2)..);
    if is_wechat_code(code) {
        match ending {
            // A system error, and no order created.
            Some("09") => return Scenario::NeverCreatedUnknown,
            Some("14") => return Scenario::RateLimited,
            Some("15") => return Scenario::Success,
            _ => {}
        }
    }
    match ending {
        Some("01") => Scenario::InsufficientBalance,
        Some("02") => Scenario::ExpiredCode,
        Some("03") => Scenario::ConfirmThenPay,
        Some("04") => Scenario::ConfirmNeverPays,
        Some("05") => Scenario::UnknownButPaid,
        Some("06") => Scenario::SlowButPaid,
        Some("07") => Scenario::DropAfterCharge,
        Some("08") => Scenario::BadSignatureButPaid,
        Some("09") => Scenario::RiskReject,
        Some("10") => Scenario::NeverCreatedUnknown,
        Some("11") => Scenario::NeverCreatedDropped,
        Some("12") => Scenario::SystemErrorButPaid,
        Some("13") => Scenario::PaysAtCancel,
        Some("15") => Scenario::FrozenAtCancel,
        _ => Scenario::Success,
    }
}

impl Scenario {
    /// The definite refusal of a failing scenario.
    pub fn failure(&self) -> Option<Failure> {
        let (code, message, cashier) = match self {
            Scenario::InsufficientBalance => (
                "BUYER_BALANCE_NOT_ENOUGH",
                "buyer balance not enough",
                "the customer's balance is too low: ask for another payment method",
            ),
            Scenario::ExpiredCode => (
                "PAYMENT_AUTH_CODE_INVALID",
                "payment code expired",
                "the code has expired: ask the customer to refresh the code and scan again",
            ),
            Scenario::RiskReject => (
                "RISK_REJECT",
                "payment rejected by risk control",
                "the payment was declined: ask for another payment method",
            ),
            _ => return None,
        };
        Some(Failure {
            code: code.to_string(),
            message: message.to_string(),
            cashier: cashier.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_table() {
        assert_eq!(scenario("286000000000000000"), Scenario::Success);
        assert_eq!(scenario("286000000000000009"), Scenario::RiskReject);
        assert_eq!(scenario("286000000000000042"), Scenario::Success);
        assert_eq!(scenario("0"), Scenario::Success);
        assert_eq!(
            scenario("286000000000000010"),
            Scenario::NeverCreatedUnknown
        );
        assert_eq!(scenario("286000000000000013"), Scenario::PaysAtCancel);
        // WeChat Pay codes: the same endings, except 09 and 14.
        assert_eq!(scenario("134567890123456703"), Scenario::ConfirmThenPay);
        assert_eq!(
            scenario("134567890123456709"),
            Scenario::NeverCreatedUnknown
        );
        assert_eq!(scenario("134567890123456714"), Scenario::RateLimited);
        assert_eq!(scenario("286000000000000014"), Scenario::Success);
        assert_eq!(scenario("286000000000000015"), Scenario::FrozenAtCancel);
        assert_eq!(scenario("134567890123456715"), Scenario::Success);
    }
}
