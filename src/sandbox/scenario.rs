//! The sandbox's code table: what it does with a scanned code, by the code's last two digits
//! (the table is in [`super`]'s documentation), and the refusals of the failing endings.

use std::time::Duration;

use crate::gateway::Failure;
use crate::money::Amount;
use crate::money::breakdown::{Breakdown, Fund, Voucher};

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
    /// `16`: paid at once, with a merchant-funded voucher of 2.00 (when the order is above
    /// it): the store receives and the buyer pays 2.00 less.
    MerchantVoucher,
    /// `17`: paid at once, with a platform-funded voucher of 1.00 (when the order is above
    /// it): the buyer pays 1.00 less, the store receives the whole order.
    PlatformVoucher,
}

/// The merchant-funded voucher of code `16`, minor units.
pub const MERCHANT_VOUCHER_MINOR: i64 = 200;
/// The platform-funded voucher of code `17`, minor units.
pub const PLATFORM_VOUCHER_MINOR: i64 = 100;

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
        Some("16") => Scenario::MerchantVoucher,
        Some("17") => Scenario::PlatformVoucher,
        _ => Scenario::Success,
    }
}

impl Scenario {
    /// Whether the payment is paid at once, with a plain answer.
    pub fn pays_at_once(&self) -> bool {
        matches!(
            self,
            Scenario::Success | Scenario::MerchantVoucher | Scenario::PlatformVoucher
        )
    }

    /// What the provider states moved for an order of `order` paid under this scenario:
    /// the store receives and the buyer pays the order, less the voucher codes `16` and `17`
    /// take (each only on an order above its voucher).
    pub fn breakdown(&self, order: Amount) -> Breakdown {
        let c = order.currency();
        let at = |minor| Amount::from_minor(minor, c);
        let (merchant, platform) = match self {
            Scenario::MerchantVoucher if order.minor() > MERCHANT_VOUCHER_MINOR => {
                (MERCHANT_VOUCHER_MINOR, 0)
            }
            Scenario::PlatformVoucher if order.minor() > PLATFORM_VOUCHER_MINOR => {
                (0, PLATFORM_VOUCHER_MINOR)
            }
            _ => (0, 0),
        };
        let buyer = order.minor() - merchant - platform;
        let mut funds = vec![Fund {
            channel: "ALIPAYACCOUNT".into(),
            amount: at(buyer),
        }];
        let mut vouchers = Vec::new();
        if merchant > 0 {
            funds.push(Fund {
                channel: "MDISCOUNT".into(),
                amount: at(merchant),
            });
            vouchers.push(Voucher {
                id: "SBXV0000000016".into(),
                name: "店铺满减券".into(),
                kind: "ALIPAY_FIX_VOUCHER".into(),
                amount: at(merchant),
                merchant: Some(at(merchant)),
                platform: Some(at(0)),
            });
        }
        if platform > 0 {
            funds.push(Fund {
                channel: "DISCOUNT".into(),
                amount: at(platform),
            });
            vouchers.push(Voucher {
                id: "SBXV0000000017".into(),
                name: "支付宝立减".into(),
                kind: "ALIPAY_FIX_VOUCHER".into(),
                amount: at(platform),
                merchant: Some(at(0)),
                platform: Some(at(platform)),
            });
        }
        Breakdown {
            buyer_paid: Some(at(buyer)),
            received: Some(at(order.minor() - merchant)),
            points: Some(at(0)),
            invoice: Some(at(order.minor() - merchant)),
            funds,
            vouchers,
        }
    }

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
        assert_eq!(scenario("286000000000000016"), Scenario::MerchantVoucher);
        assert_eq!(scenario("286000000000000017"), Scenario::PlatformVoucher);
    }

    #[test]
    fn the_voucher_codes_state_what_the_store_receives_and_the_buyer_pays() {
        let cny = crate::money::Currency::from_code("CNY").unwrap();
        let ten = Amount::from_minor(1000, cny);
        let m = Scenario::MerchantVoucher.breakdown(ten);
        assert_eq!(m.received.map(|a| a.minor()), Some(800));
        assert_eq!(m.buyer_paid.map(|a| a.minor()), Some(800));
        assert_eq!(
            (m.merchant_discount_minor(), m.platform_discount_minor()),
            (200, 0)
        );
        let p = Scenario::PlatformVoucher.breakdown(ten);
        assert_eq!(p.received.map(|a| a.minor()), Some(1000));
        assert_eq!(p.buyer_paid.map(|a| a.minor()), Some(900));
        assert_eq!(
            (p.merchant_discount_minor(), p.platform_discount_minor()),
            (0, 100)
        );
        // An order not above the voucher gets none.
        let small = Scenario::MerchantVoucher.breakdown(Amount::from_minor(200, cny));
        assert!(small.vouchers.is_empty());
        assert_eq!(small.received.map(|a| a.minor()), Some(200));
        assert_eq!(Scenario::Success.breakdown(ten).received, Some(ten));
    }
}
