//! Gateway reachability, learned from the outcomes of real requests (and a light probe while
//! idle): the daemon refuses a new sale at once while the gateway is unreachable, instead of
//! consuming the customer's code, and shows it on the LED and in `status`.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Cancelled, Gateway, Outcome, Paid, PayRequest, Policy, RefundRequest, Refunded, TradeStatus,
};
use crate::paycode::Wallet;
use prometheus_client::metrics::histogram::Histogram;

/// Consecutive failed requests after which the gateway counts as offline.
const FAILURES_OFFLINE: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Reachability {
    /// No request made yet.
    Unknown,
    Online {
        since: String,
    },
    Offline {
        since: String,
        last_error: String,
    },
}

#[derive(Debug)]
struct State {
    reachability: Reachability,
    failures: u32,
    last_call: Option<tokio::time::Instant>,
    last_error: Option<String>,
}

/// A gateway wrapped so every request's outcome updates its reachability.
pub struct Monitored<G: ?Sized> {
    inner: std::sync::Arc<G>,
    state: Mutex<State>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    latency: Histogram,
}

/// Request latency buckets, seconds: a healthy gateway answers in well under a second.
const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0];

impl<G: Gateway + ?Sized> Monitored<G> {
    pub fn new(
        inner: std::sync::Arc<G>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Monitored<G> {
        Monitored {
            inner,
            clock,
            latency: Histogram::new(LATENCY_BUCKETS),
            state: Mutex::new(State {
                reachability: Reachability::Unknown,
                failures: 0,
                last_call: None,
                last_error: None,
            }),
        }
    }

    /// Latency of every gateway request (shared: the metrics endpoint reads this one).
    pub fn latency(&self) -> Histogram {
        self.latency.clone()
    }

    pub fn reachability(&self) -> Reachability {
        self.lock().reachability.clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    pub fn is_offline(&self) -> bool {
        matches!(self.lock().reachability, Reachability::Offline { .. })
    }

    /// How long since the last request, if any.
    pub fn idle_for(&self) -> Option<Duration> {
        self.lock().last_call.map(|t| t.elapsed())
    }

    /// A cheap signed request (an inquiry of an id that never exists) to learn whether the
    /// gateway answers.
    pub async fn probe(&self, terminal_id: &str) {
        let _ = self.inquire(&format!("{terminal_id}_probe")).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record<T>(&self, outcome: &Outcome<T>) {
        // Only a request that could not reach the gateway at all (connect refused, DNS,
        // connect timeout) says it is unreachable. A slow answer or a connection dropped after
        // sending means it was reached: those attempts are in doubt, the link is not down.
        let failure = match outcome {
            Outcome::NotSent(why) => Some(why.clone()),
            Outcome::Success(_) | Outcome::Failed(_) | Outcome::Unknown(_) => None,
        };
        let now = crate::clock::to_journal(self.clock.now());
        let mut s = self.lock();
        s.last_call = Some(tokio::time::Instant::now());
        match failure {
            None => {
                s.failures = 0;
                if !matches!(s.reachability, Reachability::Online { .. }) {
                    tracing::info!("gateway reachable");
                    s.reachability = Reachability::Online { since: now };
                }
            }
            Some(why) => {
                s.failures += 1;
                s.last_error = Some(why.clone());
                if s.failures >= FAILURES_OFFLINE
                    && !matches!(s.reachability, Reachability::Offline { .. })
                {
                    tracing::warn!(error = %why, "gateway unreachable: new sales are refused until it answers again");
                    s.reachability = Reachability::Offline {
                        since: now,
                        last_error: why,
                    };
                }
            }
        }
    }
}

#[async_trait]
impl<G: Gateway + ?Sized> Gateway for Monitored<G> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn policy(&self) -> Policy {
        self.inner.policy()
    }
    fn accepts(&self, wallet: Wallet) -> bool {
        self.inner.accepts(wallet)
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let started = std::time::Instant::now();
        let o = self.inner.pay(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(&o);
        o
    }
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        let started = std::time::Instant::now();
        let o = self.inner.inquire(request_id).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(&o);
        o
    }
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        let started = std::time::Instant::now();
        let o = self.inner.cancel(request_id).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(&o);
        o
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        let started = std::time::Instant::now();
        let o = self.inner.refund(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(&o);
        o
    }
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let started = std::time::Instant::now();
        let o = self.inner.inquire_refund(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(&o);
        o
    }
}

/// The time a reachability state began, for display.
pub fn since(r: &Reachability) -> Option<DateTime<Utc>> {
    match r {
        Reachability::Online { since } | Reachability::Offline { since, .. } => {
            crate::clock::from_journal(since)
        }
        Reachability::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{Unknown, UnknownKind};

    fn monitor() -> Monitored<crate::gateway::sandbox::Sandbox> {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        Monitored::new(
            std::sync::Arc::new(crate::gateway::sandbox::Sandbox::new(clock.clone())),
            clock,
        )
    }

    #[test]
    fn only_requests_that_never_left_make_the_gateway_offline() {
        let m = monitor();
        assert_eq!(m.reachability(), Reachability::Unknown);
        let slow: Outcome<()> = Outcome::Unknown(Unknown::new(UnknownKind::Timeout, "slow"));
        let dropped: Outcome<()> =
            Outcome::Unknown(Unknown::new(UnknownKind::ConnectionLost, "reset"));
        for _ in 0..5 {
            m.record(&slow);
            m.record(&dropped);
        }
        assert!(
            !m.is_offline(),
            "reached but slow or dropped is not offline"
        );
        let refused: Outcome<()> = Outcome::NotSent("connection refused".into());
        m.record(&refused);
        assert!(!m.is_offline(), "one failure is not an outage");
        m.record(&refused);
        assert!(m.is_offline());
        assert_eq!(m.last_error().as_deref(), Some("connection refused"));
        m.record::<()>(&Outcome::Success(()));
        assert!(matches!(m.reachability(), Reachability::Online { .. }));
    }
}
