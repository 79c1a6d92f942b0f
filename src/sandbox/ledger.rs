//! The sandbox's ledger: each request id's trade, its state and the money it moved, and the
//! entries a test or an operator reads from it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::money::Amount;
use crate::money::basket::Basket;
use crate::money::breakdown::Breakdown;

/// Where a trade stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TradeState {
    /// Waiting for the customer; pays at `pays_at` if set, or when a cancel arrives.
    Waiting {
        pays_at: Option<DateTime<Utc>>,
        pays_at_cancel: bool,
        /// WeChat Pay revokes an unpaid code-pay order on its own at this moment (45 s).
        revokes_at: Option<DateTime<Utc>>,
    },
    Paid,
    /// Closed unpaid (by cancel or failure).
    Closed {
        code: String,
    },
    /// Paid, then refunded in full by a cancel.
    CancelledRefunded,
    /// Never created: a cancel came for an id no pay created. Closed for good.
    NeverCreated,
}

/// What the sandbox knows of one request id.
#[derive(Debug, Clone)]
pub(super) struct Trade {
    pub(super) trade_no: String,
    pub(super) code: String,
    pub(super) amount: Option<Amount>,
    pub(super) state: TradeState,
    /// Partial refunds by refund id, with when they were made.
    pub(super) refunds: BTreeMap<String, (Amount, DateTime<Utc>)>,
    pub(super) subject: String,
    /// When the customer paid, and when a cancel gave it back.
    pub(super) paid_at: Option<DateTime<Utc>>,
    pub(super) reversed_at: Option<DateTime<Utc>>,
    /// Frozen by risk control: cancels are refused until the admin call unfreezes it.
    pub(super) frozen: bool,
    /// What the sandbox states moved when the trade is paid (received, vouchers, funds).
    pub(super) money: Breakdown,
    /// The campaign fields its pay request carried.
    pub(super) basket: Basket,
    /// `extend_params.sys_service_provider_id` of its pay request (Open Platform).
    pub(super) service_provider: Option<String>,
    /// A merchant-presented code: what the customer scans, and whether they have.
    pub(super) presented: Option<PresentedTrade>,
}

/// A code the sandbox issued for the customer to scan.
#[derive(Debug, Clone)]
pub(super) struct PresentedTrade {
    pub(super) content: String,
    pub(super) expires_at: DateTime<Utc>,
    /// The customer has scanned it (the trade exists for the platform from then on).
    pub(super) scanned: bool,
}

/// Money moved for one request id, as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerEntry {
    pub request_id: String,
    pub trade_no: String,
    /// Minor units charged to the customer (0 if never paid).
    pub charged_minor: i64,
    /// Minor units given back (cancel refund or refunds).
    pub refunded_minor: i64,
    pub state: &'static str,
    /// What the pay request said of the basket, as the sandbox read it off the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub goods: Vec<SeenGoods>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undiscountable_minor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sys_service_provider_id: Option<String>,
}

/// One goods line a pay request named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeenGoods {
    pub goods_id: String,
    pub quantity: u32,
    pub price_minor: i64,
}

impl LedgerEntry {
    /// What the customer is out of pocket for this request id.
    pub fn net_minor(&self) -> i64 {
        self.charged_minor - self.refunded_minor
    }
}

/// Every trade, and the codes they used.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) trades: BTreeMap<String, Trade>,
    /// code -> request id that used it.
    pub(super) codes: BTreeMap<String, String>,
    pub(super) next_trade: u64,
    /// Number of pay requests received, per request id (to check retries).
    pub(super) pay_calls: BTreeMap<String, u32>,
}

/// Lets time act on a trade: a customer confirming pays when the moment comes; a presented
/// code nobody paid closes at its expiry.
pub(super) fn settle(trade: &mut Trade, now: DateTime<Utc>) {
    if let Some(p) = &mut trade.presented
        && let TradeState::Waiting { pays_at, .. } = trade.state
    {
        if pays_at.is_some_and(|at| at <= now && at < p.expires_at) {
            p.scanned = true;
        } else if now >= p.expires_at {
            trade.state = TradeState::Closed {
                code: "TRADE_CLOSED".to_string(),
            };
            return;
        }
    }
    let TradeState::Waiting {
        pays_at,
        revokes_at,
        ..
    } = trade.state
    else {
        return;
    };
    match (pays_at, revokes_at) {
        (Some(at), revoke) if now >= at && revoke.is_none_or(|r| at < r) => {
            trade.state = TradeState::Paid;
            trade.paid_at = Some(at);
        }
        (_, Some(at)) if now >= at => {
            trade.state = TradeState::Closed {
                code: REVOKED.to_string(),
            };
        }
        _ => {}
    }
}

/// The closing code of a WeChat Pay order revoked for want of payment.
pub(super) const REVOKED: &str = "REVOKED";

/// The ledger entry of a trade: what it charged and gave back.
pub(super) fn entry(request_id: &str, trade: &Trade) -> LedgerEntry {
    let amount = trade.amount.map(|a| a.minor()).unwrap_or(0);
    let refunds: i64 = trade.refunds.values().map(|(a, _)| a.minor()).sum();
    let (charged, refunded, state) = match trade.state {
        TradeState::Waiting { .. } => (0, 0, "waiting"),
        TradeState::Paid => (amount, refunds, "paid"),
        TradeState::Closed { .. } => (0, 0, "closed"),
        TradeState::NeverCreated => (0, 0, "never_created"),
        TradeState::CancelledRefunded => (amount, amount, "cancelled_refunded"),
    };
    LedgerEntry {
        request_id: request_id.to_string(),
        trade_no: trade.trade_no.clone(),
        charged_minor: charged,
        refunded_minor: refunded,
        state,
        operator_id: trade.basket.operator_id.clone(),
        goods: trade
            .basket
            .goods
            .iter()
            .map(|g| SeenGoods {
                goods_id: g.id.clone(),
                quantity: g.quantity,
                price_minor: g.price.minor(),
            })
            .collect(),
        undiscountable_minor: trade.basket.undiscountable.map(|a| a.minor()),
        sys_service_provider_id: trade.service_provider.clone(),
    }
}
