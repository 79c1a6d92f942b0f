//! Alipay Global / Antom AMS wire format (docs/protocol.md §6–8, §10.3–10.4): the signed content and
//! `Signature` header, the request bodies, and the mapping of `result` and `paymentStatus`
//! to an [`Outcome`].

use serde_json::{Value, json};

use crate::gateway::{
    Cancelled, Failure, Outcome, Paid, Presented, TradeStatus, Unknown, UnknownKind,
};
use crate::money::{Amount, Currency};

pub const PAY_PATH: &str = "/ams/api/v1/payments/pay";
pub const INQUIRY_PATH: &str = "/ams/api/v1/payments/inquiryPayment";
pub const CANCEL_PATH: &str = "/ams/api/v1/payments/cancel";
pub const REFUND_PATH: &str = "/ams/api/v1/payments/refund";
pub const INQUIRY_REFUND_PATH: &str = "/ams/api/v1/payments/inquiryRefund";

/// SDKs rewrite `/ams/api` to `/ams/sandbox/api` for `SANDBOX_` client ids, before signing.
pub fn request_path(client_id: &str, path: &str) -> String {
    if client_id.starts_with("SANDBOX_") {
        path.replacen("/ams/api", "/ams/sandbox/api", 1)
    } else {
        path.to_string()
    }
}

/// `<METHOD> <path>\n<client-id>.<time>.<body>`: one space, one LF, literal dots.
pub fn sign_content(method: &str, path: &str, client_id: &str, time: &str, body: &str) -> String {
    format!("{method} {path}\n{client_id}.{time}.{body}")
}

/// `algorithm=RSA256,keyVersion=N,signature=<url-encoded base64>`.
pub fn signature_header(key_version: u32, signature_b64: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(signature_b64.as_bytes()).collect();
    format!("algorithm=RSA256,keyVersion={key_version},signature={encoded}")
}

/// The base64 signature of a `Signature` header (what follows `signature=`, URL-decoded).
pub fn parse_signature_header(header: &str) -> Option<String> {
    let (_, encoded) = header.split_once("signature=")?;
    let encoded = encoded.split(',').next()?.trim();
    let decoded: String = url::form_urlencoded::parse(format!("s={encoded}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!decoded.is_empty()).then_some(decoded)
}

/// A `Request-Time`/`response-time` value: epoch milliseconds (the Java and Go SDKs) or ISO
/// 8601 with an offset (the Python SDK); both are seen.
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return chrono::DateTime::from_timestamp_millis(text.parse().ok()?);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// An AMS `Amount`: currency and minor units as a string.
pub fn amount_json(amount: &Amount) -> Value {
    json!({"currency": amount.currency().code(), "value": amount.to_minor_string()})
}

/// An AMS `Amount` read back exactly; `None` if it is not a plain non-negative integer.
pub fn parse_amount(value: &Value) -> Option<Amount> {
    let currency = Currency::from_code(value.get("currency")?.as_str()?).ok()?;
    let text = value.get("value")?.as_str()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Amount::from_minor(text.parse().ok()?, currency))
}

/// Merchant and store details sent in `order` (risk and reporting).
#[derive(Debug, Clone)]
pub struct Merchant {
    pub reference_merchant_id: String,
    pub merchant_name: String,
    pub merchant_mcc: String,
    pub reference_store_id: String,
    pub store_name: String,
    pub merchant_region: Option<String>,
    /// `settlementStrategy.settlementCurrency`; `None` sends the payment's currency.
    pub settlement_currency: Option<String>,
    pub payment_notify_url: Option<String>,
}

/// What is being paid with. Its `Debug` names the kind only: the code and the token are
/// secrets.
#[derive(Clone)]
pub enum PaymentSource<'a> {
    /// `IN_STORE_PAYMENT`, user-presented code (the scanned code).
    PaymentCode(&'a str),
    /// `IN_STORE_PAYMENT`, merchant-presented: an order's QR (`OrderCode`), or the page the
    /// store's entry code opened in the wallet (`EntryCode`, with its browser's user agent).
    OrderCode,
    EntryCode {
        user_agent: &'a str,
    },
    /// `AGREEMENT_PAYMENT`: auto-debit with an access token from `applyToken` (seed 000).
    Agreement {
        wallet: &'a str,
        access_token: &'a str,
    },
}

pub struct PayBody<'a> {
    pub request_id: &'a str,
    pub source: PaymentSource<'a>,
    pub amount: Amount,
    pub description: &'a str,
    pub terminal_id: &'a str,
    /// ISO 8601 with offset, the terminal's request time.
    pub request_time: &'a str,
    /// ISO 8601 with offset, when the payment may no longer complete.
    pub expiry_time: Option<&'a str>,
    pub merchant: &'a Merchant,
    /// The basket's goods, sent as `order.goods` (docs/protocol.md §16.5).
    pub goods: &'a [crate::money::basket::Goods],
}

impl std::fmt::Debug for PaymentSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaymentSource::PaymentCode(_) => "PaymentCode(***)",
            PaymentSource::OrderCode => "OrderCode",
            PaymentSource::EntryCode { .. } => "EntryCode",
            PaymentSource::Agreement { .. } => "Agreement(***)",
        })
    }
}

pub fn pay_body(p: &PayBody<'_>) -> String {
    let m = p.merchant;
    let (product, method, factor) = match p.source {
        PaymentSource::PaymentCode(code) => (
            "IN_STORE_PAYMENT",
            json!({"paymentMethodType": "CONNECT_WALLET", "paymentMethodId": code}),
            Some(json!({"inStorePaymentScenario": "PaymentCode"})),
        ),
        PaymentSource::OrderCode => (
            "IN_STORE_PAYMENT",
            json!({"paymentMethodType": "CONNECT_WALLET"}),
            Some(json!({"inStorePaymentScenario": "OrderCode"})),
        ),
        PaymentSource::EntryCode { .. } => (
            "IN_STORE_PAYMENT",
            json!({"paymentMethodType": "CONNECT_WALLET"}),
            Some(json!({"inStorePaymentScenario": "EntryCode"})),
        ),
        PaymentSource::Agreement {
            wallet,
            access_token,
        } => (
            "AGREEMENT_PAYMENT",
            json!({"paymentMethodType": wallet, "paymentMethodId": access_token}),
            None,
        ),
    };
    let mut body = json!({
        "productCode": product,
        "paymentRequestId": p.request_id,
        "paymentAmount": amount_json(&p.amount),
        "paymentMethod": method,
        "order": {
            "referenceOrderId": p.request_id,
            "orderDescription": p.description,
            "orderAmount": amount_json(&p.amount),
            "merchant": {
                "referenceMerchantId": m.reference_merchant_id,
                "merchantMCC": m.merchant_mcc,
                "merchantName": m.merchant_name,
                "store": {
                    "referenceStoreId": m.reference_store_id,
                    "storeName": m.store_name,
                    "storeMCC": m.merchant_mcc,
                },
            },
            "env": {"storeTerminalId": p.terminal_id, "storeTerminalRequestTime": p.request_time},
        },
    });
    if let Some(f) = factor {
        body["paymentFactor"] = f;
    }
    if let PaymentSource::EntryCode { user_agent } = p.source {
        body["order"]["env"]["userAgent"] = json!(user_agent);
    }
    // Required with CONNECT_WALLET and with auto-debit: an acquirer with several settlement
    // contracts cannot choose one without it. Unconfigured, the payment's own currency.
    let settlement = m
        .settlement_currency
        .as_deref()
        .unwrap_or(p.amount.currency().code());
    body["settlementStrategy"] = json!({"settlementCurrency": settlement});
    if let Some(r) = &m.merchant_region {
        body["merchantRegion"] = json!(r);
    }
    if let Some(u) = &m.payment_notify_url {
        body["paymentNotifyUrl"] = json!(u);
    }
    if let Some(t) = p.expiry_time {
        body["paymentExpiryTime"] = json!(t);
    }
    if !p.goods.is_empty() {
        body["order"]["goods"] = p
            .goods
            .iter()
            .map(|g| {
                let mut line = json!({
                    "referenceGoodsId": g.id, "goodsName": g.name,
                    "goodsUnitAmount": amount_json(&g.price),
                    "goodsQuantity": g.quantity.to_string(),
                });
                if let Some(c) = &g.category {
                    line["goodsCategory"] = json!(c);
                }
                line
            })
            .collect();
    }
    body.to_string()
}

/// The `result` every AMS answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultInfo {
    pub status: String,
    pub code: String,
    pub message: String,
}

pub fn result_of(body: &Value) -> Option<ResultInfo> {
    let r = body.get("result")?;
    Some(ResultInfo {
        status: r.get("resultStatus")?.as_str()?.to_string(),
        code: r.get("resultCode")?.as_str()?.to_string(),
        message: r
            .get("resultMessage")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

fn unknown(kind: UnknownKind, r: &ResultInfo) -> Unknown {
    Unknown::new(kind, format!("{} {}: {}", r.status, r.code, r.message))
}

/// Result codes that refuse the request itself, before any processing: the client id, the
/// key or the API is wrong. Antom sends them unsigned when it cannot tell whose key to sign
/// with; they move nothing, whatever the operation.
pub fn refused_at_door(code: &str) -> bool {
    matches!(
        code,
        "CLIENT_INVALID"
            | "INVALID_SIGNATURE"
            | "KEY_NOT_FOUND"
            | "ACCESS_DENIED"
            | "INVALID_API"
            | "NO_INTERFACE_DEF"
            | "METHOD_NOT_SUPPORTED"
            | "MEDIA_TYPE_NOT_ACCEPTABLE"
    )
}

/// The refusal a door code states.
pub fn door_refusal(r: &ResultInfo) -> Failure {
    failure(r)
}

/// A failure, or a refusal at the door.
fn failed<T>(r: &ResultInfo) -> Outcome<T> {
    if refused_at_door(&r.code) {
        Outcome::Rejected(failure(r))
    } else {
        Outcome::Failed(failure(r))
    }
}

fn failure(r: &ResultInfo) -> Failure {
    Failure {
        code: r.code.clone(),
        message: r.message.clone(),
        cashier: cashier_message(&r.code).to_string(),
    }
}

/// What the cashier should do after a definite failure (docs/protocol.md §8.1).
pub fn cashier_message(code: &str) -> &'static str {
    match code {
        "EXPIRED_CODE" => {
            "the code has expired: ask the customer to refresh the code and scan again"
        }
        "INVALID_PAYMENT_CODE" => "this code is not accepted: ask for another payment method",
        "USER_BALANCE_NOT_ENOUGH" => {
            "the customer's balance is too low: ask for another payment method"
        }
        "USER_AMOUNT_EXCEED_LIMIT"
        | "PAYMENT_AMOUNT_EXCEED_LIMIT"
        | "PAYMENT_COUNT_EXCEED_LIMIT" => {
            "the customer's wallet limit is reached: ask for another payment method"
        }
        "USER_NOT_EXIST"
        | "USER_STATUS_ABNORMAL"
        | "USER_KYC_NOT_QUALIFIED"
        | "USER_PAYMENT_VERIFICATION_FAILED"
        | "VERIFY_TIMES_EXCEED_LIMIT"
        | "VERIFY_UNMATCHED"
        | "RISK_REJECT" => "the customer's wallet cannot pay this: ask for another payment method",
        "ORDER_IS_CANCELED" | "ORDER_IS_CLOSED" => "this payment was closed: start the sale again",
        "PARAM_ILLEGAL" => "the payment request was refused as malformed: call support",
        "ACCESS_DENIED"
        | "CLIENT_INVALID"
        | "INVALID_API"
        | "NO_INTERFACE_DEF"
        | "METHOD_NOT_SUPPORTED"
        | "MEDIA_TYPE_NOT_ACCEPTABLE"
        | "INVALID_SIGNATURE"
        | "KEY_NOT_FOUND"
        | "INVALID_CONTRACT"
        | "INVALID_MERCHANT_STATUS"
        | "MERCHANT_KYB_NOT_QUALIFIED"
        | "MERCHANT_NOT_REGISTERED"
        | "PAYMENT_NOT_QUALIFIED"
        | "SETTLE_CONTRACT_NOT_MATCH"
        | "CURRENCY_NOT_SUPPORT"
        | "NO_PAY_OPTIONS" => {
            "the merchant's gateway configuration or contract was refused: the customer was not charged; call support"
        }
        "INVALID_ACCESS_TOKEN" | "INVALID_PAYMENT_METHOD_META_DATA" => {
            "the stored wallet authorisation is no longer valid: ask the customer to pay another way"
        }
        _ => "the payment was refused: ask the customer for another payment method",
    }
}

/// `pay` (docs/protocol.md §8.1). `REQUEST_TRAFFIC_EXCEED_LIMIT` is reported as throttled so the
/// client can resend the same request.
pub fn pay_outcome(body: &Value, request_id: &str) -> Outcome<Paid> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    if let Some(mismatch) = echo_mismatch(body, request_id) {
        return Outcome::Unknown(mismatch);
    }
    match (r.status.as_str(), r.code.as_str()) {
        ("S", _) => match body.get("paymentId").and_then(Value::as_str) {
            Some(id) => Outcome::Success(Paid {
                trade_id: id.to_string(),
                amount: body.get("paymentAmount").and_then(parse_amount),
                money: Default::default(),
            }),
            None => Outcome::Unknown(Unknown::new(
                UnknownKind::Malformed,
                "success without paymentId",
            )),
        },
        ("U", "PAYMENT_IN_PROCESS") => Outcome::Unknown(unknown(UnknownKind::BuyerConfirming, &r)),
        ("U", _) => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
        // Documented as failures, but only an inquiry can say nothing was charged.
        ("F", "PROCESS_FAIL" | "SYSTEM_ERROR") => {
            Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r))
        }
        ("F", "REPEAT_REQ_INCONSISTENT") => {
            tracing::error!(
                request_id,
                "REPEAT_REQ_INCONSISTENT: this request id was sent before with other details; the original stands, inquiring"
            );
            Outcome::Unknown(unknown(UnknownKind::Mismatch, &r))
        }
        ("F", _) => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, &r)),
    }
}

/// A merchant-presented `pay` (docs/protocol.md §17): the answer issues a code, it never
/// pays. Order Code: `U PAYMENT_IN_PROCESS` (or `S`, in an older sample) with
/// `orderCodeForm.codeDetails[]` (the `TEXT` entry is the QR's content) and `expireTime`.
/// Entry Code: `S` with `redirectActionForm.redirectUrl`. A code-issuing answer without its
/// code is unclear; a definite `F` creates nothing.
pub fn present_outcome(body: &Value, request_id: &str) -> Outcome<Presented> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    if let Some(mismatch) = echo_mismatch(body, request_id) {
        return Outcome::Unknown(mismatch);
    }
    let order_code = body
        .pointer("/orderCodeForm/codeDetails")
        .and_then(Value::as_array)
        .and_then(|codes| {
            codes
                .iter()
                .find(|c| c.get("displayType").and_then(Value::as_str) == Some("TEXT"))
                .and_then(|c| c.get("codeValue").and_then(Value::as_str))
        });
    let redirect = body
        .pointer("/redirectActionForm/redirectUrl")
        .and_then(Value::as_str);
    let expires_at = body
        .pointer("/orderCodeForm/expireTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    match (r.status.as_str(), r.code.as_str()) {
        ("S", _) | ("U", "PAYMENT_IN_PROCESS") => match order_code.or(redirect) {
            Some(content) if !content.is_empty() => Outcome::Success(Presented {
                content: content.to_string(),
                expires_at,
            }),
            _ => Outcome::Unknown(unknown(UnknownKind::Malformed, &r)),
        },
        ("U", _) | ("F", "PROCESS_FAIL" | "SYSTEM_ERROR" | "REPEAT_REQ_INCONSISTENT") => {
            Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r))
        }
        ("F", _) => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, &r)),
    }
}

/// An answer naming another `paymentRequestId` than the one asked: never trusted.
fn echo_mismatch(body: &Value, request_id: &str) -> Option<Unknown> {
    let echo = body.get("paymentRequestId").and_then(Value::as_str)?;
    (echo != request_id).then(|| {
        Unknown::new(
            UnknownKind::Mismatch,
            format!("answer is for paymentRequestId {echo:?}, not {request_id:?}"),
        )
    })
}

/// Whether a pay answer says "throttled: send the same request again later".
pub fn is_throttled(body: &Value) -> bool {
    result_of(body).is_some_and(|r| r.code == "REQUEST_TRAFFIC_EXCEED_LIMIT")
}

/// `inquiryPayment` (docs/protocol.md §8.2): `result` says whether the call worked,
/// `paymentStatus` what happened to the payment.
pub fn inquiry_outcome(body: &Value, request_id: &str) -> Outcome<TradeStatus> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    match (r.status.as_str(), r.code.as_str()) {
        ("S", _) => {
            if let Some(echo) = body.get("paymentRequestId").and_then(Value::as_str)
                && echo != request_id
            {
                return Outcome::Unknown(Unknown::new(
                    UnknownKind::Mismatch,
                    format!("inquiry answer is for {echo:?}"),
                ));
            }
            let status = body
                .get("paymentStatus")
                .and_then(Value::as_str)
                .unwrap_or("");
            let why = |code: &str| Failure {
                code: body
                    .get("paymentResultCode")
                    .and_then(Value::as_str)
                    .unwrap_or(code)
                    .to_string(),
                message: body
                    .get("paymentResultMessage")
                    .and_then(Value::as_str)
                    .unwrap_or("payment not completed")
                    .to_string(),
                cashier: "the payment was not completed: ask the customer to pay again".to_string(),
            };
            match status {
                "SUCCESS" => match body.get("paymentId").and_then(Value::as_str) {
                    Some(id) => Outcome::Success(TradeStatus::Paid(Paid {
                        trade_id: id.to_string(),
                        amount: body.get("paymentAmount").and_then(parse_amount),
                        money: Default::default(),
                    })),
                    None => Outcome::Unknown(Unknown::new(
                        UnknownKind::Malformed,
                        "paid without paymentId",
                    )),
                },
                "PROCESSING" | "PENDING" => Outcome::Success(TradeStatus::Waiting),
                "FAIL" => Outcome::Success(TradeStatus::Closed(why("FAIL"))),
                // `paymentTime` is when the payment succeeded: a cancelled payment that has
                // one was paid, and the cancel gave the money back.
                "CANCELLED" => match (
                    body.get("paymentTime").and_then(Value::as_str),
                    body.get("paymentId").and_then(Value::as_str),
                ) {
                    (Some(t), Some(id)) if !t.is_empty() => {
                        Outcome::Success(TradeStatus::Reversed(Paid {
                            trade_id: id.to_string(),
                            amount: body.get("paymentAmount").and_then(parse_amount),
                            money: Default::default(),
                        }))
                    }
                    _ => Outcome::Success(TradeStatus::Closed(why("CANCELLED"))),
                },
                other => Outcome::Unknown(Unknown::new(
                    UnknownKind::Malformed,
                    format!("unexpected paymentStatus {other:?}"),
                )),
            }
        }
        ("F", "ORDER_NOT_EXIST") => Outcome::Success(TradeStatus::NotFound),
        ("F", _) => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
    }
}

/// `cancel`. The answer does not tell a closed payment from a refunded one: the client asks
/// after the cancel (`Closed` here means "accepted"). A cancel of a payment Antom never
/// received answers `ORDER_NOT_EXIST`: nothing to reverse, nothing was charged.
pub fn cancel_outcome(body: &Value) -> Outcome<Cancelled> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    match (r.status.as_str(), r.code.as_str()) {
        ("S", _) => Outcome::Success(Cancelled::Closed),
        ("F", "ORDER_NOT_EXIST") => {
            tracing::warn!("cancel found no such payment: it was never created");
            Outcome::Success(Cancelled::NotCreated {
                code: "ORDER_NOT_EXIST",
            })
        }
        ("F", _) => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
    }
}

/// `refund` (docs/protocol.md §10.3).
pub fn refund_outcome(body: &Value) -> Outcome<crate::gateway::Refunded> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    match r.status.as_str() {
        "S" => Outcome::Success(crate::gateway::Refunded {
            provider_refund_id: body
                .get("refundId")
                .and_then(Value::as_str)
                .map(str::to_string),
        }),
        "F" => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
    }
}

/// `inquiryRefund`: `refundStatus` SUCCESS is done, FAIL is not, PROCESSING is unknown.
pub fn inquiry_refund_outcome(body: &Value) -> Outcome<bool> {
    let Some(r) = result_of(body) else {
        return Outcome::Unknown(Unknown::new(UnknownKind::Malformed, "answer has no result"));
    };
    match (
        r.status.as_str(),
        body.get("refundStatus").and_then(Value::as_str),
    ) {
        ("S", Some("SUCCESS")) => Outcome::Success(true),
        ("S", Some("FAIL")) => Outcome::Success(false),
        ("S", _) => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
        ("F", _) if r.code == "ORDER_NOT_EXIST" => Outcome::Success(false),
        ("F", _) => failed(&r),
        _ => Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, &r)),
    }
}

#[cfg(test)]
mod tests;
