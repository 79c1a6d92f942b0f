//! The sandbox's HTTP front: accepts connections and routes each request to the protocol it
//! speaks (`POST /gateway.do` the Open Platform, `/ams/.../payments/*` and
//! `/ams/.../authorizations/*` AMS, `GET
//! /_sandbox/bill/…` the bill download, `/v3/…` WeChat Pay APIv3), plus `GET /_sandbox/ledger` for tests and operators, `POST /_sandbox/trades/{id}/unfreeze` (code `15`) `POST /_sandbox/keys` (another merchant key) and `/_sandbox/authorizations/…` (a customer
//! approving a member binding, token lifetimes: `authorizations.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::server::{Answer, SandboxServer, plain};
use super::{ams, bill, wechat};

const MAX_BODY: usize = 64 * 1024;

impl SandboxServer {
    /// `POST /_sandbox/customer?code=<QR content or request id>&action=pay|scan|abandon|pay_at_cancel`.
    fn customer(&self, query: &str) -> Response<Full<Bytes>> {
        let arg = |key: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let Some(code) = arg("code").filter(|c| !c.is_empty()) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "code: the QR's content or the request id".into(),
            );
        };
        let action = arg("action").unwrap_or_else(|| "pay".into());
        let Some(action) = super::CustomerAction::parse(&action) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "action: pay, scan, abandon or pay_at_cancel".into(),
            );
        };
        match self.sandbox.customer(&code, action) {
            Ok(request_id) => {
                if action == super::CustomerAction::Pay {
                    self.notify_paid(&request_id);
                }
                plain(StatusCode::OK, "text/plain", request_id)
            }
            Err(why) => plain(StatusCode::CONFLICT, "text/plain", why),
        }
    }

    /// `POST /_sandbox/notify?delay_ms=N&duplicate=true|false&corrupt=true|false`.
    fn notify_modes(&self, query: &str) -> Response<Full<Bytes>> {
        let mut modes = self.notify.modes();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let flag = match v.as_ref() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            match (k.as_ref(), flag) {
                ("duplicate", Some(f)) => modes.duplicate = f,
                ("corrupt", Some(f)) => modes.corrupt = f,
                ("delay_ms", _) if v.parse::<u64>().is_ok() => {
                    modes.delay = std::time::Duration::from_millis(v.parse().unwrap_or(0));
                }
                _ => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("{k}={v}: delay_ms=N, duplicate=true|false, corrupt=true|false"),
                    );
                }
            }
        }
        self.notify.set_modes(modes);
        plain(
            StatusCode::OK,
            "text/plain",
            format!(
                "delay_ms={} duplicate={} corrupt={}",
                modes.delay.as_millis(),
                modes.duplicate,
                modes.corrupt
            ),
        )
    }

    /// `POST /_sandbox/present?not_exist_until_scanned=true|false&auto_pay_after_s=N|off`.
    fn present_modes(&self, query: &str) -> Response<Full<Bytes>> {
        let mut modes = self.sandbox.present_modes();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match (k.as_ref(), v.as_ref()) {
                ("not_exist_until_scanned", "true") => modes.not_exist_until_scanned = true,
                ("not_exist_until_scanned", "false") => modes.not_exist_until_scanned = false,
                ("auto_pay_after_s", "off") => modes.auto_pay_after = None,
                ("auto_pay_after_s", n) if n.parse::<u64>().is_ok() => {
                    modes.auto_pay_after =
                        Some(std::time::Duration::from_secs(n.parse().unwrap_or(0)));
                }
                _ => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!(
                            "{k}={v}: not_exist_until_scanned=true|false, auto_pay_after_s=N|off"
                        ),
                    );
                }
            }
        }
        self.sandbox.set_present_modes(modes);
        plain(
            StatusCode::OK,
            "text/plain",
            format!(
                "not_exist_until_scanned={} auto_pay_after_s={}",
                modes.not_exist_until_scanned,
                modes
                    .auto_pay_after
                    .map(|d| d.as_secs().to_string())
                    .unwrap_or("off".into())
            ),
        )
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
            // Certificate mode: a new Alipay certificate (docs/gateways.md §9).
            (&Method::POST, super::cert::ROTATE_PATH) => Ok(self.rotate_alipay_cert().await),
            // A merchant key uploaded beside the one in use, before the switch to it.
            (&Method::POST, "/_sandbox/keys") => {
                let query = req.uri().query().unwrap_or("").to_string();
                let body = match read_body(req.into_body()).await {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                Ok(self.register_key(&query, &body))
            }
            // Plays the customer on a presented code (docs/protocol.md §17).
            (&Method::POST, "/_sandbox/customer") => {
                Ok(self.customer(req.uri().query().unwrap_or("")))
            }
            (&Method::POST, "/_sandbox/notify") => {
                Ok(self.notify_modes(req.uri().query().unwrap_or("")))
            }
            (&Method::POST, "/_sandbox/present") => {
                Ok(self.present_modes(req.uri().query().unwrap_or("")))
            }
            (m, p) if p.starts_with(super::authorizations::ADMIN_PREFIX) => {
                let (status, body) =
                    self.authorizations
                        .admin(m, p, req.uri().query().unwrap_or(""));
                if let (Some(url), Some(code), Some(state)) = (
                    body["notify_url"].as_str(),
                    body["auth_code"].as_str(),
                    body["auth_state"].as_str(),
                ) {
                    self.notify_authorization(url, code, state);
                }
                Ok(plain(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND),
                    "application/json",
                    body.to_string(),
                ))
            }
            (&Method::GET, "/_sandbox/ledger") => {
                let ledger = serde_json::to_string(&self.sandbox.ledger()).unwrap_or_default();
                Ok(plain(StatusCode::OK, "application/json", ledger))
            }
            (&Method::POST, p) if unfreeze_id(p).is_some() => {
                let id = unfreeze_id(p).unwrap_or_default();
                Ok(if self.sandbox.unfreeze(id) {
                    plain(StatusCode::OK, "text/plain", "unfrozen".into())
                } else {
                    plain(StatusCode::NOT_FOUND, "text/plain", "no such trade".into())
                })
            }
            (&Method::POST, p) if ams::is_ams_path(p) => {
                let headers = req.headers().clone();
                let body = match read_body(req.into_body()).await {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                ams::handle(self, &path, &headers, &body).await
            }
            (_, p) if wechat::is_wechat_path(p) => {
                let method = req.method().clone();
                let target = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let headers = req.headers().clone();
                let body = match read_body(req.into_body()).await {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                wechat::handle(self, &method, &path, &target, &headers, &body).await
            }
            (&Method::GET, p) if p.starts_with(bill::BILL_PATH) => Ok(self.bill_file(
                p.trim_start_matches(bill::BILL_PATH),
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
                let body = match read_body(req.into_body()).await {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                self.open_platform(query.as_bytes(), &body, &host, peer)
                    .await
            }
            _ => Ok(plain(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found".into(),
            )),
        }
    }
}

impl SandboxServer {
    /// `POST /_sandbox/keys?key_version=N` with a PEM public key: the merchant's key of
    /// version N (AMS looks keys up by version; the Open Platform and WeChat Pay accept any
    /// registered one). Version 1 is the key the sandbox started with.
    fn register_key(&self, query: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let version = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "key_version")
            .map(|(_, v)| v.into_owned());
        let version = match version.as_deref().map(str::parse::<u32>) {
            None => 2,
            Some(Ok(v)) if v > 0 => v,
            Some(_) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "key_version: a whole number from 1".into(),
                );
            }
        };
        let text = String::from_utf8_lossy(body);
        // Certificate mode: an app certificate for the new key, issued by the sandbox's root.
        if text.contains("BEGIN CERTIFICATE") {
            let Some(mode) = &self.cert_mode else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "a certificate, but the sandbox is not in certificate mode (--cert-mode)"
                        .into(),
                );
            };
            return match mode.upload_app_cert(&text) {
                Ok((sn, key)) => {
                    let fingerprint = key.fingerprint();
                    self.add_merchant_key(version, key);
                    tracing::info!(version, sn = %sn, "sandbox: app certificate registered");
                    plain(
                        StatusCode::OK,
                        "text/plain",
                        format!("key_version {version} {fingerprint} app_cert_sn {sn}\n"),
                    )
                }
                Err(e) => plain(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("the certificate is refused: {e}"),
                ),
            };
        }
        let Some(key) = crate::gateway::keys::PublicKey::parse(&text, "uploaded key") else {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "the body is not an RSA public key (PEM or base64 SubjectPublicKeyInfo)".into(),
            );
        };
        let fingerprint = key.fingerprint();
        self.add_merchant_key(version, key);
        tracing::info!(version, key = %fingerprint, "sandbox: merchant key registered");
        plain(
            StatusCode::OK,
            "text/plain",
            format!("key_version {version} {fingerprint}\n"),
        )
    }
}

/// The request id in `/_sandbox/trades/{id}/unfreeze`, when the path is that.
fn unfreeze_id(path: &str) -> Option<&str> {
    path.strip_prefix("/_sandbox/trades/")
        .and_then(|rest| rest.strip_suffix("/unfreeze"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The request's body, or the answer refusing one larger than [`MAX_BODY`].
async fn read_body(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body too large".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::unfreeze_id;

    #[test]
    fn the_unfreeze_path_names_one_request_id_or_nothing() {
        assert_eq!(
            unfreeze_id("/_sandbox/trades/T1_ab/unfreeze"),
            Some("T1_ab")
        );
        for path in [
            "/_sandbox/trades/unfreeze",
            "/_sandbox/trades//unfreeze",
            "/_sandbox/trades/a/b/unfreeze",
            "/_sandbox/trades/T1",
            "/_sandbox/ledger",
        ] {
            assert_eq!(unfreeze_id(path), None, "{path}");
        }
    }
}
