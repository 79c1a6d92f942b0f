//! The register's API: HTTP/1.1 + JSON on a Unix socket (mode 0660, a chosen group) and
//! optionally on a TCP address (loopback, or with a bearer token). `docs/api.md` describes
//! every call with a curl example.

mod bus;
mod conn;
pub mod console;
mod display;
pub(crate) mod error;
mod health;
pub mod members;
pub mod operator;
pub(crate) mod sales;
mod shifts;
mod stream;
pub mod unavailable;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use bus::EventBus;
pub use conn::{Connections, FD_RESERVE, MAX_CONNECTIONS};
pub use error::ApiError;

use crate::engine::Engine;
use crate::gateway::Gateway;
use crate::gateway::monitor::Monitored;

/// Where the API listens and who may use it.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// Group that may use the socket (name or number).
    pub group: Option<String>,
    /// Optional TCP address (loopback unless `allow_remote`).
    pub tcp: Option<std::net::SocketAddr>,
    /// Bearer token required on TCP when set (always set when `allow_remote`).
    pub token: Option<String>,
}

#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub monitor: Arc<Monitored<dyn Gateway>>,
    pub bus: Arc<EventBus>,
    /// Every output (LED, printer, log, the bus): what an operator's action is told to.
    pub observer: Arc<dyn crate::events::Observer>,
    pub scanners: Arc<crate::device::ScannerStates>,
    pub printer: Option<Arc<crate::output::printer::PrinterQueue>>,
    /// The API's connection counts, for `/metrics`.
    pub connections: Arc<Connections>,
    /// Reconciliation and the gateway probe, which need the daemon's configuration.
    pub operations: Option<Arc<dyn operator::Operations>>,
    /// Member auto-debit bindings, when `[members]` is configured.
    pub members: Option<Arc<members::Members>>,
}

/// Largest request body taken: a sale or refund request is a few hundred bytes, and every
/// connection may hold one body in memory while it is read.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Time a request body may take once its head is read: a register sends its few hundred
/// bytes at once, while a client that announces a body and sends it slowly, or never, would
/// otherwise keep its connection (and one of the capped places, `conn.rs`) for good.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/sales", post(sales::create).get(sales::list))
        .route("/v1/sales/{id}", get(sales::get))
        .route("/v1/sales/{id}/cancel", post(sales::cancel))
        .route("/v1/sales/{id}/customer_scan", post(sales::customer_scan))
        .route("/v1/sales/{id}/qr.svg", get(display::qr_svg))
        .route("/display", get(display::page))
        .route("/v1/sales/{id}/refunds", post(sales::refund))
        .route("/v1/events", get(stream::events))
        .route("/v1/health", get(health::health))
        .route("/v1/report", get(console::report))
        .route("/v1/printer/test", post(console::printer_test))
        .route("/v1/attention", get(operator::attention))
        .route("/v1/attention/{request_id}", post(operator::act))
        .route("/v1/actions", get(operator::actions))
        .route("/v1/reconcile", post(operator::reconcile))
        .route("/v1/gateway/probe", post(operator::probe))
        .route("/v1/reload", post(operator::reload))
        .route("/v1/led/test", post(operator::led_test))
        .route("/v1/scanner/test", post(operator::scanner_test))
        .route("/v1/sales/{id}/receipt", post(operator::reprint))
        .route("/v1/report/print", post(operator::print_report))
        .route("/v1/shifts", post(shifts::open))
        .route("/v1/shifts/{id}/close", post(shifts::close))
        .route("/v1/shifts/{id}/report", get(shifts::report))
        .route(
            "/v1/members/{member_id}/binding",
            post(members::start)
                .get(members::get)
                .delete(members::delete),
        )
        .route(
            "/v1/members/{member_id}/binding/auth_code",
            post(members::auth_code),
        )
        .route(
            "/v1/members/{member_id}/binding/qr.svg",
            get(members::qr_svg),
        )
        .route("/console", get(console::page))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("such API: see docs/api.md") })
        .layer(axum::middleware::from_fn(read_body))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Reads a request's body before the handler runs, within [`BODY_READ_TIMEOUT`] and
/// [`BODY_LIMIT`]: a body announced larger than the limit is refused before it is read.
/// Requests without a body (event streams among them) pass as they are.
async fn read_body(request: Request, next: Next) -> Response {
    use axum::body::{Body, HttpBody};
    let (parts, body) = request.into_parts();
    let hint = body.size_hint();
    if hint.exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {BODY_LIMIT} bytes"),
        )
        .into_response()
    };
    if hint.lower() > BODY_LIMIT as u64 {
        return too_large();
    }
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e))
            if std::error::Error::source(&e)
                .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>()) =>
        {
            too_large()
        }
        Ok(Err(_)) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body ended before its announced length",
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Gives the errors axum answers by itself the documented JSON body (`docs/api.md`): a
/// method a path does not take (405), a body over [`BODY_LIMIT`] (413), a path parameter
/// that does not decode to UTF-8 or a query that does not parse (400). They are plain text
/// or empty otherwise; the API's own errors are JSON already and pass through.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // axum's rejection texts are one short line; a longer body is not ours to pass on.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("the body is over {BODY_LIMIT} bytes"),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not take that method: see docs/api.md".to_string(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such API: see docs/api.md".to_string()),
        s if s.is_client_error() => (
            "bad_request",
            if text.is_empty() {
                "the request cannot be read: see docs/api.md".to_string()
            } else {
                text
            },
        ),
        _ => ("internal", text),
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("[api] socket {path}: {why}")]
    Socket { path: String, why: String },
    #[error("[api] tcp {addr}: {0}; free that address or set [api] tcp to another", addr = .1)]
    Tcp(std::io::Error, String),
}

/// The API's bound listeners: bound before READY=1 so a failure stops the start, not a
/// running daemon, and a register started after scanpay finds them.
pub struct Listeners {
    unix: tokio::net::UnixListener,
    tcp: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// The TCP address bound, when one was (the port an address with port 0 was given).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Binds the Unix socket and, when configured, the TCP address.
pub fn bind(config: &ApiConfig) -> Result<Listeners, ServeError> {
    let unix = bind_unix(config)?;
    let tcp = match config.tcp {
        Some(addr) => {
            let tcp_err = |e| ServeError::Tcp(e, addr.to_string());
            let std_listener = std::net::TcpListener::bind(addr).map_err(tcp_err)?;
            std_listener.set_nonblocking(true).map_err(tcp_err)?;
            Some(tokio::net::TcpListener::from_std(std_listener).map_err(tcp_err)?)
        }
        None => None,
    };
    Ok(Listeners { unix, tcp })
}

/// Binds the Unix socket: a stale socket from a crash is replaced, a live one (another
/// daemon) or a file that is not a socket is refused; then mode and group are set.
fn bind_unix(config: &ApiConfig) -> Result<tokio::net::UnixListener, ServeError> {
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
        // Under the unit the socket already has the service's group and chown is filtered
        // out (`~@privileged`), so only a different group costs a syscall.
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::metadata(path)
            .map_err(|e| format!("stat: {e}"))?
            .gid();
        if current != gid {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
                format!(
                    "chgrp {group}: {e}; under systemd leave [api] group unset and add the register's user to group scanpay"
                )
            })?;
        }
    }
    Ok(())
}

/// Requires `Authorization: Bearer <token>` (TCP only; the socket's mode guards the socket).
async fn require_token(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    // The pages hold no data: a browser loads them, then every call they make carries the
    // token (asked for on the page, or given in a kiosk's address).
    if request.method() == axum::http::Method::GET
        && matches!(request.uri().path(), "/console" | "/display")
    {
        return next.run(request).await;
    }
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

/// Refuses what a web browser sends from another page: a page the cashier happens to open
/// must not reach the TCP API, neither directly (`Origin`, `Sec-Fetch-Site`) nor through a
/// DNS name rebound to this address (a `Host` that is a name other than `localhost`).
/// Registers send neither. The console is the exception: its page may be opened from
/// anywhere (it only reads), and its own requests are same-origin (an `Origin` equal to the
/// `Host` it was served from).
async fn refuse_browsers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let console_page = request.method() == axum::http::Method::GET
        && matches!(request.uri().path(), "/console" | "/display");
    let same_origin = fetch_site.is_none_or(|s| s == "same-origin")
        && origin.is_none_or(|o| host.is_some_and(|h| o == format!("http://{h}")));
    let from_browser = origin.is_some() || fetch_site.is_some();
    let host_ok = host.is_none_or(host_is_address);
    if (from_browser && !same_origin && !console_page) || !host_ok {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "browser requests are refused; call the API from the register with Host set to the IP address",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a `Host` header names an IP address (with optional port) or `localhost`.
fn host_is_address(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the API on the bound socket (and TCP when configured) until `stop` is cancelled, then
/// waits for the requests being answered. Connections on both are capped together and
/// timed out when idle or slow to send a request (`conn.rs`).
pub async fn serve(
    config: &ApiConfig,
    listeners: Listeners,
    state: ApiState,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError> {
    let Listeners { unix, tcp } = listeners;
    let cap = Arc::new(conn::Cap::for_this_process(state.connections.clone()));
    let app = router(state);
    let mut tasks = Vec::new();
    let socket_app = app
        .clone()
        .layer(axum::Extension(console::Listener("socket")));
    let rx = stop.clone();
    let socket_cap = cap.clone();
    tasks.push(tokio::spawn(async move {
        conn::accept_loop(unix, socket_app, &socket_cap, "socket", rx).await;
    }));
    if let Some(listener) = tcp {
        let tcp_app = match &config.token {
            Some(token) => app.layer(axum::middleware::from_fn_with_state(
                Arc::new(token.clone()),
                require_token,
            )),
            None => app,
        };
        let tcp_app = tcp_app
            .layer(axum::middleware::from_fn(refuse_browsers))
            .layer(axum::Extension(console::Listener("tcp")));
        let rx = stop.clone();
        let tcp_cap = cap.clone();
        tasks.push(tokio::spawn(async move {
            conn::accept_loop(listener, tcp_app, &tcp_cap, "tcp", rx).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    cap.all_closed().await;
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}
