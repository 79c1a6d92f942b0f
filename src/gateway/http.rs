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

/// What every gateway client holds besides its settings: the HTTP client, the clock its
/// requests are stamped and signed with, and the skew measured from the answers.
pub struct Transport {
    pub http: reqwest::Client,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Gateway clock minus host clock, from the answers.
    pub skew: SkewMeter,
}

impl Transport {
    pub fn new(
        timeout: Duration,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<Transport, String> {
        Ok(Transport {
            http: client(timeout)?,
            clock,
            skew: SkewMeter::default(),
        })
    }
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

/// Host clock further than this from the gateway's is reported (log, health, LED).
pub const CLOCK_SKEW_WARN_S: i64 = 120;
/// Host clock further than this from the gateway's refuses new sales: both gateways check
/// the request time, and a till this far off is wrong in its receipts and reports too.
pub const CLOCK_SKEW_REFUSE_S: i64 = 600;

/// The gateway's clock minus ours, from the times its answers carry. One answer with an odd
/// time (a proxy's stale `Date`) is not the clock: the skew is the smallest of the last
/// [`SKEW_SAMPLES`] answers', so only a clock that is off for all of them counts.
#[derive(Default)]
pub struct SkewMeter(std::sync::Mutex<std::collections::VecDeque<i64>>);

/// How many recent answers the skew is judged by.
pub const SKEW_SAMPLES: usize = 3;

impl SkewMeter {
    /// Records one answer's time; warns once when the skew crosses the warning line.
    pub fn note(
        &self,
        gateway: chrono::DateTime<chrono::Utc>,
        ours: chrono::DateTime<chrono::Utc>,
    ) {
        let sample = (gateway - ours).num_seconds();
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let was_off = judged(&last).is_some_and(|s| s.abs() > CLOCK_SKEW_WARN_S);
        last.push_back(sample);
        while last.len() > SKEW_SAMPLES {
            last.pop_front();
        }
        let skew = judged(&last);
        if let Some(skew) = skew
            && skew.abs() > CLOCK_SKEW_WARN_S
            && !was_off
        {
            tracing::warn!(
                skew_s = skew,
                "this machine's clock is {skew} s off the gateway's; fix NTP (timedatectl set-ntp true), or requests are refused"
            );
        }
    }

    pub fn get(&self) -> Option<i64> {
        judged(&self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether every recent answer agrees with our clock (within the warning line): strong
    /// enough to outweigh another sign that the clock is wrong.
    pub fn agrees(&self) -> bool {
        let samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        !samples.is_empty() && samples.iter().all(|s| s.abs() <= CLOCK_SKEW_WARN_S)
    }
}

fn judged(samples: &std::collections::VecDeque<i64>) -> Option<i64> {
    samples.iter().copied().min_by_key(|s| s.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_odd_answer_is_not_a_clock_off() {
        let m = SkewMeter::default();
        let ours = chrono::Utc::now();
        assert_eq!(m.get(), None);
        m.note(ours + chrono::TimeDelta::seconds(2), ours);
        m.note(ours + chrono::TimeDelta::hours(3), ours);
        assert_eq!(m.get(), Some(2), "a stale Date once changes nothing");
        for _ in 0..SKEW_SAMPLES {
            m.note(ours - chrono::TimeDelta::hours(1), ours);
        }
        assert_eq!(m.get(), Some(-3600), "off for every recent answer: off");
        m.note(ours, ours);
        assert_eq!(m.get(), Some(0), "one good answer: back");
    }
}
