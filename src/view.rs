//! A sale as the outside world sees it, whole: its attempts and refunds, with typed amounts
//! and times, and codes masked only. Receipts, the LED, the demo and the register's answers
//! all start here; the register's JSON shape of it lives in `api/wire.rs`.

use chrono::{DateTime, Utc};

use crate::journal::{AttemptRow, RefundRow, SaleRow};
use crate::money::Amount;
use crate::money::breakdown::Breakdown;
use crate::paycode::Wallet;
use crate::state::{AttemptState, RefundState, SaleState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleView {
    pub sale_id: String,
    pub state: SaleState,
    pub amount: Amount,
    pub reference: Option<String>,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: Vec<AttemptView>,
    /// Refunds of a paid sale, oldest first.
    pub refunds: Vec<RefundView>,
    /// Why the sale is not paid (result code and message), when it is not.
    pub reason: Option<String>,
    /// What the cashier should read.
    pub message: Option<String>,
    /// The sale the register created for the same reference while this one was in doubt
    /// (`"supersede": true`): this one is cancelled, and reversed if it was paid.
    pub superseded_by: Option<String>,
    /// The campaign fields the register gave (discountable parts, goods, cashier).
    pub basket: crate::money::basket::Basket,
    /// The code shown for the customer to scan, while it waits for them.
    pub qr: Option<QrView>,
}

/// A presented code waiting for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrView {
    pub request_id: String,
    pub method: crate::paycode::PayMethod,
    /// What the customer scans (or, for an entry code, the page they are sent to).
    pub content: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView {
    pub request_id: String,
    pub state: AttemptState,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    /// The payment code, masked.
    pub code: String,
    pub wallet: Wallet,
    pub gateway: String,
    pub gateway_trade_id: Option<String>,
    /// The customer paid after the deadline and the cancel refunded it.
    pub paid_then_refunded: bool,
    pub needs_attention: Option<String>,
    pub inquiries: u32,
    pub cancels: u32,
    pub created_at: DateTime<Utc>,
    /// When the watchdog stops inquiring and cancels, if it has not ended by then.
    pub deadline_at: DateTime<Utc>,
    /// The merchant key its pay request was signed with.
    pub signing_key: Option<String>,
    /// What the provider said moved besides the order amount, when paid.
    pub money: Breakdown,
    /// Scanned, or a code the merchant presented.
    pub method: crate::paycode::PayMethod,
}

impl SaleView {
    pub fn new(sale: &SaleRow, attempts: &[AttemptRow]) -> SaleView {
        let qr = attempts
            .iter()
            .find(|a| a.awaiting_customer())
            .and_then(|a| {
                Some(QrView {
                    request_id: a.request_id.clone(),
                    method: a.method,
                    content: a.presented.clone()?,
                    expires_at: a.presented_expires_at.unwrap_or(a.deadline_at),
                })
            });
        // Waiting for the customer to pay the shown code, unless a scanned code is being
        // charged beside it.
        let scanned_open = attempts
            .iter()
            .any(|a| !a.method.presented() && !a.state.is_final());
        let state = match sale.state {
            SaleState::Processing if qr.is_some() && !scanned_open => SaleState::AwaitingPayment,
            s => s,
        };
        SaleView {
            qr,
            sale_id: sale.id.clone(),
            state,
            amount: sale.amount,
            reference: sale.reference.clone(),
            subject: sale.subject.clone(),
            created_at: sale.created_at,
            updated_at: sale.updated_at,
            attempts: attempts.iter().map(AttemptView::new).collect(),
            refunds: Vec::new(),
            reason: sale.reason.clone(),
            message: Some(
                sale.message
                    .clone()
                    .unwrap_or_else(|| state.cashier_default().to_string()),
            ),
            superseded_by: sale.superseded_by.clone(),
            basket: sale.basket.clone(),
        }
    }

    pub fn with_refunds(mut self, refunds: &[RefundRow]) -> SaleView {
        self.refunds = refunds.iter().map(RefundView::new).collect();
        self
    }

    /// Whether the customer paid after the deadline and the cancel gave the money back.
    pub fn reversed(&self) -> bool {
        self.attempts.iter().any(|a| a.paid_then_refunded)
    }
}

impl AttemptView {
    pub fn new(a: &AttemptRow) -> AttemptView {
        AttemptView {
            request_id: a.request_id.clone(),
            state: a.state,
            result_code: a.result_code.clone(),
            result_message: a.result_message.clone(),
            code: a.code_masked.clone(),
            wallet: a.wallet,
            gateway: a.gateway.clone(),
            gateway_trade_id: a.gateway_trade_id.clone(),
            paid_then_refunded: a.paid_then_refunded,
            needs_attention: a.needs_attention.clone(),
            inquiries: a.inquiries,
            cancels: a.cancels,
            created_at: a.created_at,
            deadline_at: a.deadline_at,
            signing_key: a.signing_key.clone(),
            money: a.money.clone(),
            method: a.method,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundView {
    pub sale_id: String,
    pub refund_id: String,
    pub state: RefundState,
    pub amount: Amount,
    pub reason: Option<String>,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub gateway_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl RefundView {
    pub fn new(r: &RefundRow) -> RefundView {
        RefundView {
            sale_id: r.sale_id.clone(),
            refund_id: r.request_id.clone(),
            state: r.state,
            amount: r.amount,
            reason: r.reason.clone(),
            result_code: r.result_code.clone(),
            result_message: r.result_message.clone(),
            gateway_refund_id: r.gateway_refund_id.clone(),
            created_at: r.created_at,
        }
    }
}

/// A member id as receipts and the cashier's messages show it: the last 4 characters kept
/// (`****0042`), all masked when shorter than 6.
pub fn mask_member_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 6 {
        return "*".repeat(chars.len());
    }
    let keep = chars.len() - 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i >= keep { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod member_id_tests {
    use super::*;

    #[test]
    fn member_ids_are_masked_but_their_last_four() {
        assert_eq!(mask_member_id("M00000042"), "*****0042");
        assert_eq!(mask_member_id("M7"), "**");
    }
}
