//! The sandbox gateway: a payment provider's test mode, deciding each payment by the last
//! two digits of the scanned code, and keeping a ledger of the money it moved so a test can
//! check at the end that money moved exactly as the journal says.
//!
//! | ending | behaviour |
//! |---|---|
//! | `00` | success |
//! | `01` | insufficient balance (failed, not charged) |
//! | `02` | expired code (failed, not charged) |
//! | `03` | customer must confirm with password; pays ~3 s after the request |
//! | `04` | customer must confirm; never pays |
//! | `05` | answers "unknown", but the charge went through |
//! | `06` | answers after 20 s; the charge went through |
//! | `07` | connection dropped after charging |
//! | `08` | answer with a bad signature; the charge went through |
//! | `09` | risk reject (failed, not charged) |
//! | `10` | answers "unknown" and never creates the payment (not charged) |
//! | `11` | connection reset before the payment is created (not charged) |
//! | `12` | answers `40004 aop.ACQ.SYSTEM_ERROR` (AMS: `F SYSTEM_ERROR`), but the charge went through |
//! | `13` | customer must confirm; pays the moment the cancel arrives (the cancel refunds it) |
//! | `16` | success with a merchant-funded voucher of 2.00 (the store receives 2.00 less) |
//! | `17` | success with a platform-funded voucher of 1.00 (the buyer pays 1.00 less) |
//! | other | success, as `00` |
//!
//! A cancel of a request id the sandbox never created answers "no such payment", as the
//! providers do; the id stays closed, so a pay arriving later is refused. Requests from a
//! wrong app id, client id or key are refused at the door, unsigned (the HTTP servers).
//!
//! Like the real providers it is idempotent per request id, refuses a code already used
//! under another request id, and a cancel closes the request id for good.
//!
//! Here: the decisions by the code table ([`scenario()`]), booked on the `ledger`, and the
//! in-process gateway. Over HTTP (`scanpay sandbox`): `http` routes each request, `openapi`
//! and `ams` translate their protocol to and from these decisions (`form` reads the Open
//! Platform's forms), `bill` serves the day's trade bill, `server` holds what they share;
//! `keys` and `client` are the keys the sandbox signs with and the client configurations it
//! writes; `cert` its Open Platform certificate mode (root CA, certificates, rotation).

mod ams;
mod authorizations;
mod bill;
mod cert;
mod client;
mod form;
mod http;
mod keys;
mod ledger;
mod notify;
mod openapi;
mod presented;
mod scenario;
mod server;
mod wechat;

pub use cert::{CertFiles, CertMode, ROTATE_PATH};
pub use client::{ams_client_config, cert_client_config, client_config, dual_client_config};
pub use keys::{
    SandboxKeys, WECHAT_APPID, WECHAT_MCHID, WECHAT_MERCHANT_SERIAL, WECHAT_PUBLIC_KEY_ID,
    WechatKeys,
};
pub use ledger::LedgerEntry;
pub use openapi::BILL_METHOD;
pub use presented::{CustomerAction, PresentModes};
pub use scenario::{CONFIRM_DELAY, SLOW_ANSWER, Scenario, is_wechat_code, scenario};
pub use server::{DEFAULT_APP_ID, DEFAULT_CLIENT_ID, SandboxServer};
pub use wechat::{WECHAT_AUTO_REVOKE, WechatModes};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::gateway::{
    Cancelled, Failure, Gateway, Outcome, Paid, PayRequest, RefundRequest, Refunded, TradeStatus,
    Unknown, UnknownKind,
};
use crate::money::Amount;
use crate::money::breakdown::Breakdown;
use crate::paycode::Wallet;
use ledger::{Ledger, Trade, TradeState, entry, settle};

/// The in-process sandbox gateway.
pub struct Sandbox {
    ledger: Mutex<Ledger>,
    clock: Arc<dyn Clock>,
    /// How merchant-presented codes behave (the platform's "not exist until scanned", a
    /// customer who pays on their own after a while).
    present_modes: Mutex<PresentModes>,
}

impl Sandbox {
    pub fn new(clock: Arc<dyn Clock>) -> Sandbox {
        Sandbox {
            ledger: Mutex::new(Ledger::default()),
            clock,
            present_modes: Mutex::new(PresentModes::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lifts risk control's freeze of the trade under `request_id` (code `15`): its next
    /// cancel goes through. False when there is no such trade.
    pub fn unfreeze(&self, request_id: &str) -> bool {
        match self.lock().trades.get_mut(request_id) {
            Some(t) => {
                t.frozen = false;
                true
            }
            None => false,
        }
    }

    /// The ledger: one entry per request id the sandbox has seen.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        ledger
            .trades
            .iter_mut()
            .map(|(request_id, trade)| {
                settle(trade, now);
                entry(request_id, trade)
            })
            .collect()
    }

    /// The sandbox's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The amount of refund `refund_id` of the payment `request_id`, if it was made.
    pub fn refunded(&self, request_id: &str, refund_id: &str) -> Option<Amount> {
        let ledger = self.lock();
        ledger
            .trades
            .get(request_id)?
            .refunds
            .get(refund_id)
            .map(|(amount, _)| *amount)
    }

    /// The request id a trade number belongs to.
    pub fn request_id_of_trade(&self, trade_no: &str) -> Option<String> {
        let ledger = self.lock();
        ledger
            .trades
            .iter()
            .find(|(_, t)| t.trade_no == trade_no)
            .map(|(id, _)| id.clone())
    }

    /// The payment a refund id belongs to, and the refund's amount.
    pub fn find_refund(&self, refund_id: &str) -> Option<(String, String, Amount)> {
        let ledger = self.lock();
        ledger.trades.iter().find_map(|(id, t)| {
            t.refunds
                .get(refund_id)
                .map(|(a, _)| (id.clone(), t.trade_no.clone(), *a))
        })
    }

    /// Whether a cancel of `request_id` now finds the customer still confirming (one who
    /// does not pay the moment the cancel arrives): WeChat Pay refuses to reverse then.
    pub fn still_confirming(&self, request_id: &str) -> bool {
        let now = self.clock.now();
        let mut ledger = self.lock();
        let Some(trade) = ledger.trades.get_mut(request_id) else {
            return false;
        };
        settle(trade, now);
        matches!(
            trade.state,
            TradeState::Waiting {
                pays_at_cancel: false,
                ..
            }
        )
    }

    /// When `request_id` was paid, if it was.
    pub fn paid_at(&self, request_id: &str) -> Option<DateTime<Utc>> {
        self.lock().trades.get(request_id)?.paid_at
    }

    /// When refund `refund_id` of `request_id` was made, if it was.
    pub fn refund_made_at(&self, request_id: &str, refund_id: &str) -> Option<DateTime<Utc>> {
        let ledger = self.lock();
        ledger
            .trades
            .get(request_id)?
            .refunds
            .get(refund_id)
            .map(|(_, at)| *at)
    }

    /// Notes the service provider id the pay request under `request_id` named, on its trade.
    pub fn note_service_provider(&self, request_id: &str, id: &str) {
        if let Some(t) = self.lock().trades.get_mut(request_id) {
            t.service_provider = Some(id.to_string());
        }
    }

    /// How many pay requests arrived under `request_id`.
    pub fn pay_calls(&self, request_id: &str) -> u32 {
        self.lock().pay_calls.get(request_id).copied().unwrap_or(0)
    }

    /// [`Sandbox::decide_pay`], answered once its delay has passed: every way into the
    /// sandbox plays a slow code out alike.
    pub async fn pay_after_delay(&self, request: &PayRequest) -> Outcome<Paid> {
        let (outcome, delay) = self.decide_pay(request);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        outcome
    }

    /// Decides a pay request and books its effect on the ledger; the second value is the
    /// delay before answering. The HTTP sandbox turns the outcome into its wire form.
    pub fn decide_pay(&self, request: &PayRequest) -> (Outcome<Paid>, Duration) {
        let now = self.clock.now();
        let code = request.code.expose();
        let mut ledger = self.lock();
        *ledger
            .pay_calls
            .entry(request.request_id.clone())
            .or_default() += 1;

        if let Some(trade) = ledger.trades.get_mut(&request.request_id) {
            // Same request id again: idempotent, answer with the trade's current state.
            if trade.code != code || trade.amount.is_some_and(|a| a != request.amount) {
                return (
                    Outcome::Failed(failure(
                        "CONTEXT_INCONSISTENT",
                        "request id reused with other parameters",
                    )),
                    Duration::ZERO,
                );
            }
            settle(trade, now);
            return (answer_for(trade), Duration::ZERO);
        }
        if let Some(previous) = ledger.codes.get(code)
            && previous != &request.request_id
        {
            return (
                Outcome::Failed(failure(
                    "PAYMENT_AUTH_CODE_INVALID",
                    "payment code already used",
                )),
                Duration::ZERO,
            );
        }
        let scenario = scenario(code);
        match scenario {
            // Lost before the provider processed it: no trade, the code not used.
            Scenario::NeverCreatedUnknown => {
                return (
                    Outcome::Unknown(Unknown::new(
                        UnknownKind::ProviderUnsure,
                        "SYSTEM_ERROR: system busy, outcome unknown",
                    )),
                    Duration::ZERO,
                );
            }
            Scenario::RateLimited => {
                return (
                    Outcome::Unknown(Unknown::new(
                        UnknownKind::ProviderUnsure,
                        "FREQUENCY_LIMITED: too many requests",
                    )),
                    Duration::ZERO,
                );
            }
            Scenario::NeverCreatedDropped => {
                return (
                    Outcome::Unknown(Unknown::new(
                        UnknownKind::ConnectionLost,
                        "connection reset before the request was processed",
                    )),
                    Duration::ZERO,
                );
            }
            _ => {}
        }
        ledger
            .codes
            .insert(code.to_string(), request.request_id.clone());
        ledger.next_trade += 1;
        let trade_no = format!("SBX{}{:08}", now.format("%Y%m%d"), ledger.next_trade);
        let money = scenario.breakdown(request.amount);
        let (state, outcome, delay) = match scenario {
            Scenario::InsufficientBalance | Scenario::ExpiredCode | Scenario::RiskReject => {
                let f = scenario.failure().unwrap_or_else(|| unreachable!());
                let state = TradeState::Closed {
                    code: f.code.clone(),
                };
                (state, Outcome::Failed(f), Duration::ZERO)
            }
            Scenario::ConfirmThenPay
            | Scenario::ConfirmNeverPays
            | Scenario::PaysAtCancel
            | Scenario::FrozenAtCancel => {
                let pays_at = (scenario == Scenario::ConfirmThenPay)
                    .then(|| now + chrono::Duration::from_std(CONFIRM_DELAY).unwrap_or_default());
                (
                    TradeState::Waiting {
                        pays_at,
                        pays_at_cancel: scenario == Scenario::PaysAtCancel,
                        revokes_at: scenario::is_wechat_code(code).then(|| {
                            now + chrono::Duration::from_std(WECHAT_AUTO_REVOKE).unwrap_or_default()
                        }),
                    },
                    Outcome::Unknown(Unknown::new(
                        UnknownKind::BuyerConfirming,
                        "customer is confirming the payment in the wallet",
                    )),
                    Duration::ZERO,
                )
            }
            Scenario::Success | Scenario::MerchantVoucher | Scenario::PlatformVoucher => (
                TradeState::Paid,
                Outcome::Success(paid(&trade_no, request.amount, &money)),
                Duration::ZERO,
            ),
            Scenario::UnknownButPaid | Scenario::SystemErrorButPaid => (
                TradeState::Paid,
                Outcome::Unknown(Unknown::new(
                    UnknownKind::ProviderUnsure,
                    "SYSTEM_ERROR: system busy, outcome unknown",
                )),
                Duration::ZERO,
            ),
            Scenario::SlowButPaid => (
                TradeState::Paid,
                Outcome::Success(paid(&trade_no, request.amount, &money)),
                SLOW_ANSWER,
            ),
            Scenario::DropAfterCharge => (
                TradeState::Paid,
                Outcome::Unknown(Unknown::new(
                    UnknownKind::ConnectionLost,
                    "connection reset after the request was sent",
                )),
                Duration::ZERO,
            ),
            Scenario::BadSignatureButPaid => (
                TradeState::Paid,
                Outcome::Unknown(Unknown::new(
                    UnknownKind::BadSignature,
                    "answer signature did not verify",
                )),
                Duration::ZERO,
            ),
            Scenario::NeverCreatedUnknown
            | Scenario::NeverCreatedDropped
            | Scenario::RateLimited => {
                unreachable!("answered above without a trade")
            }
        };
        ledger.trades.insert(
            request.request_id.clone(),
            Trade {
                trade_no,
                code: code.to_string(),
                amount: Some(request.amount),
                paid_at: (state == TradeState::Paid).then_some(now),
                state,
                refunds: BTreeMap::new(),
                subject: request.subject.clone(),
                reversed_at: None,
                frozen: scenario == Scenario::FrozenAtCancel,
                money,
                basket: request.basket.clone(),
                service_provider: None,
                presented: None,
            },
        );
        (outcome, delay)
    }
}

fn failure(code: &str, message: &str) -> Failure {
    Failure {
        code: code.to_string(),
        message: message.to_string(),
        cashier: "the payment was refused: ask the customer to refresh the code or pay another way"
            .to_string(),
    }
}

fn paid(trade_no: &str, amount: Amount, money: &Breakdown) -> Paid {
    Paid {
        trade_id: trade_no.to_string(),
        amount: Some(amount),
        money: money.clone(),
    }
}

fn answer_for(trade: &Trade) -> Outcome<Paid> {
    match &trade.state {
        TradeState::Paid => match trade.amount {
            Some(amount) => Outcome::Success(paid(&trade.trade_no, amount, &trade.money)),
            None => Outcome::Failed(failure("TRADE_HAS_CLOSE", "trade closed")),
        },
        TradeState::Waiting { .. } => Outcome::Unknown(Unknown::new(
            UnknownKind::BuyerConfirming,
            "customer is confirming the payment in the wallet",
        )),
        TradeState::Closed { code } => Outcome::Failed(failure(code, "trade closed")),
        TradeState::CancelledRefunded => {
            Outcome::Failed(failure("TRADE_HAS_CLOSE", "trade cancelled and refunded"))
        }
        TradeState::NeverCreated => Outcome::Failed(failure("TRADE_HAS_CLOSE", "trade closed")),
    }
}

#[async_trait]
impl Gateway for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn accepts(&self, wallet: Wallet) -> bool {
        matches!(wallet, Wallet::Alipay | Wallet::AlipayPlus)
    }

    async fn pay(&self, request: &PayRequest) -> Outcome<Paid> {
        self.pay_after_delay(request).await
    }

    async fn present(
        &self,
        request: &crate::gateway::PresentRequest,
    ) -> Outcome<crate::gateway::Presented> {
        self.decide_present(request)
    }

    async fn inquire(&self, request_id: &str) -> Outcome<TradeStatus> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        let Some(trade) = ledger.trades.get_mut(request_id) else {
            return Outcome::Success(TradeStatus::NotFound);
        };
        settle(trade, now);
        if presented::hidden(trade, &self.present_modes()) {
            return Outcome::Success(TradeStatus::NotFound);
        }
        let status = match &trade.state {
            TradeState::NeverCreated => TradeStatus::NotFound,
            TradeState::Waiting { .. } => TradeStatus::Waiting,
            TradeState::Paid => TradeStatus::Paid(Paid {
                trade_id: trade.trade_no.clone(),
                amount: trade.amount,
                money: trade.money.clone(),
            }),
            TradeState::Closed { code } => TradeStatus::Closed(failure(code, "trade closed")),
            TradeState::CancelledRefunded => TradeStatus::Reversed(Paid {
                trade_id: trade.trade_no.clone(),
                amount: trade.amount,
                money: trade.money.clone(),
            }),
        };
        Outcome::Success(status)
    }

    async fn cancel(&self, request_id: &str) -> Outcome<Cancelled> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        let next = ledger.next_trade + 1;
        let trade = ledger
            .trades
            .entry(request_id.to_string())
            .or_insert_with(|| Trade {
                // Cancel before any pay created it: the id is closed, a late pay is refused.
                trade_no: format!("SBX{}{:08}", now.format("%Y%m%d"), next),
                code: String::new(),
                amount: None,
                state: TradeState::NeverCreated,
                refunds: BTreeMap::new(),
                subject: String::new(),
                paid_at: None,
                reversed_at: None,
                frozen: false,
                money: Breakdown::default(),
                basket: Default::default(),
                service_provider: None,
                presented: None,
            });
        settle(trade, now);
        if trade.frozen {
            return Outcome::Failed(failure(
                "REASON_TRADE_BEEN_FREEZEN",
                "the trade is frozen by risk control: it cannot be cancelled now",
            ));
        }
        if let TradeState::Waiting {
            pays_at_cancel: true,
            ..
        } = trade.state
        {
            // The customer confirms in the very moment the cancel arrives.
            trade.state = TradeState::Paid;
            trade.paid_at = Some(now);
        }
        let hidden = presented::hidden(trade, &self.present_modes());
        let action = match trade.state {
            // The platform's quirk (docs/protocol.md §17): an unscanned precreated trade
            // answers "no such trade", and is closed all the same.
            TradeState::Waiting { .. } if hidden => {
                trade.state = TradeState::Closed {
                    code: "TRADE_HAS_CLOSE".to_string(),
                };
                Cancelled::NotCreated {
                    code: "TRADE_NOT_EXIST",
                }
            }
            TradeState::NeverCreated => Cancelled::NotCreated {
                code: "TRADE_NOT_EXIST",
            },
            TradeState::Waiting { .. } | TradeState::Closed { .. } => {
                trade.state = TradeState::Closed {
                    code: "TRADE_HAS_CLOSE".to_string(),
                };
                Cancelled::Closed
            }
            TradeState::Paid | TradeState::CancelledRefunded => {
                if !trade.refunds.is_empty() {
                    return Outcome::Failed(failure(
                        "REASON_TRADE_REFUND_FEE_ERR",
                        "trade already partly refunded: cannot cancel",
                    ));
                }
                trade.state = TradeState::CancelledRefunded;
                trade.reversed_at.get_or_insert(now);
                Cancelled::Refunded
            }
        };
        if trade.amount.is_none() {
            ledger.next_trade = next;
        }
        Outcome::Success(action)
    }

    async fn refund(&self, request: &RefundRequest) -> Outcome<Refunded> {
        let now = self.clock.now();
        let mut ledger = self.lock();
        let Some(trade) = ledger.trades.get_mut(&request.payment_request_id) else {
            return Outcome::Failed(failure("TRADE_NOT_EXIST", "no such trade"));
        };
        settle(trade, now);
        if let Some((done, _)) = trade.refunds.get(&request.refund_id) {
            return if *done == request.amount {
                Outcome::Success(Refunded {
                    provider_refund_id: Some(format!("{}-{}", trade.trade_no, request.refund_id)),
                })
            } else {
                Outcome::Failed(failure(
                    "REPEAT_REQ_INCONSISTENT",
                    "refund id reused with another amount",
                ))
            };
        }
        let (TradeState::Paid, Some(paid)) = (&trade.state, trade.amount) else {
            return Outcome::Failed(failure("TRADE_STATUS_ERROR", "trade is not paid"));
        };
        let refunded: i64 = trade.refunds.values().map(|(a, _)| a.minor()).sum();
        if request.amount.currency() != paid.currency()
            || !request.amount.is_positive()
            || refunded.saturating_add(request.amount.minor()) > paid.minor()
        {
            return Outcome::Failed(failure(
                "REFUND_AMOUNT_EXCEED",
                "refund amount exceeds what is left of the payment",
            ));
        }
        trade
            .refunds
            .insert(request.refund_id.clone(), (request.amount, now));
        Outcome::Success(Refunded {
            provider_refund_id: Some(format!("{}-{}", trade.trade_no, request.refund_id)),
        })
    }

    async fn inquire_refund(&self, request: &RefundRequest) -> Outcome<bool> {
        let done = self.refunded(&request.payment_request_id, &request.refund_id);
        Outcome::Success(done == Some(request.amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::money::Currency;
    use crate::paycode::{Scan, recognise};

    fn request(id: &str, code: &str) -> PayRequest {
        let Scan::Payment(code) = recognise(code) else {
            panic!("not a code")
        };
        PayRequest {
            request_id: id.to_string(),
            code,
            amount: Amount::from_minor(1250, Currency::from_code("CNY").unwrap()),
            subject: "test".into(),
            terminal_id: "T1".into(),
            store_id: None,
            signing_key: None,
            basket: Default::default(),
            signed: None,
        }
    }

    fn sandbox() -> Sandbox {
        Sandbox::new(Arc::new(TokioClock::starting_at(Utc::now())))
    }

    #[tokio::test(start_paused = true)]
    async fn confirm_then_pay_pays_after_the_delay() {
        let s = sandbox();
        let r = request("r1", "286000000000000003");
        assert!(matches!(s.pay(&r).await, Outcome::Unknown(_)));
        assert_eq!(
            s.inquire("r1").await,
            Outcome::Success(TradeStatus::Waiting)
        );
        tokio::time::sleep(CONFIRM_DELAY).await;
        assert!(matches!(
            s.inquire("r1").await,
            Outcome::Success(TradeStatus::Paid(_))
        ));
        assert_eq!(s.ledger()[0].net_minor(), 1250);
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_is_charged_once_whatever_the_request_id() {
        let s = sandbox();
        assert!(matches!(
            s.pay(&request("r1", "286000000000000000")).await,
            Outcome::Success(_)
        ));
        assert!(matches!(
            s.pay(&request("r1", "286000000000000000")).await,
            Outcome::Success(_)
        ));
        assert!(matches!(
            s.pay(&request("r2", "286000000000000000")).await,
            Outcome::Failed(_)
        ));
        let net: i64 = s.ledger().iter().map(LedgerEntry::net_minor).sum();
        assert_eq!(net, 1250);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_refunds_a_paid_trade_and_closes_the_id() {
        let s = sandbox();
        s.pay(&request("r1", "286000000000000005")).await;
        assert_eq!(s.cancel("r1").await, Outcome::Success(Cancelled::Refunded));
        assert_eq!(s.ledger()[0].net_minor(), 0);
        // Cancel before any pay: no such payment; a late pay under that id is refused and
        // charges nothing.
        let not_created = Outcome::Success(Cancelled::NotCreated {
            code: "TRADE_NOT_EXIST",
        });
        assert_eq!(s.cancel("r2").await, not_created);
        assert_eq!(s.cancel("r2").await, not_created, "and says so again");
        assert_eq!(
            s.inquire("r2").await,
            Outcome::Success(TradeStatus::NotFound)
        );
        assert!(matches!(
            s.pay(&request("r2", "286000000000000100")).await,
            Outcome::Failed(_)
        ));
        let net: i64 = s.ledger().iter().map(LedgerEntry::net_minor).sum();
        assert_eq!(net, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pay_lost_before_processing_creates_nothing_and_its_cancel_says_so() {
        let s = sandbox();
        for (id, code) in [("r1", "286000000000000010"), ("r2", "286000000000000011")] {
            assert!(matches!(
                s.pay(&request(id, code)).await,
                Outcome::Unknown(_)
            ));
            assert_eq!(s.inquire(id).await, Outcome::Success(TradeStatus::NotFound));
            assert!(matches!(
                s.cancel(id).await,
                Outcome::Success(Cancelled::NotCreated { .. })
            ));
        }
        let net: i64 = s.ledger().iter().map(LedgerEntry::net_minor).sum();
        assert_eq!(net, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_customer_paying_as_the_cancel_arrives_is_refunded_by_it() {
        let s = sandbox();
        assert!(matches!(
            s.pay(&request("r1", "286000000000000013")).await,
            Outcome::Unknown(_)
        ));
        assert_eq!(
            s.inquire("r1").await,
            Outcome::Success(TradeStatus::Waiting)
        );
        assert_eq!(s.cancel("r1").await, Outcome::Success(Cancelled::Refunded));
        assert!(matches!(
            s.inquire("r1").await,
            Outcome::Success(TradeStatus::Reversed(_))
        ));
        assert_eq!(s.ledger()[0].charged_minor, 1250);
        assert_eq!(s.ledger()[0].net_minor(), 0);
    }
}
