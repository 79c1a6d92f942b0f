//! The Open Platform's daily trade bill (`bill_type=trade`): a zip holding GBK-encoded CSV
//! files, the detail one named `…_业务明细.csv` (beside a `…_业务明细(汇总).csv` summary).
//! The detail file has `#` comment lines around a header row and one row per trade (`交易`)
//! or refund (`退款`), values padded with tabs. Parsing is strict: a row that cannot be read
//! is an error naming its line and column, never skipped.

use std::io::{Cursor, Read, Write};

use chrono::NaiveDate;

use crate::gateway::records::{ProviderRecord, RecordKind, RecordMoney};
use crate::money::{Amount, Currency};

pub const TRADE_NO: &str = "支付宝交易号";
pub const OUT_TRADE_NO: &str = "商户订单号";
pub const KIND: &str = "业务类型";
pub const FINISHED: &str = "完成时间";
pub const AMOUNT: &str = "订单金额（元）";
pub const REFUND_NO: &str = "退款批次号/请求号";
/// What the store received of the line (the provider's 实收金额 column).
pub const RECEIVED: &str = "商家实收（元）";
pub const MERCHANT_DISCOUNT: &str = "商家优惠（元）";
pub const PLATFORM_DISCOUNT: &str = "支付宝优惠（元）";

/// The detail file's columns, in the provider's order.
pub const COLUMNS: [&str; 25] = [
    TRADE_NO,
    OUT_TRADE_NO,
    KIND,
    "商品名称",
    "创建时间",
    FINISHED,
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    AMOUNT,
    RECEIVED,
    "支付宝红包（元）",
    "集分宝（元）",
    PLATFORM_DISCOUNT,
    MERCHANT_DISCOUNT,
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    REFUND_NO,
    "服务费（元）",
    "分润（元）",
    "备注",
];

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("the bill is not a readable zip: {0}")]
    Zip(String),
    #[error("the bill holds no detail file (…_业务明细.csv); it holds: {0}")]
    NoDetail(String),
    #[error("{file}: not GBK text")]
    Encoding { file: String },
    #[error("{file}: no header row with {TRADE_NO}")]
    NoHeader { file: String },
    #[error("{file}: the header lacks the column {column}")]
    MissingColumn { file: String, column: &'static str },
    #[error("{file} line {line}: {why}")]
    Row {
        file: String,
        line: usize,
        why: String,
    },
}

/// Reads the detail rows out of a downloaded bill zip.
pub fn parse_zip(bytes: &[u8]) -> Result<Vec<ProviderRecord>, BillError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BillError::Zip(e.to_string()))?;
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(|e| BillError::Zip(e.to_string()))?;
        // Names are GBK without the zip's UTF-8 flag in the provider's files.
        let raw = file.name_raw();
        let name = match std::str::from_utf8(raw) {
            Ok(n) => n.to_string(),
            Err(_) => encoding_rs::GBK.decode(raw).0.into_owned(),
        };
        if name.ends_with("业务明细.csv") && !name.contains("汇总") {
            let mut content = Vec::new();
            file.read_to_end(&mut content)
                .map_err(|e| BillError::Zip(format!("{name}: {e}")))?;
            return parse_detail(&name, &content);
        }
        names.push(name);
    }
    Err(BillError::NoDetail(names.join(", ")))
}

/// Parses one detail CSV (GBK bytes).
pub fn parse_detail(file: &str, gbk: &[u8]) -> Result<Vec<ProviderRecord>, BillError> {
    let (text, _, bad) = encoding_rs::GBK.decode(gbk);
    if bad {
        return Err(BillError::Encoding {
            file: file.to_string(),
        });
    }
    let row_err = |line: usize, why: String| BillError::Row {
        file: file.to_string(),
        line,
        why,
    };
    let mut header: Option<Vec<String>> = None;
    let mut at = [0usize; 5];
    let mut records = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split(trimmed).map_err(|why| row_err(line, why))?;
        let Some(columns) = &header else {
            if fields.first().map(String::as_str) != Some(TRADE_NO) {
                return Err(BillError::NoHeader {
                    file: file.to_string(),
                });
            }
            for (slot, column) in
                at.iter_mut()
                    .zip([TRADE_NO, OUT_TRADE_NO, KIND, AMOUNT, REFUND_NO])
            {
                *slot =
                    fields
                        .iter()
                        .position(|f| f == column)
                        .ok_or(BillError::MissingColumn {
                            file: file.to_string(),
                            column,
                        })?;
            }
            header = Some(fields);
            continue;
        };
        if fields.len() != columns.len() {
            return Err(row_err(
                line,
                format!("{} fields, the header has {}", fields.len(), columns.len()),
            ));
        }
        let finished = columns
            .iter()
            .position(|c| c == FINISHED)
            .map(|i| fields[i].clone())
            .unwrap_or_default();
        // The money columns are read when the header has them, as strictly as the amount.
        let optional = |column: &str| -> Result<Option<Amount>, BillError> {
            let Some(i) = columns.iter().position(|c| c == column) else {
                return Ok(None);
            };
            let text = fields[i].as_str();
            if text.is_empty() {
                return Ok(None);
            }
            let cny = Currency::from_code("CNY").map_err(|e| row_err(line, e.to_string()))?;
            let digits = text.strip_prefix('-').unwrap_or(text);
            Amount::parse(digits, cny)
                .map(Some)
                .map_err(|e| row_err(line, format!("{column} {text:?}: {e}")))
        };
        let money = RecordMoney {
            received: optional(RECEIVED)?,
            merchant_discount: optional(MERCHANT_DISCOUNT)?,
            platform_discount: optional(PLATFORM_DISCOUNT)?,
        };
        let [trade_no, out_trade_no, kind, amount, refund_no] = at.map(|i| fields[i].as_str());
        if out_trade_no.is_empty() {
            return Err(row_err(line, format!("{OUT_TRADE_NO} is empty")));
        }
        let kind = match kind {
            "交易" => RecordKind::Payment,
            "退款" => RecordKind::Refund,
            other => {
                return Err(row_err(
                    line,
                    format!("{KIND} {other:?} is neither 交易 nor 退款"),
                ));
            }
        };
        let cny = Currency::from_code("CNY").map_err(|e| row_err(line, e.to_string()))?;
        let (negative, digits) = match amount.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, amount),
        };
        let amount = Amount::parse(digits, cny)
            .map_err(|e| row_err(line, format!("{AMOUNT} {amount:?}: {e}")))?;
        // Refunds are negative in the bill, payments positive; a sign the other way round
        // means a layout this parser does not know.
        if negative != (kind == RecordKind::Refund) || !amount.is_positive() {
            return Err(row_err(
                line,
                format!("{AMOUNT} {} has the wrong sign for its kind", fields[at[3]]),
            ));
        }
        records.push(ProviderRecord {
            kind,
            request_id: out_trade_no.to_string(),
            trade_id: trade_no.to_string(),
            amount,
            refund_id: (kind == RecordKind::Refund && !refund_no.is_empty())
                .then(|| refund_no.to_string()),
            at: finished,
            line,
            money,
        });
    }
    if header.is_none() {
        return Err(BillError::NoHeader {
            file: file.to_string(),
        });
    }
    Ok(records)
}

/// A CSV line: commas separate fields, each padded with tabs or spaces; a field may be quoted.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(|f| f.trim().to_string()).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a bill as the provider does (the sandbox serves it): detail and summary files,
/// GBK, tab-padded values, in a zip.
pub fn write_zip(
    account: &str,
    date: NaiveDate,
    records: &[(ProviderRecord, String)],
) -> Result<Vec<u8>, String> {
    let day = date.format("%Y%m%d");
    let mut detail = String::new();
    detail.push_str("#支付宝业务明细查询\n");
    detail.push_str(&format!("#账号：[{account}]\n"));
    detail.push_str(&format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\n",
        date.format("%Y年%m月%d日"),
        date.succ_opt().unwrap_or(date).format("%Y年%m月%d日")
    ));
    detail.push_str("#-----------------------------------------业务明细列表----------------------------------------\n");
    detail.push_str(&COLUMNS.join(","));
    detail.push('\n');
    let (mut trades, mut refunds) = (0, 0);
    for (r, subject) in records {
        let signed = match r.kind {
            RecordKind::Payment => {
                trades += 1;
                r.amount.to_major_string()
            }
            RecordKind::Refund => {
                refunds += 1;
                format!("-{}", r.amount.to_major_string())
            }
        };
        let kind = match r.kind {
            RecordKind::Payment => "交易",
            RecordKind::Refund => "退款",
        };
        // Money columns carry the line's sign, as the amount does; unstated ones are 0.00.
        let sign = if r.kind == RecordKind::Refund {
            "-"
        } else {
            ""
        };
        let column = |a: Option<Amount>, or: &str| match a {
            Some(a) if a.is_positive() => format!("{sign}{}", a.to_major_string()),
            Some(a) => a.to_major_string(),
            None => or.to_string(),
        };
        let received = column(r.money.received, &signed);
        let merchant = column(r.money.merchant_discount, "0.00");
        let platform = column(r.money.platform_discount, "0.00");
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|c| match *c {
                TRADE_NO => r.trade_id.clone(),
                OUT_TRADE_NO => r.request_id.clone(),
                KIND => kind.to_string(),
                "商品名称" => subject.replace(',', "，"),
                "创建时间" | FINISHED => r.at.clone(),
                AMOUNT => signed.clone(),
                RECEIVED => received.clone(),
                MERCHANT_DISCOUNT => merchant.clone(),
                PLATFORM_DISCOUNT => platform.clone(),
                REFUND_NO => r.refund_id.clone().unwrap_or_default(),
                "终端号" => "T0001".to_string(),
                "对方账户" => "159****5620".to_string(),
                "券名称" | "备注" | "门店编号" | "门店名称" | "操作员" => {
                    String::new()
                }
                _ => "0.00".to_string(),
            })
            .map(|v| format!("{v}\t"))
            .collect();
        detail.push_str(&row.join(","));
        detail.push('\n');
    }
    detail.push_str("#-----------------------------------------业务明细列表结束------------------------------------\n");
    detail.push_str(&format!("#交易合计：{trades}笔，退款合计：{refunds}笔\n"));
    let summary = format!(
        "#支付宝业务汇总查询\n#账号：[{account}]\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\n合计,,{trades},{refunds}\n"
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        (format!("{account}_{day}_业务明细.csv"), detail),
        (format!("{account}_{day}_业务明细(汇总).csv"), summary),
    ] {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        zip.write_all(&gbk).map_err(|e| e.to_string())?;
    }
    let cursor = zip.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk(text: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(text).0.into_owned()
    }

    const HAND_WRITTEN: &str = "#支付宝业务明细查询\n\
#账号：[20880000000000000156]\n\
#起始日期：[2026年11月21日 00:00:00]   终止日期：[2026年11月22日 00:00:00]\n\
#-----------------------------------------业务明细列表----------------------------------------\n\
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\n\
2026112122001446881000041395\t,T0001_20261121100000_aa\t,交易\t,拿铁咖啡（大杯）\t,2026-11-21 10:00:00\t,2026-11-21 10:00:02\t,S0001\t,南京西路店\t,\t,T0001\t,159****5620\t,32.50\t,32.50\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,-0.20\t,0.00\t,\n\
2026112122001446881000041395\t,T0001_20261121100000_aa\t,退款\t,拿铁咖啡（大杯）\t,2026-11-21 10:00:00\t,2026-11-21 11:00:00\t,S0001\t,南京西路店\t,\t,T0001\t,159****5620\t,-2.50\t,-2.50\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,R-T0001-1\t,0.02\t,0.00\t,部分退款\n\
2026112122001446881000041396\t,T0001_20261121100500_bb\t,退款\t,\"茶, 绿\"\t,2026-11-21 10:05:00\t,2026-11-21 10:05:09\t,S0001\t,\t,\t,T0001\t,159****5620\t,-8.00\t,-8.00\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,0.05\t,0.00\t,\n\
#-----------------------------------------业务明细列表结束------------------------------------\n\
#交易合计：1笔，退款合计：2笔\n\
#导出时间：[2026年11月22日 10:00:00]\n";

    #[test]
    fn a_hand_written_bill_with_a_partial_refund_and_a_cancel_reads_exactly() {
        let records = parse_detail("b.csv", &gbk(HAND_WRITTEN)).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].kind, RecordKind::Payment);
        assert_eq!(records[0].request_id, "T0001_20261121100000_aa");
        assert_eq!(records[0].amount.to_major_string(), "32.50");
        assert_eq!(records[0].refund_id, None);
        assert_eq!(records[0].money.received.map(|a| a.minor()), Some(3250));
        assert_eq!(
            records[0].money.merchant_discount.map(|a| a.minor()),
            Some(0)
        );
        assert_eq!(records[1].kind, RecordKind::Refund);
        assert_eq!(records[1].amount.to_major_string(), "2.50");
        assert_eq!(records[1].refund_id.as_deref(), Some("R-T0001-1"));
        assert_eq!(records[1].at, "2026-11-21 11:00:00");
        // A refund without a refund number: a cancel that gave the money back.
        assert_eq!(records[2].refund_id, None);
        assert_eq!(records[2].line, 8);
    }

    #[test]
    fn a_bad_row_is_an_error_naming_its_line() {
        let wrong_sign = HAND_WRITTEN.replacen("32.50\t,32.50", "-32.50\t,32.50", 1);
        let wrong_kind = HAND_WRITTEN.replacen(",交易\t,", ",转账\t,", 1);
        let not_money = HAND_WRITTEN.replacen("32.50\t,32.50", "3x.50\t,32.50", 1);
        let short_row = HAND_WRITTEN.replacen(",-0.20\t,0.00\t,", ",", 1);
        let received_not_money = HAND_WRITTEN.replacen("32.50\t,32.50", "32.50\t,32.5x", 1);
        for text in [
            wrong_sign,
            wrong_kind,
            not_money,
            short_row,
            received_not_money,
        ] {
            let e = parse_detail("b.csv", &gbk(&text)).unwrap_err().to_string();
            assert!(e.starts_with("b.csv line 6:"), "{e}");
        }
        let e = parse_detail("b.csv", &gbk("#only comments\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no header"), "{e}");
        assert!(matches!(
            parse_detail("b.csv", &[0x81, 0x20]),
            Err(BillError::Encoding { .. })
        ));
    }

    #[test]
    fn what_the_sandbox_writes_reads_back_the_same() {
        let cny = Currency::from_code("CNY").unwrap();
        let records = vec![
            (
                ProviderRecord {
                    kind: RecordKind::Payment,
                    request_id: "T1_a".into(),
                    trade_id: "SBX1".into(),
                    amount: Amount::parse("12.50", cny).unwrap(),
                    refund_id: None,
                    at: "2026-11-21 10:00:02".into(),
                    line: 0,
                    money: RecordMoney {
                        received: Some(Amount::parse("10.50", cny).unwrap()),
                        merchant_discount: Some(Amount::parse("2.00", cny).unwrap()),
                        platform_discount: None,
                    },
                },
                "咖啡, 大杯".to_string(),
            ),
            (
                ProviderRecord {
                    kind: RecordKind::Refund,
                    request_id: "T1_a".into(),
                    trade_id: "SBX1".into(),
                    amount: Amount::parse("0.01", cny).unwrap(),
                    refund_id: Some("R1".into()),
                    at: "2026-11-21 11:00:00".into(),
                    line: 0,
                    money: RecordMoney::default(),
                },
                String::new(),
            ),
        ];
        let zip = write_zip(
            "2088",
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            &records,
        )
        .unwrap();
        let read = parse_zip(&zip).unwrap();
        assert_eq!(read.len(), 2);
        for (got, (want, _)) in read.iter().zip(&records) {
            assert_eq!(
                (got.kind, &got.request_id, got.amount, &got.refund_id),
                (want.kind, &want.request_id, want.amount, &want.refund_id)
            );
        }
        let m = &read[0].money;
        assert_eq!(m.received.map(|a| a.minor()), Some(1050));
        assert_eq!(m.merchant_discount.map(|a| a.minor()), Some(200));
        assert_eq!(m.platform_discount.map(|a| a.minor()), Some(0));
        // A refund line's received is the refund, given back.
        assert_eq!(read[1].money.received, Some(read[1].amount));
        assert!(matches!(parse_zip(b"not a zip"), Err(BillError::Zip(_))));
    }
}
