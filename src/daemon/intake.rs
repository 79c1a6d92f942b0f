//! What comes in at the till: scans and plug/unplug news from the scanner threads, in order,
//! and (with `scanpay run --stdin`) amounts and codes as lines, the demo's protocol.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::console::{self, Line};
use crate::api::members::Members;
use crate::device::{Debounce, DeviceEvent, DeviceEventKind, Frame, ScannerStates};
use crate::engine::{Engine, SaleRequest, ScanOutcome};
use crate::events::{Event, Observer};
use crate::money::Currency;

/// Double triggers: the same code from the same scanner within this window is read once.
const DOUBLE_TRIGGER: Duration = Duration::from_millis(1500);

/// Takes scans and connect/disconnect news from the scanner threads, in order.
pub async fn scanner_loop(
    engine: &Engine,
    mut events: tokio::sync::mpsc::Receiver<DeviceEvent>,
    states: &ScannerStates,
    observer: &Arc<dyn Observer>,
    members: Option<&Members>,
    any: bool,
) {
    if !any {
        return std::future::pending().await;
    }
    let mut debounce = Debounce::new(DOUBLE_TRIGGER);
    // Scans that arrived while a payment was being charged, handled before newer ones.
    let mut queued: std::collections::VecDeque<DeviceEvent> = Default::default();
    loop {
        let (event, during_payment) = match queued.pop_front() {
            Some(event) => (event, true),
            None => match events.recv().await {
                Some(event) => (event, false),
                None => return,
            },
        };
        let scanner = event.scanner;
        match event.kind {
            DeviceEventKind::Connected { detail } => {
                tracing::info!(%scanner, %detail, "scanner connected");
                states.set(&scanner, true, &detail);
                observer.event(&crate::events::Event::ScannerConnected { scanner, detail });
            }
            DeviceEventKind::Disconnected { why } => {
                tracing::warn!(%scanner, %why, "scanner missing; retrying");
                states.set(&scanner, false, &why);
                observer.event(&crate::events::Event::ScannerDisconnected { scanner, why });
            }
            DeviceEventKind::Frame(Frame::Scan { text, symbology }) => {
                if !debounce.accept(&scanner, &text, std::time::Instant::now()) {
                    tracing::debug!(%scanner, "double trigger dropped");
                    continue;
                }
                tracing::debug!(%scanner, ?symbology, "scan");
                match member_scan(engine, members, &**observer, &text, during_payment).await {
                    Some(MemberScan::Charged) => {
                        // As after a scanned code: what queued meanwhile is not for this sale.
                        while let Ok(event) = events.try_recv() {
                            queued.push_back(event);
                        }
                        continue;
                    }
                    Some(MemberScan::Refused(why)) => {
                        tracing::info!(%scanner, %why, "member barcode refused");
                        continue;
                    }
                    None => {}
                }
                let outcome = if during_payment {
                    engine.scan_queued(&text).await
                } else {
                    engine.scan(&text).await
                };
                match outcome {
                    ScanOutcome::Refused { refusal, .. } => {
                        tracing::info!(%scanner, %refusal, "scan refused");
                    }
                    // What came in while the payment was on the wire may be meant for the
                    // next sale: never charge it to whatever sale is armed by now.
                    ScanOutcome::Attempted { .. } | ScanOutcome::Unrecorded { .. } => {
                        while let Ok(event) = events.try_recv() {
                            queued.push_back(event);
                        }
                    }
                    ScanOutcome::Barcode { .. }
                    | ScanOutcome::Garbage { .. }
                    | ScanOutcome::Tested { .. } => {}
                }
            }
            DeviceEventKind::Frame(Frame::Garbage { why, len }) => {
                tracing::warn!(%scanner, why, len, "unreadable scan dropped");
                observer.event(&crate::events::Event::Garbage { why, len });
            }
        }
    }
}

/// Takes sales and scans from stdin until it ends; a sale still waiting for a scan then
/// expires (and is printed like any finished sale).
pub async fn read_stdin(
    engine: &Engine,
    currency: Currency,
    members: Option<&Members>,
    observer: &dyn Observer,
) {
    read_lines(engine, currency, members, observer).await;
    if let Err(e) = engine.expire_armed("input ended before a payment code was scanned") {
        tracing::warn!(error = %e, "the waiting sale could not be expired");
    }
}

async fn read_lines(
    engine: &Engine,
    currency: Currency,
    members: Option<&Members>,
    observer: &dyn Observer,
) {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "stdin");
                return;
            }
        }
        match console::parse(&buf) {
            Line::Empty => {}
            Line::Quit => return,
            Line::Cancel => {
                if let Some(id) = engine.armed()
                    && let Err(e) = engine.abort(&id, "cancelled by the cashier")
                {
                    tracing::warn!(error = %e, "cannot cancel");
                }
            }
            Line::Qr => match engine.armed() {
                Some(id) => {
                    if let Err(e) = engine
                        .present(&id, crate::gateway::Presentation::OrderCode)
                        .await
                    {
                        tracing::warn!(error = %e, "no QR");
                        eprintln!("no QR: {e}");
                    }
                }
                None => eprintln!("no sale is waiting"),
            },
            Line::CustomerPaysQr => {
                eprintln!(
                    "scan-qr plays the customer in the demo only; here the customer scans the QR"
                );
            }
            Line::Bind(_) | Line::Approve | Line::Member { .. } => {
                eprintln!(
                    "bind, approve and member are the demo's; here the register binds and charges members (docs/api.md, Members)"
                );
            }
            Line::Amount(text) => {
                let amount = match console::sale_amount(&text, currency) {
                    Ok(a) => a,
                    Err(why) => {
                        eprintln!("{why}");
                        continue;
                    }
                };
                let request = SaleRequest::at_the_till(amount);
                if let Err(e) = engine.arm(request) {
                    tracing::warn!(error = %e, "sale refused");
                    eprintln!("sale refused: {e}");
                }
            }
            Line::Scan(text) => {
                match member_scan(engine, members, observer, &text, false).await {
                    Some(MemberScan::Refused(why)) => {
                        eprintln!("{why}");
                        continue;
                    }
                    Some(MemberScan::Charged) => continue,
                    None => {}
                }
                if let ScanOutcome::Refused { refusal, .. } = engine.scan(&text).await {
                    eprintln!("scan refused: {refusal}");
                }
            }
        }
    }
}

/// What became of a member's barcode.
pub enum MemberScan {
    /// Charged to the member (or tried): the sale's outcome went out as events, as a scan's.
    Charged,
    /// Not charged, and why (the cashier was told; an armed sale keeps waiting).
    Refused(String),
}

/// A member's barcode (`[members] barcode_pattern`) charges the armed sale to the member it
/// names, by the same rules as `member_id` in `POST /v1/sales` (src/api/sales.rs): over a
/// limit, or for a member who cannot be charged, the sale keeps waiting for a payment code.
/// `None` when `text` is no member barcode (a payment code never is one).
pub async fn member_scan(
    engine: &Engine,
    members: Option<&Members>,
    observer: &dyn Observer,
    text: &str,
    during_payment: bool,
) -> Option<MemberScan> {
    let members = members?;
    let id = members.config.barcode.as_ref()?.member_id(text)?;
    if engine.scan_test_armed() {
        // The operator's scan test shows it as a barcode instead.
        return None;
    }
    let shown = crate::view::mask_member_id(id);
    let refuse = |sale_id: Option<&str>, why: String| {
        if let Some(sale_id) = sale_id
            && let Err(e) = engine
                .journal()
                .note_refused_scan(sale_id, &why, chrono::Utc::now())
        {
            tracing::warn!(sale_id = %sale_id, error = %e, "the refusal could not be kept on the sale");
        }
        observer.event(&Event::ScanRefused {
            code_masked: Some(format!("member {shown}")),
            reason: why.clone(),
        });
        Some(MemberScan::Refused(why))
    };
    if during_payment {
        return refuse(
            None,
            format!(
                "not charged: member {shown} was scanned while a payment was being charged; scan it again"
            ),
        );
    }
    let Some(sale_id) = engine.armed() else {
        return refuse(
            None,
            format!("not charged: member {shown}: no sale is waiting; start the sale first"),
        );
    };
    let amount = match engine.view(&sale_id) {
        Ok(v) => v.amount,
        Err(e) => return refuse(Some(&sale_id), format!("not charged: {e}")),
    };
    let zone = engine.zone();
    let day_start = zone.day(zone.date_of(chrono::Utc::now())).0;
    let charge = match members.charge_for(id, amount, day_start) {
        Ok(Ok(charge)) => charge,
        // Over a limit: as for the register's member sale, the customer scans a code.
        Ok(Err(why)) => return refuse(Some(&sale_id), why),
        Err(e) => {
            let why = match e.code {
                "member_not_bound" => format!(
                    "not charged: member {shown} has no wallet bound: bind the wallet first, or scan the customer's payment code"
                ),
                "member_binding_expired" => format!(
                    "not charged: member {shown}'s wallet authorization has expired: bind the wallet again, or scan the customer's payment code"
                ),
                _ => format!("not charged: member {shown}: {}", e.message),
            };
            return refuse(Some(&sale_id), why);
        }
    };
    tracing::info!(sale_id = %sale_id, member = %shown, "member barcode: auto-debit");
    match engine.charge_member(&sale_id, charge).await {
        Ok(_) => Some(MemberScan::Charged),
        // Failing after its attempt was written (reading the sale back), the charge is the
        // watchdog's to settle like any in doubt, and the sale tells how it ends: not a
        // refusal.
        Err(e)
            if engine
                .view(&sale_id)
                .is_ok_and(|v| v.state != crate::state::SaleState::AwaitingScan) =>
        {
            tracing::warn!(sale_id = %sale_id, error = %e, "member auto-debit: the outcome is settled by the watchdog");
            Some(MemberScan::Charged)
        }
        Err(e) => refuse(Some(&sale_id), format!("not charged: {e}")),
    }
}
