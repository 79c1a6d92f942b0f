//! `/v1/members/{member_id}/binding`: a member's auto-debit binding (docs/api.md, Members).
//! Consult for the approval URL (shown as a QR), the auth code exchanged for tokens that are
//! stored only sealed (`journal/members.rs`), the binding's state, and its revocation. The
//! tokens never leave this module in the clear except to the gateway: not in answers, logs
//! or events. [`Members::refresh_due`] renews access tokens before they expire, on the
//! daemon's housekeeping tick (`daemon/housekeeping/members.rs`).
//!
//! An auth code is exchanged write-before-send ([`Members::exchange`]): journaled sealed
//! as `exchanging` before `applyToken` leaves, replaced by the tokens in one write. An
//! exchange left `exchanging` (an unclear answer, a crash) is retried at the start and on
//! the housekeeping tick ([`Members::retry_exchanges`]); a code works once, so a retry after
//! the wallet did answer is refused and the binding ends `failed`, reported for a person.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
use crate::events::{Event, MemberSignal, Observer};
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
    pending: Mutex<std::collections::HashMap<String, String>>,
    observer: Option<Arc<dyn Observer>>,
    /// Members whose auth code is on its way to the wallet from this process: a retry or a
    /// second request for them waits, so one code is never sent twice at once.
    in_flight: Mutex<HashSet<String>>,
}

/// How an exchange ended.
pub enum Exchanged {
    Bound(BindingRow),
    /// The wallet refused the code: the binding is `failed`, with the wallet's code.
    Failed(BindingRow, String),
    /// No trusted answer: still `exchanging`, retried by housekeeping.
    Unclear(BindingRow, String),
}

/// A member's place in [`Members::in_flight`], given back when dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    member: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.member);
    }
}

/// The failpoints around an exchange (`failpoint.rs`): the `exchanging` row is written and
/// `applyToken` not yet sent; the wallet answered and the answer is not yet journaled.
pub const FAILPOINT_BEFORE_EXCHANGE: &str = "member_before_exchange_send";
pub const FAILPOINT_AFTER_EXCHANGE: &str = "member_after_exchange_answer";

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
        "result_code": b.result_code,
        "reason": b.reason,
        "needs_attention": b.attention.is_some(),
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
            observer: None,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The same, telling `observer` (the event bus, the logs) what happens to bindings.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Members {
        self.observer = Some(observer);
        self
    }

    fn signal(&self, signal: MemberSignal, b: &BindingRow) {
        if let Some(o) = &self.observer {
            o.event(&Event::MemberBinding {
                signal,
                member_id: b.member_id.clone(),
                wallet: b.wallet.clone(),
                state: b.state.as_str(),
                reason: if signal.needs_attention() {
                    b.reason.clone()
                } else {
                    None
                },
            });
        }
    }

    fn claim(&self, member: &str) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(member.to_string()).then(|| InFlight {
            set: &self.in_flight,
            member: member.to_string(),
        })
    }

    /// Exchanges `code` for `b` (awaiting approval): the code journaled sealed as
    /// `exchanging` first, then `applyToken`, then the answer journaled.
    pub async fn exchange(&self, b: &BindingRow, code: &Token) -> Result<Exchanged, ApiError> {
        let id = b.member_id.as_str();
        let Some(_claim) = self.claim(id) else {
            return Err(exchange_busy(id));
        };
        let sealed = self
            .config
            .keys
            .seal(id, TokenKind::AuthCode, &Secret::new(code.expose()))
            .map_err(sealing_error)?;
        let row = self
            .journal
            .begin_exchange(id, &sealed, Utc::now())
            .map_err(journal_error)?;
        Ok(self.send_exchange(&row, code, false).await)
    }

    /// Sends the exchange of a binding journaled `exchanging` and journals the answer.
    /// `retry`: the code may have been sent before (a crash, an unclear answer), so a
    /// refusal may mean only that it was used; the operator is told to bind again.
    async fn send_exchange(&self, b: &BindingRow, code: &Token, retry: bool) -> Exchanged {
        let id = b.member_id.as_str();
        crate::failpoint::hit(FAILPOINT_BEFORE_EXCHANGE);
        let answer = self
            .auth
            .apply_token(&b.wallet, Grant::AuthorizationCode(code))
            .await;
        crate::failpoint::hit(FAILPOINT_AFTER_EXCHANGE);
        let written = match answer {
            Ok(tokens) => self
                .seal(id, &tokens)
                .and_then(|sealed| {
                    self.journal
                        .bind_member(id, &sealed, Utc::now())
                        .map_err(journal_error)
                })
                .map(Exchanged::Bound),
            Err(AuthError::Refused { code, message }) => {
                let reason = if retry {
                    format!(
                        "the wallet refused the auth code when it was sent again after an unclear answer or a restart ({code}): it may have been used already; bind the wallet again"
                    )
                } else {
                    format!(
                        "the wallet refused the auth code ({code} {message}): bind the wallet again"
                    )
                };
                tracing::warn!(member_id = %id, wallet = %b.wallet, result_code = %code, retry, "member_binding_failed: {reason}");
                self.journal
                    .fail_binding(id, &code, &reason, Utc::now())
                    .map_err(journal_error)
                    .map(|row| Exchanged::Failed(row, reason))
            }
            Err(AuthError::NotSent(why) | AuthError::Unknown(why)) => {
                tracing::warn!(member_id = %id, error = %why, "member binding: no trusted answer to the auth code's exchange; retried on the housekeeping tick");
                Ok(Exchanged::Unclear(b.clone(), why))
            }
        };
        match written {
            Ok(Exchanged::Bound(row)) => {
                tracing::info!(member_id = %id, wallet = %row.wallet, "member_binding_bound");
                self.signal(MemberSignal::Bound, &row);
                Exchanged::Bound(row)
            }
            Ok(Exchanged::Failed(row, reason)) => {
                self.signal(MemberSignal::Failed, &row);
                Exchanged::Failed(row, reason)
            }
            Ok(unclear) => unclear,
            // Tokens that could not be sealed or written are not kept: the binding stays
            // `exchanging` and the retry learns from the wallet that the code was used.
            Err(e) => {
                tracing::error!(member_id = %id, error = %e.message, "member binding: the exchange's answer could not be journaled; retried on the housekeeping tick");
                Exchanged::Unclear(b.clone(), e.message)
            }
        }
    }

    /// An authorization notification (`daemon/notify.rs`): the auth code the wallet sent
    /// for the consult made with `auth_state`, exchanged as `POST …/binding/auth_code`
    /// would. `Ok(None)` when no binding awaits approval with that `auth_state` (nothing
    /// changes); an error says why the code was not exchanged (the binding is being
    /// exchanged already, the journal cannot be read or written).
    pub async fn notified(
        &self,
        auth_state: &str,
        code: &Token,
    ) -> Result<Option<Exchanged>, ApiError> {
        let b = self
            .journal
            .binding_awaiting(auth_state)
            .map_err(journal_error)?;
        let Some(b) = b else {
            return Ok(None);
        };
        self.exchange(&b, code).await.map(Some)
    }

    /// Retries every exchange left `exchanging` (at the start, then on the housekeeping
    /// tick) with its sealed auth code. Returns how many ended (bound or failed).
    pub async fn retry_exchanges(&self) -> usize {
        let left = match self.journal.bindings_exchanging() {
            Ok(left) => left,
            Err(e) => {
                tracing::warn!(error = %e, "member bindings: cannot read the exchanges left open");
                return 0;
            }
        };
        let mut ended = 0;
        for b in &left {
            let Some(_claim) = self.claim(&b.member_id) else {
                continue;
            };
            let code = match b
                .auth_code
                .as_ref()
                .map(|s| self.config.keys.open(&b.member_id, TokenKind::AuthCode, s))
            {
                Some(Ok(code)) => Token::new(code.expose()),
                other => {
                    let why = match other {
                        Some(Err(e)) => e.to_string(),
                        _ => "no auth code kept".to_string(),
                    };
                    let reason = format!(
                        "the auth code kept for the exchange cannot be opened ({why}): bind the wallet again"
                    );
                    tracing::warn!(member_id = %b.member_id, "member_binding_failed: {reason}");
                    if let Ok(row) =
                        self.journal
                            .fail_binding(&b.member_id, "TOKEN_KEY", &reason, Utc::now())
                    {
                        self.signal(MemberSignal::Failed, &row);
                        ended += 1;
                    }
                    continue;
                }
            };
            tracing::info!(member_id = %b.member_id, "member binding: sending again an exchange left open");
            match self.send_exchange(b, &code, true).await {
                Exchanged::Bound(_) | Exchanged::Failed(..) => ended += 1,
                Exchanged::Unclear(..) => {}
            }
        }
        ended
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
            TokenKind::AuthCode => &b.auth_code,
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
        let mut tokens = match self
            .auth
            .apply_token(&b.wallet, Grant::RefreshToken(&refresh))
            .await
        {
            Ok(tokens) => tokens,
            Err(AuthError::Refused { code, message }) => {
                let reason = format!(
                    "the wallet refused to refresh the token ({code} {message}): the member is charged until the access token expires; DELETE the binding and bind the wallet again"
                );
                let row = self
                    .journal
                    .note_refresh_failure(&b.member_id, &code, &reason, Utc::now())
                    .map_err(journal_error)?;
                self.signal(MemberSignal::RefreshFailed, &row);
                return Err(gateway_error(AuthError::Refused { code, message }));
            }
            Err(e) => return Err(gateway_error(e)),
        };
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
                    .reseal_member(&b.member_id, &sealed, Utc::now())
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
            // One call at the wallet per member at a time: a DELETE (or an exchange) under
            // way goes first, and the binding is read again after it.
            let Some(_claim) = self.claim(&b.member_id) else {
                continue;
            };
            let b = match self.journal.member_binding(&b.member_id) {
                Ok(Some(b)) if b.state == BindingState::Bound => b,
                _ => continue,
            };
            let b = &b;
            match self.refresh(b).await {
                Ok(row) => {
                    refreshed += 1;
                    tracing::info!(
                        member_id = %b.member_id,
                        expires_at = ?row.access_expires_at,
                        "member_binding_refreshed"
                    );
                    self.signal(MemberSignal::Refreshed, &row);
                }
                // A refusal is noted and told (`refresh`) and not tried again; without a
                // trusted answer the next tick tries again while the token lasts.
                Err(e) => tracing::warn!(
                    member_id = %b.member_id,
                    error = %e.message,
                    "member_binding_refresh_failed"
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
        if let Some(b) = self.journal.member_binding(id).map_err(journal_error)? {
            match b.state {
                BindingState::Bound => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "binding_state",
                        format!(
                            "member {id} is bound already: DELETE the binding before binding again"
                        ),
                    ));
                }
                BindingState::Exchanging => return Err(exchange_busy(id)),
                _ => {}
            }
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

    /// Exchanges the wallet's auth code for member `id`'s tokens (the code journaled sealed
    /// before it is sent, `exchange`); bound, failed, or still exchanging without a trusted
    /// answer.
    pub async fn complete_binding(
        &self,
        id: &str,
        code: &Token,
        auth_state: Option<&str>,
    ) -> Result<Exchanged, ApiError> {
        let id = member_id(id)?;
        let b = self
            .journal
            .member_binding(id)
            .map_err(journal_error)?
            .ok_or_else(|| ApiError::not_found(&format!("binding for member {id}")))?;
        if b.state == BindingState::Exchanging {
            return Err(exchange_busy(id));
        }
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
        let exchanged = self.exchange(&b, code).await?;
        if !matches!(exchanged, Exchanged::Unclear(..)) {
            lock(&self.pending).remove(id);
        }
        Ok(exchanged)
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
    match m
        .complete_binding(id, &code, req.auth_state.as_deref())
        .await?
    {
        Exchanged::Bound(row) => Ok(Json(binding_json(&row)).into_response()),
        Exchanged::Failed(_, reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "wallet_refused",
            format!("member {id}: {reason}"),
        )),
        // Written before it was sent: the exchange goes on without the register.
        Exchanged::Unclear(row, why) => {
            let mut body = binding_json(&row);
            body["message"] = json!(format!(
                "no trusted answer from the wallet ({why}): the auth code is kept sealed and sent again on the housekeeping tick; GET the binding until it is bound or failed"
            ));
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

fn exchange_busy(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "binding_state",
        format!(
            "member {id} has a call at the wallet under way (an auth code being exchanged, or a token refresh): GET the binding until it is bound or failed, then try again"
        ),
    )
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
    // An exchange or refresh on its way to the wallet ends first, so its tokens are not left
    // behind; the binding is read once it has.
    let _claim = m.claim(id).ok_or_else(|| exchange_busy(id))?;
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
    m.signal(MemberSignal::Revoked, &row);
    Ok(Json(binding_json(&row)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::alipay_ams::authorizations::AuthUrls;

    /// A wallet that answers `applyToken` from a script, one answer a call, and remembers
    /// the codes it was sent.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<Tokens, AuthError>>>,
        codes: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Authorizations for Scripted {
        async fn consult(&self, _: &Consult<'_>) -> Result<AuthUrls, AuthError> {
            Ok(AuthUrls::default())
        }
        async fn apply_token(&self, _: &str, grant: Grant<'_>) -> Result<Tokens, AuthError> {
            if let Grant::AuthorizationCode(c) = grant {
                self.codes.lock().unwrap().push(c.expose().to_string());
            }
            self.answers.lock().unwrap().remove(0)
        }
        async fn revoke(&self, _: &Token) -> Result<(), AuthError> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Observer for Seen {
        fn event(&self, e: &Event) {
            self.0.lock().unwrap().push(format!("{e:?}"));
        }
    }

    fn tokens() -> Tokens {
        Tokens {
            access_token: Token::new("ACCESS-SECRET"),
            access_expires_at: Some(Utc::now() + chrono::Duration::days(1)),
            refresh_token: Some(Token::new("REFRESH-SECRET")),
            refresh_expires_at: None,
            login_id: Some("138****0000".into()),
        }
    }

    fn members(dir: &std::path::Path, wallet: Arc<Scripted>, seen: Arc<Seen>) -> Members {
        let journal = Arc::new(Journal::open(&dir.join("j.sqlite")).unwrap());
        let config = MembersConfig {
            keys: Arc::new(TokenKeys::new(&[3u8; 32], &[]).unwrap()),
            wallet: "ALIPAY_CN".into(),
            auth_redirect_url: "https://shop.example/bound".into(),
            terminal_type: "WAP".into(),
            os_type: None,
            refresh_before: Duration::from_secs(60),
            refresh_every: Duration::from_secs(1),
            max_per_sale: None,
            max_per_day: None,
            barcode: None,
        };
        Members::new(config, journal, wallet).with_observer(seen)
    }

    /// No trusted answer: `exchanging`, the code kept sealed; the retry sends the same code
    /// and binds. A retry the wallet refuses (the code was used) ends `failed`, reported.
    #[tokio::test]
    async fn an_unclear_exchange_is_retried_with_its_sealed_code_and_a_refused_retry_fails() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Arc::new(Scripted::default());
        let seen = Arc::new(Seen::default());
        let m = members(dir.path(), wallet.clone(), seen.clone());
        *wallet.answers.lock().unwrap() = vec![
            Err(AuthError::Unknown("timeout".into())),
            Ok(tokens()),
            Err(AuthError::NotSent("refused connection".into())),
            Err(AuthError::Refused {
                code: "INVALID_CODE".into(),
                message: "used".into(),
            }),
        ];
        let b = m
            .journal
            .start_binding("M1", "ALIPAY_CN", "st1", Utc::now())
            .unwrap();
        let code = Token::new("CODE-ONE");
        assert!(matches!(
            m.exchange(&b, &code).await.unwrap(),
            Exchanged::Unclear(..)
        ));
        let row = m.journal.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state, BindingState::Exchanging);
        // While it waits, no second exchange and no new consult.
        assert!(m.exchange(&b, &code).await.is_err());
        assert!(
            m.journal
                .start_binding("M1", "ALIPAY_CN", "st2", Utc::now())
                .is_err()
        );
        assert_eq!(m.retry_exchanges().await, 1);
        let row = m.journal.member_binding("M1").unwrap().unwrap();
        assert_eq!(row.state, BindingState::Bound);
        assert!(row.auth_code.is_none() && row.access_token.is_some());

        let b = m
            .journal
            .start_binding("M2", "ALIPAY_CN", "st3", Utc::now())
            .unwrap();
        let code2 = Token::new("CODE-TWO");
        assert!(matches!(
            m.exchange(&b, &code2).await.unwrap(),
            Exchanged::Unclear(..)
        ));
        assert_eq!(m.retry_exchanges().await, 1);
        let row = m.journal.member_binding("M2").unwrap().unwrap();
        assert_eq!(row.state, BindingState::Failed);
        assert_eq!(row.result_code.as_deref(), Some("INVALID_CODE"));
        assert!(
            row.reason
                .as_deref()
                .unwrap()
                .contains("may have been used already")
        );
        assert!(row.attention.is_some());
        assert_eq!(
            *wallet.codes.lock().unwrap(),
            ["CODE-ONE", "CODE-ONE", "CODE-TWO", "CODE-TWO"]
        );
        let events = seen.0.lock().unwrap().join("\n");
        assert!(
            events.contains("Bound") && events.contains("Failed"),
            "{events}"
        );
        for secret in ["CODE-ONE", "CODE-TWO", "ACCESS-SECRET", "REFRESH-SECRET"] {
            assert!(!events.contains(secret), "{events}");
        }
    }

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
