//! `/v1/shifts`: open a shift, close it (its numbered Z-report), and read its report (an
//! X-report while it is open, the kept Z-report once closed).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use crate::journal::{JournalError, ShiftRow};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OpenShift {
    operator_id: Option<String>,
}

fn shift_json(s: &ShiftRow) -> serde_json::Value {
    json!({
        "shift_id": s.id,
        "opened_at": crate::clock::to_journal(s.opened_at),
        "opened_by": s.opened_by,
        "closed_at": s.closed_at.map(crate::clock::to_journal),
        "z_number": s.z_number,
    })
}

fn journal_error(e: JournalError) -> ApiError {
    match e {
        JournalError::NoShift(id) => ApiError::not_found(&format!("shift {id}")),
        JournalError::ShiftOpen(id) => ApiError::new(
            StatusCode::CONFLICT,
            "shift_open",
            format!("shift {id} is still open: close it first"),
        ),
        other => ApiError::internal(other),
    }
}

fn shift_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::field("id", "a shift number"))
}

/// `POST /v1/shifts` with an optional `{"operator_id": …}`: `201` with the shift, `409
/// shift_open` while another is open.
pub async fn open(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let req: OpenShift = if body.is_empty() {
        OpenShift::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not the expected JSON: {e}"),
            )
        })?
    };
    if let Some(id) = &req.operator_id
        && (id.is_empty() || id.chars().count() > 28 || id.chars().any(char::is_control))
    {
        return Err(ApiError::field(
            "operator_id",
            "1 to 28 printable characters",
        ));
    }
    let shift = s
        .engine
        .journal()
        .open_shift(req.operator_id.as_deref(), chrono::Utc::now())
        .map_err(journal_error)?;
    Ok((StatusCode::CREATED, Json(shift_json(&shift))).into_response())
}

/// `POST /v1/shifts/{id}/close`: the shift's Z-report, numbered; closing it again answers
/// the same report.
pub async fn close(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = shift_id(&id)?;
    let report =
        crate::report::shift::close(s.engine.journal(), id, chrono::Utc::now(), s.engine.zone())
            .map_err(journal_error)?;
    if let Some(printer) = &s.printer {
        printer.enqueue(crate::report::shift::escpos(&report, printer.receipt()));
    }
    Ok(Json(report).into_response())
}

/// `GET /v1/shifts/{id}/report`: an X-report of an open shift (so far), or the kept Z-report.
pub async fn report(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = shift_id(&id)?;
    let j = s.engine.journal();
    let shift = j
        .shift(id)
        .map_err(journal_error)?
        .ok_or_else(|| ApiError::not_found(&format!("shift {id}")))?;
    let report = if shift.closed_at.is_some() {
        crate::report::shift::kept(j, id)
    } else {
        crate::report::shift::shift_report(j, &shift, chrono::Utc::now(), None, s.engine.zone())
    }
    .map_err(journal_error)?;
    Ok(Json(report).into_response())
}
