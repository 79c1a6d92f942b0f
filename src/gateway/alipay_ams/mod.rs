//! Alipay Global / Antom AMS client: `payments/pay` with `IN_STORE_PAYMENT` and a
//! user-presented code, `inquiryPayment`, `cancel`, `refund`, `inquiryRefund`. Requests carry
//! `Client-Id`, `Request-Time` and an RSA256 `Signature` header over
//! `POST <path>\n<client-id>.<request-time>.<body>`; every answer's `signature` header is
//! verified over `POST <path>\n<client-id>.<response-time>.<raw body>`. An answer that does
//! not verify is `Unknown`.

pub mod authorizations;
pub mod report;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{CallError, classify, without_url};
use super::keys::{PrivateKey, PublicKey};
use super::{
    Cancelled, Gateway, Outcome, Paid, PayRequest, RefundRequest, Refunded, TradeStatus, Unknown,
    UnknownKind,
};
use crate::clock::{Clock, beijing};
use crate::paycode::Wallet;
use wire::{Merchant, PayBody, PaymentSource};

/// How often a throttled pay (`REQUEST_TRAFFIC_EXCEED_LIMIT`) is resent, and the first pause.
const THROTTLE_RETRIES: u32 = 2;
const THROTTLE_BACKOFF: Duration = Duration::from_millis(500);

/// What the AMS client is configured with.
#[derive(Debug, Clone)]
pub struct AmsSettings {
    /// Origin, e.g. `https://open-sea-global.alipay.com`; paths are appended.
    pub origin: url::Url,
    pub client_id: String,
    pub key_version: u32,
    pub private_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    pub merchant: Merchant,
    /// `paymentExpiryTime` = request time + this, when set.
    pub payment_expiry: Option<Duration>,
    pub timeout: Duration,
}

pub struct Ams {
    settings: AmsSettings,
    /// HTTP, clock and skew (the skew from the answers' `response-time` or `Date`).
    io: super::http::Transport,
    /// [`Gateway::signing_key`]: the key version Antom looks the key up by, and which key.
    key_label: String,
}

impl Ams {
    pub fn new(settings: AmsSettings, clock: Arc<dyn Clock>) -> Result<Ams, String> {
        let io = super::http::Transport::new(settings.timeout, clock)?;
        let key_label = format!(
            "key_version {} {}",
            settings.key_version,
            settings.private_key.public_key().fingerprint()
        );
        Ok(Ams {
            settings,
            io,
            key_label,
        })
    }

    /// Sends the pay `body` (a payment code's or a member's), and the very same bytes again
    /// under the same request id while Antom answers it is throttled.
    async fn pay_resent_while_throttled(&self, request_id: &str, body: &str) -> Outcome<Paid> {
        let mut backoff = crate::clock::Backoff::new(THROTTLE_BACKOFF, THROTTLE_BACKOFF * 4);
        let mut attempt = 0;
        loop {
            let answer = match self.call(wire::PAY_PATH, body.to_string()).await {
                Ok(answer) => answer,
                Err(e) => return e.into_outcome(),
            };
            if wire::is_throttled(&answer) && attempt < THROTTLE_RETRIES {
                tracing::warn!(
                    request_id,
                    "gateway throttled the request; resending it unchanged"
                );
                tokio::time::sleep(backoff.pause()).await;
                attempt += 1;
                continue;
            }
            return wire::pay_outcome(&answer, request_id);
        }
    }

    /// Signs and sends `body` to `path`; returns the verified answer.
    async fn call(&self, path: &str, body: String) -> Result<Value, CallError> {
        let s = &self.settings;
        let path = wire::request_path(&s.client_id, path);
        let request_time = self.io.clock.now().timestamp_millis().to_string();
        let content = wire::sign_content("POST", &path, &s.client_id, &request_time, &body);
        let signature = wire::signature_header(
            s.key_version,
            &s.private_key.sign_sha256_base64(content.as_bytes()),
        );
        let mut url = s.origin.clone();
        url.set_path(&path);
        let response = self
            .io
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .header("Client-Id", &s.client_id)
            .header("Request-Time", &request_time)
            .header("Signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (client_id, response_time, signature) = (
            header("client-id"),
            header("response-time"),
            header("signature"),
        );
        if let Some(at) = response_time
            .as_deref()
            .and_then(wire::parse_time)
            .or_else(|| {
                header("date")
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
                    .map(|d| d.with_timezone(&chrono::Utc))
            })
        {
            self.io.skew.note(at, self.io.clock.now());
        }
        let bytes = response.bytes().await.map_err(|e| {
            CallError::Unknown(Unknown::new(
                UnknownKind::ConnectionLost,
                format!("answer cut off: {}", without_url(&e)),
            ))
        })?;
        if !status.is_success() {
            return Err(CallError::Unknown(Unknown::new(
                UnknownKind::Malformed,
                format!("HTTP {status} from the gateway"),
            )));
        }
        let body = std::str::from_utf8(&bytes).map_err(|_| {
            CallError::Unknown(Unknown::new(UnknownKind::Malformed, "answer is not UTF-8"))
        })?;
        let bad_signature = |why: &str| {
            tracing::error!(path = %path, why, "GATEWAY ANSWER NOT VERIFIED: ignored, outcome unknown; check alipay_public_key_file if this persists");
            CallError::Unknown(Unknown::new(UnknownKind::BadSignature, why.to_string()))
        };
        let (Some(client_id), Some(response_time), Some(signature)) =
            (client_id, response_time, signature)
        else {
            // Antom signs what it can attribute to our client id and key. A request it
            // refuses at the door (unknown client id, a signature it cannot verify) comes
            // unsigned: only such a refusal is believed from it, and it moves nothing.
            if let Some(r) = serde_json::from_str::<Value>(body)
                .ok()
                .as_ref()
                .and_then(wire::result_of)
                .filter(|r| r.status == "F" && wire::refused_at_door(&r.code))
            {
                tracing::error!(path = %path, code = %r.code, "the gateway refused the request at its door (unsigned): nothing was charged");
                return Err(CallError::Rejected(wire::door_refusal(&r)));
            }
            return Err(bad_signature(
                "answer lacks client-id, response-time or signature",
            ));
        };
        if client_id != s.client_id {
            return Err(bad_signature("answer is signed for another client id"));
        }
        let signature = wire::parse_signature_header(&signature)
            .ok_or_else(|| bad_signature("signature header unreadable"))?;
        let content = wire::sign_content("POST", &path, &client_id, &response_time, body);
        if !s
            .alipay_public_key
            .verify_sha256_base64(content.as_bytes(), &signature)
        {
            return Err(bad_signature("answer signature did not verify"));
        }
        serde_json::from_str(body).map_err(|e| {
            CallError::Unknown(Unknown::new(
                UnknownKind::Malformed,
                format!("answer is not JSON: {e}"),
            ))
        })
    }
}

#[async_trait]
impl Gateway for Ams {
    fn name(&self) -> &'static str {
        "alipay-ams"
    }

    fn accepts(&self, wallet: Wallet) -> bool {
        matches!(wallet, Wallet::Alipay | Wallet::AlipayPlus)
    }

    fn policy(&self) -> super::Policy {
        super::Policy::AMS
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

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let now = self.io.clock.now().with_timezone(&beijing());
        let request_time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let expiry = self
            .settings
            .payment_expiry
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        // Built once: a resend after throttling carries the very same bytes.
        let body = wire::pay_body(&PayBody {
            request_id: &request.request_id,
            source: PaymentSource::PaymentCode(request.code.expose()),
            amount: request.amount,
            description: &request.subject,
            terminal_id: &request.terminal_id,
            request_time: &request_time,
            expiry_time: expiry.as_deref(),
            merchant: &self.settings.merchant,
            goods: &request.basket.goods,
        });
        self.pay_resent_while_throttled(&request.request_id, &body)
            .await
    }

    async fn pay_agreement(&self, request: &super::AgreementRequest) -> Outcome<Paid> {
        let now = self.io.clock.now().with_timezone(&beijing());
        let request_time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let expiry = chrono::Duration::from_std(request.expires_in)
            .ok()
            .map(|d| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        // Built once: a resend carries the very same bytes, under the same request id.
        let body = zeroize::Zeroizing::new(wire::pay_body(&PayBody {
            request_id: &request.request_id,
            source: PaymentSource::Agreement {
                wallet: &request.wallet_type,
                access_token: &request.access_token,
            },
            amount: request.amount,
            description: &request.subject,
            terminal_id: &request.terminal_id,
            request_time: &request_time,
            expiry_time: expiry.as_deref(),
            merchant: &self.settings.merchant,
            goods: &request.basket.goods,
        }));
        self.pay_resent_while_throttled(&request.request_id, &body)
            .await
    }

    async fn present(&self, request: &super::PresentRequest) -> Outcome<super::Presented> {
        let now = self.io.clock.now().with_timezone(&beijing());
        let request_time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        // Antom closes the code at its expiry; the watchdog's cancel comes after it
        // (engine/present.rs), so no payment can arrive once the sale has ended.
        let expiry = chrono::Duration::from_std(request.expires_in)
            .ok()
            .map(|d| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        let source = match &request.how {
            super::Presentation::OrderCode => PaymentSource::OrderCode,
            super::Presentation::EntryCode { user_agent } => {
                PaymentSource::EntryCode { user_agent }
            }
        };
        let body = wire::pay_body(&PayBody {
            request_id: &request.request_id,
            source,
            amount: request.amount,
            description: &request.subject,
            terminal_id: &request.terminal_id,
            request_time: &request_time,
            expiry_time: expiry.as_deref(),
            merchant: &self.settings.merchant,
            goods: &request.basket.goods,
        });
        match self.call(wire::PAY_PATH, body).await {
            Ok(answer) => wire::present_outcome(&answer, &request.request_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        let body = json!({ "paymentRequestId": request_id }).to_string();
        match self.call(wire::INQUIRY_PATH, body).await {
            Ok(answer) => wire::inquiry_outcome(&answer, request_id),
            Err(e) => e.into_outcome(),
        }
    }

    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        // The cancel answer does not say whether it refunded, and the customer may pay in
        // the moment between an inquiry and the cancel. So the outcome is decided by what
        // Antom states after the cancel; an inquiry after it that fails leaves it unknown
        // (the cancel is resent with the same request id, which Antom answers the same way).
        // A failed inquiry before does not hold the cancel back (the cancel window must not
        // run out behind a failing inquiry): what is stated after the cancel decides.
        let was_paid = matches!(
            self.inquire(request_id).await,
            Outcome::Success(TradeStatus::Paid(_) | TradeStatus::Reversed(_))
        );
        let body = json!({ "paymentRequestId": request_id }).to_string();
        let outcome = match self.call(wire::CANCEL_PATH, body).await {
            Ok(answer) => wire::cancel_outcome(&answer),
            Err(e) => e.into_outcome(),
        };
        match outcome {
            Outcome::Success(Cancelled::Closed | Cancelled::Refunded) => {
                match self.inquire(request_id).await {
                    Outcome::Success(TradeStatus::Paid(_) | TradeStatus::Reversed(_)) => {
                        Outcome::Success(Cancelled::Refunded)
                    }
                    Outcome::Success(TradeStatus::Closed(_)) if was_paid => {
                        Outcome::Success(Cancelled::Refunded)
                    }
                    Outcome::Success(TradeStatus::Closed(_)) => Outcome::Success(Cancelled::Closed),
                    Outcome::Success(TradeStatus::NotFound) => {
                        Outcome::Success(Cancelled::NotCreated {
                            code: "ORDER_NOT_EXIST",
                        })
                    }
                    Outcome::Success(TradeStatus::Waiting) => Outcome::Unknown(Unknown::new(
                        UnknownKind::ProviderUnsure,
                        "cancel accepted but the payment is still processing",
                    )),
                    other => other.map(|_| Cancelled::Closed),
                }
            }
            Outcome::Failed(f) if f.code == "CANCEL_WINDOW_EXCEED" => {
                super::reverse_by_refund(self, request_id).await
            }
            other => other,
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        let payment_id = match &request.trade_id {
            Some(id) => id.clone(),
            None => match self.inquire(&request.payment_request_id).await {
                Outcome::Success(TradeStatus::Paid(p)) => p.trade_id,
                Outcome::Success(_) => {
                    return Outcome::Failed(super::Failure {
                        code: "NOT_PAID".into(),
                        message: "the payment is not paid".into(),
                        cashier: "this payment was not completed; there is nothing to refund"
                            .into(),
                    });
                }
                other => {
                    return other.map(|_| Refunded {
                        provider_refund_id: None,
                    });
                }
            },
        };
        let mut body = json!({
            "refundRequestId": request.refund_id,
            "paymentId": payment_id,
            "refundAmount": wire::amount_json(&request.amount),
        });
        if let Some(reason) = &request.reason {
            body["refundReason"] = json!(reason);
        }
        match self.call(wire::REFUND_PATH, body.to_string()).await {
            Ok(answer) => wire::refund_outcome(&answer),
            Err(e) => e.into_outcome(),
        }
    }

    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let body = json!({ "refundRequestId": request.refund_id }).to_string();
        match self.call(wire::INQUIRY_REFUND_PATH, body).await {
            Ok(answer) => wire::inquiry_refund_outcome(&answer),
            Err(e) => e.into_outcome(),
        }
    }
}
