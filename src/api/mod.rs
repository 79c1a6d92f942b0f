//! The register's API: HTTP/1.1 + JSON on a Unix socket (mode 0660, a chosen group) and
//! optionally on a TCP address (loopback, or with a bearer token). `docs/api.md` describes
//! every call with a curl example.

mod bus;
mod error;
mod health;
mod sales;
mod stream;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use bus::EventBus;
pub use error::ApiError;

use crate::config::ApiConfig;
use crate::engine::Engine;
use crate::gateway::Gateway;
use crate::gateway::monitor::Monitored;

#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub monitor: Arc<Monitored<dyn Gateway>>,
    pub bus: Arc<EventBus>,
    pub scanners: Arc<crate::device::ScannerStates>,
    pub printer: Option<Arc<crate::output::printer::PrinterQueue>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/sales", post(sales::create).get(sales::list))
        .route("/v1/sales/{id}", get(sales::get))
        .route("/v1/sales/{id}/cancel", post(sales::cancel))
        .route("/v1/sales/{id}/refunds", post(sales::refund))
        .route("/v1/events", get(stream::events))
        .route("/v1/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("such API: see docs/api.md") })
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("[api] socket {path}: {why}")]
    Socket { path: String, why: String },
    #[error("[api] tcp {addr}: {0}", addr = .1)]
    Tcp(std::io::Error, String),
}

/// Binds the Unix socket: a stale socket from a crash is replaced, a live one (another
/// daemon) or a file that is not a socket is refused; then mode and group are set.
pub fn bind_unix(config: &ApiConfig) -> Result<tokio::net::UnixListener, ServeError> {
    let path = &config.socket;
    let err = |why: String| ServeError::Socket {
        path: path.display().to_string(),
        why,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(err("exists and is not a socket; move it away".into()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(
                "another scanpay answers on it; stop that one first".into()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("stale socket cannot be removed: {e}")))?;
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(err(format!(
            "directory {} does not exist (systemd's RuntimeDirectory= creates it)",
            dir.display()
        )));
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    set_socket_access(path, config.socket_mode, config.group.as_deref()).map_err(err)?;
    Ok(listener)
}

fn set_socket_access(path: &Path, mode: u32, group: Option<&str>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod: {e}"))?;
    if let Some(group) = group {
        let gid = match group.parse::<u32>() {
            Ok(n) => n,
            Err(_) => nix::unistd::Group::from_name(group)
                .map_err(|e| format!("group {group:?}: {e}"))?
                .ok_or_else(|| {
                    format!("no group {group:?}: create it or set [api] group to an existing one")
                })?
                .gid
                .as_raw(),
        };
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| format!("chgrp {group}: {e}"))?;
    }
    Ok(())
}

/// Requires `Authorization: Bearer <token>` (TCP only; the socket's mode guards the socket).
async fn require_token(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <[api] token>",
        )
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the API on the bound socket (and TCP when configured) until `stop` is true.
pub async fn serve(
    config: &ApiConfig,
    unix: tokio::net::UnixListener,
    state: ApiState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let app = router(state);
    let mut tasks = Vec::new();
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let socket_app = app.clone();
    let rx = stop.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(unix, socket_app)
            .with_graceful_shutdown(shutdown(rx))
            .await
        {
            tracing::error!(error = %e, "API socket stopped");
        }
    }));
    if let Some(addr) = config.tcp {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Tcp(e, addr.to_string()))?;
        let tcp_app = match &config.token {
            Some(token) => app.layer(axum::middleware::from_fn_with_state(
                Arc::new(token.clone()),
                require_token,
            )),
            None => app,
        };
        let rx = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, tcp_app)
                .with_graceful_shutdown(shutdown(rx))
                .await
            {
                tracing::error!(error = %e, "API TCP stopped");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}
