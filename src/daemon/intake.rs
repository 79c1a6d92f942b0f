//! What comes in at the till: scans and plug/unplug news from the scanner threads, in order,
//! and (with `scanpay run --stdin`) amounts and codes as lines, the demo's protocol.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::console::{self, Line};
use crate::device::{Debounce, DeviceEvent, DeviceEventKind, Frame, ScannerStates};
use crate::engine::{Engine, SaleRequest, ScanOutcome};
use crate::events::Observer;
use crate::money::Currency;

/// Double triggers: the same code from the same scanner within this window is read once.
const DOUBLE_TRIGGER: Duration = Duration::from_millis(1500);

/// Takes scans and connect/disconnect news from the scanner threads, in order.
pub async fn scanner_loop(
    engine: &Engine,
    mut events: tokio::sync::mpsc::Receiver<DeviceEvent>,
    states: &ScannerStates,
    observer: &Arc<dyn Observer>,
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
pub async fn read_stdin(engine: &Engine, currency: Currency) {
    read_lines(engine, currency).await;
    if let Err(e) = engine.expire_armed("input ended before a payment code was scanned") {
        tracing::warn!(error = %e, "the waiting sale could not be expired");
    }
}

async fn read_lines(engine: &Engine, currency: Currency) {
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
                if let ScanOutcome::Refused { refusal, .. } = engine.scan(&text).await {
                    eprintln!("scan refused: {refusal}");
                }
            }
        }
    }
}
