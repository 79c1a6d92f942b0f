//! Footprint: idle RSS and wake-ups of a real `scanpay run`.

use std::path::Path;
use std::time::Duration;

/// Starts `scanpay run` (in-process sandbox, no devices) and reads its RSS and context
/// switches while idle.
pub(super) async fn idle_daemon(work: &Path, idle: Duration) -> Option<(f64, f64)> {
    let dir = work.join("idle");
    std::fs::create_dir_all(&dir).ok()?;
    let config = dir.join("scanpay.toml");
    std::fs::write(&config, "[terminal]\nid = \"T1\"\ncurrency = \"CNY\"\nmax_amount = \"100.00\"\n[gateway]\nkind = \"sandbox\"\n[journal]\npath = \"journal.sqlite\"\n").ok()?;
    let mut child = std::process::Command::new(std::env::current_exe().ok()?)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    // Idle is after startup: the first housekeeping ticks record the daemon's status and
    // checkpoint what starting wrote.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let switches = || -> Option<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            for l in status.lines() {
                if l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
                {
                    total += l.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                }
            }
        }
        Some(total)
    };
    let before = switches()?;
    tokio::time::sleep(idle).await;
    let after = switches()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    Some((
        rss_kb / 1024.0,
        (after - before) as f64 / idle.as_secs_f64(),
    ))
}
