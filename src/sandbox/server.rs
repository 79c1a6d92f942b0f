//! What the HTTP sandbox's protocol modules share: the server (the sandbox it answers for, the
//! keys it signs and verifies with, the ids it expects) and the form of an answer, a response
//! or a connection dropped without one.

use std::sync::{Arc, RwLock};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::Sandbox;
use super::keys::SandboxKeys;
use crate::gateway::keys::{PrivateKey, PublicKey};

/// The app id the sandbox expects unless told otherwise.
pub const DEFAULT_APP_ID: &str = "2021000000000001";
/// The AMS client id the sandbox expects unless told otherwise (`SANDBOX_` ids use the
/// `/ams/sandbox/api` paths, as with Antom's own sandbox).
pub const DEFAULT_CLIENT_ID: &str = "SANDBOX_SCANPAY0001";

/// The sandbox over HTTP: one server answers both protocols from one ledger.
pub struct SandboxServer {
    pub sandbox: Arc<Sandbox>,
    pub(super) gateway_key: PrivateKey,
    /// The merchant's public keys it verifies requests with, by key version: the one the
    /// sandbox was started with is version 1; `POST /_sandbox/keys` adds more, as the
    /// merchant uploads a new key before switching to it (docs/gateways.md §10).
    merchant_keys: RwLock<Vec<(u32, PublicKey)>>,
    /// The Open Platform app id the sandbox expects.
    pub(super) app_id: String,
    /// The AMS client id the sandbox expects.
    pub(super) client_id: String,
    /// WeChat Pay: the platform key, its certificate and public-key ids, the APIv3 key, and
    /// the switches for what no source confirms (docs/gateways.md §8.7).
    pub(super) wechat_key: PrivateKey,
    pub(super) wechat_cert_serial: String,
    pub(super) wechat_cert_pem: String,
    pub(super) wechat_public_key_id: String,
    pub(super) wechat_apiv3_key: String,
    pub(super) wechat_modes: super::WechatModes,
    /// Open Platform certificate mode, when the sandbox plays an app in it.
    pub(super) cert_mode: Option<Arc<super::cert::CertMode>>,
    /// Where each presented code's payment is notified, and how notifications misbehave.
    pub(super) notify: super::notify::Notifications,
    /// AMS member authorizations: consults, auth codes, tokens (`authorizations.rs`).
    pub(super) authorizations: super::authorizations::Authorizations,
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
            merchant_keys: RwLock::new(vec![(1, keys.app_public_key.clone())]),
            app_id: app_id.to_string(),
            client_id: client_id.to_string(),
            wechat_key: keys.wechat.platform_key.clone(),
            wechat_cert_serial: keys.wechat.cert_serial.clone(),
            wechat_cert_pem: keys.wechat.cert_pem.clone(),
            wechat_public_key_id: keys.wechat.public_key_id.clone(),
            wechat_apiv3_key: keys.wechat.apiv3_key.clone(),
            wechat_modes: super::WechatModes::default(),
            cert_mode: None,
            notify: Default::default(),
            authorizations: Default::default(),
        }
    }

    /// The same server playing an Open Platform app in certificate mode.
    pub fn with_cert_mode(mut self, mode: super::cert::CertMode) -> SandboxServer {
        self.cert_mode = Some(Arc::new(mode));
        self
    }

    /// The same server with these WeChat Pay behaviours switched on.
    pub fn with_wechat_modes(mut self, modes: super::WechatModes) -> SandboxServer {
        self.wechat_modes = modes;
        self
    }

    /// Whether `signature` over `message` verifies with the merchant key of `version`, or
    /// with any of the merchant's keys when no version is named (the Open Platform, WeChat
    /// Pay).
    pub(super) fn merchant_signed(
        &self,
        version: Option<u32>,
        message: &[u8],
        signature_b64: &str,
    ) -> bool {
        let keys = self.merchant_keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter(|(v, _)| version.is_none_or(|want| *v == want))
            .any(|(_, k)| k.verify_sha256_base64(message, signature_b64))
    }

    /// Whether a merchant key of `version` is registered.
    pub(super) fn has_key_version(&self, version: u32) -> bool {
        let keys = self.merchant_keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().any(|(v, _)| *v == version)
    }

    /// Registers `key` as the merchant's key of `version` (replacing one of that version).
    pub fn add_merchant_key(&self, version: u32, key: PublicKey) {
        let mut keys = self
            .merchant_keys
            .write()
            .unwrap_or_else(|e| e.into_inner());
        keys.retain(|(v, _)| *v != version);
        keys.push((version, key));
    }

    /// The trade number the ledger gave `request_id`, if any.
    pub(super) fn trade_no(&self, request_id: &str) -> Option<String> {
        self.sandbox
            .ledger()
            .into_iter()
            .find(|e| e.request_id == request_id)
            .map(|e| e.trade_no)
    }
}

pub(super) fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    encoded(status, content_type, body.into_bytes())
}

/// A response whose body is already in the charset `content_type` names.
pub(super) fn encoded(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
