//! The API while the journal cannot be opened at start (a full or read-only disk): health
//! answers `503` with the reason, every other call `503 journal_unwritable`, so the register
//! knows why and a supervisor does not restart the daemon in a loop. The daemon retries the
//! journal meanwhile and serves the full API once it opens.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{ApiError, Listeners};

/// Why the journal cannot be opened, and since when.
#[derive(Clone, Default)]
pub struct Why(pub Arc<Mutex<(String, String)>>);

impl Why {
    pub fn set(&self, since: &str, error: &str) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if w.0.is_empty() {
            w.0 = since.to_string();
        }
        w.1 = error.to_string();
    }

    fn get(&self) -> (String, String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn health(State(why): State<Why>) -> Response {
    let (since, error) = why.get();
    let body = json!({
        "status": "degraded",
        "reasons": ["journal_unwritable"],
        "journal": {"ok": false, "write_failure": {"since": since, "error": error}},
        "pid": std::process::id(),
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn refuse(State(why): State<Why>) -> ApiError {
    let (_, error) = why.get();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "journal_unwritable",
        format!(
            "the journal cannot be opened ({error}): no payment is taken until it can be; free space or fix the mount"
        ),
    )
}

/// Serves the unavailable API on `listeners` until `stop` is cancelled.
pub async fn serve(listeners: Listeners, why: Why, stop: CancellationToken) {
    let app = Router::new()
        .route("/v1/health", get(health))
        .fallback(refuse)
        .with_state(why);
    let shutdown = |stop: CancellationToken| async move { stop.cancelled().await };
    let Listeners { unix, tcp } = listeners;
    let unix_task = tokio::spawn(
        axum::serve(unix, app.clone())
            .with_graceful_shutdown(shutdown(stop.clone()))
            .into_future(),
    );
    if let Some(tcp) = tcp {
        let _ = axum::serve(tcp, app)
            .with_graceful_shutdown(shutdown(stop))
            .await;
    }
    let _ = unix_task.await;
}
