use super::*;
use crate::money::{Amount, Currency};
use crate::paycode::{PaymentCode, Scan, recognise};
use crate::state::{AttemptState, Cause, SaleState};
use sha2::{Digest, Sha256};

fn cny(minor: i64) -> Amount {
    Amount::from_minor(minor, Currency::from_code("CNY").unwrap())
}

fn code(text: &str) -> PaymentCode {
    match recognise(text) {
        Scan::Payment(c) => c,
        other => panic!("{other:?}"),
    }
}

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
    (dir, j)
}

fn sale(j: &Journal, id: &str, max_attempts: u32) -> SaleRow {
    let new = NewSale {
        id: id.to_string(),
        amount: cny(1250),
        reference: Some("R-1".into()),
        subject: "coffee".into(),
        idempotency_key: None,
        max_attempts,
        supersede: false,
        basket: Default::default(),
    };
    j.create_sale(&new, Utc::now()).unwrap().0
}

fn attempt(j: &Journal, sale_id: &str, request_id: &str, c: &str) -> AttemptRow {
    let c = code(c);
    let new = NewAttempt {
        request_id: request_id.to_string(),
        gateway: "sandbox",
        code: &c,
        deadline_at: Utc::now(),
        signing_key: None,
    };
    j.begin_attempt(sale_id, &new, Utc::now()).unwrap()
}

fn change(code: &str) -> Change {
    Change {
        result_code: Some(code.to_string()),
        ..Change::default()
    }
}

#[test]
fn begin_attempt_commits_pending_row_and_processing_sale() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000000");
    assert_eq!(a.state, AttemptState::Pending);
    assert_eq!(a.code, None, "the full code is never written");
    assert_eq!(a.code_masked, "28************0000");
    assert_eq!(j.sale("S1").unwrap().unwrap().state, SaleState::Processing);
    // Visible to another connection: it is committed, not just buffered.
    let other = Connection::open(j.path()).unwrap();
    let state: String = other
        .query_row(
            "SELECT state FROM attempts WHERE request_id = 'R1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "pending");
}

/// A register's read in progress (a long list of sales, an event replay) holds the
/// reader, never the writer: the next attempt is written meanwhile, and the reader sees it
/// once its read is over.
#[test]
fn a_read_in_progress_does_not_hold_back_an_attempt_write() {
    let (_d, j) = journal();
    let j = std::sync::Arc::new(j);
    sale(&j, "S1", 1);
    let mut reader = j.read();
    let tx = reader.transaction().unwrap();
    let before: i64 = tx
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, 0);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = j.clone();
    std::thread::spawn(move || {
        let a = attempt(&writer, "S1", "R1", "286000000000000000");
        let _ = done_tx.send(a.state);
    });
    let written = done_rx.recv_timeout(std::time::Duration::from_secs(5));
    assert_eq!(
        written.ok(),
        Some(AttemptState::Pending),
        "the attempt write waited for a reader"
    );
    // The open read still sees its own snapshot; a read after it sees the write.
    let during: i64 = tx
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(during, 0);
    tx.finish().unwrap();
    drop(reader);
    assert_eq!(j.attempts("S1").unwrap().len(), 1);
}

/// A member's day limit counts what is paid and what is still in doubt; what ended unpaid
/// gives the limit back.
#[test]
fn a_members_charges_in_doubt_count_against_the_day() {
    let (_d, j) = journal();
    let now = Utc::now();
    let member = |sale_id: &str, request_id: &str| {
        sale(&j, sale_id, 1);
        let new = NewMemberAttempt {
            request_id: request_id.to_string(),
            gateway: "sandbox",
            member_id: "M1",
            deadline_at: now,
            signing_key: None,
        };
        j.begin_member_attempt(sale_id, &new, now).unwrap().0
    };
    let in_doubt = member("S1", "R1");
    let amount = in_doubt.amount.minor();
    assert_eq!(
        j.member_paid_since("M1", now - chrono::Duration::hours(1))
            .unwrap(),
        amount
    );
    j.transition(
        in_doubt.id,
        AttemptState::Failed,
        Cause::PayAnswer,
        &change("USER_BALANCE_NOT_ENOUGH"),
        now,
    )
    .unwrap();
    assert_eq!(
        j.member_paid_since("M1", now - chrono::Duration::hours(1))
            .unwrap(),
        0
    );
    member("S2", "R2");
    assert_eq!(
        j.member_paid_since("M1", now - chrono::Duration::hours(1))
            .unwrap(),
        amount
    );
    assert_eq!(
        j.member_paid_since("M2", now - chrono::Duration::hours(1))
            .unwrap(),
        0
    );
}

/// Closing the journal folds the WAL into the file, as a single connection did: a copy of
/// the file alone (a backup by hand, a damaged-journal drill) holds every commit.
#[test]
fn closing_the_journal_folds_the_wal_into_the_file() {
    let (d, j) = journal();
    sale(&j, "S1", 1);
    attempt(&j, "S1", "R1", "286000000000000000");
    assert_eq!(j.attempts("S1").unwrap().len(), 1, "the reader has read");
    let path = j.path().to_path_buf();
    drop(j);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the WAL was left behind");
    let copy = d.path().join("copy.sqlite");
    std::fs::copy(&path, &copy).unwrap();
    let n: i64 = Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn durability_settings_are_in_force() {
    let (_d, j) = journal();
    let conn = j.conn();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn a_final_attempt_drops_its_full_code() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000000");
    let (a, s) = j
        .transition(
            a.id,
            AttemptState::Succeeded,
            Cause::PayAnswer,
            &change("SUCCESS"),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(a.code, None);
    assert_eq!(s.state, SaleState::Paid);
    let raw: Option<String> = j
        .conn()
        .query_row("SELECT code FROM attempts WHERE id = ?1", [a.id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(raw, None);
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000000");
    j.transition(
        a.id,
        AttemptState::Succeeded,
        Cause::PayAnswer,
        &change("SUCCESS"),
        Utc::now(),
    )
    .unwrap();
    for to in AttemptState::ALL {
        let err = j
            .transition(a.id, to, Cause::Inquiry, &change("X"), Utc::now())
            .unwrap_err();
        assert!(matches!(err, JournalError::Illegal(_)), "{to}: {err}");
    }
    let a = j.attempt(a.id).unwrap();
    assert_eq!(a.state, AttemptState::Succeeded);
    assert_eq!(a.result_code.as_deref(), Some("SUCCESS"));
    assert_eq!(j.sale("S1").unwrap().unwrap().state, SaleState::Paid);
}

#[test]
fn failed_turns_succeeded_only_by_inquiry() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000000");
    j.transition(
        a.id,
        AttemptState::Failed,
        Cause::PayAnswer,
        &change("SYSTEM_ERROR"),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(j.sale("S1").unwrap().unwrap().state, SaleState::Failed);
    assert!(
        j.transition(
            a.id,
            AttemptState::Succeeded,
            Cause::PayAnswer,
            &change("SUCCESS"),
            Utc::now()
        )
        .is_err()
    );
    let (_, s) = j
        .transition(
            a.id,
            AttemptState::Succeeded,
            Cause::Inquiry,
            &change("TRADE_SUCCESS"),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(s.state, SaleState::Paid);
}

#[test]
fn one_open_attempt_per_sale_and_no_more_than_allowed() {
    let (_d, j) = journal();
    sale(&j, "S1", 2);
    let a = attempt(&j, "S1", "R1", "286000000000000001");
    let c = code("286000000000000000");
    let new = NewAttempt {
        request_id: "R2".into(),
        gateway: "sandbox",
        code: &c,
        deadline_at: Utc::now(),
        signing_key: None,
    };
    assert!(matches!(
        j.begin_attempt("S1", &new, Utc::now()),
        Err(JournalError::SaleState { .. })
    ));
    let (_, s) = j
        .transition(
            a.id,
            AttemptState::Failed,
            Cause::PayAnswer,
            &change("BALANCE"),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(s.state, SaleState::AwaitingScan, "one more attempt allowed");
    assert_eq!(s.reason.as_deref(), Some("BALANCE"));
    let b = j.begin_attempt("S1", &new, Utc::now()).unwrap();
    assert_eq!(b.seq, 2);
    let (_, s) = j
        .transition(
            b.id,
            AttemptState::Failed,
            Cause::PayAnswer,
            &change("BALANCE"),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(s.state, SaleState::Failed);
}

#[test]
fn request_ids_are_unique() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    sale(&j, "S2", 1);
    attempt(&j, "S1", "R1", "286000000000000000");
    let c = code("286000000000000100");
    let new = NewAttempt {
        request_id: "R1".into(),
        gateway: "sandbox",
        code: &c,
        deadline_at: Utc::now(),
        signing_key: None,
    };
    assert!(j.begin_attempt("S2", &new, Utc::now()).is_err());
    assert_eq!(
        j.sale("S2").unwrap().unwrap().state,
        SaleState::AwaitingScan
    );
}

#[test]
fn idempotency_key_returns_the_same_sale() {
    let (_d, j) = journal();
    let new = NewSale {
        id: "S1".into(),
        amount: cny(100),
        reference: None,
        subject: "x".into(),
        idempotency_key: Some("K".into()),
        max_attempts: 1,
        supersede: false,
        basket: Default::default(),
    };
    let (a, created) = j.create_sale(&new, Utc::now()).unwrap();
    assert!(created);
    let again = NewSale {
        id: "S2".into(),
        ..new.clone()
    };
    let (b, created) = j.create_sale(&again, Utc::now()).unwrap();
    assert!(!created);
    assert_eq!(a.id, b.id);
    let other = NewSale {
        id: "S3".into(),
        amount: cny(200),
        ..new
    };
    assert!(matches!(
        j.create_sale(&other, Utc::now()),
        Err(JournalError::IdempotencyConflict { .. })
    ));
}

#[test]
fn code_reuse_is_found_by_fingerprint_only() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000000");
    j.transition(
        a.id,
        AttemptState::Failed,
        Cause::PayAnswer,
        &change("X"),
        Utc::now(),
    )
    .unwrap();
    let earlier = Utc::now() - chrono::Duration::hours(1);
    let found = j
        .attempts_with_code(&code("286000000000000000"), earlier)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        j.attempts_with_code(&code("286000000000000100"), earlier)
            .unwrap()
            .is_empty()
    );
    // The fingerprint is salted: it is not the bare SHA-256 of the code.
    let stored: String = j
        .conn()
        .query_row("SELECT code_hash FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, hex(&Sha256::digest(b"286000000000000000")));
}

#[test]
fn open_work_queries_use_the_partial_indexes() {
    let (_d, j) = journal();
    let conn = j.conn();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    };
    let attempts = plan(
        "SELECT id FROM attempts WHERE state IN ('pending','unknown','cancelling') ORDER BY id",
    );
    assert!(attempts.contains("attempts_open"), "{attempts}");
    let sales = plan(
        "SELECT id FROM sales WHERE state IN ('awaiting_scan','processing') ORDER BY created_at",
    );
    assert!(sales.contains("sales_open"), "{sales}");
}

#[test]
fn reopening_keeps_data_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    {
        let j = Journal::open(&path).unwrap();
        sale(&j, "S1", 1);
    }
    let j = Journal::open(&path).unwrap();
    assert!(j.sale("S1").unwrap().is_some());
    drop(j);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
        .unwrap();
    drop(conn);
    assert!(matches!(
        Journal::open(&path),
        Err(JournalError::TooNew { .. })
    ));
}

#[test]
fn a_damaged_row_is_reported_not_trusted() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    j.conn()
        .execute("UPDATE sales SET currency = 'XXX' WHERE id = 'S1'", [])
        .unwrap();
    assert!(matches!(j.sale("S1"), Err(JournalError::Corrupt(_))));
}

#[test]
fn close_sale_only_from_awaiting_scan() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let s = j
        .close_sale("S1", SaleState::Cancelled, "aborted", Utc::now())
        .unwrap();
    assert_eq!(s.state, SaleState::Cancelled);
    assert!(
        j.close_sale("S1", SaleState::Expired, "x", Utc::now())
            .is_err()
    );
}

#[test]
fn one_writer_per_journal_and_readers_alongside() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    assert!(matches!(
        Journal::open(j.path()),
        Err(JournalError::Locked(_))
    ));
    let reader = Journal::open_read_only(j.path()).unwrap();
    assert!(reader.sale("S1").unwrap().is_some());
    let path = j.path().to_path_buf();
    drop(j);
    Journal::open(&path).unwrap();
}

#[test]
fn a_failure_is_not_overturned_while_another_attempt_is_open() {
    let (_d, j) = journal();
    sale(&j, "S1", 2);
    let a = attempt(&j, "S1", "R1", "286000000000000001");
    j.transition(
        a.id,
        AttemptState::Failed,
        Cause::PayAnswer,
        &change("X"),
        Utc::now(),
    )
    .unwrap();
    let b = attempt(&j, "S1", "R2", "286000000000000000");
    assert!(matches!(
        j.transition(
            a.id,
            AttemptState::Succeeded,
            Cause::Inquiry,
            &change("paid"),
            Utc::now()
        ),
        Err(JournalError::AttemptOpen(_))
    ));
    j.transition(
        b.id,
        AttemptState::Succeeded,
        Cause::PayAnswer,
        &change("paid"),
        Utc::now(),
    )
    .unwrap();
    // Both paid: recorded, because the money moved, and flagged for a person.
    let (a, s) = j
        .transition(
            a.id,
            AttemptState::Succeeded,
            Cause::Inquiry,
            &change("paid"),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(s.state, SaleState::Paid);
    assert!(a.needs_attention.unwrap().contains("refund one"));
}

#[test]
fn pruning_keeps_the_newest_events_and_their_ids() {
    let (_dir, j) = journal();
    let now = Utc::now();
    let batch: Vec<_> = (0..10)
        .map(|i| ("barcode".to_string(), None, format!("{{\"n\":{i}}}")))
        .collect();
    let ids = j.append_events(&batch, now).unwrap();
    assert_eq!(j.prune_events(4).unwrap(), 6);
    let left: Vec<i64> = j
        .events_after(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(left, ids[6..].to_vec());
    assert_eq!(j.prune_events(4).unwrap(), 0);
    // AUTOINCREMENT: ids never go back, so a register's Last-Event-ID stays meaningful.
    let next = j.append_events(&batch[..1], now).unwrap();
    assert!(next[0] > ids[9]);
}

#[test]
fn a_sale_read_whole_never_pairs_an_old_state_with_a_new_attempt() {
    let (_d, j) = journal();
    let j = std::sync::Arc::new(j);
    sale(&j, "S1", 1000);
    let writer = {
        let j = j.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                let a = attempt(&j, "S1", &format!("R{i}"), &format!("2860000000{i:08}"));
                j.transition(
                    a.id,
                    AttemptState::Failed,
                    Cause::PayAnswer,
                    &change("NOT_SENT"),
                    Utc::now(),
                )
                .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let (sale, attempts, _) = j.sale_whole("S1").unwrap().unwrap();
        let open = attempts.iter().any(|a| !a.state.is_final());
        assert_eq!(
            sale.state == SaleState::Processing,
            open,
            "sale {} with attempts {:?}",
            sale.state,
            attempts.iter().map(|a| a.state).collect::<Vec<_>>()
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 10);
}

/// The figure the bench reports and the promise of `journal/mod.rs`: between the scan and its
/// outcome a paid sale costs two commits (two fsyncs), events included, and stays well under
/// 64 KiB of writes. Counted, never timed.
#[test]
fn a_paid_sale_costs_two_syncs_on_the_pay_path() {
    let (_d, j) = journal();
    for i in 0..40 {
        let id = format!("S{i}");
        sale(&j, &id, 1);
        // What the register's bus queues around a sale: armed, then sent.
        j.queue_events(
            vec![("sale_armed".into(), Some(id.clone()), "{}".into())],
            Utc::now(),
        );
        let before = j.disk_use();
        let a = attempt(&j, &id, &format!("R{i}"), &format!("2860{i:012}00"));
        assert!(j.paying_since().is_some(), "the pay request is out");
        j.queue_events(
            vec![("attempt_sent".into(), Some(id.clone()), "{}".into())],
            Utc::now(),
        );
        j.transition(
            a.id,
            AttemptState::Succeeded,
            Cause::PayAnswer,
            &change("SUCCESS"),
            Utc::now(),
        )
        .unwrap();
        let used = j.disk_use().since(before);
        assert!(used.syncs <= 2, "sale {i}: {used:?}");
        assert!(used.bytes <= 65_536, "sale {i}: {used:?}");
        assert!(j.paying_since().is_none());
        assert_eq!(
            j.events_waiting_since(),
            None,
            "the outcome stored the events"
        );
        let stored = j.take_stored_events();
        let kinds: Vec<&str> = stored.iter().map(|(_, (k, _, _))| k.as_str()).collect();
        assert_eq!(kinds, ["sale_armed", "attempt_sent"]);
        assert!(stored[0].0 < stored[1].0);
    }
    let kept: Vec<(i64, String, String)> = j.events_after(0, 1000).unwrap();
    assert_eq!(kept.len(), 80, "every event is stored");
}

#[test]
fn queued_events_get_their_own_commit_when_no_outcome_comes() {
    let (_d, j) = journal();
    j.queue_events(
        vec![
            ("gateway_online".into(), None, "{}".into()),
            ("barcode".into(), None, "{\"text\":\"x\"}".into()),
        ],
        Utc::now(),
    );
    assert!(j.events_waiting_since().is_some());
    assert_eq!(j.last_event_id().unwrap(), 0, "not stored yet");
    let before = j.disk_use();
    j.write_queued_events().unwrap();
    assert_eq!(
        j.disk_use().since(before).syncs,
        1,
        "one commit for the batch"
    );
    let stored = j.take_stored_events();
    assert_eq!(stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(j.identity().unwrap().last_event_id, 2);
    // Nothing waiting: no commit at all.
    let before = j.disk_use();
    j.write_queued_events().unwrap();
    assert_eq!(j.disk_use().since(before).syncs, 0);
}

#[test]
fn a_checkpoint_empties_the_wal_and_is_counted() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    assert!(j.wal_frames() > 0);
    let wal = || {
        std::fs::metadata(j.path().with_extension("sqlite-wal"))
            .unwrap()
            .len()
    };
    let before = j.disk_use();
    let grown = wal();
    assert!(j.checkpoint(Checkpoint::Restart, std::time::Duration::ZERO));
    let used = j.disk_use().since(before);
    assert_eq!(
        used.syncs, 2,
        "the WAL before the copy, the main file after"
    );
    assert!(used.bytes > 0);
    assert_eq!(j.wal_frames(), 0);
    assert_eq!(
        wal(),
        grown,
        "restarted: the file is written over from its start"
    );
    let before = j.disk_use();
    sale(&j, "S1b", 1);
    assert_eq!(j.disk_use().since(before).syncs, 2 + 2);
    assert_eq!(wal(), grown);
    assert!(j.checkpoint(Checkpoint::Truncate, std::time::Duration::ZERO));
    assert_eq!(wal(), 0, "truncated");
    // The next commit starts a new log: its header is synced on its own. (Each sale also
    // writes the identity file: two more.)
    let before = j.disk_use();
    sale(&j, "S2", 1);
    assert_eq!(j.disk_use().since(before).syncs, 2 + 2);
    let before = j.disk_use();
    sale(&j, "S3", 1);
    assert_eq!(j.disk_use().since(before).syncs, 1 + 2);
}

#[test]
fn reconciliation_finds_ended_and_open_attempts_through_partial_indexes() {
    let (_d, j) = journal();
    let t0 = Utc::now() - chrono::TimeDelta::seconds(1);
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000001");
    j.transition(
        a.id,
        AttemptState::Succeeded,
        Cause::PayAnswer,
        &change("SUCCESS"),
        Utc::now(),
    )
    .unwrap();
    sale(&j, "S2", 1);
    let open = attempt(&j, "S2", "R2", "286000000000000002");
    let t1 = Utc::now() + chrono::TimeDelta::seconds(1);
    let found = j.attempts_updated_between(t0, t1).unwrap();
    assert_eq!(
        found
            .iter()
            .map(|a| a.request_id.as_str())
            .collect::<Vec<_>>(),
        ["R1", "R2"]
    );
    assert_eq!(found[1].id, open.id);
    assert!(j.attempts_updated_between(t1, t1).unwrap().is_empty());
    let conn = j.conn();
    let mut stmt = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT id FROM attempts
             WHERE state IN ('succeeded','failed','cancelled') AND updated_at >= ?1 AND updated_at < ?2",
        )
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map(["", ""], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(plan.join("; ").contains("attempts_ended"), "{plan:?}");
}

#[test]
fn upgrading_clears_the_full_codes_earlier_versions_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    {
        let j = Journal::open(&path).unwrap();
        sale(&j, "S1", 1);
        attempt(&j, "S1", "R1", "286000000000000003");
    }
    {
        // As an earlier version left it: schema 6, the open attempt holding its code.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX attempts_ended;
             CREATE INDEX attempts_sale ON attempts (sale_id);
             CREATE INDEX attempts_updated ON attempts (updated_at);
             CREATE INDEX events_at ON events (at);
             UPDATE attempts SET code = '286000000000000003';
             DROP TABLE operator_actions;
             ALTER TABLE attempts DROP COLUMN signing_key;
             ALTER TABLE attempts DROP COLUMN method;
             ALTER TABLE attempts DROP COLUMN presented;
             ALTER TABLE attempts DROP COLUMN presented_expires_at;
             DROP TABLE attempt_money;
             DROP TABLE sale_baskets;
             DROP TABLE shifts;
             DROP TABLE member_bindings;
             PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let conn = j.conn();
    let codes: i64 = conn
        .query_row(
            "SELECT count(*) FROM attempts WHERE code IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(codes, 0);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'attempts' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        indexes,
        [
            "attempts_attention",
            "attempts_code_hash",
            "attempts_ended",
            "attempts_open",
            "sqlite_autoindex_attempts_1",
            "sqlite_autoindex_attempts_2"
        ]
    );
}

/// The lookups of every sale (its attempts, its refunds) are prepared once: a new sale id
/// bound to them does not make SQLite prepare them again.
#[test]
fn lookups_by_sale_stay_prepared() {
    use super::query::Table;
    let (_d, j) = journal();
    for id in ["S1", "S2"] {
        sale(&j, id, 1);
    }
    let conn = j.conn();
    for sql in [
        format!("{} WHERE sale_id = ?1 ORDER BY seq", AttemptRow::SELECT),
        format!("{} WHERE sale_id = ?1 ORDER BY id", RefundRow::SELECT),
        format!("{} WHERE id = ?1", SaleRow::SELECT),
    ] {
        for id in ["S1", "S2", "S1", "S2"] {
            let mut stmt = conn.prepare_cached(&sql).unwrap();
            let mut rows = stmt.query([id]).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}

#[test]
fn settling_covers_only_the_reason_seen_and_clears_only_that_flag() {
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000004");
    j.flag_attention(a.id, Some("cancel refused"), Utc::now())
        .unwrap();
    let settle = NewAction {
        request_id: Some("k1"),
        actor: "socket uid 0",
        operator: Some("Li Wei"),
        action: "settle",
        target: Some("R1"),
        note: Some("refunded in the portal"),
        status: 200,
        result: r#"{"why":"cancel refused"}"#,
    };
    j.record_action(&settle, Utc::now()).unwrap();
    assert!(matches!(
        j.record_action(&settle, Utc::now()),
        Err(JournalError::DuplicateAction(k)) if k == "k1"
    ));
    assert!(j.settled_by_hand("R1", "cancel refused").unwrap());
    assert!(
        !j.settled_by_hand("R1", "the cancel window has closed")
            .unwrap()
    );
    // A newer reason raised since the operator looked is not cleared by their settle.
    j.flag_attention(a.id, Some("the cancel window has closed"), Utc::now())
        .unwrap();
    assert!(
        !j.clear_attention(a.id, "cancel refused", Utc::now())
            .unwrap()
    );
    assert!(j.attempt(a.id).unwrap().needs_attention.is_some());
    assert!(
        j.clear_attention(a.id, "the cancel window has closed", Utc::now())
            .unwrap()
    );
    assert_eq!(j.attempt(a.id).unwrap().needs_attention, None);
}

#[test]
fn what_the_provider_said_moved_is_kept_with_the_paid_attempt_and_read_back() {
    use crate::money::breakdown::{Breakdown, Fund, Voucher};
    let (_d, j) = journal();
    sale(&j, "S1", 1);
    let a = attempt(&j, "S1", "R1", "286000000000000016");
    assert!(a.money.is_empty(), "nothing before it is paid");
    let money = Breakdown {
        buyer_paid: Some(cny(1050)),
        received: Some(cny(1050)),
        points: Some(cny(0)),
        invoice: None,
        funds: vec![Fund {
            channel: "ALIPAYACCOUNT".into(),
            amount: cny(1050),
        }],
        vouchers: vec![Voucher {
            id: "V1".into(),
            name: "店铺满减券".into(),
            kind: "ALIPAY_FIX_VOUCHER".into(),
            amount: cny(200),
            merchant: Some(cny(200)),
            platform: None,
        }],
    };
    let c = Change {
        money: Some(money.clone()),
        ..change("paid")
    };
    let (paid, _) = j
        .transition(
            a.id,
            AttemptState::Succeeded,
            Cause::PayAnswer,
            &c,
            Utc::now(),
        )
        .unwrap();
    assert_eq!(paid.money, money);
    assert_eq!(j.attempts("S1").unwrap()[0].money, money);
    let (source, merchant): (String, i64) = j
        .conn()
        .query_row(
            "SELECT money_source, merchant_discount_minor FROM attempt_money",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((source.as_str(), merchant), ("pay", 200));

    // A failed attempt keeps none, whatever the change carries.
    sale(&j, "S2", 1);
    let b = attempt(&j, "S2", "R2", "286000000000000001");
    let (failed, _) = j
        .transition(b.id, AttemptState::Failed, Cause::PayAnswer, &c, Utc::now())
        .unwrap();
    assert!(failed.money.is_empty());
}
