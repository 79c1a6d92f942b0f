//! `scanpay check-config FILE [--probe]`: validates the configuration and what it points at,
//! one line per check (OK, WARN or FAIL, with the fix), without starting anything. Exit 2 when
//! the file itself is wrong, 1 when something it needs fails, 0 otherwise (warnings allowed:
//! a scanner unplugged now is not a reason to refuse to start).

use std::path::Path;
use std::time::Duration;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, out};
use crate::config::{Config, GatewaySettings};
use crate::device::Selector;
use crate::gateway::{Failure, Outcome, TradeStatus, UnknownKind};
use crate::output::led::LedConfig;
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
            config
                .gateways()
                .map(|g| g.kind().as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        ),
    );
    let mut note = |l: Level, what: &str, text: &str| worst = worst.max(line(l, what, text));
    if let Some(m) = &config.members {
        note(
            Level::Ok,
            "members",
            &format!(
                "member bindings for {} through AMS; token key {} loads and is not readable by others; tokens refreshed within {} s of expiry",
                m.wallet,
                m.keys.current_id(),
                m.refresh_before.as_secs()
            ),
        );
    }
    if let GatewaySettings::OpenApi(o) = &config.gateway {
        match &o.cert_mode {
            None => note(
                Level::Ok,
                "keys",
                &format!(
                    "app private key {} and Alipay public key {} load, differ, and the private key is not readable by others",
                    o.private_key.source(),
                    o.alipay_public_key.source()
                ),
            ),
            Some(c) => {
                for (l, what, text) in certificate_report(o.private_key.source(), c) {
                    note(l, what, &text);
                }
            }
        }
    }
    if let GatewaySettings::Ams(a) = &config.gateway {
        note(
            Level::Ok,
            "keys",
            &format!(
                "merchant private key {} and Antom public key {} load, differ, and the private key is not readable by others",
                a.private_key.source(),
                a.alipay_public_key.source()
            ),
        );
        match &a.merchant.settlement_currency {
            Some(c) => note(
                Level::Ok,
                "settlement",
                &format!("every pay asks to settle in {c}"),
            ),
            None => note(
                Level::Warn,
                "settlement",
                &format!(
                    "[gateway] settlement_currency is not set: every pay asks to settle in the terminal currency {}; set it to the currency of your settlement contract with Antom, as in Antom Dashboard",
                    config.terminal.currency
                ),
            ),
        }
        match &a.merchant.payment_notify_url {
            Some(u) => note(
                Level::Ok,
                "notify",
                &format!("payment results are also sent to {u}"),
            ),
            None => note(
                Level::Warn,
                "notify",
                "[gateway] payment_notify_url is not set, and some acquirers refuse a pay without it: set an HTTPS endpoint you control (e.g. the store back office) that answers 200 with {\"result\":{\"resultCode\":\"SUCCESS\",\"resultStatus\":\"S\",\"resultMessage\":\"success\"}}; scanpay resolves payments by inquiry and never needs the notification",
            ),
        }
    }
    for w in config.gateways().filter_map(|g| match g {
        GatewaySettings::Wechat(w) => Some(w),
        _ => None,
    }) {
        let mut how: Vec<String> = Vec::new();
        if let Some(p) = &w.public_key {
            how.push(format!(
                "the WeChat Pay public key {} ({})",
                p.id,
                p.key.source()
            ));
        }
        for c in &w.certificates {
            how.push(format!(
                "platform certificate {} (expires {})",
                c.id,
                c.not_after.map(|t| t.to_rfc3339()).unwrap_or_default()
            ));
        }
        if w.download_certificates {
            how.push("platform certificates downloaded from /v3/certificates".to_string());
        }
        note(
            Level::Ok,
            "wechat keys",
            &format!(
                "merchant {} private key {} (certificate serial {}) and the APIv3 key load, neither readable by others; answers verified with {}",
                w.mchid,
                w.private_key.source(),
                w.serial_no,
                how.join(", ")
            ),
        );
        for c in &w.certificates {
            if c.not_after
                .is_some_and(|t| t - chrono::Utc::now() < chrono::TimeDelta::days(30))
            {
                note(
                    Level::Warn,
                    "wechat keys",
                    &format!(
                        "platform certificate {} expires within 30 days: download the new one",
                        c.id
                    ),
                );
            }
        }
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
            kind => note(Level::Ok, "printer", &kind.to_string()),
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
                    config.gateway.timeout() + Duration::from_secs(1),
                    g.inquire(&probe_id),
                )
                .await;
                let ms = started.elapsed().as_millis();
                let (level, text) = probe_verdict(&config, answer.ok(), ms);
                note(level, "gateway", &text);
            }
        }
        for w in config.gateways().filter_map(|g| match g {
            GatewaySettings::Wechat(w) => Some(w),
            _ => None,
        }) {
            let (level, text) = wechat_probe(&config, w).await;
            note(level, "wechat", &text);
        }
    }
    if worst == Level::Fail {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Certificate mode (docs/protocol.md §3.4): each certificate's subject, SN, validity and
/// days left (a warning from 30 days before the end, a failure past it), the app
/// certificate's key against the private key, the Alipay certificate's chain to the root.
fn certificate_report(
    private_key: &str,
    c: &crate::gateway::alipay_openapi::CertMode,
) -> Vec<(Level, &'static str, String)> {
    use crate::gateway::alipay_openapi::cert;
    let now = chrono::Utc::now();
    let mut lines = Vec::new();
    let files = [
        ("app_cert_file", &c.app_cert_file),
        ("alipay_cert_file", &c.alipay_cert_file),
        ("alipay_root_cert_file", &c.alipay_root_cert_file),
    ];
    let mut alipay_chain = Vec::new();
    for (key, file) in files {
        let certs = match cert::load(file) {
            Ok(certs) => certs,
            Err(e) => {
                lines.push((Level::Fail, "certificate", format!("[gateway] {key}: {e}")));
                continue;
            }
        };
        let shown: Vec<&x509_cert::Certificate> = if key == "alipay_root_cert_file" {
            certs.iter().filter(|r| cert::is_rsa_signed(r)).collect()
        } else {
            certs.iter().take(1).collect()
        };
        for one in shown {
            let (from, until) = cert::validity(one);
            let days = (until - now).num_days();
            let level = if now < from || now > until {
                Level::Fail
            } else if days < 30 {
                Level::Warn
            } else {
                Level::Ok
            };
            let fix = match level {
                Level::Ok => String::new(),
                _ if key == "alipay_cert_file" => "; scanpay downloads Alipay's new certificate when its answers name it".to_string(),
                _ if key == "app_cert_file" => "; renew the app certificate in the Open Platform console (your app → 开发设置 → 接口加签方式) and configure the new one with its private key".to_string(),
                _ => "; download Alipay's current root certificate bundle from the Open Platform console".to_string(),
            };
            lines.push((
                level,
                "certificate",
                format!(
                    "[gateway] {key} {}: subject {}, SN {}, valid {} to {}, {days} days left{fix}",
                    file.display(),
                    cert::subject_dn(one),
                    cert::cert_sn(one),
                    from.format("%Y-%m-%d"),
                    until.format("%Y-%m-%d"),
                ),
            ));
        }
        if key == "alipay_cert_file" {
            alipay_chain = certs;
        }
    }
    lines.push((
        Level::Ok,
        "certificate",
        format!(
            "root bundle SN {} (sent as alipay_root_cert_sn), app certificate SN {} (app_cert_sn)",
            c.alipay_root_cert_sn, c.app_cert_sn
        ),
    ));
    lines.push((
        Level::Ok,
        "keys",
        format!(
            "app private key {private_key} loads, is not readable by others, and is the key of the app certificate"
        ),
    ));
    if !alipay_chain.is_empty() {
        lines.push(match cert::verify_chain(&alipay_chain, &c.roots, now) {
            Ok(()) => (
                Level::Ok,
                "certificate",
                "the Alipay certificate chains to the root bundle".to_string(),
            ),
            Err(e) => (
                Level::Fail,
                "certificate",
                format!("[gateway] alipay_cert_file: {e}"),
            ),
        });
    }
    lines
}

/// One signed query to WeChat Pay (of an order that never exists) and the expiry of every
/// platform key it verified with (docs/gateways.md §8.3).
async fn wechat_probe(
    config: &Config,
    w: &crate::gateway::wechat_pay::WechatSettings,
) -> (Level, String) {
    let clock: std::sync::Arc<dyn crate::clock::Clock> =
        std::sync::Arc::new(crate::clock::SystemClock);
    let client = match crate::gateway::wechat_pay::WechatPay::new(w.clone(), clock) {
        Ok(c) => c,
        Err(e) => return (Level::Fail, e),
    };
    let started = std::time::Instant::now();
    let probe_id = format!(
        "{}_probe{}",
        config.terminal.id,
        crate::gateway::wechat_pay::REQUEST_ID_TAG
    );
    let Ok((answer, keys)) =
        tokio::time::timeout(w.timeout + Duration::from_secs(1), client.probe(&probe_id)).await
    else {
        return (
            Level::Fail,
            "no answer in time; check the network and [gateway.wechat] url".to_string(),
        );
    };
    let ms = started.elapsed().as_millis();
    let certificates = keys
        .iter()
        .map(|k| match k.not_after {
            Some(t) => format!("certificate {} expires {}", k.id, t.to_rfc3339()),
            None => format!("public key {} (no expiry)", k.id),
        })
        .collect::<Vec<_>>()
        .join("; ");
    match answer {
        Outcome::Success(_) => (
            Level::Ok,
            format!("a signed query verified in {ms} ms; {certificates}"),
        ),
        Outcome::Rejected(f) => (
            Level::Fail,
            format!(
                "WeChat Pay refused the request ({} {}): check mchid, merchant_serial_no and private_key_file ([gateway.wechat]) in the merchant platform (账户中心 → API安全)",
                f.code, f.message
            ),
        ),
        Outcome::Unknown(u) if u.kind == UnknownKind::BadSignature => (
            Level::Fail,
            format!(
                "answers, but not verifiably: {}; check platform_certificate_files, wechatpay_public_key_file/_id or apiv3_key_file ([gateway.wechat]); held: {certificates}",
                u.detail
            ),
        ),
        Outcome::NotSent(why) => (
            Level::Fail,
            format!("not reachable: {why}; check the network and [gateway.wechat] url"),
        ),
        other => (Level::Fail, format!("no usable answer: {other:?}")),
    }
}

/// What a probe's answer says about the configuration. OK only for a signed business answer
/// that verified; every refusal names the key or id to fix and where the provider's console
/// shows the right one. `None`: no answer in time.
fn probe_verdict(
    config: &Config,
    answer: Option<Outcome<TradeStatus>>,
    ms: u128,
) -> (Level, String) {
    let Some(answer) = answer else {
        return (
            Level::Fail,
            "no answer in time; check the network and [gateway] url".to_string(),
        );
    };
    match answer {
        Outcome::Success(_) => (
            Level::Ok,
            format!(
                "answered a signed inquiry in {ms} ms, its signature verified, and it accepts this terminal's credentials"
            ),
        ),
        Outcome::Failed(f) => (
            Level::Fail,
            format!(
                "the gateway accepts the credentials but refused the inquiry ({}: {}); check that the app or client has the in-store payment product",
                f.code, f.message
            ),
        ),
        Outcome::Rejected(f) => (Level::Fail, refusal_fix(config, &f)),
        Outcome::Unknown(u) if u.kind == UnknownKind::BadSignature => (
            Level::Fail,
            match &config.gateway {
                GatewaySettings::OpenApi(o) if o.cert_mode.is_some() => format!(
                    "answers, but not verifiably: {}; check [gateway] alipay_cert_file ({}) and alipay_root_cert_file: download both again from the Open Platform console (your app → 开发设置 → 接口加签方式)",
                    u.detail,
                    o.cert_mode.as_ref().map(|c| c.alipay_cert_file.display().to_string()).unwrap_or_default()
                ),
            GatewaySettings::OpenApi(o) => format!(
                    "answers, but its signature does not verify: [gateway] alipay_public_key_file ({}) holds the wrong key; copy the Alipay public key (支付宝公钥) of app {} from the Open Platform console (your app → 开发设置 → 接口加签方式)",
                    o.alipay_public_key.source(),
                    o.app_id
                ),
                GatewaySettings::Ams(a) => format!(
                    "answers, but its signature does not verify: [gateway] alipay_public_key_file ({}) holds the wrong key; copy the Antom public key from Antom Dashboard → Developers → Key configuration",
                    a.alipay_public_key.source()
                ),
                GatewaySettings::Sandbox(_) => "answers, but its signature does not verify: alipay_public_key_file holds the wrong key".to_string(),
                GatewaySettings::Wechat(_) => "answers, but its signature does not verify: [gateway.wechat] platform_certificate_files or wechatpay_public_key_file hold the wrong key".to_string(),
            },
        ),
        Outcome::NotSent(why) => (
            Level::Fail,
            format!("not reachable: {why}; check the network and [gateway] url"),
        ),
        Outcome::Unknown(u) => (Level::Fail, format!("no usable answer: {u}")),
    }
}

/// The fix for a refusal at the gateway's door, by its code.
fn refusal_fix(config: &Config, f: &Failure) -> String {
    let code = f.code.strip_prefix("aop.").unwrap_or(&f.code);
    let said = format!(
        "the gateway refuses this terminal ({}: {})",
        f.code, f.message
    );
    if let GatewaySettings::OpenApi(o) = &config.gateway {
        let app = &o.app_id;
        let fix = match code {
            "isv.invalid-app-id" | "isv.missing-app-id" => format!(
                "[gateway] app_id = \"{app}\" is not an app it knows: copy the APPID of your app from the Open Platform console (open.alipay.com → 控制台 → your app)"
            ),
            "isv.invalid-signature" | "isv.missing-signature" => format!(
                "it cannot verify our signature: [gateway] private_key_file ({}) is not the private key whose public key is set for app {app}; in the Open Platform console (your app → 开发设置 → 接口加签方式) set this key's public key, or configure the matching private key",
                o.private_key.source()
            ),
            "isv.missing-app-cert-sn" | "isv.missing-alipay-root-cert-sn" if o.cert_mode.is_none() => format!(
                "app {app} signs in public-key certificate mode (公钥证书模式), which needs its certificates: set [gateway] app_cert_file, alipay_cert_file and alipay_root_cert_file (in place of alipay_public_key_file) to the files the Open Platform console hands out (your app → 开发设置 → 接口加签方式)"
            ),
            "isv.missing-app-cert-sn" | "isv.invalid-app-cert-sn" => format!(
                "it does not know app_cert_sn {}: [gateway] app_cert_file ({}) is not the current app public-key certificate of app {app}; download appCertPublicKey_{app}.crt again from the Open Platform console (your app → 开发设置 → 接口加签方式), with the private key it was issued for",
                o.cert_mode.as_ref().map(|c| c.app_cert_sn.as_str()).unwrap_or(""),
                o.cert_mode.as_ref().map(|c| c.app_cert_file.display().to_string()).unwrap_or_default()
            ),
            "isv.missing-alipay-root-cert-sn" | "isv.invalid-alipay-root-cert-sn" => format!(
                "it does not know alipay_root_cert_sn {}: [gateway] alipay_root_cert_file ({}) is not Alipay's root certificate bundle; download alipayRootCert.crt again from the Open Platform console",
                o.cert_mode.as_ref().map(|c| c.alipay_root_cert_sn.as_str()).unwrap_or(""),
                o.cert_mode.as_ref().map(|c| c.alipay_root_cert_file.display().to_string()).unwrap_or_default()
            ),
            "isv.invalid-timestamp" => {
                "it does not accept this machine's clock: set the time (NTP)".to_string()
            }
            "isv.insufficient-isv-permissions" | "isv.insufficient-user-permissions" => format!(
                "app {app} may not call the payment APIs: add the Face-to-Face payment product (当面付) to the app in the Open Platform console"
            ),
            c if c.contains("auth-token") => "[gateway] app_auth_token is invalid or expired: ask the merchant to authorise the app again and copy the new token".to_string(),
            _ => "check [gateway] app_id, private_key_file and the app's settings in the Open Platform console".to_string(),
        };
        return format!("{said}: {fix}");
    }
    if let GatewaySettings::Ams(a) = &config.gateway {
        let client = &a.client_id;
        let fix = match code {
            "CLIENT_INVALID" => format!(
                "[gateway] client_id = \"{client}\" is not a client it knows: copy the Client ID from Antom Dashboard → Developers → Quick start (a SANDBOX_ id for the sandbox environment, the live one for production)"
            ),
            "INVALID_SIGNATURE" => format!(
                "it cannot verify our signature: [gateway] private_key_file ({}) does not match the public key uploaded for client {client} in Antom Dashboard → Developers → Key configuration",
                a.private_key.source()
            ),
            "KEY_NOT_FOUND" => format!(
                "no key of [gateway] key_version = {} is set up for client {client}: check the key version in Antom Dashboard → Developers → Key configuration",
                a.key_version
            ),
            _ => format!(
                "check [gateway] client_id, key_version, private_key_file and the contract of client {client} with Antom"
            ),
        };
        return format!("{said}: {fix}");
    }
    said
}
