//! Refunds: journaled, checked and resolved under one id, through crashes and doubt.

use super::*;

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
    // Each refund is known by its own id, not by the trade's number they share.
    let ids: Vec<Option<String>> = h
        .journal
        .refunds(&sale.sale_id)
        .unwrap()
        .into_iter()
        .map(|r| r.gateway_refund_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter().all(Option::is_some) && ids[0] != ids[1],
        "{ids:?}"
    );
    let entry = &h.sandbox.ledger()[0];
    assert_eq!(entry.refunded_minor, 1250);
    // A sale not paid cannot be refunded.
    let failed = h.pay("1.00", "286000000000000101").await;
    let err = h
        .engine
        .refund(&failed.sale_id, cny("1.00"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("only a paid sale can be refunded, and this one was not paid (failed)"),
        "{err}"
    );
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
