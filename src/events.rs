//! What the engine tells the outside world (LED, receipt, register, logs) as it works.
//! One trait, [`Observer`]; outputs implement it and never block the engine.

use crate::paycode::BarcodeKind;
use crate::view::SaleView;

#[derive(Debug, Clone)]
pub enum Event {
    SaleArmed {
        sale: SaleView,
    },
    /// A scan that is not a payment code, for the register (a shared scanner reads products).
    Barcode {
        text: String,
        kind: BarcodeKind,
    },
    /// A scan that is not even a barcode: dropped.
    Garbage {
        why: &'static str,
        len: usize,
    },
    /// A payment code that was not charged, with the reason the cashier should read.
    ScanRefused {
        code_masked: Option<String>,
        reason: String,
    },
    AttemptSent {
        sale_id: String,
        request_id: String,
        code_masked: String,
    },
    /// A code the customer scans is shown for the sale (an order's QR), or the page an entry
    /// code opened is sent to the wallet: waiting for the customer to pay.
    QrPresented {
        sale_id: String,
        request_id: String,
        /// `order_code` or `entry_code`.
        method: &'static str,
        /// What the customer scans (or the page they are sent to).
        content: String,
        amount: crate::money::Amount,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The customer is confirming in the wallet (password, limit check).
    CustomerConfirming {
        sale_id: String,
        request_id: String,
    },
    /// No clear answer: inquiring.
    InDoubt {
        sale_id: String,
        request_id: String,
        why: String,
    },
    /// Past the deadline: reversing the payment.
    Cancelling {
        sale_id: String,
        request_id: String,
    },
    /// A cancel keeps failing in a way that needs a person.
    NeedsAttention {
        sale_id: String,
        request_id: String,
        why: String,
    },
    SaleFinished {
        sale: SaleView,
    },
    /// The gateway answers again.
    GatewayOnline,
    /// The gateway cannot be reached: new sales are refused until it answers.
    GatewayOffline {
        why: String,
    },
    /// A refund changed state.
    Refund {
        refund: crate::view::RefundView,
    },
    ScannerConnected {
        scanner: String,
        detail: String,
    },
    /// Unplugged or not found: scanpay keeps trying to reopen it.
    ScannerDisconnected {
        scanner: String,
        why: String,
    },
    /// This machine's clock is off the gateway's by more than the warning line (or is back
    /// within it, `skew_s` then small).
    ClockSkew {
        skew_s: i64,
        /// Whether it is off now.
        off: bool,
    },
    /// A certificate the gateway client relies on ends within 30 days (told once per
    /// certificate while the daemon runs).
    CertificateExpiring {
        which: &'static str,
        sn: String,
        days_left: i64,
    },
    /// The daily reconciliation found trades on which the provider and the journal differ.
    ReconciliationMismatch {
        date: String,
        differences: usize,
        /// Differences where the provider kept money for a sale the journal has as not paid.
        paid_only_at_provider: usize,
    },
    /// The operator's scan test took this scan: shown, never charged. `text` is masked as
    /// everywhere (a payment code shows its wallet and ends).
    ScanTest {
        text: String,
        kind: String,
    },
    /// A member's wallet binding was started: the customer scans `auth_url` with the wallet
    /// and approves (shown on the customer display, printed as a slip, drawn by the demo).
    /// The URL is no secret, but only the display, the slip and the register need it.
    MemberBindingStarted {
        member_id: String,
        /// The wallet's code as Antom names it, e.g. `ALIPAY_CN`.
        wallet: String,
        auth_url: String,
    },
    /// An operator did something through the API or the console (a test print): who, what,
    /// and how it went. Journaled with the other events.
    OperatorAction {
        actor: String,
        action: &'static str,
        result: String,
    },
    /// A member's auto-debit binding changed (`api/members.rs`). Never a token or an auth
    /// code: the member, the wallet, the binding's state and, for a failure, why.
    MemberBinding {
        signal: MemberSignal,
        member_id: String,
        wallet: String,
        state: &'static str,
        reason: Option<String>,
    },
}

/// What happened to a member's binding; each is its own event on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSignal {
    Bound,
    Refreshed,
    RefreshFailed,
    Failed,
    Revoked,
}

impl MemberSignal {
    /// The event's name on the stream.
    pub fn kind(self) -> &'static str {
        match self {
            MemberSignal::Bound => "member_binding_bound",
            MemberSignal::Refreshed => "member_binding_refreshed",
            MemberSignal::RefreshFailed => "member_binding_refresh_failed",
            MemberSignal::Failed => "member_binding_failed",
            MemberSignal::Revoked => "member_binding_revoked",
        }
    }

    /// Whether a person must look (cleared when the member binds again or is revoked).
    pub fn needs_attention(self) -> bool {
        matches!(self, MemberSignal::RefreshFailed | MemberSignal::Failed)
    }
}

impl Event {
    /// The sale the event is about, if any.
    pub fn sale_id(&self) -> Option<&str> {
        match self {
            Event::SaleArmed { sale } | Event::SaleFinished { sale } => Some(&sale.sale_id),
            Event::AttemptSent { sale_id, .. }
            | Event::CustomerConfirming { sale_id, .. }
            | Event::InDoubt { sale_id, .. }
            | Event::Cancelling { sale_id, .. }
            | Event::NeedsAttention { sale_id, .. } => Some(sale_id),
            Event::Refund { refund } => Some(&refund.sale_id),
            _ => None,
        }
    }
}

pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}

/// Logs every event through `tracing` and nothing else.
pub struct LogObserver;

impl Observer for LogObserver {
    fn event(&self, event: &Event) {
        match event {
            Event::SaleFinished { sale } => {
                tracing::info!(sale_id = %sale.sale_id, sale_state = %sale.state, "sale finished")
            }
            Event::NeedsAttention {
                request_id, why, ..
            } => {
                tracing::error!(request_id = %request_id, why = %why, "needs attention")
            }
            other => tracing::debug!(event = ?other, "event"),
        }
    }
}

/// Several observers as one.
pub struct Fanout(pub Vec<std::sync::Arc<dyn Observer>>);

impl Observer for Fanout {
    fn event(&self, event: &Event) {
        for o in &self.0 {
            o.event(event);
        }
    }
}
