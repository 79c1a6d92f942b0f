//! Alipay Open Platform client (`gateway.do`): `alipay.trade.pay` with `scene=bar_code`,
//! `alipay.trade.query`, `alipay.trade.cancel`, `alipay.trade.refund` and
//! `alipay.trade.fastpay.refund.query`. Requests are signed RSA2 over the sorted parameter
//! string; every answer's `sign` is verified over the raw text of its response node, and an
//! answer that does not verify is `Unknown`, never success or failure.
//!
//! In certificate mode (docs/protocol.md §3.4) every request also carries `app_cert_sn` and
//! `alipay_root_cert_sn`, and answers are verified with the key of the Alipay certificate the
//! answer's `alipay_cert_sn` names: a new one is downloaded, checked against the root bundle,
//! stored beside the old one and used; one that does not chain leaves the answer unknown.

pub mod bill;
pub mod cert;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::http::{CallError, classify};
use super::keys::{PrivateKey, PublicKey};
use super::{
    Cancelled, Gateway, Outcome, Paid, PayRequest, RefundRequest, Refunded, TradeStatus, Unknown,
    UnknownKind,
};
use crate::clock::{Clock, beijing};
use crate::paycode::Wallet;
use wire::Node;

/// How long Alipay keeps an unpaid bar-code trade open (the F2F demo's value). scanpay
/// cancels sooner, at its own deadline.
const TIMEOUT_EXPRESS: &str = "5m";
/// The method that charges a scanned code.
const PAY: &str = "alipay.trade.pay";
/// A day's bill can be large; the link is fetched with more patience than a payment call.
const BILL_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// What the Open Platform client is configured with.
#[derive(Debug, Clone)]
pub struct OpenApiSettings {
    /// Full gateway URL, e.g. `https://openapi.alipay.com/gateway.do`.
    pub url: url::Url,
    pub app_id: String,
    pub private_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    pub app_auth_token: Option<String>,
    pub notify_url: Option<String>,
    pub seller_id: Option<String>,
    /// The service provider's id, sent as `extend_params.sys_service_provider_id` (the
    /// provider's rebate programme).
    pub sys_service_provider_id: Option<String>,
    pub timeout: Duration,
    /// Certificate mode; `None` in public-key mode. With it, `alipay_public_key` is the key of
    /// the configured Alipay certificate.
    pub cert_mode: Option<CertMode>,
}

/// The certificates of an app in certificate mode (docs/protocol.md §3.4), as read and checked
/// by the config.
#[derive(Debug, Clone)]
pub struct CertMode {
    /// The SN of the app's public-key certificate (`app_cert_file`).
    pub app_cert_sn: String,
    /// The SN of Alipay's root bundle (`alipay_root_cert_file`).
    pub alipay_root_cert_sn: String,
    /// The root bundle, that every Alipay certificate must chain to.
    pub roots: Vec<x509_cert::Certificate>,
    /// Where the Alipay certificate is kept: a rotated one replaces it, the old one is kept
    /// beside it as `<file>.<old sn>`.
    pub alipay_cert_file: PathBuf,
    /// The SN of the certificate in `alipay_cert_file`.
    pub alipay_cert_sn: String,
    /// The files the app certificate and the root bundle were read from (for reports).
    pub app_cert_file: PathBuf,
    pub alipay_root_cert_file: PathBuf,
    /// When the app certificate and the configured Alipay certificate end.
    pub app_cert_not_after: chrono::DateTime<chrono::Utc>,
    pub alipay_cert_not_after: chrono::DateTime<chrono::Utc>,
}

/// The method that hands out an Alipay certificate by its SN.
pub const CERT_DOWNLOAD_METHOD: &str = "alipay.open.app.alipaycert.download";

pub struct OpenApi {
    settings: OpenApiSettings,
    /// HTTP, clock and skew (the skew from the answers' `Date` header).
    io: super::http::Transport,
    /// Certificate mode: the Alipay keys known by SN (the configured one, and every one
    /// downloaded since), and one download at a time.
    alipay_keys: Mutex<HashMap<String, PublicKey>>,
    download: tokio::sync::Mutex<()>,
    /// The Alipay certificate answers were last verified under (SN, end): the configured
    /// one until a newer one is downloaded.
    current_alipay: Mutex<Option<(String, chrono::DateTime<chrono::Utc>)>>,
    /// Certificates downloaded and refused (by SN): when, and why.
    refused: Mutex<HashMap<String, (std::time::Instant, String)>>,
    /// [`Gateway::signing_key`], named once.
    key_label: String,
    /// Whose signature a [`super::SignedPay`] made here is.
    signer: super::SignerId,
}

/// How long a downloaded certificate that was refused (another SN, no chain to the root,
/// expired) is not asked for again: every answer under it is unknown meanwhile anyway.
const REFUSED_FOR: Duration = Duration::from_secs(600);

impl OpenApi {
    pub fn new(settings: OpenApiSettings, clock: Arc<dyn Clock>) -> Result<OpenApi, String> {
        let io = super::http::Transport::new(settings.timeout, clock)?;
        let mut keys = HashMap::new();
        if let Some(c) = &settings.cert_mode {
            keys.insert(c.alipay_cert_sn.clone(), settings.alipay_public_key.clone());
        }
        let current = settings
            .cert_mode
            .as_ref()
            .map(|c| (c.alipay_cert_sn.clone(), c.alipay_cert_not_after));
        // In certificate mode Alipay checks the key by the app certificate's SN.
        let key_label = match &settings.cert_mode {
            Some(c) => format!("app_cert_sn {}", c.app_cert_sn),
            None => settings.private_key.public_key().fingerprint(),
        };
        Ok(OpenApi {
            key_label,
            signer: super::SignerId::new(),
            settings,
            io,
            alipay_keys: Mutex::new(keys),
            download: tokio::sync::Mutex::new(()),
            refused: Mutex::new(HashMap::new()),
            current_alipay: Mutex::new(current),
        })
    }

    /// The last measured difference between the gateway's clock and ours, in seconds.
    pub fn clock_skew_s(&self) -> Option<i64> {
        self.io.skew.get()
    }

    /// Signs and sends one method call; returns the verified response node.
    async fn call(&self, method: &str, biz_content: String) -> Result<Node, CallError> {
        let body = self.send(method, biz_content).await?;
        self.verified_node(method, &body).await
    }

    /// `alipay.trade.pay`'s application parameters for `request`.
    fn pay_biz(&self, request: &PayRequest) -> String {
        let mut biz = json!({
            "out_trade_no": request.request_id,
            "scene": "bar_code",
            "auth_code": request.code.expose(),
            "subject": request.subject,
            "total_amount": request.amount.to_major_string(),
            "terminal_id": request.terminal_id,
            "timeout_express": TIMEOUT_EXPRESS,
        });
        self.sale_fields(&mut biz, request.store_id.as_deref(), &request.basket);
        Self::biz(biz)
    }

    /// Signs and sends one method call; returns the answer's text, not yet verified.
    async fn send(&self, method: &str, biz_content: String) -> Result<String, CallError> {
        let (url, body) = self.signed(method, biz_content);
        self.post(url, body).await
    }

    /// One method call, signed: the URL with the system parameters and `sign` in its query,
    /// and the form body with the application parameters.
    fn signed(&self, method: &str, biz_content: String) -> (url::Url, String) {
        let s = &self.settings;
        let timestamp = self
            .io
            .clock
            .now()
            .with_timezone(&beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("app_id", s.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", timestamp.as_str()),
            ("version", "1.0"),
            ("biz_content", biz_content.as_str()),
        ] {
            params.insert(k.to_string(), v.to_string());
        }
        if let Some(c) = &s.cert_mode {
            params.insert("app_cert_sn".to_string(), c.app_cert_sn.clone());
            params.insert(
                "alipay_root_cert_sn".to_string(),
                c.alipay_root_cert_sn.clone(),
            );
        }
        for (k, v) in [
            ("notify_url", &s.notify_url),
            ("app_auth_token", &s.app_auth_token),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                params.insert(k.to_string(), v.clone());
            }
        }
        let sign = s
            .private_key
            .sign_sha256_base64(wire::sign_content(&params).as_bytes());

        // System parameters and `sign` in the query, application parameters in the body.
        let mut url = s.url.clone();
        let body = {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            let mut query = url.query_pairs_mut();
            for (k, v) in &params {
                if k == "biz_content" || k == "app_auth_token" {
                    body.append_pair(k, v);
                } else {
                    query.append_pair(k, v);
                }
            }
            query.append_pair("sign", &sign);
            body.finish()
        };
        (url, body)
    }

    /// Sends a signed call; returns the answer's text, not yet verified.
    async fn post(&self, url: url::Url, body: String) -> Result<String, CallError> {
        let response = self
            .io
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        self.note_clock(&response);
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            CallError::Unknown(Unknown::new(
                UnknownKind::ConnectionLost,
                format!("answer cut off: {e}"),
            ))
        })?;
        if !status.is_success() {
            return Err(CallError::Unknown(Unknown::new(
                UnknownKind::Malformed,
                format!("HTTP {status} from the gateway"),
            )));
        }
        let body = String::from_utf8(bytes.to_vec()).map_err(|_| {
            CallError::Unknown(Unknown::new(UnknownKind::Malformed, "answer is not UTF-8"))
        })?;
        Ok(body)
    }

    async fn verified_node(&self, method: &str, body: &str) -> Result<Node, CallError> {
        let malformed = |why: String| CallError::Unknown(Unknown::new(UnknownKind::Malformed, why));
        let node_name = wire::response_node(method);
        let content = match wire::extract_signed_content(body, &node_name) {
            Ok(c) => c,
            Err(wire::ExtractError::Missing(_)) => {
                wire::extract_signed_content(body, "error_response")
                    .map_err(|e| malformed(format!("{e} (nor {node_name})")))?
            }
            Err(e) => return Err(malformed(e.to_string())),
        };
        let Some(sign) = wire::root_sign(body) else {
            // The gateway signs every answer it can attribute to our app. One it refuses at
            // the door (wrong app id, signature or certificate mode) comes unsigned: only a
            // request-level rejection is believed from it, and it moves nothing.
            if let Ok(node) = wire::parse_node(content)
                && wire::rejected_before_processing(&node.code)
            {
                tracing::error!(
                    method,
                    code = %node.code,
                    sub_code = node.sub_code.as_deref().unwrap_or(""),
                    "the gateway refused the request at its door (unsigned): nothing was charged"
                );
                return Err(CallError::Rejected(wire::request_refusal(&node)));
            }
            tracing::error!(
                method,
                "gateway answer is not signed: ignored, outcome unknown"
            );
            return Err(CallError::Unknown(Unknown::new(
                UnknownKind::BadSignature,
                "answer carries no signature",
            )));
        };
        let key = match &self.settings.cert_mode {
            None => self.settings.alipay_public_key.clone(),
            Some(c) => {
                let sn =
                    wire::root_alipay_cert_sn(body).unwrap_or_else(|| c.alipay_cert_sn.clone());
                self.alipay_key(&sn).await.map_err(|why| {
                    tracing::error!(
                        method,
                        alipay_cert_sn = %sn,
                        error = %why,
                        "THE ALIPAY CERTIFICATE THAT SIGNED THE ANSWER IS NOT TRUSTED: ignored, outcome unknown"
                    );
                    CallError::Unknown(Unknown::new(
                        UnknownKind::BadSignature,
                        format!("answer signed under Alipay certificate {sn}, which is not trusted: {why}"),
                    ))
                })?
            }
        };
        if !key.verify_sha256_base64(content.as_bytes(), &sign) {
            let file = if self.settings.cert_mode.is_some() {
                "alipay_cert_file"
            } else {
                "alipay_public_key_file"
            };
            tracing::error!(
                method,
                key = %key.source(),
                "GATEWAY ANSWER SIGNATURE DID NOT VERIFY: ignored, outcome unknown; check {file} if this persists"
            );
            return Err(CallError::Unknown(Unknown::new(
                UnknownKind::BadSignature,
                "answer signature did not verify",
            )));
        }
        wire::parse_node(content).map_err(malformed)
    }

    /// The key of the Alipay certificate `sn` names: one already known, or the one
    /// downloaded, checked and stored now (docs/protocol.md §3.4).
    async fn alipay_key(&self, sn: &str) -> Result<PublicKey, String> {
        if let Some(key) = self.known_key(sn) {
            return Ok(key);
        }
        let _one_at_a_time = self.download.lock().await;
        if let Some(key) = self.known_key(sn) {
            return Ok(key);
        }
        if let Some(why) = self.refused(sn) {
            return Err(format!("refused earlier: {why}"));
        }
        let key = self.download_alipay_cert(sn).await?;
        if let Ok(mut keys) = self.alipay_keys.lock() {
            keys.insert(sn.to_string(), key.clone());
        }
        Ok(key)
    }

    /// A downloaded certificate is trusted only if it has the SN asked for, and chains to
    /// the root bundle and is valid now.
    fn check_downloaded(
        &self,
        sn: &str,
        pem: &str,
        roots: &[x509_cert::Certificate],
    ) -> Result<PublicKey, String> {
        let chain = cert::read_pem(pem, &format!("Alipay certificate {sn}"))?;
        let Some(first) = chain.first() else {
            return Err(format!("Alipay certificate {sn}: empty"));
        };
        let got = cert::cert_sn(first);
        if got != sn {
            return Err(format!("the certificate downloaded for {sn} has SN {got}"));
        }
        cert::verify_chain(&chain, roots, self.io.clock.now())?;
        let key = cert::public_key(first, &format!("Alipay certificate {sn}"))?;
        if let Ok(mut current) = self.current_alipay.lock() {
            *current = Some((sn.to_string(), cert::validity(first).1));
        }
        Ok(key)
    }

    /// Why certificate `sn` was refused, if it was within [`REFUSED_FOR`].
    fn refused(&self, sn: &str) -> Option<String> {
        let refused = self.refused.lock().ok()?;
        refused
            .get(sn)
            .filter(|(at, _)| at.elapsed() < REFUSED_FOR)
            .map(|(_, why)| why.clone())
    }

    fn known_key(&self, sn: &str) -> Option<PublicKey> {
        self.alipay_keys.lock().ok()?.get(sn).cloned()
    }

    /// `alipay.open.app.alipaycert.download` of `sn`: the certificate must be the one named,
    /// chain to the root bundle and be valid now, and the download's own answer must verify
    /// with it. Then it is stored in `alipay_cert_file` (the old one kept beside it).
    async fn download_alipay_cert(&self, sn: &str) -> Result<PublicKey, String> {
        let Some(mode) = &self.settings.cert_mode else {
            return Err("not in certificate mode".to_string());
        };
        tracing::warn!(
            alipay_cert_sn = %sn,
            configured = %mode.alipay_cert_sn,
            "the gateway answers under another Alipay certificate: downloading it"
        );
        let biz = json!({ "alipay_cert_sn": sn });
        let body = match self.send(CERT_DOWNLOAD_METHOD, Self::biz(biz)).await {
            Ok(body) => body,
            Err(CallError::NotSent(why)) => return Err(format!("download not sent: {why}")),
            Err(CallError::Unknown(u)) => return Err(format!("download: {u}")),
            Err(CallError::Rejected(f)) => {
                return Err(format!("download refused: {} {}", f.code, f.message));
            }
        };
        let node_name = wire::response_node(CERT_DOWNLOAD_METHOD);
        let content = wire::extract_signed_content(&body, &node_name)
            .map_err(|e| format!("download answer: {e}"))?;
        let node = wire::parse_node(content)?;
        let Some(b64) = node
            .alipay_cert_content
            .as_deref()
            .filter(|_| node.code == "10000")
        else {
            return Err(format!(
                "download answer {} {} {}",
                node.code,
                node.sub_code.unwrap_or_default(),
                node.sub_msg.unwrap_or_default()
            ));
        };
        let pem = {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("alipay_cert_content is not base64: {e}"))?;
            String::from_utf8(bytes)
                .map_err(|_| "alipay_cert_content is not PEM text".to_string())?
        };
        let key = self
            .check_downloaded(sn, &pem, &mode.roots)
            .inspect_err(|why| {
                // Asking again would get the same certificate: refused for a while.
                if let Ok(mut refused) = self.refused.lock() {
                    refused.insert(sn.to_string(), (std::time::Instant::now(), why.clone()));
                }
            })?;
        // The download's own answer is signed under the certificate it names: the one just
        // fetched, or one already trusted.
        let signer = match wire::root_alipay_cert_sn(&body) {
            Some(s) if s == sn => Some(key.clone()),
            Some(s) => self.known_key(&s),
            None => None,
        };
        let sign = wire::root_sign(&body).unwrap_or_default();
        if !signer.is_some_and(|k| k.verify_sha256_base64(content.as_bytes(), &sign)) {
            return Err(
                "the download answer is not signed under a trusted Alipay certificate".to_string(),
            );
        }
        match store_rotated(&mode.alipay_cert_file, &mode.alipay_cert_sn, &pem) {
            Ok(kept) => tracing::warn!(
                alipay_cert_sn = %sn,
                file = %mode.alipay_cert_file.display(),
                old = %kept.display(),
                "Alipay certificate rotated: the new one chains to the root and is stored; the old one is kept"
            ),
            Err(e) => tracing::warn!(
                alipay_cert_sn = %sn,
                file = %mode.alipay_cert_file.display(),
                error = %e,
                "Alipay certificate rotated: the new one chains to the root and is used, but could not be stored, so it is downloaded again after each restart; put Alipay's current certificate (alipayCertPublicKey_RSA2.crt from the Open Platform console) in alipay_cert_file"
            ),
        }
        Ok(key)
    }

    fn note_clock(&self, response: &reqwest::Response) {
        let Some(date) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
        else {
            return;
        };
        self.io
            .skew
            .note(date.with_timezone(&chrono::Utc), self.io.clock.now());
    }

    /// Downloads the day's trade bill (`bill_type=trade`, `date` in Beijing time): asks for
    /// the link and fetches it at once, since it lives about 30 seconds. Returns the zip.
    pub async fn download_bill(&self, date: chrono::NaiveDate) -> Result<Vec<u8>, String> {
        let biz = json!({"bill_type": "trade", "bill_date": date.format("%Y-%m-%d").to_string()});
        let node = match self
            .call(
                "alipay.data.dataservice.bill.downloadurl.query",
                Self::biz(biz),
            )
            .await
        {
            Ok(node) => node,
            Err(CallError::NotSent(why)) => return Err(format!("cannot reach the gateway: {why}")),
            Err(CallError::Unknown(u)) => return Err(format!("no usable answer: {u}")),
            Err(CallError::Rejected(f)) => {
                return Err(format!(
                    "the gateway refused the request: {} {}",
                    f.code, f.message
                ));
            }
        };
        let url = match (node.code.as_str(), node.bill_download_url) {
            ("10000", Some(url)) => url,
            _ => {
                let sub = node.sub_code.unwrap_or_default();
                let hint = if sub == "isp.bill_not_exist" {
                    ": the bill is ready from about 10:00 Beijing time the next day"
                } else {
                    ""
                };
                return Err(format!(
                    "the gateway gave no bill for {date}: {} {} {sub} {}{hint}",
                    node.code,
                    node.msg,
                    node.sub_msg.unwrap_or_default()
                ));
            }
        };
        let response = self
            .io
            .http
            .get(&url)
            .timeout(BILL_DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("bill download: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("bill download: HTTP {}", response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("bill download cut off: {e}"))?;
        Ok(bytes.to_vec())
    }

    /// What a pay and a precreate both send of the sale beyond its amount: the store, the
    /// seller, the service provider, the campaign fields (docs/protocol.md §16.5).
    fn sale_fields(
        &self,
        biz: &mut serde_json::Value,
        store_id: Option<&str>,
        basket: &crate::money::basket::Basket,
    ) {
        if let Some(store) = store_id {
            biz["store_id"] = json!(store);
        }
        if let Some(seller) = &self.settings.seller_id {
            biz["seller_id"] = json!(seller);
        }
        if let Some(isv) = &self.settings.sys_service_provider_id {
            biz["extend_params"] = json!({ "sys_service_provider_id": isv });
        }
        wire::basket_fields(biz, basket);
    }

    fn biz(value: serde_json::Value) -> String {
        value.to_string()
    }
}

/// Stores a rotated Alipay certificate in `file`: the old file is first kept as
/// `<file>.<its SN>` (`fallback_sn` when it does not read as a certificate), then the new one
/// is written beside it and renamed over it, so `file` always holds a whole certificate.
/// Returns where the old one is kept.
fn store_rotated(file: &std::path::Path, fallback_sn: &str, pem: &str) -> Result<PathBuf, String> {
    use std::io::Write;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a file name", file.display()))?;
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    // The file may hold a certificate stored by an earlier rotation of this run.
    let old_sn = cert::load(file)
        .ok()
        .and_then(|certs| certs.first().map(cert::cert_sn))
        .unwrap_or_else(|| fallback_sn.to_string());
    let kept = dir.join(format!("{name}.{old_sn}"));
    if !kept.exists() {
        std::fs::copy(file, &kept)
            .map_err(|e| format!("cannot keep {} as {}: {e}", file.display(), kept.display()))?;
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    tmp.write_all(pem.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    // Readable like the certificate it replaces: a public certificate, not a secret.
    if let Ok(meta) = std::fs::metadata(file) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(file)
        .map_err(|e| format!("cannot replace {}: {e}", file.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(kept)
}

#[async_trait]
impl Gateway for OpenApi {
    fn name(&self) -> &'static str {
        "alipay-openapi"
    }

    fn accepts(&self, wallet: Wallet) -> bool {
        wallet == Wallet::Alipay
    }

    fn clock_skew_s(&self) -> Option<i64> {
        self.io.skew.get()
    }

    fn clock_agrees(&self) -> bool {
        self.io.skew.agrees()
    }

    fn signing_key(&self, _wallet: Wallet) -> Option<String> {
        Some(self.key_label.clone())
    }

    fn certificates(&self) -> Vec<super::CertificateExpiry> {
        use super::CertificateExpiry;
        let Some(c) = &self.settings.cert_mode else {
            return Vec::new();
        };
        let mut all = vec![CertificateExpiry {
            which: "alipay_app_cert",
            sn: c.app_cert_sn.clone(),
            not_after: c.app_cert_not_after,
        }];
        if let Some((sn, not_after)) = self.current_alipay.lock().ok().and_then(|g| g.clone()) {
            all.push(CertificateExpiry {
                which: "alipay_cert",
                sn,
                not_after,
            });
        }
        all.extend(
            c.roots
                .iter()
                .filter(|r| cert::is_rsa_signed(r))
                .map(|r| CertificateExpiry {
                    which: "alipay_root_cert",
                    sn: cert::cert_sn(r),
                    not_after: cert::validity(r).1,
                }),
        );
        all
    }

    fn sign_pay(&self, request: &PayRequest) -> Option<super::SignedPay> {
        let (url, body) = self.signed(PAY, self.pay_biz(request));
        Some(super::SignedPay {
            signer: self.signer,
            request_id: request.request_id.clone(),
            url,
            body,
        })
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let (url, body) = match &request.signed {
            Some(s) if s.is(self.signer, &request.request_id) => (s.url.clone(), s.body.clone()),
            _ => self.signed(PAY, self.pay_biz(request)),
        };
        let answer = match self.post(url, body).await {
            Ok(answer) => answer,
            Err(e) => return e.into_outcome(),
        };
        match self.verified_node(PAY, &answer).await {
            Ok(node) => wire::pay_outcome(&node, &request.request_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn present(&self, request: &super::PresentRequest) -> Outcome<super::Presented> {
        if request.how != super::Presentation::OrderCode {
            return Outcome::Failed(super::Failure {
                code: "entry_code_unsupported".into(),
                message: "the Open Platform has no entry-code payments".into(),
                cashier: "show the order's QR or scan the customer's code".into(),
            });
        }
        // Whole minutes, rounded up: the platform's unit. The watchdog cancels at the exact
        // expiry, so the code never outlives the sale (docs/gateways.md §11).
        let minutes = request.expires_in.as_secs().div_ceil(60).max(1);
        let mut biz = json!({
            "out_trade_no": request.request_id,
            "subject": request.subject,
            "total_amount": request.amount.to_major_string(),
            "terminal_id": request.terminal_id,
            "timeout_express": format!("{minutes}m"),
            "qr_code_timeout_express": format!("{minutes}m"),
        });
        self.sale_fields(&mut biz, request.store_id.as_deref(), &request.basket);
        match self.call("alipay.trade.precreate", Self::biz(biz)).await {
            Ok(node) => wire::present_outcome(&node, &request.request_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        // The voucher details come only when asked for (docs/protocol.md §16).
        let biz = json!({
            "out_trade_no": request_id,
            "query_options": ["fund_bill_list", "voucher_detail_list"],
        });
        match self.call("alipay.trade.query", Self::biz(biz)).await {
            Ok(node) => wire::query_outcome(&node, request_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        let biz = json!({ "out_trade_no": request_id });
        let outcome = match self.call("alipay.trade.cancel", Self::biz(biz)).await {
            Ok(node) => wire::cancel_outcome(&node),
            Err(e) => e.into_outcome(),
        };
        match outcome {
            Outcome::Failed(f)
                if f.code.strip_prefix("aop.").unwrap_or(&f.code)
                    == "ACQ.TRADE_CANCEL_TIME_OUT" =>
            {
                super::reverse_by_refund(self, request_id).await
            }
            other => other,
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        let mut biz = json!({
            "out_trade_no": request.payment_request_id,
            "refund_amount": request.amount.to_major_string(),
            "out_request_no": request.refund_id,
        });
        if let Some(reason) = &request.reason {
            biz["refund_reason"] = json!(reason);
        }
        match self.call("alipay.trade.refund", Self::biz(biz)).await {
            Ok(node) => wire::refund_outcome(&node),
            Err(e) => e.into_outcome(),
        }
    }

    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let biz = json!({
            "out_trade_no": request.payment_request_id,
            "out_request_no": request.refund_id,
        });
        match self
            .call("alipay.trade.fastpay.refund.query", Self::biz(biz))
            .await
        {
            Ok(node) => wire::refund_query_outcome(&node),
            Err(e) => e.into_outcome(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store_rotated;

    #[test]
    fn a_rotated_certificate_replaces_the_file_and_each_old_one_is_kept_under_its_sn() {
        use super::cert;
        let pem = |serial| {
            let key = crate::gateway::keys::PrivateKey::generate(1024, "test").unwrap();
            let c = cert::issue(
                &key,
                "CN=Test,O=Test,C=CN",
                None,
                serial,
                std::time::Duration::from_secs(86_400),
            )
            .unwrap();
            (cert::to_pem(&c).unwrap(), cert::cert_sn(&c))
        };
        let ((first, first_sn), (second, second_sn), (third, _)) = (pem(1), pem(2), pem(3));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alipayCertPublicKey_RSA2.crt");
        std::fs::write(&file, &first).unwrap();
        let kept = store_rotated(&file, "configured", &second).unwrap();
        assert_eq!(
            kept,
            dir.path()
                .join(format!("alipayCertPublicKey_RSA2.crt.{first_sn}"))
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), second);
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), first);
        // A second rotation in the same run keeps the second under its own SN.
        let kept = store_rotated(&file, "configured", &third).unwrap();
        assert_eq!(
            kept,
            dir.path()
                .join(format!("alipayCertPublicKey_RSA2.crt.{second_sn}"))
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), second);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), third);
        // A file that is no certificate is kept under the SN it was configured with, and a
        // kept file is never overwritten.
        std::fs::write(&file, "damaged").unwrap();
        let kept = store_rotated(&file, "configured", &first).unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "damaged");
        std::fs::write(&file, "damaged again").unwrap();
        store_rotated(&file, "configured", &second).unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "damaged");
        // Nothing but the certificates: no temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn a_certificate_that_cannot_be_stored_is_refused_naming_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The configured file is gone: the old one cannot be kept, so nothing is written.
        let missing = store_rotated(&dir.path().join("absent.crt"), "sn", "new").unwrap_err();
        assert!(missing.contains("absent.crt"), "{missing}");
        // A file name that is a directory cannot be replaced: the kept copy fails first.
        let as_dir = dir.path().join("cert.crt");
        std::fs::create_dir(&as_dir).unwrap();
        let err = store_rotated(&as_dir, "sn", "new").unwrap_err();
        assert!(err.contains("cert.crt"), "{err}");
        assert!(as_dir.is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
