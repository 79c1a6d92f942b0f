//! The seam between the sale engine and a payment provider.
//!
//! Every operation answers with an [`Outcome`] whose variants are the decisions the caller
//! must make: `Success` (verified and stated), `Failed` (definitely not done), `Unknown`
//! (may have been done: inquire), `NotSent` (the request never left: nothing happened),
//! `Rejected` (refused at the gateway's door, before any processing: nothing happened, and
//! our credentials are at fault). Only modules under `gateway/` know a provider's field
//! names and result codes. Every text in an outcome has been scrubbed of payment codes
//! ([`scrub`]) before it leaves this module.

pub mod alipay_ams;
pub mod alipay_openapi;
mod http;
pub mod keyring;
pub mod keys;
pub mod monitor;
pub mod notify;
pub mod records;
pub mod router;
pub mod scrub;
pub mod wechat_pay;

pub use http::{CLOCK_SKEW_REFUSE_S, CLOCK_SKEW_WARN_S};
pub use records::{ProviderRecord, RecordKind, RecordMoney};

/// How many recent answers a clock skew is judged by.
pub fn http_skew_samples() -> usize {
    http::SKEW_SAMPLES
}

use std::fmt;

use async_trait::async_trait;

use crate::money::Amount;
use crate::money::breakdown::Breakdown;
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
    /// The key journaled as the one that signs this request ([`Gateway::signing_key`]): a
    /// gateway that holds several keys while they change signs with this one.
    pub signing_key: Option<String>,
    /// The sale's campaign fields (discountable parts, goods, cashier), sent where the
    /// protocol takes them.
    pub basket: crate::money::basket::Basket,
    /// This request as signed ahead by [`Gateway::sign_pay`], if it was: `pay` then sends
    /// it as it is.
    pub signed: Option<SignedPay>,
}

/// A pay request signed ahead of sending ([`Gateway::sign_pay`]). Only the client that
/// signed it sends it, and only for the request it was signed for; any other signs afresh.
#[derive(Clone)]
pub struct SignedPay {
    pub(crate) signer: SignerId,
    pub(crate) request_id: String,
    pub(crate) url: url::Url,
    /// Holds the payment code: never shown.
    pub(crate) body: String,
}

impl SignedPay {
    /// Whether this is `request_id`'s call as `signer` signed it.
    pub(crate) fn is(&self, signer: SignerId, request_id: &str) -> bool {
        self.signer == signer && self.request_id == request_id
    }
}

impl std::fmt::Debug for SignedPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedPay")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// One gateway client, among all in the process: whose signature a [`SignedPay`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerId(u64);

impl SignerId {
    pub(crate) fn new() -> SignerId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        SignerId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// How a merchant-presented code is made (docs/gateways.md §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presentation {
    /// A QR for this sale that the customer scans with the wallet (Open Platform
    /// `alipay.trade.precreate`, AMS Order Code).
    OrderCode,
    /// The store's static entry code opened a page inside the wallet; the page's backend
    /// asks for the payment with the wallet browser's user agent and sends the customer to
    /// the answer's URL (AMS Entry Code).
    EntryCode { user_agent: String },
}

impl Presentation {
    pub fn method(&self) -> crate::paycode::PayMethod {
        match self {
            Presentation::OrderCode => crate::paycode::PayMethod::OrderCode,
            Presentation::EntryCode { .. } => crate::paycode::PayMethod::EntryCode,
        }
    }
}

/// A payment the customer makes by scanning what the merchant shows. `request_id` is the
/// attempt's durable id, as for [`PayRequest`]; `expires_in` how long the code may be paid.
#[derive(Debug, Clone)]
pub struct PresentRequest {
    pub request_id: String,
    pub wallet: Wallet,
    pub how: Presentation,
    pub amount: Amount,
    pub subject: String,
    pub terminal_id: String,
    pub store_id: Option<String>,
    pub signing_key: Option<String>,
    pub basket: crate::money::basket::Basket,
    pub expires_in: std::time::Duration,
}

/// A code issued for the customer to scan, not a payment: the payment is learnt by inquiry
/// (or a notification), as for a payment in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// What the customer scans (the QR's content), or for an entry code the page the
    /// customer is sent to.
    pub content: String,
    /// When the provider stops taking payment for it, when it says.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A member's auto-debit (AMS `AGREEMENT_PAYMENT`, docs/protocol.md §18): charged with the
/// access token of the member's binding, no code scanned. The token is a secret: it is in
/// this request for the one call that needs it and in nothing the gateway returns.
pub struct AgreementRequest {
    pub request_id: String,
    /// The bound wallet's `paymentMethodType` (`ALIPAY_CN`, …).
    pub wallet_type: String,
    pub access_token: zeroize::Zeroizing<String>,
    pub amount: Amount,
    pub subject: String,
    pub terminal_id: String,
    pub signing_key: Option<String>,
    pub basket: crate::money::basket::Basket,
    /// `paymentExpiryTime` this long after the request (the seed's rule: at most a minute).
    pub expires_in: std::time::Duration,
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
    /// What the answer says moved besides the order amount (received, vouchers, funds);
    /// empty when it says nothing more.
    pub money: Breakdown,
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
    /// The gateway refused the request itself before processing it, in an answer it does
    /// not sign: the app id, client id, key or certificate mode is wrong
    /// (`40002 isv.invalid-signature`, AMS `F CLIENT_INVALID`). No money moved; every
    /// request fails the same way until the configuration is fixed. ARCHITECTURE.md says why
    /// this unsigned answer is trusted and what catches it if it were wrong.
    Rejected(Failure),
}

impl<T> Outcome<T> {
    /// The same outcome with another success value (for outcomes that pass through).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Success(t) => Outcome::Success(f(t)),
            Outcome::Failed(x) => Outcome::Failed(x),
            Outcome::Unknown(u) => Outcome::Unknown(u),
            Outcome::NotSent(why) => Outcome::NotSent(why),
            Outcome::Rejected(x) => Outcome::Rejected(x),
        }
    }
}

/// What an inquiry learned about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeStatus {
    Paid(Paid),
    /// Created, not paid yet: customer confirming (`WAIT_BUYER_PAY` / `PROCESSING`).
    Waiting,
    /// Final and not paid (closed, failed, cancelled).
    Closed(Failure),
    /// Paid, then given back in full by a cancel (AMS states it after the cancel).
    Reversed(Paid),
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
    /// The provider has no such payment: the pay request never created one
    /// (`ACQ.TRADE_NOT_EXIST`, `ORDER_NOT_EXIST`). Nothing was charged. `code` is how the
    /// provider said so.
    NotCreated { code: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    pub provider_refund_id: Option<String>,
}

/// How a gateway wants payments in doubt to be chased (docs/protocol.md §9.2, §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pause between two inquiries: a random value in this range (jitter spreads terminals).
    pub inquiry_interval_min: std::time::Duration,
    pub inquiry_interval_max: std::time::Duration,
    /// Until when a payment can still be cancelled.
    pub cancel_window: CancelWindow,
    /// After the window, reverse a payment by a full refund instead of a cancel (WeChat Pay:
    /// reverse works for 7 days, docs/gateways.md §8.6); otherwise the gateway's own cancel
    /// answer says when to.
    pub refund_after_window: bool,
    /// The first inquiry of a fresh payment in doubt waits until this long after it was
    /// created (WeChat Pay: 5 s after a system error or a customer confirming).
    pub first_inquiry_after: std::time::Duration,
    /// No cancel before this long after the payment was created (WeChat Pay: reverse at
    /// least 15 s after the pay).
    pub cancel_not_before: std::time::Duration,
    /// The gateway's own in-doubt deadline, when shorter than the configured one (WeChat
    /// Pay: 30–45 s, then reverse).
    pub deadline: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelWindow {
    /// This long after the payment was created (Open Platform: 24 h).
    After(std::time::Duration),
    /// Until 00:15 Beijing time on the day after the payment (AMS).
    BeijingNextDay0015,
}

impl CancelWindow {
    /// The last moment a payment created at `created` can be cancelled.
    pub fn closes_at(
        &self,
        created: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        match self {
            CancelWindow::After(d) => {
                created + chrono::Duration::from_std(*d).unwrap_or(chrono::TimeDelta::MAX)
            }
            CancelWindow::BeijingNextDay0015 => {
                let local = created.with_timezone(&crate::clock::beijing());
                let next = local.date_naive().succ_opt().unwrap_or(local.date_naive());
                let at = next.and_hms_opt(0, 15, 0).unwrap_or_default();
                at.and_local_timezone(crate::clock::beijing())
                    .single()
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(created)
            }
        }
    }
}

impl Policy {
    /// Open Platform: query every 3–6 s, cancel possible for 24 h.
    pub const OPEN_PLATFORM: Policy = Policy {
        inquiry_interval_min: std::time::Duration::from_secs(3),
        inquiry_interval_max: std::time::Duration::from_secs(6),
        cancel_window: CancelWindow::After(std::time::Duration::from_secs(24 * 3600)),
        refund_after_window: false,
        first_inquiry_after: std::time::Duration::ZERO,
        cancel_not_before: std::time::Duration::ZERO,
        deadline: None,
    };
    /// AMS: inquire every ~3 s, cancel until 00:15 Beijing time the next day.
    pub const AMS: Policy = Policy {
        inquiry_interval_min: std::time::Duration::from_millis(2_700),
        inquiry_interval_max: std::time::Duration::from_millis(3_300),
        cancel_window: CancelWindow::BeijingNextDay0015,
        refund_after_window: false,
        first_inquiry_after: std::time::Duration::ZERO,
        cancel_not_before: std::time::Duration::ZERO,
        deadline: None,
    };

    /// WeChat Pay code pay (docs/gateways.md §8.6): inquire every 5 s, the first 5 s after
    /// the pay; reverse at the deadline (30–45 s, configured), never sooner than 15 s after
    /// the pay; reverse for 7 days, then a full refund.
    pub const fn wechat_pay(deadline: std::time::Duration) -> Policy {
        Policy {
            inquiry_interval_min: std::time::Duration::from_secs(5),
            inquiry_interval_max: std::time::Duration::from_millis(5_500),
            cancel_window: CancelWindow::After(std::time::Duration::from_secs(7 * 24 * 3600)),
            refund_after_window: true,
            first_inquiry_after: std::time::Duration::from_secs(5),
            cancel_not_before: std::time::Duration::from_secs(15),
            deadline: Some(deadline),
        }
    }
}

/// From this many days before a certificate ends, the operator is warned (status, health,
/// the LED's needs-attention pattern).
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

/// A certificate a gateway client relies on: which one, its SN, when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// `alipay_app_cert`, `alipay_cert` (the one answers are verified with now),
    /// `alipay_root_cert` (each RSA root of the bundle) or `wechat_platform_cert` (its
    /// serial as `sn`).
    pub which: &'static str,
    pub sn: String,
    pub not_after: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
pub trait Gateway: Send + Sync {
    /// Short name for logs and the journal (`sandbox`, `alipay-openapi`, …).
    fn name(&self) -> &'static str;

    /// How payments in doubt are chased with this gateway.
    fn policy(&self) -> Policy {
        Policy::OPEN_PLATFORM
    }

    /// Whether this gateway can charge codes of `wallet`.
    fn accepts(&self, wallet: Wallet) -> bool;

    /// The name of the gateway that charges codes of `wallet` (a [`router::Router`] answers
    /// for the one it routes to); `None` when none does.
    fn route(&self, wallet: Wallet) -> Option<&'static str> {
        self.accepts(wallet).then(|| self.name())
    }

    /// What ends the request ids of payments sent through this gateway for `wallet`, so that
    /// a router sends every later call about one to the same gateway (WeChat Pay: `W`).
    fn request_id_tag(&self, _wallet: Wallet) -> &'static str {
        ""
    }

    /// How the payment sent under `request_id` is chased: the policy of the gateway it went
    /// to.
    fn policy_for(&self, _request_id: &str) -> Policy {
        self.policy()
    }

    /// The gateway's clock minus ours, seconds, from its last answer; `None` when unknown.
    fn clock_skew_s(&self) -> Option<i64> {
        None
    }

    /// Whether every recent answer's time agrees with our clock.
    fn clock_agrees(&self) -> bool {
        false
    }

    /// The certificates this client relies on and when each ends (Open Platform certificate
    /// mode, docs/gateways.md §9; WeChat Pay platform certificates); none for a client that
    /// verifies with bare public keys.
    fn certificates(&self) -> Vec<CertificateExpiry> {
        Vec::new()
    }

    /// Which merchant key signs the requests for `wallet`'s codes, as the journal records it
    /// with each attempt: an AMS key version, an app certificate's SN, a key's fingerprint
    /// (docs/gateways.md §10). `None` for a gateway without one.
    fn signing_key(&self, _wallet: Wallet) -> Option<String> {
        None
    }

    /// Signs `request` as [`Gateway::pay`] will send it, and sends nothing: the engine has
    /// this done while the attempt's row is being synced, so the signature takes no time of
    /// its own between the scan and the wire. `None` (the default): `pay` signs as it sends.
    fn sign_pay(&self, _request: &PayRequest) -> Option<SignedPay> {
        None
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid>;

    /// Issues a code for the customer to scan. `Success` means issued, never paid; a
    /// gateway without merchant-presented codes refuses it (nothing is created).
    async fn present(&self, request: &PresentRequest) -> Outcome<Presented> {
        Outcome::Failed(Failure {
            code: "presented_codes_unsupported".into(),
            message: format!(
                "the {} gateway has no merchant-presented codes for {}",
                self.name(),
                request.wallet.display_name()
            ),
            cashier: "this wallet cannot pay by scanning the store's QR here: scan the customer's payment code".into(),
        })
    }

    /// Charges a bound member without a scan. A gateway without auto-debit refuses it
    /// (nothing is created).
    async fn pay_agreement(&self, request: &AgreementRequest) -> Outcome<Paid> {
        let _ = request;
        Outcome::Failed(Failure {
            code: "agreement_unsupported".into(),
            message: format!("the {} gateway has no member auto-debit", self.name()),
            cashier: "members cannot be charged here: scan the customer's code".into(),
        })
    }

    /// Asks for the state of the payment sent under `request_id`.
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus>;

    /// Reverses the payment sent under `request_id`: closes it if unpaid, refunds it if paid
    /// (past the provider's cancel window, by a refund under a fixed id, so retries are safe).
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled>;

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded>;

    /// Whether the refund `request` names has been made (`false`: not received or failed).
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool>;
}

/// Reverses a payment whose cancel window has closed: a paid payment is refunded in full
/// under the fixed refund id `<request id>C` (so a retry never refunds twice), an unpaid one
/// needs nothing.
pub async fn reverse_by_refund<G: Gateway + ?Sized>(
    gateway: &G,
    request_id: &str,
) -> Outcome<Cancelled> {
    match gateway.inquire(request_id).await {
        Outcome::Success(TradeStatus::Paid(paid)) => {
            let Some(amount) = paid.amount else {
                return Outcome::Unknown(Unknown::new(
                    UnknownKind::Malformed,
                    "paid payment without an amount",
                ));
            };
            let refund = RefundRequest {
                refund_id: format!("{request_id}C"),
                payment_request_id: request_id.to_string(),
                trade_id: Some(paid.trade_id),
                amount,
                reason: Some("payment in doubt, reversed after the cancel window".to_string()),
            };
            tracing::warn!(request_id, %amount, "cancel window closed: reversing by a full refund");
            gateway.refund(&refund).await.map(|_| Cancelled::Refunded)
        }
        Outcome::Success(TradeStatus::Reversed(_)) => Outcome::Success(Cancelled::Refunded),
        Outcome::Success(TradeStatus::Closed(_)) => Outcome::Success(Cancelled::Closed),
        Outcome::Success(TradeStatus::NotFound) => Outcome::Success(Cancelled::NotCreated {
            code: "no such payment",
        }),
        Outcome::Success(TradeStatus::Waiting) => Outcome::Unknown(Unknown::new(
            UnknownKind::BuyerConfirming,
            "still waiting for the customer",
        )),
        other => other.map(|_| Cancelled::Closed),
    }
}
