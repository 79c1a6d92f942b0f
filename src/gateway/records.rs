//! A provider's own record of a day's money, line by line, as each provider's file format
//! reads it (`alipay_openapi::bill`, `alipay_ams::report`): what reconciliation compares with
//! the journal, and what the sandbox's bill is written from.

use serde::Serialize;

use crate::money::Amount;

/// What one provider line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Payment,
    /// A refund, or a cancel that gave the money back (then without a refund id).
    Refund,
}

/// One line of the provider's record of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub kind: RecordKind,
    /// The attempt's request id (`out_trade_no` / `paymentRequestId`).
    pub request_id: String,
    /// The provider's trade id (`trade_no` / `paymentId`).
    pub trade_id: String,
    /// Always positive; `kind` says which way the money went.
    pub amount: Amount,
    /// The refund's own id (`out_request_no` / `refundRequestId`); none for a cancel.
    pub refund_id: Option<String>,
    /// When the provider completed it, as the file says.
    pub at: String,
    /// Line in the file, for the operator.
    pub line: usize,
    /// What the line says the store received and the discounts it names, where the file has
    /// those columns (the Open Platform's bill); always positive like `amount`.
    pub money: RecordMoney,
}

/// The money columns of a provider line beyond its amount; `None` where the file has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordMoney {
    /// `商家实收（元）`: what the store received (or gave back, on a refund line).
    pub received: Option<Amount>,
    /// `商家优惠（元）`: discounts the merchant funded.
    pub merchant_discount: Option<Amount>,
    /// `支付宝优惠（元）`: discounts the platform funded.
    pub platform_discount: Option<Amount>,
}
