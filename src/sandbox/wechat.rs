//! The sandbox as a WeChat Pay APIv3 server (docs/protocol.md §15, docs/gateways.md §8): the
//! merchant's `WECHATPAY2-SHA256-RSA2048` signature verified (a bad one, a stale timestamp,
//! another mchid or serial get an unsigned `401 SIGN_ERROR`), answers signed with the
//! sandbox's platform key (under the certificate serial, or the public-key id when the request
//! asks for it), `/v3/certificates` encrypted with the APIv3 key, decisions from the code table
//! of [`super`] (WeChat endings: `09` a system error with nothing created, `14` a `429`).
//!
//! Unpaid orders are revoked at 45 s. Where no source says what WeChat Pay does, the default
//! is one reading and [`WechatModes`] switches to the other (docs/gateways.md §8.7).

use std::str::FromStr;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::server::{Answer, DropConnection, SandboxServer};
use super::{Scenario, scenario};
use crate::gateway::wechat_pay::wire::{self, CodepayBody, RefundBody, ReverseBody};
use crate::gateway::{
    Cancelled, Gateway, Outcome, PayRequest, RefundRequest, TradeStatus, UnknownKind,
};
use crate::money::{Amount, Currency};
use crate::paycode::{Scan, Wallet, recognise};

/// WeChat Pay revokes an unpaid code-pay order this long after it was created.
pub const WECHAT_AUTO_REVOKE: std::time::Duration = std::time::Duration::from_secs(45);
/// A refund answers `PROCESSING` until this long after it was made, then `SUCCESS`.
const REFUND_PROCESSING: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// The behaviours no source confirms, switched (docs/gateways.md §8.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WechatModes {
    /// 202 answers `{"code":"USER_PAYING",…}` instead of `{"trade_state":"USERPAYING"}`.
    pub userpaying_code: bool,
    /// 202 answers carry no signature.
    pub unsigned_202: bool,
    /// Every 4xx answer is unsigned (business failures too).
    pub unsigned_errors: bool,
    /// A reverse while the customer confirms answers `429 FREQUENCY_LIMITED`, not
    /// `400 USERPAYING`.
    pub reverse_429: bool,
    /// A reverse of an order never created answers 200, not `404 ORDER_NOT_EXIST`.
    pub reverse_unknown_200: bool,
    /// A reversed paid order's query drops `transaction_id` and `success_time`.
    pub revoked_bare: bool,
    /// Every 200 carries a `WECHATPAY/SIGNTEST/` probe signature.
    pub probe: bool,
}

impl FromStr for WechatModes {
    type Err = String;

    /// A comma-separated list of mode names (`unsigned-202,reverse-429`); empty for none.
    fn from_str(text: &str) -> Result<WechatModes, String> {
        let mut m = WechatModes::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let flag = match name {
                "userpaying-code" => &mut m.userpaying_code,
                "unsigned-202" => &mut m.unsigned_202,
                "unsigned-errors" => &mut m.unsigned_errors,
                "reverse-429" => &mut m.reverse_429,
                "reverse-unknown-200" => &mut m.reverse_unknown_200,
                "revoked-bare" => &mut m.revoked_bare,
                "probe" => &mut m.probe,
                other => {
                    return Err(format!(
                        "unknown WeChat Pay mode {other:?}: use userpaying-code, unsigned-202, unsigned-errors, reverse-429, reverse-unknown-200, revoked-bare, probe"
                    ));
                }
            };
            *flag = true;
        }
        Ok(m)
    }
}

pub(super) fn is_wechat_path(path: &str) -> bool {
    path.starts_with("/v3/")
}

/// How an answer is signed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sign {
    Yes,
    No,
    /// Signed, then one byte of the signature changed (code `08`).
    Bad,
}

struct Ctx<'a> {
    server: &'a SandboxServer,
    /// The key id to sign under: what the request's `Wechatpay-Serial` asked for, if we hold
    /// it, else the certificate.
    serial: String,
}

impl Ctx<'_> {
    fn respond(&self, status: StatusCode, body: Vec<u8>, sign: Sign) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(body.clone())));
        *response.status_mut() = status;
        let h = response.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        if let Ok(v) =
            hyper::header::HeaderValue::from_str(&format!("SBX{:016X}", rand::random::<u64>()))
        {
            h.insert("request-id", v);
        }
        if sign == Sign::No {
            return response;
        }
        let now = self.server.sandbox.now();
        let mut signed = wire::sign_answer(&self.server.wechat_key, &self.serial, &body, now);
        if sign == Sign::Bad
            && let Some(sig) = signed.signature.as_mut()
        {
            *sig = corrupt(sig);
        }
        if self.server.wechat_modes.probe && status == StatusCode::OK {
            signed.signature = Some(format!(
                "{}{}",
                wire::PROBE_PREFIX,
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            ));
        }
        for (name, value) in [
            (wire::H_TIMESTAMP, signed.timestamp),
            (wire::H_NONCE, signed.nonce),
            (wire::H_SIGNATURE, signed.signature),
            (wire::H_SERIAL, signed.serial),
        ] {
            if let Some(v) = value.and_then(|v| hyper::header::HeaderValue::from_str(&v).ok()) {
                h.insert(name, v);
            }
        }
        response
    }

    fn json(&self, status: StatusCode, value: Value, sign: Sign) -> Response<Full<Bytes>> {
        self.respond(status, value.to_string().into_bytes(), sign)
    }

    /// An error body; 4xx business answers are signed unless switched off, 401 and 5xx never.
    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
        let sign = if status == StatusCode::UNAUTHORIZED
            || status.is_server_error()
            || self.server.wechat_modes.unsigned_errors
        {
            Sign::No
        } else {
            Sign::Yes
        };
        self.json(status, json!({"code": code, "message": message}), sign)
    }
}

fn corrupt(signature: &str) -> String {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .unwrap_or_default();
    if let Some(b) = bytes.first_mut() {
        *b ^= 0x01;
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unauthorized(message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        json!({"code": "SIGN_ERROR", "message": message}).to_string(),
    )));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// One APIv3 request: authenticated, then routed.
pub(super) async fn handle(
    server: &SandboxServer,
    method: &Method,
    path: &str,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let Some(auth) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(wire::parse_authorization)
    else {
        return Ok(unauthorized(
            "错误的签名，验签失败 (Authorization missing or not WECHATPAY2-SHA256-RSA2048)",
        ));
    };
    // The timestamp window is checked before the signature, as the service does.
    let now = server.sandbox.now().timestamp();
    match auth.timestamp.parse::<i64>() {
        Ok(ts) if (now - ts).abs() <= wire::MAX_SKEW_S => {}
        _ => {
            return Ok(unauthorized(
                "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟",
            ));
        }
    }
    if auth.mchid != super::keys::WECHAT_MCHID {
        return Ok(unauthorized("商户号不存在 (unknown mchid)"));
    }
    if !auth
        .serial_no
        .eq_ignore_ascii_case(super::keys::WECHAT_MERCHANT_SERIAL)
    {
        return Ok(unauthorized("商户证书序列号有误 (unknown serial_no)"));
    }
    let Ok(body_text) = std::str::from_utf8(body) else {
        return Ok(unauthorized("body is not UTF-8"));
    };
    let message = wire::request_message(
        method.as_str(),
        target,
        &auth.timestamp,
        &auth.nonce,
        body_text,
    );
    if !server.merchant_signed(None, message.as_bytes(), &auth.signature) {
        return Ok(unauthorized("错误的签名，验签失败"));
    }
    let asked = headers
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let serial = if asked.eq_ignore_ascii_case(&server.wechat_public_key_id) {
        server.wechat_public_key_id.clone()
    } else {
        server.wechat_cert_serial.clone()
    };
    let ctx = Ctx { server, serial };
    if headers.get(hyper::header::USER_AGENT).is_none() {
        return Ok(ctx.error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Http头缺少Accept或User-Agent",
        ));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["v3", "certificates"]) => Ok(certificates(&ctx)),
        (&Method::POST, ["v3", "pay", "transactions", "codepay"]) => pay(&ctx, body).await,
        (&Method::GET, ["v3", "pay", "transactions", "out-trade-no", no]) => {
            if !target.ends_with(&format!("?mchid={}", super::keys::WECHAT_MCHID)) {
                return Ok(param_error(&ctx, "mchid 必填且须与商户号一致"));
            }
            Ok(query(&ctx, no).await)
        }
        (&Method::POST, ["v3", "pay", "transactions", "out-trade-no", no, "reverse"]) => {
            Ok(reverse(&ctx, no, body).await)
        }
        (&Method::POST, ["v3", "pay", "transactions", "out-trade-no", _, "close"]) => Ok(ctx
            .error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "订单的支付场景不支持该请求 (code pay is reversed, not closed)",
            )),
        (&Method::POST, ["v3", "refund", "domestic", "refunds"]) => Ok(refund(&ctx, body).await),
        (&Method::GET, ["v3", "refund", "domestic", "refunds", no]) => Ok(refund_query(&ctx, no)),
        (&Method::GET, ["v3", "bill", "tradebill"]) => Ok(trade_bill(&ctx, target, headers)),
        (&Method::GET, ["v3", "billdownload", "file"]) => Ok(bill_file(&ctx, target)),
        (_, ["v3", ..]) if known_path(&segments) => Ok(empty(StatusCode::METHOD_NOT_ALLOWED)),
        _ => Ok(empty(StatusCode::NOT_FOUND)),
    }
}

fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["v3", "certificates"]
            | ["v3", "pay", "transactions", "codepay"]
            | ["v3", "refund", "domestic", "refunds", ..]
            | ["v3", "pay", "transactions", "out-trade-no", ..]
    )
}

fn certificates(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let s = ctx.server;
    let nonce: String = wire::nonce().chars().take(12).collect();
    let Ok(sealed) = wire::encrypt(
        s.wechat_apiv3_key.as_bytes(),
        &nonce,
        "certificate",
        s.wechat_cert_pem.as_bytes(),
    ) else {
        return ctx.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "cannot encrypt",
        );
    };
    let validity = crate::gateway::wechat_pay::cert::parse_pem(&s.wechat_cert_pem, "sandbox")
        .ok()
        .and_then(|k| k.not_after);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&crate::clock::beijing()).to_rfc3339();
    // The list is signed with the certificate itself, whatever the request asked.
    let cert_ctx = Ctx {
        server: s,
        serial: s.wechat_cert_serial.clone(),
    };
    cert_ctx.json(
        StatusCode::OK,
        json!({"data": [{
            "serial_no": s.wechat_cert_serial,
            "effective_time": fmt(s.sandbox.now()),
            "expire_time": validity.map(fmt),
            "encrypt_certificate": sealed,
        }]}),
        Sign::Yes,
    )
}

fn param_error(ctx: &Ctx<'_>, what: &str) -> Response<Full<Bytes>> {
    ctx.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", what)
}

fn cny(minor: i64) -> Option<Amount> {
    Currency::from_code("CNY")
        .ok()
        .map(|c| Amount::from_minor(minor, c))
}

fn out_trade_no_ok(no: &str) -> bool {
    (1..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'))
}

async fn pay(ctx: &Ctx<'_>, body: &[u8]) -> Answer {
    let b: CodepayBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        // Like the service: a field it does not define is refused.
        Err(e) => {
            return Ok(param_error(
                ctx,
                &format!("请求中含有未在API文档中定义的参数或格式错误: {e}"),
            ));
        }
    };
    if b.appid != super::keys::WECHAT_APPID || b.mchid != super::keys::WECHAT_MCHID {
        return Ok(ctx.error(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        ));
    }
    if !out_trade_no_ok(&b.out_trade_no) {
        return Ok(param_error(
            ctx,
            "out_trade_no 格式错误 (1–32 of [0-9A-Za-z_-*])",
        ));
    }
    if b.description.is_empty() || b.description.chars().count() > 127 {
        return Ok(param_error(ctx, "description 长度错误"));
    }
    if b.scene_info.store_info.id.is_none() && b.scene_info.store_info.out_id.is_none() {
        return Ok(param_error(ctx, "scene_info.store_info: id 或 out_id 必填"));
    }
    if b.amount.total <= 0 || b.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
        return Ok(param_error(ctx, "amount 错误"));
    }
    let code = match recognise(&b.payer.auth_code) {
        Scan::Payment(c) if c.wallet() == Wallet::WechatPay => c,
        _ => return Ok(param_error(ctx, "auth_code 格式错误 (18 digits, 10–15)")),
    };
    let Some(amount) = cny(b.amount.total) else {
        return Ok(param_error(ctx, "amount 错误"));
    };
    let request = PayRequest {
        request_id: b.out_trade_no.clone(),
        code,
        amount,
        subject: b.description.clone(),
        terminal_id: b.scene_info.device_id.clone().unwrap_or_default(),
        store_id: b.scene_info.store_info.out_id.clone(),
        signing_key: None,
        basket: Default::default(),
        signed: None,
    };
    let scenario = scenario(request.code.expose());
    let first = ctx.server.sandbox.pay_calls(&request.request_id) == 0;
    let outcome = ctx.server.sandbox.pay_after_delay(&request).await;
    let tx = |trade_no: &str, state: &str| {
        let mut t = json!({
            "appid": b.appid, "mchid": b.mchid, "out_trade_no": b.out_trade_no,
            "trade_type": "MICROPAY", "trade_state": state,
        });
        if state == "SUCCESS" {
            t["transaction_id"] = json!(trade_no);
            t["trade_state_desc"] = json!("支付成功");
            t["bank_type"] = json!("OTHERS");
            t["success_time"] = json!(rfc3339(ctx.server.sandbox.now()));
            t["payer"] = json!({"openid": "oSBX0000000000000000000000000"});
            t["amount"] = json!({"total": b.amount.total, "payer_total": b.amount.total, "currency": "CNY", "payer_currency": "CNY"});
        }
        t
    };
    match outcome {
        Outcome::Success(p) => Ok(ctx.json(StatusCode::OK, tx(&p.trade_id, "SUCCESS"), Sign::Yes)),
        Outcome::Failed(f) => {
            let (status, code, message) = match f.code.as_str() {
                "BUYER_BALANCE_NOT_ENOUGH" => (StatusCode::FORBIDDEN, "NOT_ENOUGH", "用户余额不足"),
                "PAYMENT_AUTH_CODE_INVALID" if f.message.contains("already used") => (
                    StatusCode::FORBIDDEN,
                    "TRADE_ERROR",
                    "101 每个二维码仅限使用一次,请刷新再试",
                ),
                "PAYMENT_AUTH_CODE_INVALID" => (
                    StatusCode::FORBIDDEN,
                    "TRADE_ERROR",
                    "101 付款码已过期,请刷新再试",
                ),
                "CONTEXT_INCONSISTENT" => {
                    (StatusCode::FORBIDDEN, "OUT_TRADE_NO_USED", "商户订单号重复")
                }
                _ => (StatusCode::BAD_REQUEST, "ORDER_CLOSED", "订单已关闭"),
            };
            Ok(ctx.error(status, code, message))
        }
        Outcome::Unknown(u) => match u.kind {
            UnknownKind::BuyerConfirming => {
                let sign = if ctx.server.wechat_modes.unsigned_202 {
                    Sign::No
                } else {
                    Sign::Yes
                };
                let body = if ctx.server.wechat_modes.userpaying_code {
                    json!({"code": "USER_PAYING", "message": "用户支付中，需要输入密码"})
                } else {
                    json!({"trade_state": "USERPAYING"})
                };
                Ok(ctx.json(StatusCode::ACCEPTED, body, sign))
            }
            UnknownKind::ConnectionLost => Err(DropConnection),
            UnknownKind::BadSignature => {
                let trade_no = ctx.server.trade_no(&b.out_trade_no).unwrap_or_default();
                Ok(ctx.json(StatusCode::OK, tx(&trade_no, "SUCCESS"), Sign::Bad))
            }
            _ if first && scenario == Scenario::RateLimited => Ok(ctx.error(
                StatusCode::TOO_MANY_REQUESTS,
                "FREQUENCY_LIMITED",
                "频率超限，请降低请求频率",
            )),
            _ => Ok(ctx.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SYSTEM_ERROR",
                "系统繁忙,请稍后重试",
            )),
        },
        Outcome::NotSent(_) | Outcome::Rejected(_) => Err(DropConnection),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&crate::clock::beijing()).to_rfc3339()
}

async fn query(ctx: &Ctx<'_>, no: &str) -> Response<Full<Bytes>> {
    let status = Gateway::inquire(ctx.server.sandbox.as_ref(), no).await;
    let base = json!({"appid": super::keys::WECHAT_APPID, "mchid": super::keys::WECHAT_MCHID, "out_trade_no": no, "trade_type": "MICROPAY"});
    let with = |state: &str, desc: &str, paid: Option<&crate::gateway::Paid>| {
        let mut t = base.clone();
        t["trade_state"] = json!(state);
        t["trade_state_desc"] = json!(desc);
        if let Some(p) = paid {
            t["transaction_id"] = json!(p.trade_id);
            t["success_time"] = json!(ctx.server.sandbox.paid_at(no).map(rfc3339));
            t["bank_type"] = json!("OTHERS");
            if let Some(a) = p.amount {
                t["amount"] = json!({"total": a.minor(), "payer_total": a.minor(), "currency": "CNY", "payer_currency": "CNY"});
            }
        }
        t
    };
    let body = match status {
        Outcome::Success(TradeStatus::Paid(p)) => with("SUCCESS", "支付成功", Some(&p)),
        Outcome::Success(TradeStatus::Waiting) => with("USERPAYING", "需要用户输入支付密码", None),
        Outcome::Success(TradeStatus::Reversed(p)) => {
            if ctx.server.wechat_modes.revoked_bare {
                with("REVOKED", "已撤销", None)
            } else {
                with("REVOKED", "已撤销", Some(&p))
            }
        }
        Outcome::Success(TradeStatus::Closed(f)) => match f.code.as_str() {
            "TRADE_HAS_CLOSE" | "REVOKED" => with("REVOKED", "已撤销", None),
            _ => with("PAYERROR", "支付失败", None),
        },
        _ => {
            return ctx.error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在");
        }
    };
    ctx.json(StatusCode::OK, body, Sign::Yes)
}

async fn reverse(ctx: &Ctx<'_>, no: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let b: ReverseBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return param_error(
                ctx,
                &format!("请求中含有未在API文档中定义的参数或格式错误: {e}"),
            );
        }
    };
    if b.appid != super::keys::WECHAT_APPID || b.mchid != super::keys::WECHAT_MCHID {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        );
    }
    if ctx.server.sandbox.still_confirming(no) {
        return if ctx.server.wechat_modes.reverse_429 {
            ctx.error(
                StatusCode::TOO_MANY_REQUESTS,
                "FREQUENCY_LIMITED",
                "你的操作过于频繁，请稍后再试",
            )
        } else {
            ctx.error(
                StatusCode::BAD_REQUEST,
                "USERPAYING",
                "正在支付中不能发起撤销",
            )
        };
    }
    let done = json!({"appid": b.appid, "mchid": b.mchid, "out_trade_no": no});
    match Gateway::cancel(ctx.server.sandbox.as_ref(), no).await {
        // The id is now closed for good either way; what it answers is switched.
        Outcome::Success(Cancelled::NotCreated { .. })
            if !ctx.server.wechat_modes.reverse_unknown_200 =>
        {
            ctx.error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在")
        }
        Outcome::Success(_) => ctx.json(StatusCode::OK, done, Sign::Yes),
        Outcome::Failed(f) => ctx.error(StatusCode::FORBIDDEN, "TRADE_ERROR", &f.message),
        _ => ctx.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统繁忙,请稍后重试",
        ),
    }
}

fn refund_body(ctx: &Ctx<'_>, out_trade_no: &str, refund_id: &str, amount: Amount) -> Value {
    let made = ctx.server.sandbox.refund_made_at(out_trade_no, refund_id);
    let status = match made {
        Some(at) if ctx.server.sandbox.now() - at >= REFUND_PROCESSING => "SUCCESS",
        _ => "PROCESSING",
    };
    let trade_no = ctx.server.trade_no(out_trade_no).unwrap_or_default();
    let total = ctx
        .server
        .sandbox
        .ledger()
        .into_iter()
        .find(|e| e.request_id == out_trade_no)
        .map(|e| e.charged_minor)
        .unwrap_or_default();
    json!({
        "refund_id": format!("{trade_no}-{refund_id}"), "out_refund_no": refund_id,
        "transaction_id": trade_no, "out_trade_no": out_trade_no, "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱", "create_time": made.map(rfc3339),
        "success_time": (status == "SUCCESS").then(|| made.map(rfc3339)),
        "status": status, "funds_account": "AVAILABLE",
        "amount": {"total": total, "refund": amount.minor(), "payer_total": total, "payer_refund": amount.minor(), "currency": "CNY"},
    })
}

async fn refund(ctx: &Ctx<'_>, body: &[u8]) -> Response<Full<Bytes>> {
    let b: RefundBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return param_error(
                ctx,
                &format!("请求中含有未在API文档中定义的参数或格式错误: {e}"),
            );
        }
    };
    if b.out_refund_no.is_empty() || b.out_refund_no.len() > 64 || b.amount.currency != "CNY" {
        return param_error(ctx, "out_refund_no or amount.currency");
    }
    let Some(amount) = cny(b.amount.refund) else {
        return param_error(ctx, "amount.refund");
    };
    let total = ctx
        .server
        .sandbox
        .ledger()
        .into_iter()
        .find(|e| e.request_id == b.out_trade_no)
        .map(|e| e.charged_minor);
    if total.is_some_and(|t| t != b.amount.total) {
        return param_error(ctx, "amount.total 与原订单金额不一致");
    }
    let request = RefundRequest {
        refund_id: b.out_refund_no.clone(),
        payment_request_id: b.out_trade_no.clone(),
        trade_id: None,
        amount,
        reason: b.reason.clone(),
    };
    match Gateway::refund(ctx.server.sandbox.as_ref(), &request).await {
        Outcome::Success(_) => ctx.json(
            StatusCode::OK,
            refund_body(ctx, &b.out_trade_no, &b.out_refund_no, amount),
            Sign::Yes,
        ),
        Outcome::Failed(f) => match f.code.as_str() {
            "TRADE_NOT_EXIST" => {
                ctx.error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在")
            }
            _ => ctx.error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &f.message),
        },
        _ => ctx.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统繁忙,请稍后重试",
        ),
    }
}

fn refund_query(ctx: &Ctx<'_>, refund_id: &str) -> Response<Full<Bytes>> {
    match ctx.server.sandbox.find_refund(refund_id) {
        Some((request_id, _, amount)) => ctx.json(
            StatusCode::OK,
            refund_body(ctx, &request_id, refund_id, amount),
            Sign::Yes,
        ),
        None => ctx.error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
}

fn query_value(target: &str, key: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The bill file of a day, from the ledger's WeChat Pay trades.
fn bill_bytes(server: &SandboxServer, date: chrono::NaiveDate) -> Vec<u8> {
    let (from, to) = crate::clock::beijing_day(date);
    let lines = server.sandbox.bill_of(from, to, true);
    crate::gateway::wechat_pay::bill::write(
        super::keys::WECHAT_APPID,
        super::keys::WECHAT_MCHID,
        &lines,
    )
}

/// `GET /v3/bill/tradebill?bill_date=…`: the file's link and its SHA-1, signed.
fn trade_bill(ctx: &Ctx<'_>, target: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
    use sha1::Digest as _;
    let Some(date) = query_value(target, "bill_date")
        .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
    else {
        return param_error(ctx, "bill_date 格式错误 (YYYY-MM-DD)");
    };
    // Like the Open Platform sandbox's, today's bill is served too (what is booked so far).
    let bytes = bill_bytes(ctx.server, date);
    let hash: String = sha1::Sha1::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    ctx.json(
        StatusCode::OK,
        json!({
            "hash_type": "SHA1",
            "hash_value": hash,
            "download_url": format!("http://{host}/v3/billdownload/file?token={}", date.format("%Y-%m-%d")),
        }),
        Sign::Yes,
    )
}

fn bill_file(ctx: &Ctx<'_>, target: &str) -> Response<Full<Bytes>> {
    let Some(date) = query_value(target, "token")
        .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
    else {
        return param_error(ctx, "token");
    };
    let mut response = Response::new(Full::new(Bytes::from(bill_bytes(ctx.server, date))));
    if let Ok(v) = hyper::header::HeaderValue::from_str("text/csv; charset=utf-8") {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests;
