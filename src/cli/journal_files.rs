//! `scanpay journal verify|init|backup|restore`: the journal's files as an operator handles
//! them. Verify changes nothing; init and restore archive what they replace (into a directory
//! beside the journal) and take the journal's lock, so the daemon must be stopped; backup
//! reads one consistent snapshot and may run beside the daemon.

use std::path::Path;

use super::exit::{Exit, Failure};
use super::journal::journal_path;
use super::{EXIT_OK, JournalSource, out};
use crate::journal::{Journal, Summary, identity};

fn fail(message: &str) -> Exit {
    Err(Failure::usage(message))
}

fn describe(s: &Summary) -> String {
    format!(
        "journal {} (created {}), {} sale(s), {} payment(s) in doubt, newest sale {}",
        s.journal_id.as_deref().unwrap_or("without an id"),
        s.created_at.as_deref().unwrap_or("?"),
        s.sales,
        s.open_attempts,
        s.newest_sale.as_deref().unwrap_or("none")
    )
}

pub fn verify(source: &JournalSource) -> Exit {
    let path = match journal_path(source) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    match Journal::verify(&path) {
        Ok(summary) => {
            out(&format!("OK {}: {}", path.display(), describe(&summary)));
            Ok(EXIT_OK)
        }
        Err(e) => fail(&e.to_string()),
    }
}

pub fn init(source: &JournalSource, force: bool) -> Exit {
    let path = match journal_path(source) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let present: Vec<String> = ["", "-wal"]
        .iter()
        .map(|s| format!("{}{s}", path.display()))
        .chain(std::iter::once(
            identity::path_for(&path).display().to_string(),
        ))
        .filter(|f| Path::new(f).exists())
        .collect();
    if !present.is_empty() && !force {
        return fail(&format!(
            "a journal is already here ({}): it may hold payments in doubt. To start over on purpose: scanpay journal init --force (archives it first)",
            present.join(", ")
        ));
    }
    if force {
        match Journal::archive(&path) {
            Ok(Some(dir)) => out(&format!(
                "archived the journal's files into {}",
                dir.display()
            )),
            Ok(None) => {}
            Err(e) => return fail(&e.to_string()),
        }
    }
    match Journal::open(&path).and_then(|j| {
        j.flush_identity();
        j.summary()
    }) {
        Ok(s) => {
            out(&format!("created {}: {}", path.display(), describe(&s)));
            Ok(EXIT_OK)
        }
        Err(e) => fail(&e.to_string()),
    }
}

pub fn backup(source: &JournalSource, dest: &Path) -> Exit {
    let path = match journal_path(source) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if dest.exists() {
        return fail(&format!(
            "{} exists: name a new file for the backup",
            dest.display()
        ));
    }
    let result = Journal::verify(&path)
        .and_then(|_| Journal::open_read_only(&path))
        .and_then(|j| j.backup_to(dest).map(|()| j));
    let source_id = match result {
        Ok(j) => j.summary().ok().and_then(|s| s.journal_id),
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return fail(&format!("backup of {}: {e}", path.display()));
        }
    };
    // Read back what was written: a backup nobody checked is a hope.
    let check = Journal::open_read_only(dest).and_then(|b| {
        b.integrity_check()?;
        b.summary()
    });
    match check {
        Ok(s) if s.journal_id == source_id => {
            out(&format!(
                "backup {}: {}; verified",
                dest.display(),
                describe(&s)
            ));
            Ok(EXIT_OK)
        }
        Ok(s) => fail(&format!(
            "backup {} names {}, not the journal it was taken from",
            dest.display(),
            describe(&s)
        )),
        Err(e) => fail(&format!(
            "backup {} does not read back: {e}",
            dest.display()
        )),
    }
}

pub fn restore(source: &JournalSource, src: &Path, force: bool) -> Exit {
    let path = match journal_path(source) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let backup = match Journal::open_read_only(src).and_then(|b| {
        b.integrity_check()?;
        Ok(b)
    }) {
        Ok(b) => b,
        Err(e) => return fail(&format!("{} is not a usable backup: {e}", src.display())),
    };
    let summary = match backup.summary() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let known = match identity::load(&path) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    let mut behind = Vec::new();
    if let Some(id) = &known {
        if summary.journal_id.as_deref() != Some(id.journal_id.as_str()) && !force {
            return fail(&format!(
                "{} is a backup of {}, but {} names journal {}: pass --force to put it in place anyway",
                src.display(),
                summary
                    .journal_id
                    .as_deref()
                    .unwrap_or("a journal without an id"),
                identity::path_for(&path).display(),
                id.journal_id
            ));
        }
        behind = match backup.holds(id) {
            Ok(m) => m,
            Err(e) => return fail(&e.to_string()),
        };
        if !behind.is_empty() && !force {
            return fail(&format!(
                "{} is older than what this journal issued: it lacks {}. Payments made since it was taken may have moved money; pass --force to restore it anyway, then reconcile those days (scanpay reconcile --date D)",
                src.display(),
                behind.join(" and ")
            ));
        }
    }
    // Archived and written in one hold of the journal's lock, from the opened backup, so
    // a WAL beside the backup comes along.
    let archived = match Journal::replace_with(&path, &backup) {
        Ok(a) => a,
        Err(e) => {
            return fail(&format!(
                "restoring {} into {}: {e}",
                src.display(),
                path.display()
            ));
        }
    };
    // The identity is the restored journal's own now.
    let restored = match Journal::open(&path) {
        Ok(j) => {
            j.flush_identity();
            j
        }
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(dir) = &archived {
        out(&format!(
            "archived the files that were there into {}",
            dir.display()
        ));
    }
    out(&format!(
        "restored {} from {}: {}",
        path.display(),
        src.display(),
        describe(&summary)
    ));
    if !behind.is_empty() {
        // What the archived journal has that the backup does not may have moved money.
        let newer = archived
            .as_ref()
            .and_then(|dir| path.file_name().map(|n| dir.join(n)))
            .and_then(|old| Journal::open_read_only(&old).ok())
            .and_then(|old| old.attempts_not_in(&restored).ok())
            .unwrap_or_default();
        let since = summary
            .newest_attempt_at
            .map(|t| t.date_naive())
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        out(&format!(
            "WARNING: the backup lacks {}: payments made after it may have moved money.",
            behind.join(" and ")
        ));
        for (request_id, at) in &newer {
            out(&format!("  may have moved money: {request_id} ({at})"));
        }
        out(&format!(
            "Reconcile every day from {since} to today, e.g. scanpay reconcile --date {since} --fix, and refund what the provider kept."
        ));
    }
    Ok(EXIT_OK)
}
