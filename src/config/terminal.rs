//! `[terminal]`: the terminal's id, currency, sale limit, store and default subject.

use serde::Deserialize;

use super::ConfigError;
use super::validate::{Validator, is_token};
use crate::engine::TerminalConfig;
use crate::money::{Amount, Currency};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTerminal {
    id: Option<String>,
    currency: Option<String>,
    max_amount: Option<String>,
    store_id: Option<String>,
    subject: Option<String>,
    time_zone: Option<String>,
}

impl RawTerminal {
    pub(super) fn time_zone_set(&self) -> bool {
        self.time_zone.is_some()
    }
}

impl Validator<'_> {
    pub(super) fn terminal(&self, raw: RawTerminal) -> Result<TerminalConfig, ConfigError> {
        let id = self.required(
            raw.id,
            "terminal",
            "id",
            "name this terminal, e.g. id = \"T0001\"",
        )?;
        if !is_token(&id, 32, |b| b.is_ascii_alphanumeric()) {
            return Err(self.invalid(
                "terminal",
                "id",
                &id,
                "use 1 to 32 ASCII letters and digits; it becomes part of every gateway request id",
            ));
        }
        let currency_text = self.required(
            raw.currency,
            "terminal",
            "currency",
            "set the ISO 4217 currency, e.g. currency = \"CNY\"",
        )?;
        let currency = Currency::from_code(&currency_text)
            .map_err(|e| self.invalid("terminal", "currency", &currency_text, e.to_string()))?;
        let max_text = self.required(
            raw.max_amount,
            "terminal",
            "max_amount",
            "set the largest sale this terminal may take, e.g. max_amount = \"5000.00\"",
        )?;
        let max_amount = Amount::parse(&max_text, currency)
            .map_err(|e| self.invalid("terminal", "max_amount", &max_text, e.to_string()))?;
        if !max_amount.is_positive() {
            return Err(self.invalid("terminal", "max_amount", &max_text, "must be above zero"));
        }
        if let Some(store) = &raw.store_id
            && (store.is_empty() || store.len() > 32 || store.chars().any(char::is_control))
        {
            return Err(self.invalid(
                "terminal",
                "store_id",
                store,
                "use 1 to 32 printable characters",
            ));
        }
        let subject = raw.subject.unwrap_or_else(|| "Purchase".to_string());
        if subject.is_empty()
            || subject.chars().count() > 128
            || subject.chars().any(char::is_control)
        {
            return Err(self.invalid(
                "terminal",
                "subject",
                &subject,
                "use 1 to 128 printable characters",
            ));
        }
        let zone = match &raw.time_zone {
            None => crate::clock::StoreZone::Host,
            Some(text) => crate::clock::StoreZone::parse(text)
                .map_err(|e| self.invalid("terminal", "time_zone", text, e))?,
        };
        Ok(TerminalConfig {
            zone,
            id,
            currency,
            max_amount,
            store_id: raw.store_id,
            subject,
        })
    }
}
