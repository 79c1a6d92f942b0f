//! Arming and ending sales: the one sale the next payment code is charged to, aborting it,
//! expiring what an earlier run left, and reading a sale whole.

use rand::Rng;

use super::*;
use crate::events::Event;
use crate::journal::{JournalError, NewSale};
use crate::state::SaleState;
use crate::view::SaleView;
use crate::watchdog::Work;

impl Engine {
    /// Lets go of the sales an earlier run left open: nobody is at the till for them. Those
    /// waiting for a scan expire; those in doubt take no further scan, so however the
    /// watchdog ends their attempt, the sale ends with it instead of reopening unattended.
    pub fn release_earlier_sales(&self) -> Result<Vec<SaleView>, JournalError> {
        let mut expired = Vec::new();
        for sale in self.journal.open_sales()? {
            if sale.state == SaleState::Processing
                && self.armed().as_deref() != Some(sale.id.as_str())
            {
                self.journal.no_more_attempts(&sale.id)?;
            }
            if sale.state == SaleState::AwaitingScan
                && self.armed().as_deref() != Some(sale.id.as_str())
            {
                self.journal.close_sale(
                    &sale.id,
                    SaleState::Expired,
                    "scanpay restarted before a payment code was scanned",
                    self.clock.now(),
                )?;
                expired.push(self.finish(&sale.id)?);
            }
        }
        Ok(expired)
    }

    /// Finishes what an earlier run left open: every attempt in doubt is resolved (with the
    /// same request ids) and sales still awaiting a scan are expired, before new sales start.
    pub async fn recover(&self) -> Result<Vec<SaleView>, JournalError> {
        let mut finished = Vec::new();
        for attempt in self.journal.open_attempts()? {
            let Some(_claim) = self.owners.claim(&attempt.request_id) else {
                continue;
            };
            tracing::warn!(request_id = %attempt.request_id, state = %attempt.state, "resuming attempt left open");
            let a = self
                .resolver
                .resolve(attempt, self.settings.cancel_give_up_after)
                .await?;
            finished.push(self.finish(&a.sale_id)?);
        }
        for refund in self.journal.open_refunds()? {
            let Some(_claim) = self.owners.claim_work(Work::Refund, &refund.request_id) else {
                continue;
            };
            tracing::warn!(refund = %refund.request_id, state = %refund.state, "resuming refund left open");
            self.resolver
                .resolve_refund(refund, self.settings.cancel_give_up_after)
                .await?;
        }
        finished.extend(self.release_earlier_sales()?);
        Ok(finished)
    }

    /// Opens a sale and makes it the one the next payment code is charged to.
    pub fn arm(&self, request: SaleRequest) -> Result<SaleView, EngineError> {
        let terminal = &self.settings.terminal;
        let amount = request.amount;
        if amount.currency() != terminal.currency {
            return Err(EngineError::WrongCurrency {
                amount,
                terminal: terminal.currency.code(),
            });
        }
        if !amount.is_positive() {
            return Err(EngineError::NotPositive(amount));
        }
        if amount.minor() > terminal.max_amount.minor() {
            return Err(EngineError::AboveLimit {
                amount,
                max: terminal.max_amount,
            });
        }
        if self.is_stopping() {
            return Err(EngineError::Preflight {
                code: "unavailable",
                why: "scanpay is stopping; start the sale again in a moment".into(),
            });
        }
        if let Some(check) = &self.preflight
            && let Err(why) = check.check()
        {
            return Err(EngineError::Preflight {
                code: why.0,
                why: why.1,
            });
        }
        check_text("reference", request.reference.as_deref(), 64)?;
        check_text("subject", request.subject.as_deref(), 128)?;
        check_text("idempotency key", request.idempotency_key.as_deref(), 128)?;
        request.basket.check(amount).map_err(EngineError::Basket)?;
        // Its texts reach the provider and the receipt: no invisible characters, as above.
        if let Some((field, _)) = request
            .basket
            .texts()
            .into_iter()
            .find(|(_, t)| t.chars().any(is_format_char))
        {
            return Err(EngineError::Basket(crate::money::basket::BasketError {
                field,
                why: "printable text, no format (Cf) characters".to_string(),
            }));
        }

        let mut slots = lock(&self.slots);
        if let Some(armed) = slots.armed_id().map(str::to_string) {
            match self.journal.sale(&armed)? {
                Some(s) if !s.state.is_final() => {
                    // The register retrying the same request gets the same sale.
                    if request.idempotency_key.is_some()
                        && s.idempotency_key == request.idempotency_key
                    {
                        return Ok(self.view(&s.id)?);
                    }
                    return Err(EngineError::Busy(armed));
                }
                _ => slots.armed = None,
            }
        }
        let now = self.clock.now();
        let new = NewSale {
            id: new_sale_id(terminal.zone.date_of(now)),
            amount,
            reference: request.reference,
            subject: request.subject.unwrap_or_else(|| terminal.subject.clone()),
            idempotency_key: request.idempotency_key,
            max_attempts: request.max_attempts.max(1),
            supersede: request.supersede,
            basket: request.basket,
        };
        let supersede = new.supersede && new.reference.is_some();
        let (sale, created) = self.journal.create_sale(&new, now)?;
        if supersede {
            // A sale it replaced is cancelled now, not at its deadline.
            self.wake.notify_one();
        }
        if created || !sale.state.is_final() {
            slots.armed = Some(sale.clone());
        }
        drop(slots);
        let view = self.view(&sale.id)?;
        if created {
            tracing::info!(sale_id = %sale.id, amount = %sale.amount, "sale armed");
            self.observer
                .event(&Event::SaleArmed { sale: view.clone() });
        }
        Ok(view)
    }

    /// Ends the armed sale unpaid before any payment code was charged.
    pub fn abort(&self, sale_id: &str, reason: &str) -> Result<SaleView, EngineError> {
        let mut slots = lock(&self.slots);
        let sale = self
            .journal
            .sale(sale_id)?
            .ok_or_else(|| JournalError::NoSale(sale_id.to_string()))?;
        if sale.state == SaleState::Processing {
            return Err(EngineError::InProgress(sale.id));
        }
        if sale.state == SaleState::AwaitingScan {
            self.journal
                .close_sale(sale_id, SaleState::Cancelled, reason, self.clock.now())?;
        }
        if slots.armed_id() == Some(sale_id) {
            slots.armed = None;
        }
        drop(slots);
        Ok(self.finish(sale_id)?)
    }

    /// Ends the armed sale, if one waits for a scan, as expired (its input ended): it is
    /// announced finished like any other.
    pub fn expire_armed(&self, reason: &str) -> Result<Option<SaleView>, EngineError> {
        let mut slots = lock(&self.slots);
        let Some(sale_id) = slots.armed_id().map(str::to_string) else {
            return Ok(None);
        };
        let sale = self
            .journal
            .sale(&sale_id)?
            .ok_or_else(|| JournalError::NoSale(sale_id.clone()))?;
        if sale.state != SaleState::AwaitingScan {
            return Ok(None);
        }
        self.journal
            .close_sale(&sale_id, SaleState::Expired, reason, self.clock.now())?;
        slots.armed = None;
        drop(slots);
        Ok(Some(self.finish(&sale_id)?))
    }

    /// Reads a sale whole and tells the outputs it finished, if it has.
    fn finish(&self, sale_id: &str) -> Result<SaleView, JournalError> {
        crate::watchdog::finish(&self.journal, &*self.observer, sale_id)
    }

    pub fn view(&self, sale_id: &str) -> Result<SaleView, JournalError> {
        let (sale, attempts, refunds) = self
            .journal
            .sale_whole(sale_id)?
            .ok_or_else(|| JournalError::NoSale(sale_id.to_string()))?;
        Ok(SaleView::new(&sale, &attempts).with_refunds(&refunds))
    }

    /// The register gave up on a sale in doubt: the watchdog stops waiting and cancels now.
    pub fn expedite(&self, sale_id: &str) -> Result<(), EngineError> {
        self.journal.expedite(sale_id, self.clock.now())?;
        // A resolver pausing between inquiries acts now, not at its next inquiry.
        for a in self.journal.attempts(sale_id)? {
            if !a.state.is_final() {
                self.resolver.nudges.nudge(&a.request_id);
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// Refuses empty or over-long text and text with characters that are not printed as what
/// they are: control characters, and format characters that reorder or hide text (a
/// reference shown reversed by U+202E on a receipt or in the provider's records).
pub(super) fn check_text(
    what: &'static str,
    text: Option<&str>,
    max: usize,
) -> Result<(), EngineError> {
    match text {
        Some(t)
            if t.is_empty()
                || t.chars().count() > max
                || t.chars().any(|c| c.is_control() || is_format_char(c)) =>
        {
            Err(EngineError::BadText(what, max))
        }
        _ => Ok(()),
    }
}

/// Whether `c` is in Unicode general category Cf (Format): soft hyphen, bidirectional
/// marks, embeddings, overrides and isolates, zero-width characters, the byte order mark,
/// invisible operators, interlinear annotation and tag characters. The standard library
/// has no general-category lookup; this is the category's list as of Unicode 15.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// `S20261122-3f9a0c1e7b`: the store day it was made on, unique by 40 random bits.
fn new_sale_id(store_day: chrono::NaiveDate) -> String {
    format!(
        "S{}-{:010x}",
        store_day.format("%Y%m%d"),
        rand::thread_rng().gen_range(0..1u64 << 40)
    )
}
