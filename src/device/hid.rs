//! USB HID scanners through hidapi (hidraw backend, no libudev): keyboard wedges decoded
//! from boot-keyboard reports, HID POS scanners from scanned-data reports.
//!
//! Reading hidraw does not stop the kernel from also typing a keyboard wedge's keystrokes
//! into the console, a login prompt or the focused window (docs/devices.md §5). So while scanpay
//! reads a wedge it grabs (`EVIOCGRAB`) every input event node of the same HID device: the
//! keystrokes then reach scanpay only. The grab is held by an open file and ends with it: while
//! the daemon restarts, or if the grab fails (permissions), the keystrokes do leak; a HID POS
//! or serial-mode scanner has no keyboard at all and is the better choice.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc::Sender;

use super::frame::{FrameConfig, Framer, Terminator};
use super::hidpos::HidPosDecoder;
use super::keyboard::KeyboardDecoder;
use super::{DeviceEvent, DeviceEventKind, ScannerConfig, ScannerKind, Selector, supervise};

const READ_TICK_MS: i32 = 20;

nix::ioctl_write_int!(eviocgrab, b'E', 0x90);

fn open(config: &ScannerConfig) -> Result<(hidapi::HidDevice, String), String> {
    let api = hidapi::HidApi::new().map_err(|e| format!("hidapi: {e}"))?;
    match &config.selector {
        Selector::Path(path) => {
            let real =
                std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let c = CString::new(real.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
            let dev = api
                .open_path(&c)
                .map_err(|e| format!("cannot open {}: {e}", real.display()))?;
            Ok((dev, real.display().to_string()))
        }
        Selector::Usb { vid, pid, serial } => {
            let info = api
                .device_list()
                .find(|d| {
                    d.vendor_id() == *vid
                        && d.product_id() == *pid
                        && serial
                            .as_deref()
                            .is_none_or(|s| d.serial_number() == Some(s))
                })
                .ok_or_else(|| format!("no HID device {vid:04x}:{pid:04x} attached"))?;
            let path = info.path().to_string_lossy().into_owned();
            let dev = info
                .open_device(&api)
                .map_err(|e| format!("cannot open {path}: {e}"))?;
            Ok((dev, path))
        }
    }
}

/// The `/dev/input/event*` nodes of the HID device behind a hidraw node.
fn event_nodes(hidraw: &Path) -> Vec<PathBuf> {
    let Some(name) = hidraw.file_name() else {
        return Vec::new();
    };
    let inputs = PathBuf::from("/sys/class/hidraw")
        .join(name)
        .join("device/input");
    let mut nodes = Vec::new();
    for input in std::fs::read_dir(inputs).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(input.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("event") {
                nodes.push(PathBuf::from("/dev/input").join(n));
            }
        }
    }
    nodes
}

/// Grabs every input node of the device; the grabs last as long as the returned files.
fn grab(hidraw: &Path, scanner: &str) -> Vec<std::fs::File> {
    let mut held = Vec::new();
    for node in event_nodes(hidraw) {
        let grabbed = std::fs::File::open(&node).and_then(|f| {
            use std::os::fd::AsRawFd;
            // SAFETY: EVIOCGRAB takes an int by value on an open evdev descriptor.
            unsafe { eviocgrab(f.as_raw_fd(), 1) }.map_err(std::io::Error::from)?;
            Ok(f)
        });
        match grabbed {
            Ok(f) => held.push(f),
            Err(e) => tracing::warn!(
                scanner,
                node = %node.display(),
                error = %e,
                "cannot grab the scanner's keyboard node: its keystrokes also reach the console; give scanpay access (udev rule) or use HID POS mode"
            ),
        }
    }
    held
}

pub fn run(config: ScannerConfig, events: Sender<DeviceEvent>, stop: CancellationToken) {
    let open = || {
        let (device, path) = open(&config)?;
        // Held while the device is read: the keyboard nodes stay grabbed until it is lost.
        let grabs = if config.kind == ScannerKind::HidKeyboard && config.grab {
            grab(Path::new(&path), &config.name)
        } else {
            Vec::new()
        };
        Ok(((device, grabs), path))
    };
    supervise(&config, &events, &stop, open, |(device, _grabs), send| {
        let mut keyboard = KeyboardDecoder::new(config.layout, config.tab_ends_scan);
        // Keystrokes become a CR-terminated stream for the common framer.
        let mut framer = Framer::new(FrameConfig {
            terminator: Terminator::Cr,
            ..config.frame.clone()
        });
        let mut pos = HidPosDecoder::new();
        let mut buf = [0u8; 128];
        loop {
            if stop.is_cancelled() {
                return None;
            }
            match device.read_timeout(&mut buf, READ_TICK_MS) {
                Ok(0) => {
                    if let Some(frame) = framer.tick(Instant::now()) {
                        send(DeviceEventKind::Frame(frame));
                    }
                }
                Ok(n) => match config.kind {
                    ScannerKind::HidPos => {
                        if let Some(frame) = pos.report(&buf[..n]) {
                            send(DeviceEventKind::Frame(frame));
                        }
                    }
                    _ => {
                        let typed = keyboard.report(&buf[..n]);
                        for frame in framer.push(&typed, Instant::now()) {
                            send(DeviceEventKind::Frame(frame));
                        }
                    }
                },
                Err(e) => return Some(format!("read failed: {e}")),
            }
        }
    });
}

/// Every HID device hidapi sees, for `scanpay devices`.
pub fn list() -> Result<Vec<String>, String> {
    let api = hidapi::HidApi::new().map_err(|e| format!("hidapi: {e}"))?;
    Ok(api
        .device_list()
        .map(|d| {
            let kind = match (d.usage_page(), d.usage()) {
                (0x8C, _) => "hid-pos",
                (0x01, 0x06) => "hid-keyboard",
                _ => "hid",
            };
            format!(
                "{kind:<13} usb = \"{:04x}:{:04x}\"  path = {:?}  {} {}  serial {:?}",
                d.vendor_id(),
                d.product_id(),
                d.path().to_string_lossy(),
                d.manufacturer_string().unwrap_or(""),
                d.product_string().unwrap_or(""),
                d.serial_number().unwrap_or("")
            )
        })
        .collect())
}
