//! `[sales]`: how sales are taken beyond the scanned code: how long a code the merchant
//! shows for the customer to scan stays payable.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;

/// docs/gateways.md §11: two minutes is enough to open the wallet and scan. Rounded up to
/// whole minutes, the unit the Open Platform takes.
const QR_TIMEOUT_S_DEFAULT: u64 = 120;
/// The shortest code both gateways issue is one minute; the Open Platform's
/// `qr_code_timeout_express` goes up to two hours, the longest scanpay keeps one open.
const QR_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u64> = 30..=7200;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSales {
    qr_timeout_s: Option<u64>,
}

impl Validator<'_> {
    /// How long a presented code may be paid before the watchdog cancels it.
    pub(super) fn sales(&self, raw: RawSales) -> Result<Duration, ConfigError> {
        let s = self.in_range(
            "sales",
            "qr_timeout_s",
            raw.qr_timeout_s.unwrap_or(QR_TIMEOUT_S_DEFAULT),
            QR_TIMEOUT_S_RANGE,
            "seconds",
        )?;
        Ok(Duration::from_secs(s))
    }
}
