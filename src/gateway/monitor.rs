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

/// Requests that provably never left after which the gateway counts as offline: the first
/// one. A connect refused, a DNS or TLS failure or a connect timeout says the link is down
/// now; waiting for a second one let sales in for half a minute.
pub const UNREACHABLE_OFFLINE: u32 = 1;
/// Consecutive requests whose answer was lost (timeout, reset, cut off, not HTTP 200) after
/// which the gateway counts as "not answering". One slow answer is not an outage; three in a
/// row, with nothing answered in between, is.
pub const LOST_ANSWERS_DEGRADED: u32 = 3;
/// Payments whose pay answer was lost and that no inquiry or cancel has settled yet, from
/// which on the gateway counts as "not answering" too: each new sale would only add one more.
pub const LOST_PAYMENTS_DEGRADED: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Reachability {
    /// No request made yet.
    Unknown,
    Online {
        since: String,
    },
    /// A request could not reach the gateway at all.
    Offline {
        since: String,
        last_error: String,
    },
    /// The gateway is reached but its answers are lost: consecutive timeouts or resets, or
    /// payments piling up in doubt. Sales are refused as when offline.
    NotAnswering {
        since: String,
        last_error: String,
        lost_answers: u32,
        payments_in_doubt: usize,
    },
    /// The gateway refuses our credentials (unsigned refusal at its door): wrong app id,
    /// client id, key or certificate mode. Sales are refused until a request succeeds.
    Refusing {
        since: String,
        code: String,
        message: String,
    },
}

impl Reachability {
    /// Why a new sale must be refused now, as `(error code, message)`; `None` when sales can
    /// be taken.
    pub fn refusal(&self) -> Option<(&'static str, String)> {
        match self {
            Reachability::Unknown | Reachability::Online { .. } => None,
            Reachability::Offline { since, last_error } => Some((
                "offline",
                format!(
                    "offline: the gateway has not answered since {since} ({last_error}); the customer's code was not used"
                ),
            )),
            Reachability::NotAnswering {
                since,
                last_error,
                lost_answers,
                payments_in_doubt,
            } => Some((
                "offline",
                format!(
                    "degraded: the gateway is not answering since {since} ({lost_answers} answer(s) lost in a row, {payments_in_doubt} payment(s) in doubt; last: {last_error}); the customer's code was not used"
                ),
            )),
            Reachability::Refusing { code, message, .. } => Some((
                "gateway_refusing",
                format!(
                    "the gateway refuses this terminal's credentials ({code}: {message}); fix the [gateway] keys or ids: the customer's code was not used"
                ),
            )),
        }
    }

    /// The short name of the state (`online`, `offline`, `not_answering`, `refusing`).
    pub fn name(&self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Online { .. } => "online",
            Reachability::Offline { .. } => "offline",
            Reachability::NotAnswering { .. } => "not_answering",
            Reachability::Refusing { .. } => "refusing",
        }
    }
}

#[derive(Debug)]
struct State {
    reachability: Reachability,
    unreachable: u32,
    lost: u32,
    /// Request ids of payments whose pay answer was lost, until an inquiry or a cancel
    /// settles them.
    lost_payments: std::collections::HashSet<String>,
    last_call: Option<tokio::time::Instant>,
    last_error: Option<String>,
}

/// Which request an outcome answered, for the in-doubt count.
enum Call<'a> {
    Pay(&'a str),
    Settles(&'a str),
    Other,
}

/// What one outcome says about the gateway.
enum Class {
    /// A signed answer (business success, failure, "unknown" or "confirming").
    Answered,
    /// The request never left.
    Unreachable(String),
    /// The answer was lost after the request may have left.
    Lost(String),
    /// Refused at the door, unsigned.
    Refused(super::Failure),
    /// An answer that proves nothing either way (bad signature).
    Neutral,
}

fn class<T>(outcome: &Outcome<T>) -> Class {
    use super::UnknownKind as K;
    match outcome {
        Outcome::Success(_) | Outcome::Failed(_) => Class::Answered,
        Outcome::NotSent(why) => Class::Unreachable(why.clone()),
        Outcome::Rejected(f) => Class::Refused(f.clone()),
        Outcome::Unknown(u) => match u.kind {
            K::Timeout | K::ConnectionLost | K::Malformed => Class::Lost(u.to_string()),
            K::ProviderUnsure | K::BuyerConfirming | K::Mismatch => Class::Answered,
            K::BadSignature => Class::Neutral,
        },
    }
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
                unreachable: 0,
                lost: 0,
                lost_payments: Default::default(),
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

    /// Whether new sales are refused because of the gateway (offline, not answering, or
    /// refusing our credentials).
    pub fn is_offline(&self) -> bool {
        self.lock().reachability.refusal().is_some()
    }

    /// Payments whose pay answer was lost and are not settled yet.
    pub fn lost_payments(&self) -> usize {
        self.lock().lost_payments.len()
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

    fn record<T>(&self, call: Call<'_>, outcome: &Outcome<T>) {
        let class = class(outcome);
        let now = crate::clock::to_journal(self.clock.now());
        let mut s = self.lock();
        s.last_call = Some(tokio::time::Instant::now());
        match (&call, &class) {
            // An answer that does not verify settles nothing either: with a wrong key (or
            // something altering answers) every sale would end in doubt.
            (Call::Pay(id), Class::Lost(_) | Class::Neutral) => {
                s.lost_payments.insert(id.to_string());
            }
            (Call::Settles(id), Class::Answered) => {
                s.lost_payments.remove(*id);
            }
            _ => {}
        }
        let not_answering = |s: &State| Reachability::NotAnswering {
            since: now.clone(),
            last_error: s.last_error.clone().unwrap_or_default(),
            lost_answers: s.lost,
            payments_in_doubt: s.lost_payments.len(),
        };
        let next = match class {
            Class::Neutral if s.lost_payments.len() >= LOST_PAYMENTS_DEGRADED => {
                s.last_error = Some("answers whose signature does not verify".into());
                not_answering(&s)
            }
            Class::Neutral => return,
            Class::Refused(f) => {
                s.unreachable = 0;
                s.lost = 0;
                s.last_error = Some(format!("{}: {}", f.code, f.message));
                if !matches!(s.reachability, Reachability::Refusing { .. }) {
                    tracing::error!(code = %f.code, message = %f.message, "the gateway refuses this terminal's credentials: new sales are refused until a request succeeds");
                }
                Reachability::Refusing {
                    since: now.clone(),
                    code: f.code,
                    message: f.message,
                }
            }
            Class::Unreachable(why) => {
                s.unreachable += 1;
                s.last_error = Some(why.clone());
                if s.unreachable < UNREACHABLE_OFFLINE {
                    return;
                }
                Reachability::Offline {
                    since: now.clone(),
                    last_error: why,
                }
            }
            Class::Lost(why) => {
                // It left, so the gateway was reached; whether it answers is the question.
                s.unreachable = 0;
                s.lost += 1;
                s.last_error = Some(why);
                let refusing_sales = matches!(
                    s.reachability,
                    Reachability::Offline { .. } | Reachability::NotAnswering { .. }
                );
                if s.lost >= LOST_ANSWERS_DEGRADED
                    || s.lost_payments.len() >= LOST_PAYMENTS_DEGRADED
                    || refusing_sales
                {
                    not_answering(&s)
                } else {
                    // One slow answer is not an outage (nor the end of a refusal).
                    return;
                }
            }
            Class::Answered => {
                s.unreachable = 0;
                s.lost = 0;
                if s.lost_payments.len() >= LOST_PAYMENTS_DEGRADED {
                    not_answering(&s)
                } else {
                    Reachability::Online { since: now.clone() }
                }
            }
        };
        let same_state = std::mem::discriminant(&next) == std::mem::discriminant(&s.reachability);
        if same_state {
            // Keep when it began; refresh the counts.
            if let (
                Reachability::NotAnswering {
                    lost_answers,
                    payments_in_doubt,
                    last_error,
                    ..
                },
                Reachability::NotAnswering {
                    lost_answers: l,
                    payments_in_doubt: p,
                    last_error: e,
                    ..
                },
            ) = (&mut s.reachability, next)
            {
                *lost_answers = l;
                *payments_in_doubt = p;
                *last_error = e;
            }
            return;
        }
        match &next {
            Reachability::Online { .. } => tracing::info!("gateway reachable"),
            Reachability::Offline { last_error, .. } => {
                tracing::warn!(error = %last_error, "gateway unreachable: new sales are refused until it answers again")
            }
            Reachability::NotAnswering { last_error, .. } => {
                tracing::warn!(error = %last_error, lost = s.lost, in_doubt = s.lost_payments.len(), "gateway not answering: new sales are refused until it answers again")
            }
            _ => {}
        }
        s.reachability = next;
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
    fn route(&self, wallet: Wallet) -> Option<&'static str> {
        self.inner.route(wallet)
    }
    fn request_id_tag(&self, wallet: Wallet) -> &'static str {
        self.inner.request_id_tag(wallet)
    }
    fn policy_for(&self, request_id: &str) -> Policy {
        self.inner.policy_for(request_id)
    }
    fn clock_skew_s(&self) -> Option<i64> {
        self.inner.clock_skew_s()
    }
    fn clock_agrees(&self) -> bool {
        self.inner.clock_agrees()
    }
    fn certificates(&self) -> Vec<super::CertificateExpiry> {
        self.inner.certificates()
    }
    fn signing_key(&self, wallet: super::Wallet) -> Option<String> {
        self.inner.signing_key(wallet)
    }
    fn sign_pay(&self, request: &PayRequest) -> Option<super::SignedPay> {
        self.inner.sign_pay(request)
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        let started = std::time::Instant::now();
        let o = self.inner.pay(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Pay(&request.request_id), &o);
        o
    }
    async fn pay_agreement(&self, request: &super::AgreementRequest) -> Outcome<Paid> {
        let started = std::time::Instant::now();
        let o = self.inner.pay_agreement(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Pay(&request.request_id), &o);
        o
    }
    async fn present(&self, request: &super::PresentRequest) -> Outcome<super::Presented> {
        let started = std::time::Instant::now();
        let o = self.inner.present(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Pay(&request.request_id), &o);
        o
    }
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        let started = std::time::Instant::now();
        let o = self.inner.inquire(request_id).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        // Only a decided payment leaves the count; "waiting" or "no such payment yet" do not.
        let decided = matches!(
            o,
            Outcome::Success(
                TradeStatus::Paid(_) | TradeStatus::Closed(_) | TradeStatus::Reversed(_)
            )
        );
        self.record(
            if decided {
                Call::Settles(request_id)
            } else {
                Call::Other
            },
            &o,
        );
        o
    }
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        let started = std::time::Instant::now();
        let o = self.inner.cancel(request_id).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Settles(request_id), &o);
        o
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        let started = std::time::Instant::now();
        let o = self.inner.refund(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Other, &o);
        o
    }
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let started = std::time::Instant::now();
        let o = self.inner.inquire_refund(request).await;
        self.latency.observe(started.elapsed().as_secs_f64());
        self.record(Call::Other, &o);
        o
    }
}

/// The time a reachability state began, for display.
pub fn since(r: &Reachability) -> Option<DateTime<Utc>> {
    match r {
        Reachability::Online { since }
        | Reachability::Offline { since, .. }
        | Reachability::NotAnswering { since, .. }
        | Reachability::Refusing { since, .. } => crate::clock::from_journal(since),
        Reachability::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{Unknown, UnknownKind};

    fn monitor() -> Monitored<crate::sandbox::Sandbox> {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        Monitored::new(
            std::sync::Arc::new(crate::sandbox::Sandbox::new(clock.clone())),
            clock,
        )
    }

    fn lost(why: &str) -> Outcome<()> {
        Outcome::Unknown(Unknown::new(UnknownKind::Timeout, why))
    }

    #[test]
    fn the_first_request_that_never_left_makes_the_gateway_offline() {
        let m = monitor();
        assert_eq!(m.reachability(), Reachability::Unknown);
        m.record::<()>(Call::Other, &Outcome::Success(()));
        let refused: Outcome<()> = Outcome::NotSent("connection refused".into());
        m.record(Call::Other, &refused);
        assert!(m.is_offline(), "{:?}", m.reachability());
        assert_eq!(m.reachability().refusal().map(|r| r.0), Some("offline"));
        assert_eq!(m.last_error().as_deref(), Some("connection refused"));
        m.record::<()>(Call::Other, &Outcome::Success(()));
        assert!(matches!(m.reachability(), Reachability::Online { .. }));
    }

    #[test]
    fn lost_answers_in_a_row_count_as_not_answering_but_one_slow_answer_does_not() {
        let m = monitor();
        m.record::<()>(Call::Other, &Outcome::Success(()));
        for _ in 0..LOST_ANSWERS_DEGRADED - 1 {
            m.record(Call::Other, &lost("slow"));
            assert!(!m.is_offline(), "{:?}", m.reachability());
            // An answer in between starts the count again.
            m.record::<()>(Call::Other, &Outcome::Success(()));
        }
        for _ in 0..LOST_ANSWERS_DEGRADED - 1 {
            m.record(Call::Other, &lost("slow"));
        }
        assert!(!m.is_offline());
        m.record(
            Call::Other,
            &Outcome::<()>::Unknown(Unknown::new(UnknownKind::ConnectionLost, "reset")),
        );
        let r = m.reachability();
        assert!(
            matches!(
                r,
                Reachability::NotAnswering {
                    lost_answers: 3,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(r.refusal().map(|r| r.0), Some("offline"));
        m.record::<()>(Call::Other, &Outcome::Success(()));
        assert!(!m.is_offline());
    }

    #[test]
    fn payments_piling_up_in_doubt_count_as_not_answering_until_settled() {
        let m = monitor();
        let answered = Outcome::<()>::Success(());
        for i in 0..LOST_PAYMENTS_DEGRADED {
            let id = format!("r{i}");
            m.record(Call::Pay(&id), &lost("reset after sending"));
            // The gateway answers everything else (the probe, other calls).
            m.record(Call::Other, &answered);
        }
        assert_eq!(m.lost_payments(), LOST_PAYMENTS_DEGRADED);
        let r = m.reachability();
        assert!(
            matches!(
                r,
                Reachability::NotAnswering {
                    payments_in_doubt: 3,
                    ..
                }
            ),
            "{r:?}"
        );
        // A payment whose inquiry is only "waiting" stays in doubt; a settled one leaves.
        m.record(Call::Settles("r0"), &answered);
        assert_eq!(m.lost_payments(), LOST_PAYMENTS_DEGRADED - 1);
        m.record(Call::Other, &answered);
        assert!(!m.is_offline(), "{:?}", m.reachability());
    }

    #[test]
    fn pays_answered_with_bad_signatures_pile_up_like_lost_ones() {
        let m = monitor();
        let bad = Outcome::<()>::Unknown(Unknown::new(UnknownKind::BadSignature, "bad"));
        for i in 0..LOST_PAYMENTS_DEGRADED {
            m.record(Call::Pay(&format!("r{i}")), &bad);
        }
        assert!(
            matches!(m.reachability(), Reachability::NotAnswering { .. }),
            "{:?}",
            m.reachability()
        );
    }

    #[test]
    fn an_unsigned_refusal_refuses_sales_until_a_request_succeeds() {
        let m = monitor();
        let refused = Outcome::<()>::Rejected(crate::gateway::Failure {
            code: "isv.invalid-app-id".into(),
            message: "无效的AppID参数".into(),
            cashier: String::new(),
        });
        m.record(Call::Other, &refused);
        let r = m.reachability();
        let (code, message) = r.refusal().unwrap_or_default();
        assert_eq!(code, "gateway_refusing");
        assert!(message.contains("isv.invalid-app-id"), "{message}");
        // A lost answer does not end it; a verified answer does.
        m.record(Call::Other, &lost("slow"));
        assert!(matches!(m.reachability(), Reachability::Refusing { .. }));
        m.record(Call::Other, &Outcome::<()>::Success(()));
        assert!(matches!(m.reachability(), Reachability::Online { .. }));
    }
}
