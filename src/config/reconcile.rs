//! `[reconcile]`: when the daemon compares the provider's record of the previous day with
//! the journal, and where the provider's report for a day lands.

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Validator;
use super::{ConfigError, GatewayKind};

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time of day (Beijing time, the provider's) at which the daemon reconciles the
    /// previous day.
    pub daily_at: chrono::NaiveTime,
    /// The provider's file for a day, `{date}` standing for YYYY-MM-DD (required for AMS,
    /// whose reports arrive outside the API; the Open Platform's bill is downloaded).
    pub report_file: Option<String>,
}

impl ReconcileConfig {
    /// The report file for `date`, if one is configured.
    pub fn report_file_for(&self, date: chrono::NaiveDate) -> Option<PathBuf> {
        self.report_file
            .as_ref()
            .map(|t| PathBuf::from(t.replace("{date}", &date.format("%Y-%m-%d").to_string())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconcile {
    daily_at: Option<String>,
    report_file: Option<String>,
}

impl Validator<'_> {
    pub(super) fn reconcile(
        &self,
        raw: RawReconcile,
        kind: GatewayKind,
    ) -> Result<ReconcileConfig, ConfigError> {
        let at = self.required(
            raw.daily_at,
            "reconcile",
            "daily_at",
            "the Beijing time to reconcile the previous day, e.g. daily_at = \"10:30\" (the Open Platform's bill is ready from about 10:00)",
        )?;
        let daily_at = chrono::NaiveTime::parse_from_str(&at, "%H:%M")
            .map_err(|_| self.invalid("reconcile", "daily_at", &at, "use HH:MM, e.g. \"10:30\""))?;
        if kind == GatewayKind::AlipayAms && raw.report_file.is_none() {
            return Err(self.missing(
                "reconcile",
                "report_file",
                "AMS delivers its reports outside the API: name where the day's report lands, with {date} for YYYY-MM-DD",
            ));
        }
        let report_file = match raw.report_file {
            None => None,
            Some(t) if !t.contains("{date}") => {
                return Err(self.invalid(
                    "reconcile",
                    "report_file",
                    &t,
                    "must contain {date}, which stands for the day (YYYY-MM-DD)",
                ));
            }
            Some(t) => Some(self.path(&t).display().to_string()),
        };
        Ok(ReconcileConfig {
            daily_at,
            report_file,
        })
    }
}
