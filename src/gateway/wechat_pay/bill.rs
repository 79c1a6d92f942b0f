//! The WeChat Pay trade bill of a day (docs/protocol.md §15.7): a UTF-8 CSV whose every
//! value starts with a backquote, one line per payment, refund or reversal, then the day's
//! totals. Read strictly (a missing column or an unknown state is an error naming the line),
//! and written for the sandbox.

use crate::gateway::{ProviderRecord, RecordKind};
use crate::money::{Amount, Currency};

/// The columns of the `ALL` bill, in their order.
pub const COLUMNS: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];
/// The first cell of the totals' header, after the last detail line.
const TOTALS: &str = "总交易单数";

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("the bill is not UTF-8")]
    NotUtf8,
    #[error("the bill has no header line")]
    NoHeader,
    #[error("the bill's header has no column {0}")]
    MissingColumn(&'static str),
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the bill cannot be read: {0}")]
    Csv(String),
}

fn cell(text: &str) -> &str {
    text.trim().trim_start_matches('`').trim()
}

/// The day's lines as provider records. `SUCCESS` is a payment; `REFUND` a refund under
/// its merchant refund number; `REVOKED` a reversal that gave the payment back.
pub fn parse(bytes: &[u8]) -> Result<Vec<ProviderRecord>, BillError> {
    let text = std::str::from_utf8(bytes).map_err(|_| BillError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = reader.records();
    let header = rows
        .next()
        .ok_or(BillError::NoHeader)?
        .map_err(|e| BillError::Csv(e.to_string()))?;
    let header: Vec<String> = header.iter().map(|h| cell(h).to_string()).collect();
    let col = |name: &'static str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(BillError::MissingColumn(name))
    };
    let (at, trade, request, state, currency, total, refund_no, refund) = (
        col("交易时间")?,
        col("微信订单号")?,
        col("商户订单号")?,
        col("交易状态")?,
        col("货币种类")?,
        col("订单金额")?,
        col("商户退款单号")?,
        col("申请退款金额")?,
    );
    let mut records = Vec::new();
    for (i, row) in rows.enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| BillError::Line {
            line,
            why: e.to_string(),
        })?;
        let first = row.get(0).map(cell).unwrap_or("");
        if first == TOTALS {
            break;
        }
        if row.iter().all(|c| cell(c).is_empty()) {
            continue;
        }
        let get = |i: usize, name: &str| {
            row.get(i).map(cell).ok_or_else(|| BillError::Line {
                line,
                why: format!("no {name}"),
            })
        };
        let bad = |why: String| BillError::Line { line, why };
        let code = get(currency, "货币种类")?;
        let currency = Currency::from_code(if code.is_empty() { "CNY" } else { code })
            .map_err(|_| bad(format!("unknown currency {code:?}")))?;
        let amount = |i: usize, name: &str| -> Result<Amount, BillError> {
            let t = get(i, name)?;
            Amount::parse(t, currency).map_err(|e| bad(format!("{name} {t:?}: {e}")))
        };
        let (kind, amount, refund_id) = match get(state, "交易状态")? {
            "SUCCESS" => (RecordKind::Payment, amount(total, "订单金额")?, None),
            "REFUND" => {
                let id = get(refund_no, "商户退款单号")?;
                if id.is_empty() {
                    return Err(bad("a refund without 商户退款单号".to_string()));
                }
                (
                    RecordKind::Refund,
                    amount(refund, "申请退款金额")?,
                    Some(id.to_string()),
                )
            }
            "REVOKED" => (RecordKind::Refund, amount(total, "订单金额")?, None),
            other => return Err(bad(format!("unknown 交易状态 {other:?}"))),
        };
        let request_id = get(request, "商户订单号")?.to_string();
        if request_id.is_empty() {
            return Err(bad("no 商户订单号".to_string()));
        }
        records.push(ProviderRecord {
            kind,
            request_id,
            trade_id: get(trade, "微信订单号")?.to_string(),
            amount,
            refund_id,
            at: get(at, "交易时间")?.to_string(),
            line,
            money: Default::default(),
        });
    }
    Ok(records)
}

/// Writes the bill of `lines` (the sandbox), with the merchant's ids and the totals.
pub fn write(appid: &str, mchid: &str, lines: &[(ProviderRecord, String)]) -> Vec<u8> {
    let q = |s: &str| format!("`{s}");
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    let (mut paid, mut refunded) = (0i64, 0i64);
    for (r, subject) in lines {
        let amount = r.amount.to_major_string();
        let mut row: Vec<String> = vec![String::new(); COLUMNS.len()];
        row[0] = r.at.clone();
        row[1] = appid.to_string();
        row[2] = mchid.to_string();
        row[3] = "0".to_string();
        row[5] = r.trade_id.clone();
        row[6] = r.request_id.clone();
        row[8] = "MICROPAY".to_string();
        row[10] = "OTHERS".to_string();
        row[11] = r.amount.currency().code().to_string();
        row[20] = subject.clone();
        row[22] = "0.00".to_string();
        row[23] = "0.60%".to_string();
        match (r.kind, &r.refund_id) {
            (RecordKind::Payment, _) => {
                paid += r.amount.minor();
                row[9] = "SUCCESS".to_string();
                row[12] = amount.clone();
                row[24] = amount;
                row[16] = "0.00".to_string();
                row[25] = "0.00".to_string();
            }
            (RecordKind::Refund, Some(id)) => {
                refunded += r.amount.minor();
                row[9] = "REFUND".to_string();
                row[14] = format!("{}-{id}", r.trade_id);
                row[15] = id.clone();
                row[16] = amount.clone();
                row[25] = amount;
                row[18] = "ORIGINAL".to_string();
                row[19] = "SUCCESS".to_string();
                row[12] = "0.00".to_string();
                row[24] = "0.00".to_string();
            }
            (RecordKind::Refund, None) => {
                refunded += r.amount.minor();
                row[9] = "REVOKED".to_string();
                row[12] = amount.clone();
                row[24] = amount;
                row[16] = "0.00".to_string();
                row[25] = "0.00".to_string();
            }
        }
        let _ = w.write_record(row.iter().map(|c| q(c)));
    }
    let yuan = |minor: i64| format!("{}.{:02}", minor / 100, minor % 100);
    let _ = w.write_record([
        TOTALS,
        "应结订单总金额",
        "退款总金额",
        "充值券退款总金额",
        "手续费总金额",
        "订单总金额",
        "申请退款总金额",
    ]);
    let _ = w.write_record([
        q(&lines.len().to_string()),
        q(&yuan(paid)),
        q(&yuan(refunded)),
        q("0.00"),
        q("0.00"),
        q(&yuan(paid)),
        q(&yuan(refunded)),
    ]);
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Amount {
        Amount::from_minor(minor, Currency::from_code("CNY").unwrap())
    }

    #[test]
    fn what_the_sandbox_writes_reads_back_and_bad_lines_are_named() {
        let record = |kind, id: &str, minor, refund: Option<&str>| ProviderRecord {
            kind,
            request_id: id.to_string(),
            trade_id: format!("42{id}"),
            amount: cny(minor),
            refund_id: refund.map(str::to_string),
            at: "2026-12-01 10:00:00".to_string(),
            line: 0,
            money: Default::default(),
        };
        let lines = vec![
            (
                record(RecordKind::Payment, "T1_a_1W", 1250, None),
                "咖啡".to_string(),
            ),
            (
                record(RecordKind::Refund, "T1_a_1W", 250, Some("T1_b_2R")),
                "咖啡".to_string(),
            ),
            (
                record(RecordKind::Refund, "T1_c_3W", 800, None),
                "x".to_string(),
            ),
        ];
        let bytes = write("wx1", "190", &lines);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("`SUCCESS") && text.contains("`REVOKED"),
            "{text}"
        );
        let back = parse(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        for (i, (r, _)) in lines.iter().enumerate() {
            assert_eq!(
                (
                    back[i].kind,
                    &back[i].request_id,
                    back[i].amount,
                    &back[i].refund_id
                ),
                (r.kind, &r.request_id, r.amount, &r.refund_id)
            );
            assert_eq!(back[i].line, i + 2);
        }
        let broken = text.replace("`REVOKED", "`WHATEVER");
        let e = parse(broken.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("WHATEVER"), "{e}");
        let e = parse(text.replace("商户订单号", "x").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("商户订单号"), "{e}");
    }
}
