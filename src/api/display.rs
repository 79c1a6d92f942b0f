//! The customer display: one page (`display.html`, embedded, no external assets) for a
//! second screen facing the customer, in a kiosk browser. It follows the register's event
//! stream (no polling) and shows the amount, the QR while one is open, "confirm in your
//! app", paid or not paid, and idle. `GET /v1/sales/{id}/qr.svg` draws a sale's open QR.
//! docs/api.md, "The customer display".

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::journal::JournalError;

const PAGE: &str = include_str!("display.html");

/// `GET /display`: the page; it holds no data, the calls it makes are the register's.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' blob:; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /v1/sales/{id}/qr.svg`: the sale's QR while it waits for the customer; 404 when it
/// shows none (never shown, paid, expired or cancelled).
pub async fn qr_svg(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.engine.view(&id).map_err(|e| match e {
        JournalError::NoSale(_) => ApiError::not_found(&format!("sale {id:?}")),
        e => ApiError::internal(e),
    })?;
    let qr = view
        .qr
        .ok_or_else(|| ApiError::not_found(&format!("QR of sale {id:?}: it shows none now")))?;
    let svg = crate::output::qr::svg(&qr.content, 320).ok_or_else(|| {
        ApiError::internal(format!("sale {id}: its QR content does not fit a QR"))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}
