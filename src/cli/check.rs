//! `scanpay check-config FILE`: validate without starting anything.

use std::path::Path;

use super::{EXIT_OK, EXIT_USAGE};
use crate::config::Config;

pub fn run(file: &Path) -> u8 {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let journal_dir = config
        .journal
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !journal_dir.is_dir() {
        // Not fatal: the file may be checked on another machine than the one it is for.
        eprintln!(
            "warning: {}: [journal] path = {:?}: directory {} does not exist here; create it before starting (systemd's StateDirectory= does)",
            config.source,
            config.journal.path.display(),
            journal_dir.display()
        );
    }
    println!(
        "ok: {}: terminal {} ({}, max {}), gateway {}, journal {}",
        config.source,
        config.terminal.id,
        config.terminal.currency,
        config.terminal.max_amount,
        config.gateway.kind.as_str(),
        config.journal.path.display()
    );
    EXIT_OK
}
