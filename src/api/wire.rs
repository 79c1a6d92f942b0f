//! The register's wire format: the JSON of a sale, a refund and an event, as `docs/api.md`
//! documents them. Built from the domain types here, so that changing one of those can only
//! change the API through this file (and the compiler points here).

use serde::Serialize;

use crate::clock::to_journal;
use crate::events::{Event, MemberSignal};
use crate::paycode::BarcodeKind;
use crate::state::{AttemptState, RefundState, SaleState};
use crate::view::{AttemptView, RefundView, SaleView};

#[derive(Debug, Serialize)]
pub struct SaleJson<'a> {
    pub sale_id: &'a str,
    pub state: SaleState,
    /// Major units, e.g. "12.50".
    pub amount: String,
    pub currency: &'static str,
    pub reference: Option<&'a str>,
    pub subject: &'a str,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: Vec<AttemptJson<'a>>,
    pub refunds: Vec<RefundJson<'a>>,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<&'a str>,
    /// The campaign fields the register gave, as it gave them; absent when it gave none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undiscountable_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discountable_amount: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub goods_detail: Vec<GoodsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_name: Option<&'a str>,
    /// The code shown for the customer to scan, while it waits for them; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrJson<'a>>,
}

/// A presented code waiting for the customer (docs/api.md, "Customer scans").
#[derive(Debug, Serialize)]
pub struct QrJson<'a> {
    pub request_id: &'a str,
    /// `order_code` (a QR for the customer to scan) or `entry_code` (the page to send the
    /// wallet to).
    pub method: &'static str,
    pub content: &'a str,
    pub expires_at: String,
    /// The QR as an SVG image, for a screen the register drives itself.
    pub svg_url: String,
}

/// One goods line of a sale, in the names the register sent it under.
#[derive(Debug, Serialize)]
pub struct GoodsJson<'a> {
    pub goods_id: &'a str,
    pub goods_name: &'a str,
    pub quantity: u32,
    pub price: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goods_category: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct AttemptJson<'a> {
    pub request_id: &'a str,
    pub state: AttemptState,
    pub result_code: Option<&'a str>,
    pub result_message: Option<&'a str>,
    pub code: &'a str,
    pub wallet: &'static str,
    pub gateway: &'a str,
    pub gateway_trade_id: Option<&'a str>,
    pub paid_then_refunded: bool,
    pub needs_attention: Option<&'a str>,
    pub inquiries: u32,
    pub cancels: u32,
    pub created_at: String,
    /// When the watchdog stops inquiring and cancels, if the attempt is still in doubt then.
    pub deadline_at: String,
    /// The merchant key its pay request was signed with (an AMS key version, an app
    /// certificate's SN, a key's fingerprint).
    pub signing_key: Option<&'a str>,
    /// What the provider said moved besides the order amount, when it said more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub money: Option<MoneyJson<'a>>,
    /// `scanned` (the customer's code), `order_code` or `entry_code` (the merchant's).
    pub method: &'static str,
}

/// An attempt's money as the provider stated it; amounts in major units, `null` unstated.
#[derive(Debug, Serialize)]
pub struct MoneyJson<'a> {
    pub buyer_paid: Option<String>,
    pub received: Option<String>,
    pub points: Option<String>,
    pub invoice: Option<String>,
    pub merchant_discount: String,
    pub platform_discount: String,
    pub funds: Vec<FundJson<'a>>,
    pub vouchers: Vec<VoucherJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct FundJson<'a> {
    pub channel: &'a str,
    pub amount: String,
}

#[derive(Debug, Serialize)]
pub struct VoucherJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub amount: String,
    pub merchant_funded: Option<String>,
    pub platform_funded: Option<String>,
}

impl<'a> MoneyJson<'a> {
    fn of(a: &'a AttemptView) -> Option<MoneyJson<'a>> {
        let m = &a.money;
        if m.is_empty() {
            return None;
        }
        let major = |x: Option<crate::money::Amount>| x.map(|x| x.to_major_string());
        let currency = m
            .received
            .or(m.buyer_paid)
            .map(|x| x.currency())
            .or_else(|| m.funds.first().map(|f| f.amount.currency()))
            .or_else(|| m.vouchers.first().map(|v| v.amount.currency()))?;
        let sum = |minor| crate::money::Amount::from_minor(minor, currency).to_major_string();
        Some(MoneyJson {
            buyer_paid: major(m.buyer_paid),
            received: major(m.received),
            points: major(m.points),
            invoice: major(m.invoice),
            merchant_discount: sum(m.merchant_discount_minor()),
            platform_discount: sum(m.platform_discount_minor()),
            funds: m
                .funds
                .iter()
                .map(|f| FundJson {
                    channel: &f.channel,
                    amount: f.amount.to_major_string(),
                })
                .collect(),
            vouchers: m
                .vouchers
                .iter()
                .map(|v| VoucherJson {
                    id: &v.id,
                    name: &v.name,
                    kind: &v.kind,
                    amount: v.amount.to_major_string(),
                    merchant_funded: major(v.merchant),
                    platform_funded: major(v.platform),
                })
                .collect(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct RefundJson<'a> {
    pub sale_id: &'a str,
    pub refund_id: &'a str,
    pub state: RefundState,
    /// Major units, e.g. "2.50".
    pub amount: String,
    pub currency: &'static str,
    pub reason: Option<&'a str>,
    pub result_code: Option<&'a str>,
    pub result_message: Option<&'a str>,
    pub gateway_refund_id: Option<&'a str>,
    pub created_at: String,
}

impl<'a> From<&'a SaleView> for SaleJson<'a> {
    fn from(s: &'a SaleView) -> SaleJson<'a> {
        SaleJson {
            sale_id: &s.sale_id,
            state: s.state,
            amount: s.amount.to_major_string(),
            currency: s.amount.currency().code(),
            reference: s.reference.as_deref(),
            subject: &s.subject,
            created_at: to_journal(s.created_at),
            updated_at: to_journal(s.updated_at),
            attempts: s.attempts.iter().map(AttemptJson::from).collect(),
            refunds: s.refunds.iter().map(RefundJson::from).collect(),
            reason: s.reason.as_deref(),
            message: s.message.as_deref(),
            superseded_by: s.superseded_by.as_deref(),
            undiscountable_amount: s.basket.undiscountable.map(|a| a.to_major_string()),
            discountable_amount: s.basket.discountable.map(|a| a.to_major_string()),
            goods_detail: s
                .basket
                .goods
                .iter()
                .map(|g| GoodsJson {
                    goods_id: &g.id,
                    goods_name: &g.name,
                    quantity: g.quantity,
                    price: g.price.to_major_string(),
                    goods_category: g.category.as_deref(),
                })
                .collect(),
            operator_id: s.basket.operator_id.as_deref(),
            operator_name: s.basket.operator_name.as_deref(),
            qr: s.qr.as_ref().map(|q| QrJson {
                request_id: &q.request_id,
                method: q.method.as_str(),
                content: &q.content,
                expires_at: to_journal(q.expires_at),
                svg_url: format!("/v1/sales/{}/qr.svg", s.sale_id),
            }),
        }
    }
}

impl<'a> From<&'a AttemptView> for AttemptJson<'a> {
    fn from(a: &'a AttemptView) -> AttemptJson<'a> {
        AttemptJson {
            request_id: &a.request_id,
            state: a.state,
            result_code: a.result_code.as_deref(),
            result_message: a.result_message.as_deref(),
            code: &a.code,
            wallet: a.wallet.as_str(),
            gateway: &a.gateway,
            gateway_trade_id: a.gateway_trade_id.as_deref(),
            paid_then_refunded: a.paid_then_refunded,
            needs_attention: a.needs_attention.as_deref(),
            inquiries: a.inquiries,
            cancels: a.cancels,
            created_at: to_journal(a.created_at),
            deadline_at: to_journal(a.deadline_at),
            signing_key: a.signing_key.as_deref(),
            money: MoneyJson::of(a),
            method: a.method.as_str(),
        }
    }
}

impl<'a> From<&'a RefundView> for RefundJson<'a> {
    fn from(r: &'a RefundView) -> RefundJson<'a> {
        RefundJson {
            sale_id: &r.sale_id,
            refund_id: &r.refund_id,
            state: r.state,
            amount: r.amount.to_major_string(),
            currency: r.amount.currency().code(),
            reason: r.reason.as_deref(),
            result_code: r.result_code.as_deref(),
            result_message: r.result_message.as_deref(),
            gateway_refund_id: r.gateway_refund_id.as_deref(),
            created_at: to_journal(r.created_at),
        }
    }
}

/// Serialising plain strings, numbers and enums cannot fail; should it, the line says why.
fn line(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A sale as one JSON line (`charge`, `demo`, `run --stdin`).
pub fn sale_line(sale: &SaleView) -> String {
    line(&SaleJson::from(sale))
}

/// A refund as one JSON line (`refund`).
pub fn refund_line(refund: &RefundView) -> String {
    line(&RefundJson::from(refund))
}

/// An event on the register's stream, and as the journal keeps it for replay.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventJson<'a> {
    SaleArmed {
        sale: SaleJson<'a>,
    },
    Barcode {
        text: &'a str,
        kind: BarcodeKind,
    },
    Garbage {
        why: &'static str,
        len: usize,
    },
    ScanRefused {
        code_masked: Option<&'a str>,
        reason: &'a str,
    },
    AttemptSent {
        sale_id: &'a str,
        request_id: &'a str,
        code_masked: &'a str,
    },
    MemberBindingStarted {
        member_id: &'a str,
        wallet: &'a str,
        auth_url: &'a str,
    },
    QrPresented {
        sale_id: &'a str,
        request_id: &'a str,
        method: &'static str,
        content: &'a str,
        amount: String,
        currency: &'static str,
        expires_at: String,
    },
    CustomerConfirming {
        sale_id: &'a str,
        request_id: &'a str,
    },
    InDoubt {
        sale_id: &'a str,
        request_id: &'a str,
        why: &'a str,
    },
    Cancelling {
        sale_id: &'a str,
        request_id: &'a str,
    },
    NeedsAttention {
        sale_id: &'a str,
        request_id: &'a str,
        why: &'a str,
    },
    SaleFinished {
        sale: SaleJson<'a>,
    },
    GatewayOnline,
    GatewayOffline {
        why: &'a str,
    },
    Refund {
        refund: RefundJson<'a>,
    },
    ScannerConnected {
        scanner: &'a str,
        detail: &'a str,
    },
    ScannerDisconnected {
        scanner: &'a str,
        why: &'a str,
    },
    ClockSkew {
        skew_s: i64,
        off: bool,
    },
    CertificateExpiring {
        which: &'static str,
        sn: &'a str,
        days_left: i64,
    },
    ReconciliationMismatch {
        date: &'a str,
        differences: usize,
        paid_only_at_provider: usize,
    },
    OperatorAction {
        actor: &'a str,
        action: &'static str,
        result: &'a str,
    },
    ScanTest {
        text: &'a str,
        kind: &'a str,
    },
    MemberBindingBound(MemberBindingJson<'a>),
    MemberBindingRefreshed(MemberBindingJson<'a>),
    MemberBindingRefreshFailed(MemberBindingJson<'a>),
    MemberBindingFailed(MemberBindingJson<'a>),
    MemberBindingRevoked(MemberBindingJson<'a>),
}

/// A member binding's event: who, which wallet, the state; never a token or an auth code.
#[derive(Debug, Serialize)]
struct MemberBindingJson<'a> {
    member_id: &'a str,
    wallet: &'a str,
    state: &'static str,
    reason: Option<&'a str>,
}

impl<'a> From<&'a Event> for EventJson<'a> {
    fn from(e: &'a Event) -> EventJson<'a> {
        match e {
            Event::SaleArmed { sale } => EventJson::SaleArmed { sale: sale.into() },
            Event::Barcode { text, kind } => EventJson::Barcode { text, kind: *kind },
            Event::Garbage { why, len } => EventJson::Garbage { why, len: *len },
            Event::ScanRefused {
                code_masked,
                reason,
            } => EventJson::ScanRefused {
                code_masked: code_masked.as_deref(),
                reason,
            },
            Event::AttemptSent {
                sale_id,
                request_id,
                code_masked,
            } => EventJson::AttemptSent {
                sale_id,
                request_id,
                code_masked,
            },
            Event::QrPresented {
                sale_id,
                request_id,
                method,
                content,
                amount,
                expires_at,
            } => EventJson::QrPresented {
                sale_id,
                request_id,
                method,
                content,
                amount: amount.to_major_string(),
                currency: amount.currency().code(),
                expires_at: crate::clock::to_journal(*expires_at),
            },
            Event::MemberBindingStarted {
                member_id,
                wallet,
                auth_url,
            } => EventJson::MemberBindingStarted {
                member_id,
                wallet,
                auth_url,
            },
            Event::CustomerConfirming {
                sale_id,
                request_id,
            } => EventJson::CustomerConfirming {
                sale_id,
                request_id,
            },
            Event::InDoubt {
                sale_id,
                request_id,
                why,
            } => EventJson::InDoubt {
                sale_id,
                request_id,
                why,
            },
            Event::Cancelling {
                sale_id,
                request_id,
            } => EventJson::Cancelling {
                sale_id,
                request_id,
            },
            Event::NeedsAttention {
                sale_id,
                request_id,
                why,
            } => EventJson::NeedsAttention {
                sale_id,
                request_id,
                why,
            },
            Event::SaleFinished { sale } => EventJson::SaleFinished { sale: sale.into() },
            Event::GatewayOnline => EventJson::GatewayOnline,
            Event::GatewayOffline { why } => EventJson::GatewayOffline { why },
            Event::Refund { refund } => EventJson::Refund {
                refund: refund.into(),
            },
            Event::ScannerConnected { scanner, detail } => {
                EventJson::ScannerConnected { scanner, detail }
            }
            Event::ScannerDisconnected { scanner, why } => {
                EventJson::ScannerDisconnected { scanner, why }
            }
            Event::ClockSkew { skew_s, off } => EventJson::ClockSkew {
                skew_s: *skew_s,
                off: *off,
            },
            Event::CertificateExpiring {
                which,
                sn,
                days_left,
            } => EventJson::CertificateExpiring {
                which,
                sn,
                days_left: *days_left,
            },
            Event::ReconciliationMismatch {
                date,
                differences,
                paid_only_at_provider,
            } => EventJson::ReconciliationMismatch {
                date,
                differences: *differences,
                paid_only_at_provider: *paid_only_at_provider,
            },
            Event::ScanTest { text, kind } => EventJson::ScanTest { text, kind },
            Event::MemberBinding {
                signal,
                member_id,
                wallet,
                state,
                reason,
            } => {
                let b = MemberBindingJson {
                    member_id,
                    wallet,
                    state,
                    reason: reason.as_deref(),
                };
                match signal {
                    MemberSignal::Bound => EventJson::MemberBindingBound(b),
                    MemberSignal::Refreshed => EventJson::MemberBindingRefreshed(b),
                    MemberSignal::RefreshFailed => EventJson::MemberBindingRefreshFailed(b),
                    MemberSignal::Failed => EventJson::MemberBindingFailed(b),
                    MemberSignal::Revoked => EventJson::MemberBindingRevoked(b),
                }
            }
            Event::OperatorAction {
                actor,
                action,
                result,
            } => EventJson::OperatorAction {
                actor,
                action,
                result,
            },
        }
    }
}

/// An event's JSON on the stream.
pub fn event_json(event: &Event) -> String {
    line(&EventJson::from(event))
}

/// An event's name on the stream (`sale_armed`, `sale_finished`, …): the SSE `event:` field.
pub fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::SaleArmed { .. } => "sale_armed",
        Event::Barcode { .. } => "barcode",
        Event::Garbage { .. } => "garbage",
        Event::ScanRefused { .. } => "scan_refused",
        Event::AttemptSent { .. } => "attempt_sent",
        Event::QrPresented { .. } => "qr_presented",
        Event::MemberBindingStarted { .. } => "member_binding_started",
        Event::CustomerConfirming { .. } => "customer_confirming",
        Event::InDoubt { .. } => "in_doubt",
        Event::Cancelling { .. } => "cancelling",
        Event::NeedsAttention { .. } => "needs_attention",
        Event::SaleFinished { .. } => "sale_finished",
        Event::GatewayOnline => "gateway_online",
        Event::GatewayOffline { .. } => "gateway_offline",
        Event::Refund { .. } => "refund",
        Event::ScannerConnected { .. } => "scanner_connected",
        Event::ScannerDisconnected { .. } => "scanner_disconnected",
        Event::ReconciliationMismatch { .. } => "reconciliation_mismatch",
        Event::OperatorAction { .. } => "operator_action",
        Event::ScanTest { .. } => "scan_test",
        Event::ClockSkew { .. } => "clock_skew",
        Event::CertificateExpiring { .. } => "certificate_expiring",
        Event::MemberBinding { signal, .. } => signal.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name on the stream is the `type` in the JSON, for every event.
    #[test]
    fn an_events_name_is_its_type() {
        let events = [
            Event::Garbage {
                why: "too long",
                len: 3,
            },
            Event::GatewayOnline,
            Event::CertificateExpiring {
                which: "alipay_cert",
                sn: "abc".into(),
                days_left: 12,
            },
            Event::ClockSkew {
                skew_s: 200,
                off: true,
            },
            Event::ScanRefused {
                code_masked: None,
                reason: "no sale".into(),
            },
            Event::MemberBinding {
                signal: MemberSignal::RefreshFailed,
                member_id: "M1".into(),
                wallet: "ALIPAY_CN".into(),
                state: "bound",
                reason: Some("bind the wallet again".into()),
            },
            Event::MemberBinding {
                signal: MemberSignal::Bound,
                member_id: "M1".into(),
                wallet: "ALIPAY_CN".into(),
                state: "bound",
                reason: None,
            },
        ];
        for e in &events {
            let v: serde_json::Value = serde_json::from_str(&event_json(e)).unwrap();
            assert_eq!(v["type"], event_kind(e), "{v}");
        }
    }

    /// The sale's JSON keeps its documented keys, in order (`docs/api.md`).
    #[test]
    fn a_sale_has_the_documented_keys() {
        let cny = crate::money::Currency::from_code("CNY").unwrap();
        let at = crate::clock::from_journal("2026-11-22T02:00:08.538Z").unwrap();
        let sale = SaleView {
            sale_id: "S1".into(),
            state: SaleState::Paid,
            amount: crate::money::Amount::from_minor(1250, cny),
            reference: None,
            subject: "Coffee".into(),
            created_at: at,
            updated_at: at,
            attempts: vec![],
            refunds: vec![],
            reason: None,
            message: None,
            superseded_by: None,
            basket: Default::default(),
            qr: None,
        };
        assert_eq!(
            sale_line(&sale),
            r#"{"sale_id":"S1","state":"paid","amount":"12.50","currency":"CNY","reference":null,"subject":"Coffee","created_at":"2026-11-22T02:00:08.538Z","updated_at":"2026-11-22T02:00:08.538Z","attempts":[],"refunds":[],"reason":null,"message":null}"#
        );
    }
}
