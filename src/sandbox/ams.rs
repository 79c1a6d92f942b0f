//! The sandbox's Antom AMS endpoints (`/ams/api/v1/payments/*`, and `/ams/sandbox/api/...`
//! for `SANDBOX_` client ids): requests verified against the merchant's key, answers signed
//! in the `signature` header with the sandbox's key, decisions and ledger shared with the
//! Open Platform endpoints.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::server::{Answer, DropConnection, SandboxServer, plain};
use super::{Scenario, scenario};
use crate::clock::beijing;
use crate::gateway::alipay_ams::wire::{
    amount_json, parse_amount, parse_signature_header, sign_content, signature_header,
};
use crate::gateway::{
    Cancelled, Gateway, Outcome, PayRequest, RefundRequest, TradeStatus, UnknownKind,
};
use crate::paycode::{Scan, Wallet, recognise};

const OPERATIONS: [&str; 5] = ["pay", "inquiryPayment", "cancel", "refund", "inquiryRefund"];

pub(super) fn is_ams_path(path: &str) -> bool {
    operation(path).is_some()
}

fn operation(path: &str) -> Option<&str> {
    if let Some(rest) = path
        .strip_prefix("/ams/api/v1/authorizations/")
        .or_else(|| path.strip_prefix("/ams/sandbox/api/v1/authorizations/"))
    {
        return super::authorizations::OPERATIONS
            .iter()
            .find(|op| **op == rest)
            .copied();
    }
    let rest = path
        .strip_prefix("/ams/api/v1/payments/")
        .or_else(|| path.strip_prefix("/ams/sandbox/api/v1/payments/"))?;
    OPERATIONS.iter().find(|op| **op == rest).copied()
}

fn result(status: &str, code: &str, message: &str) -> Value {
    json!({"result": {"resultStatus": status, "resultCode": code, "resultMessage": message}})
}

fn now_iso() -> String {
    chrono::Utc::now()
        .with_timezone(&beijing())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The AMS result code for one of the sandbox's failure codes.
fn ams_code(sandbox_code: &str) -> &str {
    match sandbox_code {
        "BUYER_BALANCE_NOT_ENOUGH" => "USER_BALANCE_NOT_ENOUGH",
        "PAYMENT_AUTH_CODE_INVALID" => "EXPIRED_CODE",
        "CONTEXT_INCONSISTENT" => "REPEAT_REQ_INCONSISTENT",
        "TRADE_HAS_CLOSE" => "ORDER_IS_CLOSED",
        "TRADE_NOT_EXIST" => "ORDER_NOT_EXIST",
        "RISK_REJECT" => "RISK_REJECT",
        _ => "PROCESS_FAIL",
    }
}

pub(super) async fn handle(
    server: &SandboxServer,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answer {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (client_id, request_time, signature) = (
        header("client-id"),
        header("request-time"),
        header("signature"),
    );
    let reply = |content: Value| Ok(signed(server, path, content, false));
    // Refused at the door: Antom cannot tell whose request this is and answers unsigned.
    let unsigned = |content: Value| {
        Ok(plain(
            StatusCode::OK,
            "application/json; charset=UTF-8",
            content.to_string(),
        ))
    };
    if client_id != server.client_id {
        return unsigned(result("F", "CLIENT_INVALID", "the client id is invalid"));
    }
    let body_text = String::from_utf8_lossy(body);
    let content = sign_content("POST", path, client_id, request_time, &body_text);
    let version = key_version(signature);
    if !version.is_some_and(|v| server.has_key_version(v)) {
        return unsigned(result(
            "F",
            "KEY_NOT_FOUND",
            "no key of this version is configured for the client id",
        ));
    }
    let verified = parse_signature_header(signature)
        .is_some_and(|sig| server.merchant_signed(version, content.as_bytes(), &sig));
    if request_time.is_empty() || !verified {
        return unsigned(result(
            "F",
            "INVALID_SIGNATURE",
            "the request signature did not verify",
        ));
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return reply(result("F", "PARAM_ILLEGAL", "the body is not JSON"));
    };
    let field = |k: &str| {
        request
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match operation(path) {
        Some("pay") => pay(server, path, &request).await,
        Some("inquiryPayment") => {
            reply(inquiry(server, &field("paymentRequestId"), &field("paymentId")).await)
        }
        Some("cancel") => {
            reply(cancel(server, &field("paymentRequestId"), &field("paymentId")).await)
        }
        Some("refund") => reply(refund(server, &request).await),
        Some("inquiryRefund") => reply(inquiry_refund(server, &field("refundRequestId"))),
        Some(op @ ("consult" | "applyToken" | "revoke")) => {
            reply(server.authorizations.answer(op, &request))
        }
        _ => reply(result("F", "INVALID_API", "no such API")),
    }
}

async fn pay(server: &SandboxServer, path: &str, request: &Value) -> Answer {
    let reply = |content: Value, bad: bool| Ok(signed(server, path, content, bad));
    let request_id = request
        .get("paymentRequestId")
        .and_then(Value::as_str)
        .unwrap_or("");
    if request_id.is_empty() || request_id.len() > 64 {
        return reply(
            result("F", "PARAM_ILLEGAL", "paymentRequestId missing or too long"),
            false,
        );
    }
    let product = request.get("productCode").and_then(Value::as_str);
    let agreement = product == Some("AGREEMENT_PAYMENT");
    if !agreement && product != Some("IN_STORE_PAYMENT") {
        return reply(
            result(
                "F",
                "PAYMENT_NOT_QUALIFIED",
                "the sandbox takes IN_STORE_PAYMENT and AGREEMENT_PAYMENT only",
            ),
            false,
        );
    }
    let in_store = request
        .pointer("/paymentFactor/inStorePaymentScenario")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !agreement && !matches!(in_store, "PaymentCode" | "OrderCode" | "EntryCode") {
        return reply(
            result(
                "F",
                "PARAM_ILLEGAL",
                "inStorePaymentScenario must be PaymentCode, OrderCode or EntryCode",
            ),
            false,
        );
    }
    // As an acquirer with several settlement contracts may: it cannot tell which one to use.
    if request
        .pointer("/paymentMethod/paymentMethodType")
        .and_then(Value::as_str)
        == Some("CONNECT_WALLET")
        && request
            .pointer("/settlementStrategy/settlementCurrency")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return reply(
            result(
                "F",
                "PARAM_ILLEGAL",
                "settlementStrategy.settlementCurrency is required for CONNECT_WALLET",
            ),
            false,
        );
    }
    let Some(amount) = request
        .get("paymentAmount")
        .and_then(parse_amount)
        .filter(|a| a.is_positive())
    else {
        return reply(result("F", "PARAM_ILLEGAL", "paymentAmount invalid"), false);
    };
    if agreement {
        return reply(agreement_pay(server, request, request_id, amount), false);
    }
    if in_store != "PaymentCode" {
        return reply(
            present(server, request, request_id, amount, in_store),
            false,
        );
    }
    let code = match recognise(
        request
            .pointer("/paymentMethod/paymentMethodId")
            .and_then(Value::as_str)
            .unwrap_or(""),
    ) {
        Scan::Payment(c) if matches!(c.wallet(), Wallet::Alipay | Wallet::AlipayPlus) => c,
        _ => {
            return reply(
                result("F", "INVALID_PAYMENT_CODE", "not an accepted payment code"),
                false,
            );
        }
    };
    // The basket's goods, read as strictly as the amount; they must come to it.
    let mut goods = Vec::new();
    for (i, g) in request
        .pointer("/order/goods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = |k: &str| g.get(k).and_then(Value::as_str).map(str::to_string);
        let line = (|| {
            Some(crate::money::basket::Goods {
                id: text("referenceGoodsId")?,
                name: text("goodsName")?,
                quantity: text("goodsQuantity")?.parse().ok()?,
                price: g.get("goodsUnitAmount").and_then(parse_amount)?,
                category: text("goodsCategory"),
            })
        })();
        match line {
            Some(l) => goods.push(l),
            None => {
                return reply(
                    result("F", "PARAM_ILLEGAL", &format!("order.goods[{i}] invalid")),
                    false,
                );
            }
        }
    }
    let basket = crate::money::basket::Basket {
        goods,
        ..Default::default()
    };
    if let Err(e) = basket.check(amount) {
        return reply(
            result("F", "PARAM_ILLEGAL", &format!("{}: {}", e.field, e.why)),
            false,
        );
    }
    let pay = PayRequest {
        request_id: request_id.to_string(),
        code,
        amount,
        subject: request
            .pointer("/order/orderDescription")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        terminal_id: request
            .pointer("/order/env/storeTerminalId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        store_id: None,
        signing_key: None,
        basket,
        signed: None,
    };
    let scenario = scenario(pay.code.expose());
    let outcome = server.sandbox.pay_after_delay(&pay).await;
    let paid = |payment_id: &str| {
        let mut v = result("S", "SUCCESS", "success");
        v["paymentRequestId"] = json!(request_id);
        v["paymentId"] = json!(payment_id);
        v["paymentAmount"] = amount_json(&amount);
        v["paymentCreateTime"] = json!(now_iso());
        v["paymentTime"] = json!(now_iso());
        v
    };
    match outcome {
        Outcome::Unknown(_) if scenario == Scenario::SystemErrorButPaid => reply(
            result("F", "SYSTEM_ERROR", "system error, contact support"),
            false,
        ),
        Outcome::Success(p) => reply(paid(&p.trade_id), false),
        Outcome::Failed(f) => reply(result("F", ams_code(&f.code), &f.message), false),
        Outcome::Unknown(u) => match u.kind {
            UnknownKind::BuyerConfirming => {
                let mut v = result("U", "PAYMENT_IN_PROCESS", "payment in process");
                v["paymentRequestId"] = json!(request_id);
                reply(v, false)
            }
            UnknownKind::ConnectionLost => Err(DropConnection),
            UnknownKind::BadSignature => {
                reply(paid(&server.trade_no(request_id).unwrap_or_default()), true)
            }
            _ => reply(
                result("U", "UNKNOWN_EXCEPTION", "system busy, result unknown"),
                false,
            ),
        },
        Outcome::NotSent(_) | Outcome::Rejected(_) => Err(DropConnection),
    }
}

/// A member's auto-debit (docs/protocol.md §18): `paymentMethodId` must be an access token
/// the sandbox issued, unexpired and not revoked, for the `paymentMethodType` it names, and
/// `paymentExpiryTime` at most a minute ahead. Like the code table of scanned codes, the
/// amount's last two minor digits choose: `01` insufficient balance (not charged), `05`
/// answers `U` although it was charged; any other is paid.
fn agreement_pay(
    server: &SandboxServer,
    request: &Value,
    request_id: &str,
    amount: crate::money::Amount,
) -> Value {
    let token = request
        .pointer("/paymentMethod/paymentMethodId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let wallet = request
        .pointer("/paymentMethod/paymentMethodType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Err(why) = server.authorizations.access_ok(token, wallet) {
        return result("F", "INVALID_ACCESS_TOKEN", why);
    }
    let expiry = request
        .get("paymentExpiryTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let soon = chrono::Utc::now() + chrono::Duration::seconds(65);
    if expiry.is_none_or(|t| t.with_timezone(&chrono::Utc) > soon) {
        return result(
            "F",
            "PARAM_ILLEGAL",
            "paymentExpiryTime: required, at most one minute after the request",
        );
    }
    let subject = request
        .pointer("/order/orderDescription")
        .and_then(Value::as_str)
        .unwrap_or("");
    if amount.minor() % 100 == 1 {
        return result(
            "F",
            "USER_BALANCE_NOT_ENOUGH",
            "the member's balance is not enough",
        );
    }
    match server.sandbox.decide_agreement(request_id, amount, subject) {
        Outcome::Success(_) if amount.minor() % 100 == 5 => {
            result("U", "UNKNOWN_EXCEPTION", "system busy, result unknown")
        }
        Outcome::Success(p) => {
            let mut v = result("S", "SUCCESS", "success");
            v["paymentRequestId"] = json!(request_id);
            v["paymentId"] = json!(p.trade_id);
            v["paymentAmount"] = amount_json(&amount);
            v["paymentCreateTime"] = json!(now_iso());
            v["paymentTime"] = json!(now_iso());
            v
        }
        Outcome::Failed(f) => result("F", ams_code(&f.code), &f.message),
        _ => result("U", "UNKNOWN_EXCEPTION", "system busy, result unknown"),
    }
}

/// A merchant-presented `pay` (docs/protocol.md §17): the code is issued, never paid. The
/// answer's field names follow the documented sample; `orderCodeForm` and
/// `redirectActionForm` are read back by `gateway::alipay_ams::wire::present_outcome`.
fn present(
    server: &SandboxServer,
    request: &Value,
    request_id: &str,
    amount: crate::money::Amount,
    in_store: &str,
) -> Value {
    let how = if in_store == "EntryCode" {
        match request
            .pointer("/order/env/userAgent")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            Some(ua) => crate::gateway::Presentation::EntryCode {
                user_agent: ua.to_string(),
            },
            None => {
                return result(
                    "F",
                    "PARAM_ILLEGAL",
                    "EntryCode needs order.env.userAgent of the wallet's browser",
                );
            }
        }
    } else {
        crate::gateway::Presentation::OrderCode
    };
    let now = chrono::Utc::now();
    let expires_in = request
        .get("paymentExpiryTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| (t.with_timezone(&chrono::Utc) - now).to_std().ok())
        .unwrap_or(std::time::Duration::from_secs(600));
    let present = crate::gateway::PresentRequest {
        request_id: request_id.to_string(),
        wallet: Wallet::AlipayPlus,
        how: how.clone(),
        amount,
        subject: request
            .pointer("/order/orderDescription")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        terminal_id: String::new(),
        store_id: None,
        signing_key: None,
        basket: Default::default(),
        expires_in,
    };
    match server.sandbox.decide_present(&present) {
        Outcome::Success(p) => {
            server.notify.remember(
                request_id,
                request
                    .get("paymentNotifyUrl")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                super::notify::Protocol::Ams,
            );
            let expire = p.expires_at.map(|t| {
                t.with_timezone(&beijing())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            });
            let mut v = match how {
                crate::gateway::Presentation::OrderCode => {
                    let mut v = result("U", "PAYMENT_IN_PROCESS", "payment in process");
                    v["orderCodeForm"] = json!({
                        "expireTime": expire,
                        "codeDetails": [
                            {"codeValue": p.content, "codeValueType": "URL", "displayType": "TEXT"},
                        ],
                    });
                    v
                }
                crate::gateway::Presentation::EntryCode { .. } => {
                    let mut v = result("S", "SUCCESS", "success");
                    v["redirectActionForm"] = json!({"method": "GET", "redirectUrl": p.content});
                    v
                }
            };
            v["paymentRequestId"] = json!(request_id);
            v["paymentId"] = json!(server.trade_no(request_id));
            v["paymentAmount"] = amount_json(&amount);
            v["paymentCreateTime"] = json!(now_iso());
            v
        }
        Outcome::Failed(f) => result("F", ams_code(&f.code), &f.message),
        _ => result("U", "UNKNOWN_EXCEPTION", "system busy, result unknown"),
    }
}

/// The request id named by `paymentRequestId`, or found through `paymentId`.
fn request_id_of(server: &SandboxServer, request_id: &str, payment_id: &str) -> String {
    if !request_id.is_empty() {
        return request_id.to_string();
    }
    server
        .sandbox
        .request_id_of_trade(payment_id)
        .unwrap_or_default()
}

async fn inquiry(server: &SandboxServer, request_id: &str, payment_id: &str) -> Value {
    let request_id = request_id_of(server, request_id, payment_id);
    let status = |status: &str| {
        let mut v = result("S", "SUCCESS", "success");
        v["paymentRequestId"] = json!(request_id);
        v["paymentStatus"] = json!(status);
        v["paymentId"] = json!(server.trade_no(&request_id));
        v
    };
    match server.sandbox.inquire(&request_id).await {
        Outcome::Success(TradeStatus::Paid(p)) => {
            let mut v = status("SUCCESS");
            v["paymentAmount"] = p.amount.map(|a| amount_json(&a)).unwrap_or(Value::Null);
            v["paymentTime"] = json!(now_iso());
            v
        }
        Outcome::Success(TradeStatus::Waiting) => status("PROCESSING"),
        // Paid, then given back by a cancel: cancelled, with the time it was paid.
        Outcome::Success(TradeStatus::Reversed(p)) => {
            let mut v = status("CANCELLED");
            v["paymentAmount"] = p.amount.map(|a| amount_json(&a)).unwrap_or(Value::Null);
            v["paymentTime"] = json!(now_iso());
            v["paymentResultCode"] = json!("ORDER_IS_CANCELED");
            v
        }
        Outcome::Success(TradeStatus::Closed(f)) => {
            let cancelled = matches!(f.code.as_str(), "TRADE_HAS_CLOSE" | "TRADE_CLOSED");
            let mut v = status(if cancelled { "CANCELLED" } else { "FAIL" });
            v["paymentResultCode"] = json!(ams_code(&f.code));
            v["paymentResultMessage"] = json!(f.message);
            v
        }
        _ => result("F", "ORDER_NOT_EXIST", "no such payment"),
    }
}

async fn cancel(server: &SandboxServer, request_id: &str, payment_id: &str) -> Value {
    let request_id = request_id_of(server, request_id, payment_id);
    if request_id.is_empty() {
        return result(
            "F",
            "PARAM_ILLEGAL",
            "paymentRequestId or paymentId required",
        );
    }
    match server.sandbox.cancel(&request_id).await {
        Outcome::Success(Cancelled::NotCreated { .. }) => {
            result("F", "ORDER_NOT_EXIST", "no such payment")
        }
        Outcome::Success(Cancelled::Closed | Cancelled::Refunded) => {
            let mut v = result("S", "SUCCESS", "success");
            v["paymentRequestId"] = json!(request_id);
            v["paymentId"] = json!(server.trade_no(&request_id));
            v["cancelTime"] = json!(now_iso());
            v
        }
        Outcome::Failed(f) => result("F", ams_code(&f.code), &f.message),
        _ => result("U", "UNKNOWN_EXCEPTION", "retry"),
    }
}

async fn refund(server: &SandboxServer, request: &Value) -> Value {
    let refund_id = request
        .get("refundRequestId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let payment_id = request
        .get("paymentId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(amount) = request.get("refundAmount").and_then(parse_amount) else {
        return result("F", "PARAM_ILLEGAL", "refundAmount invalid");
    };
    let Some(request_id) = server.sandbox.request_id_of_trade(payment_id) else {
        return result("F", "ORDER_NOT_EXIST", "no such payment");
    };
    if refund_id.is_empty() {
        return result("F", "PARAM_ILLEGAL", "refundRequestId required");
    }
    let r = RefundRequest {
        refund_id: refund_id.to_string(),
        payment_request_id: request_id,
        trade_id: Some(payment_id.to_string()),
        amount,
        reason: None,
    };
    match server.sandbox.refund(&r).await {
        Outcome::Success(done) => {
            let mut v = result("S", "SUCCESS", "success");
            v["refundRequestId"] = json!(refund_id);
            v["refundId"] = json!(done.provider_refund_id);
            v["paymentId"] = json!(payment_id);
            v["refundAmount"] = amount_json(&amount);
            v["refundTime"] = json!(now_iso());
            v
        }
        Outcome::Failed(f) => result("F", ams_code(&f.code), &f.message),
        _ => result("U", "UNKNOWN_EXCEPTION", "retry"),
    }
}

fn inquiry_refund(server: &SandboxServer, refund_id: &str) -> Value {
    match server.sandbox.find_refund(refund_id) {
        Some((_, payment_id, amount)) => {
            let mut v = result("S", "SUCCESS", "success");
            v["refundRequestId"] = json!(refund_id);
            v["refundStatus"] = json!("SUCCESS");
            v["paymentId"] = json!(payment_id);
            v["refundAmount"] = amount_json(&amount);
            v
        }
        None => result("F", "ORDER_NOT_EXIST", "no such refund"),
    }
}

/// The answer with `client-id`, `response-time` and `signature` headers; with
/// `bad_signature` the signature is over other bytes.
fn signed(
    server: &SandboxServer,
    path: &str,
    content: Value,
    bad_signature: bool,
) -> Response<Full<Bytes>> {
    let body = content.to_string();
    let time = chrono::Utc::now().timestamp_millis().to_string();
    let mut signed_body = sign_content("POST", path, &server.client_id, &time, &body);
    if bad_signature {
        signed_body.push(' ');
    }
    let sig = signature_header(
        1,
        &server
            .gateway_key
            .sign_sha256_base64(signed_body.as_bytes()),
    );
    let mut response = plain(StatusCode::OK, "application/json; charset=UTF-8", body);
    for (name, value) in [
        ("client-id", server.client_id.as_str()),
        ("response-time", &time),
        ("signature", &sig),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// The `keyVersion=` of a `Signature` header.
fn key_version(header: &str) -> Option<u32> {
    let (_, rest) = header.split_once("keyVersion=")?;
    rest.split(',').next()?.trim().parse().ok()
}
