//! Scans: which codes reach the gateway, write-before-send, one code one charge, sales
//! checked before they are armed, supersession.

use super::*;

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

/// The pay request is signed beside the attempt's write, from the sale as it was armed.
/// Should the sale the attempt is written for say otherwise, that signature is not sent: the
/// request is made from the sale as written.
#[tokio::test(start_paused = true)]
async fn a_request_signed_ahead_is_sent_only_for_the_sale_as_written() {
    let h = harness();
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let record = seen.clone();
    *h.gateway.on_pay.lock().unwrap() = Some(Box::new(move |r: &PayRequest| {
        let signed_for = r.signed.as_ref().map(|s| s.body.clone());
        record.lock().unwrap().push((signed_for, r.subject.clone()));
    }));
    let view = h.pay("12.50", "286000000000000000").await;
    assert_eq!(view.state, SaleState::Paid);
    let subject = seen.lock().unwrap()[0].1.clone();
    assert_eq!(seen.lock().unwrap()[0].0.as_deref(), Some(subject.as_str()));

    // Another hand changes the sale between its arming and the attempt's write.
    let file = h._dir.path().join("journal.sqlite");
    *lock_hook(&h.engine.before_attempt_written) = Some(Box::new(move || {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute(
            "UPDATE sales SET subject = 'changed' WHERE state = 'awaiting_scan'",
            [],
        )
        .unwrap();
    }));
    let view = h.pay("3.00", "286000000000000100").await;
    assert_eq!(view.state, SaleState::Paid);
    assert_eq!(seen.lock().unwrap()[1], (None, "changed".to_string()));
    h.assert_ledger_agrees();
}
