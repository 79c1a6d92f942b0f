//! The day's trade bill from the sandbox's ledger: the provider's record of a day, as lines,
//! and the zip of it served at a link that works for a short while, as the provider's does
//! (`alipay.data.dataservice.bill.downloadurl.query` hands the link out).

use chrono::{DateTime, NaiveDate, Utc};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::Sandbox;
use super::ledger::settle;
use super::server::{SandboxServer, encoded, plain};
use crate::gateway::{ProviderRecord, RecordKind, RecordMoney, alipay_openapi};
use crate::money::Amount;

/// Where the bill files are served.
pub(super) const BILL_PATH: &str = "/_sandbox/bill/";
const BILL_URL_LIFETIME_S: i64 = 30;

/// The link to the bill of `date` on `host`, working for 30 seconds from `now`.
pub(super) fn download_url(host: &str, date: &str, now: DateTime<Utc>) -> String {
    let expires = now.timestamp() + BILL_URL_LIFETIME_S;
    format!("http://{host}{BILL_PATH}{date}.zip?expires={expires}")
}

impl Sandbox {
    /// The provider's record of `[from, to)`: a payment line per trade paid then, a refund
    /// line per refund or cancel reversal made then, each with the trade's subject, as the
    /// daily bill lists them (times in Beijing time).
    pub fn bill(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(ProviderRecord, String)> {
        self.bill_of(from, to, false)
    }

    /// [`Sandbox::bill`] of WeChat Pay's trades (`wechat`) or of the others.
    pub fn bill_of(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        wechat: bool,
    ) -> Vec<(ProviderRecord, String)> {
        let now = self.clock.now();
        let in_day = |t: &DateTime<Utc>| *t >= from && *t < to;
        let when = |t: &DateTime<Utc>| {
            t.with_timezone(&crate::clock::beijing())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        let mut ledger = self.lock();
        let mut lines = Vec::new();
        for (request_id, trade) in ledger.trades.iter_mut() {
            settle(trade, now);
            if super::is_wechat_code(&trade.code) != wechat {
                continue;
            }
            let Some(amount) = trade.amount else {
                continue;
            };
            // A payment line states what the store received and the discounts, as the
            // trade's answers did; a refund line gives back its amount.
            let c = amount.currency();
            let paid_money = RecordMoney {
                received: trade.money.received,
                merchant_discount: Some(Amount::from_minor(
                    trade.money.merchant_discount_minor(),
                    c,
                )),
                platform_discount: Some(Amount::from_minor(
                    trade.money.platform_discount_minor(),
                    c,
                )),
            };
            let mut line = |kind, amount, refund_id, at: &DateTime<Utc>| {
                lines.push((
                    ProviderRecord {
                        kind,
                        request_id: request_id.clone(),
                        trade_id: trade.trade_no.clone(),
                        amount,
                        refund_id,
                        at: when(at),
                        line: 0,
                        money: if kind == RecordKind::Payment {
                            paid_money.clone()
                        } else {
                            RecordMoney::default()
                        },
                    },
                    trade.subject.clone(),
                ))
            };
            if let Some(paid) = trade.paid_at.filter(in_day) {
                line(RecordKind::Payment, amount, None, &paid);
            }
            if let Some(reversed) = trade.reversed_at.filter(in_day) {
                line(RecordKind::Refund, amount, None, &reversed);
            }
            for (refund_id, (refunded, at)) in &trade.refunds {
                if in_day(at) {
                    line(RecordKind::Refund, *refunded, Some(refund_id.clone()), at);
                }
            }
        }
        lines.sort_by(|a, b| a.0.at.cmp(&b.0.at));
        lines
    }
}

impl SandboxServer {
    /// The bill file itself: a zip of GBK CSV built from the ledger.
    pub(super) fn bill_file(&self, file: &str, query: &str) -> Response<Full<Bytes>> {
        let expires = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "expires")
            .and_then(|(_, v)| v.parse::<i64>().ok());
        if expires.is_none_or(|e| e < self.sandbox.now().timestamp()) {
            return plain(StatusCode::FORBIDDEN, "text/plain", "link expired".into());
        }
        let Some(date) = file
            .strip_suffix(".zip")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            return plain(StatusCode::NOT_FOUND, "text/plain", "no such bill".into());
        };
        let (from, to) = crate::clock::beijing_day(date);
        let lines = self.sandbox.bill(from, to);
        match alipay_openapi::bill::write_zip(&self.app_id, date, &lines) {
            Ok(zip) => encoded(StatusCode::OK, "application/zip", zip),
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        }
    }
}
