//! Decoding HID POS (usage page 0x8C) scanned-data reports, in the layout Honeywell and
//! Newland scanners use on hidraw (docs/devices.md §6): `[0]` report ID 0x02, `[1]` number of
//! data bytes in this report, `[2..5]` AIM symbology identifier, `[5..]` data, `[63]`
//! non-zero when more reports of the same scan follow. Reports of one scan are joined; a
//! scan never grows past the scan length cap.

use super::frame::Frame;
use crate::paycode::MAX_SCAN_LEN;

const SCANNED_DATA: u8 = 0x02;
const REPORT_LEN: usize = 64;
const DATA_AT: usize = 5;
/// Data ends before the vendor's code-ID byte at 61.
const DATA_END: usize = 61;

#[derive(Default)]
pub struct HidPosDecoder {
    data: Vec<u8>,
    symbology: Option<String>,
    overflow: bool,
}

impl HidPosDecoder {
    pub fn new() -> HidPosDecoder {
        HidPosDecoder::default()
    }

    /// Decodes one report; returns a frame when it completes a scan.
    pub fn report(&mut self, report: &[u8]) -> Option<Frame> {
        if report.len() < REPORT_LEN || report[0] != SCANNED_DATA {
            // Other reports (status, trigger) carry no scan.
            return None;
        }
        let len = usize::from(report[1]).min(DATA_END - DATA_AT);
        if self.symbology.is_none() && report[2] == b']' {
            self.symbology = Some(String::from_utf8_lossy(&report[2..5]).into_owned());
        }
        let chunk = &report[DATA_AT..DATA_AT + len];
        // Scanners end HID POS data with CR like a serial line; it is not part of the code.
        let chunk = chunk.strip_suffix(b"\r").unwrap_or(chunk);
        if self.data.len() + chunk.len() > MAX_SCAN_LEN {
            self.overflow = true;
        } else {
            self.data.extend_from_slice(chunk);
        }
        if report[63] != 0 {
            return None;
        }
        let frame = if self.overflow {
            Frame::Garbage {
                why: "longer than any barcode a checkout scans",
                len: self.data.len(),
            }
        } else {
            Frame::Scan {
                text: String::from_utf8_lossy(&self.data).into_owned(),
                symbology: self.symbology.take(),
            }
        };
        *self = HidPosDecoder::default();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reports a Honeywell-style HID POS scanner sends for `data` (split at 56 bytes).
    fn capture(aim: &[u8; 3], data: &[u8]) -> Vec<[u8; 64]> {
        let chunks: Vec<&[u8]> = data.chunks(56).collect();
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut r = [0u8; 64];
                r[0] = 0x02;
                r[1] = chunk.len() as u8;
                r[2..5].copy_from_slice(aim);
                r[5..5 + chunk.len()].copy_from_slice(chunk);
                r[61] = b's';
                r[63] = u8::from(i + 1 < chunks.len());
                r
            })
            .collect()
    }

    #[test]
    fn one_report_scan() {
        let mut d = HidPosDecoder::new();
        let reports = capture(b"]Q1", b"286000000000000000\r");
        let frame = d.report(&reports[0]).unwrap();
        assert_eq!(
            frame,
            Frame::Scan {
                text: "286000000000000000".into(),
                symbology: Some("]Q1".into())
            }
        );
    }

    #[test]
    fn a_long_code_spans_reports() {
        let data: Vec<u8> = (0..150).map(|i| b'0' + (i % 10) as u8).collect();
        let reports = capture(b"]d1", &data);
        assert_eq!(reports.len(), 3);
        let mut d = HidPosDecoder::new();
        assert!(d.report(&reports[0]).is_none());
        assert!(d.report(&reports[1]).is_none());
        let Some(Frame::Scan { text, .. }) = d.report(&reports[2]) else {
            panic!()
        };
        assert_eq!(text.as_bytes(), data.as_slice());
    }

    #[test]
    fn short_and_foreign_reports_are_ignored() {
        let mut d = HidPosDecoder::new();
        assert!(d.report(&[0x02, 5]).is_none());
        let mut status = [0u8; 64];
        status[0] = 0x15;
        assert!(d.report(&status).is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_reports_never_panic_and_stay_bounded(reports in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 60..70), 0..40)) {
            let mut d = HidPosDecoder::new();
            for mut r in reports {
                r[0] = 0x02;
                if let Some(Frame::Scan { text, .. }) = d.report(&r) {
                    prop_assert!(text.len() <= MAX_SCAN_LEN * 3);
                }
                prop_assert!(d.data.len() <= MAX_SCAN_LEN);
            }
        }
    }
}
