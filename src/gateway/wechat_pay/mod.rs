//! WeChat Pay APIv3 client, direct merchant, code pay (docs/protocol.md §15,
//! docs/gateways.md §8): `codepay`, query by `out_trade_no`, reverse, domestic refunds and
//! their query. Every request carries the `WECHATPAY2-SHA256-RSA2048` signature; every answer
//! is verified with the platform key its `Wechatpay-Serial` names, and only a verified
//! answer decides. `wire.rs` holds the signing, verification, AES-GCM, bodies and codes;
//! `cert.rs` the platform certificates.

pub mod bill;
pub mod cert;
pub mod wire;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::http::{CallError, classify};
use super::keys::PrivateKey;
use super::{
    Cancelled, Gateway, Outcome, Paid, PayRequest, Policy, RefundRequest, Refunded, TradeStatus,
    Unknown, UnknownKind,
};
use crate::clock::Clock;
use crate::paycode::Wallet;
use wire::{PlatformKey, Reply, ReverseAnswer, SignedHeaders};

/// What ends the request id of every WeChat Pay payment: a router sends the calls about it
/// here, whichever gateways are configured (docs/gateways.md §8.8).
pub const REQUEST_ID_TAG: &str = "W";

/// The in-doubt deadline unless configured (docs/gateways.md §8.6): 30 s, then reverse.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// The range the deadline may be configured in.
pub const DEADLINE_RANGE: std::ops::RangeInclusive<u64> = 30..=45;
/// Downloaded platform certificates are fetched again this often, and whenever an answer
/// names a serial we do not hold (at most once a minute).
const CERT_REFRESH_EVERY: Duration = Duration::from_secs(12 * 3600);
const CERT_REFRESH_MIN_GAP: Duration = Duration::from_secs(60);

/// The APIv3 key: a 32-byte secret, zeroed on drop, never printed.
#[derive(Clone)]
pub struct ApiV3Key(Arc<Zeroizing<Vec<u8>>>);

impl ApiV3Key {
    /// The key from its text; refused unless it is 32 bytes.
    pub fn new(text: &str) -> Result<ApiV3Key, String> {
        if text.len() != 32 {
            return Err(format!(
                "the APIv3 key must be 32 characters, this one has {}",
                text.len()
            ));
        }
        Ok(ApiV3Key(Arc::new(Zeroizing::new(text.as_bytes().to_vec()))))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiV3Key(…)")
    }
}

/// What the WeChat Pay client is configured with.
#[derive(Debug, Clone)]
pub struct WechatSettings {
    /// Origin, e.g. `https://api.mch.weixin.qq.com`; paths are appended.
    pub origin: url::Url,
    pub appid: String,
    pub mchid: String,
    /// The merchant API private key, and its certificate's serial (upper-case hex).
    pub private_key: PrivateKey,
    pub serial_no: String,
    pub apiv3_key: ApiV3Key,
    /// Platform certificates read from files.
    pub certificates: Vec<PlatformKey>,
    /// The WeChat Pay public key and its `PUB_KEY_ID_…`.
    pub public_key: Option<PlatformKey>,
    /// Download the platform certificates from `/v3/certificates` (and keep them fresh).
    pub download_certificates: bool,
    pub device_ip: Option<String>,
    pub goods_tag: Option<String>,
    pub timeout: Duration,
    /// In-doubt deadline, 30–45 s.
    pub deadline: Duration,
}

pub struct WechatPay {
    settings: WechatSettings,
    io: super::http::Transport,
    /// Downloaded platform certificates, and when they were fetched.
    downloaded: RwLock<(Vec<PlatformKey>, Option<tokio::time::Instant>)>,
    /// Serialises certificate downloads.
    refreshing: tokio::sync::Mutex<()>,
}

/// The methods this client sends with.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

impl WechatPay {
    pub fn new(settings: WechatSettings, clock: Arc<dyn Clock>) -> Result<WechatPay, String> {
        let io = super::http::Transport::new(settings.timeout, clock)?;
        Ok(WechatPay {
            settings,
            io,
            downloaded: RwLock::new((Vec::new(), None)),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// Every key an answer may be verified with: the configured public key and
    /// certificates, and the downloaded certificates.
    pub fn platform_keys(&self) -> Vec<PlatformKey> {
        let mut keys: Vec<PlatformKey> = self.settings.public_key.iter().cloned().collect();
        keys.extend(self.settings.certificates.iter().cloned());
        let downloaded = self.downloaded.read().unwrap_or_else(|e| e.into_inner());
        keys.extend(downloaded.0.iter().cloned());
        keys
    }

    /// The key id we ask WeChat Pay to sign with (`Wechatpay-Serial` on the request): the
    /// public key when configured, else the newest certificate.
    fn preferred_serial(&self) -> Option<String> {
        if let Some(p) = &self.settings.public_key {
            return Some(p.id.clone());
        }
        self.platform_keys()
            .into_iter()
            .max_by_key(|k| k.not_after)
            .map(|k| k.id)
    }

    fn url(&self, target: &str) -> Result<url::Url, CallError> {
        self.settings.origin.join(target).map_err(|e| {
            CallError::NotSent(format!("cannot build the request URL for {target}: {e}"))
        })
    }

    /// Signs and sends one request; returns the answer with its verification result.
    async fn call(
        &self,
        method: Method,
        target: &str,
        body: Option<String>,
    ) -> Result<Reply, CallError> {
        if self.settings.download_certificates {
            self.refresh_certificates_if_due().await;
        }
        let reply = self.send(method, target, body.as_deref()).await?;
        if let Err(wire::VerifyError::UnknownSerial(serial)) = &reply.0.verified
            && self.settings.download_certificates
        {
            // A new platform certificate: fetch the list once, then verify again.
            tracing::info!(serial = %serial, "answer signed with a platform certificate we do not hold yet: downloading");
            self.refresh_certificates(true).await;
            let mut again = reply.0;
            again.verified = wire::verify(
                &self.platform_keys(),
                &reply.1,
                &again.body,
                self.io.clock.now(),
            );
            return Ok(self.logged(target, again));
        }
        Ok(self.logged(target, reply.0))
    }

    fn logged(&self, target: &str, reply: Reply) -> Reply {
        if let Err(e) = &reply.verified
            && (200..300).contains(&reply.status)
        {
            match e {
                wire::VerifyError::Missing(_) if reply.status == 202 => {}
                wire::VerifyError::Probe => tracing::warn!(
                    target,
                    "WeChat Pay sent a signature probe (WECHATPAY/SIGNTEST): answer treated as unverified, as required"
                ),
                e => tracing::error!(
                    target,
                    error = %e,
                    "WECHAT PAY ANSWER DID NOT VERIFY: ignored, outcome unknown; check the platform certificates or public key"
                ),
            }
        }
        reply
    }

    async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&str>,
    ) -> Result<(Reply, SignedHeaders), CallError> {
        let s = &self.settings;
        let now = self.io.clock.now();
        let nonce = wire::nonce();
        let authorization = wire::RequestSigner {
            key: &s.private_key,
            mchid: &s.mchid,
            serial_no: &s.serial_no,
        }
        .sign(
            method.as_str(),
            target,
            body.unwrap_or(""),
            now.timestamp(),
            &nonce,
        );
        let url = self.url(target)?;
        let mut request = match method {
            Method::Get => self.io.http.get(url),
            Method::Post => self.io.http.post(url),
        }
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::USER_AGENT,
            concat!("scanpay/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(serial) = self.preferred_serial() {
            request = request.header("Wechatpay-Serial", serial);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let headers = SignedHeaders::from_map(response.headers());
        self.note_clock(response.headers(), &headers);
        let bytes = response.bytes().await.map_err(|e| {
            CallError::unknown(UnknownKind::ConnectionLost, format!("answer cut off: {e}"))
        })?;
        let verified = wire::verify(&self.platform_keys(), &headers, &bytes, self.io.clock.now());
        Ok((
            Reply {
                status,
                verified,
                body: bytes.to_vec(),
            },
            headers,
        ))
    }

    fn note_clock(&self, map: &reqwest::header::HeaderMap, signed: &SignedHeaders) {
        let theirs = signed
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0))
            .or_else(|| {
                map.get(reqwest::header::DATE)
                    .and_then(|d| d.to_str().ok())
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                    .map(|d| d.with_timezone(&chrono::Utc))
            });
        if let Some(theirs) = theirs {
            self.io.skew.note(theirs, self.io.clock.now());
        }
    }

    async fn refresh_certificates_if_due(&self) {
        let due = {
            let d = self.downloaded.read().unwrap_or_else(|e| e.into_inner());
            let expiring = d.0.iter().any(|k| {
                k.not_after
                    .is_some_and(|end| end - self.io.clock.now() < chrono::TimeDelta::days(7))
            });
            d.1.is_none_or(|at| at.elapsed() >= CERT_REFRESH_EVERY) || expiring
        };
        if due {
            self.refresh_certificates(false).await;
        }
    }

    /// Downloads and decrypts the platform certificates (docs/protocol.md §15.4). Keeps the
    /// ones held when the download fails. `urgent`: asked for by an unknown serial.
    pub async fn refresh_certificates(&self, urgent: bool) {
        let _one = self.refreshing.lock().await;
        if let Some(at) = self.downloaded.read().unwrap_or_else(|e| e.into_inner()).1
            && at.elapsed()
                < if urgent {
                    CERT_REFRESH_MIN_GAP
                } else {
                    CERT_REFRESH_EVERY
                }
        {
            return;
        }
        match self.download_certificates().await {
            Ok(keys) => {
                tracing::info!(
                    count = keys.len(),
                    serials = %keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(","),
                    "WeChat Pay platform certificates downloaded"
                );
                *self.downloaded.write().unwrap_or_else(|e| e.into_inner()) =
                    (keys, Some(tokio::time::Instant::now()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot download the WeChat Pay platform certificates; keeping those held");
                let mut d = self.downloaded.write().unwrap_or_else(|e| e.into_inner());
                // Try again after the short gap, not at once on every request.
                d.1 = Some(
                    tokio::time::Instant::now()
                        .checked_sub(CERT_REFRESH_EVERY.saturating_sub(CERT_REFRESH_MIN_GAP))
                        .unwrap_or_else(tokio::time::Instant::now),
                );
            }
        }
    }

    /// `GET /v3/certificates`: every certificate decrypted with the APIv3 key (which only
    /// WeChat Pay and the merchant hold, so the GCM tag authenticates it), then the answer's
    /// signature verified with a key already held or, on the first download, with the
    /// certificates just decrypted.
    pub async fn download_certificates(&self) -> Result<Vec<PlatformKey>, String> {
        let (reply, headers) = self
            .send(Method::Get, "/v3/certificates", None)
            .await
            .map_err(|e| match e {
                CallError::NotSent(why) => why,
                CallError::Unknown(u) => u.to_string(),
                CallError::Rejected(f) => format!("{} {}", f.code, f.message),
            })?;
        if reply.status != 200 {
            let e: wire::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
            return Err(format!("HTTP {} {} {}", reply.status, e.code, e.message));
        }
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            serial_no: String,
            encrypt_certificate: wire::EncryptedResource,
        }
        let list: List =
            serde_json::from_slice(&reply.body).map_err(|e| format!("certificate list: {e}"))?;
        let mut keys = Vec::new();
        for item in list.data {
            let pem = wire::decrypt(self.settings.apiv3_key.bytes(), &item.encrypt_certificate)
                .map_err(|e| format!("certificate {}: {e}", item.serial_no))?;
            let pem = String::from_utf8(pem)
                .map_err(|_| format!("certificate {}: not PEM text", item.serial_no))?;
            let key = cert::parse_pem(&pem, "downloaded platform certificate")?;
            if !key.id.eq_ignore_ascii_case(&item.serial_no) {
                return Err(format!(
                    "certificate listed as {} has serial {}",
                    item.serial_no, key.id
                ));
            }
            keys.push(key);
        }
        let mut all = self.platform_keys();
        all.extend(keys.iter().cloned());
        wire::verify(&all, &headers, &reply.body, self.io.clock.now())
            .map_err(|e| format!("certificate list answer: {e}"))?;
        Ok(keys)
    }

    fn query_target(&self, request_id: &str) -> String {
        format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            encode(request_id),
            encode(&self.settings.mchid)
        )
    }

    async fn get_outcome<T>(
        &self,
        target: &str,
        map: impl FnOnce(&Reply) -> Outcome<T>,
    ) -> Outcome<T> {
        match self.call(Method::Get, target, None).await {
            Ok(reply) => map(&reply),
            Err(e) => e.into_outcome(),
        }
    }

    /// The trade bill of `date` (docs/protocol.md §15.7): `GET /v3/bill/tradebill`, a
    /// verified answer naming the file and its SHA-1; the file fetched from the same host
    /// (signed like any request) and its hash checked.
    pub async fn download_bill(&self, date: chrono::NaiveDate) -> Result<Vec<u8>, String> {
        use sha1::Digest as _;
        let target = format!(
            "/v3/bill/tradebill?bill_date={}&bill_type=ALL",
            date.format("%Y-%m-%d")
        );
        let reply = self
            .call(Method::Get, &target, None)
            .await
            .map_err(|e| match e {
                CallError::NotSent(why) => format!("cannot reach WeChat Pay: {why}"),
                CallError::Unknown(u) => format!("no usable answer: {u}"),
                CallError::Rejected(f) => {
                    format!("WeChat Pay refused the request: {} {}", f.code, f.message)
                }
            })?;
        if reply.status != 200 {
            let e: wire::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
            return Err(format!(
                "WeChat Pay gave no bill for {date}: HTTP {} {} {}",
                reply.status, e.code, e.message
            ));
        }
        reply
            .verified
            .as_ref()
            .map_err(|e| format!("the bill answer is not verified: {e}"))?;
        #[derive(serde::Deserialize)]
        struct Bill {
            hash_type: String,
            hash_value: String,
            download_url: String,
        }
        let bill: Bill =
            serde_json::from_slice(&reply.body).map_err(|e| format!("bill answer: {e}"))?;
        if !bill.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(format!("unknown bill hash_type {:?}", bill.hash_type));
        }
        let url = url::Url::parse(&bill.download_url).map_err(|e| format!("download_url: {e}"))?;
        if url.origin() != self.settings.origin.origin() {
            return Err(format!(
                "download_url {} is not on {}: refused",
                url.origin().ascii_serialization(),
                self.settings.origin.origin().ascii_serialization()
            ));
        }
        let file_target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        // The file itself comes unsigned: its hash, from the verified answer, vouches for it.
        let (file, _) = self
            .send(Method::Get, &file_target, None)
            .await
            .map_err(|e| match e {
                CallError::NotSent(why) => format!("bill download: {why}"),
                CallError::Unknown(u) => format!("bill download: {u}"),
                CallError::Rejected(f) => {
                    format!("bill download refused: {} {}", f.code, f.message)
                }
            })?;
        if file.status != 200 {
            return Err(format!("bill download: HTTP {}", file.status));
        }
        let hash: String = sha1::Sha1::digest(&file.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !hash.eq_ignore_ascii_case(bill.hash_value.trim()) {
            return Err(format!(
                "the bill file's SHA-1 {hash} is not the {} WeChat Pay stated: refused",
                bill.hash_value
            ));
        }
        Ok(file.body)
    }

    /// The one signed query `check-config --probe` makes, and the certificates it reports.
    pub async fn probe(&self, request_id: &str) -> (Outcome<TradeStatus>, Vec<PlatformKey>) {
        let outcome = self.inquire(request_id).await;
        (outcome, self.platform_keys())
    }
}

/// A path segment or query value, percent-encoded (request ids use only safe characters).
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CallError> {
    serde_json::to_string(value)
        .map_err(|e| CallError::NotSent(format!("cannot serialise the request: {e}")))
}

#[async_trait]
impl Gateway for WechatPay {
    fn name(&self) -> &'static str {
        "wechat-pay"
    }

    fn policy(&self) -> Policy {
        Policy::wechat_pay(self.settings.deadline)
    }

    fn accepts(&self, wallet: Wallet) -> bool {
        wallet == Wallet::WechatPay
    }

    /// Request ids of WeChat Pay payments end in `W` (docs/gateways.md §8.8).
    fn request_id_tag(&self, _wallet: Wallet) -> &'static str {
        REQUEST_ID_TAG
    }

    fn clock_skew_s(&self) -> Option<i64> {
        self.io.skew.get()
    }

    /// The merchant API certificate's serial, which every request names.
    fn signing_key(&self, _wallet: Wallet) -> Option<String> {
        Some(format!("serial_no {}", self.settings.serial_no))
    }

    /// Every platform certificate held (configured or downloaded); a public key has no end.
    fn certificates(&self) -> Vec<super::CertificateExpiry> {
        self.platform_keys()
            .into_iter()
            .filter_map(|k| {
                k.not_after.map(|not_after| super::CertificateExpiry {
                    which: "wechat_platform_cert",
                    sn: k.id,
                    not_after,
                })
            })
            .collect()
    }

    fn clock_agrees(&self) -> bool {
        self.io.skew.agrees()
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let s = &self.settings;
        if request.amount.currency().code() != "CNY" {
            return Outcome::NotSent(format!(
                "WeChat Pay code pay takes CNY, not {}",
                request.amount.currency().code()
            ));
        }
        let body = wire::CodepayBody {
            appid: s.appid.clone(),
            mchid: s.mchid.clone(),
            description: request.subject.clone(),
            out_trade_no: request.request_id.clone(),
            goods_tag: s.goods_tag.clone(),
            payer: wire::Payer {
                auth_code: request.code.expose().to_string(),
            },
            amount: wire::PayAmount {
                total: request.amount.minor(),
                currency: Some("CNY".to_string()),
            },
            scene_info: wire::SceneInfo {
                device_id: Some(request.terminal_id.clone()),
                device_ip: s.device_ip.clone(),
                store_info: wire::StoreInfo {
                    id: None,
                    out_id: Some(
                        request
                            .store_id
                            .clone()
                            .unwrap_or_else(|| request.terminal_id.clone()),
                    ),
                },
            },
        };
        let body = match to_json(&body) {
            Ok(b) => b,
            Err(e) => return e.into_outcome(),
        };
        let outcome = match self
            .call(Method::Post, "/v3/pay/transactions/codepay", Some(body))
            .await
        {
            Ok(reply) => wire::pay_outcome(&reply, &request.request_id),
            Err(e) => e.into_outcome(),
        };
        match outcome {
            // A stated business failure is confirmed by one query (docs/gateways.md §8.1):
            // only a closed or unknown order makes it final.
            Outcome::Failed(f) => match self.inquire(&request.request_id).await {
                Outcome::Success(TradeStatus::Closed(_))
                | Outcome::Success(TradeStatus::NotFound) => Outcome::Failed(f),
                other => Outcome::Unknown(Unknown::new(
                    UnknownKind::ProviderUnsure,
                    format!(
                        "pay refused ({} {}), but the query says {}: resolving",
                        f.code,
                        f.message,
                        match other {
                            Outcome::Success(_) => "otherwise",
                            _ => "nothing certain",
                        }
                    ),
                )),
            },
            other => other,
        }
    }

    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        let target = self.query_target(request_id);
        self.get_outcome(&target, |r| wire::query_outcome(r, request_id))
            .await
    }

    /// Reverse, decided by the queries around it (docs/gateways.md §8.4): the reverse
    /// answer says neither whether it refunded nor whether the order existed.
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        let before = match self.inquire(request_id).await {
            Outcome::Success(TradeStatus::Reversed(_)) => {
                return Outcome::Success(Cancelled::Refunded);
            }
            // Already final and unpaid (closed, revoked at 45 s, failed): nothing to reverse.
            Outcome::Success(TradeStatus::Closed(_)) => return Outcome::Success(Cancelled::Closed),
            Outcome::Success(status) => status,
            other => return other.map(|_| Cancelled::Closed),
        };
        let body = match to_json(&wire::ReverseBody {
            appid: self.settings.appid.clone(),
            mchid: self.settings.mchid.clone(),
        }) {
            Ok(b) => b,
            Err(e) => return e.into_outcome(),
        };
        let target = format!(
            "/v3/pay/transactions/out-trade-no/{}/reverse",
            encode(request_id)
        );
        let answer = match self.call(Method::Post, &target, Some(body)).await {
            Ok(reply) => wire::reverse_outcome(&reply),
            Err(e) => return e.into_outcome(),
        };
        match answer {
            ReverseAnswer::Retry(u) => return Outcome::Unknown(u),
            ReverseAnswer::Rejected(f) => return Outcome::Rejected(f),
            ReverseAnswer::Done | ReverseAnswer::NotFound => {}
        }
        let was_paid = matches!(before, TradeStatus::Paid(_));
        match self.inquire(request_id).await {
            Outcome::Success(TradeStatus::Reversed(_)) => Outcome::Success(Cancelled::Refunded),
            Outcome::Success(TradeStatus::Closed(_)) if answer == ReverseAnswer::Done => {
                Outcome::Success(if was_paid {
                    Cancelled::Refunded
                } else {
                    Cancelled::Closed
                })
            }
            Outcome::Success(TradeStatus::NotFound) if !was_paid => {
                Outcome::Success(Cancelled::NotCreated {
                    code: "ORDER_NOT_EXIST",
                })
            }
            Outcome::Success(status) => Outcome::Unknown(Unknown::new(
                UnknownKind::ProviderUnsure,
                format!(
                    "reverse answered, but the query after it says {status:?}: reversing again"
                ),
            )),
            other => other.map(|_| Cancelled::Closed),
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        // The body needs the order's total: a verified query states it.
        let total = match self.inquire(&request.payment_request_id).await {
            Outcome::Success(TradeStatus::Paid(Paid {
                amount: Some(total),
                ..
            })) => total,
            Outcome::Success(TradeStatus::Paid(_)) => {
                return Outcome::Unknown(Unknown::new(
                    UnknownKind::Malformed,
                    "paid order without an amount",
                ));
            }
            Outcome::Success(other) => {
                return Outcome::Failed(super::Failure {
                    code: "ORDER_NOT_PAID".to_string(),
                    message: format!("the order is not paid: {other:?}"),
                    cashier: "the payment is not paid: nothing to refund".to_string(),
                });
            }
            other => {
                return other.map(|_| Refunded {
                    provider_refund_id: None,
                });
            }
        };
        let body = match to_json(&wire::RefundBody {
            out_trade_no: request.payment_request_id.clone(),
            out_refund_no: request.refund_id.clone(),
            reason: request.reason.clone(),
            amount: wire::RefundAmount {
                refund: request.amount.minor(),
                total: total.minor(),
                currency: "CNY".to_string(),
            },
        }) {
            Ok(b) => b,
            Err(e) => return e.into_outcome(),
        };
        match self
            .call(Method::Post, "/v3/refund/domestic/refunds", Some(body))
            .await
        {
            Ok(reply) => wire::refund_outcome(&reply, &request.refund_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let target = format!("/v3/refund/domestic/refunds/{}", encode(&request.refund_id));
        self.get_outcome(&target, |r| {
            wire::refund_query_outcome(r, &request.refund_id)
        })
        .await
    }
}
