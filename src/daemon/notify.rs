//! The payment-notification receiver (`[notify] listen`, docs/gateways.md §12): the Open
//! Platform's notifications at `POST /notify/alipay`, AMS `notifyPayment` at
//! `POST /notify/ams`. A verified one has the attempt's resolver inquire at once; it decides
//! nothing by itself. One that does not verify changes nothing, is logged without its
//! content and counted (`scanpay_notifications_total{result="refused"}`).
//!
//! AMS `notifyAuthorization` comes to the same `/notify/ams`: a verified one carrying
//! `authCode` and `authState` for a member binding awaiting approval is exchanged as
//! `POST /v1/members/{id}/binding/auth_code` would (`api/members.rs`), before it is
//! answered; one for an `authState` no binding awaits is answered and changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, GatewaySettings};
use crate::engine::Engine;
use crate::gateway::keys::{PrivateKey, PublicKey};
use crate::gateway::notify;

/// The keys notifications are verified with, from the gateways the config names.
struct Verifiers {
    open_platform: Option<(PublicKey, String)>,
    ams: Option<AmsVerifier>,
}

struct AmsVerifier {
    alipay: PublicKey,
    client_id: String,
    key_version: u32,
    key: PrivateKey,
    /// The path Antom signs: the configured `payment_notify_url`'s, which a reverse proxy
    /// may map to another one here.
    signed_path: Option<String>,
}

#[derive(Clone)]
struct Receiver {
    engine: Arc<Engine>,
    verifiers: Arc<Verifiers>,
    members: Option<Arc<crate::api::members::Members>>,
}

/// Binds `[notify] listen` (before READY, so a busy address stops the start) and serves
/// until `stop`.
pub async fn bind(config: &Config) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(addr) = config.notify_listen else {
        return Ok(None);
    };
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| format!("[notify] listen {addr}: {e}"))
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &Config,
    engine: Arc<Engine>,
    members: Option<Arc<crate::api::members::Members>>,
    stop: CancellationToken,
) {
    let mut verifiers = Verifiers {
        open_platform: None,
        ams: None,
    };
    for g in config.gateways() {
        match g {
            GatewaySettings::OpenApi(s) => {
                verifiers.open_platform = Some((s.alipay_public_key.clone(), s.app_id.clone()));
            }
            GatewaySettings::Ams(s) => {
                verifiers.ams = Some(AmsVerifier {
                    alipay: s.alipay_public_key.clone(),
                    client_id: s.client_id.clone(),
                    key_version: s.key_version,
                    key: s.private_key.clone(),
                    signed_path: s
                        .merchant
                        .payment_notify_url
                        .as_deref()
                        .and_then(|u| url::Url::parse(u).ok())
                        .map(|u| u.path().to_string()),
                });
            }
            _ => {}
        }
    }
    let app = Router::new()
        .route("/notify/alipay", post(open_platform))
        .route("/notify/ams", post(ams))
        .with_state(Receiver {
            engine,
            verifiers: Arc::new(verifiers),
            members,
        });
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(listen = ?addr, "payment notifications received");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the notification receiver stopped");
    }
}

fn refused(what: &str, why: &str) -> Response {
    notify::count(false);
    tracing::warn!(
        notification = what,
        why,
        "payment notification refused: nothing changes"
    );
    (StatusCode::BAD_REQUEST, "fail").into_response()
}

fn taken(r: &Receiver, what: &str, n: &notify::Notice) {
    notify::count(true);
    match r.engine.journal().attempt_by_request_id(&n.request_id) {
        Ok(Some(_)) => {
            tracing::info!(notification = what, request_id = %n.request_id, status = %n.status, "payment notification: inquiring now");
            r.engine.nudge(&n.request_id);
        }
        _ => {
            tracing::warn!(notification = what, request_id = %n.request_id, "payment notification for a payment this journal does not have")
        }
    }
}

/// A verified `notifyAuthorization`: exchanged before it is answered, so a crash before
/// the exchange is written leaves the notification unanswered and Antom sends it again.
/// Returns whether to answer it: not when the auth code could not be journaled (the disk,
/// the token key), so that Antom sends it again instead of the code being lost.
async fn authorized(
    r: &Receiver,
    auth_state: &str,
    code: &crate::gateway::alipay_ams::authorizations::Token,
) -> bool {
    notify::count(true);
    let Some(members) = &r.members else {
        tracing::warn!(
            "authorization notification: member bindings are not configured ([members]); nothing changes"
        );
        return true;
    };
    use crate::api::members::Exchanged;
    match members.notified(auth_state, code).await {
        // The binding has moved on, or its exchange is under way already.
        Err(e) if e.code == "binding_state" => tracing::info!(
            why = %e.message,
            "authorization notification: the binding is not waiting for a code; nothing changes"
        ),
        Err(e) => {
            tracing::warn!(
                why = %e.message,
                "authorization notification: the auth code could not be kept; left unanswered so Antom sends it again"
            );
            return false;
        }
        Ok(None) => tracing::warn!(
            "authorization notification for an authState no binding awaits: nothing changes"
        ),
        Ok(Some(Exchanged::Bound(b))) => {
            tracing::info!(member_id = %b.member_id, "authorization notification: the member is bound")
        }
        Ok(Some(Exchanged::Failed(b, _))) => {
            tracing::info!(member_id = %b.member_id, "authorization notification: the wallet refused the auth code")
        }
        Ok(Some(Exchanged::Unclear(b, _))) => {
            tracing::info!(member_id = %b.member_id, "authorization notification: the exchange is retried on the housekeeping tick")
        }
    }
    true
}

async fn open_platform(State(r): State<Receiver>, body: Bytes) -> Response {
    let Some((key, app_id)) = &r.verifiers.open_platform else {
        return refused("alipay", "no Open Platform gateway is configured");
    };
    match notify::open_platform(&body, key, app_id) {
        Ok(n) => {
            taken(&r, "alipay", &n);
            (StatusCode::OK, notify::OPEN_PLATFORM_ANSWER).into_response()
        }
        Err(why) => refused("alipay", &why),
    }
}

async fn ams(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(v) = &r.verifiers.ams else {
        return refused("ams", "no AMS gateway is configured");
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refused("ams", "body: not UTF-8");
    };
    let path = v
        .signed_path
        .clone()
        .unwrap_or_else(|| uri.path().to_string());
    match notify::ams_notice(
        &path,
        &header("client-id"),
        &header("request-time"),
        &header("signature"),
        text,
        &v.alipay,
        &v.client_id,
    ) {
        Ok(n) => {
            match n {
                notify::AmsNotice::Payment(n) => taken(&r, "ams", &n),
                notify::AmsNotice::Authorization {
                    auth_state,
                    auth_code,
                } => {
                    if !authorized(&r, &auth_state, &auth_code).await {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "fail").into_response();
                    }
                }
            }
            let (answer, answer_headers) = notify::ams_answer(
                &path,
                &v.client_id,
                v.key_version,
                &v.key,
                chrono::Utc::now(),
            );
            let mut response = (StatusCode::OK, answer).into_response();
            for (k, value) in answer_headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(k, value);
                }
            }
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            response
        }
        Err(why) => refused("ams", &why),
    }
}
