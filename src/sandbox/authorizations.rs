//! The sandbox's AMS authorizations (`/ams/api/v1/authorizations/{consult,applyToken,revoke}`),
//! signed as every AMS answer (`ams.rs`), and the admin calls that play the customer and the
//! clock: `POST /_sandbox/authorizations/approve?auth_state=…` (the customer approves: answers
//! the auth code the wallet would send to `authRedirectUrl`), `POST
//! /_sandbox/authorizations/lifetime?access_s=N&refresh_s=M` (lifetimes of the tokens issued
//! after it), `POST /_sandbox/authorizations/expire` (every access token expires now),
//! `POST /_sandbox/authorizations/notify_url?url=…` (where `notifyAuthorization` goes, as the
//! Antom Dashboard's notification URL would say: each approval is then also sent there,
//! signed as a notification is, `notify.rs`) and `GET /_sandbox/authorizations` (counts,
//! for tests).
//!
//! An auth code works once (docs/protocol.md §18): `applyToken` with a code already
//! exchanged, or one never issued, answers `F` `INVALID_CODE` (a plausible code; the real
//! one is not confirmed).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::clock::beijing;

pub(super) const OPERATIONS: [&str; 3] = ["consult", "applyToken", "revoke"];
pub(super) const ADMIN_PREFIX: &str = "/_sandbox/authorizations";

struct Grant {
    wallet: String,
    access_expires: DateTime<Utc>,
    refresh_token: String,
    refresh_expires: DateTime<Utc>,
    revoked: bool,
}

struct Code {
    wallet: String,
    used: bool,
}

pub(super) struct Book {
    /// authState → wallet, from consults not yet approved.
    consults: HashMap<String, String>,
    codes: HashMap<String, Code>,
    /// access token → its grant.
    grants: HashMap<String, Grant>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    issued: u64,
    refreshed: u64,
    revoked: u64,
    /// Every token and auth code handed out, replaced ones included.
    handed_out: Vec<String>,
    /// Where approvals are notified (`notifyAuthorization`), once set.
    notify_url: Option<String>,
}

impl Default for Book {
    fn default() -> Book {
        Book {
            consults: HashMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            access_lifetime: Duration::days(1),
            refresh_lifetime: Duration::days(30),
            issued: 0,
            refreshed: 0,
            revoked: 0,
            handed_out: Vec::new(),
            notify_url: None,
        }
    }
}

fn result(status: &str, code: &str, message: &str) -> Value {
    json!({"result": {"resultStatus": status, "resultCode": code, "resultMessage": message}})
}

fn iso(t: DateTime<Utc>) -> String {
    t.with_timezone(&beijing())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

fn field<'a>(request: &'a Value, key: &str) -> &'a str {
    request.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(super) struct Authorizations(Mutex<Book>);

impl Default for Authorizations {
    fn default() -> Authorizations {
        Authorizations(Mutex::new(Book::default()))
    }
}

impl Authorizations {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One AMS authorization call; the answer is signed by the caller.
    pub(super) fn answer(&self, operation: &str, request: &Value) -> Value {
        let now = Utc::now();
        let mut book = self.book();
        match operation {
            "consult" => {
                let (wallet, state) = (
                    field(request, "customerBelongsTo"),
                    field(request, "authState"),
                );
                let scopes_ok = request
                    .get("scopes")
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.iter().any(|v| v == "AGENT_PAY"));
                if wallet.is_empty() || field(request, "authRedirectUrl").is_empty() {
                    return result(
                        "F",
                        "PARAM_ILLEGAL",
                        "customerBelongsTo and authRedirectUrl are required",
                    );
                }
                if state.is_empty() || state.len() > 256 {
                    return result(
                        "F",
                        "PARAM_ILLEGAL",
                        "authState missing or over 256 characters",
                    );
                }
                if !scopes_ok {
                    return result("F", "PARAM_ILLEGAL", "scopes must hold AGENT_PAY");
                }
                if !["WEB", "WAP", "APP", "MINI_APP"].contains(&field(request, "terminalType")) {
                    return result("F", "PARAM_ILLEGAL", "terminalType invalid");
                }
                book.consults.insert(state.to_string(), wallet.to_string());
                let q: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
                let mut answer = result("S", "SUCCESS", "success");
                answer["authUrl"] = json!(format!(
                    "https://sandbox.scanpay.invalid/authorize?authState={q}"
                ));
                answer["normalUrl"] = json!(format!(
                    "https://sandbox.scanpay.invalid/authorize?authState={q}&mode=normal"
                ));
                answer["schemeUrl"] =
                    json!(format!("alipays://platformapi/startapp?authState={q}"));
                answer["applinkUrl"] = json!(format!(
                    "https://render.sandbox.scanpay.invalid/p/authorize?authState={q}"
                ));
                answer
            }
            "applyToken" => {
                let wallet = field(request, "customerBelongsTo").to_string();
                let (refresh_of, wallet) = match field(request, "grantType") {
                    "AUTHORIZATION_CODE" => {
                        let code = field(request, "authCode");
                        match book.codes.get_mut(code) {
                            Some(c) if !c.used && c.wallet == wallet => {
                                c.used = true;
                                (None, wallet)
                            }
                            _ => {
                                return result(
                                    "F",
                                    "INVALID_CODE",
                                    "the auth code is unknown, used or of another wallet",
                                );
                            }
                        }
                    }
                    "REFRESH_TOKEN" => {
                        let refresh = field(request, "refreshToken");
                        let found = book.grants.iter().find(|(_, g)| {
                            g.refresh_token == refresh && !g.revoked && g.refresh_expires > now
                        });
                        match found {
                            Some((access, g)) => (Some(access.clone()), g.wallet.clone()),
                            None => {
                                return result(
                                    "F",
                                    "INVALID_REFRESH_TOKEN",
                                    "the refresh token is unknown, expired or revoked",
                                );
                            }
                        }
                    }
                    _ => return result("F", "PARAM_ILLEGAL", "grantType invalid"),
                };
                if let Some(old) = &refresh_of {
                    book.grants.remove(old);
                    book.refreshed += 1;
                } else {
                    book.issued += 1;
                }
                let (access, refresh) = (fresh("SBXAT"), fresh("SBXRT"));
                let grant = Grant {
                    wallet,
                    access_expires: now + book.access_lifetime,
                    refresh_token: refresh.clone(),
                    refresh_expires: now + book.refresh_lifetime,
                    revoked: false,
                };
                let mut answer = result("S", "SUCCESS", "success");
                answer["accessToken"] = json!(access);
                answer["accessTokenExpiryTime"] = json!(iso(grant.access_expires));
                answer["refreshToken"] = json!(refresh);
                answer["refreshTokenExpiryTime"] = json!(iso(grant.refresh_expires));
                answer["userLoginId"] = json!("138****8888");
                book.handed_out.extend([access.clone(), refresh]);
                book.grants.insert(access, grant);
                answer
            }
            // An expired token is refused as an unknown one would be.
            "revoke" => match book.grants.get_mut(field(request, "accessToken")) {
                Some(g) if !g.revoked && g.access_expires > now => {
                    g.revoked = true;
                    book.revoked += 1;
                    result("S", "SUCCESS", "success")
                }
                _ => result(
                    "F",
                    "INVALID_ACCESS_TOKEN",
                    "the access token is unknown or revoked",
                ),
            },
            _ => result("F", "INVALID_API", "no such API"),
        }
    }

    /// An admin call under [`ADMIN_PREFIX`]: `(status, JSON)`.
    /// Whether `token` is an access token this sandbox issued for `wallet`, unexpired and
    /// not revoked: what an auto-debit needs.
    pub(super) fn access_ok(&self, token: &str, wallet: &str) -> Result<(), &'static str> {
        let book = self.book();
        match book.grants.get(token) {
            Some(g) if g.revoked => Err("the access token was revoked"),
            Some(g) if g.access_expires <= Utc::now() => Err("the access token has expired"),
            Some(g) if g.wallet != wallet => Err("the access token is for another wallet"),
            Some(_) => Ok(()),
            None => Err("no such access token"),
        }
    }

    pub(super) fn admin(&self, method: &hyper::Method, path: &str, query: &str) -> (u16, Value) {
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut book = self.book();
        let rest = path.strip_prefix(ADMIN_PREFIX).unwrap_or("");
        match (method.as_str(), rest) {
            ("GET", "" | "/") => (
                200,
                json!({
                    "issued": book.issued, "refreshed": book.refreshed, "revoked": book.revoked,
                    "active": book.grants.values().filter(|g| !g.revoked).count(),
                    // Every token ever handed out, so tests can look for them where
                    // they must not be (a real wallet shows nobody its tokens).
                    "tokens": book.handed_out,
                }),
            ),
            ("POST", "/approve") => {
                let state = params.get("auth_state").map(String::as_str).unwrap_or("");
                match book.consults.remove(state) {
                    Some(wallet) => {
                        let code = fresh("SBXAC");
                        book.codes.insert(
                            code.clone(),
                            Code {
                                wallet,
                                used: false,
                            },
                        );
                        book.handed_out.push(code.clone());
                        let mut answer = json!({"auth_code": code, "auth_state": state});
                        // The server sends the notification (`http.rs`).
                        if let Some(url) = &book.notify_url {
                            answer["notify_url"] = json!(url);
                        }
                        (200, answer)
                    }
                    None => (
                        404,
                        json!({"error": "no consult waits with this auth_state"}),
                    ),
                }
            }
            ("POST", "/lifetime") => {
                let seconds = |k: &str| {
                    params
                        .get(k)
                        .and_then(|v| v.parse::<i64>().ok())
                        .filter(|s| *s > 0)
                };
                if let Some(s) = seconds("access_s") {
                    book.access_lifetime = Duration::seconds(s);
                }
                if let Some(s) = seconds("refresh_s") {
                    book.refresh_lifetime = Duration::seconds(s);
                }
                (
                    200,
                    json!({"access_s": book.access_lifetime.num_seconds(), "refresh_s": book.refresh_lifetime.num_seconds()}),
                )
            }
            // The customer ends the authorization in the wallet: every access token issued
            // is revoked from the wallet's side (a later auto-debit is refused).
            ("POST", "/revoke") => {
                let mut n = 0;
                for g in book.grants.values_mut().filter(|g| !g.revoked) {
                    g.revoked = true;
                    n += 1;
                }
                (200, json!({"revoked_by_wallet": n}))
            }
            ("POST", "/notify_url") => match params.get("url") {
                Some(url) if url::Url::parse(url).is_ok() => {
                    book.notify_url = Some(url.clone());
                    (200, json!({"notify_url": url}))
                }
                _ => (
                    400,
                    json!({"error": "url: the absolute URL notifyAuthorization is posted to"}),
                ),
            },
            ("POST", "/expire") => {
                let now = Utc::now();
                for g in book.grants.values_mut() {
                    g.access_expires = now;
                }
                (200, json!({"expired": book.grants.len()}))
            }
            _ => (404, json!({"error": "no such sandbox call"})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consult_approve_apply_refresh_revoke() {
        let a = Authorizations::default();
        let consult = json!({"customerBelongsTo": "ALIPAY_CN", "authRedirectUrl": "https://x",
            "scopes": ["AGENT_PAY"], "authState": "st1", "terminalType": "WAP"});
        assert_eq!(a.answer("consult", &consult)["result"]["resultStatus"], "S");
        let (status, approved) = a.admin(
            &hyper::Method::POST,
            "/_sandbox/authorizations/approve",
            "auth_state=st1",
        );
        assert_eq!(status, 200);
        let code = approved["auth_code"].as_str().unwrap().to_string();
        let apply = json!({"grantType": "AUTHORIZATION_CODE", "customerBelongsTo": "ALIPAY_CN", "authCode": code});
        // Without a notification URL set, nothing is to be notified.
        assert!(approved.get("notify_url").is_none());
        let unknown = json!({"grantType": "AUTHORIZATION_CODE", "customerBelongsTo": "ALIPAY_CN", "authCode": "SBXACnever"});
        assert_eq!(
            a.answer("applyToken", &unknown)["result"]["resultCode"],
            "INVALID_CODE"
        );
        let tokens = a.answer("applyToken", &apply);
        assert_eq!(tokens["result"]["resultStatus"], "S");
        // A code works once.
        assert_eq!(
            a.answer("applyToken", &apply)["result"]["resultStatus"],
            "F"
        );
        let refresh = json!({"grantType": "REFRESH_TOKEN", "customerBelongsTo": "ALIPAY_CN",
            "refreshToken": tokens["refreshToken"]});
        let renewed = a.answer("applyToken", &refresh);
        assert_eq!(renewed["result"]["resultStatus"], "S");
        assert_ne!(renewed["accessToken"], tokens["accessToken"]);
        assert_eq!(
            a.answer("revoke", &json!({"accessToken": tokens["accessToken"]}))["result"]["resultStatus"],
            "F"
        );
        assert_eq!(
            a.answer("revoke", &json!({"accessToken": renewed["accessToken"]}))["result"]["resultStatus"],
            "S"
        );
        let (_, book) = a.admin(&hyper::Method::GET, "/_sandbox/authorizations", "");
        assert!(book["tokens"].as_array().unwrap().contains(&json!(code)));
        // Once a notification URL is set, an approval names it for the server to notify.
        let (status, _) = a.admin(
            &hyper::Method::POST,
            "/_sandbox/authorizations/notify_url",
            "url=not%20a%20url",
        );
        assert_eq!(status, 400);
        let (status, _) = a.admin(
            &hyper::Method::POST,
            "/_sandbox/authorizations/notify_url",
            "url=http://127.0.0.1:9/notify/ams",
        );
        assert_eq!(status, 200);
        let consult2 = json!({"customerBelongsTo": "ALIPAY_CN", "authRedirectUrl": "https://x",
            "scopes": ["AGENT_PAY"], "authState": "st2", "terminalType": "WAP"});
        a.answer("consult", &consult2);
        let (_, approved) = a.admin(
            &hyper::Method::POST,
            "/_sandbox/authorizations/approve",
            "auth_state=st2",
        );
        assert_eq!(approved["notify_url"], "http://127.0.0.1:9/notify/ams");
    }
}
