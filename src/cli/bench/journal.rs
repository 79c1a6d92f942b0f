//! Journal figures: commit latency of an attempt write and a state change, and startup
//! over a journal with many finished sales.

use super::percentile;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::journal::Journal;
use crate::money::{Amount, Currency};

pub(super) fn journal_commits(
    work: &Path,
    n: usize,
) -> Result<(Duration, Duration, Duration, f64), String> {
    use crate::journal::{Change, NewAttempt, NewSale};
    use crate::paycode::{Scan, recognise};
    use crate::state::{AttemptState, Cause};
    let journal = Journal::open(&work.join("commits.sqlite")).map_err(|e| e.to_string())?;
    let cny = Currency::from_code("CNY").map_err(|e| e.to_string())?;
    let (mut attempts, mut changes) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let started = Instant::now();
    for i in 0..n {
        let now = chrono::Utc::now();
        let id = format!("S{i}");
        let new = NewSale {
            id: id.clone(),
            amount: Amount::from_minor(100, cny),
            reference: None,
            subject: "bench".into(),
            idempotency_key: None,
            max_attempts: 1,
            supersede: false,
            basket: Default::default(),
        };
        journal.create_sale(&new, now).map_err(|e| e.to_string())?;
        let Scan::Payment(code) = recognise(&format!("28{:016}", i)) else {
            return Err("code".into());
        };
        let t = Instant::now();
        let a = journal
            .begin_attempt(
                &id,
                &NewAttempt {
                    request_id: format!("B{i}"),
                    gateway: "sandbox",
                    code: &code,
                    deadline_at: now,
                    signing_key: None,
                },
                now,
            )
            .map_err(|e| e.to_string())?;
        attempts.push(t.elapsed());
        let t = Instant::now();
        journal
            .transition(
                a.id,
                AttemptState::Succeeded,
                Cause::PayAnswer,
                &Change::default(),
                now,
            )
            .map_err(|e| e.to_string())?;
        changes.push(t.elapsed());
    }
    let per_s = (3 * n) as f64 / started.elapsed().as_secs_f64();
    let p50 = percentile(&mut attempts, 0.5);
    let p99 = percentile(&mut attempts, 0.99);
    Ok((p50, p99, percentile(&mut changes, 0.5), per_s))
}

/// Fills a journal with `history` finished sales and `in_doubt` open attempts, then times
/// open + the recovery queries; also for a tenth of the history.
pub(super) fn startup(
    work: &Path,
    history: usize,
    in_doubt: usize,
) -> Result<(Duration, Duration), String> {
    let time = |sales: usize, name: &str| -> Result<Duration, String> {
        let path = work.join(name);
        fill(&path, sales, in_doubt)?;
        let t = Instant::now();
        let j = Journal::open(&path).map_err(|e| e.to_string())?;
        let open = j.open_attempts().map_err(|e| e.to_string())?;
        let _ = j.open_sales().map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if open.len() != in_doubt {
            return Err(format!(
                "expected {in_doubt} open attempts, found {}",
                open.len()
            ));
        }
        Ok(took)
    };
    Ok((
        time(history / 10, "history-small.sqlite")?,
        time(history, "history-big.sqlite")?,
    ))
}

fn fill(path: &PathBuf, sales: usize, in_doubt: usize) -> Result<(), String> {
    drop(Journal::open(path).map_err(|e| e.to_string())?);
    let mut conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(|e| e.to_string())?;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let now = crate::clock::to_journal(chrono::Utc::now());
        let mut sale = tx
            .prepare("INSERT INTO sales (id, created_at, updated_at, amount_minor, currency, subject, max_attempts, state) VALUES (?1, ?2, ?2, 100, 'CNY', 'x', 1, ?3)")
            .map_err(|e| e.to_string())?;
        let mut attempt = tx
            .prepare("INSERT INTO attempts (sale_id, seq, request_id, gateway, wallet, code_masked, code, code_hash, amount_minor, currency, state, created_at, updated_at, deadline_at) VALUES (?1, 1, ?1, 'sandbox', 'alipay', '28**', ?3, ?1, 100, 'CNY', ?2, ?4, ?4, ?4)")
            .map_err(|e| e.to_string())?;
        for i in 0..sales + in_doubt {
            let open = i >= sales;
            let id = format!("S{i:09}");
            sale.execute(rusqlite::params![
                id,
                now,
                if open { "processing" } else { "paid" }
            ])
            .map_err(|e| e.to_string())?;
            let code: Option<String> = open.then(|| format!("28{i:016}"));
            attempt
                .execute(rusqlite::params![
                    id,
                    if open { "unknown" } else { "succeeded" },
                    code,
                    now
                ])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}
