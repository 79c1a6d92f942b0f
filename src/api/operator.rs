//! What an operator does through the API with the daemon running: the payments that need a
//! person and their actions, reconciliation with `fix`, a gateway probe, the LED cycle, a
//! reprint, the Z-report, and the record of every action taken (who, when, what, result).
//! docs/api.md §"Operator actions".
//!
//! Every action is recorded in the journal's `operator_actions` table. One that moves money
//! or closes a flag needs an `Idempotency-Key`: asked again under the same key, the first
//! answer is given again and nothing is done twice.

use std::path::PathBuf;

use async_trait::async_trait;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::conn::Peer;
use super::console::Listener;
use super::error::ApiError;
use crate::engine::Engine;
use crate::engine::attention::{Acted, ActionError, Asked, OperatorAction};
use crate::events::Event;
use crate::journal::{ActionRow, NewAction};

/// What the daemon does for the API that needs its configuration: reconciliation against
/// the provider's records, and the gateway probe of `check-config --probe`.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Compares the provider's record of a day with the journal and, with `fix`, refunds
    /// what only the provider recorded, as `scanpay reconcile --fix` does. The
    /// reconciliation's JSON, as `scanpay reconcile --format json` prints it.
    async fn reconcile(&self, engine: &Engine, ask: ReconcileAsk) -> Result<Value, OpError>;

    /// One signed request to each configured gateway: `{"ok", "checks":[{"what","ok","text"}]}`.
    async fn probe(&self) -> Value;

    /// Reads the configuration again and signs with its keys from now on, when all of it
    /// checks out (`daemon::reload`): `{"ok", "result", "error", "signing_keys", …}`.
    async fn reload(&self, asked_by: &str) -> Value;

    /// The last reload's outcome, for health.
    fn last_reload(&self) -> Option<Value>;
}

/// A reconciliation asked through the API.
#[derive(Debug, Clone, Default)]
pub struct ReconcileAsk {
    /// The provider's day; `None`: the previous one.
    pub date: Option<chrono::NaiveDate>,
    /// `alipay` or `wechat`; `None`: the first configured gateway.
    pub provider: Option<String>,
    pub fix: bool,
    /// The provider's record as a file on this machine (an AMS report, a bill zip).
    pub file: Option<PathBuf>,
}

/// Why a reconciliation could not be made.
#[derive(Debug)]
pub enum OpError {
    /// A field of the request names nothing this till has.
    Field(&'static str, String),
    /// The comparison could not be made (bill not ready, gateway unreachable).
    Failed(String),
}

/// Who sent a request: the listener and the peer on it.
pub(super) fn actor(listener: Option<&Listener>, peer: Option<&Peer>) -> String {
    match (listener, peer) {
        (_, Some(p)) => p.0.clone(),
        (Some(l), None) => l.0.to_string(),
        (None, None) => "api".to_string(),
    }
}

/// The request's `Idempotency-Key`, required for actions that move money or close a flag.
fn request_key(headers: &HeaderMap, required: bool) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None if required => Err(ApiError::field(
            "Idempotency-Key",
            "this action needs an Idempotency-Key header (1 to 128 visible ASCII characters), so that a retry does not act twice",
        )),
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 128)
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| ApiError::field("Idempotency-Key", "1 to 128 visible ASCII characters")),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

/// An action as the API shows it.
pub fn action_json(a: &ActionRow) -> Value {
    json!({
        "id": a.id,
        "request_id": a.request_id,
        "at": crate::clock::to_journal(a.at),
        "actor": a.actor,
        "operator": a.operator,
        "action": a.action,
        "target": a.target,
        "note": a.note,
        "status": a.status,
        "result": serde_json::from_str::<Value>(&a.result).unwrap_or_else(|_| json!(a.result)),
    })
}

/// The stored answer of an action: its status and result, with the record.
fn answer(acted: &Acted) -> Response {
    let a = &acted.row;
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut body = action_json(a);
    body["replayed"] = json!(acted.replayed);
    (status, Json(body)).into_response()
}

/// `GET /v1/attention`: every payment flagged for a person, newest first.
pub async fn attention(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let items = s.engine.attention().map_err(ApiError::internal)?;
    let now = chrono::Utc::now();
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            let a = &i.attempt;
            json!({
                "request_id": a.request_id,
                "sale_id": a.sale_id,
                "kind": i.kind.as_str(),
                "why": a.needs_attention,
                "state": a.state.as_str(),
                "amount": a.amount.to_major_string(),
                "currency": a.amount.currency().code(),
                "created_at": crate::clock::to_journal(a.created_at),
                "age_s": (now - a.created_at).num_seconds().max(0),
                "deadline_at": i.deadline.map(crate::clock::to_journal),
                "actions": i.kind.actions().iter().map(|x| x.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionBody {
    action: String,
    note: Option<String>,
    operator: Option<String>,
}

/// `POST /v1/attention/{request_id}` `{"action": "retry"|"refund"|"settle", "note", "operator"}`.
pub async fn act(
    State(s): State<ApiState>,
    Path(request_id): Path<String>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: AttentionBody = parse_json(&body)?;
    let Some(action) = OperatorAction::parse(&body.action) else {
        return Err(ApiError::field("action", "one of retry, refund, settle"));
    };
    let key = request_key(&headers, true)?.unwrap_or_default();
    let actor = actor(listener.as_deref(), peer.as_deref());
    let asked = Asked {
        request_id: &key,
        actor: &actor,
        operator: body.operator.as_deref(),
        note: body.note.as_deref(),
    };
    let acted = match s.engine.act_on_attention(&request_id, action, asked).await {
        Ok(acted) => acted,
        // The same request twice at once: the one recorded first is the answer.
        Err(ActionError::Engine(crate::engine::EngineError::Journal(
            crate::journal::JournalError::DuplicateAction(_),
        ))) => Acted {
            row: s
                .engine
                .recorded_action(&key)
                .map_err(ApiError::internal)?
                .ok_or_else(|| conflict(&key))?,
            replayed: true,
        },
        Err(ActionError::NotFlagged(id)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_flagged",
                format!("no payment {id:?} is flagged for a person: GET /v1/attention lists them"),
            ));
        }
        Err(e @ ActionError::DoesNotApply { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "action_does_not_apply",
                e.to_string(),
            ));
        }
        Err(e @ ActionError::NoteNeeded) => return Err(ApiError::field("note", e.to_string())),
        Err(ActionError::Engine(crate::engine::EngineError::BadText(what, max))) => {
            return Err(ApiError::field(
                if what == "note" { "note" } else { "operator" },
                format!("1 to {max} printable characters"),
            ));
        }
        Err(ActionError::Engine(e)) => return Err(super::sales::engine_error(e)),
    };
    if acted.row.target.as_deref() != Some(request_id.as_str())
        || acted.row.action != action.as_str()
    {
        return Err(conflict(&key));
    }
    if !acted.replayed {
        s.observer.event(&Event::OperatorAction {
            actor: actor.clone(),
            action: action.as_str(),
            result: format!("{request_id}: {}", done_text(&acted.row)),
        });
    }
    Ok(answer(&acted))
}

fn conflict(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        format!("Idempotency-Key {key:?} names another action; use a new key for a new action"),
    )
}

fn done_text(a: &ActionRow) -> String {
    serde_json::from_str::<Value>(&a.result)
        .ok()
        .and_then(|v| v["done"].as_str().map(str::to_string))
        .unwrap_or_else(|| a.result.clone())
}

#[derive(Deserialize)]
pub struct ActionsQuery {
    limit: Option<i64>,
}

/// `GET /v1/actions?limit=N`: the operators' actions, newest first (default 50, at most 500).
pub async fn actions(
    State(s): State<ApiState>,
    Query(q): Query<ActionsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "1 to 500"));
    }
    let rows = s
        .engine
        .journal()
        .actions(limit)
        .map_err(ApiError::internal)?;
    Ok(
        Json(json!({ "actions": rows.iter().map(action_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// Largest provider record file the daemon reads for a reconciliation.
const MAX_RECORD_FILE: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileBody {
    date: Option<String>,
    provider: Option<String>,
    #[serde(default)]
    fix: bool,
    file: Option<String>,
    operator: Option<String>,
}

/// `POST /v1/reconcile` `{"date", "provider", "fix", "file"}`: the day's reconciliation, run
/// by the daemon; with `"fix": true` (and an `Idempotency-Key`) it also refunds what only
/// the provider recorded, once, as `scanpay reconcile --fix` does.
pub async fn reconcile(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ReconcileBody = parse_json(&body)?;
    let key = request_key(&headers, body.fix)?;
    // What was asked, kept with the action: the same key with another request is refused.
    let asked = json!({
        "date": body.date, "provider": body.provider, "fix": body.fix, "file": body.file,
    })
    .to_string();
    if let Some(k) = &key
        && let Some(row) = s.engine.recorded_action(k).map_err(ApiError::internal)?
    {
        return replay_reconcile(&row, &asked, k);
    }
    let Some(ops) = s.operations.clone() else {
        return Err(unavailable("reconciliation"));
    };
    let date = match body.date.as_deref() {
        None => None,
        Some(d) => Some(
            crate::clock::parse_date(d)
                .map_err(|_| ApiError::field("date", "a date like 2026-12-01"))?,
        ),
    };
    if let Some(o) = body.operator.as_deref()
        && (o.is_empty() || o.chars().count() > 100 || o.chars().any(char::is_control))
    {
        return Err(ApiError::field("operator", "1 to 100 printable characters"));
    }
    // A file on the till is named only by someone on the till (the socket's mode guards it),
    // and the daemon reads only a regular file of a bill's size (never a device or a pipe).
    if body.file.is_some() && listener.as_deref().is_some_and(|l| l.0 == "tcp") {
        return Err(ApiError::field(
            "file",
            "a file on the till may be named only over the daemon's socket (scanpay reconcile --file does that)",
        ));
    }
    if let Some(f) = body.file.as_deref() {
        match std::fs::metadata(f) {
            Ok(m) if m.is_file() && m.len() <= MAX_RECORD_FILE => {}
            Ok(_) => {
                return Err(ApiError::field(
                    "file",
                    "not a regular file of at most 64 MiB: name the provider's report or bill file",
                ));
            }
            Err(e) => {
                return Err(ApiError::field(
                    "file",
                    format!("{f}: {e}; name a file the daemon's user can read"),
                ));
            }
        }
    }
    let ask = ReconcileAsk {
        date,
        provider: body.provider.clone(),
        fix: body.fix,
        file: body.file.as_deref().map(PathBuf::from),
    };
    let (status, result) = match ops.reconcile(&s.engine, ask).await {
        Ok(r) => (StatusCode::OK, r),
        Err(OpError::Field(field, why)) => return Err(ApiError::field(field, why)),
        Err(OpError::Failed(why)) => (
            StatusCode::BAD_GATEWAY,
            json!({"error": {"code": "reconcile_failed", "message": why}}),
        ),
    };
    let actor = actor(listener.as_deref(), peer.as_deref());
    let text = result.to_string();
    let target = result["date"]
        .as_str()
        .map(str::to_string)
        .or(body.date.clone());
    let new = NewAction {
        // A run that could not be made is recorded, but not under the key: asked again,
        // it runs again (the bill may be ready by then).
        request_id: key.as_deref().filter(|_| status.is_success()),
        actor: &actor,
        operator: body.operator.as_deref(),
        action: "reconcile",
        target: target.as_deref(),
        note: Some(&asked),
        status: status.as_u16(),
        result: &text,
    };
    match s.engine.record_operator_action(&new) {
        Ok(acted) if acted.replayed => {
            return replay_reconcile(&acted.row, &asked, key.as_deref().unwrap_or_default());
        }
        Ok(_) => {}
        // The same request twice at once: the one recorded first is the answer.
        Err(crate::journal::JournalError::DuplicateAction(k)) => {
            if let Some(row) = s.engine.recorded_action(&k).map_err(ApiError::internal)? {
                return replay_reconcile(&row, &asked, &k);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reconciliation not recorded as an operator action"),
    }
    if body.fix {
        // Refunds made now, or found made by an earlier run.
        let fixed = result["fixes"].as_array().map_or(0, |f| {
            f.iter().filter(|x| x["refund_id"].is_string()).count()
        });
        s.observer.event(&Event::OperatorAction {
            actor,
            action: "reconcile_fix",
            result: format!(
                "{}: {fixed} refund(s) made or found made",
                target.unwrap_or_default()
            ),
        });
    }
    Ok((status, Json(result)).into_response())
}

/// The answer of the reconciliation recorded under `key`, if it was asked the same way.
fn replay_reconcile(row: &ActionRow, asked: &str, key: &str) -> Result<Response, ApiError> {
    if row.action != "reconcile" || row.note.as_deref() != Some(asked) {
        return Err(conflict(key));
    }
    Ok(replay_result(row))
}

/// A recorded action's own answer (the body it gave), again.
fn replay_result(row: &ActionRow) -> Response {
    let status = StatusCode::from_u16(row.status).unwrap_or(StatusCode::OK);
    let body = serde_json::from_str::<Value>(&row.result).unwrap_or_else(|_| json!({}));
    (status, Json(body)).into_response()
}

fn unavailable(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{what} is not available from this process"),
    )
}

/// `POST /v1/gateway/probe`: one signed request to each gateway, as `check-config --probe`.
pub async fn probe(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let Some(ops) = s.operations.clone() else {
        return Err(unavailable("the gateway probe"));
    };
    let result = ops.probe().await;
    let ok = result["ok"].as_bool().unwrap_or(false);
    let actor = actor(listener.as_deref(), peer.as_deref());
    let told = if ok {
        "the gateway answered and verified"
    } else {
        "the probe failed"
    };
    record(&s, actor, "gateway_probe", None, &result, told.to_string());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((status, Json(result)).into_response())
}

/// `POST /v1/reload`: reads the configuration again and signs with its keys from now on,
/// as SIGHUP does (`daemon::reload`). 200 when applied; 422 when the file does not check out,
/// and nothing changed.
pub async fn reload(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let Some(ops) = s.operations.clone() else {
        return Err(unavailable("reloading the configuration"));
    };
    let actor = actor(listener.as_deref(), peer.as_deref());
    let result = ops.reload(&actor).await;
    let ok = result["ok"].as_bool().unwrap_or(false);
    let told = if ok {
        "configuration reloaded"
    } else {
        "configuration not reloaded"
    };
    record(&s, actor, "reload", None, &result, told.to_string());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(result)).into_response())
}

/// Records a device test or probe (no request id: it moves no money and may be repeated)
/// and tells every output of it, `told` in words.
pub(super) fn record(
    s: &ApiState,
    actor: String,
    action: &'static str,
    target: Option<&str>,
    result: &Value,
    told: String,
) {
    let text = result.to_string();
    let new = NewAction {
        request_id: None,
        actor: &actor,
        operator: None,
        action,
        target,
        note: None,
        status: 200,
        result: &text,
    };
    if let Err(e) = s.engine.record_operator_action(&new) {
        tracing::warn!(error = %e, action, "operator action not recorded");
    }
    s.observer.event(&Event::OperatorAction {
        actor,
        action,
        result: told,
    });
}

/// `POST /v1/led/test`: the LED shows each of its patterns in turn, then what it showed
/// before. Answers at once with the patterns it will show.
pub async fn led_test(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let patterns: Vec<&str> = crate::output::LedPattern::ALL
        .iter()
        .map(|p| p.describe())
        .collect();
    let actor = actor(listener.as_deref(), peer.as_deref());
    let result = json!({
        "result": format!("cycling through {} patterns, {} ms each", patterns.len(), crate::output::led::LED_TEST_STEP.as_millis()),
        "patterns": patterns,
    });
    let told = result["result"].as_str().unwrap_or_default().to_string();
    record(&s, actor, "led_test", None, &result, told);
    Ok(Json(result).into_response())
}

/// How long the scan test waits for its scan.
pub const SCAN_TEST_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /v1/scanner/test`: the next scan (within a minute) is shown, as a `scan_test`
/// event, and never charged, whether or not a sale is waiting.
pub async fn scanner_test(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    s.engine.arm_scan_test(SCAN_TEST_WINDOW);
    let actor = actor(listener.as_deref(), peer.as_deref());
    let result = json!({
        "result": format!(
            "scan now: the next scan within {} s is shown as a scan_test event and not charged",
            SCAN_TEST_WINDOW.as_secs()
        ),
    });
    let told = result["result"].as_str().unwrap_or_default().to_string();
    record(&s, actor, "scanner_test", None, &result, told);
    Ok(Json(result).into_response())
}

/// `POST /v1/sales/{id}/receipt`: prints a sale's receipts again.
pub async fn reprint(
    State(s): State<ApiState>,
    Path(sale_id): Path<String>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let printer = s.printer.clone().ok_or_else(no_printer)?;
    let view = s.engine.view(&sale_id).map_err(|e| match e {
        crate::journal::JournalError::NoSale(_) => {
            ApiError::not_found(&format!("sale {sale_id:?}"))
        }
        e => ApiError::internal(e),
    })?;
    if !view.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "sale_not_final",
            format!(
                "sale {sale_id} is {}: its receipt prints once it ends",
                view.state.in_words()
            ),
        )
        .with_sale(&sale_id));
    }
    let slips = printer.sale_slips(&view);
    let count = slips.len();
    for slip in slips {
        printer.enqueue(slip);
    }
    let actor = actor(listener.as_deref(), peer.as_deref());
    let result =
        json!({"result": format!("{count} slip(s) sent to the printer"), "sale_id": sale_id});
    let told = format!("sale {sale_id}: {count} slip(s)");
    record(&s, actor, "reprint", Some(&sale_id), &result, told);
    Ok(Json(result).into_response())
}

fn no_printer() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_printer",
        "this till has no [printer] section: there is nothing to print on",
    )
}

#[derive(Deserialize)]
pub struct DateQuery {
    date: Option<String>,
}

/// `POST /v1/report/print?date=YYYY-MM-DD`: prints the day's Z-report (default today).
pub async fn print_report(
    State(s): State<ApiState>,
    Query(q): Query<DateQuery>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<Peer>>,
) -> Result<Response, ApiError> {
    let printer = s.printer.clone().ok_or_else(no_printer)?;
    let zone = s.engine.zone();
    let date = super::console::store_date(zone, q.date.as_deref())?;
    let report =
        crate::report::day_report(s.engine.journal(), date, zone).map_err(ApiError::internal)?;
    printer.enqueue(crate::report::escpos(&report, printer.receipt()));
    let actor = actor(listener.as_deref(), peer.as_deref());
    let date = date.to_string();
    let result = json!({"result": "the Z-report was sent to the printer", "date": date});
    let told = format!("Z-report of {date}");
    record(&s, actor, "print_report", Some(&date), &result, told);
    Ok(Json(result).into_response())
}
