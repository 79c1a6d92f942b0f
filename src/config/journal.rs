//! `[journal]`: where the journal file is.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournal {
    path: Option<String>,
}

impl Validator<'_> {
    pub(super) fn journal(&self, raw: RawJournal) -> Result<JournalConfig, ConfigError> {
        let path = self.required(
            raw.path,
            "journal",
            "path",
            "name the journal file, e.g. path = \"/var/lib/scanpay/journal.sqlite\"",
        )?;
        if path.is_empty() {
            return Err(self.invalid("journal", "path", &path, "must name a file"));
        }
        Ok(JournalConfig {
            path: self.path(&path),
        })
    }
}
