//! Reconciliation of a journal against provider lines, end to end: what is read from the
//! journal, what is matched, and what the report says.

use chrono::Utc;

use super::*;
use crate::gateway::{ProviderRecord, RecordKind};
use crate::journal::{Change, Journal, NewAttempt, NewSale};
use crate::money::{Amount, Currency};
use crate::paycode::{Scan, recognise};
use crate::state::{AttemptState, Cause, RefundState};

fn cny(minor: i64) -> Amount {
    Amount::from_minor(minor, Currency::from_code("CNY").unwrap())
}

/// A journal with one sale per `(request id, minor units, final state)`, made now.
fn journal(sales: &[(&str, i64, AttemptState)]) -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    for (i, (request_id, minor, state)) in sales.iter().enumerate() {
        let new = NewSale {
            id: format!("S{i}"),
            amount: cny(*minor),
            reference: None,
            subject: "x".into(),
            idempotency_key: None,
            max_attempts: 1,
            supersede: false,
            basket: Default::default(),
        };
        j.create_sale(&new, Utc::now()).unwrap();
        let Scan::Payment(code) = recognise(&format!("2860000000000{i:05}")) else {
            panic!()
        };
        let attempt = NewAttempt {
            request_id: request_id.to_string(),
            gateway: "sandbox",
            code: &code,
            deadline_at: Utc::now(),
            signing_key: None,
        };
        let a = j.begin_attempt(&new.id, &attempt, Utc::now()).unwrap();
        let change = Change {
            paid_then_refunded: *state == AttemptState::Cancelled && *minor > 0 && i % 2 == 1,
            ..Change::default()
        };
        let via = if *state == AttemptState::Cancelled {
            j.transition(
                a.id,
                AttemptState::Unknown,
                Cause::PayAnswer,
                &Change::default(),
                Utc::now(),
            )
            .unwrap();
            j.transition(
                a.id,
                AttemptState::Cancelling,
                Cause::Deadline,
                &Change::default(),
                Utc::now(),
            )
            .unwrap();
            Cause::CancelAnswer
        } else {
            Cause::PayAnswer
        };
        j.transition(a.id, *state, via, &change, Utc::now())
            .unwrap();
    }
    (dir, j)
}

fn line(kind: RecordKind, request_id: &str, minor: i64, refund_id: Option<&str>) -> ProviderRecord {
    ProviderRecord {
        kind,
        request_id: request_id.into(),
        trade_id: format!("trade-{request_id}"),
        amount: cny(minor),
        refund_id: refund_id.map(str::to_string),
        at: String::new(),
        line: 0,
        money: Default::default(),
    }
}

fn compare(j: &Journal, records: &[ProviderRecord]) -> Reconciliation {
    let today = Utc::now().date_naive();
    let from = today.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::Duration::days(1);
    reconcile(
        j,
        "T",
        crate::clock::StoreZone::Host,
        today,
        from,
        from + chrono::Duration::days(3),
        "test",
        records,
    )
    .unwrap()
}

/// A failed attempt ended with `result_code`/`result_message` as the engine and the
/// watchdog write them for "never created" and "refused at the door".
fn end_unconfirmed(j: &Journal, request_id: &str, code: &str, message: &str) {
    let a = j.attempt_by_request_id(request_id).unwrap().unwrap();
    let conn = rusqlite::Connection::open(j.path()).unwrap();
    conn.execute(
        "UPDATE attempts SET result_code = ?2, result_message = ?3 WHERE id = ?1",
        rusqlite::params![a.id, code, message],
    )
    .unwrap();
}

#[test]
fn attempts_ended_on_the_gateways_word_alone_are_looked_up_on_the_bill() {
    let (_d, j) = journal(&[
        ("T_never", 300, AttemptState::Failed),
        ("T_door", 400, AttemptState::Failed),
        ("T_late", 500, AttemptState::Failed),
        ("T_declined", 600, AttemptState::Failed),
    ]);
    end_unconfirmed(
        &j,
        "T_never",
        crate::state::NOT_CREATED,
        "cancel: no such payment",
    );
    end_unconfirmed(
        &j,
        "T_door",
        "isv.invalid-signature",
        &format!("{}: 验签出错", crate::state::REFUSED_AT_DOOR),
    );
    end_unconfirmed(
        &j,
        "T_late",
        crate::state::NOT_CREATED,
        "cancel: no such payment",
    );
    // The "never created" payment T_late was created after all.
    let r = compare(&j, &[line(RecordKind::Payment, "T_late", 500, None)]);
    let checked: Vec<(&str, &str, bool)> = r
        .unconfirmed_checked
        .iter()
        .map(|c| (c.request_id.as_str(), c.why.as_ref(), c.paid_at_provider))
        .collect();
    assert_eq!(
        checked,
        [
            ("T_door", "refused at the door", false),
            ("T_late", "never created", true),
            ("T_never", "never created", false),
        ],
        "an ordinary decline is not in the list"
    );
    assert_eq!(r.differences.len(), 1, "{:?}", r.differences);
    let d = &r.differences[0];
    assert_eq!(d.kind, DifferenceKind::PaidOnlyAtProvider);
    assert_eq!(d.request_id, "T_late");
    assert!(d.detail.contains("never created"), "{}", d.detail);
    let text = to_text(&r);
    assert!(text.contains("3 attempt(s) ended not charged"), "{text}");
    assert!(text.contains("1 paid there"), "{text}");
}

#[test]
fn agreeing_records_have_no_difference_and_equal_totals() {
    let (_d, j) = journal(&[
        ("T_paid", 1250, AttemptState::Succeeded),
        ("T_failed", 900, AttemptState::Failed),
        ("T_closed", 300, AttemptState::Cancelled),
        ("T_reversed", 700, AttemptState::Cancelled),
    ]);
    let r = compare(
        &j,
        &[
            line(RecordKind::Payment, "T_paid", 1250, None),
            line(RecordKind::Payment, "T_reversed", 700, None),
            line(RecordKind::Refund, "T_reversed", 700, None),
        ],
    );
    assert!(r.matches(), "{:?}", r.differences);
    let t = &r.totals[0];
    assert_eq!((t.provider_paid, t.journal_paid), (1950, 1950));
    assert_eq!((t.provider_refunded, t.journal_refunded), (700, 700));
}

#[test]
fn each_kind_of_difference_is_reported_exactly_once() {
    let (_d, j) = journal(&[
        ("T_kept", 1250, AttemptState::Failed),
        ("T_missing", 500, AttemptState::Succeeded),
        ("T_amount", 800, AttemptState::Succeeded),
        ("T_refund", 1000, AttemptState::Succeeded),
    ]);
    let r = compare(
        &j,
        &[
            line(RecordKind::Payment, "T_kept", 1250, None),
            line(RecordKind::Payment, "T_unknown", 400, None),
            line(RecordKind::Payment, "T_amount", 810, None),
            line(RecordKind::Payment, "T_refund", 1000, None),
            line(
                RecordKind::Refund,
                "T_refund",
                100,
                Some("R_only_at_provider"),
            ),
        ],
    );
    let got: Vec<(DifferenceKind, &str, Option<&str>, i64, i64)> = r
        .differences
        .iter()
        .map(|d| {
            (
                d.kind,
                d.request_id.as_str(),
                d.refund_id.as_deref(),
                d.provider_minor,
                d.journal_minor,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (DifferenceKind::PaidOnlyAtProvider, "T_kept", None, 1250, 0),
            (
                DifferenceKind::PaidOnlyAtProvider,
                "T_unknown",
                None,
                400,
                0
            ),
            (DifferenceKind::PaidOnlyInJournal, "T_missing", None, 0, 500),
            (DifferenceKind::AmountMismatch, "T_amount", None, 810, 800),
            (
                DifferenceKind::RefundMismatch,
                "T_refund",
                Some("R_only_at_provider"),
                100,
                0
            ),
        ]
    );
    assert!(r.differences[1].detail.contains("unknown to the journal"));
    assert_eq!(r.differences[0].sale_id.as_deref(), Some("S0"));
    let csv = to_csv(&r).unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(to_text(&r).contains("5 difference(s)"));
}

#[test]
fn a_refund_of_an_earlier_days_payment_matches_on_its_own_day() {
    let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
    // The day being reconciled starts after the payment.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let from = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let refund = j
        .begin_refund("S0", "R1", cny(250), None, Utc::now())
        .unwrap();
    j.refund_transition(
        refund.id,
        RefundState::Succeeded,
        "SUCCESS",
        "ok",
        None,
        Utc::now(),
    )
    .unwrap();
    let r = reconcile(
        &j,
        "T",
        crate::clock::StoreZone::parse("+07:00").unwrap(),
        from.date_naive(),
        from,
        from + chrono::Duration::days(1),
        "test",
        &[line(RecordKind::Refund, "T_paid", 250, Some("R1"))],
    )
    .unwrap();
    assert!(r.matches(), "{:?}", r.differences);
    assert_eq!(r.totals[0].journal_paid, 0, "the payment was another day's");
    assert_eq!(r.totals[0].journal_refunded, 250);
}

#[test]
fn other_terminals_lines_are_counted_not_compared() {
    let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
    let r = compare(
        &j,
        &[
            line(RecordKind::Payment, "T_paid", 1250, None),
            line(RecordKind::Payment, "T2_other_till", 999, None),
        ],
    );
    assert!(r.matches(), "{:?}", r.differences);
    assert_eq!((r.provider_lines, r.other_lines), (1, 1));
}

#[test]
fn a_recovery_refund_is_written_once_and_only_for_an_unpaid_final_attempt() {
    let (_d, j) = journal(&[
        ("T_kept", 1250, AttemptState::Failed),
        ("T_paid", 500, AttemptState::Succeeded),
    ]);
    let first = j
        .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
        .unwrap();
    let again = j
        .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
        .unwrap();
    assert_eq!(first.id, again.id, "the same refund, not a second");
    assert_eq!(
        (first.sale_id.as_str(), first.request_id.as_str()),
        ("S0", "T_keptX1")
    );
    for (request_id, amount) in [("T_paid", 500), ("T_kept", 1251), ("T_nothing", 1)] {
        let refused = j.begin_recovery_refund(request_id, cny(amount), "r", Utc::now());
        assert!(refused.is_err(), "{request_id} {amount}");
    }
    // After a failed one, the next try is a new refund under a new id.
    j.refund_transition(
        first.id,
        RefundState::Failed,
        "FAIL",
        "no",
        None,
        Utc::now(),
    )
    .unwrap();
    let retry = j
        .begin_recovery_refund("T_kept", cny(1250), "r", Utc::now())
        .unwrap();
    assert_eq!(retry.request_id, "T_keptX2");

    // It does not use up what a paid attempt of the same sale can still refund.
    let sale = NewSale {
        id: "S_two".into(),
        amount: cny(1250),
        reference: None,
        subject: "x".into(),
        idempotency_key: None,
        max_attempts: 2,
        supersede: false,
        basket: Default::default(),
    };
    j.create_sale(&sale, Utc::now()).unwrap();
    for (i, (request_id, to)) in [
        ("T_first", AttemptState::Failed),
        ("T_second", AttemptState::Succeeded),
    ]
    .into_iter()
    .enumerate()
    {
        let Scan::Payment(code) = recognise(&format!("28600000000009{i:04}")) else {
            panic!()
        };
        let new = NewAttempt {
            request_id: request_id.into(),
            gateway: "sandbox",
            code: &code,
            deadline_at: Utc::now(),
            signing_key: None,
        };
        let a = j.begin_attempt("S_two", &new, Utc::now()).unwrap();
        j.transition(a.id, to, Cause::PayAnswer, &Change::default(), Utc::now())
            .unwrap();
    }
    j.begin_recovery_refund("T_first", cny(1250), "r", Utc::now())
        .unwrap();
    j.begin_refund("S_two", "R_customer", cny(1250), None, Utc::now())
        .unwrap();
}

#[test]
fn a_journal_refund_missing_at_the_provider_is_a_refund_mismatch() {
    let (_d, j) = journal(&[("T_paid", 1250, AttemptState::Succeeded)]);
    let refund = j
        .begin_refund("S0", "R1", cny(250), None, Utc::now())
        .unwrap();
    j.refund_transition(
        refund.id,
        RefundState::Succeeded,
        "SUCCESS",
        "ok",
        None,
        Utc::now(),
    )
    .unwrap();
    let r = compare(&j, &[line(RecordKind::Payment, "T_paid", 1250, None)]);
    assert_eq!(r.differences.len(), 1, "{:?}", r.differences);
    let d = &r.differences[0];
    assert_eq!(
        (d.kind, d.refund_id.as_deref(), d.request_id.as_str()),
        (DifferenceKind::RefundMismatch, Some("R1"), "T_paid")
    );
    assert_eq!((d.provider_minor, d.journal_minor), (0, 250));
    // And once the provider lists it, they agree.
    let r = compare(
        &j,
        &[
            line(RecordKind::Payment, "T_paid", 1250, None),
            line(RecordKind::Refund, "T_paid", 250, Some("R1")),
        ],
    );
    assert!(r.matches(), "{:?}", r.differences);
}

#[test]
fn what_the_store_received_is_compared_where_both_sides_state_it() {
    let (_d, j) = journal(&[
        ("T_voucher", 1000, AttemptState::Succeeded),
        ("T_plain", 500, AttemptState::Succeeded),
    ]);
    let a = j.attempt_by_request_id("T_voucher").unwrap().unwrap();
    let conn = rusqlite::Connection::open(j.path()).unwrap();
    let keep = |received: i64| {
        conn.execute(
            "INSERT OR REPLACE INTO attempt_money (attempt_id, money_source, received_minor,
                 merchant_discount_minor, platform_discount_minor, fund_bills, vouchers, money_at)
             VALUES (?1, 'pay', ?2, 200, 0, '[]', '[]', '2026-12-01T00:00:00.000Z')",
            rusqlite::params![a.id, received],
        )
        .unwrap();
    };
    keep(800);
    let with_received = |id: &str, minor: i64, received: i64| ProviderRecord {
        money: crate::gateway::RecordMoney {
            received: Some(cny(received)),
            ..Default::default()
        },
        ..line(RecordKind::Payment, id, minor, None)
    };
    // The journal states nothing for T_plain: its received is not compared.
    let records = [
        with_received("T_voucher", 1000, 800),
        with_received("T_plain", 500, 450),
    ];
    let r = compare(&j, &records);
    assert!(r.matches(), "{:?}", r.differences);
    assert_eq!(r.totals[0].provider_received, 1250);
    assert_eq!(r.totals[0].journal_received, 1300);

    keep(700);
    let r = compare(&j, &records);
    let got: Vec<_> = r
        .differences
        .iter()
        .map(|d| {
            (
                d.kind,
                d.request_id.as_str(),
                d.provider_minor,
                d.journal_minor,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(DifferenceKind::ReceivedMismatch, "T_voucher", 800, 700)]
    );
    assert!(to_text(&r).contains("received_mismatch"), "{}", to_text(&r));
}
