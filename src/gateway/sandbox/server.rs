//! The sandbox as an Open Platform server: `POST /gateway.do` with form parameters, the
//! merchant's RSA2 signature verified (a wrong one gets the real `40002
//! isv.invalid-signature` answer), answers signed with the sandbox's own key, decisions from
//! the code table of [`super`], and `GET /_sandbox/ledger` for tests and operators.
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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use encoding_rs::Encoding;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::Sandbox;
use crate::clock::beijing;
use crate::gateway::alipay_openapi::wire::{parse_amount, response_node, sign_content};
use crate::gateway::keys::{KeyError, PrivateKey, PublicKey};
use crate::gateway::{Cancelled, Outcome, PayRequest, RefundRequest, TradeStatus, UnknownKind};
use crate::paycode::{Scan, Wallet, recognise};

/// The app id the sandbox expects unless told otherwise.
pub const DEFAULT_APP_ID: &str = "2021000000000001";
/// The AMS client id the sandbox expects unless told otherwise (`SANDBOX_` ids use the
/// `/ams/sandbox/api` paths, as with Antom's own sandbox).
pub const DEFAULT_CLIENT_ID: &str = "SANDBOX_SCANPAY0001";
const MAX_BODY: usize = 64 * 1024;

/// Key material of a sandbox: its own ("Alipay") key, and the merchant app's key pair.
pub struct SandboxKeys {
    pub gateway_key: PrivateKey,
    pub app_public_key: PublicKey,
    /// Present when the sandbox generated the app key (so it can write a client config).
    pub app_private_key_file: Option<PathBuf>,
    /// The same app key as PKCS#1 (`RSA PRIVATE KEY`), for SDKs that read only that form
    /// (Alipay's Python SDKs); `app_private_key_file` is PKCS#8.
    pub app_private_key_pkcs1_file: Option<PathBuf>,
    pub gateway_public_key_file: PathBuf,
}

impl SandboxKeys {
    /// Loads the keys from `dir`, generating (and writing) any that are missing. With
    /// `app_public_key`, the merchant brings its own key and no app key is generated. Each
    /// private key is also written as PKCS#1 (`…_pkcs1.pem`), again on every start, so the two
    /// files of a key never differ.
    pub fn load_or_create(
        dir: &Path,
        bits: usize,
        app_public_key: Option<&Path>,
    ) -> Result<SandboxKeys, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            file: dir.display().to_string(),
            source,
        })?;
        let gateway_private = dir.join("alipay_private_key.pem");
        let gateway_public = dir.join("alipay_public_key.pem");
        let gateway_key = load_or_generate(&gateway_private, bits, "sandbox gateway key")?;
        gateway_key.write_pkcs1_pem(&dir.join("alipay_private_key_pkcs1.pem"))?;
        gateway_key.public_key().write_pem(&gateway_public)?;
        let (app_public_key, app_private_key_file, app_private_key_pkcs1_file) =
            match app_public_key {
                Some(path) => (PublicKey::load(path)?, None, None),
                None => {
                    let app_private = dir.join("app_private_key.pem");
                    let app_pkcs1 = dir.join("app_private_key_pkcs1.pem");
                    let key = load_or_generate(&app_private, bits, "sandbox app key")?;
                    key.write_pkcs1_pem(&app_pkcs1)?;
                    key.public_key()
                        .write_pem(&dir.join("app_public_key.pem"))?;
                    (key.public_key(), Some(app_private), Some(app_pkcs1))
                }
            };
        Ok(SandboxKeys {
            gateway_key,
            app_public_key,
            app_private_key_file,
            app_private_key_pkcs1_file,
            gateway_public_key_file: gateway_public,
        })
    }
}

fn load_or_generate(path: &Path, bits: usize, what: &str) -> Result<PrivateKey, KeyError> {
    if path.exists() {
        PrivateKey::load(path)
    } else {
        let key = PrivateKey::generate(bits, what)?;
        key.write_pem(path)?;
        Ok(key)
    }
}

pub const BILL_METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";
const BILL_PATH: &str = "/_sandbox/bill/";
const BILL_URL_LIFETIME_S: i64 = 30;

pub struct SandboxServer {
    pub sandbox: Arc<Sandbox>,
    pub(super) gateway_key: PrivateKey,
    pub(super) app_public_key: PublicKey,
    app_id: String,
    /// The AMS client id the sandbox expects.
    pub(super) client_id: String,
}

/// Returned by a handler to close the connection without answering (code `07`).
#[derive(Debug)]
pub(super) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sandbox drops the connection")
    }
}

impl std::error::Error for DropConnection {}

pub(super) type Answer = Result<Response<Full<Bytes>>, DropConnection>;

impl SandboxServer {
    pub fn new(
        sandbox: Arc<Sandbox>,
        keys: &SandboxKeys,
        app_id: &str,
        client_id: &str,
    ) -> SandboxServer {
        SandboxServer {
            sandbox,
            gateway_key: keys.gateway_key.clone(),
            app_public_key: keys.app_public_key.clone(),
            app_id: app_id.to_string(),
            client_id: client_id.to_string(),
        }
    }

    /// Serves connections from `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { server.handle(req, peer).await }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(error = %e, "sandbox connection ended");
                }
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Answer {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/_sandbox/ledger") => {
                let ledger = serde_json::to_string(&self.sandbox.ledger()).unwrap_or_default();
                Ok(plain(StatusCode::OK, "application/json", ledger))
            }
            (&Method::POST, p) if super::ams_server::is_ams_path(p) => {
                let headers = req.headers().clone();
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return Ok(plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "text/plain",
                            "body too large".into(),
                        ));
                    }
                };
                super::ams_server::handle(self, &path, &headers, &body).await
            }
            (&Method::GET, p) if p.starts_with(BILL_PATH) => Ok(self.bill_file(
                p.trim_start_matches(BILL_PATH),
                req.uri().query().unwrap_or(""),
            )),
            (&Method::POST | &Method::GET, "/gateway.do") => {
                let host = req
                    .headers()
                    .get(hyper::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1")
                    .to_string();
                let query = req.uri().query().unwrap_or("").to_string();
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return Ok(plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "text/plain",
                            "body too large".into(),
                        ));
                    }
                };
                let (params, charset) = match decode_form(query.as_bytes(), &body) {
                    Ok(form) => form,
                    Err(refusal) => {
                        return Ok(self.unsigned(
                            refusal.charset,
                            invalid_arguments(refusal.sub_code, &refusal.sub_msg),
                        ));
                    }
                };
                tracing::debug!(%peer, method = params.get("method").map(String::as_str).unwrap_or(""), charset = charset.name(), "sandbox request");
                self.gateway(params, charset, &host).await
            }
            _ => Ok(plain(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found".into(),
            )),
        }
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
        if !self
            .app_public_key
            .verify_sha256_base64(&charset.encode(&content), &params["sign"])
        {
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
            "alipay.trade.query" => Ok(self.query(&reply, &out_trade_no).await),
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
        };
        let scenario = super::scenario(request.code.expose());
        let (outcome, delay) = self.sandbox.decide_pay(&request);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let now = chrono::Utc::now()
            .with_timezone(&beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let paid = |trade_no: &str| {
            json!({
                "code": "10000", "msg": "Success", "trade_no": trade_no, "out_trade_no": out_trade_no,
                "buyer_logon_id": "sbx***@example.com", "total_amount": amount.to_major_string(),
                "receipt_amount": amount.to_major_string(), "gmt_payment": now,
            })
        };
        match outcome {
            Outcome::Unknown(_) if scenario == super::Scenario::SystemErrorButPaid => fail(
                "aop.ACQ.SYSTEM_ERROR",
                "系统错误",
            ),
            Outcome::Success(p) => Ok(self.answer(reply, paid(&p.trade_id), false)),
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
                    Ok(self.answer(reply, paid(&trade_no), true))
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

    pub(super) fn trade_no(&self, request_id: &str) -> Option<String> {
        self.sandbox
            .ledger()
            .into_iter()
            .find(|e| e.request_id == request_id)
            .map(|e| e.trade_no)
    }

    async fn query(&self, reply: &Reply, out_trade_no: &str) -> Response<Full<Bytes>> {
        let content = match crate::gateway::Gateway::inquire(self.sandbox.as_ref(), out_trade_no)
            .await
        {
            Outcome::Success(TradeStatus::Paid(p)) => json!({
                "code": "10000", "msg": "Success", "trade_no": p.trade_id, "out_trade_no": out_trade_no,
                "trade_status": "TRADE_SUCCESS",
                "total_amount": p.amount.map(|a| a.to_major_string()),
            }),
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
        let expires = self.sandbox.now().timestamp() + BILL_URL_LIFETIME_S;
        let url = format!("http://{host}{BILL_PATH}{date}.zip?expires={expires}");
        self.answer(
            reply,
            json!({"code": "10000", "msg": "Success", "bill_download_url": url}),
            false,
        )
    }

    /// The bill file itself: a zip of GBK CSV built from the ledger.
    fn bill_file(&self, file: &str, query: &str) -> Response<Full<Bytes>> {
        let expires = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "expires")
            .and_then(|(_, v)| v.parse::<i64>().ok());
        if expires.is_none_or(|e| e < self.sandbox.now().timestamp()) {
            return plain(StatusCode::FORBIDDEN, "text/plain", "link expired".into());
        }
        let Some(date) = file
            .strip_suffix(".zip")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            return plain(StatusCode::NOT_FOUND, "text/plain", "no such bill".into());
        };
        let (from, to) = crate::clock::beijing_day(date);
        let lines = self.sandbox.bill(from, to);
        match crate::reconcile::alipay_bill::write_zip(&self.app_id, date, &lines) {
            Ok(zip) => {
                let mut response = Response::new(Full::new(Bytes::from(zip)));
                if let Ok(v) = hyper::header::HeaderValue::from_str("application/zip") {
                    response
                        .headers_mut()
                        .insert(hyper::header::CONTENT_TYPE, v);
                }
                response
            }
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
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
        let sign = self
            .gateway_key
            .sign_sha256_base64(&charset.encode(&signed));
        // These charsets encode character by character: the node's bytes in the body are the
        // bytes signed.
        let body = format!("{{\"{node}\":{content},\"sign\":\"{sign}\"}}");
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

/// A charset the platform accepts in `charset`: UTF-8, GBK (also declared as GB2312) or
/// GB18030, by their `encoding_rs` labels, any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Charset(&'static Encoding);

impl Charset {
    const UTF_8: Charset = Charset(encoding_rs::UTF_8);

    fn from_label(label: &[u8]) -> Option<Charset> {
        Encoding::for_label_no_replacement(label)
            .filter(|e| [encoding_rs::UTF_8, encoding_rs::GBK, encoding_rs::GB18030].contains(e))
            .map(Charset)
    }

    /// The name the answer's Content-Type gives.
    fn name(self) -> &'static str {
        if self.0 == encoding_rs::GBK {
            "GBK"
        } else if self.0 == encoding_rs::GB18030 {
            "GB18030"
        } else {
            "utf-8"
        }
    }

    fn content_type(self) -> String {
        format!("text/html;charset={}", self.name())
    }

    /// The text's bytes in this charset (a character it cannot hold becomes `&#…;`).
    fn encode(self, text: &str) -> Vec<u8> {
        self.0.encode(text).0.into_owned()
    }

    /// `None` when the bytes are not valid in this charset.
    fn decode(self, bytes: &[u8]) -> Option<String> {
        self.0
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(std::borrow::Cow::into_owned)
    }
}

/// A request refused before its parameters could be read.
struct FormRefusal {
    charset: Charset,
    sub_code: &'static str,
    sub_msg: String,
}

fn invalid_arguments(sub_code: &str, sub_msg: &str) -> Value {
    json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg})
}

/// The parameters of the query and the form body, decoded in the charset the query declares
/// (`charset`; UTF-8 when absent), as the platform reads them: it looks for `charset` only in
/// the query.
fn decode_form(
    query: &[u8],
    body: &[u8],
) -> Result<(BTreeMap<String, String>, Charset), FormRefusal> {
    let label = form_pairs(query)
        .filter(|(k, _)| k == b"charset")
        .map(|(_, v)| v)
        .last()
        .unwrap_or_default();
    let charset = if label.is_empty() {
        Charset::UTF_8
    } else {
        Charset::from_label(&label).ok_or_else(|| FormRefusal {
            charset: Charset::UTF_8,
            sub_code: "isv.invalid-charset",
            sub_msg: format!(
                "charset {} is not supported; use utf-8 or GBK",
                String::from_utf8_lossy(&label)
            ),
        })?
    };
    let mut params = BTreeMap::new();
    for (k, v) in form_pairs(query).chain(form_pairs(body)) {
        let (Some(key), Some(value)) = (charset.decode(&k), charset.decode(&v)) else {
            return Err(FormRefusal {
                charset,
                sub_code: "isv.invalid-parameter",
                sub_msg: format!(
                    "parameter {} is not valid {}",
                    String::from_utf8_lossy(&k),
                    charset.name()
                ),
            });
        };
        params.insert(key, value);
    }
    Ok((params, charset))
}

/// `application/x-www-form-urlencoded` pairs as bytes: `+` is a space, `%XX` a byte, and a `%`
/// not followed by two hex digits stays itself, as `url::form_urlencoded::parse` reads them;
/// but the bytes are left for the declared charset (that parser takes them as UTF-8).
fn form_pairs(input: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let escaped = (b == b'%')
            .then(|| input.get(i + 1..i + 3).and_then(hex_byte))
            .flatten();
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let digit = |c: &u8| {
        char::from(*c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let [high, low] = digits else {
        return None;
    };
    Some((digit(high)? << 4) | digit(low)?)
}

pub(super) fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    encoded(status, content_type, body.into_bytes())
}

/// A response whose body is already in the charset `content_type` names.
fn encoded(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// A client configuration for this sandbox, to be written into the key directory.
pub fn client_config(url: &str, app_id: &str, keys: &SandboxKeys) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    let note = private_key_note(app_private, keys.app_private_key_pkcs1_file.as_deref());
    Some(format!(
        r#"# Written by `scanpay sandbox`: a client configuration for this sandbox.
[terminal]
id = "T0001"
currency = "CNY"
max_amount = "5000.00"

[gateway]
kind = "alipay-openapi"
url = "{url}"
app_id = "{app_id}"
{note}private_key_file = "{}"
alipay_public_key_file = "{}"
timeout_ms = 5000

[journal]
path = "journal.sqlite"

[watchdog]
sale_deadline_s = 20
inquiry_interval_ms = 1000
"#,
        file_name(app_private),
        file_name(&keys.gateway_public_key_file)
    ))
}

/// An AMS client configuration for this sandbox, to be written into the key directory.
pub fn ams_client_config(origin: &str, client_id: &str, keys: &SandboxKeys) -> Option<String> {
    let app_private = keys.app_private_key_file.as_ref()?;
    let note = private_key_note(app_private, keys.app_private_key_pkcs1_file.as_deref());
    Some(format!(
        r#"# Written by `scanpay sandbox`: an Antom AMS client configuration for this sandbox.
[terminal]
id = "T0001"
currency = "USD"
max_amount = "5000.00"

[gateway]
kind = "alipay-ams"
url = "{origin}"
client_id = "{client_id}"
{note}private_key_file = "{}"
alipay_public_key_file = "{}"
timeout_ms = 5000
reference_merchant_id = "M0001"
merchant_name = "Sandbox Cafe"
merchant_mcc = "5812"
reference_store_id = "S0001"
store_name = "Sandbox Cafe Main St"

[journal]
path = "journal-ams.sqlite"

[watchdog]
sale_deadline_s = 20
inquiry_interval_ms = 1000
"#,
        file_name(app_private),
        file_name(&keys.gateway_public_key_file)
    ))
}

/// The config sits beside the keys, and its paths resolve against its own directory.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The comment above `private_key_file`: the two files the app key is written to, and which
/// form each holds.
fn private_key_note(pkcs8: &Path, pkcs1: Option<&Path>) -> String {
    let Some(pkcs1) = pkcs1 else {
        return String::new();
    };
    format!(
        "# {} holds the app key as PKCS#8; {} holds the\n\
         # same key as PKCS#1 (BEGIN RSA PRIVATE KEY), for SDKs that read only that form.\n",
        file_name(pkcs8),
        file_name(pkcs1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_private_key_is_also_written_as_pkcs1() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        let pkcs8_file = keys.app_private_key_file.clone().unwrap();
        let pkcs1_file = keys.app_private_key_pkcs1_file.clone().unwrap();
        assert_eq!(pkcs8_file, dir.path().join("app_private_key.pem"));
        assert_eq!(pkcs1_file, dir.path().join("app_private_key_pkcs1.pem"));
        let message = b"app_id=2021000000000001&method=alipay.trade.pay";
        for (pkcs8_file, pkcs1_file) in [
            (pkcs8_file.clone(), pkcs1_file.clone()),
            (
                dir.path().join("alipay_private_key.pem"),
                dir.path().join("alipay_private_key_pkcs1.pem"),
            ),
        ] {
            let text = std::fs::read_to_string(&pkcs1_file).unwrap();
            assert!(
                text.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
                "{}",
                pkcs1_file.display()
            );
            let text = std::fs::read_to_string(&pkcs8_file).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let mode = std::fs::metadata(&pkcs1_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", pkcs1_file.display());
            // Signatures are deterministic (PKCS#1 v1.5): the same key signs the same bytes.
            let pkcs8 = PrivateKey::load(&pkcs8_file).unwrap();
            let pkcs1 = PrivateKey::load(&pkcs1_file).unwrap();
            assert_eq!(pkcs8.sign_sha256(message), pkcs1.sign_sha256(message));
        }
        let app = PrivateKey::load(&pkcs1_file).unwrap();
        assert!(
            keys.app_public_key
                .verify_sha256(message, &app.sign_sha256(message))
        );
        // The next start reuses the key, and the PKCS#1 file still holds the same one.
        let again = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        assert!(again.app_public_key.same_key(&keys.app_public_key));
        let reloaded = PrivateKey::load(&pkcs1_file).unwrap();
        assert_eq!(reloaded.sign_sha256(message), app.sign_sha256(message));
    }

    #[test]
    fn the_client_configs_name_both_files_of_the_app_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SandboxKeys::load_or_create(dir.path(), 1024, None).unwrap();
        let configs = [
            client_config("http://127.0.0.1:8089/gateway.do", DEFAULT_APP_ID, &keys),
            ams_client_config("http://127.0.0.1:8089", DEFAULT_CLIENT_ID, &keys),
        ];
        for config in configs {
            let config = config.unwrap();
            let comment = "# app_private_key.pem holds the app key as PKCS#8; \
                           app_private_key_pkcs1.pem holds the\n# same key as PKCS#1";
            assert!(config.contains(comment), "{config}");
            let parsed: toml::Table = toml::from_str(&config).unwrap();
            assert_eq!(
                parsed["gateway"]["private_key_file"].as_str(),
                Some("app_private_key.pem")
            );
        }
        // A merchant that brings its own key gets no config, and no key files of ours.
        let own = tempfile::tempdir().unwrap();
        let public = own.path().join("mine.pem");
        keys.app_public_key.write_pem(&public).unwrap();
        let theirs =
            SandboxKeys::load_or_create(&own.path().join("sbx"), 1024, Some(&public)).unwrap();
        assert!(theirs.app_private_key_pkcs1_file.is_none());
        assert!(!own.path().join("sbx/app_private_key_pkcs1.pem").exists());
        assert!(client_config("http://x", DEFAULT_APP_ID, &theirs).is_none());
    }
}
