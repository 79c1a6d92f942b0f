//! Decoding a keyboard-wedge scanner's HID boot-keyboard reports (docs/devices.md §4) into text.
//!
//! An 8-byte report is `[modifiers, reserved, key1..key6]` (9 bytes with a report ID first).
//! A key is typed when it appears in a report and was not in the previous one, so held keys
//! are not repeated and "11" arrives as press, release, press. Shift (either) and Caps Lock
//! select the shifted character; a report of all 0x01 (rollover) is ignored. Enter (and Tab,
//! when configured) end a scan and come out as `\r`, so the serial framer can take it from
//! there.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// US QWERTY: configure scanners for it where possible.
    Us,
    /// German QWERTZ: y/z swapped, shifted digits differ.
    De,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "us" => Some(Layout::Us),
            "de" => Some(Layout::De),
            _ => None,
        }
    }
}

const ENTER: u8 = 0x28;
const KP_ENTER: u8 = 0x58;
const TAB: u8 = 0x2B;
const CAPS_LOCK: u8 = 0x39;
const ROLLOVER: u8 = 0x01;
const SHIFT_BITS: u8 = 0x02 | 0x20;

pub struct KeyboardDecoder {
    layout: Layout,
    tab_ends_scan: bool,
    previous: [u8; 6],
    caps: bool,
}

impl KeyboardDecoder {
    pub fn new(layout: Layout, tab_ends_scan: bool) -> KeyboardDecoder {
        KeyboardDecoder {
            layout,
            tab_ends_scan,
            previous: [0; 6],
            caps: false,
        }
    }

    /// Decodes one input report into the bytes typed (`\r` for the end of a scan).
    pub fn report(&mut self, report: &[u8]) -> Vec<u8> {
        let report = match report.len() {
            8 => report,
            // A numbered report: the first byte is the report ID.
            9 => &report[1..],
            _ => return Vec::new(),
        };
        let modifiers = report[0];
        let mut keys = [0u8; 6];
        keys.copy_from_slice(&report[2..8]);
        if keys.iter().all(|&k| k == ROLLOVER) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &key in keys
            .iter()
            .filter(|&&k| k != 0 && !self.previous.contains(&k))
        {
            match key {
                ENTER | KP_ENTER => out.push(b'\r'),
                TAB if self.tab_ends_scan => out.push(b'\r'),
                CAPS_LOCK => self.caps = !self.caps,
                _ => {
                    let shift = modifiers & SHIFT_BITS != 0;
                    if let Some(c) = self.character(key, shift) {
                        out.push(c);
                    }
                }
            }
        }
        self.previous = keys;
        out
    }

    fn character(&self, key: u8, shift: bool) -> Option<u8> {
        // Keypad digits do not depend on layout or shift.
        match key {
            0x59..=0x61 => return Some(b'1' + (key - 0x59)),
            0x62 => return Some(b'0'),
            0x63 => return Some(b'.'),
            _ => {}
        }
        if (0x04..=0x1D).contains(&key) {
            let mut letter = b'a' + (key - 0x04);
            if self.layout == Layout::De {
                letter = match letter {
                    b'y' => b'z',
                    b'z' => b'y',
                    l => l,
                };
            }
            let upper = shift ^ self.caps;
            return Some(if upper {
                letter.to_ascii_uppercase()
            } else {
                letter
            });
        }
        let (plain, shifted): (&[u8], &[u8]) = match self.layout {
            Layout::Us => (
                b"1234567890\0\0\0\t -=[]\\\0;'`,./",
                b"!@#$%^&*()\0\0\0\t _+{}|\0:\"~<>?",
            ),
            Layout::De => (
                b"1234567890\0\0\0\t \0\0\0+#\0\0\0^,.-",
                b"!\"\0$%&/()=\0\0\0\t ?\0\0*'\0\0\0\0;:_",
            ),
        };
        let index = usize::from(key.checked_sub(0x1E)?);
        let table = if shift { shifted } else { plain };
        table.get(index).copied().filter(|&c| c != 0 && c != b'\t')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reports a keyboard-wedge scanner sends for `text` + Enter: each key pressed in its
    /// own report, then released; upper case with Left Shift.
    fn capture(text: &str) -> Vec<[u8; 8]> {
        let mut reports = Vec::new();
        for c in text.bytes() {
            let (key, shift) = match c {
                b'1'..=b'9' => (0x1E + (c - b'1'), 0),
                b'0' => (0x27, 0),
                b'a'..=b'z' => (0x04 + (c - b'a'), 0),
                b'A'..=b'Z' => (0x04 + (c - b'A'), 0x02),
                b'-' => (0x2D, 0),
                _ => panic!("no key for {c}"),
            };
            reports.push([shift, 0, key, 0, 0, 0, 0, 0]);
            reports.push([0; 8]);
        }
        reports.push([0, 0, ENTER, 0, 0, 0, 0, 0]);
        reports.push([0; 8]);
        reports
    }

    fn decode(reports: &[[u8; 8]], layout: Layout) -> String {
        let mut d = KeyboardDecoder::new(layout, false);
        let bytes: Vec<u8> = reports.iter().flat_map(|r| d.report(r)).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_full_payment_code_with_repeated_digits() {
        assert_eq!(
            decode(&capture("286000000000000000"), Layout::Us),
            "286000000000000000\r"
        );
    }

    #[test]
    fn shift_caps_lock_and_held_keys() {
        assert_eq!(decode(&capture("Ab-9"), Layout::Us), "Ab-9\r");
        let mut d = KeyboardDecoder::new(Layout::Us, false);
        // A key held across reports is typed once.
        assert_eq!(d.report(&[0, 0, 0x1E, 0, 0, 0, 0, 0]), b"1");
        assert_eq!(d.report(&[0, 0, 0x1E, 0, 0, 0, 0, 0]), b"");
        // Rollover reports change nothing.
        assert_eq!(d.report(&[0, 0, 1, 1, 1, 1, 1, 1]), b"");
        assert_eq!(d.report(&[0, 0, 0x1E, 0x1F, 0, 0, 0, 0]), b"2");
        // Caps Lock turns letters upper case until pressed again; Right Shift counts too.
        d.report(&[0; 8]);
        d.report(&[0, 0, CAPS_LOCK, 0, 0, 0, 0, 0]);
        assert_eq!(d.report(&[0, 0, 0x04, 0, 0, 0, 0, 0]), b"A");
        assert_eq!(d.report(&[0x20, 0, 0x05, 0, 0, 0, 0, 0]), b"b");
    }

    #[test]
    fn keypad_digits_numbered_reports_and_other_layouts() {
        let mut d = KeyboardDecoder::new(Layout::Us, true);
        let numbered = [0x01, 0, 0, 0x59, 0, 0, 0, 0, 0];
        assert_eq!(d.report(&numbered), b"1");
        assert_eq!(d.report(&[0, 0, 0x62, 0, 0, 0, 0, 0]), b"0");
        assert_eq!(
            d.report(&[0, 0, TAB, 0, 0, 0, 0, 0]),
            b"\r",
            "tab ends a scan when asked"
        );
        assert_eq!(
            d.report(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            b"",
            "odd lengths are ignored"
        );
        assert_eq!(
            decode(&capture("yz28"), Layout::De),
            "zy28\r",
            "QWERTZ swaps y and z"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_reports_never_panic(reports in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..64)) {
            let mut d = KeyboardDecoder::new(Layout::Us, true);
            for r in reports {
                let out = d.report(&r);
                prop_assert!(out.len() <= 6);
            }
        }
    }
}
