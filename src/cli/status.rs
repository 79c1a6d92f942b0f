//! `scanpay status`: what the journal says now (it may be read while the daemon runs).
//! Exit 0 when nothing needs a person, 1 when something does.

use serde_json::{Value, json};

use super::exit::Exit;
use super::journal::with_journal;
use super::{EXIT_FAILED, EXIT_OK, JournalSource, outln};
use crate::clock::to_journal;
use crate::journal::Journal;
use crate::journal::meta::DaemonStatus;
use crate::state::SaleState;

pub async fn run(source: &JournalSource, as_json: bool) -> Exit {
    // When the daemon runs, its live view (reachability, armed sale) comes from the API.
    let file = super::journal::source_config(source);
    let loaded = file.as_deref().map(crate::config::Config::load);
    let config = match loaded {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            // A file the daemon refused to reload: report from the journal and the daemon.
            eprintln!("warning: {e}");
            None
        }
        None => None,
    };
    let config_broken = file.is_some() && config.is_none();
    let located = file.as_deref().and_then(crate::config::Config::locations);
    let socket: Option<std::path::PathBuf> = match &config {
        Some(c) => c.api.as_ref().map(|a| a.socket.to_path_buf()),
        None => located.as_ref().and_then(|(_, s)| s.clone()),
    };
    let live = match socket {
        Some(socket) => health_over_socket(&socket).await,
        None => None,
    };
    let source = match (&config, &located) {
        (None, Some((journal, _))) => &JournalSource {
            config: None,
            journal: Some(journal.clone()),
        },
        _ => source,
    };
    with_journal(source, |j| {
        let mut report = report(j)?;
        // The certificates' ends: the daemon's (it may have downloaded a newer Alipay
        // certificate), else the configured files'.
        report["certificates"] = match &live {
            Some(health) => health["gateway"]["certificates"].clone(),
            None => config
                .as_ref()
                .map(configured_certificates)
                .unwrap_or(Value::Null),
        };
        if let Some(health) = live {
            report["gateway"] = health["gateway"]["reachability"].clone();
            report["last_error"] = health["gateway"]["last_error"].clone();
            report["daemon"] = json!({
                "running": true,
                "pid": health["pid"],
                "armed_sale": health["armed_sale"],
                "reload": health["reload"],
            });
        } else {
            report["daemon"] = json!({"running": false});
        }
        if as_json {
            outln!("{report}");
        } else {
            print_text(&report);
        }
        let attention = ["needs_attention", "member_bindings_needing_attention"]
            .iter()
            .any(|k| report[*k].as_array().is_some_and(|a| !a.is_empty()));
        // A file that does not check out (the daemon would not start on it) needs a person too.
        let refused = report["daemon"]["reload"]["ok"] == Value::Bool(false) || config_broken;
        Ok(if attention || refused {
            EXIT_FAILED
        } else {
            EXIT_OK
        })
    })
}

fn report(j: &Journal) -> anyhow::Result<Value> {
    let counts = j.sale_counts()?;
    let mut by_state = serde_json::Map::new();
    for state in SaleState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        by_state.insert(state.as_str().to_string(), json!(n));
    }
    let open = j.open_attempts()?;
    let oldest = open.iter().min_by_key(|a| a.created_at);
    let now = chrono::Utc::now();
    let attention = j.attempts_needing_attention()?;
    // A member binding whose exchange or refresh the wallet refused (`api/members.rs`).
    let members = j.bindings_needing_attention()?;
    let daemon = DaemonStatus::load(j)?;
    Ok(json!({
        "journal": j.path().display().to_string(),
        "sales": by_state,
        "in_doubt": open.len(),
        "oldest_in_doubt": oldest.map(|a| json!({
            "sale_id": a.sale_id,
            "request_id": a.request_id,
            "state": a.state,
            "since": to_journal(a.created_at),
            "age_s": (now - a.created_at).num_seconds(),
        })),
        "needs_attention": attention.iter().map(|a| json!({
            "sale_id": a.sale_id,
            "request_id": a.request_id,
            "state": a.state,
            "why": a.needs_attention,
        })).collect::<Vec<_>>(),
        "member_bindings_needing_attention": members.iter().map(|b| json!({
            "member_id": b.member_id,
            "wallet": b.wallet,
            "state": b.state.as_str(),
            "result_code": b.result_code,
            "why": b.attention,
        })).collect::<Vec<_>>(),
        "gateway": daemon.as_ref().map(|d| d.reachability.clone()).unwrap_or(Value::Null),
        "last_error": daemon.and_then(|d| d.last_error),
    }))
}

/// `GET /v1/health` over the daemon's socket; `None` when no daemon answers.
async fn health_over_socket(socket: &std::path::Path) -> Option<Value> {
    super::daemon_api::call(
        socket,
        "GET",
        "/v1/health",
        &[],
        None,
        std::time::Duration::from_secs(5),
    )
    .await
    .ok()
    .map(|(_, v)| v)
}

/// The configured certificates, as health lists them: every Open Platform gateway's in
/// certificate mode, and WeChat Pay's platform certificate files (downloaded ones are known
/// only to the daemon).
fn configured_certificates(config: &crate::config::Config) -> Value {
    use crate::gateway::Gateway;
    let now = chrono::Utc::now();
    let mut all = Vec::new();
    for g in config.gateways() {
        if let crate::config::GatewaySettings::OpenApi(o) = g
            && o.cert_mode.is_some()
            && let Ok(client) = crate::gateway::alipay_openapi::OpenApi::new(
                o.clone(),
                std::sync::Arc::new(crate::clock::SystemClock),
            )
        {
            all.extend(client.certificates().into_iter().map(|c| {
                json!({
                    "which": c.which,
                    "sn": c.sn,
                    "not_after": c.not_after.to_rfc3339(),
                    "days_left": (c.not_after - now).num_days(),
                })
            }));
        }
        if let crate::config::GatewaySettings::Wechat(w) = g {
            all.extend(w.certificates.iter().filter_map(|k| {
                k.not_after.map(|t| {
                    json!({
                        "which": "wechat_platform_cert",
                        "sn": k.id,
                        "not_after": t.to_rfc3339(),
                        "days_left": (t - now).num_days(),
                    })
                })
            }));
        }
    }
    Value::Array(all)
}

/// Days left from which a certificate's end is a warning.
use crate::gateway::CERTIFICATE_WARN_DAYS;

fn print_text(r: &Value) {
    outln!("journal   {}", r["journal"].as_str().unwrap_or(""));
    match r["daemon"]["running"].as_bool() {
        Some(true) => outln!(
            "daemon    running (pid {}), sale waiting for a scan: {}",
            r["daemon"]["pid"],
            r["daemon"]["armed_sale"].as_str().unwrap_or("none")
        ),
        _ => outln!("daemon    not answering on its API (or no [api] section)"),
    }
    let sales: Vec<String> = r["sales"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
        .unwrap_or_default();
    outln!("sales     {}", sales.join(", "));
    match &r["oldest_in_doubt"] {
        Value::Null => outln!("in doubt  none"),
        o => outln!(
            "in doubt  {} (oldest: sale {}, {} since {}, {} s)",
            r["in_doubt"],
            o["sale_id"].as_str().unwrap_or(""),
            o["state"].as_str().unwrap_or(""),
            o["since"].as_str().unwrap_or(""),
            o["age_s"]
        ),
    }
    let gateway = match r["gateway"]["state"].as_str() {
        Some("online") => format!(
            "online since {}",
            r["gateway"]["since"].as_str().unwrap_or("?")
        ),
        Some("offline") => format!(
            "OFFLINE since {}: {}",
            r["gateway"]["since"].as_str().unwrap_or("?"),
            r["gateway"]["last_error"].as_str().unwrap_or("")
        ),
        Some("not_answering") => format!(
            "NOT ANSWERING since {} ({} answer(s) lost in a row, {} payment(s) in doubt): {}; new sales are refused",
            r["gateway"]["since"].as_str().unwrap_or("?"),
            r["gateway"]["lost_answers"],
            r["gateway"]["payments_in_doubt"],
            r["gateway"]["last_error"].as_str().unwrap_or("")
        ),
        Some("refusing") => format!(
            "REFUSING THIS TERMINAL'S CREDENTIALS since {} ({}: {}); new sales are refused: run scanpay check-config --probe",
            r["gateway"]["since"].as_str().unwrap_or("?"),
            r["gateway"]["code"].as_str().unwrap_or(""),
            r["gateway"]["message"].as_str().unwrap_or("")
        ),
        _ => "not known (the daemon has not recorded it)".to_string(),
    };
    outln!("gateway   {gateway}");
    if let Some(e) = r["last_error"].as_str() {
        outln!("last error {e}");
    }
    for c in r["certificates"].as_array().cloned().unwrap_or_default() {
        let days = c["days_left"].as_i64().unwrap_or(0);
        let (which, sn, end) = (
            c["which"].as_str().unwrap_or(""),
            c["sn"].as_str().unwrap_or(""),
            c["not_after"].as_str().unwrap_or(""),
        );
        if days < CERTIFICATE_WARN_DAYS {
            outln!(
                "CERTIFICATE {which} {sn} ENDS {end} ({days} days left): renew it (docs/operations.md §4.1)"
            );
        } else {
            outln!("cert      {which} {sn} until {end} ({days} days left)");
        }
    }
    let reload = &r["daemon"]["reload"];
    if reload["ok"] == Value::Bool(false) {
        outln!(
            "RELOAD REFUSED at {}: {}; the daemon runs on the previous configuration, and would not start on this file",
            reload["at"].as_str().unwrap_or("?"),
            reload["error"].as_str().unwrap_or("no reason given")
        );
    } else if let Some(keys) = reload["signing_keys"].as_object() {
        let keys: Vec<String> = keys
            .iter()
            .map(|(w, k)| format!("{w} {}", k.as_str().unwrap_or("?")))
            .collect();
        outln!(
            "reloaded  {} (signing with {})",
            reload["at"].as_str().unwrap_or("?"),
            keys.join(", ")
        );
    }
    let attention = r["needs_attention"].as_array().cloned().unwrap_or_default();
    let members = r["member_bindings_needing_attention"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if attention.is_empty() && members.is_empty() {
        outln!("attention none");
    }
    for b in members {
        outln!(
            "ATTENTION member {} ({}): {}",
            b["member_id"].as_str().unwrap_or(""),
            b["state"].as_str().unwrap_or(""),
            b["why"].as_str().unwrap_or("")
        );
    }
    for a in attention {
        outln!(
            "ATTENTION sale {} ({}): {}",
            a["sale_id"].as_str().unwrap_or(""),
            a["request_id"].as_str().unwrap_or(""),
            a["why"].as_str().unwrap_or("")
        );
    }
}
