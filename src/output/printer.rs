//! The receipt printer: backends `file` (a character device such as `/dev/usb/lp0`, or a
//! plain file), `tcp` (raw port 9100), `serial`, `none`. Printing happens on a thread of its
//! own, fed by a bounded queue: a slow, stalled or dead printer never delays a sale (a full
//! queue drops the slip and says so). Where the link is two-way (TCP, serial), the paper
//! sensor is asked (`DLE EOT 4`) after each slip and reported in health.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::escpos::{PAPER_STATUS_QUERY, PaperStatus, paper_status};
use super::receipt::{ReceiptContext, escpos_refund, escpos_sale};
use crate::events::{Event, Observer};
use crate::state::{RefundState, SaleState};

const QUEUE: usize = 32;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const STATUS_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterKind {
    File(PathBuf),
    Tcp(String),
    Serial { path: PathBuf, baud: u32 },
    None,
}

impl PrinterKind {
    /// The stable lower-case name health and metrics give the link.
    pub fn name(&self) -> &'static str {
        match self {
            PrinterKind::File(_) => "file",
            PrinterKind::Tcp(_) => "tcp",
            PrinterKind::Serial { .. } => "serial",
            PrinterKind::None => "none",
        }
    }

    /// Where the slips go: a path, an address, a port; empty for none.
    pub fn target(&self) -> String {
        match self {
            PrinterKind::File(path) => path.display().to_string(),
            PrinterKind::Tcp(address) => address.clone(),
            PrinterKind::Serial { path, baud } => format!("{} at {baud} baud", path.display()),
            PrinterKind::None => String::new(),
        }
    }
}

impl std::fmt::Display for PrinterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrinterKind::None => f.write_str("none"),
            other => write!(f, "{} {}", other.name(), other.target()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PrinterConfig {
    pub kind: PrinterKind,
    pub copies: u8,
    pub merchant_copy: bool,
    pub receipt: ReceiptContext,
    /// The buzzer: once when a sale is paid, three times when it ends unpaid.
    pub beep: super::escpos::Beeper,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PrinterState {
    /// `file`, `tcp`, `serial` or `none`.
    pub kind: String,
    /// The path or address slips go to.
    pub target: String,
    pub ok: bool,
    pub last_error: Option<String>,
    pub paper: Option<PaperStatus>,
    pub printed: u64,
    pub dropped: u64,
    /// Slips queued, and slips the printer thread is done with (printed or failed).
    pub queued: u64,
    pub done: u64,
}

/// Sends bytes to the printer; returns the paper status when the link can tell.
pub fn send(kind: &PrinterKind, bytes: &[u8]) -> Result<Option<PaperStatus>, String> {
    match kind {
        PrinterKind::None => Ok(None),
        PrinterKind::File(path) => {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all(bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.flush().map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(None)
        }
        PrinterKind::Tcp(address) => {
            use std::net::ToSocketAddrs;
            let addr = address
                .to_socket_addrs()
                .map_err(|e| format!("{address}: {e}"))?
                .next()
                .ok_or_else(|| format!("{address}: no address"))?;
            let mut s = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .map_err(|e| format!("{address}: {e}"))?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))
                .map_err(|e| e.to_string())?;
            s.write_all(bytes).map_err(|e| format!("{address}: {e}"))?;
            s.write_all(&PAPER_STATUS_QUERY)
                .map_err(|e| format!("{address}: {e}"))?;
            s.set_read_timeout(Some(STATUS_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            // No answer is "unknown", not an error: many printers do not reply.
            Ok(match s.read(&mut b) {
                Ok(1) => paper_status(b[0]),
                _ => None,
            })
        }
        PrinterKind::Serial { path, baud } => {
            let mut port = serialport::new(path.to_string_lossy(), *baud)
                .timeout(STATUS_TIMEOUT)
                .open_native()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            port.write_all(bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            port.write_all(&PAPER_STATUS_QUERY)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut b = [0u8; 1];
            Ok(match port.read(&mut b) {
                Ok(1) => paper_status(b[0]),
                _ => None,
            })
        }
    }
}

pub struct PrinterQueue {
    jobs: SyncSender<Vec<u8>>,
    state: Arc<Mutex<PrinterState>>,
    config: PrinterConfig,
}

impl PrinterQueue {
    pub fn start(config: PrinterConfig) -> Arc<PrinterQueue> {
        let (jobs, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let state = Arc::new(Mutex::new(PrinterState {
            kind: config.kind.name().to_string(),
            target: config.kind.target(),
            ok: true,
            ..PrinterState::default()
        }));
        let worker_state = state.clone();
        let kind = config.kind.clone();
        let spawned = std::thread::Builder::new()
            .name("printer".into())
            .spawn(move || {
                for job in rx {
                    let result = send(&kind, &job);
                    let mut s = worker_state.lock().unwrap_or_else(|e| e.into_inner());
                    s.done += 1;
                    match result {
                        Ok(paper) => {
                            s.ok = true;
                            s.printed += 1;
                            s.paper = paper.or(s.paper);
                            if paper == Some(PaperStatus::Out) {
                                tracing::warn!("printer reports paper out");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "receipt not printed");
                            s.ok = false;
                            s.last_error = Some(e);
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the printer thread");
        }
        Arc::new(PrinterQueue {
            jobs,
            state,
            config,
        })
    }

    pub fn state(&self) -> PrinterState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues a slip; never waits. A full queue means the printer is stalled: the slip is
    /// dropped (it can be reprinted) and health says so.
    pub fn enqueue(&self, bytes: Vec<u8>) {
        if self.config.kind == PrinterKind::None {
            return;
        }
        match self.jobs.try_send(bytes) {
            Ok(()) => self.state.lock().unwrap_or_else(|e| e.into_inner()).queued += 1,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.dropped += 1;
                s.ok = false;
                s.last_error =
                    Some("printer stalled: receipts are waiting; check it, then reprint".into());
                tracing::warn!("printer queue full: receipt dropped (use scanpay reprint)");
            }
        }
    }

    /// Waits up to `limit` for the queued slips to be printed (one-shot commands).
    pub fn flush(&self, limit: Duration) {
        let end = std::time::Instant::now() + limit;
        while std::time::Instant::now() < end && self.state().done < self.state().queued {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Prints a test slip (through the queue, in turn with receipts) and waits up to
    /// `limit` for it: the printer's state after it, paper sensor included.
    pub fn test_slip(&self, limit: Duration) -> PrinterState {
        let ctx = &self.config.receipt;
        let mut p = super::escpos::EscPos::new(ctx.encoding);
        p.align(super::escpos::Align::Center)
            .bold(true)
            .line("TEST SLIP")
            .bold(false);
        for name in &ctx.store_name {
            p.line(name);
        }
        p.line(&format!("terminal {}", ctx.terminal_id));
        p.line(
            &ctx.zone
                .local(chrono::Utc::now())
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        );
        p.line(&"-".repeat(ctx.width));
        p.line("打印测试 printer test: ok");
        p.feed(2).cut();
        let before = self.state().done;
        self.enqueue(p.into_bytes());
        let end = std::time::Instant::now() + limit;
        while std::time::Instant::now() < end && self.state().done <= before {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.state()
    }

    /// What the slips are laid out for (width, encoding, store name, time zone).
    pub fn receipt(&self) -> &super::receipt::ReceiptContext {
        &self.config.receipt
    }

    /// The receipts of a finished sale (copies, and the merchant's copy when configured).
    pub fn sale_slips(&self, sale: &crate::view::SaleView) -> Vec<Vec<u8>> {
        let ctx = &self.config.receipt;
        let mut out = Vec::new();
        for _ in 0..self.config.copies.max(1) {
            out.push(escpos_sale(sale, ctx, false));
        }
        if self.config.merchant_copy {
            out.push(escpos_sale(sale, ctx, true));
        }
        out
    }
}

impl Observer for PrinterQueue {
    fn event(&self, event: &Event) {
        match event {
            Event::SaleFinished { sale } => {
                for job in self.finished(sale) {
                    self.enqueue(job);
                }
            }
            Event::Refund { refund } if refund.state == RefundState::Succeeded => {
                self.enqueue(escpos_refund(refund, &self.config.receipt));
            }
            // An order's QR, for the customer to scan off the slip.
            Event::QrPresented {
                method: "order_code",
                content,
                amount,
                expires_at,
                ..
            } => {
                self.enqueue(super::qr::escpos_slip(
                    &self.config.receipt,
                    *amount,
                    content,
                    *expires_at,
                ));
            }
            // A member binding: the customer scans the slip with the wallet to approve.
            Event::MemberBindingStarted {
                member_id,
                wallet,
                auth_url,
            } => {
                self.enqueue(super::qr::escpos_binding_slip(
                    &self.config.receipt,
                    member_id,
                    wallet,
                    auth_url,
                ));
            }
            _ => {}
        }
    }
}

impl PrinterQueue {
    /// What a finished sale sends the printer: its slips, the buzzer's bytes at the end of
    /// the last (or alone when nothing prints). One beep when paid, three when the sale
    /// ended without the money (failed, cancelled, expired); a sale still open (a declined
    /// code, the sale waiting for the next) makes no sound.
    pub fn finished(&self, sale: &crate::view::SaleView) -> Vec<Vec<u8>> {
        let mut slips = if sale.state == SaleState::Paid
            || (sale.state == SaleState::Cancelled && sale.reversed())
        {
            self.sale_slips(sale)
        } else {
            Vec::new()
        };
        let beeps = match sale.state {
            SaleState::Paid => self.config.beep.bytes(1),
            SaleState::Failed | SaleState::Cancelled | SaleState::Expired => {
                self.config.beep.bytes(3)
            }
            SaleState::AwaitingScan | SaleState::AwaitingPayment | SaleState::Processing => {
                Vec::new()
            }
        };
        match slips.last_mut() {
            _ if beeps.is_empty() => {}
            Some(last) => last.extend_from_slice(&beeps),
            None => slips.push(beeps),
        }
        slips
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::escpos::Beeper;
    use crate::output::labels::Language;
    use crate::output::receipt::tests::{ctx, sale};

    fn queue(beep: Beeper) -> Arc<PrinterQueue> {
        PrinterQueue::start(PrinterConfig {
            kind: PrinterKind::None,
            copies: 1,
            merchant_copy: true,
            receipt: ctx(32, Language::Zh),
            beep,
        })
    }

    #[test]
    fn the_buzzer_beeps_once_after_a_paid_sales_slips_and_three_times_when_unpaid() {
        let paid = sale();
        let jobs = queue(Beeper::EscB).finished(&paid);
        assert_eq!(jobs.len(), 2, "the receipt and the merchant copy");
        assert!(jobs[1].ends_with(&[0x1D, 0x56, 0x42, 0x03, 0x1B, 0x42, 1, 3]));
        assert!(
            jobs[0].ends_with(&[0x1D, 0x56, 0x42, 0x03]),
            "one beep, after the last"
        );
        let mut failed = sale();
        failed.state = SaleState::Failed;
        assert_eq!(
            queue(Beeper::EscB).finished(&failed),
            [vec![0x1B, 0x42, 3, 3]]
        );
        failed.state = SaleState::Expired;
        assert_eq!(
            queue(Beeper::EscParenA).finished(&failed),
            [vec![0x1B, 0x28, 0x41, 0x05, 0x00, 0x61, 0x64, 3, 2, 1]]
        );
        failed.state = SaleState::AwaitingScan;
        assert!(
            queue(Beeper::EscB).finished(&failed).is_empty(),
            "still open: silent"
        );
        // Off: the slips as they are, no buzzer bytes.
        let quiet = queue(Beeper::Off).finished(&paid);
        assert!(quiet[1].ends_with(&[0x1D, 0x56, 0x42, 0x03]));
        failed.state = SaleState::Failed;
        assert!(queue(Beeper::Off).finished(&failed).is_empty());
    }
}
