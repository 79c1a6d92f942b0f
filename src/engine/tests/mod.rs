//! Engine tests on a real journal file and the sandbox, under paused tokio time so minutes
//! of inquiries and cancels run in milliseconds.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;

mod clock;
mod recovery;
mod refunds;
mod scans;
mod store_day;

use super::*;
use crate::clock::TokioClock;
use crate::events::LogObserver;
use crate::gateway::{Cancelled, Outcome, Paid, PayRequest, RefundRequest, Refunded, TradeStatus};
use crate::journal::NewAttempt;
use crate::money::Currency;
use crate::paycode::Wallet;
use crate::paycode::recognise;
use crate::sandbox::Sandbox;
use crate::state::{AttemptState, SaleState};

type PayHook = Box<dyn Fn(&PayRequest) + Send>;

/// The sandbox with fault switches and call counters around it.
struct Faulty {
    inner: Arc<Sandbox>,
    pays: AtomicU32,
    inquiries: AtomicU32,
    cancels: AtomicU32,
    /// Every request fails to connect (nothing leaves).
    offline: AtomicBool,
    /// Successes state another amount than asked.
    wrong_amount: AtomicBool,
    /// The link drops right after the next pay request was charged.
    drop_link_after_pay: AtomicBool,
    /// The next refund is made, but its answer is lost.
    lose_refund_answer: AtomicBool,
    /// The link drops right after the next refund was made.
    drop_link_after_refund: AtomicBool,
    refunds: AtomicU32,
    /// Runs inside `pay`, before the request reaches the sandbox.
    on_pay: StdMutex<Option<PayHook>>,
    /// Whose signature the requests this signs ahead carry.
    signer: crate::gateway::SignerId,
}

impl Faulty {
    fn new(inner: Arc<Sandbox>) -> Faulty {
        Faulty {
            inner,
            pays: AtomicU32::new(0),
            inquiries: AtomicU32::new(0),
            cancels: AtomicU32::new(0),
            offline: AtomicBool::new(false),
            wrong_amount: AtomicBool::new(false),
            drop_link_after_pay: AtomicBool::new(false),
            lose_refund_answer: AtomicBool::new(false),
            drop_link_after_refund: AtomicBool::new(false),
            refunds: AtomicU32::new(0),
            on_pay: StdMutex::new(None),
            signer: crate::gateway::SignerId::new(),
        }
    }

    fn calls(&self) -> u32 {
        self.pays.load(Ordering::SeqCst)
            + self.inquiries.load(Ordering::SeqCst)
            + self.cancels.load(Ordering::SeqCst)
    }

    fn skew(&self, paid: Paid) -> Paid {
        if self.wrong_amount.load(Ordering::SeqCst) {
            Paid {
                amount: paid
                    .amount
                    .map(|a| Amount::from_minor(a.minor() + 1, a.currency())),
                ..paid
            }
        } else {
            paid
        }
    }

    fn offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Gateway for Faulty {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    fn accepts(&self, wallet: Wallet) -> bool {
        self.inner.accepts(wallet)
    }
    /// Signs ahead as a real client does; the "signature" is the subject it was made for.
    fn sign_pay(&self, request: &PayRequest) -> Option<crate::gateway::SignedPay> {
        Some(crate::gateway::SignedPay {
            signer: self.signer,
            request_id: request.request_id.clone(),
            url: url::Url::parse("http://sandbox.invalid/").ok()?,
            body: request.subject.clone(),
        })
    }
    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        self.pays.fetch_add(1, Ordering::SeqCst);
        if let Some(check) = self.on_pay.lock().unwrap().as_ref() {
            check(request);
        }
        if self.offline() {
            return Outcome::NotSent("connection refused".into());
        }
        let outcome = match self.inner.pay(request).await {
            Outcome::Success(p) => Outcome::Success(self.skew(p)),
            other => other,
        };
        if self.drop_link_after_pay.swap(false, Ordering::SeqCst) {
            self.offline.store(true, Ordering::SeqCst);
        }
        outcome
    }
    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        self.inquiries.fetch_add(1, Ordering::SeqCst);
        if self.offline() {
            return Outcome::NotSent("connection refused".into());
        }
        match self.inner.inquire(request_id).await {
            Outcome::Success(TradeStatus::Paid(p)) => {
                Outcome::Success(TradeStatus::Paid(self.skew(p)))
            }
            other => other,
        }
    }
    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        if self.offline() {
            return Outcome::NotSent("connection refused".into());
        }
        self.inner.cancel(request_id).await
    }
    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        if self.offline() {
            return Outcome::NotSent("connection refused".into());
        }
        let outcome = self.inner.refund(request).await;
        if self.drop_link_after_refund.swap(false, Ordering::SeqCst) {
            self.offline.store(true, Ordering::SeqCst);
        }
        if self.lose_refund_answer.swap(false, Ordering::SeqCst) {
            return Outcome::Unknown(crate::gateway::Unknown::new(
                crate::gateway::UnknownKind::ConnectionLost,
                "answer lost",
            ));
        }
        outcome
    }
    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        if self.offline() {
            return Outcome::NotSent("connection refused".into());
        }
        self.inner.inquire_refund(request).await
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    journal: Arc<Journal>,
    sandbox: Arc<Sandbox>,
    gateway: Arc<Faulty>,
    engine: Engine,
}

/// The demo config's in-doubt window.
const WINDOW: Duration = Duration::from_secs(15);

/// The terminal and watchdog of the demo config (`config/demo.toml`).
fn settings() -> EngineSettings {
    let currency = Currency::from_code("CNY").unwrap();
    EngineSettings {
        terminal: TerminalConfig {
            id: "DEMO01".to_string(),
            currency,
            max_amount: Amount::parse("5000.00", currency).unwrap(),
            store_id: Some("DEMO-STORE".to_string()),
            subject: "scanpay demo sale".to_string(),
            zone: crate::clock::StoreZone::Host,
        },
        timeout: Duration::from_secs(5),
        watchdog: WatchdogConfig {
            sale_deadline: WINDOW,
            inquiry_interval: Some(Duration::from_millis(1000)),
        },
        qr_timeout: Duration::from_secs(120),
        cancel_give_up_after: None,
        resolve_inline: true,
    }
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(chrono::Utc::now()));
    let sandbox = Arc::new(Sandbox::new(clock.clone()));
    let gateway = Arc::new(Faulty::new(sandbox.clone()));
    let engine = Engine::new(
        journal.clone(),
        gateway.clone(),
        clock,
        Arc::new(LogObserver),
        settings(),
    );
    Harness {
        _dir: dir,
        journal,
        sandbox,
        gateway,
        engine,
    }
}

fn cny(text: &str) -> Amount {
    Amount::parse(text, Currency::from_code("CNY").unwrap()).unwrap()
}

fn sale(amount: &str) -> SaleRequest {
    SaleRequest::at_the_till(cny(amount))
}

impl Harness {
    async fn pay(&self, amount: &str, code: &str) -> SaleView {
        self.engine.arm(sale(amount)).unwrap();
        match self.engine.scan(code).await {
            ScanOutcome::Attempted { sale } => sale,
            other => panic!("{code}: {other:?}"),
        }
    }

    /// Money moved exactly as the journal says: per request id, the customer is out of
    /// pocket the attempt's amount if it succeeded, and nothing otherwise.
    fn assert_ledger_agrees(&self) {
        let ledger = self.sandbox.ledger();
        for entry in &ledger {
            let attempt = self
                .journal
                .attempt_by_request_id(&entry.request_id)
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "sandbox saw {} but the journal has no row",
                        entry.request_id
                    )
                });
            let refunded: i64 = self
                .journal
                .refunds(&attempt.sale_id)
                .unwrap()
                .iter()
                .filter(|r| r.state == crate::state::RefundState::Succeeded)
                .map(|r| r.amount.minor())
                .sum();
            let expected = if attempt.state == AttemptState::Succeeded {
                attempt.amount.minor() - refunded
            } else {
                0
            };
            assert_eq!(
                entry.net_minor(),
                expected,
                "{entry:?} vs {} {}",
                attempt.request_id,
                attempt.state
            );
        }
        for sale in self.journal.sales(&Default::default()).unwrap() {
            let refunded: i64 = self
                .journal
                .refunds(&sale.id)
                .unwrap()
                .iter()
                .filter(|r| r.state == crate::state::RefundState::Succeeded)
                .map(|r| r.amount.minor())
                .sum();
            for a in self.journal.attempts(&sale.id).unwrap() {
                if a.state == AttemptState::Succeeded {
                    let entry = ledger
                        .iter()
                        .find(|e| e.request_id == a.request_id)
                        .unwrap();
                    assert_eq!(entry.refunded_minor, refunded, "refunds of {}", sale.id);
                }
                let paid = a.state == AttemptState::Succeeded;
                assert_eq!(
                    paid,
                    sale.state == SaleState::Paid,
                    "{} {}",
                    sale.id,
                    a.request_id
                );
                if paid {
                    assert!(ledger.iter().any(|e| e.request_id == a.request_id
                        && e.net_minor() == a.amount.minor() - refunded));
                }
            }
        }
        self.journal.integrity_check().unwrap();
    }
}

/// A daemon's engine (unclear answers go to the watchdog), on a wall clock the test can
/// step apart from tokio's monotonic clock.
fn stepping(h: &mut Harness) -> Arc<TokioClock> {
    let clock = Arc::new(TokioClock::starting_at(chrono::Utc::now()));
    let mut s = settings();
    s.resolve_inline = false;
    h.engine = Engine::new(
        h.journal.clone(),
        h.gateway.clone(),
        clock.clone(),
        Arc::new(LogObserver),
        s,
    );
    clock
}
