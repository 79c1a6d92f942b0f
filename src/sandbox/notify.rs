//! The sandbox's payment notifications (docs/gateways.md §12): when the customer pays a
//! presented code whose request named a notify URL (the Open Platform's `notify_url`, AMS
//! `paymentNotifyUrl`), the sandbox posts the notification there, signed as the provider
//! signs it. `POST /_sandbox/notify?delay_ms=N&duplicate=true&corrupt=true` makes them late,
//! sent twice, or altered after signing (so they must not verify).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::server::SandboxServer;

/// Which protocol a notification speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    OpenPlatform,
    Ams,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyModes {
    pub delay: Duration,
    pub duplicate: bool,
    pub corrupt: bool,
}

#[derive(Default)]
pub(crate) struct Notifications {
    targets: Mutex<HashMap<String, (String, Protocol)>>,
    modes: Mutex<NotifyModes>,
}

impl Notifications {
    pub(super) fn remember(&self, request_id: &str, url: &str, protocol: Protocol) {
        if url.is_empty() {
            return;
        }
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request_id.to_string(), (url.to_string(), protocol));
    }

    pub(super) fn modes(&self) -> NotifyModes {
        *self.modes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_modes(&self, modes: NotifyModes) {
        *self.modes.lock().unwrap_or_else(|e| e.into_inner()) = modes;
    }

    fn target(&self, request_id: &str) -> Option<(String, Protocol)> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(request_id)
            .cloned()
    }
}

/// What a notification carries, taken when the customer paid.
struct Paid {
    request_id: String,
    trade_no: String,
    amount: String,
    app_id: String,
    client_id: String,
    key: crate::gateway::keys::PrivateKey,
}

impl SandboxServer {
    /// Sends the notification that `request_id` was paid, if its request named where to (in
    /// the background, after the configured delay; twice, or corrupted, as configured).
    pub(super) fn notify_paid(&self, request_id: &str) {
        let Some((url, protocol)) = self.notify.target(request_id) else {
            return;
        };
        let modes = self.notify.modes();
        let entry = self
            .sandbox
            .ledger()
            .into_iter()
            .find(|e| e.request_id == request_id);
        let minor = entry.as_ref().map(|e| e.charged_minor).unwrap_or(0);
        let paid = Paid {
            request_id: request_id.to_string(),
            trade_no: entry.map(|e| e.trade_no).unwrap_or_default(),
            amount: format!("{}.{:02}", minor / 100, minor % 100),
            app_id: self.app_id.clone(),
            client_id: self.client_id.clone(),
            key: self.gateway_key.clone(),
        };
        tokio::spawn(async move {
            tokio::time::sleep(modes.delay).await;
            let sends = if modes.duplicate { 2 } else { 1 };
            for _ in 0..sends {
                let sent = match protocol {
                    Protocol::OpenPlatform => post_open_platform(&url, &paid, modes.corrupt).await,
                    Protocol::Ams => post_ams(&url, &paid, modes.corrupt).await,
                };
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "sandbox notification not delivered");
                }
            }
        });
    }
}

impl SandboxServer {
    /// Sends `notifyAuthorization` for an approval to `url` (in the background), signed as
    /// `notifyPayment` is. Its field names beyond `authCode` and `authState` are not
    /// confirmed (docs/protocol.md §18). Delayed, doubled or corrupted as `/_sandbox/notify`
    /// says.
    pub(super) fn notify_authorization(&self, url: &str, auth_code: &str, auth_state: &str) {
        let modes = self.notify.modes();
        let body = serde_json::json!({
            "authorizationNotifyType": "AUTHCODE_CREATED",
            "authCode": auth_code,
            "authState": auth_state,
            "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
        })
        .to_string();
        let (url, client_id, key) = (
            url.to_string(),
            self.client_id.clone(),
            self.gateway_key.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(modes.delay).await;
            let sends = if modes.duplicate { 2 } else { 1 };
            // Corrupted: altered after signing, so it must not verify.
            let sent = if modes.corrupt {
                body.replace("AUTHCODE_CREATED", "AUTHCODE_CREATEX")
            } else {
                body.clone()
            };
            for _ in 0..sends {
                if let Err(e) = post_ams_signed(&url, &client_id, &key, &body, &sent).await {
                    tracing::debug!(error = %e, "sandbox authorization notification not delivered");
                }
            }
        });
    }
}

/// Posts `sent` to `url` with the gateway's signature over `signed`, as AMS notifications
/// are signed (the two differ only for a corrupted one).
async fn post_ams_signed(
    url: &str,
    client_id: &str,
    key: &crate::gateway::keys::PrivateKey,
    signed: &str,
    sent: &str,
) -> Result<(), String> {
    let path = url::Url::parse(url)
        .map_err(|e| e.to_string())?
        .path()
        .to_string();
    let time = chrono::Utc::now().timestamp_millis().to_string();
    let content =
        crate::gateway::alipay_ams::wire::sign_content("POST", &path, client_id, &time, signed);
    let sig = crate::gateway::alipay_ams::wire::signature_header(
        1,
        &key.sign_sha256_base64(content.as_bytes()),
    );
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json; charset=UTF-8")
        .header("client-id", client_id)
        .header("request-time", &time)
        .header("signature", sig)
        .body(sent.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answer.text().await.map(|_| ()).map_err(|e| e.to_string())
}

async fn post_open_platform(url: &str, p: &Paid, corrupt: bool) -> Result<(), String> {
    let now = chrono::Utc::now()
        .with_timezone(&crate::clock::beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let mut params: std::collections::BTreeMap<&str, String> = [
        ("notify_time", now.clone()),
        ("notify_type", "trade_status_sync".to_string()),
        ("notify_id", format!("sbx{}", p.trade_no)),
        ("app_id", p.app_id.clone()),
        ("charset", "utf-8".to_string()),
        ("version", "1.0".to_string()),
        ("trade_no", p.trade_no.clone()),
        ("out_trade_no", p.request_id.clone()),
        ("trade_status", "TRADE_SUCCESS".to_string()),
        ("total_amount", p.amount.clone()),
        ("receipt_amount", p.amount.clone()),
        ("gmt_payment", now),
    ]
    .into_iter()
    .collect();
    let content = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let sign = p.key.sign_sha256_base64(content.as_bytes());
    if corrupt {
        params.insert("total_amount", "0.01".to_string());
    }
    params.insert("sign_type", "RSA2".to_string());
    params.insert("sign", sign);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let answer = reqwest::Client::new()
        .post(url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answer.text().await.map(|_| ()).map_err(|e| e.to_string())
}

async fn post_ams(url: &str, p: &Paid, corrupt: bool) -> Result<(), String> {
    let path = url::Url::parse(url)
        .map_err(|e| e.to_string())?
        .path()
        .to_string();
    let body = serde_json::json!({
        "notifyType": "PAYMENT_RESULT",
        "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
        "paymentRequestId": p.request_id,
        "paymentId": p.trade_no,
        "paymentAmount": {"currency": "USD", "value": p.amount.replace('.', "")},
        "paymentTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .to_string();
    let time = chrono::Utc::now().timestamp_millis().to_string();
    let content =
        crate::gateway::alipay_ams::wire::sign_content("POST", &path, &p.client_id, &time, &body);
    let sig = crate::gateway::alipay_ams::wire::signature_header(
        1,
        &p.key.sign_sha256_base64(content.as_bytes()),
    );
    let body = if corrupt {
        body.replace("PAYMENT_RESULT", "PAYMENT_RESULX")
    } else {
        body
    };
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json; charset=UTF-8")
        .header("client-id", &p.client_id)
        .header("request-time", &time)
        .header("signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answer.text().await.map(|_| ()).map_err(|e| e.to_string())
}
