//! `scanpay keys rotate`: the operator's planned change of the merchant key (docs/operations.md,
//! "Changing keys"). The new key is read and its permissions checked, the config that names it
//! is checked whole and proven with a signed inquiry, and only then is the config file
//! replaced (atomically, the previous kept beside it) and the running daemon asked to reload.
//! A daemon that refuses gets the previous file back. Any failure before the switch changes
//! nothing: the file stays byte for byte as it was.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::exit::{Exit, Failure, OrExit};
use super::{EXIT_FAILED, EXIT_OK};
use crate::config::{Config, GatewaySettings};
use crate::gateway::Outcome;

/// How long the daemon gets to read and check the new file.
const RELOAD_LIMIT: Duration = Duration::from_secs(30);

pub struct RotateArgs {
    pub config: PathBuf,
    pub private_key: PathBuf,
    pub app_cert: Option<PathBuf>,
    pub key_version: Option<u32>,
    /// `wechat`: the `[gateway.wechat]` section; else the Alipay one.
    pub wechat: bool,
    pub serial_no: Option<String>,
    pub request_id: Option<String>,
}

pub async fn rotate(args: RotateArgs) -> Exit {
    let file = &args.config;
    let before =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    Config::load(file).map_err(|e| {
        Failure::usage(format!(
            "{e}\nthe running configuration must check out before its key is changed: fix it first"
        ))
    })?;
    let text = String::from_utf8(before.clone())
        .map_err(|_| Failure::usage(format!("{}: not UTF-8", file.display())))?;
    let edited =
        edit(&text, &args).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;

    // The candidate sits beside the file, so its relative paths resolve as the file's do.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o640);
    let candidate = dir.join(format!(
        ".{}.rotate-{}",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("scanpay.toml"),
        std::process::id()
    ));
    write_synced(&candidate, edited.as_bytes(), mode).or_failed()?;
    let (config, label) = match check(&candidate, &args).await {
        Ok(checked) => checked,
        Err(e) => {
            let _ = std::fs::remove_file(&candidate);
            return Err(Failure::failed(format!(
                "{e}\nnothing was changed: {} is as it was",
                file.display()
            )));
        }
    };

    // The switch: the previous file kept, the new one renamed over it.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let backup = PathBuf::from(format!("{}.{stamp}.bak", file.display()));
    write_synced(&backup, &before, mode).or_failed()?;
    std::fs::rename(&candidate, file).or_failed()?;
    sync_dir(dir);
    println!(
        "{}: now signs with {label}; the previous file is {}",
        file.display(),
        backup.display()
    );

    let Some(api) = &config.api else {
        println!(
            "no [api] section: reload the running daemon with `systemctl reload scanpay` (or restart it)"
        );
        return Ok(EXIT_OK);
    };
    use super::daemon_api::{CallError, call};
    match call(&api.socket, "POST", "/v1/reload", &[], None, RELOAD_LIMIT).await {
        Err(CallError::NoDaemon) => {
            println!(
                "no daemon runs on {}: the new key signs from its next start",
                api.socket.display()
            );
            Ok(EXIT_OK)
        }
        Ok((200, v)) => {
            println!(
                "the running daemon reloaded: new payments are signed with {}",
                keys_of(&v)
            );
            println!("payments journaled before end with the key they began with");
            Ok(EXIT_OK)
        }
        Ok((_, v)) => {
            // The daemon still runs on the old key: the file must say so again.
            write_synced(&candidate, &before, mode).or_failed()?;
            std::fs::rename(&candidate, file).or_failed()?;
            sync_dir(dir);
            let why = v["error"]
                .as_str()
                .or_else(|| v["error"]["message"].as_str())
                .unwrap_or("no reason given");
            Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "the running daemon refused the new file ({why}); {} is as it was, and the daemon signs with the previous key",
                    file.display()
                ),
            ))
        }
        Err(CallError::NoAnswer(why)) => Err(Failure::failed(format!(
            "the daemon did not answer the reload ({why}): {} holds the new key; `scanpay status` or GET /v1/health (reload) tells whether the daemon took it",
            file.display()
        ))),
    }
}

/// The config text with the new key (and certificate, key version, serial) in the gateway
/// section it belongs to, everything else as it was.
fn edit(text: &str, args: &RotateArgs) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let gateway = doc
        .get_mut("gateway")
        .and_then(|g| g.as_table_like_mut())
        .ok_or("no [gateway] section")?;
    let (name, section) = if args.wechat {
        ("[gateway.wechat]", gateway.get_mut("wechat"))
    } else if gateway.contains_key("alipay") {
        ("[gateway.alipay]", gateway.get_mut("alipay"))
    } else {
        ("[gateway]", None)
    };
    let section = match section {
        Some(s) => s
            .as_table_like_mut()
            .ok_or(format!("{name} is not a table"))?,
        None if args.wechat => return Err("no [gateway.wechat] section".into()),
        None => gateway,
    };
    let path = |p: &Path| -> Result<String, String> {
        let absolute = std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))?;
        absolute
            .to_str()
            .map(str::to_string)
            .ok_or(format!("{}: not UTF-8", p.display()))
    };
    section.insert(
        "private_key_file",
        toml_edit::value(path(&args.private_key)?),
    );
    if let Some(cert) = &args.app_cert {
        if !section.contains_key("app_cert_file") {
            return Err(format!(
                "--app-cert: {name} is in public-key mode (no app_cert_file); a certificate-mode app is set up with check-config, not rotated into"
            ));
        }
        section.insert("app_cert_file", toml_edit::value(path(cert)?));
    }
    if let Some(v) = args.key_version {
        if !section.contains_key("client_id") {
            return Err(format!(
                "--key-version: {name} is not an Antom (AMS) gateway"
            ));
        }
        section.insert("key_version", toml_edit::value(i64::from(v)));
    }
    if let Some(serial) = &args.serial_no {
        if !args.wechat {
            return Err("--serial-no: only with --wallet wechat".into());
        }
        section.insert("merchant_serial_no", toml_edit::value(serial.clone()));
    }
    Ok(doc.to_string())
}

/// The candidate checked whole, then proven: its gateway answers a signed inquiry and the
/// answer verifies. The config and the new key's label.
async fn check(candidate: &Path, args: &RotateArgs) -> Result<(Config, String), String> {
    let config = Config::load(candidate).map_err(|e| e.to_string())?;
    let settings = config
        .gateways()
        .find(|g| matches!(g, GatewaySettings::Wechat(_)) == args.wechat)
        .ok_or("no such gateway configured")?
        .clone();
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let gateway = super::build_gateway(&config, clock)?;
    let wallet = if args.wechat {
        crate::paycode::Wallet::WechatPay
    } else {
        crate::paycode::Wallet::Alipay
    };
    let label = gateway
        .signing_key(wallet)
        .unwrap_or_else(|| "the new key".into());
    let id = match &args.request_id {
        Some(id) => id.clone(),
        None if args.wechat => format!(
            "{}_probe{}",
            config.terminal.id,
            crate::gateway::wechat_pay::REQUEST_ID_TAG
        ),
        None => format!("{}_probe", config.terminal.id),
    };
    let answer = tokio::time::timeout(
        settings.timeout() + Duration::from_secs(1),
        gateway.inquire(&id),
    )
    .await
    .map_err(|_| "the gateway did not answer the probe in time; check the network".to_string())?;
    match answer {
        Outcome::Success(_) => Ok((config, label)),
        Outcome::Rejected(f) | Outcome::Failed(f) => Err(format!(
            "the gateway refused a request signed with {label} ({}: {}): upload its public key to the provider's console first (Antom: under its key_version)",
            f.code, f.message
        )),
        Outcome::NotSent(why) => Err(format!("the probe did not reach the gateway: {why}")),
        Outcome::Unknown(u) => Err(format!("the probe got no usable answer: {u}")),
    }
}

fn keys_of(reload: &Value) -> String {
    match reload["signing_keys"].as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(w, k)| format!("{} ({w})", k.as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "the new key".into(),
    }
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key: &str) -> RotateArgs {
        RotateArgs {
            config: "c.toml".into(),
            private_key: key.into(),
            app_cert: None,
            key_version: None,
            wechat: false,
            serial_no: None,
            request_id: None,
        }
    }

    #[test]
    fn the_edit_changes_the_key_and_keeps_every_comment() {
        let text = "# till 3\n[terminal]\nid = \"T3\"\n\n[gateway]\n# the app's key\nkind = \"alipay-ams\"\nclient_id = \"C\"\nprivate_key_file = \"keys/old.pem\"  # 0600\n\n[journal]\npath = \"j\"\n";
        let mut a = args("/etc/scanpay/keys/new.pem");
        a.key_version = Some(2);
        let out = edit(text, &a).unwrap();
        assert!(out.contains("# till 3\n"), "{out}");
        assert!(out.contains("# the app's key\n"), "{out}");
        assert!(
            out.contains("private_key_file = \"/etc/scanpay/keys/new.pem\""),
            "{out}"
        );
        assert!(out.contains("key_version = 2"), "{out}");
        assert!(!out.contains("old.pem"), "{out}");
        assert!(out.contains("[journal]\npath = \"j\"\n"), "{out}");
    }

    #[test]
    fn options_that_do_not_fit_the_gateway_are_refused() {
        let text =
            "[gateway]\nkind = \"alipay-openapi\"\napp_id = \"1\"\nprivate_key_file = \"k\"\n";
        let mut a = args("/k2");
        a.key_version = Some(2);
        assert!(edit(text, &a).unwrap_err().contains("--key-version"));
        let mut a = args("/k2");
        a.app_cert = Some("/c.crt".into());
        assert!(edit(text, &a).unwrap_err().contains("public-key mode"));
        let mut a = args("/k2");
        a.wechat = true;
        assert!(edit(text, &a).unwrap_err().contains("[gateway.wechat]"));
    }
}
