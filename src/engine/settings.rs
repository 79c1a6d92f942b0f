//! What the engine is configured with: the terminal it charges for, the gateway's answer
//! timeout, the watchdog's deadlines, and how a command wants unclear answers resolved.

use std::time::Duration;

use crate::money::{Amount, Currency};

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub terminal: TerminalConfig,
    /// Longest wait for one gateway answer.
    pub timeout: Duration,
    pub watchdog: WatchdogConfig,
    /// How long a code shown for the customer to scan stays payable (`[sales] qr_timeout_s`).
    pub qr_timeout: Duration,
    /// How long the engine itself keeps cancelling an attempt in doubt before it leaves it
    /// to the watchdog (or, for a one-shot command, to the next run). `None`: until done.
    pub cancel_give_up_after: Option<Duration>,
    /// Resolve an unclear pay answer before `scan` returns (one-shot commands), or hand it
    /// to the watchdog at once and free the terminal (the daemon).
    pub resolve_inline: bool,
}

#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// Terminal id: part of every request id, sent as `terminal_id`.
    pub id: String,
    pub currency: Currency,
    /// Largest single sale this terminal takes.
    pub max_amount: Amount,
    pub store_id: Option<String>,
    /// Order subject used when the register gives none.
    pub subject: String,
    /// The store's time zone: sale ids carry the store day (docs/operations.md §"One store day").
    pub zone: crate::clock::StoreZone,
}

#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// From the first send of a pay request to the cancel of an attempt still in doubt.
    pub sale_deadline: Duration,
    /// Pause between two inquiries of an attempt in doubt; `None`: the gateway's policy
    /// (Open Platform 3–6 s, AMS about 3 s).
    pub inquiry_interval: Option<Duration>,
}
