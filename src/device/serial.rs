//! Serial scanners (CDC-ACM, USB-serial, RS-232) through the serialport crate, without
//! libudev. A read that times out lets the framer end a scan on an idle gap; a hang-up, EOF
//! or I/O error means the scanner is gone: the port is closed and reopened by path (a udev
//! symlink keeps the path stable across replugs) with backoff until it is back.

use std::io::Read;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc::Sender;

use super::frame::Framer;
use super::{DeviceEvent, DeviceEventKind, Parity, ScannerConfig, Selector, supervise};

/// Read timeout: how often an idle port is checked (and the idle gap measured).
const READ_TICK: Duration = Duration::from_millis(20);

fn open(config: &ScannerConfig) -> Result<serialport::TTYPort, String> {
    let Selector::Path(path) = &config.selector else {
        return Err("serial scanners are selected by path (or udev symlink)".to_string());
    };
    let s = &config.serial;
    let data_bits = match s.data_bits {
        5 => serialport::DataBits::Five,
        6 => serialport::DataBits::Six,
        7 => serialport::DataBits::Seven,
        _ => serialport::DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    let stop_bits = if s.stop_bits == 2 {
        serialport::StopBits::Two
    } else {
        serialport::StopBits::One
    };
    serialport::new(path.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(serialport::FlowControl::None)
        .timeout(READ_TICK)
        .open_native()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

pub fn run(config: ScannerConfig, events: Sender<DeviceEvent>, stop: CancellationToken) {
    let detail = format!("{:?} at {} baud", config.selector, config.serial.baud);
    let open = || open(&config).map(|port| (port, detail.clone()));
    supervise(&config, &events, &stop, open, |port, send| {
        let mut framer = Framer::new(config.frame.clone());
        let mut buf = [0u8; 256];
        loop {
            if stop.is_cancelled() {
                return None;
            }
            match port.read(&mut buf) {
                Ok(0) => return Some("the device closed (end of file)".to_string()),
                Ok(n) => {
                    for frame in framer.push(&buf[..n], Instant::now()) {
                        send(DeviceEventKind::Frame(frame));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if let Some(frame) = framer.tick(Instant::now()) {
                        send(DeviceEventKind::Frame(frame));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(format!("read failed: {e}")),
            }
        }
    });
}
