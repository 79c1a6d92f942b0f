//! Antom AMS authorizations for member auto-debit (docs/protocol.md §18): `consult` (the
//! URL the customer approves at), `applyToken` (an auth code or a refresh token for an
//! access token) and `revoke`. Signed and verified as every AMS call (`call` in `mod.rs`).
//! The API reaches them through [`Authorizations`], so the payment path's `Gateway` trait
//! stays as it is.
//!
//! Field names: `customerBelongsTo`, `authRedirectUrl`, `scopes`, `authState`,
//! `terminalType`, `osType`, `authUrl`/`normalUrl`/`schemeUrl`/`applinkUrl`, `grantType`,
//! `authCode`, `refreshToken`, `accessToken`, `accessTokenExpiryTime`,
//! `refreshTokenExpiryTime` and `userLoginId` are as the shared protocol notes give them
//! (docs/protocol.md §18). Not confirmed by any source read: the error codes for a used or
//! expired auth code or refresh token (any signed `F` is taken as "bind again"), and whether
//! `revoke` also wants `customerBelongsTo` (it is not sent).

use async_trait::async_trait;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Ams, wire};
use crate::gateway::http::CallError;

pub const CONSULT_PATH: &str = "/ams/api/v1/authorizations/consult";
pub const APPLY_TOKEN_PATH: &str = "/ams/api/v1/authorizations/applyToken";
pub const REVOKE_PATH: &str = "/ams/api/v1/authorizations/revoke";

/// The scope auto-debit asks for.
pub const AGENT_PAY: &str = "AGENT_PAY";

/// A token or auth code: zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn new(text: impl Into<String>) -> Token {
        Token(Zeroizing::new(text.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A `consult` request.
#[derive(Debug, Clone)]
pub struct Consult<'a> {
    /// `customerBelongsTo`, e.g. `ALIPAY_CN`.
    pub wallet: &'a str,
    pub redirect_url: &'a str,
    /// Echoed back with the auth code; at most 256 characters.
    pub auth_state: &'a str,
    /// `WEB`, `WAP`, `APP` or `MINI_APP`.
    pub terminal_type: &'a str,
    /// `IOS` or `ANDROID`, sent with `WAP` and `APP`.
    pub os_type: Option<&'a str>,
}

/// Where the customer approves; the register shows one as a QR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthUrls {
    pub auth_url: Option<String>,
    pub normal_url: Option<String>,
    pub scheme_url: Option<String>,
    pub applink_url: Option<String>,
}

impl AuthUrls {
    /// The one to show: `normalUrl` (opens in any scanner), else `authUrl`, else the others.
    pub fn best(&self) -> Option<&str> {
        self.normal_url
            .as_deref()
            .or(self.auth_url.as_deref())
            .or(self.applink_url.as_deref())
            .or(self.scheme_url.as_deref())
    }
}

/// What `applyToken` is asked with.
#[derive(Debug, Clone)]
pub enum Grant<'a> {
    AuthorizationCode(&'a Token),
    RefreshToken(&'a Token),
}

/// What `applyToken` answers.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: Token,
    pub access_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub refresh_token: Option<Token>,
    pub refresh_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `userLoginId`, masked by the wallet.
    pub login_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A verified `F`: the wallet refused (a used or expired code, a revoked token).
    #[error("refused: {code} {message}")]
    Refused { code: String, message: String },
    /// Provably not sent.
    #[error("not sent: {0}")]
    NotSent(String),
    /// No answer that could be trusted (timeout, unsigned, `U`); the state is unknown.
    #[error("no trusted answer: {0}")]
    Unknown(String),
}

/// Member authorizations, implemented by the AMS client.
#[async_trait]
pub trait Authorizations: Send + Sync {
    async fn consult(&self, request: &Consult<'_>) -> Result<AuthUrls, AuthError>;
    async fn apply_token(&self, wallet: &str, grant: Grant<'_>) -> Result<Tokens, AuthError>;
    async fn revoke(&self, access_token: &Token) -> Result<(), AuthError>;
}

pub fn consult_body(c: &Consult<'_>) -> String {
    let mut body = json!({
        "customerBelongsTo": c.wallet,
        "authRedirectUrl": c.redirect_url,
        "scopes": [AGENT_PAY],
        "authState": c.auth_state,
        "terminalType": c.terminal_type,
    });
    if let Some(os) = c.os_type {
        body["osType"] = json!(os);
    }
    body.to_string()
}

pub fn apply_token_body(wallet: &str, grant: &Grant<'_>) -> String {
    match grant {
        Grant::AuthorizationCode(code) => json!({
            "grantType": "AUTHORIZATION_CODE",
            "customerBelongsTo": wallet,
            "authCode": code.expose(),
        }),
        Grant::RefreshToken(token) => json!({
            "grantType": "REFRESH_TOKEN",
            "customerBelongsTo": wallet,
            "refreshToken": token.expose(),
        }),
    }
    .to_string()
}

/// `S` → the answer; a verified `F` → refused; anything else → unknown.
fn decided(answer: &Value) -> Result<&Value, AuthError> {
    match wire::result_of(answer) {
        Some(r) if r.status == "S" => Ok(answer),
        Some(r) if r.status == "F" => Err(AuthError::Refused {
            code: r.code,
            message: r.message,
        }),
        Some(r) => Err(AuthError::Unknown(format!("{} {}", r.status, r.code))),
        None => Err(AuthError::Unknown("answer without result".into())),
    }
}

fn text(answer: &Value, key: &str) -> Option<String> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub fn consult_outcome(answer: &Value) -> Result<AuthUrls, AuthError> {
    let a = decided(answer)?;
    let urls = AuthUrls {
        auth_url: text(a, "authUrl"),
        normal_url: text(a, "normalUrl"),
        scheme_url: text(a, "schemeUrl"),
        applink_url: text(a, "applinkUrl"),
    };
    if urls.best().is_none() {
        return Err(AuthError::Unknown(
            "consult answered S without a URL".into(),
        ));
    }
    Ok(urls)
}

pub fn apply_token_outcome(answer: &Value) -> Result<Tokens, AuthError> {
    let a = decided(answer)?;
    let access_token = text(a, "accessToken")
        .map(Token::new)
        .ok_or_else(|| AuthError::Unknown("applyToken answered S without accessToken".into()))?;
    let time = |key: &str| text(a, key).as_deref().and_then(wire::parse_time);
    Ok(Tokens {
        access_token,
        access_expires_at: time("accessTokenExpiryTime"),
        refresh_token: text(a, "refreshToken").map(Token::new),
        refresh_expires_at: time("refreshTokenExpiryTime"),
        login_id: text(a, "userLoginId"),
    })
}

/// `e` with the secret that was sent masked wherever the wallet's text echoes it: the error
/// is journaled as a binding's reason, logged and answered to the register.
fn scrubbed(e: AuthError, sent: &Token) -> AuthError {
    let clean = |t: String| crate::gateway::scrub::secret(t, sent.expose());
    match e {
        AuthError::Refused { code, message } => AuthError::Refused {
            code: clean(code),
            message: clean(message),
        },
        AuthError::NotSent(why) => AuthError::NotSent(clean(why)),
        AuthError::Unknown(why) => AuthError::Unknown(clean(why)),
    }
}

fn call_error(e: CallError) -> AuthError {
    match e {
        CallError::NotSent(why) => AuthError::NotSent(why),
        CallError::Unknown(u) => AuthError::Unknown(u.to_string()),
        CallError::Rejected(f) => AuthError::Refused {
            code: f.code,
            message: f.message,
        },
    }
}

#[async_trait]
impl Authorizations for Ams {
    async fn consult(&self, request: &Consult<'_>) -> Result<AuthUrls, AuthError> {
        let answer = self
            .call(CONSULT_PATH, consult_body(request))
            .await
            .map_err(call_error)?;
        consult_outcome(&answer)
    }

    async fn apply_token(&self, wallet: &str, grant: Grant<'_>) -> Result<Tokens, AuthError> {
        let sent = match &grant {
            Grant::AuthorizationCode(t) | Grant::RefreshToken(t) => *t,
        };
        let answer = self
            .call(APPLY_TOKEN_PATH, apply_token_body(wallet, &grant))
            .await
            .map_err(|e| scrubbed(call_error(e), sent))?;
        apply_token_outcome(&answer).map_err(|e| scrubbed(e, sent))
    }

    async fn revoke(&self, access_token: &Token) -> Result<(), AuthError> {
        let body = json!({ "accessToken": access_token.expose() }).to_string();
        let answer = self
            .call(REVOKE_PATH, body)
            .await
            .map_err(|e| scrubbed(call_error(e), access_token))?;
        decided(&answer)
            .map(|_| ())
            .map_err(|e| scrubbed(e, access_token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wallet's refusal that quotes the code or token it was sent keeps none of it.
    #[test]
    fn a_refusal_quoting_the_secret_sent_is_scrubbed() {
        let sent = Token::new("AUTHCODE-SECRET-1");
        let e = scrubbed(
            AuthError::Refused {
                code: "INVALID_CODE".into(),
                message: "authCode AUTHCODE-SECRET-1 was used".into(),
            },
            &sent,
        );
        assert_eq!(
            e,
            AuthError::Refused {
                code: "INVALID_CODE".into(),
                message: "authCode **** was used".into(),
            }
        );
        let u = scrubbed(AuthError::Unknown("U AUTHCODE-SECRET-1".into()), &sent);
        assert!(!u.to_string().contains("SECRET"), "{u}");
    }

    #[test]
    fn bodies_carry_the_fields_of_the_protocol_notes() {
        let c: Value = serde_json::from_str(&consult_body(&Consult {
            wallet: "ALIPAY_CN",
            redirect_url: "https://shop.example/bound",
            auth_state: "st-1",
            terminal_type: "WAP",
            os_type: Some("ANDROID"),
        }))
        .unwrap();
        assert_eq!(c["customerBelongsTo"], "ALIPAY_CN");
        assert_eq!(c["scopes"], json!(["AGENT_PAY"]));
        assert_eq!(c["authState"], "st-1");
        assert_eq!(c["osType"], "ANDROID");
        let code = Token::new("code-1");
        let t: Value = serde_json::from_str(&apply_token_body(
            "ALIPAY_CN",
            &Grant::AuthorizationCode(&code),
        ))
        .unwrap();
        assert_eq!(t["grantType"], "AUTHORIZATION_CODE");
        assert_eq!(t["authCode"], "code-1");
        let r: Value =
            serde_json::from_str(&apply_token_body("ALIPAY_CN", &Grant::RefreshToken(&code)))
                .unwrap();
        assert_eq!(r["grantType"], "REFRESH_TOKEN");
        assert_eq!(r["refreshToken"], "code-1");
        assert_eq!(format!("{code:?}"), "Token(..)");
    }

    #[test]
    fn answers_decide_only_with_s_or_f() {
        let ok = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS"},
            "accessToken": "acc", "accessTokenExpiryTime": "2026-12-03T12:00:00+08:00",
            "refreshToken": "ref", "userLoginId": "138****0000"});
        let t = apply_token_outcome(&ok).unwrap();
        assert_eq!(t.access_token.expose(), "acc");
        assert!(t.access_expires_at.is_some());
        assert_eq!(t.login_id.as_deref(), Some("138****0000"));
        let f = json!({"result": {"resultStatus": "F", "resultCode": "INVALID_CODE"}});
        assert!(matches!(
            apply_token_outcome(&f),
            Err(AuthError::Refused { .. })
        ));
        let u = json!({"result": {"resultStatus": "U", "resultCode": "UNKNOWN_EXCEPTION"}});
        assert!(matches!(
            apply_token_outcome(&u),
            Err(AuthError::Unknown(_))
        ));
        let no_token = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS"}});
        assert!(matches!(
            apply_token_outcome(&no_token),
            Err(AuthError::Unknown(_))
        ));
        let urls = json!({"result": {"resultStatus": "S", "resultCode": "SUCCESS"},
            "authUrl": "https://a", "normalUrl": "https://n"});
        assert_eq!(consult_outcome(&urls).unwrap().best(), Some("https://n"));
        assert!(consult_outcome(&no_token).is_err());
    }
}
