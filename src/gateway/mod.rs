//! The seam between the sale engine and a payment provider.
//!
//! Every operation answers with an [`Outcome`] whose variants are the decisions the caller
//! must make: `Success` (verified and stated), `Failed` (definitely not done), `Unknown`
//! (may have been done: inquire), `NotSent` (the request never left: nothing happened).
//! Only modules under `gateway/` know a provider's field names and result codes.

pub mod alipay_ams;
pub mod alipay_openapi;
mod http;
pub mod keys;
pub mod sandbox;

use std::fmt;

use async_trait::async_trait;

use crate::money::Amount;
use crate::paycode::{PaymentCode, Wallet};

/// One charge of a scanned code. `request_id` is the attempt's durable id
/// (`out_trade_no` / `paymentRequestId`); retries reuse it with the same parameters.
#[derive(Debug, Clone)]
pub struct PayRequest {
    pub request_id: String,
    pub code: PaymentCode,
    pub amount: Amount,
    pub subject: String,
    pub terminal_id: String,
    pub store_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The refund's own durable id (`out_request_no` / `refundRequestId`).
    pub refund_id: String,
    /// The request id of the paid attempt.
    pub payment_request_id: String,
    /// The provider's id of the paid attempt, when known (AMS refunds need it).
    pub trade_id: Option<String>,
    pub amount: Amount,
    pub reason: Option<String>,
}

/// A stated, verified payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    /// The provider's trade id (`trade_no` / `paymentId`).
    pub trade_id: String,
    /// The amount the provider says it charged, when the answer carries one; the engine
    /// compares it with what was asked.
    pub amount: Option<Amount>,
}

/// A definite refusal: nothing was charged (or, for cancel/refund, nothing was done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The provider's most specific code (`sub_code` / `resultCode`).
    pub code: String,
    /// The provider's message, for the journal and the operator.
    pub message: String,
    /// What the cashier should do, in plain words.
    pub cashier: String,
}

/// Why an outcome is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKind {
    /// No answer within the timeout.
    Timeout,
    /// The connection broke after the request may have left.
    ConnectionLost,
    /// An answer whose signature did not verify: it proves nothing.
    BadSignature,
    /// An answer that could not be understood.
    Malformed,
    /// The customer is confirming in the wallet (password, limit check).
    BuyerConfirming,
    /// The provider said its own outcome is unknown or it is busy (`20000`, `U`, system error).
    ProviderUnsure,
    /// A success that does not match the request (other amount or id): never trusted.
    Mismatch,
}

impl UnknownKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            UnknownKind::Timeout => "timeout",
            UnknownKind::ConnectionLost => "connection_lost",
            UnknownKind::BadSignature => "bad_signature",
            UnknownKind::Malformed => "malformed_answer",
            UnknownKind::BuyerConfirming => "buyer_confirming",
            UnknownKind::ProviderUnsure => "provider_unsure",
            UnknownKind::Mismatch => "answer_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub kind: UnknownKind,
    pub detail: String,
}

impl Unknown {
    pub fn new(kind: UnknownKind, detail: impl Into<String>) -> Unknown {
        Unknown {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Success(T),
    Failed(Failure),
    Unknown(Unknown),
    /// The request provably never left this machine (connect refused, DNS failure).
    NotSent(String),
}

/// What an inquiry learned about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeStatus {
    Paid(Paid),
    /// Created, not paid yet: customer confirming (`WAIT_BUYER_PAY` / `PROCESSING`).
    Waiting,
    /// Final and not paid (closed, failed, cancelled).
    Closed(Failure),
    /// The provider has no such payment (yet): the request may still be on its way.
    NotFound,
}

/// What a confirmed cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The payment was not paid and is now closed.
    Closed,
    /// The payment had been paid; the cancel refunded it in full.
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    pub provider_refund_id: Option<String>,
}

#[async_trait]
pub trait Gateway: Send + Sync {
    /// Short name for logs and the journal (`sandbox`, `alipay-openapi`, …).
    fn name(&self) -> &'static str;

    /// Whether this gateway can charge codes of `wallet`.
    fn accepts(&self, wallet: Wallet) -> bool;

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid>;

    /// Asks for the state of the payment sent under `request_id`.
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus>;

    /// Reverses the payment sent under `request_id`: closes it if unpaid, refunds it if paid.
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled>;

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded>;

    /// Whether the refund `request` names has been made (`false`: not received or failed).
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool>;
}
