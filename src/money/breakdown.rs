//! What a provider says moved for one paid payment besides the order amount: what the buyer
//! paid, what the store receives, the fund channels it came through and the vouchers that
//! took part of it, each voucher split into what the merchant funds and what the platform
//! funds (docs/protocol.md §16). Every amount is in the payment's currency; a field the
//! provider did not state is `None`, never guessed.

use super::Amount;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// What the buyer paid out of pocket (`buyer_pay_amount`, AMS `actualPaymentAmount`).
    pub buyer_paid: Option<Amount>,
    /// What the store receives (`receipt_amount`): the order less merchant-funded discounts.
    pub received: Option<Amount>,
    /// Paid in points (`point_amount`).
    pub points: Option<Amount>,
    /// What may be invoiced (`invoice_amount`).
    pub invoice: Option<Amount>,
    /// Where the money came from (`fund_bill_list`).
    pub funds: Vec<Fund>,
    /// Vouchers and discounts (`voucher_detail_list`, AMS `promotionResult`).
    pub vouchers: Vec<Voucher>,
}

/// One fund channel of a payment (`fund_channel`, `amount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fund {
    pub channel: String,
    pub amount: Amount,
}

/// One voucher or discount applied to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    pub id: String,
    pub name: String,
    /// The provider's kind of voucher (`ALIPAY_FIX_VOUCHER`, `DISCOUNT`, …), as stated.
    pub kind: String,
    pub amount: Amount,
    /// The part the merchant funds (`merchant_contribute`), when stated.
    pub merchant: Option<Amount>,
    /// The part the platform or others fund (`other_contribute`), when stated.
    pub platform: Option<Amount>,
}

impl Breakdown {
    /// Whether the provider stated anything beyond the order amount.
    pub fn is_empty(&self) -> bool {
        self == &Breakdown::default()
    }

    /// The merchant-funded part of every voucher, minor units.
    pub fn merchant_discount_minor(&self) -> i64 {
        self.vouchers
            .iter()
            .filter_map(|v| v.merchant)
            .map(|a| a.minor())
            .sum()
    }

    /// The platform-funded part of every voucher, minor units.
    pub fn platform_discount_minor(&self) -> i64 {
        self.vouchers
            .iter()
            .filter_map(|v| v.platform)
            .map(|a| a.minor())
            .sum()
    }

    /// What the store receives of an order of `order`: as stated, else the order amount.
    pub fn received_or(&self, order: Amount) -> Amount {
        self.received.unwrap_or(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn discounts_are_summed_by_who_funds_them() {
        let cny = Currency::from_code("CNY").unwrap();
        let a = |m| Amount::from_minor(m, cny);
        let b = Breakdown {
            received: Some(a(800)),
            vouchers: vec![
                Voucher {
                    id: "V1".into(),
                    name: "2 off".into(),
                    kind: "ALIPAY_FIX_VOUCHER".into(),
                    amount: a(200),
                    merchant: Some(a(200)),
                    platform: Some(a(0)),
                },
                Voucher {
                    id: "V2".into(),
                    name: "1 off".into(),
                    kind: "ALIPAY_FIX_VOUCHER".into(),
                    amount: a(100),
                    merchant: None,
                    platform: Some(a(100)),
                },
            ],
            ..Breakdown::default()
        };
        assert_eq!(b.merchant_discount_minor(), 200);
        assert_eq!(b.platform_discount_minor(), 100);
        assert_eq!(b.received_or(a(1000)), a(800));
        assert!(!b.is_empty());
        assert!(Breakdown::default().is_empty());
        assert_eq!(Breakdown::default().received_or(a(1000)), a(1000));
    }
}
