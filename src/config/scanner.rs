//! `[[scanner]]`: each barcode scanner, how it is found and how its frames end.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::validate::{Validator, is_token};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScanner {
    name: Option<String>,
    kind: Option<String>,
    path: Option<String>,
    usb: Option<String>,
    serial_number: Option<String>,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<String>,
    stop_bits: Option<u8>,
    terminator: Option<String>,
    idle_timeout_ms: Option<u64>,
    prefix: Option<String>,
    suffix: Option<String>,
    aim: Option<String>,
    layout: Option<String>,
    tab_ends_scan: Option<bool>,
    grab: Option<bool>,
}

impl Validator<'_> {
    pub(super) fn scanners(
        &self,
        raw: Vec<RawScanner>,
    ) -> Result<Vec<crate::device::ScannerConfig>, ConfigError> {
        use crate::device::{
            FrameConfig, Layout, Parity, ScannerConfig, ScannerKind, Selector, SerialSettings,
            Terminator,
        };
        let mut out: Vec<ScannerConfig> = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let name = r.name.unwrap_or_else(|| format!("scanner-{}", i + 1));
            if !is_token(&name, 32, |b| {
                b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
            }) {
                return Err(self.invalid(
                    "scanner",
                    "name",
                    &name,
                    "use 1 to 32 letters, digits, '-' or '_'",
                ));
            }
            if out.iter().any(|s| s.name == name) {
                return Err(self.invalid(
                    "scanner",
                    "name",
                    &name,
                    "two scanners have this name; names must differ",
                ));
            }
            let kind_text = self.required(
                r.kind,
                "scanner",
                "kind",
                "choose \"serial\", \"hid-keyboard\" or \"hid-pos\"",
            )?;
            let kind = ScannerKind::parse(&kind_text).ok_or_else(|| {
                self.invalid(
                    "scanner",
                    "kind",
                    &kind_text,
                    "one of \"serial\", \"hid-keyboard\", \"hid-pos\"",
                )
            })?;
            let selector = match (&r.path, &r.usb) {
                (Some(p), None) => Selector::Path(self.path(p)),
                (None, Some(u)) if kind != ScannerKind::Serial => {
                    let parsed = u.split_once(':').and_then(|(v, p)| {
                        Some((
                            u16::from_str_radix(v, 16).ok()?,
                            u16::from_str_radix(p, 16).ok()?,
                        ))
                    });
                    let (vid, pid) = parsed.ok_or_else(|| {
                        self.invalid(
                            "scanner",
                            "usb",
                            u,
                            "vendor:product in hex, as `scanpay devices` shows, e.g. \"0c2e:0b61\"",
                        )
                    })?;
                    Selector::Usb {
                        vid,
                        pid,
                        serial: r.serial_number.clone(),
                    }
                }
                (None, Some(u)) => {
                    return Err(self.invalid(
                        "scanner",
                        "usb",
                        u,
                        "serial scanners are chosen by path; use a udev symlink for a stable one",
                    ));
                }
                (Some(_), Some(u)) => {
                    return Err(self.invalid(
                        "scanner",
                        "usb",
                        u,
                        "give either path or usb, not both",
                    ));
                }
                (None, None) => {
                    return Err(self.missing(
                        "scanner",
                        "path",
                        "name the device (path or udev symlink), or usb = \"vid:pid\" for HID",
                    ));
                }
            };
            let baud = r.baud.unwrap_or(9600);
            if !(300..=4_000_000).contains(&baud) {
                return Err(self.invalid(
                    "scanner",
                    "baud",
                    baud,
                    "a serial speed such as 9600 or 115200",
                ));
            }
            let data_bits = r.data_bits.unwrap_or(8);
            if !(5..=8).contains(&data_bits) {
                return Err(self.invalid("scanner", "data_bits", data_bits, "5 to 8"));
            }
            let parity = match r.parity.as_deref().unwrap_or("none") {
                "none" => Parity::None,
                "odd" => Parity::Odd,
                "even" => Parity::Even,
                other => {
                    return Err(self.invalid(
                        "scanner",
                        "parity",
                        other,
                        "\"none\", \"odd\" or \"even\"",
                    ));
                }
            };
            let stop_bits = r.stop_bits.unwrap_or(1);
            if !(1..=2).contains(&stop_bits) {
                return Err(self.invalid("scanner", "stop_bits", stop_bits, "1 or 2"));
            }
            let term_text = r.terminator.unwrap_or_else(|| "crlf".to_string());
            let terminator = Terminator::parse(&term_text).ok_or_else(|| {
                self.invalid(
                    "scanner",
                    "terminator",
                    &term_text,
                    "\"cr\", \"lf\", \"crlf\" or \"none\"",
                )
            })?;
            let idle = r.idle_timeout_ms.unwrap_or(100);
            if !(10..=5000).contains(&idle) {
                return Err(self.invalid(
                    "scanner",
                    "idle_timeout_ms",
                    idle,
                    "between 10 and 5000 milliseconds",
                ));
            }
            let strip_aim = match r.aim.as_deref().unwrap_or("strip") {
                "strip" => true,
                "keep" => false,
                other => {
                    return Err(self.invalid("scanner", "aim", other, "\"strip\" or \"keep\""));
                }
            };
            let layout_text = r.layout.unwrap_or_else(|| "us".to_string());
            let layout = Layout::parse(&layout_text).ok_or_else(|| {
                self.invalid("scanner", "layout", &layout_text, "\"us\" or \"de\"")
            })?;
            out.push(ScannerConfig {
                name,
                kind,
                selector,
                serial: SerialSettings {
                    baud,
                    data_bits,
                    parity,
                    stop_bits,
                },
                frame: FrameConfig {
                    terminator,
                    idle: Duration::from_millis(idle),
                    prefix: r.prefix.unwrap_or_default().into_bytes(),
                    suffix: r.suffix.unwrap_or_default().into_bytes(),
                    strip_aim,
                },
                layout,
                tab_ends_scan: r.tab_ends_scan.unwrap_or(false),
                grab: r.grab.unwrap_or(true),
            });
        }
        Ok(out)
    }
}
