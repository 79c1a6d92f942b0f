//! `[watchdog]`: how long a payment in doubt is inquired before it is cancelled, and how
//! often.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;
use crate::engine::WatchdogConfig;

/// docs/protocol.md §9.2: query for about 60 s after an unclear answer, then cancel.
const SALE_DEADLINE_S_DEFAULT: u64 = 60;
const SALE_DEADLINE_S_RANGE: std::ops::RangeInclusive<u64> = 5..=900;
const INQUIRY_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 500..=60_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatchdog {
    sale_deadline_s: Option<u64>,
    inquiry_interval_ms: Option<u64>,
}

impl Validator<'_> {
    pub(super) fn watchdog(&self, raw: RawWatchdog) -> Result<WatchdogConfig, ConfigError> {
        let deadline_s = self.in_range(
            "watchdog",
            "sale_deadline_s",
            raw.sale_deadline_s.unwrap_or(SALE_DEADLINE_S_DEFAULT),
            SALE_DEADLINE_S_RANGE,
            "seconds",
        )?;
        if let Some(interval_ms) = raw.inquiry_interval_ms {
            self.in_range(
                "watchdog",
                "inquiry_interval_ms",
                interval_ms,
                INQUIRY_INTERVAL_MS_RANGE,
                "milliseconds",
            )?;
            if interval_ms >= deadline_s * 1000 {
                return Err(self.invalid(
                    "watchdog",
                    "inquiry_interval_ms",
                    interval_ms,
                    "must be shorter than sale_deadline_s, or no inquiry happens before the cancel",
                ));
            }
        }
        Ok(WatchdogConfig {
            sale_deadline: Duration::from_secs(deadline_s),
            inquiry_interval: raw.inquiry_interval_ms.map(Duration::from_millis),
        })
    }
}
