//! Engine tests on a real journal file and the sandbox, under paused tokio time so minutes
//! of inquiries and cancels run in milliseconds.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;

use super::*;
use crate::clock::TokioClock;
use crate::config::Config;
use crate::events::LogObserver;
use crate::gateway::{Cancelled, Paid, RefundRequest, Refunded, TradeStatus};
use crate::money::Currency;
use crate::paycode::Wallet;
use crate::sandbox::Sandbox;

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

fn settings() -> EngineSettings {
    let config = Config::demo(std::path::Path::new("unused")).unwrap();
    EngineSettings {
        terminal: config.terminal,
        timeout: Duration::from_secs(5),
        watchdog: config.watchdog,
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
    SaleRequest {
        amount: cny(amount),
        reference: None,
        subject: None,
        idempotency_key: None,
        max_attempts: 1,
        supersede: false,
    }
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

#[tokio::test(start_paused = true)]
async fn each_sandbox_code_ends_in_the_right_state_and_the_ledger_agrees() {
    let h = harness();
    let table = [
        ("00", SaleState::Paid),
        ("01", SaleState::Failed),
        ("02", SaleState::Failed),
        ("03", SaleState::Paid),
        ("04", SaleState::Cancelled),
        ("05", SaleState::Paid),
        ("06", SaleState::Paid),
        ("07", SaleState::Paid),
        ("08", SaleState::Paid),
        ("09", SaleState::Failed),
    ];
    for (ending, expected) in table {
        let code = format!("2860000000000000{ending}");
        let view = h.pay("12.50", &code).await;
        assert_eq!(view.state, expected, "code {ending}: {view:?}");
        assert!(view.attempts.iter().all(|a| a.state.is_final()), "{ending}");
        if expected != SaleState::Paid {
            assert!(view.reason.is_some(), "{ending}: a sale not paid says why");
        }
    }
    assert!(h.journal.open_attempts().unwrap().is_empty());
    h.assert_ledger_agrees();
    // Full codes are gone from the journal once final (invariant 5).
    let conn = rusqlite::Connection::open(h.journal.path()).unwrap();
    let codes: i64 = conn
        .query_row(
            "SELECT count(*) FROM attempts WHERE code IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(codes, 0);
    // Nor in the write-ahead log of the still-open journal, where page images linger.
    let mut wal = h.journal.path().as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::read(&wal).unwrap_or_default();
    for (ending, _) in table {
        let code = format!("2860000000000000{ending}");
        assert!(
            !wal.windows(code.len()).any(|w| w == code.as_bytes()),
            "{code} in the WAL"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_attempt_row_is_committed_before_the_pay_request_leaves() {
    let h = harness();
    let path = h.journal.path().to_path_buf();
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let seen2 = seen.clone();
    *h.gateway.on_pay.lock().unwrap() = Some(Box::new(move |req: &PayRequest| {
        // A separate connection sees only committed data.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let row: Option<(String, Option<String>, String, i64)> = conn
            .query_row(
                "SELECT state, code, code_masked, amount_minor FROM attempts WHERE request_id = ?1",
                [&req.request_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .ok();
        seen2.lock().unwrap().push(row);
    }));
    h.pay("12.50", "286000000000000000").await;
    h.pay("3.00", "286000000000000105").await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0],
        Some((
            "pending".to_string(),
            None,
            "28************0000".to_string(),
            1250
        ))
    );
    assert_eq!(seen[1].as_ref().map(|r| r.0.as_str()), Some("pending"));
}

#[tokio::test(start_paused = true)]
async fn a_scan_during_an_attempt_in_flight_is_refused() {
    let h = harness();
    h.engine.arm(sale("12.50")).unwrap();
    let slow = h.engine.scan("286000000000000006");
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.engine.scan("286000000000000100").await
    };
    let (first, second) = tokio::join!(slow, second);
    assert!(
        matches!(
            second,
            ScanOutcome::Refused {
                refusal: Refusal::InFlight { .. },
                ..
            }
        ),
        "{second:?}"
    );
    let ScanOutcome::Attempted { sale } = first else {
        panic!("{first:?}")
    };
    assert_eq!(sale.state, SaleState::Paid);
    assert_eq!(
        h.gateway.pays.load(Ordering::SeqCst),
        1,
        "the second code never reached the gateway"
    );
    assert_eq!(h.sandbox.ledger().len(), 1);
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn codes_that_are_not_payment_codes_never_reach_the_gateway() {
    let h = harness();
    h.engine.arm(sale("12.50")).unwrap();
    for scan in [
        "4006381333931",
        "https://qr.alipay.com/bax123",
        "hello",
        "",
        "28\u{0}60000000000000000",
        "134567890123456789",  // WeChat Pay
        "6212345678901234567", // UnionPay
    ] {
        let outcome = h.engine.scan(scan).await;
        assert!(
            !matches!(outcome, ScanOutcome::Attempted { .. }),
            "{scan:?}: {outcome:?}"
        );
    }
    assert_eq!(h.gateway.calls(), 0);
    let armed = h.engine.armed().unwrap();
    assert_eq!(
        h.journal.sale(&armed).unwrap().unwrap().state,
        SaleState::AwaitingScan
    );
}

#[tokio::test(start_paused = true)]
async fn a_payment_code_without_a_sale_is_not_charged() {
    let h = harness();
    let outcome = h.engine.scan("286000000000000000").await;
    assert!(matches!(
        outcome,
        ScanOutcome::Refused {
            refusal: Refusal::NoSale,
            ..
        }
    ));
    assert_eq!(h.gateway.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_same_code_is_never_sent_under_two_request_ids() {
    let h = harness();
    assert_eq!(
        h.pay("12.50", "286000000000000000").await.state,
        SaleState::Paid
    );
    assert_eq!(
        h.pay("1.00", "286000000000000001").await.state,
        SaleState::Failed
    );
    for code in ["286000000000000000", "286000000000000001"] {
        h.engine.arm(sale("5.00")).ok();
        let outcome = h.engine.scan(code).await;
        assert!(
            matches!(
                outcome,
                ScanOutcome::Refused {
                    refusal: Refusal::CodeReused { .. },
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(h.gateway.pays.load(Ordering::SeqCst), 2);
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn a_code_that_never_left_may_be_scanned_again() {
    let h = harness();
    h.gateway.offline.store(true, Ordering::SeqCst);
    let view = h.pay("12.50", "286000000000000000").await;
    assert_eq!(view.state, SaleState::Failed);
    assert_eq!(view.attempts[0].result_code.as_deref(), Some(NOT_SENT));
    assert_eq!(
        h.gateway.inquiries.load(Ordering::SeqCst),
        0,
        "not sent needs no inquiry"
    );
    h.gateway.offline.store(false, Ordering::SeqCst);
    assert_eq!(
        h.pay("12.50", "286000000000000000").await.state,
        SaleState::Paid
    );
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn a_success_for_another_amount_is_never_reported_paid() {
    let h = harness();
    h.gateway.wrong_amount.store(true, Ordering::SeqCst);
    let view = h.pay("12.50", "286000000000000000").await;
    assert_eq!(view.state, SaleState::Cancelled, "{view:?}");
    assert!(view.attempts[0].paid_then_refunded);
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn an_outage_while_in_doubt_ends_cancelled_once_the_link_is_back() {
    let h = Arc::new(harness());
    h.engine.arm(sale("12.50")).unwrap();
    // The charge goes through, then the link drops for ten minutes.
    h.gateway.drop_link_after_pay.store(true, Ordering::SeqCst);
    let cut = {
        let h = h.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            h.gateway.offline.store(false, Ordering::SeqCst);
        }
    };
    let (outcome, ()) = tokio::join!(h.engine.scan("286000000000000007"), cut);
    let ScanOutcome::Attempted { sale } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(sale.state, SaleState::Cancelled);
    assert!(
        sale.attempts[0].paid_then_refunded,
        "the charge was refunded by the cancel"
    );
    assert!(
        sale.attempts[0].cancels > 5,
        "cancel was retried through the outage"
    );
    assert!(
        sale.attempts[0].inquiries > 5,
        "inquired until the deadline"
    );
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn attempts_left_open_by_a_crash_are_finished_at_startup() {
    let h = harness();
    let now = chrono::Utc::now();
    // Two sales that "crashed" after the attempt row was written: one whose pay request had
    // reached the gateway and was charged, one whose request never left.
    let mut request_ids = Vec::new();
    for (i, code) in ["286000000000000000", "286000000000000100"]
        .into_iter()
        .enumerate()
    {
        let view = h.engine.arm(sale("12.50")).unwrap();
        let crate::paycode::Scan::Payment(code) = recognise(code) else {
            panic!()
        };
        let new = NewAttempt {
            request_id: format!("T_crash_{i}"),
            gateway: "sandbox",
            code: &code,
            deadline_at: now + chrono::Duration::seconds(15),
        };
        let a = h.journal.begin_attempt(&view.sale_id, &new, now).unwrap();
        if i == 0 {
            let request = PayRequest {
                request_id: a.request_id.clone(),
                code,
                amount: a.amount,
                subject: "x".into(),
                terminal_id: "T".into(),
                store_id: None,
            };
            assert!(matches!(h.sandbox.pay(&request).await, Outcome::Success(_)));
        }
        request_ids.push(a.request_id);
        // A restarted process has nothing armed.
        lock(&h.engine.slots).armed = None;
    }
    let finished = h.engine.recover().await.unwrap();
    assert_eq!(finished.len(), 2);
    let state = |rid: &str| h.journal.attempt_by_request_id(rid).unwrap().unwrap().state;
    assert_eq!(state(&request_ids[0]), AttemptState::Succeeded);
    // Never sent: the cancel finds no such payment, and it ends not charged, not created.
    assert_eq!(state(&request_ids[1]), AttemptState::Failed);
    let never = h
        .journal
        .attempt_by_request_id(&request_ids[1])
        .unwrap()
        .unwrap();
    assert_eq!(
        never.result_code.as_deref(),
        Some(crate::watchdog::NOT_CREATED)
    );
    assert!(never.needs_attention.is_none());
    assert!(h.journal.open_attempts().unwrap().is_empty());
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn sales_are_checked_before_they_are_armed() {
    let h = harness();
    let usd = Amount::parse("1.00", Currency::from_code("USD").unwrap()).unwrap();
    let wrong = SaleRequest {
        amount: usd,
        ..sale("1.00")
    };
    assert!(matches!(
        h.engine.arm(wrong),
        Err(EngineError::WrongCurrency { .. })
    ));
    assert!(matches!(
        h.engine.arm(sale("0.00")),
        Err(EngineError::NotPositive(_))
    ));
    assert!(matches!(
        h.engine.arm(sale("5000.01")),
        Err(EngineError::AboveLimit { .. })
    ));
    assert!(
        h.journal.sales(&Default::default()).unwrap().is_empty(),
        "refusals write nothing"
    );
    let first = h.engine.arm(sale("1.00")).unwrap();
    assert!(
        matches!(h.engine.arm(sale("2.00")), Err(EngineError::Busy(id)) if id == first.sale_id)
    );
}

#[tokio::test(start_paused = true)]
async fn a_register_retrying_with_its_idempotency_key_gets_the_same_sale() {
    let h = harness();
    let keyed = || SaleRequest {
        idempotency_key: Some("K-1".into()),
        ..sale("1.00")
    };
    let a = h.engine.arm(keyed()).unwrap();
    let b = h.engine.arm(keyed()).unwrap();
    assert_eq!(a.sale_id, b.sale_id);
    assert_eq!(h.journal.sales(&Default::default()).unwrap().len(), 1);
}

#[test]
fn request_ids_are_valid_gateway_ids() {
    let id = new_request_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", chrono::Utc::now());
    assert!(id.len() <= 64, "{id}");
    assert!(
        id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{id}"
    );
    assert_ne!(
        id,
        new_request_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", chrono::Utc::now())
    );
}

#[tokio::test(start_paused = true)]
async fn a_sale_left_in_doubt_frees_the_terminal_and_stays_open_in_the_journal() {
    let mut h = harness();
    let mut s = settings();
    s.cancel_give_up_after = Some(Duration::from_secs(30));
    h.engine = Engine::new(
        h.journal.clone(),
        h.gateway.clone(),
        Arc::new(TokioClock::starting_at(chrono::Utc::now())),
        Arc::new(LogObserver),
        s,
    );
    h.gateway.drop_link_after_pay.store(true, Ordering::SeqCst);
    let view = h.pay("12.50", "286000000000000007").await;
    assert_eq!(view.state, SaleState::Processing, "in doubt, not failed");
    assert_eq!(view.attempts[0].state, AttemptState::Cancelling);
    assert_eq!(h.journal.open_attempts().unwrap().len(), 1);
    assert!(h.engine.armed().is_none());
    h.engine
        .arm(sale("1.00"))
        .expect("the terminal takes the next sale");
    // Once the link is back, recovery finishes it: the charge is refunded.
    h.gateway.offline.store(false, Ordering::SeqCst);
    h.engine.recover().await.unwrap();
    assert!(h.journal.open_attempts().unwrap().is_empty());
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn refunds_are_journaled_checked_and_resolved_under_the_same_id() {
    use crate::state::RefundState;
    let h = harness();
    let sale = h.pay("12.50", "286000000000000000").await;
    let r = h
        .engine
        .refund(&sale.sale_id, cny("2.50"), Some("returned".into()))
        .await
        .unwrap();
    assert_eq!(r.state, RefundState::Succeeded);
    // More than is left is refused and nothing is written or sent.
    let sent = h.gateway.refunds.load(Ordering::SeqCst);
    let err = h
        .engine
        .refund(&sale.sale_id, cny("10.01"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("left to refund"), "{err}");
    assert_eq!(h.journal.refunds(&sale.sale_id).unwrap().len(), 1);
    assert_eq!(h.gateway.refunds.load(Ordering::SeqCst), sent);
    // The answer is lost: the refund is unknown, then found done without refunding twice.
    h.gateway.lose_refund_answer.store(true, Ordering::SeqCst);
    let r = h
        .engine
        .refund(&sale.sale_id, cny("10.00"), None)
        .await
        .unwrap();
    assert_eq!(r.state, RefundState::Succeeded, "{r:?}");
    h.assert_ledger_agrees();
    let entry = &h.sandbox.ledger()[0];
    assert_eq!(entry.refunded_minor, 1250);
    // A sale not paid cannot be refunded.
    let failed = h.pay("1.00", "286000000000000101").await;
    assert!(
        h.engine
            .refund(&failed.sale_id, cny("1.00"), None)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_refund_left_open_by_a_crash_is_finished_at_startup() {
    use crate::state::RefundState;
    let h = harness();
    let sale = h.pay("12.50", "286000000000000000").await;
    // The refund row is written, then the process dies before (or while) it is sent.
    let row = h
        .journal
        .begin_refund(
            &sale.sale_id,
            "T_crash_R",
            cny("5.00"),
            None,
            chrono::Utc::now(),
        )
        .unwrap();
    assert_eq!(row.state, RefundState::Pending);
    h.engine.recover().await.unwrap();
    assert_eq!(
        h.journal.refund(row.id).unwrap().state,
        RefundState::Succeeded
    );
    assert!(h.journal.open_refunds().unwrap().is_empty());
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn a_sale_left_in_doubt_by_a_crash_ends_with_its_attempt_and_never_reopens() {
    let h = harness();
    let now = chrono::Utc::now();
    // A register sale that may take three scans; the process died with its first attempt
    // written and unanswered.
    let view = h
        .engine
        .arm(SaleRequest {
            max_attempts: 3,
            ..sale("12.50")
        })
        .unwrap();
    let crate::paycode::Scan::Payment(code) = recognise("286000000000000100") else {
        panic!()
    };
    let new = NewAttempt {
        request_id: "T_crash_doubt".into(),
        gateway: "sandbox",
        code: &code,
        deadline_at: now + chrono::Duration::seconds(15),
    };
    h.journal.begin_attempt(&view.sale_id, &new, now).unwrap();
    lock(&h.engine.slots).armed = None;
    // The restarted process lets go of it before the watchdog ends the attempt unpaid.
    h.engine.release_earlier_sales().unwrap();
    h.engine.recover().await.unwrap();
    let sale = h.journal.sale(&view.sale_id).unwrap().unwrap();
    assert_eq!(
        sale.state,
        SaleState::Failed,
        "not back to awaiting a scan nobody will make (and never created: not charged)"
    );
    assert!(h.journal.open_sales().unwrap().is_empty());
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn a_sale_handed_to_the_watchdog_ends_with_its_attempt_and_never_reopens() {
    let mut h = harness();
    let mut s = settings();
    s.resolve_inline = false;
    h.engine = Engine::new(
        h.journal.clone(),
        h.gateway.clone(),
        Arc::new(TokioClock::starting_at(chrono::Utc::now())),
        Arc::new(LogObserver),
        s,
    );
    // A register sale that may take three scans; its first scan goes into doubt.
    h.engine
        .arm(SaleRequest {
            max_attempts: 3,
            ..sale("12.50")
        })
        .unwrap();
    let ScanOutcome::Attempted { sale } = h.engine.scan("286000000000000004").await else {
        panic!()
    };
    assert_eq!(sale.state, SaleState::Processing);
    assert!(h.engine.armed().is_none(), "the terminal moved on");
    let watchdog = h.engine.watchdog();
    assert_eq!(watchdog.sweep().unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let sale = h.journal.sale(&sale.sale_id).unwrap().unwrap();
    assert_eq!(
        sale.state,
        SaleState::Cancelled,
        "not back to awaiting a scan nobody will make"
    );
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_finishes_a_refund_left_in_doubt() {
    use crate::state::RefundState;
    let h = harness();
    let sale = h.pay("12.50", "286000000000000000").await;
    // The refund's answer is lost and the link stays down: the engine gives up on it.
    h.gateway.lose_refund_answer.store(true, Ordering::SeqCst);
    h.gateway
        .drop_link_after_refund
        .store(true, Ordering::SeqCst);
    let r = h
        .engine
        .refund(&sale.sale_id, cny("4.00"), None)
        .await
        .unwrap();
    assert_eq!(r.state, RefundState::Unknown, "{r:?}");
    assert_eq!(h.journal.open_refunds().unwrap().len(), 1);
    // The link comes back; only the watchdog is left to finish it.
    h.gateway.offline.store(false, Ordering::SeqCst);
    let watchdog = h.engine.watchdog();
    assert_eq!(watchdog.sweep().unwrap(), 1, "the open refund is adopted");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(h.journal.open_refunds().unwrap().is_empty());
    assert_eq!(
        h.journal.refunds(&sale.sale_id).unwrap()[0].state,
        RefundState::Succeeded
    );
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn after_stop_no_sale_or_scan_is_taken() {
    let h = harness();
    h.engine.arm(sale("5.00")).unwrap();
    h.engine.stop_taking_sales();
    let outcome = h.engine.scan("286000000000000000").await;
    assert!(
        matches!(
            outcome,
            ScanOutcome::Refused {
                refusal: Refusal::Stopping,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(h.gateway.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn after_stop_no_sale_is_started() {
    let h = harness();
    h.engine.stop_taking_sales();
    let refused = h.engine.arm(sale("1.00")).unwrap_err();
    assert!(refused.to_string().contains("stopping"), "{refused}");
    assert!(h.engine.armed().is_none());
}

/// The watchdog's sweep runs in the very moment between the attempt's commit and the rest of
/// the engine's start: it must find the attempt owned, so exactly one worker sends it.
#[tokio::test(start_paused = true)]
async fn a_sweep_right_after_the_attempt_is_written_finds_it_owned() {
    let h = harness();
    let watchdog = Arc::new(h.engine.watchdog());
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let (w, t) = (watchdog.clone(), taken.clone());
    *lock_hook(&h.engine.after_attempt_written) = Some(Box::new(move || {
        let n = w.sweep().unwrap_or(usize::MAX);
        t.store(n, Ordering::SeqCst);
    }));
    // A second worker would inquire and cancel the pending attempt beside the engine.
    let view = h.pay("12.50", "286000000000000000").await;
    assert_eq!(
        taken.load(Ordering::SeqCst),
        0,
        "the sweep took the fresh attempt"
    );
    assert_eq!(view.state, SaleState::Paid);
    assert_eq!(h.gateway.pays.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.gateway.calls(), 1, "nobody else touched it");
    h.assert_ledger_agrees();
}

/// A superseded sale whose customer did pay is reversed, never reported paid.
#[tokio::test(start_paused = true)]
async fn a_superseded_sale_that_turns_out_paid_is_reversed_not_paid() {
    let mut h = harness();
    stepping(&mut h);
    let basket = |supersede| SaleRequest {
        reference: Some("BASKET-1".into()),
        supersede,
        ..sale("12.50")
    };
    h.engine.arm(basket(false)).unwrap();
    // Code 03: the customer confirms in the wallet about 3 s later.
    let ScanOutcome::Attempted { sale: first } = h.engine.scan("286000000000000003").await else {
        panic!()
    };
    assert_eq!(first.state, SaleState::Processing);
    assert!(matches!(
        h.engine.arm(basket(false)),
        Err(EngineError::Journal(JournalError::ReferenceInDoubt { ref sale })) if *sale == first.sale_id
    ));
    tokio::time::sleep(Duration::from_secs(4)).await; // the customer has paid by now
    let second = h.engine.arm(basket(true)).unwrap();
    // The new sale is paid while the first is still being reversed: the basket is paid, and
    // superseding once more is refused, naming it.
    let ScanOutcome::Attempted { sale: paid_second } = h.engine.scan("286000000000000500").await
    else {
        panic!()
    };
    assert_eq!(paid_second.state, SaleState::Paid);
    assert!(matches!(
        h.engine.arm(basket(true)),
        Err(EngineError::Journal(JournalError::ReferencePaid { ref sale })) if *sale == second.sale_id
    ));
    assert_eq!(h.engine.watchdog().sweep().unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (sale, attempts, _) = h.journal.sale_whole(&first.sale_id).unwrap().unwrap();
    assert_eq!(sale.state, SaleState::Cancelled);
    assert_eq!(sale.superseded_by.as_deref(), Some(second.sale_id.as_str()));
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
    assert!(attempts[0].paid_then_refunded, "paid, then given back");
    h.assert_ledger_agrees();
    // Superseding a sale that was paid meanwhile is refused: the basket is paid.
    h.engine.arm(basket(false)).unwrap();
    let ScanOutcome::Attempted { sale: paid } = h.engine.scan("286000000000000300").await else {
        panic!()
    };
    assert_eq!(paid.state, SaleState::Paid);
    assert!(matches!(
        h.engine.arm(basket(true)),
        Err(EngineError::Journal(JournalError::ReferencePaid { ref sale })) if *sale == paid.sale_id
    ));
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

/// The demo config's in-doubt window.
const WINDOW: Duration = Duration::from_secs(15);

#[tokio::test(start_paused = true)]
async fn a_wall_clock_jump_forward_does_not_cancel_a_payment_in_doubt_before_its_deadline() {
    let mut h = harness();
    let clock = stepping(&mut h);
    h.engine.arm(sale("12.50")).unwrap();
    // 04: the customer is confirming and never pays: in doubt for the whole window.
    let ScanOutcome::Attempted { sale } = h.engine.scan("286000000000000004").await else {
        panic!()
    };
    let watchdog = h.engine.watchdog();
    assert_eq!(watchdog.sweep().unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    clock.step(chrono::TimeDelta::hours(2));
    tokio::time::sleep(WINDOW / 2).await;
    let a = &h.journal.attempts(&sale.sale_id).unwrap()[0];
    assert_eq!(
        a.state,
        AttemptState::Unknown,
        "still inquiring after the jump: {:?}",
        a.result_code
    );
    assert_eq!(h.gateway.cancels.load(Ordering::SeqCst), 0);
    tokio::time::sleep(WINDOW).await;
    let a = &h.journal.attempts(&sale.sale_id).unwrap()[0];
    assert_eq!(
        a.state,
        AttemptState::Cancelled,
        "cancelled at its deadline"
    );
    h.assert_ledger_agrees();
}

#[tokio::test(start_paused = true)]
async fn a_clock_stepped_back_before_a_restart_does_not_stretch_the_window() {
    let mut h = harness();
    let clock = stepping(&mut h);
    h.engine.arm(sale("12.50")).unwrap();
    let ScanOutcome::Attempted { sale } = h.engine.scan("286000000000000004").await else {
        panic!()
    };
    // Inquired for 10 of its 15 s, then the process dies (its worker is gone).
    let first = Arc::new(std::mem::replace(
        &mut h.engine,
        Engine::new(
            h.journal.clone(),
            h.gateway.clone(),
            clock.clone(),
            Arc::new(LogObserver),
            settings(),
        ),
    ));
    let worker = tokio::spawn(async move { first.recover().await });
    tokio::time::sleep(Duration::from_secs(10)).await;
    worker.abort();
    let _ = worker.await;
    let a = h.journal.attempts(&sale.sale_id).unwrap().remove(0);
    assert!(
        a.budget_left_ms.unwrap() <= 6_000,
        "what is left is kept: {:?}",
        a.budget_left_ms
    );
    // The clock is set two hours back; a new process takes over the attempt.
    clock.step(-chrono::TimeDelta::hours(2));
    let restarted = Engine::new(
        h.journal.clone(),
        h.gateway.clone(),
        clock.clone(),
        Arc::new(LogObserver),
        settings(),
    );
    let resumed = tokio::spawn(async move { restarted.recover().await });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let a = &h.journal.attempts(&sale.sale_id).unwrap()[0];
    assert!(
        matches!(a.state, AttemptState::Cancelling | AttemptState::Cancelled),
        "the 5 s left were not stretched by the 2 h step: {:?}",
        a.state
    );
    resumed.await.unwrap().unwrap();
    h.assert_ledger_agrees();
}
