//! Merchant-presented codes in the sandbox (docs/protocol.md §17): an order's QR or an
//! entry-code payment is a trade waiting for a customer who is not there. The admin calls
//! play that customer: scanning, paying, walking away, or paying in the moment a cancel
//! arrives. Modes switch on what the real platform is reported to do (an unscanned trade
//! that queries as "no such trade") and a customer who pays by themselves after a while.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Sandbox;
use super::ledger::{PresentedTrade, Trade, TradeState};
use crate::gateway::{Outcome, PresentRequest, Presentation, Presented};
use crate::money::breakdown::Breakdown;

/// How presented codes behave; switched by `scanpay sandbox` flags and the admin call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresentModes {
    /// Until the customer scans, queries and cancels of the trade answer "no such trade"
    /// (`ACQ.TRADE_NOT_EXIST`, AMS `ORDER_NOT_EXIST`); the cancel still closes it.
    pub not_exist_until_scanned: bool,
    /// The customer scans and pays by themselves this long after the code is issued.
    pub auto_pay_after: Option<Duration>,
}

/// What the customer does with a presented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerAction {
    /// Scans it and confirms: paid.
    Pay,
    /// Scans it and stops at the confirmation: the trade exists, unpaid.
    Scan,
    /// Scans it, and confirms in the very moment a cancel arrives (the cancel refunds it).
    PayAtCancel,
    /// Walks away without scanning: nothing happens until the code expires.
    Abandon,
}

impl CustomerAction {
    pub fn parse(s: &str) -> Option<CustomerAction> {
        Some(match s {
            "pay" => CustomerAction::Pay,
            "scan" => CustomerAction::Scan,
            "pay_at_cancel" => CustomerAction::PayAtCancel,
            "abandon" => CustomerAction::Abandon,
            _ => return None,
        })
    }
}

/// Whether the trade is one the platform would not admit to yet (unscanned, quirk on).
pub(super) fn hidden(trade: &Trade, modes: &PresentModes) -> bool {
    modes.not_exist_until_scanned
        && trade.presented.as_ref().is_some_and(|p| !p.scanned)
        && matches!(trade.state, TradeState::Waiting { .. })
}

impl Sandbox {
    pub fn present_modes(&self) -> PresentModes {
        *self.present_modes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_present_modes(&self, modes: PresentModes) {
        *self.present_modes.lock().unwrap_or_else(|e| e.into_inner()) = modes;
    }

    /// Issues a code for `request`: idempotent per request id (the same content again), a
    /// request id reused with another amount refused, as the platform does.
    pub fn decide_present(&self, request: &PresentRequest) -> Outcome<Presented> {
        let now = self.clock.now();
        let modes = self.present_modes();
        let mut ledger = self.lock();
        *ledger
            .pay_calls
            .entry(request.request_id.clone())
            .or_default() += 1;
        if let Some(trade) = ledger.trades.get(&request.request_id) {
            return match (&trade.presented, trade.amount) {
                (Some(p), Some(a)) if a == request.amount => Outcome::Success(Presented {
                    content: p.content.clone(),
                    expires_at: Some(p.expires_at),
                }),
                _ => Outcome::Failed(super::failure(
                    "CONTEXT_INCONSISTENT",
                    "request id reused with other parameters",
                )),
            };
        }
        ledger.next_trade += 1;
        let trade_no = format!("SBX{}{:08}", now.format("%Y%m%d"), ledger.next_trade);
        let content = match &request.how {
            // The shape of the platform's: a short URL the wallet opens.
            Presentation::OrderCode => {
                format!("https://qr.alipay.com/sbx{}", trade_no.to_lowercase())
            }
            Presentation::EntryCode { .. } => format!(
                "https://sandbox.scanpay.invalid/entry/{}?amount={}",
                trade_no.to_lowercase(),
                request.amount.to_major_string()
            ),
        };
        let expires_at =
            now + chrono::Duration::from_std(request.expires_in).unwrap_or(chrono::TimeDelta::MAX);
        let pays_at = modes
            .auto_pay_after
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d);
        ledger.trades.insert(
            request.request_id.clone(),
            Trade {
                trade_no,
                code: String::new(),
                amount: Some(request.amount),
                state: TradeState::Waiting {
                    pays_at,
                    pays_at_cancel: false,
                    revokes_at: None,
                },
                refunds: BTreeMap::new(),
                subject: request.subject.clone(),
                paid_at: None,
                reversed_at: None,
                frozen: false,
                money: Breakdown::default(),
                basket: request.basket.clone(),
                service_provider: None,
                presented: Some(PresentedTrade {
                    content: content.clone(),
                    expires_at,
                    scanned: false,
                }),
            },
        );
        Outcome::Success(Presented {
            content,
            expires_at: Some(expires_at),
        })
    }

    /// A member's auto-debit under `request_id`: charged at once, idempotent per request id
    /// (the same answer again), another amount under the same id refused.
    pub fn decide_agreement(
        &self,
        request_id: &str,
        amount: crate::money::Amount,
        subject: &str,
    ) -> Outcome<crate::gateway::Paid> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        *ledger.pay_calls.entry(request_id.to_string()).or_default() += 1;
        if let Some(trade) = ledger.trades.get(request_id) {
            return match (trade.amount, &trade.state) {
                (Some(a), TradeState::Paid) if a == amount => {
                    Outcome::Success(crate::gateway::Paid {
                        trade_id: trade.trade_no.clone(),
                        amount: Some(a),
                        money: Breakdown::default(),
                    })
                }
                (Some(a), _) if a == amount => {
                    Outcome::Failed(super::failure("TRADE_HAS_CLOSE", "trade closed"))
                }
                _ => Outcome::Failed(super::failure(
                    "CONTEXT_INCONSISTENT",
                    "request id reused with other parameters",
                )),
            };
        }
        ledger.next_trade += 1;
        let trade_no = format!("SBX{}{:08}", now.format("%Y%m%d"), ledger.next_trade);
        ledger.trades.insert(
            request_id.to_string(),
            Trade {
                trade_no: trade_no.clone(),
                code: String::new(),
                amount: Some(amount),
                state: TradeState::Paid,
                refunds: BTreeMap::new(),
                subject: subject.to_string(),
                paid_at: Some(now),
                reversed_at: None,
                frozen: false,
                money: Breakdown::default(),
                basket: Default::default(),
                service_provider: None,
                presented: None,
            },
        );
        Outcome::Success(crate::gateway::Paid {
            trade_id: trade_no,
            amount: Some(amount),
            money: Breakdown::default(),
        })
    }

    /// Plays the customer on the presented code `key` names (its content, or its request
    /// id). Returns the request id, or why nothing was done.
    pub fn customer(&self, key: &str, action: CustomerAction) -> Result<String, String> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        let Some((request_id, trade)) = ledger.trades.iter_mut().find(|(id, t)| {
            id.as_str() == key || t.presented.as_ref().is_some_and(|p| p.content == key)
        }) else {
            return Err(format!("no presented code {key:?}"));
        };
        super::settle(trade, now);
        let Some(p) = trade.presented.as_mut() else {
            return Err(format!("{request_id} is not a presented code"));
        };
        if !matches!(trade.state, TradeState::Waiting { .. }) {
            return Err(format!(
                "the code of {request_id} is no longer open (closed, expired or paid)"
            ));
        }
        match action {
            CustomerAction::Abandon => {}
            CustomerAction::Scan => p.scanned = true,
            CustomerAction::Pay => {
                p.scanned = true;
                trade.state = TradeState::Paid;
                trade.paid_at = Some(now);
            }
            CustomerAction::PayAtCancel => {
                p.scanned = true;
                trade.state = TradeState::Waiting {
                    pays_at: None,
                    pays_at_cancel: true,
                    revokes_at: None,
                };
            }
        }
        Ok(request_id.clone())
    }
}
