//! The demo's outputs: the LED and the receipt drawn as text on a terminal or a log stream.

use std::io::Write;
use std::sync::Mutex;

use super::LedPattern;
use super::receipt;
use crate::events::{Event, Observer};

pub struct TerminalOutput {
    out: Mutex<Box<dyn Write + Send>>,
    color: bool,
    terminal_id: String,
    zone: crate::clock::StoreZone,
    /// Inquiries that found the customer still confirming, in a row: one line that
    /// updates on a terminal (one line only, elsewhere), not one line per inquiry.
    confirming: Mutex<u32>,
}

impl TerminalOutput {
    pub fn new(
        out: Box<dyn Write + Send>,
        color: bool,
        terminal_id: &str,
        zone: crate::clock::StoreZone,
    ) -> TerminalOutput {
        TerminalOutput {
            out: Mutex::new(out),
            color,
            terminal_id: terminal_id.to_string(),
            zone,
            confirming: Mutex::new(0),
        }
    }

    pub fn say(&self, text: &str) {
        let mut confirming = self.confirming.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed terminal must not stop a payment: output errors are ignored.
        if *confirming > 0 && self.color {
            let _ = writeln!(out);
        }
        *confirming = 0;
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// The customer is still confirming: the first time a line, then (on a terminal) the
    /// same line rewritten with how many checks found them still at it.
    fn still_confirming(&self) {
        let mut confirming = self.confirming.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        *confirming += 1;
        let text = self.led(LedPattern::CustomerConfirming);
        if *confirming == 1 {
            let _ = if self.color {
                write!(out, "{text}")
            } else {
                writeln!(out, "{text}")
            };
        } else if self.color {
            let _ = write!(out, "\r\x1b[2K{text} (checked {} times)", *confirming);
        }
        let _ = out.flush();
    }

    fn led(&self, pattern: LedPattern) -> String {
        let (color, dot) = match pattern {
            LedPattern::Paid => ("32", "●"),
            LedPattern::Failed
            | LedPattern::NeedsAttention
            | LedPattern::Offline
            | LedPattern::ScannerMissing
            | LedPattern::ScanRefused => ("31", "●"),
            LedPattern::Processing | LedPattern::CustomerConfirming => ("33", "◐"),
            LedPattern::Armed => ("34", "●"),
            LedPattern::Idle => ("90", "○"),
        };
        if self.color {
            format!("\x1b[{color}m{dot}\x1b[0m LED {}", pattern.describe())
        } else {
            format!("{dot} LED {}", pattern.describe())
        }
    }
}

impl Observer for TerminalOutput {
    fn event(&self, event: &Event) {
        match event {
            Event::SaleArmed { sale } => self.say(&format!(
                "sale {} armed: {}",
                sale.sale_id, sale.amount
            )),
            Event::Barcode { text, kind } => self.say(&format!(
                "barcode {text} ({}): not a payment code, passed to the register",
                kind.as_str()
            )),
            Event::ScanTest { text, kind } => {
                self.say(&format!("scan test: {text} ({kind}), not charged"))
            }
            Event::Garbage { why, len } => {
                self.say(&format!("unreadable scan dropped ({why}, {len} bytes)"))
            }
            Event::ScanRefused {
                code_masked,
                reason,
            } => self.say(&format!(
                "scan {} refused: {reason}",
                code_masked.as_deref().unwrap_or("")
            )),
            Event::AttemptSent {
                request_id,
                code_masked,
                ..
            } => self.say(&format!("charging {code_masked} as {request_id}")),
            Event::InDoubt { why, .. } => self.say(&format!(
                "no clear answer ({why}): checking with the gateway"
            )),
            Event::CustomerConfirming { .. } => return self.still_confirming(),
            Event::QrPresented {
                content,
                amount,
                expires_at,
                ..
            } => {
                self.say(&format!(
                    "customer scans to pay {amount} (until {}):",
                    self.zone.local(*expires_at).format("%H:%M:%S")
                ));
                for line in super::qr::terminal_lines(content) {
                    self.say(&line);
                }
            }
            Event::MemberBindingStarted {
                member_id,
                wallet,
                auth_url,
            } => {
                self.say(&format!(
                    "member {member_id}: the customer scans with the wallet ({wallet}) to become a member:"
                ));
                for line in super::qr::terminal_lines(auth_url) {
                    self.say(&line);
                }
            }
            Event::Cancelling { .. } => self.say("no final answer in time: cancelling the payment"),
            Event::NeedsAttention { why, .. } => self.say(&format!("NEEDS ATTENTION: {why}")),
            Event::GatewayOnline => self.say("gateway reachable"),
            Event::ClockSkew { skew_s, off } => self.say(&if *off {
                format!("CLOCK OFF: this machine is {skew_s} s off the gateway's clock; fix NTP")
            } else {
                "clock agrees with the gateway's again".to_string()
            }),
            Event::CertificateExpiring {
                which,
                sn,
                days_left,
            } => self.say(&format!(
                "CERTIFICATE ENDING: {which} {sn} ends in {days_left} days; renew it (docs/operations.md, \"Changing keys\")"
            )),
            Event::ScannerConnected { scanner, detail } => {
                self.say(&format!("scanner {scanner} connected ({detail})"))
            }
            Event::ScannerDisconnected { scanner, why } => {
                self.say(&format!("scanner {scanner} missing: {why}"))
            }
            Event::GatewayOffline { why } => self.say(&format!("gateway OFFLINE: {why}")),
            Event::ReconciliationMismatch {
                date, differences, ..
            } => self.say(&format!(
                "NEEDS ATTENTION: the provider's record of {date} differs from the journal on {differences} trade(s): scanpay reconcile --date {date}"
            )),
            Event::OperatorAction {
                actor,
                action,
                result,
            } => self.say(&format!("{actor}: {action}: {result}")),
            Event::MemberBinding {
                signal,
                member_id,
                reason,
                ..
            } => self.say(&match (signal.needs_attention(), reason) {
                (true, Some(why)) => format!("NEEDS ATTENTION: member {member_id}: {why}"),
                _ => format!("member {member_id}: {}", signal.kind()),
            }),
            Event::Refund { refund } => self.say(&format!(
                "refund {} {}: {}",
                refund.refund_id, refund.amount, refund.state
            )),
            Event::SaleFinished { sale } => {
                for line in receipt::lines(sale, &self.terminal_id, self.zone, 42) {
                    self.say(&line);
                }
            }
        }
        if let Some(pattern) = LedPattern::for_event(event) {
            self.say(&self.led(pattern));
        }
    }
}
