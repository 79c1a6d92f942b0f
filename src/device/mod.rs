//! Scanners: each source runs on its own thread (blocking serialport/hidapi reads), turns
//! bytes or HID reports into [`Frame`]s and sends them, with connect/disconnect news, as
//! [`DeviceEvent`]s to the daemon. A source that cannot open its device, or loses it, keeps
//! retrying with backoff: unplugging is a normal event, a scanner absent at start is not fatal.

pub mod frame;
pub mod hid;
pub mod hidpos;
pub mod keyboard;
pub mod serial;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::clock::Backoff;

use tokio::sync::mpsc::Sender;

pub use frame::{Frame, FrameConfig, Terminator};
pub use keyboard::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerKind {
    Serial,
    /// USB HID keyboard wedge, read through hidraw; its keystrokes are grabbed.
    HidKeyboard,
    /// USB HID POS (usage page 0x8C).
    HidPos,
}

impl ScannerKind {
    pub fn parse(s: &str) -> Option<ScannerKind> {
        match s {
            "serial" => Some(ScannerKind::Serial),
            "hid-keyboard" => Some(ScannerKind::HidKeyboard),
            "hid-pos" => Some(ScannerKind::HidPos),
            _ => None,
        }
    }
}

/// How a scanner is found: by path (device node or udev symlink) or by USB identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Path(PathBuf),
    Usb {
        vid: u16,
        pid: u16,
        serial: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
}

#[derive(Debug, Clone)]
pub struct ScannerConfig {
    pub name: String,
    pub kind: ScannerKind,
    pub selector: Selector,
    pub serial: SerialSettings,
    pub frame: FrameConfig,
    pub layout: Layout,
    pub tab_ends_scan: bool,
    /// Keyboard wedge: grab the scanner's input event nodes so keystrokes reach nobody else.
    pub grab: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEventKind {
    Connected { detail: String },
    Disconnected { why: String },
    Frame(Frame),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    pub scanner: String,
    pub kind: DeviceEventKind,
}

/// Starts the source thread of `config`; it runs until `stop` is cancelled.
pub fn spawn(config: ScannerConfig, events: Sender<DeviceEvent>, stop: CancellationToken) {
    let name = config.name.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("scanner {name}"))
        .spawn(move || match config.kind {
            ScannerKind::Serial => serial::run(config, events, stop),
            ScannerKind::HidKeyboard | ScannerKind::HidPos => hid::run(config, events, stop),
        });
    if let Err(e) = spawned {
        tracing::error!(scanner = %name, error = %e, "cannot start the scanner thread");
    }
}

/// Sleeps `pause` in small steps, returning early when `stop` is cancelled.
pub(crate) fn sleep_unless_stopped(pause: Duration, stop: &CancellationToken) {
    let end = Instant::now() + pause;
    while Instant::now() < end && !stop.is_cancelled() {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// A source thread's life: opens the device (with backoff while it cannot, telling of the
/// first failure once), reads it until the read fails, tells of the loss, and opens it
/// again, until `stop`. `open` gives the device and the detail shown when it connects;
/// `read` reads until it fails (`Some(why)`) or sees `stop` (`None`).
pub(crate) fn supervise<D>(
    config: &ScannerConfig,
    events: &Sender<DeviceEvent>,
    stop: &CancellationToken,
    mut open: impl FnMut() -> Result<(D, String), String>,
    mut read: impl FnMut(&mut D, &dyn Fn(DeviceEventKind)) -> Option<String>,
) {
    // Blocks while the daemon is behind: the device's own buffers hold the bytes meanwhile.
    let send = |kind: DeviceEventKind| {
        let _ = events.blocking_send(DeviceEvent {
            scanner: config.name.clone(),
            kind,
        });
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut reported_down = false;
    while !stop.is_cancelled() {
        let mut device = match open() {
            Ok((device, detail)) => {
                send(DeviceEventKind::Connected { detail });
                backoff.reset();
                device
            }
            Err(why) => {
                if !reported_down {
                    send(DeviceEventKind::Disconnected { why });
                    reported_down = true;
                }
                sleep_unless_stopped(backoff.pause(), stop);
                continue;
            }
        };
        let Some(why) = read(&mut device, &send) else {
            return;
        };
        tracing::warn!(scanner = %config.name, %why, "scanner lost; reopening");
        send(DeviceEventKind::Disconnected { why });
        reported_down = true;
        drop(device);
        sleep_unless_stopped(backoff.pause(), stop);
    }
}

/// Drops a scan that repeats the previous one from the same scanner within `window`
/// (a double trigger), so the customer's code is not offered twice.
pub struct Debounce {
    window: Duration,
    last: HashMap<String, (String, Instant)>,
}

impl Debounce {
    pub fn new(window: Duration) -> Debounce {
        Debounce {
            window,
            last: HashMap::new(),
        }
    }

    /// True if this scan should be handled.
    pub fn accept(&mut self, scanner: &str, text: &str, now: Instant) -> bool {
        let repeat = self
            .last
            .get(scanner)
            .is_some_and(|(t, at)| t == text && now.duration_since(*at) < self.window);
        self.last
            .insert(scanner.to_string(), (text.to_string(), now));
        !repeat
    }
}

/// What the daemon knows of each scanner, for health and metrics.
#[derive(Default)]
pub struct ScannerStates(Mutex<HashMap<String, ScannerState>>);

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScannerState {
    pub name: String,
    pub connected: bool,
    pub detail: String,
    pub since: String,
}

impl ScannerStates {
    pub fn set(&self, name: &str, connected: bool, detail: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            name.to_string(),
            ScannerState {
                name: name.to_string(),
                connected,
                detail: detail.to_string(),
                since: crate::clock::to_journal(chrono::Utc::now()),
            },
        );
    }

    pub fn all(&self) -> Vec<ScannerState> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<ScannerState> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_double_trigger_is_dropped_but_a_later_rescan_is_not() {
        let mut d = Debounce::new(Duration::from_millis(1500));
        let t0 = Instant::now();
        assert!(d.accept("s1", "286000000000000000", t0));
        assert!(!d.accept("s1", "286000000000000000", t0 + Duration::from_millis(300)));
        assert!(
            d.accept("s2", "286000000000000000", t0 + Duration::from_millis(300)),
            "another scanner"
        );
        assert!(d.accept("s1", "4006381333931", t0 + Duration::from_millis(400)));
        assert!(d.accept("s1", "286000000000000000", t0 + Duration::from_secs(3)));
    }
}
