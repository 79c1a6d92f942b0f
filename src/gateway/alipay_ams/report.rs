//! AMS (Antom) transaction reports, which reach the merchant outside the API (SFTP or the
//! merchant portal): a CSV with a header row. Columns are found by name, in any order, and
//! others are ignored:
//!
//! | column | meaning |
//! |---|---|
//! | `paymentRequestId` | the attempt's request id (required) |
//! | `paymentId` | the provider's payment id (required) |
//! | `transactionType` | `PAYMENT`, `REFUND` or `CANCEL` (required; others are skipped, e.g. `FEE`) |
//! | `transactionAmountValue` | whole minor units, as in the API (`1231` = 12.31 USD) (required) |
//! | `transactionAmountCurrency` | ISO 4217 (required) |
//! | `refundRequestId` | the refund's id, for `REFUND` rows |
//! | `transactionTime` | when, as written |
//!
//! Parsing is strict: a row that cannot be read is an error naming its line and column.

use crate::gateway::records::{ProviderRecord, RecordKind};
use crate::money::{Amount, Currency};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{file}: {0}", file = .1)]
    Csv(String, String),
    #[error("{file}: the header lacks the column {column}")]
    MissingColumn { file: String, column: &'static str },
    #[error("{file} line {line}: {why}")]
    Row {
        file: String,
        line: usize,
        why: String,
    },
}

const REQUIRED: [&str; 5] = [
    "paymentRequestId",
    "paymentId",
    "transactionType",
    "transactionAmountValue",
    "transactionAmountCurrency",
];

pub fn parse(file: &str, bytes: &[u8]) -> Result<Vec<ProviderRecord>, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| ReportError::Csv(e.to_string(), file.to_string()))?
        .clone();
    let column = |name: &'static str| header.iter().position(|h| h == name);
    let mut at = [0usize; 5];
    for (slot, name) in at.iter_mut().zip(REQUIRED) {
        *slot = column(name).ok_or(ReportError::MissingColumn {
            file: file.to_string(),
            column: name,
        })?;
    }
    let refund_at = column("refundRequestId");
    let time_at = column("transactionTime");
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let err = |why: String| ReportError::Row {
            file: file.to_string(),
            line,
            why,
        };
        let row = row.map_err(|e| err(e.to_string()))?;
        let field = |i: usize| row.get(i).unwrap_or("");
        let [request_id, payment_id, kind, value, currency] = at.map(field);
        let kind = match kind {
            "PAYMENT" => RecordKind::Payment,
            "REFUND" | "CANCEL" => RecordKind::Refund,
            _ => continue,
        };
        if request_id.is_empty() {
            return Err(err("paymentRequestId is empty".into()));
        }
        let currency = Currency::from_code(currency)
            .map_err(|e| err(format!("transactionAmountCurrency: {e}")))?;
        // Money out may be written negative; a payment may not.
        let digits = match value.strip_prefix('-') {
            Some(_) if kind == RecordKind::Payment => {
                return Err(err(format!(
                    "transactionAmountValue {value:?} is negative for a PAYMENT"
                )));
            }
            Some(d) => d,
            None => value,
        };
        let minor: i64 = digits.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
            err(format!(
                "transactionAmountValue {value:?}: expected whole minor units (1231 for 12.31 USD)"
            ))
        })?;
        let refund_id = refund_at
            .map(field)
            .filter(|id| !id.is_empty() && kind == RecordKind::Refund)
            .map(str::to_string);
        records.push(ProviderRecord {
            kind,
            request_id: request_id.to_string(),
            trade_id: payment_id.to_string(),
            amount: Amount::from_minor(minor, currency),
            refund_id,
            at: time_at.map(field).unwrap_or("").to_string(),
            line,
            money: Default::default(),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "transactionId,paymentRequestId,paymentId,transactionType,transactionAmountValue,transactionAmountCurrency,transactionTime,refundRequestId\n\
t1,T1_a,2024010111401080010018882020000001,PAYMENT,1231,USD,2024-01-01T12:00:02+08:00,\n\
t2,T1_a,2024010111401080010018882020000001,REFUND,-100,USD,2024-01-01T13:00:00+08:00,R1\n\
t3,T1_b,2024010111401080010018882020000002,PAYMENT,500,JPY,2024-01-01T12:05:00+08:00,\n\
t4,T1_b,2024010111401080010018882020000002,CANCEL,500,JPY,2024-01-01T12:05:30+08:00,\n\
t5,,,FEE,3,USD,2024-01-01T23:59:59+08:00,\n";

    #[test]
    fn payments_refunds_and_cancels_read_in_minor_units() {
        let r = parse("r.csv", REPORT.as_bytes()).unwrap();
        assert_eq!(r.len(), 4, "the fee row is not a trade");
        assert_eq!(r[0].amount.to_major_string(), "12.31");
        assert_eq!(
            (r[1].kind, r[1].refund_id.as_deref()),
            (RecordKind::Refund, Some("R1"))
        );
        assert_eq!(r[1].amount.minor(), 100);
        assert_eq!(r[2].amount.to_major_string(), "500");
        assert_eq!(
            (r[3].kind, r[3].refund_id.as_deref()),
            (RecordKind::Refund, None)
        );
        assert_eq!(r[3].line, 5);
    }

    #[test]
    fn a_bad_row_or_header_is_an_error_naming_it() {
        let e = parse("r.csv", REPORT.replace(",1231,", ",12.31,").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r.csv line 2:") && e.contains("minor units"),
            "{e}"
        );
        let e = parse(
            "r.csv",
            REPORT
                .replace(",USD,2024-01-01T12", ",XXX,2024-01-01T12")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("r.csv line 2:"), "{e}");
        let e = parse(
            "r.csv",
            REPORT.replace("paymentId,", "payment_id,").as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lacks the column paymentId"), "{e}");
    }
}
