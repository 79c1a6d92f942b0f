//! Calls to the running daemon's API over its Unix socket, for commands that ask the daemon
//! rather than open the journal it holds (`status`, `reconcile --fix`).

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// Why a call to the daemon did not give an answer.
#[derive(Debug)]
pub enum CallError {
    /// Nothing listens on the socket: no daemon runs.
    NoDaemon,
    /// A daemon took the request and did not answer in time, or the connection broke.
    NoAnswer(String),
}

/// `method path` with `body` (JSON) and `headers` over `socket`; the status and the JSON
/// answered. Waits up to `limit` for the answer.
pub async fn call(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
    limit: Duration,
) -> Result<(u16, Value), CallError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|_| CallError::NoDaemon)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|_| CallError::NoDaemon)?;
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scanpay");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let bytes = match body {
        Some(b) => {
            request = request.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(bytes))
        .map_err(|e| CallError::NoAnswer(e.to_string()))?;
    let response = tokio::time::timeout(limit, sender.send_request(request))
        .await
        .map_err(|_| CallError::NoAnswer(format!("no answer within {} s", limit.as_secs())))?
        .map_err(|e| CallError::NoAnswer(e.to_string()))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(limit, response.into_body().collect())
        .await
        .map_err(|_| CallError::NoAnswer("the answer did not end in time".to_string()))?
        .map_err(|e| CallError::NoAnswer(e.to_string()))?
        .to_bytes();
    let value =
        serde_json::from_slice(&body).map_err(|e| CallError::NoAnswer(format!("not JSON: {e}")))?;
    Ok((status, value))
}
