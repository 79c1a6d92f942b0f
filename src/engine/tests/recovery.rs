//! Doubt that outlives the scan: outages, crashes, the watchdog's hand-over, stopping.

use super::*;

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
            signing_key: None,
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
                signing_key: None,
                basket: Default::default(),
                signed: None,
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
        signing_key: None,
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

/// Stopping: a resolver sends nothing more and decides nothing new. Its attempt stays in
/// doubt in the journal, for the next start to inquire and cancel.
#[tokio::test(start_paused = true)]
async fn a_stopped_resolver_starts_no_cancel_and_sends_nothing_more() {
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
    h.engine.arm(sale("12.50")).unwrap();
    let ScanOutcome::Attempted { sale } = h.engine.scan("286000000000000004").await else {
        panic!()
    };
    assert_eq!(sale.state, SaleState::Processing);
    let watchdog = h.engine.watchdog();
    assert_eq!(watchdog.sweep().unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.engine.stop_resolving();
    let asked = h.journal.open_attempts().unwrap()[0].inquiries;
    // Far past the deadline, when a running resolver would have cancelled long ago.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let open = h.journal.open_attempts().unwrap();
    assert_eq!(open.len(), 1, "still open for the next start");
    assert_eq!(
        open[0].state,
        AttemptState::Unknown,
        "no cancel was started"
    );
    assert_eq!(open[0].cancels, 0);
    assert_eq!(open[0].inquiries, asked, "no inquiry after the stop");
}
