//! The sandbox as an Open Platform server: `POST /gateway.do` with form parameters, the
//! merchant's RSA2 signature verified (a wrong one gets the real `40002
//! isv.invalid-signature` answer), answers signed with the sandbox's own key, decisions from
//! the code table of [`super`].
//!
//! Codes `06` (slow), `07` (connection dropped) and `08` (bad signature) are played out on
//! the wire: the answer is delayed, the connection is closed without an answer, the answer's
//! signature is wrong.
//!
//! Like the platform, it honours the request's `charset` (UTF-8 or GBK, read from the query):
//! the form is decoded in it, the signature is checked over the signing string's bytes in it,
//! and the answer is written and signed in it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::Response;
use hyper::StatusCode;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::bill::download_url;
use super::form::{Charset, decode_form};
use super::server::{Answer, DropConnection, SandboxServer, encoded, plain};
use super::{Scenario, scenario};
use crate::clock::beijing;
use crate::gateway::alipay_openapi::CERT_DOWNLOAD_METHOD;
use crate::gateway::alipay_openapi::wire::{
    parse_amount, read_basket, response_node, sign_content,
};
use crate::gateway::{Cancelled, Outcome, PayRequest, RefundRequest, TradeStatus, UnknownKind};
use crate::money::breakdown::Breakdown;
use crate::paycode::{Scan, Wallet, recognise};

/// The Open Platform method that hands out the day's bill link.
pub const BILL_METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";

impl SandboxServer {
    /// A request to `/gateway.do`: its form read in its charset, then answered.
    pub(super) async fn open_platform(
        &self,
        query: &[u8],
        body: &[u8],
        host: &str,
        peer: SocketAddr,
    ) -> Answer {
        let (params, charset) = match decode_form(query, body) {
            Ok(form) => form,
            Err(refusal) => {
                return Ok(self.unsigned(
                    refusal.charset,
                    invalid_arguments(refusal.sub_code, &refusal.sub_msg),
                ));
            }
        };
        tracing::debug!(%peer, method = params.get("method").map(String::as_str).unwrap_or(""), charset = charset.name(), "sandbox request");
        self.gateway(params, charset, host).await
    }

    async fn gateway(
        &self,
        params: BTreeMap<String, String>,
        charset: Charset,
        host: &str,
    ) -> Answer {
        let method = params.get("method").cloned().unwrap_or_default();
        let reply = Reply {
            node: if method.is_empty() {
                "error_response".to_string()
            } else {
                response_node(&method)
            },
            charset,
        };
        let reject = |code: &str, msg: &str, sub_code: &str, sub_msg: &str| {
            self.answer(
                &reply,
                json!({"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}),
                false,
            )
        };
        for (key, sub) in [
            ("app_id", "isv.missing-app-id"),
            ("method", "isv.missing-method"),
            ("sign", "isv.missing-signature"),
            ("sign_type", "isv.missing-signature-type"),
            ("timestamp", "isv.missing-timestamp"),
            ("version", "isv.missing-version"),
        ] {
            if params.get(key).is_none_or(String::is_empty) {
                return Ok(reject(
                    "40001",
                    "Missing Required Arguments",
                    sub,
                    &format!("missing {key}"),
                ));
            }
        }
        // Refused at the door: the platform cannot tell whose request this is, so it answers
        // in `error_response` without a signature.
        let unsigned = |sub_code: &str, sub_msg: &str| {
            self.unsigned(charset, invalid_arguments(sub_code, sub_msg))
        };
        if params["app_id"] != self.app_id {
            return Ok(unsigned("isv.invalid-app-id", "无效的AppID参数"));
        }
        // Certificate mode (docs/gateways.md §9): the app's certificate and the root bundle
        // are named by SN; a request without them, or naming others, is refused at the door,
        // unsigned: the platform finds the app's key by that SN.
        if let Some(mode) = &self.cert_mode {
            for (key, expected, what) in [
                ("app_cert_sn", &mode.app_cert_sn, "app-cert-sn"),
                (
                    "alipay_root_cert_sn",
                    &mode.root_cert_sn,
                    "alipay-root-cert-sn",
                ),
            ] {
                match params.get(key).filter(|v| !v.is_empty()) {
                    None => {
                        return Ok(unsigned(
                            &format!("isv.missing-{what}"),
                            &format!("the app is in certificate mode: {key} is missing"),
                        ));
                    }
                    Some(v) if v != expected && !(key == "app_cert_sn" && mode.uploaded(v)) => {
                        return Ok(unsigned(
                            &format!("isv.invalid-{what}"),
                            &format!("{key} {v} is not the app's"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if params["sign_type"] != "RSA2" {
            return Ok(reject(
                "40002",
                "Invalid Arguments",
                "isv.invalid-signature-type",
                "use RSA2",
            ));
        }
        // The client signed the signing string's bytes in its declared charset.
        let content = sign_content(&params);
        if !self.merchant_signed(None, &charset.encode(&content), &params["sign"]) {
            // Like the platform, the message quotes what it checked: auth_code included.
            return Ok(unsigned(
                "isv.invalid-signature",
                &format!(
                    "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"
                ),
            ));
        }
        if chrono::NaiveDateTime::parse_from_str(&params["timestamp"], "%Y-%m-%d %H:%M:%S").is_err()
        {
            return Ok(reject(
                "40002",
                "Invalid Arguments",
                "isv.invalid-timestamp",
                "bad timestamp",
            ));
        }
        let biz: Value = match params.get("biz_content").map(|b| serde_json::from_str(b)) {
            Some(Ok(Value::Object(m))) => Value::Object(m),
            _ => {
                return Ok(reject(
                    "40004",
                    "Business Failed",
                    "ACQ.INVALID_PARAMETER",
                    "biz_content is not a JSON object",
                ));
            }
        };
        let field = |k: &str| biz.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if method == BILL_METHOD {
            return Ok(self.bill_url(&reply, &field("bill_type"), &field("bill_date"), host));
        }
        if method == CERT_DOWNLOAD_METHOD {
            return Ok(self.alipay_cert(&reply, &field("alipay_cert_sn")));
        }
        let out_trade_no = field("out_trade_no");
        let id_ok = !out_trade_no.is_empty()
            && out_trade_no.len() <= 64
            && out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Ok(reject(
                "40004",
                "Business Failed",
                "ACQ.INVALID_PARAMETER",
                "out_trade_no missing or invalid",
            ));
        }
        match method.as_str() {
            "alipay.trade.pay" => self.pay(&reply, &biz, out_trade_no).await,
            "alipay.trade.precreate" => {
                self.notify.remember(
                    &out_trade_no,
                    params.get("notify_url").map_or("", String::as_str),
                    super::notify::Protocol::OpenPlatform,
                );
                Ok(self.precreate(&reply, &biz, out_trade_no))
            }
            "alipay.trade.query" => Ok(self.query(&reply, &biz, &out_trade_no).await),
            "alipay.trade.cancel" => Ok(self.cancel(&reply, &out_trade_no).await),
            "alipay.trade.refund" | "alipay.trade.fastpay.refund.query" => {
                let amount = biz.get("refund_amount").and_then(parse_amount);
                let refund_id = field("out_request_no");
                if refund_id.is_empty() {
                    return Ok(reject(
                        "40004",
                        "Business Failed",
                        "ACQ.INVALID_PARAMETER",
                        "out_request_no missing",
                    ));
                }
                let request = |amount| RefundRequest {
                    refund_id: refund_id.clone(),
                    payment_request_id: out_trade_no.clone(),
                    trade_id: None,
                    amount,
                    reason: None,
                };
                if method == "alipay.trade.refund" {
                    let Some(amount) = amount else {
                        return Ok(reject(
                            "40004",
                            "Business Failed",
                            "ACQ.INVALID_PARAMETER",
                            "refund_amount invalid",
                        ));
                    };
                    Ok(self.refund(&reply, request(amount)).await)
                } else {
                    Ok(self.refund_query(&reply, &out_trade_no, &refund_id))
                }
            }
            _ => Ok(reject(
                "40002",
                "Invalid Arguments",
                "isv.invalid-method",
                "unknown method",
            )),
        }
    }

    async fn pay(&self, reply: &Reply, biz: &Value, out_trade_no: String) -> Answer {
        let fail = |sub: &str, msg: &str| {
            Ok(self.answer(
                reply,
                json!({"code": "40004", "msg": "Business Failed", "sub_code": sub, "sub_msg": msg, "out_trade_no": out_trade_no}),
                false,
            ))
        };
        if biz.get("scene").and_then(Value::as_str) != Some("bar_code") {
            return fail("ACQ.INVALID_PARAMETER", "scene must be bar_code");
        }
        let code = match recognise(biz.get("auth_code").and_then(Value::as_str).unwrap_or("")) {
            Scan::Payment(c) if c.wallet() == Wallet::Alipay => c,
            _ => {
                return fail(
                    "ACQ.PAYMENT_AUTH_CODE_INVALID",
                    "auth_code is not an Alipay payment code",
                );
            }
        };
        let amount = match biz.get("total_amount").and_then(parse_amount) {
            Some(a) if a.is_positive() => a,
            _ => return fail("ACQ.INVALID_PARAMETER", "total_amount invalid"),
        };
        if amount.minor() > 10_000_000_000 {
            return fail("ACQ.TOTAL_FEE_EXCEED", "total_amount above 100000000");
        }
        let subject = biz.get("subject").and_then(Value::as_str).unwrap_or("");
        if subject.is_empty() {
            return fail("ACQ.INVALID_PARAMETER", "subject missing");
        }
        // The campaign fields, read as the platform would: they must read, and the goods
        // must come to the total.
        let basket = match read_basket(biz) {
            Ok(b) => b,
            Err(field) => return fail("ACQ.INVALID_PARAMETER", &format!("{field} invalid")),
        };
        if let Err(e) = basket.check(amount) {
            return fail("ACQ.INVALID_PARAMETER", &format!("{}: {}", e.field, e.why));
        }
        let request = PayRequest {
            request_id: out_trade_no.clone(),
            code,
            amount,
            subject: subject.to_string(),
            terminal_id: biz
                .get("terminal_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            store_id: None,
            signing_key: None,
            basket,
            signed: None,
        };
        let scenario = scenario(request.code.expose());
        let isv = biz
            .pointer("/extend_params/sys_service_provider_id")
            .and_then(Value::as_str);
        let outcome = self.sandbox.pay_after_delay(&request).await;
        if let Some(isv) = isv {
            self.sandbox.note_service_provider(&out_trade_no, isv);
        }
        let now = chrono::Utc::now()
            .with_timezone(&beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let paid = |trade_no: &str, money: &Breakdown| {
            let mut content = json!({
                "code": "10000", "msg": "Success", "trade_no": trade_no, "out_trade_no": out_trade_no,
                "buyer_logon_id": "sbx***@example.com", "total_amount": amount.to_major_string(),
                "gmt_payment": now,
            });
            // The pay answer carries the fund channels and, as the platform's does when a
            // voucher was used, the voucher details.
            money_fields(&mut content, money, true, !money.vouchers.is_empty());
            content
        };
        match outcome {
            Outcome::Unknown(_) if scenario == Scenario::SystemErrorButPaid => fail(
                "aop.ACQ.SYSTEM_ERROR",
                "系统错误",
            ),
            Outcome::Success(p) => Ok(self.answer(reply, paid(&p.trade_id, &p.money), false)),
            Outcome::Failed(f) => {
                let sub = match f.code.as_str() {
                    "RISK_REJECT" => "ACQ.PAYMENT_REQUEST_HAS_RISK".to_string(),
                    other => format!("ACQ.{other}"),
                };
                fail(&sub, &f.message)
            }
            Outcome::Unknown(u) => match u.kind {
                UnknownKind::BuyerConfirming => Ok(self.answer(
                    reply,
                    json!({"code": "10003", "msg": " order success pay inprocess", "out_trade_no": out_trade_no}),
                    false,
                )),
                UnknownKind::ConnectionLost => Err(DropConnection),
                UnknownKind::BadSignature => {
                    let trade_no = self.trade_no(&out_trade_no).unwrap_or_default();
                    let money = scenario.breakdown(amount);
                    Ok(self.answer(reply, paid(&trade_no, &money), true))
                }
                _ => Ok(self.answer(
                    reply,
                    json!({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error", "sub_msg": "system busy"}),
                    false,
                )),
            },
            Outcome::NotSent(_) | Outcome::Rejected(_) => Err(DropConnection),
        }
    }

    /// `alipay.trade.precreate`: the order's QR, valid for `timeout_express` (minutes).
    fn precreate(&self, reply: &Reply, biz: &Value, out_trade_no: String) -> Response<Full<Bytes>> {
        let fail = |sub: &str, msg: &str| {
            self.answer(
                reply,
                json!({"code": "40004", "msg": "Business Failed", "sub_code": sub, "sub_msg": msg, "out_trade_no": out_trade_no}),
                false,
            )
        };
        let amount = match biz.get("total_amount").and_then(parse_amount) {
            Some(a) if a.is_positive() => a,
            _ => return fail("ACQ.INVALID_PARAMETER", "total_amount invalid"),
        };
        let subject = biz.get("subject").and_then(Value::as_str).unwrap_or("");
        if subject.is_empty() {
            return fail("ACQ.INVALID_PARAMETER", "subject missing");
        }
        let minutes = |key: &str| {
            biz.get(key).and_then(Value::as_str).map(|t| {
                t.strip_suffix('m')
                    .and_then(|m| m.parse::<u64>().ok())
                    .filter(|m| (1..=120).contains(m))
            })
        };
        // The shorter of the two wins, as on the platform; absent, the platform's 2 h.
        let mut expiry = 120;
        for key in ["timeout_express", "qr_code_timeout_express"] {
            match minutes(key) {
                Some(Some(m)) => expiry = expiry.min(m),
                Some(None) => {
                    return fail(
                        "ACQ.INVALID_PARAMETER",
                        &format!("{key} must be 1m to 120m in the sandbox"),
                    );
                }
                None => {}
            }
        }
        let basket = match read_basket(biz) {
            Ok(b) => b,
            Err(field) => return fail("ACQ.INVALID_PARAMETER", &format!("{field} invalid")),
        };
        if let Err(e) = basket.check(amount) {
            return fail("ACQ.INVALID_PARAMETER", &format!("{}: {}", e.field, e.why));
        }
        let request = crate::gateway::PresentRequest {
            request_id: out_trade_no.clone(),
            wallet: Wallet::Alipay,
            how: crate::gateway::Presentation::OrderCode,
            amount,
            subject: subject.to_string(),
            terminal_id: String::new(),
            store_id: None,
            signing_key: None,
            basket,
            expires_in: Duration::from_secs(expiry * 60),
        };
        match self.sandbox.decide_present(&request) {
            Outcome::Success(p) => self.answer(
                reply,
                json!({"code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "qr_code": p.content}),
                false,
            ),
            Outcome::Failed(f) => fail(&format!("ACQ.{}", f.code), &f.message),
            _ => self.answer(
                reply,
                json!({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error", "sub_msg": "system busy"}),
                false,
            ),
        }
    }

    async fn query(&self, reply: &Reply, biz: &Value, out_trade_no: &str) -> Response<Full<Bytes>> {
        // The lists come only when `query_options` asks for them, as on the platform.
        let asked = |option: &str| {
            biz.get("query_options")
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|v| v.as_str() == Some(option)))
        };
        let content = match crate::gateway::Gateway::inquire(self.sandbox.as_ref(), out_trade_no)
            .await
        {
            Outcome::Success(TradeStatus::Paid(p)) => {
                let mut content = json!({
                    "code": "10000", "msg": "Success", "trade_no": p.trade_id, "out_trade_no": out_trade_no,
                    "trade_status": "TRADE_SUCCESS",
                    "total_amount": p.amount.map(|a| a.to_major_string()),
                });
                money_fields(
                    &mut content,
                    &p.money,
                    asked("fund_bill_list"),
                    asked("voucher_detail_list"),
                );
                content
            }
            Outcome::Success(TradeStatus::Waiting) => json!({
                "code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "trade_status": "WAIT_BUYER_PAY",
                "trade_no": self.trade_no(out_trade_no),
            }),
            Outcome::Success(TradeStatus::Closed(_) | TradeStatus::Reversed(_)) => json!({
                "code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "trade_status": "TRADE_CLOSED",
                "trade_no": self.trade_no(out_trade_no),
            }),
            _ => {
                json!({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"})
            }
        };
        self.answer(reply, content, false)
    }

    async fn cancel(&self, reply: &Reply, out_trade_no: &str) -> Response<Full<Bytes>> {
        let content = match crate::gateway::Gateway::cancel(self.sandbox.as_ref(), out_trade_no)
            .await
        {
            Outcome::Success(Cancelled::NotCreated { .. }) => json!({
                "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                "sub_msg": "交易不存在", "retry_flag": "N",
            }),
            Outcome::Success(action) => json!({
                "code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "retry_flag": "N",
                "action": if action == Cancelled::Refunded { "refund" } else { "close" },
                "trade_no": self.trade_no(out_trade_no),
            }),
            Outcome::Failed(f) => json!({
                "code": "40004", "msg": "Business Failed", "sub_code": format!("ACQ.{}", f.code),
                "sub_msg": f.message, "retry_flag": "N",
            }),
            _ => {
                json!({"code": "20000", "msg": "Service Currently Unavailable", "retry_flag": "Y"})
            }
        };
        self.answer(reply, content, false)
    }

    async fn refund(&self, reply: &Reply, request: RefundRequest) -> Response<Full<Bytes>> {
        let content = match crate::gateway::Gateway::refund(self.sandbox.as_ref(), &request).await {
            Outcome::Success(_) => json!({
                "code": "10000", "msg": "Success", "out_trade_no": request.payment_request_id, "fund_change": "Y",
                "refund_fee": request.amount.to_major_string(), "trade_no": self.trade_no(&request.payment_request_id),
            }),
            Outcome::Failed(f) => json!({
                "code": "40004", "msg": "Business Failed", "sub_code": format!("ACQ.{}", f.code), "sub_msg": f.message,
            }),
            _ => json!({"code": "20000", "msg": "Service Currently Unavailable"}),
        };
        self.answer(reply, content, false)
    }

    fn refund_query(
        &self,
        reply: &Reply,
        out_trade_no: &str,
        refund_id: &str,
    ) -> Response<Full<Bytes>> {
        let refunded = self.sandbox.refunded(out_trade_no, refund_id);
        let mut content = json!({"code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "out_request_no": refund_id});
        if let Some(amount) = refunded {
            content["refund_status"] = json!("REFUND_SUCCESS");
            content["refund_amount"] = json!(amount.to_major_string());
        }
        self.answer(reply, content, false)
    }

    /// `alipay.data.dataservice.bill.downloadurl.query`: a link to the day's trade bill that
    /// works for 30 seconds, as the provider's does.
    fn bill_url(
        &self,
        reply: &Reply,
        bill_type: &str,
        date: &str,
        host: &str,
    ) -> Response<Full<Bytes>> {
        if bill_type != "trade" {
            return self.answer(
                reply,
                json!({"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-bill-type", "sub_msg": "账单类型不正确"}),
                false,
            );
        }
        if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
            return self.answer(
                reply,
                json!({"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist", "sub_msg": "账单不存在"}),
                false,
            );
        }
        let url = download_url(host, date, self.sandbox.now());
        self.answer(
            reply,
            json!({"code": "10000", "msg": "Success", "bill_download_url": url}),
            false,
        )
    }

    /// `alipay.open.app.alipaycert.download`: an Alipay certificate the sandbox issued, by SN,
    /// as base64 of its PEM.
    fn alipay_cert(&self, reply: &Reply, sn: &str) -> Response<Full<Bytes>> {
        use base64::Engine;
        let pem = self.cert_mode.as_ref().and_then(|m| m.issued(sn));
        let content = match pem {
            Some(pem) => json!({
                "code": "10000", "msg": "Success",
                "alipay_cert_content": base64::engine::general_purpose::STANDARD.encode(pem),
            }),
            None => json!({
                "code": "40004", "msg": "Business Failed", "sub_code": "isv.alipay-cert-not-exist",
                "sub_msg": format!("no Alipay certificate {sn}"),
            }),
        };
        self.answer(reply, content, false)
    }

    /// `POST /_sandbox/openapi/rotate-alipay-cert`: a new Alipay key and certificate; answers
    /// `{"previous":<sn>,"alipay_cert_sn":<sn>}`, or 409 outside certificate mode.
    pub(super) async fn rotate_alipay_cert(&self) -> Response<Full<Bytes>> {
        let Some(mode) = self.cert_mode.clone() else {
            return plain(
                StatusCode::CONFLICT,
                "text/plain",
                "the sandbox is not in certificate mode (--cert-mode)".into(),
            );
        };
        match tokio::task::spawn_blocking(move || mode.rotate()).await {
            Ok(Ok((previous, sn))) => {
                tracing::info!(%previous, alipay_cert_sn = %sn, "sandbox rotated its Alipay certificate");
                plain(
                    StatusCode::OK,
                    "application/json",
                    json!({"previous": previous, "alipay_cert_sn": sn}).to_string(),
                )
            }
            Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
            Err(e) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            ),
        }
    }

    /// `{"error_response":<content>}` without a signature, in `charset`: a refusal at the door.
    fn unsigned(&self, charset: Charset, content: Value) -> Response<Full<Bytes>> {
        let body = format!("{{\"error_response\":{content}}}");
        encoded(
            StatusCode::OK,
            &charset.content_type(),
            charset.encode(&body),
        )
    }

    /// `{"<node>":<content>,"sign":"<RSA2 over content>"}` in the request's charset, the
    /// signature over the node's bytes in that charset; with `bad_signature` the signature is
    /// over other bytes, so it cannot verify.
    fn answer(&self, reply: &Reply, content: Value, bad_signature: bool) -> Response<Full<Bytes>> {
        let Reply { node, charset } = reply;
        let content = content.to_string();
        let signed = if bad_signature {
            format!("{content} ")
        } else {
            content.clone()
        };
        // In certificate mode, under the current Alipay certificate, which the answer names.
        let current = self.cert_mode.as_ref().and_then(|m| m.current());
        let key = current.as_ref().map_or(&self.gateway_key, |c| &c.key);
        let sign = key.sign_sha256_base64(&charset.encode(&signed));
        let cert_sn = current
            .map(|c| format!(",\"alipay_cert_sn\":\"{}\"", c.sn))
            .unwrap_or_default();
        // These charsets encode character by character: the node's bytes in the body are the
        // bytes signed.
        let body = format!("{{\"{node}\":{content}{cert_sn},\"sign\":\"{sign}\"}}");
        encoded(
            StatusCode::OK,
            &charset.content_type(),
            charset.encode(&body),
        )
    }
}

/// Where an Open Platform answer goes: the `…_response` node it is written in, and the charset
/// the request declared.
struct Reply {
    node: String,
    charset: Charset,
}

/// The amounts of `money` into an answer's `content`, in the platform's fields (strings in
/// yuan); the fund and voucher lists when `funds` and `vouchers` say so.
fn money_fields(content: &mut Value, money: &Breakdown, funds: bool, vouchers: bool) {
    let yuan = |a: Option<crate::money::Amount>| a.map(|a| a.to_major_string());
    for (field, value) in [
        ("receipt_amount", yuan(money.received)),
        ("buyer_pay_amount", yuan(money.buyer_paid)),
        ("point_amount", yuan(money.points)),
        ("invoice_amount", yuan(money.invoice)),
    ] {
        if let Some(v) = value {
            content[field] = json!(v);
        }
    }
    if funds {
        content["fund_bill_list"] = money
            .funds
            .iter()
            .map(|f| json!({"fund_channel": f.channel, "amount": f.amount.to_major_string()}))
            .collect();
    }
    if vouchers {
        content["voucher_detail_list"] = money
            .vouchers
            .iter()
            .map(|v| {
                json!({
                    "id": v.id, "name": v.name, "type": v.kind,
                    "amount": v.amount.to_major_string(),
                    "merchant_contribute": yuan(v.merchant),
                    "other_contribute": yuan(v.platform),
                })
            })
            .collect();
    }
}

fn invalid_arguments(sub_code: &str, sub_msg: &str) -> Value {
    json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg})
}
