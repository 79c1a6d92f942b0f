//! The operator's console: one page (`console.html`, embedded, no external assets) that a
//! store manager opens in a browser, and the calls it needs beyond the register's: the day
//! report and the printer test. docs/api.md §"The console".

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;

/// Who sent a request: the listener it came in on (set per listener in `serve`).
#[derive(Debug, Clone, Copy)]
pub struct Listener(pub &'static str);

const PAGE: &str = include_str!("console.html");

/// `GET /console`.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything is in the page; nothing may be loaded from elsewhere, and no other
            // site may frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct ReportQuery {
    date: Option<String>,
}

/// `GET /v1/report?date=YYYY-MM-DD`: the day report of a store day (default today).
pub async fn report(
    State(s): State<ApiState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let zone = s.engine.zone();
    let date = store_date(zone, q.date.as_deref())?;
    let report =
        crate::report::day_report(s.engine.journal(), date, zone).map_err(ApiError::internal)?;
    Ok(Json(report).into_response())
}

/// The store day a `date` query names: today in the store's zone when it names none.
pub(super) fn store_date(
    zone: crate::clock::StoreZone,
    date: Option<&str>,
) -> Result<chrono::NaiveDate, ApiError> {
    match date {
        None => Ok(zone.date_of(chrono::Utc::now())),
        Some(d) => crate::clock::parse_date(d)
            .map_err(|_| ApiError::field("date", "a date like 2026-12-01")),
    }
}

/// `POST /v1/printer/test`: prints a test slip and answers the printer's state after it, paper
/// sensor included. Recorded as an operator action, and told as an `operator_action` event.
pub async fn printer_test(
    State(s): State<ApiState>,
    listener: Option<axum::Extension<Listener>>,
    peer: Option<axum::Extension<super::conn::Peer>>,
) -> Result<Response, ApiError> {
    let Some(printer) = s.printer.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_printer",
            "this till has no [printer] section: there is nothing to test",
        ));
    };
    let state = tokio::task::spawn_blocking(move || printer.test_slip(Duration::from_secs(5)))
        .await
        .map_err(ApiError::internal)?;
    let result = if state.ok {
        match state.paper {
            Some(crate::output::escpos::PaperStatus::Out) => {
                "printed; the sensor says the paper is out".to_string()
            }
            Some(crate::output::escpos::PaperStatus::NearEnd) => {
                "printed; the paper is near its end".to_string()
            }
            Some(crate::output::escpos::PaperStatus::Ok) => "printed; paper ok".to_string(),
            None => "printed (this link cannot read the paper sensor)".to_string(),
        }
    } else {
        format!(
            "not printed: {}",
            state
                .last_error
                .as_deref()
                .unwrap_or("the printer did not take it")
        )
    };
    let actor = super::operator::actor(listener.as_deref(), peer.as_deref());
    super::operator::record(
        &s,
        actor,
        "printer_test",
        None,
        &serde_json::json!({ "result": result }),
        result.clone(),
    );
    let status = if state.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((
        status,
        Json(serde_json::json!({"result": result, "printer": state})),
    )
        .into_response())
}
