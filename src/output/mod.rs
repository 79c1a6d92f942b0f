//! What the cashier and the customer see: the status LED pattern and the receipt.
//! Backends (sysfs LEDs, ESC/POS printers) plug in behind the [`Observer`](crate::events::Observer)
//! seam; the terminal backend renders both for the demo.

pub mod escpos;
pub mod labels;
pub mod layout;
pub mod led;
pub mod printer;
pub mod qr;
pub mod receipt;
pub mod terminal;

use std::sync::Arc;

use crate::events::{Event, Observer};
use crate::state::SaleState;

use led::LedConfig;
use printer::PrinterConfig;

/// Starts the configured outputs: the observers that show the LED pattern and print
/// receipts, and the printer queue (for health and flushing).
pub fn start(
    led: &LedConfig,
    printer: Option<PrinterConfig>,
    terminal_id: &str,
    zone: crate::clock::StoreZone,
) -> (Vec<Arc<dyn Observer>>, Option<Arc<printer::PrinterQueue>>) {
    let mut observers: Vec<Arc<dyn Observer>> = Vec::new();
    match led {
        LedConfig::None => {}
        LedConfig::Terminal => observers.push(Arc::new(terminal::TerminalOutput::new(
            Box::new(std::io::stderr()),
            false,
            terminal_id,
            zone,
        ))),
        LedConfig::Sysfs(leds) => observers.push(Arc::new(led::SysfsLed::new(leds.clone()))),
    }
    let printer = printer.map(printer::PrinterQueue::start);
    if let Some(p) = &printer {
        observers.push(p.clone());
    }
    (observers, printer)
}

/// The documented LED patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedPattern {
    Idle,
    /// A sale is waiting for a payment code.
    Armed,
    /// A pay request or inquiry is on the wire.
    Processing,
    /// The customer is confirming in the wallet.
    CustomerConfirming,
    Paid,
    Failed,
    /// Something needs a person (a cancel refused, a journal problem).
    NeedsAttention,
    /// The gateway cannot be reached: sales are refused.
    Offline,
    /// A configured scanner is unplugged or not found.
    ScannerMissing,
    /// A payment code was scanned but not taken (no sale waiting, code already used).
    ScanRefused,
}

impl LedPattern {
    /// Every pattern, in the order the operator's LED test shows them.
    pub const ALL: &'static [LedPattern] = &[
        LedPattern::Idle,
        LedPattern::Armed,
        LedPattern::Processing,
        LedPattern::CustomerConfirming,
        LedPattern::Paid,
        LedPattern::Failed,
        LedPattern::NeedsAttention,
        LedPattern::Offline,
        LedPattern::ScannerMissing,
        LedPattern::ScanRefused,
    ];

    /// The pattern an event switches to, if it changes the LED at all.
    pub fn for_event(event: &Event) -> Option<LedPattern> {
        Some(match event {
            Event::SaleArmed { .. } => LedPattern::Armed,
            Event::AttemptSent { .. } | Event::InDoubt { .. } | Event::Cancelling { .. } => {
                LedPattern::Processing
            }
            Event::CustomerConfirming { .. } | Event::QrPresented { .. } => {
                LedPattern::CustomerConfirming
            }
            Event::NeedsAttention { .. } | Event::ReconciliationMismatch { .. } => {
                LedPattern::NeedsAttention
            }
            Event::SaleFinished { sale } => match sale.state {
                SaleState::Paid => LedPattern::Paid,
                SaleState::AwaitingScan => LedPattern::Armed,
                SaleState::Processing => LedPattern::Processing,
                SaleState::AwaitingPayment => LedPattern::CustomerConfirming,
                SaleState::Failed | SaleState::Cancelled | SaleState::Expired => LedPattern::Failed,
            },
            Event::GatewayOffline { .. } => LedPattern::Offline,
            Event::ClockSkew { off: true, .. } | Event::CertificateExpiring { .. } => {
                LedPattern::NeedsAttention
            }
            Event::ClockSkew { off: false, .. } => LedPattern::Idle,
            Event::ScannerDisconnected { .. } => LedPattern::ScannerMissing,
            Event::ScannerConnected { .. } => LedPattern::Idle,
            Event::GatewayOnline => LedPattern::Idle,
            // A payment code that was not taken (no sale waiting, code reused): a hint.
            Event::ScanRefused { .. } => LedPattern::ScanRefused,
            Event::Barcode { .. }
            | Event::Garbage { .. }
            | Event::Refund { .. }
            | Event::OperatorAction { .. }
            | Event::MemberBindingStarted { .. }
            | Event::MemberBinding { .. }
            | Event::ScanTest { .. } => {
                return None;
            }
        })
    }

    pub fn describe(&self) -> &'static str {
        match self {
            LedPattern::Idle => "idle",
            LedPattern::Armed => "blue, steady: waiting for the payment code",
            LedPattern::Processing => "yellow, blinking: payment in progress",
            LedPattern::CustomerConfirming => {
                "yellow, slow blink: customer confirming in the wallet"
            }
            LedPattern::Paid => "green: paid",
            LedPattern::Failed => "red: not paid",
            LedPattern::NeedsAttention => "red, fast blink: needs attention",
            LedPattern::Offline => "yellow and red alternating: gateway offline, no sales",
            LedPattern::ScannerMissing => "red, slow blink: a scanner is unplugged",
            LedPattern::ScanRefused => "red, one short flash: that scan was not taken",
        }
    }
}
