//! `/v1/members/{member_id}/binding`: a member's auto-debit binding (docs/api.md, Members).
//! Consult for the approval URL (shown as a QR), the auth code exchanged for tokens that are
//! stored only sealed (`journal/members.rs`), the binding's state, and its revocation. The
//! tokens never leave this module in the clear except to the gateway: not in answers, logs
//! or events. [`Members::refresh_due`] renews access tokens before they expire, on the
//! daemon's housekeeping tick (`daemon/housekeeping/members.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::gateway::alipay_ams::authorizations::{
    AuthError, AuthUrls, Authorizations, Consult, Grant, Token, Tokens,
};
use crate::journal::members::{
    BindingRow, BindingState, SealedTokens, Secret, TokenKeys, TokenKind,
};
use crate::journal::{Journal, JournalError};

/// What `[members]` configures (`config/members.rs`).
#[derive(Debug, Clone)]
pub struct MembersConfig {
    pub keys: Arc<TokenKeys>,
    /// `customerBelongsTo` and the payment method type, e.g. `ALIPAY_CN`.
    pub wallet: String,
    pub auth_redirect_url: String,
    pub terminal_type: String,
    pub os_type: Option<String>,
    /// Access tokens expiring within this are refreshed.
    pub refresh_before: Duration,
    /// How often housekeeping looks for tokens to refresh.
    pub refresh_every: Duration,
    /// Limits on what a member is auto-debited: per sale, per store day.
    pub max_per_sale: Option<crate::money::Amount>,
    pub max_per_day: Option<crate::money::Amount>,
    /// A member's barcode at the scanner (`barcode_pattern`), when members show one.
    pub barcode: Option<crate::paycode::MemberBarcode>,
}

/// Member bindings: the configuration, the journal and the wallet's authorizations.
pub struct Members {
    pub config: MembersConfig,
    journal: Arc<Journal>,
    auth: Arc<dyn Authorizations>,
    /// Member id → the approval URL of a binding started here, for its QR.
    pending: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The longest member id taken, and what it may hold.
use crate::paycode::MEMBER_ID_MAX;

fn member_id(id: &str) -> Result<&str, ApiError> {
    // Not starting with '.', so "." and ".." never stand as a path segment.
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= MEMBER_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(id).ok_or_else(|| {
        ApiError::field(
            "member_id",
            format!("1 to {MEMBER_ID_MAX} characters of A-Z, a-z, 0-9, '-', '_' and '.', not starting with '.'"),
        )
    })
}

fn binding_json(b: &BindingRow) -> Value {
    json!({
        "member_id": b.member_id,
        "wallet": b.wallet,
        "state": b.state.as_str(),
        "login_id": b.login_id,
        "access_token_expires_at": b.access_expires_at.map(crate::clock::to_journal),
        "refresh_token_expires_at": b.refresh_expires_at.map(crate::clock::to_journal),
        "created_at": crate::clock::to_journal(b.created_at),
        "updated_at": crate::clock::to_journal(b.updated_at),
    })
}

fn journal_error(e: JournalError) -> ApiError {
    match e {
        JournalError::Binding { member, why } => ApiError::new(
            StatusCode::CONFLICT,
            "binding_state",
            format!("member {member} {why}"),
        ),
        other => ApiError::internal(other),
    }
}

fn gateway_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Refused { code, message } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "wallet_refused",
            format!("the wallet refused: {code} {message}"),
        ),
        AuthError::NotSent(why) | AuthError::Unknown(why) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_unclear",
            format!("no trusted answer from the gateway ({why}); nothing was changed, try again"),
        ),
    }
}

fn sealing_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "member token key: a token could not be sealed or opened");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "token_key",
        format!("{e}; see docs/operations.md (member token key)"),
    )
}

impl Members {
    pub fn new(
        config: MembersConfig,
        journal: Arc<Journal>,
        auth: Arc<dyn Authorizations>,
    ) -> Members {
        Members {
            config,
            journal,
            auth,
            pending: Default::default(),
        }
    }

    fn seal(&self, member: &str, t: &Tokens) -> Result<SealedTokens, ApiError> {
        let keys = &self.config.keys;
        let access = keys
            .seal(
                member,
                TokenKind::Access,
                &Secret::new(t.access_token.expose()),
            )
            .map_err(sealing_error)?;
        let refresh = t
            .refresh_token
            .as_ref()
            .map(|r| keys.seal(member, TokenKind::Refresh, &Secret::new(r.expose())))
            .transpose()
            .map_err(sealing_error)?;
        Ok(SealedTokens {
            access_token: access,
            access_expires_at: t.access_expires_at,
            refresh_token: refresh,
            refresh_expires_at: t.refresh_expires_at,
            login_id: t.login_id.clone(),
        })
    }

    /// What charging `member_id` `amount` takes: the binding's wallet and access token,
    /// opened for this one sale. `Ok(Err(why))` when the member is over a limit (the
    /// customer scans a code instead); an error when the member cannot be charged at all.
    pub fn charge_for(
        &self,
        member_id: &str,
        amount: crate::money::Amount,
        day_start: chrono::DateTime<Utc>,
    ) -> Result<Result<crate::engine::MemberCharge, String>, ApiError> {
        let id = self::member_id(member_id)?;
        let b = self
            .journal
            .member_binding(id)
            .map_err(ApiError::internal)?
            .filter(|b| b.state == BindingState::Bound)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "member_not_bound",
                    format!("member {id} has no binding in force: bind the wallet first (POST /v1/members/{id}/binding)"),
                )
            })?;
        if b.access_expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "member_binding_expired",
                format!("member {id}'s authorization has expired: bind the wallet again"),
            ));
        }
        if let Some(max) = self.config.max_per_sale
            && amount.minor() > max.minor()
        {
            return Ok(Err(format!(
                "above the member's limit of {max} a sale: scan the customer's payment code"
            )));
        }
        if let Some(max) = self.config.max_per_day {
            let paid = self
                .journal
                .member_paid_since(id, day_start)
                .map_err(ApiError::internal)?;
            if paid.saturating_add(amount.minor()) > max.minor() {
                return Ok(Err(format!(
                    "above the member's limit of {max} a day: scan the customer's payment code"
                )));
            }
        }
        let token = self
            .open(&b, TokenKind::Access)?
            .ok_or_else(|| ApiError::internal("a bound member without an access token"))?;
        Ok(Ok(crate::engine::MemberCharge {
            member_id: id.to_string(),
            wallet_type: b.wallet.clone(),
            access_token: zeroize::Zeroizing::new(token.expose().to_string()),
        }))
    }

    fn open(&self, b: &BindingRow, kind: TokenKind) -> Result<Option<Token>, ApiError> {
        let sealed = match kind {
            TokenKind::Access => &b.access_token,
            TokenKind::Refresh => &b.refresh_token,
        };
        sealed
            .as_ref()
            .map(|s| {
                self.config
                    .keys
                    .open(&b.member_id, kind, s)
                    .map(|t| Token::new(t.expose()))
            })
            .transpose()
            .map_err(sealing_error)
    }

    /// Refreshes one bound member's tokens; the new ones replace the old in one write.
    async fn refresh(&self, b: &BindingRow) -> Result<BindingRow, ApiError> {
        let Some(refresh) = self.open(b, TokenKind::Refresh)? else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_refresh_token",
                "the wallet gave no refresh token: bind again",
            ));
        };
        let mut tokens = self
            .auth
            .apply_token(&b.wallet, Grant::RefreshToken(&refresh))
            .await
            .map_err(gateway_error)?;
        // Whether a refresh always brings a new refresh token is not confirmed
        // (docs/protocol.md §18): without one, the one used is kept.
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh);
            tokens.refresh_expires_at = b.refresh_expires_at;
        }
        let sealed = self.seal(&b.member_id, &tokens)?;
        self.journal
            .refresh_member(&b.member_id, &sealed, Utc::now())
            .map_err(journal_error)
    }

    /// Reseals under the current key the tokens of members sealed under an earlier one
    /// (`token_key_previous_files`), so the old key file can be dropped (docs/operations.md
    /// §4.5). Returns how many were resealed.
    pub fn reseal_rotated(&self) -> usize {
        let keys = &self.config.keys;
        let stale = match self
            .journal
            .bindings_sealed_under_other_keys(keys.current_id())
        {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "member bindings: cannot read the tokens to reseal");
                return 0;
            }
        };
        let mut resealed = 0;
        for b in &stale {
            let reseal = || -> Result<BindingRow, ApiError> {
                let access = self
                    .open(b, TokenKind::Access)?
                    .ok_or_else(|| ApiError::internal("a bound member without an access token"))?;
                let tokens = Tokens {
                    access_token: access,
                    access_expires_at: b.access_expires_at,
                    refresh_token: self.open(b, TokenKind::Refresh)?,
                    refresh_expires_at: b.refresh_expires_at,
                    login_id: None,
                };
                let sealed = self.seal(&b.member_id, &tokens)?;
                self.journal
                    .refresh_member(&b.member_id, &sealed, Utc::now())
                    .map_err(journal_error)
            };
            match reseal() {
                Ok(_) => resealed += 1,
                Err(e) => {
                    tracing::warn!(member_id = %b.member_id, error = %e.message, "member binding not resealed under the current token key")
                }
            }
        }
        if resealed > 0 {
            tracing::info!(resealed, key_id = %keys.current_id(), "member tokens resealed under the current token key");
        }
        resealed
    }

    /// Refreshes every bound member whose access token expires within `refresh_before`.
    /// Returns how many were refreshed; a failure is logged (without tokens) and retried on
    /// a later tick while the token lasts.
    pub async fn refresh_due(&self) -> usize {
        let before =
            Utc::now() + chrono::Duration::from_std(self.config.refresh_before).unwrap_or_default();
        let due = match self.journal.bindings_expiring(before) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "member bindings: cannot read the tokens due for refresh");
                return 0;
            }
        };
        let mut refreshed = 0;
        for b in &due {
            match self.refresh(b).await {
                Ok(row) => {
                    refreshed += 1;
                    tracing::info!(
                        member_id = %b.member_id,
                        expires_at = ?row.access_expires_at,
                        "member_binding_refreshed"
                    );
                }
                Err(e) => tracing::warn!(
                    member_id = %b.member_id,
                    error = %e.message,
                    "member_binding_refresh_failed: retried on a later tick while the token lasts"
                ),
            }
        }
        refreshed
    }
}

fn members(s: &ApiState) -> Result<&Arc<Members>, ApiError> {
    s.members.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "members_off",
            "member bindings are not configured: add a [members] section (docs/operations.md)",
        )
    })
}

/// `POST /v1/members/{member_id}/binding`: consults the wallet and answers the URL to show
/// as a QR; the binding waits for the customer's approval.
pub async fn start(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let m = members(&s)?;
    let started = m.start_binding(&id, &*s.observer).await?;
    let urls = &started.urls;
    let mut body = binding_json(&started.row);
    body["auth_state"] = json!(started.auth_state);
    body["auth_url"] = json!(urls.best());
    body["urls"] = json!({
        "auth_url": urls.auth_url,
        "normal_url": urls.normal_url,
        "scheme_url": urls.scheme_url,
        "applink_url": urls.applink_url,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A binding just started: its row, the `authState` it is approved under, and the URLs.
pub struct Started {
    pub row: BindingRow,
    pub auth_state: String,
    pub urls: AuthUrls,
}

impl Members {
    /// Consults the wallet for member `id`'s approval URL and records the binding as
    /// awaiting approval; tells `observer` (`member_binding_started`) so the customer
    /// display, the printer and the demo show the URL as a QR.
    pub async fn start_binding(
        &self,
        id: &str,
        observer: &dyn crate::events::Observer,
    ) -> Result<Started, ApiError> {
        let id = member_id(id)?;
        if let Some(b) = self.journal.member_binding(id).map_err(journal_error)?
            && b.state == BindingState::Bound
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "binding_state",
                format!("member {id} is bound already: DELETE the binding before binding again"),
            ));
        }
        let auth_state = format!("{:032x}", rand::random::<u128>());
        let c = &self.config;
        let urls = self
            .auth
            .consult(&Consult {
                wallet: &c.wallet,
                redirect_url: &c.auth_redirect_url,
                auth_state: &auth_state,
                terminal_type: &c.terminal_type,
                os_type: c.os_type.as_deref(),
            })
            .await
            .map_err(gateway_error)?;
        let row = self
            .journal
            .start_binding(id, &c.wallet, &auth_state, Utc::now())
            .map_err(journal_error)?;
        tracing::info!(member_id = %id, wallet = %c.wallet, "member_binding_started");
        match urls.best() {
            Some(url) => {
                // Kept for the customer display's QR (`qr_svg`) until the binding moves on.
                lock(&self.pending).insert(id.to_string(), url.to_string());
                observer.event(&crate::events::Event::MemberBindingStarted {
                    member_id: id.to_string(),
                    wallet: row.wallet.clone(),
                    auth_url: url.to_string(),
                });
            }
            None => tracing::warn!(member_id = %id, "the wallet answered no URL to show"),
        }
        Ok(Started {
            row,
            auth_state,
            urls,
        })
    }

    /// Exchanges the wallet's auth code for member `id`'s tokens, sealed and kept: bound.
    pub async fn complete_binding(
        &self,
        id: &str,
        code: &Token,
        auth_state: Option<&str>,
    ) -> Result<BindingRow, ApiError> {
        let id = member_id(id)?;
        let b = self
            .journal
            .member_binding(id)
            .map_err(journal_error)?
            .ok_or_else(|| ApiError::not_found(&format!("binding for member {id}")))?;
        if b.state != BindingState::AwaitingApproval {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "binding_state",
                format!(
                    "member {id} is {}, not awaiting_approval: POST the binding first",
                    b.state.as_str()
                ),
            ));
        }
        if let Some(state) = auth_state
            && Some(state) != b.auth_state.as_deref()
        {
            return Err(ApiError::field(
                "auth_state",
                "not the auth_state of this member's consult",
            ));
        }
        let tokens = self
            .auth
            .apply_token(&b.wallet, Grant::AuthorizationCode(code))
            .await
            .map_err(gateway_error)?;
        let sealed = self.seal(id, &tokens)?;
        let row = self
            .journal
            .bind_member(id, &sealed, Utc::now())
            .map_err(journal_error)?;
        lock(&self.pending).remove(id);
        tracing::info!(member_id = %id, wallet = %row.wallet, "member_binding_bound");
        Ok(row)
    }

    /// The URL member `id`'s customer scans, while the binding awaits approval.
    pub fn pending_auth_url(&self, id: &str) -> Option<String> {
        let url = lock(&self.pending).get(id).cloned()?;
        match self.journal.member_binding(id) {
            Ok(Some(b)) if b.state == BindingState::AwaitingApproval => Some(url),
            _ => None,
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET /v1/members/{member_id}/binding/qr.svg`: the approval URL as a QR while the binding
/// awaits the customer (the customer display shows it); 404 otherwise.
pub async fn qr_svg(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let m = members(&s)?;
    let id = member_id(&id)?;
    let url = m.pending_auth_url(id).ok_or_else(|| {
        ApiError::not_found(&format!(
            "QR of member {id}'s binding: none awaits approval on this terminal"
        ))
    })?;
    let svg = crate::output::qr::svg(&url, 320)
        .ok_or_else(|| ApiError::internal(format!("member {id}: the URL does not fit a QR")))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthCodeBody {
    auth_code: Option<String>,
    auth_state: Option<String>,
}

/// `POST /v1/members/{member_id}/binding/auth_code` with `{"auth_code": …}` (and the
/// `auth_state` it came back with, when the register has it): exchanged for tokens, which
/// are sealed and kept; the member is `bound`.
pub async fn auth_code(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = members(&s)?;
    let id = member_id(&id)?;
    let req: AuthCodeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not the expected JSON: {e}"),
        )
    })?;
    let code = req
        .auth_code
        .filter(|c| !c.is_empty() && c.len() <= 256 && c.bytes().all(|b| b.is_ascii_graphic()))
        .map(Token::new)
        .ok_or_else(|| {
            ApiError::field(
                "auth_code",
                "the wallet's auth code: 1 to 256 printable ASCII characters",
            )
        })?;
    let row = m
        .complete_binding(id, &code, req.auth_state.as_deref())
        .await?;
    Ok(Json(binding_json(&row)).into_response())
}

/// `GET /v1/members/{member_id}/binding`: state, wallet, masked login id, expiries.
pub async fn get(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let m = members(&s)?;
    let id = member_id(&id)?;
    let b = m
        .journal
        .member_binding(id)
        .map_err(journal_error)?
        .ok_or_else(|| ApiError::not_found(&format!("binding for member {id}")))?;
    Ok(Json(binding_json(&b)).into_response())
}

/// `DELETE /v1/members/{member_id}/binding`: the access token revoked at the wallet, then
/// erased. A token the wallet no longer knows (a signed refusal) is erased too; without a
/// trusted answer nothing changes and the call may be repeated.
pub async fn delete(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let m = members(&s)?;
    let id = member_id(&id)?;
    let b = m
        .journal
        .member_binding(id)
        .map_err(journal_error)?
        .ok_or_else(|| ApiError::not_found(&format!("binding for member {id}")))?;
    if let Some(token) = m.open(&b, TokenKind::Access)? {
        match m.auth.revoke(&token).await {
            Ok(()) => {}
            Err(AuthError::Refused { code, .. }) => {
                tracing::warn!(member_id = %id, code = %code, "the wallet no longer knows the token: erased");
            }
            Err(e) => return Err(gateway_error(e)),
        }
    }
    let row = m
        .journal
        .revoke_member(id, Utc::now())
        .map_err(journal_error)?;
    lock(&m.pending).remove(id);
    tracing::info!(member_id = %id, "member_binding_revoked");
    Ok(Json(binding_json(&row)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_checked_strictly() {
        for good in ["M1", "card-0001_a.b", &"x".repeat(64)] {
            assert!(member_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".a",
            "a b",
            "ä",
            "a/b",
            "a%2F",
            &"x".repeat(65),
            "a\n",
        ] {
            let e = member_id(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("member_id"), "{bad}");
        }
    }
}
