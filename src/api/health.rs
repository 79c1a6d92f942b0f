//! `GET /v1/health` and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::ApiState;
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::journal::meta::LastRun;
use crate::state::SaleState;

pub async fn health(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let journal = s.engine.journal();
    let open = journal.open_attempts().map_err(ApiError::internal)?;
    let now = chrono::Utc::now();
    let oldest = open
        .iter()
        .map(|a| (now - a.created_at).num_seconds())
        .max();
    let attention = journal
        .attempts_needing_attention()
        .map_err(ApiError::internal)?;
    // A member binding whose exchange failed or whose token did not refresh: until the
    // member binds again or is revoked (`api/members.rs`).
    let members_attention = journal
        .bindings_needing_attention()
        .map_err(ApiError::internal)?;
    let reachability = s.monitor.reachability();
    // Offline, not answering, or refusing our credentials: new sales are refused, and why.
    let gateway_refusal = reachability
        .refusal()
        .map(|(code, message)| json!({"code": code, "message": message}));
    let gateway_ok = gateway_refusal.is_none();
    let write_failure = journal.write_failure();
    // Health answers even when the record cannot be read, as without one.
    let reconciliation = LastRun::load(journal).ok().flatten();
    let reconciled_ok = reconciliation.as_ref().is_none_or(|r| r.differences == 0);
    let skew_off = s
        .monitor
        .clock_skew_s()
        .is_some_and(|k| k.abs() > crate::gateway::CLOCK_SKEW_WARN_S);
    // A file that did not reload would not start the daemon either: a person must fix it.
    let reload = s.operations.as_ref().and_then(|o| o.last_reload());
    let reload_refused = reload
        .as_ref()
        .is_some_and(|r| r["ok"] == serde_json::Value::Bool(false));
    let ok = gateway_ok
        && attention.is_empty()
        && members_attention.is_empty()
        && write_failure.is_none()
        && reconciled_ok
        && !skew_off
        && !reload_refused;
    // Why it is degraded, as codes a register or a monitor can act on.
    let mut reasons: Vec<&str> = Vec::new();
    if write_failure.is_some() {
        reasons.push("journal_unwritable");
    }
    if let Some((code, _)) = reachability.refusal() {
        reasons.push(code);
    }
    let skew = s.monitor.clock_skew_s();
    let clock_off = skew.is_some_and(|k| k.abs() > crate::gateway::CLOCK_SKEW_WARN_S);
    if clock_off {
        reasons.push("clock");
    }
    if !attention.is_empty() {
        reasons.push("needs_attention");
    }
    if !members_attention.is_empty() {
        reasons.push("member_binding_attention");
    }
    if !reconciled_ok {
        reasons.push("reconciliation_differences");
    }
    if reload_refused {
        reasons.push("reload_refused");
    }
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "reasons": reasons,
        "gateway": {
            "kind": s.monitor.name(),
            "reachability": reachability,
            "last_error": s.monitor.last_error(),
            "sales_refused": gateway_refusal,
            "clock_skew_s": skew,
            "lost_payments": s.monitor.lost_payments(),
            // Which gateway charges each wallet's codes (several at once: docs/gateways.md §8.8).
            "routes": crate::paycode::Wallet::ALL
                .iter()
                .filter_map(|w| s.monitor.route(*w).map(|g| (w.as_str().to_string(), json!(g))))
                .collect::<serde_json::Map<_, _>>(),
            "in_doubt_by_gateway": in_doubt_by_gateway(&open),
            // Open Platform certificate mode: each certificate's end (docs/gateways.md §9).
            "certificates": s.monitor.certificates().into_iter().map(|c| json!({
                "which": c.which,
                "sn": c.sn,
                "not_after": c.not_after.to_rfc3339(),
                "days_left": (c.not_after - now).num_days(),
            })).collect::<Vec<_>>(),
        },
        "journal": {
            "path": journal.path().display().to_string(),
            "ok": write_failure.is_none(),
            "write_failure": write_failure,
        },
        "in_doubt": open.len(),
        "refunds_in_doubt": journal.open_refunds().map_err(ApiError::internal)?.len(),
        "oldest_in_doubt_age_s": oldest,
        "needs_attention": attention.iter().map(|a| json!({
            "sale_id": a.sale_id, "request_id": a.request_id, "why": a.needs_attention,
        })).collect::<Vec<_>>(),
        "member_bindings_needing_attention": members_attention.iter().map(|b| json!({
            "member_id": b.member_id, "wallet": b.wallet, "state": b.state.as_str(),
            "result_code": b.result_code, "why": b.attention,
        })).collect::<Vec<_>>(),
        "reconciliation": reconciliation,
        "reload": reload,
        "armed_sale": s.engine.armed(),
        "scanners": s.scanners.all(),
        "printer": s.printer.as_ref().map(|p| p.state()),
        "pid": std::process::id(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

/// Open attempts by the gateway they went to.
fn in_doubt_by_gateway(
    open: &[crate::journal::AttemptRow],
) -> std::collections::BTreeMap<String, usize> {
    let mut by = std::collections::BTreeMap::new();
    for a in open {
        *by.entry(a.gateway.clone()).or_default() += 1;
    }
    by
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabel {
    gateway: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    which: String,
    sn: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScannerLabel {
    scanner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
    gateway: String,
}

/// A gauge of one value, registered under `name`.
fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

pub async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let journal = s.engine.journal();
    let mut registry = Registry::default();
    let sales = Family::<StateLabel, Gauge>::default();
    let counts = journal.sale_counts().map_err(ApiError::internal)?;
    for state in SaleState::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        sales
            .get_or_create(&StateLabel {
                state: state.as_str().to_string(),
            })
            .set(n as i64);
    }
    registry.register("scanpay_sales", "Sales in the journal by state", sales);
    let build = Family::<BuildLabel, Gauge>::default();
    build
        .get_or_create(&BuildLabel {
            version: env!("CARGO_PKG_VERSION").to_string(),
            gateway: s.monitor.name().to_string(),
        })
        .set(1);
    let open = journal.open_attempts().map_err(ApiError::internal)?;
    let by_gateway = Family::<GatewayLabel, Gauge>::default();
    for (gateway, n) in in_doubt_by_gateway(&open) {
        by_gateway
            .get_or_create(&GatewayLabel { gateway })
            .set(n as i64);
    }
    registry.register(
        "scanpay_gateway_in_doubt",
        "Payment attempts in doubt, by the gateway they went to",
        by_gateway,
    );
    registry.register(
        "scanpay_build_info",
        "1, labelled with the version and the gateway kind",
        build,
    );
    let now = chrono::Utc::now();
    gauge(
        &mut registry,
        "scanpay_in_doubt",
        "Payment attempts not yet known paid or reversed",
        open.len() as i64,
    );
    gauge(
        &mut registry,
        "scanpay_oldest_in_doubt_age_seconds",
        "Age of the oldest payment in doubt (0 when none)",
        open.iter()
            .map(|a| (now - a.created_at).num_seconds())
            .max()
            .unwrap_or(0),
    );
    let window = s.monitor.policy().cancel_window;
    gauge(
        &mut registry,
        "scanpay_cancel_window_closing",
        "Payments in doubt whose cancel window closes within 2 hours (or has closed)",
        open.iter()
            .filter(|a| window.closes_at(a.created_at) - now <= chrono::TimeDelta::hours(2))
            .count() as i64,
    );
    gauge(
        &mut registry,
        "scanpay_last_sale_timestamp_seconds",
        "When the newest sale was made, Unix time (0 before the first)",
        journal
            .newest_sale_at()
            .map_err(ApiError::internal)?
            .map_or(0, |t| t.timestamp()),
    );
    if let Some(printer) = s.printer.as_ref().map(|p| p.state()) {
        gauge(
            &mut registry,
            "scanpay_printer_ok",
            "1 while the receipt printer takes slips",
            i64::from(printer.ok),
        );
        gauge(
            &mut registry,
            "scanpay_printer_paper_out",
            "1 when the printer's sensor says the paper is out, 2 when it is near its end",
            match printer.paper {
                Some(crate::output::escpos::PaperStatus::Out) => 1,
                Some(crate::output::escpos::PaperStatus::NearEnd) => 2,
                _ => 0,
            },
        );
        gauge(
            &mut registry,
            "scanpay_printer_dropped",
            "Slips not printed because the queue was full or the printer failed",
            printer.dropped as i64,
        );
    }
    gauge(
        &mut registry,
        "scanpay_member_bindings_needing_attention",
        "Member bindings whose auth code exchange failed or whose token did not refresh, until bound again or revoked",
        journal
            .bindings_needing_attention()
            .map_err(ApiError::internal)?
            .len() as i64,
    );
    let up = Gauge::<i64>::default();
    up.set(i64::from(!s.monitor.is_offline()));
    registry.register(
        "scanpay_gateway_up",
        "1 while the gateway takes sales (reachable, answering, accepting our credentials)",
        up,
    );
    let states = Family::<StateLabel, Gauge>::default();
    let current = s.monitor.reachability();
    for state in ["unknown", "online", "offline", "not_answering", "refusing"] {
        states
            .get_or_create(&StateLabel {
                state: state.to_string(),
            })
            .set(i64::from(current.name() == state));
    }
    registry.register(
        "scanpay_gateway_state",
        "1 for the gateway's current reachability state",
        states,
    );
    if let Some(skew) = s.monitor.clock_skew_s() {
        let g = Gauge::<i64>::default();
        g.set(skew);
        registry.register(
            "scanpay_gateway_clock_skew_seconds",
            "The gateway's clock minus this machine's, from its last answer",
            g,
        );
    }
    let lost = Gauge::<i64>::default();
    lost.set(s.monitor.lost_payments() as i64);
    registry.register(
        "scanpay_gateway_lost_payments",
        "Payments whose pay answer was lost and that no inquiry or cancel has settled yet",
        lost,
    );
    registry.register(
        "scanpay_gateway_request_seconds",
        "Gateway request latency",
        s.monitor.latency(),
    );
    let certificates = s.monitor.certificates();
    if !certificates.is_empty() {
        let expiry = Family::<CertificateLabel, Gauge>::default();
        let now = chrono::Utc::now();
        for c in certificates {
            expiry
                .get_or_create(&CertificateLabel {
                    which: c.which.to_string(),
                    sn: c.sn,
                })
                .set((c.not_after - now).num_seconds());
        }
        registry.register(
            "scanpay_certificate_expiry_seconds",
            "Seconds until a certificate the gateway relies on ends (negative: ended)",
            expiry,
        );
    }
    let scanners = Family::<ScannerLabel, Gauge>::default();
    for sc in s.scanners.all() {
        scanners
            .get_or_create(&ScannerLabel { scanner: sc.name })
            .set(i64::from(sc.connected));
    }
    registry.register(
        "scanpay_scanner_connected",
        "1 while a configured scanner is connected",
        scanners,
    );
    let attention = Gauge::<i64>::default();
    attention.set(
        journal
            .attempts_needing_attention()
            .map_err(ApiError::internal)?
            .len() as i64,
    );
    registry.register(
        "scanpay_needs_attention",
        "Attempts flagged for a person",
        attention,
    );
    let connections = Gauge::<i64>::default();
    connections.set(s.connections.open() as i64);
    registry.register(
        "scanpay_api_connections",
        "API connections open (socket and TCP)",
        connections,
    );
    let limit = Gauge::<i64>::default();
    limit.set(s.connections.limit() as i64);
    registry.register(
        "scanpay_api_connection_limit",
        format!(
            "Most API connections at a time: the descriptor limit less a reserve, at most {}",
            super::conn::MAX_CONNECTIONS
        ),
        limit,
    );
    let (taken, refused_notices) = crate::gateway::notify::counts();
    let notices = Counter::<u64>::default();
    notices.inc_by(taken);
    registry.register(
        "scanpay_notifications_taken",
        "Payment notifications that verified: their payment was inquired at once",
        notices,
    );
    let notices = Counter::<u64>::default();
    notices.inc_by(refused_notices);
    registry.register(
        "scanpay_notifications_refused",
        "Payment notifications that did not verify (or named no configured gateway): nothing changed",
        notices,
    );
    let refused = Counter::<u64>::default();
    refused.inc_by(s.connections.refused());
    registry.register(
        "scanpay_api_connections_refused",
        "API connections closed unanswered because the limit was reached",
        refused,
    );
    if let Some(last) = LastRun::load(journal).ok().flatten() {
        let differences = Gauge::<i64>::default();
        differences.set(last.differences as i64);
        registry.register(
            "scanpay_reconcile_differences",
            "Trades on which the provider's record of the last reconciled day differs from the journal",
            differences,
        );
        let failed = Gauge::<i64>::default();
        failed.set(i64::from(last.error.is_some()));
        registry.register(
            "scanpay_reconcile_failed",
            "1 when the last daily reconciliation could not be made",
            failed,
        );
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
