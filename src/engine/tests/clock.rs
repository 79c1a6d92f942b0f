//! In-doubt windows on the monotonic clock: a stepped wall clock neither cancels early
//! nor stretches them.

use super::*;

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
