//! HTTP plumbing shared by the gateway clients: one way to build the client, and one place
//! that decides whether a failed request may have left this machine.

use std::time::Duration;

use super::{Outcome, Unknown, UnknownKind};

/// Why a call produced no verified answer.
pub enum CallError {
    /// Provably never sent (connect refused, DNS, TLS handshake): nothing happened.
    NotSent(String),
    /// May have been sent and acted on.
    Unknown(Unknown),
    /// Refused at the gateway's door, before any processing (see [`Outcome::Rejected`]).
    Rejected(super::Failure),
}

impl CallError {
    pub fn unknown(kind: UnknownKind, detail: impl Into<String>) -> CallError {
        CallError::Unknown(Unknown::new(kind, detail))
    }

    pub fn into_outcome<T>(self) -> Outcome<T> {
        match self {
            CallError::NotSent(why) => Outcome::NotSent(why),
            CallError::Unknown(u) => Outcome::Unknown(u),
            CallError::Rejected(f) => Outcome::Rejected(f),
        }
    }
}

/// An HTTPS client with an overall timeout, a short connect timeout, verified TLS (rustls,
/// web PKI roots) and no proxy from the environment.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

pub fn classify(e: &reqwest::Error) -> CallError {
    if e.is_connect() {
        // Nothing was written: connect refused, DNS, TLS handshake.
        CallError::NotSent(format!("cannot reach the gateway: {}", without_url(e)))
    } else if e.is_timeout() {
        CallError::unknown(
            UnknownKind::Timeout,
            format!("no answer in time: {}", without_url(e)),
        )
    } else {
        CallError::unknown(
            UnknownKind::ConnectionLost,
            format!("connection lost after sending: {}", without_url(e)),
        )
    }
}

/// The error and its causes without the URL: the query string can carry the request's
/// signature and parameters, which do not belong in a cashier message.
pub fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
