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
}
