//! `/v1/sales`: create (idempotent), read, list, cancel, refund.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::wire::{RefundJson, SaleJson};
use crate::engine::{EngineError, SaleRequest};
use crate::journal::{JournalError, SaleFilter};
use crate::money::basket::{Basket, Goods};
use crate::money::{Amount, Currency};
use crate::state::SaleState;

/// Scans a register sale may take: a failed scan (expired code, low balance) leaves the sale
/// waiting for another until these are used up.
const SCANS_PER_SALE: u32 = 3;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSale {
    amount: String,
    currency: String,
    reference: Option<String>,
    subject: Option<String>,
    /// Cancel a sale still in doubt for the same reference instead of answering
    /// `reference_in_doubt` (docs/api.md).
    #[serde(default)]
    supersede: bool,
    /// Campaign fields (docs/api.md, "Campaign fields"), all optional.
    undiscountable_amount: Option<String>,
    discountable_amount: Option<String>,
    goods_detail: Option<Vec<GoodsLine>>,
    operator_id: Option<String>,
    operator_name: Option<String>,
    /// How the customer pays: `scan` (the default: the cashier scans the customer's code),
    /// `customer_scan` (the customer scans the sale's QR), `entry_code` (the page the
    /// store's entry code opened asks for the payment, with `user_agent`).
    method: Option<String>,
    /// `entry_code`: the wallet browser's user agent, as the page received it.
    user_agent: Option<String>,
    /// A bound member to auto-debit (docs/api.md, "Members"): no code is scanned.
    member_id: Option<String>,
}

/// The body of `POST /v1/sales/{id}/customer_scan` (optional): the same method fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchMethod {
    method: Option<String>,
    user_agent: Option<String>,
}

/// What `method` and `user_agent` ask for: `None` for a scanned code.
fn presentation(
    method: Option<&str>,
    user_agent: Option<&str>,
) -> Result<Option<crate::gateway::Presentation>, ApiError> {
    use crate::gateway::Presentation;
    let ua = user_agent.filter(|u| !u.is_empty());
    match method {
        None | Some("scan") if ua.is_none() => Ok(None),
        Some("customer_scan") if ua.is_none() => Ok(Some(Presentation::OrderCode)),
        Some("entry_code") => match ua {
            Some(ua) if ua.len() <= 512 && !ua.chars().any(char::is_control) => {
                Ok(Some(Presentation::EntryCode {
                    user_agent: ua.to_string(),
                }))
            }
            _ => Err(ApiError::field(
                "user_agent",
                "entry_code needs the wallet browser's user agent (1 to 512 characters, no control characters)",
            )),
        },
        None | Some("scan" | "customer_scan") => Err(ApiError::field(
            "user_agent",
            "only an entry_code sale takes a user agent",
        )),
        Some(_) => Err(ApiError::field(
            "method",
            "scan, customer_scan or entry_code",
        )),
    }
}

/// One line of `goods_detail`, in the Open Platform's names. Quantity and price are read by
/// hand, so that a wrong one is named (`goods_detail[1].price`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GoodsLine {
    goods_id: String,
    goods_name: String,
    quantity: serde_json::Value,
    price: serde_json::Value,
    goods_category: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRefund {
    amount: String,
    reason: Option<String>,
}

/// A create request's body, checked as far as it can be without the journal: the JSON, the
/// currency, the amount and the campaign fields' own syntax (the engine checks them against
/// the amount).
pub(crate) fn parse_create(body: &[u8]) -> Result<(CreateSale, Amount, Basket), ApiError> {
    let req: CreateSale = parse_json(body)?;
    let currency = Currency::from_code(&req.currency)
        .map_err(|e| ApiError::field("currency", e.to_string()))?;
    let amount = parse_amount(&req.amount, currency)?;
    let basket = parse_basket(&req, currency)?;
    Ok((req, amount, basket))
}

fn parse_basket(req: &CreateSale, currency: Currency) -> Result<Basket, ApiError> {
    let part = |field: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|t| Amount::parse(t, currency).map_err(|e| ApiError::field(field, e.to_string())))
            .transpose()
    };
    let mut goods = Vec::new();
    for (i, g) in req.goods_detail.iter().flatten().enumerate() {
        let at = |f: &str| format!("goods_detail[{i}].{f}");
        let quantity = g
            .quantity
            .as_u64()
            .and_then(|q| u32::try_from(q).ok())
            .ok_or_else(|| {
                ApiError::field(at("quantity"), "a whole number of units, as a JSON number")
            })?;
        let price = match &g.price {
            serde_json::Value::String(p) => Amount::parse(p, currency)
                .map_err(|e| ApiError::field(at("price"), e.to_string()))?,
            _ => {
                return Err(ApiError::field(
                    at("price"),
                    "the unit price as a string, like the amount (\"3.50\")",
                ));
            }
        };
        goods.push(Goods {
            id: g.goods_id.clone(),
            name: g.goods_name.clone(),
            quantity,
            price,
            category: g.goods_category.clone(),
        });
    }
    Ok(Basket {
        undiscountable: part("undiscountable_amount", &req.undiscountable_amount)?,
        discountable: part("discountable_amount", &req.discountable_amount)?,
        goods,
        operator_id: req.operator_id.clone(),
        operator_name: req.operator_name.clone(),
    })
}

/// A refund request's body, its amount in the sale's currency.
pub(crate) fn parse_refund(
    body: &[u8],
    currency: Currency,
) -> Result<(CreateRefund, Amount), ApiError> {
    let req: CreateRefund = parse_json(body)?;
    let amount = parse_amount(&req.amount, currency)?;
    Ok((req, amount))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

fn parse_amount(text: &str, currency: Currency) -> Result<Amount, ApiError> {
    Amount::parse(text, currency).map_err(|e| ApiError::field("amount", e.to_string()))
}

pub async fn create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (req, amount, basket) = parse_create(&body)?;
    let how = presentation(req.method.as_deref(), req.user_agent.as_deref())?;
    if req.member_id.is_some() && how.is_some() {
        return Err(ApiError::field(
            "member_id",
            "a member sale is auto-debited: it takes no method",
        ));
    }
    // Checked before anything is created: a member who cannot be charged gets no sale.
    let member = match &req.member_id {
        None => None,
        Some(id) => {
            let members = s.members.as_ref().ok_or_else(|| {
                ApiError::field(
                    "member_id",
                    "no [members] section: this till has no member auto-debit",
                )
            })?;
            let zone = s.engine.zone();
            let day_start = zone.day(zone.date_of(chrono::Utc::now())).0;
            Some(members.charge_for(id, amount, day_start)?)
        }
    };
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 128)
                .ok_or_else(|| {
                    ApiError::field("Idempotency-Key", "1 to 128 visible ASCII characters")
                })?
                .to_string(),
        ),
    };
    // A register retrying its own call gets the sale it created, not a second one.
    if let Some(k) = &key
        && let Some(existing) = s
            .engine
            .journal()
            .sale_by_idempotency_key(k)
            .map_err(ApiError::internal)?
    {
        let same = existing.amount == amount
            && existing.reference == req.reference
            && existing.basket == basket;
        if !same {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                "this Idempotency-Key was used for a sale with other details; use a new key for a new sale",
            )
            .with_sale(&existing.id));
        }
        let view = s.engine.view(&existing.id).map_err(ApiError::internal)?;
        return Ok((StatusCode::OK, Json(SaleJson::from(&view))).into_response());
    }
    let request = SaleRequest {
        amount,
        reference: req.reference,
        subject: req.subject,
        idempotency_key: key,
        max_attempts: SCANS_PER_SALE,
        supersede: req.supersede,
        basket,
    };
    match s.engine.arm(request) {
        Ok(view)
            if member.is_some()
                && view.state == SaleState::AwaitingScan
                && view.attempts.is_empty() =>
        {
            let view = match member {
                Some(Ok(charge)) => s
                    .engine
                    .charge_member(&view.sale_id, charge)
                    .await
                    .map_err(engine_error)?,
                // Over a limit: the sale waits for the customer's code instead.
                Some(Err(why)) => {
                    s.engine
                        .journal()
                        .note_refused_scan(&view.sale_id, &why, chrono::Utc::now())
                        .map_err(ApiError::internal)?;
                    s.engine.view(&view.sale_id).map_err(ApiError::internal)?
                }
                None => view,
            };
            Ok((StatusCode::CREATED, Json(SaleJson::from(&view))).into_response())
        }
        Ok(view)
            if how.is_some()
                && view.state == SaleState::AwaitingScan
                && view.attempts.is_empty() =>
        {
            let how = how.unwrap_or(crate::gateway::Presentation::OrderCode);
            let view = s
                .engine
                .present(&view.sale_id, how)
                .await
                .map_err(engine_error)?;
            Ok((StatusCode::CREATED, Json(SaleJson::from(&view))).into_response())
        }
        Ok(view) => Ok((StatusCode::CREATED, Json(SaleJson::from(&view))).into_response()),
        Err(e) => Err(engine_error(e)),
    }
}

pub(super) fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::WrongCurrency { .. } => ApiError::field("currency", e.to_string()),
        EngineError::NotPositive(_) | EngineError::AboveLimit { .. } => {
            ApiError::field("amount", e.to_string())
        }
        EngineError::BadText(field, _) => ApiError::field(
            match field {
                "reference" => "reference",
                "subject" => "subject",
                "reason" => "reason",
                _ => "Idempotency-Key",
            },
            e.to_string(),
        ),
        EngineError::Basket(b) => ApiError::field(b.field, b.why),
        EngineError::Busy(id) => ApiError::new(
            StatusCode::CONFLICT,
            "busy",
            format!("sale {id} is still open on this terminal: finish or cancel it first"),
        )
        .with_sale(&id),
        EngineError::InProgress(ref id) => {
            ApiError::new(StatusCode::CONFLICT, "in_progress", e.to_string()).with_sale(id)
        }
        EngineError::NotWaiting(ref id) => {
            ApiError::new(StatusCode::CONFLICT, "not_waiting", e.to_string()).with_sale(id)
        }
        EngineError::Preflight { code, why } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, why)
        }
        EngineError::Journal(JournalError::NoSale(id)) => {
            ApiError::not_found(&format!("sale {id:?}"))
        }
        EngineError::Journal(JournalError::Refund { sale, why }) => ApiError::new(
            StatusCode::CONFLICT,
            "refund_refused",
            format!("sale {sale} {why}"),
        )
        .with_sale(&sale),
        EngineError::Journal(JournalError::IdempotencyConflict { key, sale }) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_conflict",
            format!("Idempotency-Key {key:?} names another sale"),
        )
        .with_sale(&sale),
        EngineError::Journal(ref j @ JournalError::ReferenceInDoubt { ref sale }) => {
            ApiError::new(StatusCode::CONFLICT, "reference_in_doubt", j.to_string()).with_sale(sale)
        }
        EngineError::Journal(ref j @ JournalError::ReferencePaid { ref sale }) => {
            ApiError::new(StatusCode::CONFLICT, "reference_paid", j.to_string()).with_sale(sale)
        }
        EngineError::Journal(j @ JournalError::Unwritable(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unwritable",
            j.to_string(),
        ),
        EngineError::Journal(j) => ApiError::internal(j),
    }
}

pub async fn get(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match s.engine.view(&id) {
        Ok(view) => Ok(Json(SaleJson::from(&view)).into_response()),
        Err(JournalError::NoSale(_)) => Err(ApiError::not_found(&format!("sale {id:?}"))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    since: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let since = match q.since.as_deref() {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                })
                .map_err(|_| {
                    ApiError::field("since", "an RFC 3339 time or a date like 2026-11-22")
                })?,
        ),
    };
    let state = match q.state.as_deref() {
        None => None,
        Some(t) => Some(SaleState::parse(t).ok_or_else(|| {
            ApiError::field(
                "state",
                "one of awaiting_scan, awaiting_payment, processing, paid, failed, cancelled, expired",
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 1000"));
    }
    // The journal keeps a sale waiting for its QR's payment as processing.
    let filter = SaleFilter {
        state: state.map(|st| match st {
            SaleState::AwaitingPayment => SaleState::Processing,
            st => st,
        }),
        since,
        until: None,
        limit: Some(limit),
    };
    let sales = s
        .engine
        .journal()
        .sales(&filter)
        .map_err(ApiError::internal)?;
    let views = sales
        .iter()
        .map(|sale| s.engine.view(&sale.id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let views: Vec<SaleJson> = views
        .iter()
        .filter(|v| state.is_none_or(|st| v.state == st))
        .map(SaleJson::from)
        .collect();
    Ok(Json(serde_json::json!({ "sales": views })).into_response())
}

/// `POST /v1/sales/{id}/customer_scan`: the sale at the till, whose scans failed or that the
/// customer would rather pay by scanning, shows a QR instead (or, with `entry_code`, answers
/// an entry-code page). 200 with the sale and its `qr`; 409 when the sale is not the one
/// waiting at this till, or a payment is in progress.
pub async fn customer_scan(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let switch: SwitchMethod = if body.iter().all(u8::is_ascii_whitespace) {
        SwitchMethod::default()
    } else {
        parse_json(&body)?
    };
    let how = presentation(
        Some(switch.method.as_deref().unwrap_or("customer_scan")),
        switch.user_agent.as_deref(),
    )?
    .ok_or_else(|| ApiError::field("method", "customer_scan or entry_code"))?;
    let view = s.engine.view(&id).map_err(|e| match e {
        JournalError::NoSale(_) => ApiError::not_found(&format!("sale {id:?}")),
        e => ApiError::internal(e),
    })?;
    if view.state == SaleState::AwaitingPayment {
        // Asked again: the code already shown.
        return Ok(Json(SaleJson::from(&view)).into_response());
    }
    let view = s.engine.present(&id, how).await.map_err(engine_error)?;
    Ok(Json(SaleJson::from(&view)).into_response())
}

/// Before a scan: abort. In doubt: the watchdog stops waiting and reverses it. Paid: what is
/// left is refunded. Already ended unpaid: nothing to do.
pub async fn cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.engine.view(&id).map_err(|e| match e {
        JournalError::NoSale(_) => ApiError::not_found(&format!("sale {id:?}")),
        e => ApiError::internal(e),
    })?;
    match view.state {
        SaleState::AwaitingScan => {
            let view = s
                .engine
                .abort(&id, "cancelled by the register")
                .map_err(engine_error)?;
            Ok(Json(SaleJson::from(&view)).into_response())
        }
        SaleState::Processing | SaleState::AwaitingPayment => {
            s.engine.expedite(&id).map_err(engine_error)?;
            let view = s.engine.view(&id).map_err(ApiError::internal)?;
            Ok((StatusCode::ACCEPTED, Json(SaleJson::from(&view))).into_response())
        }
        SaleState::Paid => {
            let refunds = s
                .engine
                .journal()
                .refunds(&id)
                .map_err(ApiError::internal)?;
            let committed: i64 = refunds
                .iter()
                .filter(|r| r.state != crate::state::RefundState::Failed)
                .map(|r| r.amount.minor())
                .sum();
            let paid = s
                .engine
                .journal()
                .sale(&id)
                .map_err(ApiError::internal)?
                .map(|sale| sale.amount)
                .ok_or_else(|| ApiError::not_found(&format!("sale {id:?}")))?;
            let left = Amount::from_minor(paid.minor() - committed, paid.currency());
            // Same statuses as a refund: 200 only once the money is back (or already on its
            // way back from an earlier cancel), 202 while the refund is being confirmed, 502
            // when the gateway refused it and the customer is still charged.
            let mut status = if refunds.iter().any(|r| !r.state.is_final()) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            if left.is_positive() {
                let refund = s
                    .engine
                    .refund(
                        &id,
                        left,
                        Some("sale cancelled by the register".to_string()),
                    )
                    .await
                    .map_err(engine_error)?;
                status = match refund.state {
                    crate::state::RefundState::Succeeded => status,
                    crate::state::RefundState::Failed => {
                        return Err(ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "refund_failed",
                            format!(
                                "sale {id} stays paid: the gateway refused refund {} ({}); retry the cancel or refund it by hand",
                                refund.refund_id,
                                refund.result_message.as_deref().unwrap_or("no reason given")
                            ),
                        )
                        .with_sale(&id));
                    }
                    _ => StatusCode::ACCEPTED,
                };
            }
            let view = s.engine.view(&id).map_err(ApiError::internal)?;
            Ok((status, Json(SaleJson::from(&view))).into_response())
        }
        SaleState::Failed | SaleState::Cancelled | SaleState::Expired => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_final",
            format!("sale {id} is already {}: nothing was charged", view.state),
        )
        .with_sale(&id)),
    }
}

pub async fn refund(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sale = s
        .engine
        .journal()
        .sale(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("sale {id:?}")))?;
    let (req, amount) = parse_refund(&body, sale.amount.currency())?;
    let refund = s
        .engine
        .refund(&id, amount, req.reason)
        .await
        .map_err(engine_error)?;
    let status = match refund.state {
        crate::state::RefundState::Succeeded => StatusCode::CREATED,
        crate::state::RefundState::Failed => StatusCode::BAD_GATEWAY,
        _ => StatusCode::ACCEPTED,
    };
    Ok((status, Json(RefundJson::from(&refund))).into_response())
}
