//! The whole process: `scanpay charge` run as its own process against the HTTP sandbox on
//! loopback, through a proxy that stamps each request and answer, so the gateway's own
//! service time can be taken off the wall time and what the client costs is left: starting,
//! reading its config and keys, opening the journal, the sale, exiting.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway_path::proxied_sandbox;
use crate::sandbox::DEFAULT_APP_ID;

/// One `scanpay charge`, as its parent saw it.
pub(super) struct ChargeRun {
    pub wall: Duration,
    /// From the pay request's first byte at the proxy to its answer's first byte.
    pub gateway: Duration,
    /// User and system CPU of the process.
    pub cpu: Duration,
    /// Its peak resident memory.
    pub peak_rss_kb: u64,
}

/// Runs `runs` charges, each a process of its own, after one that creates the journal.
pub(super) async fn charges(work: &Path, runs: usize) -> Result<Vec<ChargeRun>, String> {
    let dir = work.join("charge");
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (sandbox, proxy, requests) = proxied_sandbox(&dir, Some(answers.clone())).await?;
    let config = crate::sandbox::client_config(
        &format!("http://{proxy}/gateway.do"),
        DEFAULT_APP_ID,
        &sandbox.keys,
    )
    .ok_or("the sandbox wrote no app key")?;
    let config_path = dir.join("scanpay.toml");
    std::fs::write(&config_path, config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let mut out = Vec::with_capacity(runs);
    for i in 0..=runs {
        let (exe, config_path) = (exe.clone(), config_path.clone());
        let code = format!("2861{i:012}00");
        let run = tokio::task::spawn_blocking(move || charge_once(&exe, &config_path, &code))
            .await
            .map_err(|e| e.to_string())??;
        let taken = |v: &Mutex<Vec<Instant>>| {
            std::mem::take(&mut *v.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let (sent, answered) = (taken(&requests), taken(&answers));
        let gateway = sent
            .iter()
            .zip(&answered)
            .map(|(s, a)| a.saturating_duration_since(*s))
            .sum();
        // The first creates the journal: not a charge at a till that has run before.
        if i > 0 {
            out.push(ChargeRun { gateway, ..run });
        }
    }
    sandbox.task.abort();
    Ok(out)
}

/// Starts `scanpay charge` and waits for it with `wait4`, which returns the child's own CPU
/// time; its peak RSS it says itself.
fn charge_once(exe: &Path, config: &Path, code: &str) -> Result<ChargeRun, String> {
    // Its log, at debug, says its peak memory; into a file, so a full pipe never stalls it.
    let log_path = config.with_extension("log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let started = Instant::now();
    let child = std::process::Command::new(exe)
        .args(["charge", "--config"])
        .arg(config)
        .args(["--amount", "1.00", "--code", code])
        .env("SCANPAY_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: both pointers are to live locals; `wait4` reaps `pid`, our own child, which
    // std's `Child` is never asked to wait for afterwards.
    let (reaped, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let reaped = libc::wait4(pid, &mut status, 0, &mut usage);
        (reaped, usage)
    };
    let wall = started.elapsed();
    if reaped != pid {
        return Err(format!(
            "waiting for scanpay charge: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!(
            "scanpay charge --code {code} did not end paid (wait status {status})"
        ));
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    // Not `ru_maxrss`: Linux counts in it the memory of the parent the child was spawned
    // from, before its exec.
    let said = std::fs::read_to_string(&log_path).unwrap_or_default();
    let peak_rss_kb = said
        .split("peak_rss_kb=")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .ok_or("scanpay charge did not say its peak memory (peak_rss_kb in its debug log)")?;
    Ok(ChargeRun {
        wall,
        gateway: Duration::ZERO,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_kb,
    })
}
