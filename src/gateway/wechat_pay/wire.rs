//! WeChat Pay APIv3 wire format (docs/protocol.md §15): the `WECHATPAY2-SHA256-RSA2048`
//! request signature, the verification of a signed answer or notification, AES-GCM with the
//! APIv3 key, the request bodies, and the mapping of every status and code to an
//! [`Outcome`] (docs/gateways.md §8).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::gateway::keys::{PrivateKey, PublicKey};
use crate::gateway::{Failure, Outcome, Paid, Refunded, TradeStatus, Unknown, UnknownKind};
use crate::money::{Amount, Currency};

/// The signature scheme of the `Authorization` header.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// A signature that starts so is WeChat's probe of whether we verify: never valid
/// (docs/protocol.md §15.3).
pub const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// Largest distance between an answer's `Wechatpay-Timestamp` and our clock, either way.
pub const MAX_SKEW_S: i64 = 300;
/// Answer headers (names are case-insensitive on the wire).
pub const H_TIMESTAMP: &str = "wechatpay-timestamp";
pub const H_NONCE: &str = "wechatpay-nonce";
pub const H_SIGNATURE: &str = "wechatpay-signature";
pub const H_SERIAL: &str = "wechatpay-serial";
pub const H_REQUEST_ID: &str = "request-id";

/// The text a request signature covers: method, request target (path and query exactly as
/// sent), timestamp, nonce and body, each followed by `\n` (an empty body for a GET).
pub fn request_message(
    method: &str,
    target: &str,
    timestamp: impl std::fmt::Display,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{target}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The `Authorization` header value, its parameters in the order the official SDKs send.
pub fn authorization(
    mchid: &str,
    nonce: &str,
    timestamp: i64,
    serial_no: &str,
    signature: &str,
) -> String {
    format!(
        "{SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",serial_no=\"{serial_no}\",signature=\"{signature}\""
    )
}

/// Who signs a request: the merchant's key, its merchant number and certificate serial.
pub struct RequestSigner<'a> {
    pub key: &'a PrivateKey,
    pub mchid: &'a str,
    pub serial_no: &'a str,
}

impl RequestSigner<'_> {
    /// The `Authorization` header for `method target body` at `timestamp` with `nonce`.
    pub fn sign(
        &self,
        method: &str,
        target: &str,
        body: &str,
        timestamp: i64,
        nonce: &str,
    ) -> String {
        let message = request_message(method, target, timestamp, nonce, body);
        let signature = self.key.sign_sha256_base64(message.as_bytes());
        authorization(self.mchid, nonce, timestamp, self.serial_no, &signature)
    }
}

/// 32 characters from `[0-9A-Za-z]`, as the official SDKs make a nonce.
pub fn nonce() -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The parameters of a request's `Authorization` header (the sandbox reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    pub mchid: String,
    pub nonce: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

/// Parses an `Authorization` header: the scheme, then the five quoted parameters in any
/// order. `None` for anything else.
pub fn parse_authorization(header: &str) -> Option<AuthParams> {
    let rest = header.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let mut found: [Option<String>; 5] = Default::default();
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        let value = value.strip_prefix('"')?.strip_suffix('"')?.to_string();
        let slot = match name {
            "mchid" => 0,
            "nonce_str" => 1,
            "timestamp" => 2,
            "serial_no" => 3,
            "signature" => 4,
            _ => return None,
        };
        if found[slot].replace(value).is_some() {
            return None;
        }
    }
    let [
        Some(mchid),
        Some(nonce),
        Some(timestamp),
        Some(serial_no),
        Some(signature),
    ] = found
    else {
        return None;
    };
    Some(AuthParams {
        mchid,
        nonce,
        timestamp,
        serial_no,
        signature,
    })
}

/// The text an answer's or a notification's signature covers: timestamp, nonce and the raw
/// body, each followed by `\n`.
pub fn answer_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The signature headers of an answer or a notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub signature: Option<String>,
    pub serial: Option<String>,
}

impl SignedHeaders {
    pub fn from_map(headers: &reqwest::header::HeaderMap) -> SignedHeaders {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        SignedHeaders {
            timestamp: get(H_TIMESTAMP),
            nonce: get(H_NONCE),
            signature: get(H_SIGNATURE),
            serial: get(H_SERIAL),
        }
    }

    /// Whether the answer carries any signature at all.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }
}

/// Why an answer's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the answer carries no {0} header")]
    Missing(&'static str),
    #[error("the answer carries a WECHATPAY/SIGNTEST probe signature: not valid by design")]
    Probe,
    #[error("Wechatpay-Timestamp {0:?} is not a Unix time")]
    BadTimestamp(String),
    #[error("Wechatpay-Timestamp is {skew_s} s from our clock (more than {MAX_SKEW_S} s)")]
    Skewed { skew_s: i64 },
    #[error("Wechatpay-Serial {0:?} names no platform certificate or public key we hold")]
    UnknownSerial(String),
    #[error("the platform certificate {0} has expired")]
    Expired(String),
    #[error("the answer's signature did not verify with {0}")]
    BadSignature(String),
}

/// One key WeChat Pay signs with: a platform certificate (by its serial) or the WeChat Pay
/// public key (by its `PUB_KEY_ID_…`).
#[derive(Debug, Clone)]
pub struct PlatformKey {
    pub id: String,
    pub key: PublicKey,
    /// A certificate's end of validity; `None` for a public key (it does not expire).
    pub not_after: Option<DateTime<Utc>>,
}

/// Checks an answer's or a notification's signature with the key its `Wechatpay-Serial`
/// names, inside the timestamp window both ways; a probe signature never passes.
pub fn verify(
    keys: &[PlatformKey],
    headers: &SignedHeaders,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let signature = headers
        .signature
        .as_deref()
        .ok_or(VerifyError::Missing("Wechatpay-Signature"))?;
    if signature.starts_with(PROBE_PREFIX) {
        return Err(VerifyError::Probe);
    }
    let timestamp = headers
        .timestamp
        .as_deref()
        .ok_or(VerifyError::Missing("Wechatpay-Timestamp"))?;
    let nonce = headers
        .nonce
        .as_deref()
        .ok_or(VerifyError::Missing("Wechatpay-Nonce"))?;
    let serial = headers
        .serial
        .as_deref()
        .ok_or(VerifyError::Missing("Wechatpay-Serial"))?;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_string()))?;
    let skew_s = ts.saturating_sub(now.timestamp());
    if skew_s.abs() > MAX_SKEW_S {
        return Err(VerifyError::Skewed { skew_s });
    }
    let key = keys
        .iter()
        .find(|k| k.id.eq_ignore_ascii_case(serial))
        .ok_or_else(|| VerifyError::UnknownSerial(serial.to_string()))?;
    if key.not_after.is_some_and(|end| now > end) {
        return Err(VerifyError::Expired(key.id.clone()));
    }
    if key
        .key
        .verify_sha256_base64(&answer_message(timestamp, nonce, body), signature)
    {
        Ok(())
    } else {
        Err(VerifyError::BadSignature(key.id.clone()))
    }
}

/// Signs an answer (the sandbox): the four `Wechatpay-*` header values.
pub fn sign_answer(
    key: &PrivateKey,
    serial: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> SignedHeaders {
    let timestamp = now.timestamp().to_string();
    let nonce = nonce();
    let signature = key.sign_sha256_base64(&answer_message(&timestamp, &nonce, body));
    SignedHeaders {
        timestamp: Some(timestamp),
        nonce: Some(nonce),
        signature: Some(signature),
        serial: Some(serial.to_string()),
    }
}

/// An encrypted resource (notifications, `/v3/certificates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    #[serde(default)]
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

/// The algorithm name WeChat Pay gives AES-GCM resources.
pub const AEAD: &str = "AEAD_AES_256_GCM";

fn aead_key(key: &[u8]) -> Result<ring::aead::LessSafeKey, String> {
    // The APIv3 key is 32 bytes (AES-256); the official SDK's test vectors use 16-byte
    // keys, which select AES-128 exactly as the SDK's own code does.
    let algorithm = match key.len() {
        32 => &ring::aead::AES_256_GCM,
        16 => &ring::aead::AES_128_GCM,
        n => return Err(format!("the APIv3 key is {n} bytes, not 32")),
    };
    ring::aead::UnboundKey::new(algorithm, key)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| "the APIv3 key is not usable for AES-GCM".to_string())
}

fn aead_nonce(nonce: &str) -> Result<ring::aead::Nonce, String> {
    ring::aead::Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| format!("nonce is {} bytes, not 12", nonce.len()))
}

/// Decrypts a resource with the APIv3 key: nonce and associated data are used as their raw
/// bytes, the ciphertext is base64 of ciphertext and 16-byte tag.
pub fn decrypt(key: &[u8], resource: &EncryptedResource) -> Result<Vec<u8>, String> {
    if !resource.algorithm.is_empty() && resource.algorithm != AEAD {
        return Err(format!("unknown algorithm {:?}", resource.algorithm));
    }
    let key = aead_key(key)?;
    let nonce = aead_nonce(&resource.nonce)?;
    let mut data = STANDARD
        .decode(resource.ciphertext.trim())
        .map_err(|_| "ciphertext is not base64".to_string())?;
    let plain = key
        .open_in_place(
            nonce,
            ring::aead::Aad::from(resource.associated_data.as_bytes()),
            &mut data,
        )
        .map_err(|_| "the resource did not decrypt: wrong APIv3 key or altered data".to_string())?;
    Ok(plain.to_vec())
}

/// Encrypts a resource with the APIv3 key (the sandbox's certificates and notifications).
pub fn encrypt(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    plain: &[u8],
) -> Result<EncryptedResource, String> {
    let sealing = aead_key(key)?;
    let mut data = plain.to_vec();
    sealing
        .seal_in_place_append_tag(
            aead_nonce(nonce)?,
            ring::aead::Aad::from(associated_data.as_bytes()),
            &mut data,
        )
        .map_err(|_| "cannot encrypt".to_string())?;
    Ok(EncryptedResource {
        algorithm: AEAD.to_string(),
        ciphertext: STANDARD.encode(data),
        associated_data: associated_data.to_string(),
        nonce: nonce.to_string(),
        original_type: None,
    })
}

// ---- bodies ---------------------------------------------------------------------------

/// `POST /v3/pay/transactions/codepay`. Field order is the documented one; the body is
/// serialised once, and exactly those bytes are signed and sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodepayBody {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goods_tag: Option<String>,
    pub payer: Payer,
    pub amount: PayAmount,
    pub scene_info: SceneInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payer {
    pub auth_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayAmount {
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ip: Option<String>,
    pub store_info: StoreInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_id: Option<String>,
}

/// `POST …/out-trade-no/{no}/reverse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseBody {
    pub appid: String,
    pub mchid: String,
}

/// `POST /v3/refund/domestic/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    pub out_trade_no: String,
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub amount: RefundAmount,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
    pub currency: String,
}

/// The transaction object of a code-pay answer and of a query. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TxAmount>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TxAmount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A refund object (refund answer and refund query).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Refund {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<RefundAmountAnswer>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefundAmountAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// One answer as received: status, whether its signature verified, the raw body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub verified: Result<(), VerifyError>,
    pub body: Vec<u8>,
}

impl Reply {
    fn error(&self) -> ErrorBody {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    fn unverified(&self) -> Option<Unknown> {
        self.verified.as_ref().err().map(|e| {
            Unknown::new(
                UnknownKind::BadSignature,
                format!("HTTP {}: {e}", self.status),
            )
        })
    }
}

// ---- codes → outcomes (docs/gateways.md §8) ---------------------------------------------

/// Request-level refusals: nothing was processed, our configuration is at fault. Believed
/// signed or not (docs/gateways.md §8.2).
fn refused_at_door(status: u16, code: &str) -> bool {
    status == 401
        || matches!(
            code,
            "SIGN_ERROR"
                | "PARAM_ERROR"
                | "INVALID_REQUEST"
                | "APPID_MCHID_NOT_MATCH"
                | "MCH_NOT_EXISTS"
                | "NO_AUTH"
                | "NOAUTH"
        )
}

/// Definite business failures of a pay: the customer was not charged. Believed only signed.
fn business_failure(code: &str) -> Option<&'static str> {
    Some(match code {
        "NOT_ENOUGH" | "NOTENOUGH" => {
            "the customer's balance is too low: ask for another payment method"
        }
        "AUTHCODEEXPIRE" | "AUTH_CODE_INVALID" | "AUTH_CODE_ERROR" => {
            "the code has expired: ask the customer to refresh the code and scan again"
        }
        "TRADE_ERROR" | "ACCOUNT_ERROR" | "ACCOUNTERROR" | "RULE_LIMIT" | "RULELIMIT"
        | "NOTSUPORTCARD" | "BUYER_MISMATCH" => {
            "the payment was declined: ask for another payment method"
        }
        _ => return None,
    })
}

fn failure(code: &str, message: &str, cashier: &str) -> Failure {
    Failure {
        code: code.to_string(),
        message: message.to_string(),
        cashier: cashier.to_string(),
    }
}

fn door_refusal(e: &ErrorBody, status: u16) -> Failure {
    let code = if e.code.is_empty() {
        format!("HTTP_{status}")
    } else {
        e.code.clone()
    };
    failure(
        &code,
        &e.message,
        "WeChat Pay refused the request: the WeChat Pay configuration is wrong (see the log); take another payment method",
    )
}

fn cny() -> Option<Currency> {
    Currency::from_code("CNY").ok()
}

/// The payment a SUCCESS transaction states, checked against the request id.
fn paid_of(tx: &Transaction, request_id: &str) -> Result<Paid, Unknown> {
    if tx.out_trade_no.as_deref() != Some(request_id) {
        return Err(Unknown::new(
            UnknownKind::Mismatch,
            format!(
                "answer is for out_trade_no {:?}, not {request_id}",
                tx.out_trade_no
            ),
        ));
    }
    let trade_id = tx
        .transaction_id
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Unknown::new(UnknownKind::Malformed, "paid answer without transaction_id")
        })?;
    let amount = match &tx.amount {
        Some(TxAmount {
            total: Some(total),
            currency,
            ..
        }) => {
            let currency = match currency.as_deref() {
                None => cny(),
                Some(c) => Currency::from_code(c).ok(),
            }
            .ok_or_else(|| Unknown::new(UnknownKind::Malformed, "unknown currency"))?;
            Some(Amount::from_minor(*total, currency))
        }
        _ => None,
    };
    Ok(Paid {
        trade_id,
        amount,
        money: Default::default(),
    })
}

/// The answer to `POST /codepay` (docs/gateways.md §8.1).
pub fn pay_outcome(reply: &Reply, request_id: &str) -> Outcome<Paid> {
    match reply.status {
        200 => {
            if let Some(u) = reply.unverified() {
                return Outcome::Unknown(u);
            }
            let tx: Transaction = match serde_json::from_slice(&reply.body) {
                Ok(tx) => tx,
                Err(e) => {
                    return Outcome::Unknown(Unknown::new(
                        UnknownKind::Malformed,
                        format!("pay answer: {e}"),
                    ));
                }
            };
            match tx.trade_state.as_deref() {
                Some("SUCCESS") => match paid_of(&tx, request_id) {
                    Ok(paid) => Outcome::Success(paid),
                    Err(u) => Outcome::Unknown(u),
                },
                Some("USERPAYING") | Some("ACCEPT") | Some("NOTPAY") => Outcome::Unknown(
                    Unknown::new(UnknownKind::BuyerConfirming, "customer is confirming"),
                ),
                other => Outcome::Unknown(Unknown::new(
                    UnknownKind::ProviderUnsure,
                    format!("pay answered trade_state {other:?}: will query"),
                )),
            }
        }
        // The customer confirms in the wallet. Whatever the body says, and signed or not:
        // never trusted as paid, never a reason to send the code again.
        202 => Outcome::Unknown(Unknown::new(
            UnknownKind::BuyerConfirming,
            "USERPAYING: customer is confirming",
        )),
        status => {
            let e = reply.error();
            if refused_at_door(status, &e.code) {
                return Outcome::Rejected(door_refusal(&e, status));
            }
            if let Some(cashier) = business_failure(&e.code)
                && (400..500).contains(&status)
            {
                return match reply.unverified() {
                    Some(u) => Outcome::Unknown(Unknown::new(
                        u.kind,
                        format!("{} {} (unsigned): {}", e.code, e.message, u.detail),
                    )),
                    None => Outcome::Failed(failure(&e.code, &e.message, cashier)),
                };
            }
            Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                format!("HTTP {status} {} {}", e.code, e.message),
            ))
        }
    }
}

/// Whether a trade state is final and unpaid.
fn closed_state(state: &str) -> Option<&'static str> {
    Some(match state {
        "CLOSED" => "the payment was closed: the customer was not charged",
        "REVOKED" => "the payment was reversed: the customer was not charged",
        "PAYERROR" => "the payment failed: ask for another payment method",
        _ => return None,
    })
}

/// The answer to a query by `out_trade_no` (docs/gateways.md §8.3).
pub fn query_outcome(reply: &Reply, request_id: &str) -> Outcome<TradeStatus> {
    match reply.status {
        200 => {
            if let Some(u) = reply.unverified() {
                return Outcome::Unknown(u);
            }
            let tx: Transaction = match serde_json::from_slice(&reply.body) {
                Ok(tx) => tx,
                Err(e) => {
                    return Outcome::Unknown(Unknown::new(
                        UnknownKind::Malformed,
                        format!("query answer: {e}"),
                    ));
                }
            };
            if tx.out_trade_no.as_deref() != Some(request_id) {
                return Outcome::Unknown(Unknown::new(
                    UnknownKind::Mismatch,
                    format!("query answer is for {:?}", tx.out_trade_no),
                ));
            }
            let state = tx.trade_state.clone().unwrap_or_default();
            match state.as_str() {
                // REFUND: paid, and a refund was made since; the payment itself stands.
                "SUCCESS" | "REFUND" => match paid_of(&tx, request_id) {
                    Ok(p) => Outcome::Success(TradeStatus::Paid(p)),
                    Err(u) => Outcome::Unknown(u),
                },
                "USERPAYING" | "NOTPAY" | "ACCEPT" => Outcome::Success(TradeStatus::Waiting),
                // A reversed order that had been paid still names its transaction.
                "REVOKED"
                    if tx.transaction_id.as_deref().is_some_and(|t| !t.is_empty())
                        && tx.success_time.is_some() =>
                {
                    match paid_of(&tx, request_id) {
                        Ok(p) => Outcome::Success(TradeStatus::Reversed(p)),
                        Err(u) => Outcome::Unknown(u),
                    }
                }
                s => match closed_state(s) {
                    Some(cashier) => Outcome::Success(TradeStatus::Closed(failure(
                        s,
                        tx.trade_state_desc.as_deref().unwrap_or(""),
                        cashier,
                    ))),
                    None => Outcome::Unknown(Unknown::new(
                        UnknownKind::Malformed,
                        format!("unknown trade_state {s:?}"),
                    )),
                },
            }
        }
        404 if reply.error().code == "ORDER_NOT_EXIST" => Outcome::Success(TradeStatus::NotFound),
        status => {
            let e = reply.error();
            if refused_at_door(status, &e.code) {
                return Outcome::Rejected(door_refusal(&e, status));
            }
            Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                format!("query: HTTP {status} {} {}", e.code, e.message),
            ))
        }
    }
}

/// What a reverse answer says (docs/gateways.md §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseAnswer {
    /// 200, verified: reversed (or nothing to reverse); a query says which.
    Done,
    /// 404 `ORDER_NOT_EXIST`: a query must confirm it.
    NotFound,
    /// Try again after a query (still paying, rate limit, 5xx, unknown code, unsigned).
    Retry(Unknown),
    /// Refused at the door: our configuration.
    Rejected(Failure),
}

pub fn reverse_outcome(reply: &Reply) -> ReverseAnswer {
    match reply.status {
        200 | 204 => match reply.unverified() {
            None => ReverseAnswer::Done,
            Some(u) => ReverseAnswer::Retry(u),
        },
        404 if reply.error().code == "ORDER_NOT_EXIST" => ReverseAnswer::NotFound,
        status => {
            let e = reply.error();
            // A customer still paying is answered USERPAYING (or a rate limit): query, wait,
            // reverse again. Checked before the door codes: INVALID_REQUEST is not sent for it.
            if matches!(
                e.code.as_str(),
                "USERPAYING" | "USER_PAYING" | "FREQUENCY_LIMITED" | "TRADE_ERROR"
            ) {
                return ReverseAnswer::Retry(Unknown::new(
                    UnknownKind::BuyerConfirming,
                    format!("reverse: HTTP {status} {} {}", e.code, e.message),
                ));
            }
            if refused_at_door(status, &e.code) && e.code != "INVALID_REQUEST" {
                return ReverseAnswer::Rejected(door_refusal(&e, status));
            }
            ReverseAnswer::Retry(Unknown::new(
                UnknownKind::ProviderUnsure,
                format!("reverse: HTTP {status} {} {}", e.code, e.message),
            ))
        }
    }
}

/// The answer to a refund or a refund query: `Some(true)` done, `Some(false)` failed or
/// closed, `None` still processing. Checked against the refund id.
fn refund_state(reply: &Reply, refund_id: &str) -> Result<(Option<bool>, Refund), Outcome<()>> {
    if let Some(u) = reply.unverified() {
        return Err(Outcome::Unknown(u));
    }
    let r: Refund = serde_json::from_slice(&reply.body).map_err(|e| {
        Outcome::Unknown(Unknown::new(
            UnknownKind::Malformed,
            format!("refund answer: {e}"),
        ))
    })?;
    if r.out_refund_no.as_deref() != Some(refund_id) {
        return Err(Outcome::Unknown(Unknown::new(
            UnknownKind::Mismatch,
            format!("refund answer is for {:?}", r.out_refund_no),
        )));
    }
    let state = match r.status.as_deref() {
        Some("SUCCESS") => Some(true),
        Some("CLOSED") | Some("ABNORMAL") => Some(false),
        _ => None,
    };
    Ok((state, r))
}

pub fn refund_outcome(reply: &Reply, refund_id: &str) -> Outcome<Refunded> {
    if reply.status == 200 {
        return match refund_state(reply, refund_id) {
            Err(o) => o.map(|_| Refunded {
                provider_refund_id: None,
            }),
            Ok((Some(true), r)) => Outcome::Success(Refunded {
                provider_refund_id: r.refund_id,
            }),
            Ok((Some(false), r)) => Outcome::Failed(failure(
                r.status.as_deref().unwrap_or("CLOSED"),
                "refund closed or abnormal",
                "the refund did not go through: check it in the WeChat Pay merchant platform",
            )),
            // Accepted: the refund query states the result.
            Ok((None, _)) => Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                "refund accepted, processing",
            )),
        };
    }
    let e = reply.error();
    if refused_at_door(reply.status, &e.code) && e.code != "INVALID_REQUEST" {
        return Outcome::Rejected(door_refusal(&e, reply.status));
    }
    if (400..500).contains(&reply.status)
        && reply.status != 429
        && !matches!(e.code.as_str(), "SYSTEM_ERROR" | "FREQUENCY_LIMITED" | "")
    {
        return match reply.unverified() {
            Some(u) => Outcome::Unknown(Unknown::new(
                u.kind,
                format!("{} {} (unsigned): {}", e.code, e.message, u.detail),
            )),
            None => Outcome::Failed(failure(
                &e.code,
                &e.message,
                "the refund was refused: check it in the WeChat Pay merchant platform",
            )),
        };
    }
    Outcome::Unknown(Unknown::new(
        UnknownKind::ProviderUnsure,
        format!("refund: HTTP {} {} {}", reply.status, e.code, e.message),
    ))
}

pub fn refund_query_outcome(reply: &Reply, refund_id: &str) -> Outcome<bool> {
    match reply.status {
        200 => match refund_state(reply, refund_id) {
            Err(o) => o.map(|_| false),
            Ok((Some(done), _)) => Outcome::Success(done),
            Ok((None, _)) => Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                "refund processing",
            )),
        },
        // Never received: the refund is sent (again, under the same id).
        404 if reply.error().code == "RESOURCE_NOT_EXISTS"
            || reply.error().code == "ORDER_NOT_EXIST" =>
        {
            Outcome::Success(false)
        }
        status => {
            let e = reply.error();
            if refused_at_door(status, &e.code) {
                return Outcome::Rejected(door_refusal(&e, status));
            }
            Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                format!("refund query: HTTP {status} {} {}", e.code, e.message),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
