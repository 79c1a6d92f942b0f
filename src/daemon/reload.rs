//! Reloading the configuration while the daemon runs (SIGHUP, `systemctl reload`,
//! `POST /v1/reload`; docs/operations.md "Changing keys"). The whole file is read and checked
//! again, keys, certificates and their permissions included, and the gateway clients are
//! built from it; only then do they replace the running ones (`gateway::keyring`). A file
//! that does not check out changes nothing: the daemon keeps running as it was, and health
//! says why. Other sections that changed are reported as taking effect at the next start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::gateway::keyring::KeyRing;
use crate::paycode::Wallet;

pub struct Reloader {
    /// The config file; `None` for the embedded demo's, which has none to read again.
    path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyRing>,
    state: Mutex<State>,
}

struct State {
    /// The file as the running daemon applies it: as read at start, its gateway sections as
    /// last reloaded.
    running: toml::Table,
    last: Option<Value>,
}

impl Reloader {
    pub fn new(config: &Config, clock: Arc<dyn Clock>, keys: Arc<KeyRing>) -> Reloader {
        let path = config_path(config);
        let running = path.as_ref().map(|p| read_table(p)).unwrap_or_default();
        Reloader {
            path,
            clock,
            keys,
            state: Mutex::new(State {
                running,
                last: None,
            }),
        }
    }

    /// The last reload's outcome (`None` before the first).
    pub fn last(&self) -> Option<Value> {
        self.lock().last.clone()
    }

    /// Reads the config file again and, when all of it checks out, signs with its keys from
    /// now on. `asked_by` says who asked, for the log. The outcome is also kept for health.
    pub fn reload(&self, asked_by: &str) -> Value {
        let at = crate::clock::to_journal(self.clock.now());
        let before = self.signing_keys(&*self.keys);
        let outcome = self.try_reload();
        let mut state = self.lock();
        let result = match outcome {
            Ok((table, gateway)) => {
                let after = self.signing_keys(&*gateway);
                let restart_needed = changed_sections(&state.running, &table);
                self.keys.replace(gateway);
                if let Some(g) = table.get("gateway") {
                    state.running.insert("gateway".into(), g.clone());
                }
                tracing::info!(
                    by = asked_by,
                    signing_keys = %json!(after),
                    restart_needed = ?restart_needed,
                    "configuration reloaded: new payments are signed with these keys"
                );
                json!({
                    "at": at, "ok": true, "result": "applied", "error": null,
                    "signing_keys": after, "previous_signing_keys": before,
                    "restart_needed": restart_needed,
                })
            }
            Err(error) => {
                tracing::error!(
                    by = asked_by,
                    error = %error,
                    "configuration not reloaded: the daemon keeps running as it was; fix the file and reload again"
                );
                json!({
                    "at": at, "ok": false, "result": "refused", "error": error,
                    "signing_keys": before, "previous_signing_keys": null,
                    "restart_needed": [],
                })
            }
        };
        state.last = Some(result.clone());
        result
    }

    fn try_reload(&self) -> Result<(toml::Table, Arc<dyn Gateway>), String> {
        let Some(path) = &self.path else {
            return Err(
                "this daemon runs the embedded demo configuration: there is no file to read again"
                    .into(),
            );
        };
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let gateway = super::wiring::build_gateway(&config, self.clock.clone())?;
        // Request ids and the journal name the gateway each payment went to: a wallet moved
        // to another gateway is a different till, set up by a restart.
        for wallet in Wallet::ALL {
            let (was, now) = (self.keys.route(*wallet), gateway.route(*wallet));
            if was != now {
                return Err(format!(
                    "{}: {} codes would go to {} instead of {}: a change of gateway takes a restart (systemctl restart scanpay)",
                    config.source,
                    wallet.display_name(),
                    now.unwrap_or("no gateway"),
                    was.unwrap_or("no gateway"),
                ));
            }
        }
        Ok((read_table(path), gateway))
    }

    fn signing_keys(&self, gateway: &dyn Gateway) -> serde_json::Map<String, Value> {
        Wallet::ALL
            .iter()
            .filter_map(|w| {
                gateway
                    .signing_key(*w)
                    .map(|k| (w.as_str().to_string(), json!(k)))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The file a config was loaded from, when it was one.
fn config_path(config: &Config) -> Option<PathBuf> {
    let path = PathBuf::from(&config.source);
    path.is_file().then_some(path)
}

fn read_table(path: &std::path::Path) -> toml::Table {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .unwrap_or_default()
}

/// The top-level sections other than `[gateway]` that differ: the running daemon keeps
/// their old values until it starts again.
fn changed_sections(running: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut keys: Vec<&String> = running.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| k.as_str() != "gateway" && running.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::changed_sections;

    #[test]
    fn only_sections_other_than_the_gateway_need_a_restart() {
        let running: toml::Table = "[gateway]\nkind='a'\n[printer]\nwidth=32\n[api]\nx=1"
            .parse()
            .unwrap();
        let new: toml::Table = "[gateway]\nkind='b'\n[printer]\nwidth=48\n[api]\nx=1\n[led]\n"
            .parse()
            .unwrap();
        assert_eq!(changed_sections(&running, &new), ["led", "printer"]);
    }
}
