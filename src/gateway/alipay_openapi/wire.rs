//! Alipay Open Platform wire format (docs/protocol.md §3–5): the signing string of a
//! request, the extraction of the signed `…_response` node from a body, the response
//! fields, and the mapping of every documented code to an [`Outcome`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::gateway::{
    Cancelled, Failure, Outcome, Paid, Presented, Refunded, TradeStatus, Unknown, UnknownKind,
};
use crate::money::basket::Basket;
use crate::money::breakdown::{Breakdown, Fund, Voucher};
use crate::money::{Amount, Currency};

/// `key=value&…` over every transmitted parameter except `sign`, skipping empty values,
/// sorted by name, values raw (not URL-encoded).
pub fn sign_content(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !k.is_empty() && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `alipay.trade.pay` → `alipay_trade_pay_response`.
pub fn response_node(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("no {0} node in the answer")]
    Missing(String),
    #[error("the {0} node is not a JSON object")]
    NotObject(String),
    #[error("the {0} node is not closed")]
    Unterminated(String),
    #[error("the {0} node appears twice")]
    Duplicate(String),
}

/// The exact text of the signed node: from its `{` to the matching `}`, as it appears in the
/// body (EasySDK `SignContentExtractor`). A second node of the same name after it is refused.
pub fn extract_signed_content<'a>(body: &'a str, node: &str) -> Result<&'a str, ExtractError> {
    let needle = format!("\"{node}\"");
    let start = body
        .find(&needle)
        .ok_or_else(|| ExtractError::Missing(node.to_string()))?;
    let after = &body[start + needle.len()..];
    let colon = after
        .find(|c: char| !c.is_ascii_whitespace())
        .filter(|&i| after[i..].starts_with(':'))
        .ok_or_else(|| ExtractError::NotObject(node.to_string()))?;
    let value = &after[colon + 1..];
    let open = value
        .find(|c: char| !c.is_ascii_whitespace())
        .filter(|&i| value[i..].starts_with('{'))
        .ok_or_else(|| ExtractError::NotObject(node.to_string()))?;
    let object = &value[open..];
    let bytes = object.as_bytes();
    let (mut depth, mut in_string, mut backslashes) = (0usize, false, 0usize);
    let mut end = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                b'\\' => {
                    backslashes += 1;
                    continue;
                }
                b'"' if backslashes % 2 == 0 => in_string = false,
                _ => {}
            }
            backslashes = 0;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(|| ExtractError::Unterminated(node.to_string()))?;
    let content = &object[..end];
    let rest = &object[end..];
    if rest.contains(&needle) {
        return Err(ExtractError::Duplicate(node.to_string()));
    }
    Ok(content)
}

/// The root-level `sign` of a response body.
pub fn root_sign(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Root {
        sign: Option<String>,
    }
    serde_json::from_str::<Root>(body).ok()?.sign
}

/// The root-level `alipay_cert_sn` of a response body: in certificate mode, the SN of the
/// Alipay certificate whose key signed it (docs/protocol.md §3.4).
pub fn root_alipay_cert_sn(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Root {
        alipay_cert_sn: Option<String>,
    }
    serde_json::from_str::<Root>(body)
        .ok()?
        .alipay_cert_sn
        .filter(|s| !s.is_empty())
}

/// The fields scanpay reads from any response node. Amounts may be strings or bare
/// numbers in the wild; they are kept as raw JSON and parsed exactly.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Node {
    pub code: String,
    #[serde(default)]
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub total_amount: Option<serde_json::Value>,
    pub trade_status: Option<String>,
    pub retry_flag: Option<String>,
    pub action: Option<String>,
    pub fund_change: Option<String>,
    pub refund_status: Option<String>,
    pub out_request_no: Option<String>,
    pub bill_download_url: Option<String>,
    /// `alipay.trade.precreate`: what the customer scans.
    pub qr_code: Option<String>,
    /// `alipay.open.app.alipaycert.download`: the certificate, base64 of its PEM text.
    pub alipay_cert_content: Option<String>,
    /// What moved besides the order amount (docs/protocol.md §16), read by [`breakdown`].
    pub receipt_amount: Option<serde_json::Value>,
    pub buyer_pay_amount: Option<serde_json::Value>,
    pub point_amount: Option<serde_json::Value>,
    pub invoice_amount: Option<serde_json::Value>,
    pub fund_bill_list: Option<serde_json::Value>,
    pub voucher_detail_list: Option<serde_json::Value>,
}

pub fn parse_node(content: &str) -> Result<Node, String> {
    serde_json::from_str(content).map_err(|e| format!("response node: {e}"))
}

/// An Open Platform amount (yuan) from a string or a bare JSON number, exactly.
pub fn parse_amount(value: &serde_json::Value) -> Option<Amount> {
    let cny = Currency::from_code("CNY").ok()?;
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Amount::parse(&text, cny).ok()
}

/// The sale's campaign fields into a pay request's `biz_content`, in the platform's names
/// (docs/protocol.md §16.5): `undiscountable_amount`, `discountable_amount`, `goods_detail`,
/// `operator_id`. Nothing for fields the register did not give.
pub fn basket_fields(biz: &mut serde_json::Value, basket: &Basket) {
    use serde_json::json;
    if let Some(a) = basket.undiscountable {
        biz["undiscountable_amount"] = json!(a.to_major_string());
    }
    if let Some(a) = basket.discountable {
        biz["discountable_amount"] = json!(a.to_major_string());
    }
    if !basket.goods.is_empty() {
        biz["goods_detail"] = basket
            .goods
            .iter()
            .map(|g| {
                let mut line = json!({
                    "goods_id": g.id, "goods_name": g.name,
                    "quantity": g.quantity, "price": g.price.to_major_string(),
                });
                if let Some(c) = &g.category {
                    line["goods_category"] = json!(c);
                }
                line
            })
            .collect();
    }
    if let Some(id) = &basket.operator_id {
        biz["operator_id"] = json!(id);
    }
}

/// The campaign fields of a pay request's `biz_content`, read back strictly (the sandbox):
/// what [`basket_fields`] writes. `Err` names the field that does not read.
pub fn read_basket(biz: &serde_json::Value) -> Result<Basket, String> {
    let amount = |field: &str| -> Result<Option<Amount>, String> {
        match biz.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => parse_amount(v).map(Some).ok_or_else(|| field.to_string()),
        }
    };
    let mut goods = Vec::new();
    if let Some(list) = biz.get("goods_detail") {
        let items = list.as_array().ok_or("goods_detail")?;
        for (i, g) in items.iter().enumerate() {
            let at = |f: &str| format!("goods_detail[{i}].{f}");
            let text = |f: &str| {
                g.get(f)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            goods.push(crate::money::basket::Goods {
                id: text("goods_id").ok_or_else(|| at("goods_id"))?,
                name: text("goods_name").ok_or_else(|| at("goods_name"))?,
                quantity: g
                    .get("quantity")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|q| u32::try_from(q).ok())
                    .ok_or_else(|| at("quantity"))?,
                price: g
                    .get("price")
                    .and_then(parse_amount)
                    .ok_or_else(|| at("price"))?,
                category: text("goods_category"),
            });
        }
    }
    Ok(Basket {
        undiscountable: amount("undiscountable_amount")?,
        discountable: amount("discountable_amount")?,
        goods,
        operator_id: biz
            .get("operator_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        operator_name: None,
    })
}

/// What a pay or query answer says moved besides the order amount (docs/protocol.md §16).
/// Read strictly: an amount that does not parse leaves its field (or its list entry) out,
/// logged, and is never guessed.
pub fn breakdown(node: &Node) -> Breakdown {
    let amount = |field: &str, value: &Option<serde_json::Value>| {
        let value = value.as_ref().filter(|v| !v.is_null())?;
        let parsed = parse_amount(value);
        if parsed.is_none() {
            tracing::warn!(field, value = %value, "answer states an amount that does not parse: left out");
        }
        parsed
    };
    Breakdown {
        buyer_paid: amount("buyer_pay_amount", &node.buyer_pay_amount),
        received: amount("receipt_amount", &node.receipt_amount),
        points: amount("point_amount", &node.point_amount),
        invoice: amount("invoice_amount", &node.invoice_amount),
        funds: list("fund_bill_list", &node.fund_bill_list)
            .iter()
            .filter_map(|f| {
                let channel = text(f, &["fund_channel", "fundChannel"])?;
                let amount = amount("fund_bill_list[].amount", &f.get("amount").cloned())?;
                Some(Fund { channel, amount })
            })
            .collect(),
        vouchers: list("voucher_detail_list", &node.voucher_detail_list)
            .iter()
            .filter_map(|v| {
                let field = |k: &str| v.get(k).cloned();
                Some(Voucher {
                    id: text(v, &["id"]).unwrap_or_default(),
                    name: text(v, &["name"]).unwrap_or_default(),
                    kind: text(v, &["type"]).unwrap_or_default(),
                    amount: amount("voucher_detail_list[].amount", &field("amount"))?,
                    merchant: amount(
                        "voucher_detail_list[].merchant_contribute",
                        &field("merchant_contribute"),
                    ),
                    platform: amount(
                        "voucher_detail_list[].other_contribute",
                        &field("other_contribute"),
                    ),
                })
            })
            .collect(),
    }
}

/// A list field of an answer: a JSON array, or the JSON text of one (as notifications carry
/// `fund_bill_list`). Anything else is left out, logged.
fn list(field: &str, value: &Option<serde_json::Value>) -> Vec<serde_json::Value> {
    match value {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items.clone(),
        Some(serde_json::Value::String(text)) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => {
                tracing::warn!(field, "answer states a list that does not parse: left out");
                Vec::new()
            }
        },
        Some(_) => {
            tracing::warn!(field, "answer states a list that is not one: left out");
            Vec::new()
        }
    }
}

/// The first of `keys` that is a string in `item`.
fn text(item: &serde_json::Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| item.get(*k).and_then(serde_json::Value::as_str))
        .map(str::to_string)
}

fn unknown(kind: UnknownKind, node: &Node) -> Unknown {
    Unknown::new(kind, describe(node))
}

fn describe(node: &Node) -> String {
    match (&node.sub_code, &node.sub_msg) {
        (Some(c), Some(m)) => format!("{} {}: {c} {m}", node.code, node.msg.trim()),
        (Some(c), None) => format!("{} {}: {c}", node.code, node.msg.trim()),
        _ => format!("{} {}", node.code, node.msg.trim()),
    }
}

/// A sub-code as the platform documents it: answers carry `aop.ACQ.SYSTEM_ERROR` as well as
/// `ACQ.SYSTEM_ERROR`, so the `aop.` prefix is dropped before any comparison.
pub fn sub_code(node: &Node) -> Option<&str> {
    node.sub_code
        .as_deref()
        .map(|c| c.strip_prefix("aop.").unwrap_or(c))
        .filter(|c| !c.is_empty())
}

fn failure(node: &Node) -> Failure {
    let code = node.sub_code.clone().unwrap_or_else(|| node.code.clone());
    Failure {
        cashier: cashier_message(&node.code, sub_code(node).unwrap_or(&node.code)).to_string(),
        message: node
            .sub_msg
            .clone()
            .unwrap_or_else(|| node.msg.trim().to_string()),
        code,
    }
}

/// What the cashier should do after a definite failure (docs/gateways.md, Open Platform
/// codes). `sub_code` is without its `aop.` prefix.
pub fn cashier_message(code: &str, sub_code: &str) -> &'static str {
    match sub_code {
        "isv.invalid-app-id" | "isv.missing-app-id" => {
            "the gateway does not know this terminal's app_id: the customer was not charged; fix [gateway] app_id"
        }
        "isv.invalid-signature" | "isv.missing-signature" => {
            "the gateway could not verify this terminal's signature: the customer was not charged; fix [gateway] private_key_file"
        }
        "isv.missing-app-cert-sn"
        | "isv.invalid-app-cert-sn"
        | "isv.missing-alipay-root-cert-sn" => {
            "the gateway's app is in certificate mode: the customer was not charged; configure the app's certificates"
        }
        "isv.invalid-timestamp" => {
            "the gateway refused this terminal's clock: the customer was not charged; set the time (NTP)"
        }
        "ACQ.PAYMENT_AUTH_CODE_INVALID" | "ACQ.PULL_MOBILE_CASHIER_FAIL" => {
            "the code is invalid or has expired: ask the customer to refresh the code and scan again"
        }
        "ACQ.PAYMENT_FAIL" => {
            "the payment failed: scan a fresh code once more, then ask for another payment method"
        }
        "ACQ.CONTEXT_INCONSISTENT" | "ACQ.TRADE_HAS_CLOSE" | "ACQ.TRADE_BUYER_NOT_MATCH" => {
            "this payment was closed: start the sale again"
        }
        "ACQ.BUYER_BALANCE_NOT_ENOUGH" | "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH" => {
            "the customer's balance is too low: ask for another payment method"
        }
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE"
        | "ACQ.MOBILE_PAYMENT_SWITCH_OFF"
        | "ACQ.USER_FACE_PAYMENT_SWITCH_OFF"
        | "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"
        | "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR"
        | "ACQ.BUYER_ENABLE_STATUS_FORBID"
        | "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT"
        | "ACQ.BUYER_SELLER_EQUAL"
        | "ACQ.PAYMENT_REQUEST_HAS_RISK"
        | "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE" => {
            "the customer's wallet cannot pay this: ask for another payment method"
        }
        "ACQ.ACCESS_FORBIDDEN"
        | "ACQ.PARTNER_ERROR"
        | "ACQ.SELLER_BEEN_BLOCKED"
        | "ACQ.BEYOND_PAY_RESTRICTION"
        | "ACQ.BEYOND_PER_RECEIPT_RESTRICTION" => {
            "the merchant account cannot take this payment: call the store's payment support"
        }
        "ACQ.INVALID_PARAMETER"
        | "ACQ.EXIST_FORBIDDEN_WORD"
        | "ACQ.TOTAL_FEE_EXCEED"
        | "ACQ.INVALID_STORE_ID" => {
            "the payment request was refused: check the amount and subject, or call support"
        }
        _ if matches!(code, "40001" | "40002" | "40006" | "20001") => {
            "scanpay's gateway configuration was refused (keys, app id or permissions): the customer was not charged; call support"
        }
        _ => "the payment was refused: ask the customer for another payment method",
    }
}

/// Request-level rejections: the gateway refused the call before processing it (missing or
/// invalid arguments, the app id, the signature, permissions, an auth token). The gateway
/// sends these unsigned when it cannot tell whose key to sign with, and they move nothing.
pub fn rejected_before_processing(code: &str) -> bool {
    matches!(code, "40001" | "40002" | "40006" | "20001")
}

/// The platform is unsure of its own outcome: `20000` under any sub-code, or a system error
/// under any code and in either spelling (`ACQ.SYSTEM_ERROR`, `aop.ACQ.SYSTEM_ERROR`, and
/// the unknown-error sub-codes). Never a definite failure: the customer may be charged.
pub fn is_system_error(node: &Node) -> bool {
    node.code == "20000"
        || matches!(
            sub_code(node),
            Some("ACQ.SYSTEM_ERROR" | "isp.unknow-error" | "unknow-error" | "isp.unknown-error")
        )
}

/// A request-level rejection as an outcome: refused at the door, nothing done.
fn rejected<T>(node: &Node) -> Outcome<T> {
    Outcome::Rejected(failure(node))
}

/// The refusal a request-level rejection states, for an answer the gateway did not sign.
pub fn request_refusal(node: &Node) -> Failure {
    failure(node)
}

/// `alipay.trade.pay` (docs/protocol.md §5.1).
pub fn pay_outcome(node: &Node, request_id: &str) -> Outcome<Paid> {
    if let Some(echo) = &node.out_trade_no
        && echo != request_id
    {
        return Outcome::Unknown(Unknown::new(
            UnknownKind::Mismatch,
            format!("answer is for out_trade_no {echo:?}, not {request_id:?}"),
        ));
    }
    if is_system_error(node) {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match node.code.as_str() {
        "10000" => match &node.trade_no {
            Some(trade_no) => Outcome::Success(Paid {
                trade_id: trade_no.clone(),
                amount: node.total_amount.as_ref().and_then(parse_amount),
                money: breakdown(node),
            }),
            None => Outcome::Unknown(Unknown::new(
                UnknownKind::Malformed,
                "success without trade_no",
            )),
        },
        "10003" => Outcome::Unknown(unknown(UnknownKind::BuyerConfirming, node)),
        // Paid under this out_trade_no already: only a query may confirm buyer and amount.
        "40004" if sub_code(node) == Some("ACQ.TRADE_HAS_SUCCESS") => {
            Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node))
        }
        "40004" => Outcome::Failed(failure(node)),
        code if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

/// `alipay.trade.precreate` (docs/protocol.md §17): `10000` with a `qr_code` issues the
/// code, nothing is paid yet. A definite refusal creates nothing; anything unclear may have
/// created a trade the customer cannot see (the resolver closes it).
pub fn present_outcome(node: &Node, request_id: &str) -> Outcome<Presented> {
    if let Some(echo) = &node.out_trade_no
        && echo != request_id
    {
        return Outcome::Unknown(Unknown::new(
            UnknownKind::Mismatch,
            format!("answer is for out_trade_no {echo:?}, not {request_id:?}"),
        ));
    }
    if is_system_error(node) {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match node.code.as_str() {
        "10000" => match node.qr_code.as_deref().filter(|q| !q.is_empty()) {
            Some(qr) => Outcome::Success(Presented {
                content: qr.to_string(),
                expires_at: None,
            }),
            None => Outcome::Unknown(Unknown::new(
                UnknownKind::Malformed,
                "precreate success without qr_code",
            )),
        },
        "40004" => Outcome::Failed(failure(node)),
        code if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

/// `alipay.trade.query` (docs/protocol.md §5.2).
pub fn query_outcome(node: &Node, request_id: &str) -> Outcome<TradeStatus> {
    if is_system_error(node) {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match node.code.as_str() {
        "10000" => {
            if let Some(echo) = &node.out_trade_no
                && echo != request_id
            {
                return Outcome::Unknown(Unknown::new(
                    UnknownKind::Mismatch,
                    format!("query answer is for {echo:?}, not {request_id:?}"),
                ));
            }
            match node.trade_status.as_deref() {
                Some("TRADE_SUCCESS" | "TRADE_FINISHED") => match &node.trade_no {
                    Some(trade_no) => Outcome::Success(TradeStatus::Paid(Paid {
                        trade_id: trade_no.clone(),
                        amount: node.total_amount.as_ref().and_then(parse_amount),
                        money: breakdown(node),
                    })),
                    None => Outcome::Unknown(Unknown::new(
                        UnknownKind::Malformed,
                        "paid without trade_no",
                    )),
                },
                Some("WAIT_BUYER_PAY") => Outcome::Success(TradeStatus::Waiting),
                // Closed unpaid, or paid and refunded in full: a cancel's `action` tells which.
                Some("TRADE_CLOSED") => Outcome::Success(TradeStatus::Closed(Failure {
                    code: "TRADE_CLOSED".into(),
                    message: "trade closed unpaid (or refunded in full)".into(),
                    cashier: "the payment was not completed: ask the customer to pay again".into(),
                })),
                other => Outcome::Unknown(Unknown::new(
                    UnknownKind::Malformed,
                    format!("unexpected trade_status {other:?}"),
                )),
            }
        }
        "40004" if sub_code(node) == Some("ACQ.TRADE_NOT_EXIST") => {
            Outcome::Success(TradeStatus::NotFound)
        }
        "40004" => Outcome::Failed(failure(node)),
        code if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

/// `alipay.trade.cancel`: `retry_flag=Y`, `20000`, system errors → retry. A cancel of an
/// `out_trade_no` the platform never created answers `ACQ.TRADE_NOT_EXIST`: nothing to
/// reverse, nothing was charged.
pub fn cancel_outcome(node: &Node) -> Outcome<Cancelled> {
    if node.code == "10000" {
        return match node.action.as_deref() {
            Some("refund") => Outcome::Success(Cancelled::Refunded),
            // `close`, or absent: no such trade, nothing to give back.
            _ => Outcome::Success(Cancelled::Closed),
        };
    }
    if is_system_error(node) || node.retry_flag.as_deref() == Some("Y") {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match node.code.as_str() {
        "40004" if sub_code(node) == Some("ACQ.TRADE_NOT_EXIST") => {
            Outcome::Success(Cancelled::NotCreated {
                code: "ACQ.TRADE_NOT_EXIST",
            })
        }
        "40004" => Outcome::Failed(failure(node)),
        code if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

/// `alipay.trade.refund`.
pub fn refund_outcome(node: &Node) -> Outcome<Refunded> {
    if is_system_error(node) {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match node.code.as_str() {
        // The answer names the trade (`trade_no`), not the refund: a refund has no id of
        // its own there but our `out_request_no`.
        "10000" => Outcome::Success(Refunded {
            provider_refund_id: None,
        }),
        "40004" => Outcome::Failed(failure(node)),
        code if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

/// `alipay.trade.fastpay.refund.query` (docs/protocol.md §10.2): `REFUND_SUCCESS` is done; a missing
/// status means not received (or failed).
pub fn refund_query_outcome(node: &Node) -> Outcome<bool> {
    if is_system_error(node) {
        return Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node));
    }
    match (node.code.as_str(), node.refund_status.as_deref()) {
        ("10000", Some("REFUND_SUCCESS")) => Outcome::Success(true),
        ("10000", Some("REFUND_PROCESSING")) => {
            Outcome::Unknown(unknown(UnknownKind::ProviderUnsure, node))
        }
        ("10000", _) => Outcome::Success(false),
        ("40004", _) => Outcome::Failed(failure(node)),
        (code, _) if rejected_before_processing(code) => rejected(node),
        _ => Outcome::Unknown(unknown(UnknownKind::Malformed, node)),
    }
}

#[cfg(test)]
mod tests;
