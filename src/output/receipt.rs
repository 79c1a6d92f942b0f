//! Receipt content as plain lines, independent of where it is printed.

use crate::state::SaleState;
use crate::view::SaleView;

pub fn lines(sale: &SaleView, terminal_id: &str, width: usize) -> Vec<String> {
    let rule = "-".repeat(width);
    let title = match sale.state {
        SaleState::Paid => "PAYMENT RECEIPT",
        SaleState::Cancelled => "PAYMENT CANCELLED",
        _ => "PAYMENT NOT COMPLETED",
    };
    let mut out = vec![rule.clone(), format!("{title:^width$}"), rule.clone()];
    let mut field =
        |k: &str, v: &str| out.push(format!("{k:<10}{v:>w$}", w = width.saturating_sub(10)));
    field("Terminal", terminal_id);
    field("Sale", &sale.sale_id);
    field("Time", &sale.updated_at);
    if let Some(r) = &sale.reference {
        field("Reference", r);
    }
    field("Amount", &format!("{} {}", sale.amount, sale.currency));
    field("State", sale.state.as_str());
    if let Some(a) = sale.attempts.last() {
        field("Wallet", a.wallet);
        field("Code", &a.code);
        if let Some(t) = &a.gateway_trade_id {
            field("Trade no", t);
        }
        if a.paid_then_refunded {
            field("Note", "paid, then refunded");
        }
    }
    out.push(rule.clone());
    if let Some(m) = &sale.message {
        out.push(m.clone());
    }
    out
}
