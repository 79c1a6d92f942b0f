//! `scanpay check-config FILE [--probe]`: validates the configuration and what it points at,
//! one line per check (OK, WARN or FAIL, with the fix), without starting anything. Exit 2 when
//! the file itself is wrong, 1 when something it needs fails, 0 otherwise (warnings allowed:
//! a scanner unplugged now is not a reason to refuse to start).

use std::path::Path;
use std::time::Duration;

use super::{EXIT_NOT_PAID, EXIT_OK, EXIT_USAGE, out};
use crate::config::{Config, LedConfig};
use crate::device::Selector;
use crate::gateway::{Outcome, UnknownKind};
use crate::output::printer::PrinterKind;

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Level {
    Ok,
    Warn,
    Fail,
}

fn line(level: Level, what: &str, text: &str) -> Level {
    let tag = match level {
        Level::Ok => "OK  ",
        Level::Warn => "WARN",
        Level::Fail => "FAIL",
    };
    let text = format!("{tag} {what:<14} {text}");
    // Failures go to stderr, with the other errors; the rest is the report on stdout.
    if level == Level::Fail {
        eprintln!("{text}");
    } else {
        out(&text);
    }
    level
}

pub async fn run(file: &Path, probe: bool) -> u8 {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            line(Level::Fail, "config", &e.to_string());
            return EXIT_USAGE;
        }
    };
    let mut worst = line(
        Level::Ok,
        "config",
        &format!(
            "{}: terminal {} ({}, max {}), gateway {}",
            config.source,
            config.terminal.id,
            config.terminal.currency,
            config.terminal.max_amount,
            config.gateway.kind.as_str()
        ),
    );
    let mut note = |l: Level, what: &str, text: &str| worst = worst.max(line(l, what, text));
    if let Some(o) = &config.gateway.openapi {
        note(
            Level::Ok,
            "keys",
            &format!(
                "app private key {} and Alipay public key {} load, differ, and the private key is not readable by others",
                o.private_key.source(),
                o.alipay_public_key.source()
            ),
        );
    }
    if let Some(a) = &config.gateway.ams {
        note(
            Level::Ok,
            "keys",
            &format!(
                "merchant private key {} and Antom public key {} load, differ, and the private key is not readable by others",
                a.private_key.source(),
                a.alipay_public_key.source()
            ),
        );
    }
    let journal_dir = config
        .journal
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !journal_dir.is_dir() {
        // Not fatal: the file may be checked before its machine is set up (systemd's
        // StateDirectory= creates /var/lib/scanpay).
        note(
            Level::Warn,
            "journal",
            &format!(
                "directory {} does not exist here; create it before starting",
                journal_dir.display()
            ),
        );
    } else {
        let probe_file = journal_dir.join(format!(".scanpay-check-{}", std::process::id()));
        match std::fs::write(&probe_file, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe_file);
                note(
                    Level::Ok,
                    "journal",
                    &format!("{} (directory writable)", config.journal.path.display()),
                );
            }
            Err(e) => note(
                Level::Fail,
                "journal",
                &format!(
                    "cannot write in {}: {e}; give the scanpay user write access",
                    journal_dir.display()
                ),
            ),
        }
    }
    for s in &config.scanners {
        match &s.selector {
            Selector::Path(p) if p.exists() => note(
                Level::Ok,
                "scanner",
                &format!("{}: {}", s.name, p.display()),
            ),
            Selector::Path(p) => note(
                Level::Warn,
                "scanner",
                &format!(
                    "{}: {} is not there now; plug it in, or check the udev rule (scanpay devices)",
                    s.name,
                    p.display()
                ),
            ),
            Selector::Usb { vid, pid, .. } => note(
                Level::Ok,
                "scanner",
                &format!(
                    "{}: usb {vid:04x}:{pid:04x} (found when plugged in)",
                    s.name
                ),
            ),
        }
    }
    if let Some(p) = &config.printer {
        match &p.kind {
            PrinterKind::File(path) | PrinterKind::Serial { path, .. } if !path.exists() => note(
                Level::Warn,
                "printer",
                &format!(
                    "{} is not there now; connect the printer or fix the udev rule",
                    path.display()
                ),
            ),
            kind => note(Level::Ok, "printer", &format!("{kind:?}")),
        }
    }
    if let LedConfig::Sysfs(leds) = &config.led {
        for dir in [&leds.green, &leds.red, &leds.yellow, &leds.blue]
            .into_iter()
            .flatten()
        {
            if dir.join("brightness").exists() {
                note(Level::Ok, "led", &dir.display().to_string());
            } else {
                note(
                    Level::Warn,
                    "led",
                    &format!(
                        "{} has no brightness file; check the LED name in /sys/class/leds",
                        dir.display()
                    ),
                );
            }
        }
    }
    if let Some(api) = &config.api {
        let dir = api.socket.parent().unwrap_or(Path::new("/"));
        if dir.is_dir() {
            note(Level::Ok, "api", &api.socket.display().to_string());
        } else {
            note(
                Level::Warn,
                "api",
                &format!(
                    "{} does not exist here (systemd's RuntimeDirectory= creates it)",
                    dir.display()
                ),
            );
        }
    }
    if probe {
        let clock: std::sync::Arc<dyn crate::clock::Clock> =
            std::sync::Arc::new(crate::clock::SystemClock);
        match super::build_gateway(&config, clock) {
            Err(e) => note(Level::Fail, "gateway", &e),
            Ok(g) => {
                let started = std::time::Instant::now();
                let probe_id = format!("{}_probe", config.terminal.id);
                let answer = tokio::time::timeout(
                    config.gateway.timeout + Duration::from_secs(1),
                    g.inquire(&probe_id),
                )
                .await;
                let ms = started.elapsed().as_millis();
                match answer {
                    Ok(Outcome::Success(_) | Outcome::Failed(_)) => note(
                        Level::Ok,
                        "gateway",
                        &format!("answered a signed inquiry in {ms} ms and its signature verified"),
                    ),
                    Ok(Outcome::Unknown(u)) if u.kind == UnknownKind::BadSignature => note(
                        Level::Fail,
                        "gateway",
                        "answers, but its signature does not verify: alipay_public_key_file holds the wrong key",
                    ),
                    Ok(Outcome::NotSent(why)) => note(
                        Level::Fail,
                        "gateway",
                        &format!("not reachable: {why}; check the network and [gateway] url"),
                    ),
                    Ok(Outcome::Unknown(u)) => {
                        note(Level::Fail, "gateway", &format!("no usable answer: {u}"))
                    }
                    Err(_) => note(
                        Level::Fail,
                        "gateway",
                        "no answer in time; check the network and [gateway] url",
                    ),
                }
            }
        }
    }
    if worst == Level::Fail {
        EXIT_NOT_PAID
    } else {
        EXIT_OK
    }
}
