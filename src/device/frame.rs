//! Turning a scanner's byte stream into scans: a terminator (CR, LF, CRLF) or, without one, an
//! idle gap ends a scan; a configured prefix and suffix and the AIM symbology identifier
//! (`]Q1`, `]E0`, …) are stripped; over-long input is dropped as garbage without growing.
//! Partial input is kept across reads, so a scan split at any byte boundary frames the same.

use std::time::{Duration, Instant};

use crate::paycode::MAX_SCAN_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    Cr,
    Lf,
    /// CR, LF or both: each ends a scan, empty scans are dropped.
    CrLf,
    /// No terminator: an idle gap ends a scan.
    None,
}

impl Terminator {
    pub fn parse(s: &str) -> Option<Terminator> {
        match s {
            "cr" => Some(Terminator::Cr),
            "lf" => Some(Terminator::Lf),
            "crlf" => Some(Terminator::CrLf),
            "none" => Some(Terminator::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FrameConfig {
    pub terminator: Terminator,
    /// Without a terminator: this long without a byte ends a scan. With one: a partial scan
    /// this old is dropped as garbage (a scanner does not pause mid-code).
    pub idle: Duration,
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    /// Strip a leading AIM symbology identifier (`]` + code + modifier).
    pub strip_aim: bool,
}

impl Default for FrameConfig {
    fn default() -> FrameConfig {
        FrameConfig {
            terminator: Terminator::CrLf,
            idle: Duration::from_millis(100),
            prefix: Vec::new(),
            suffix: Vec::new(),
            strip_aim: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Scan {
        text: String,
        /// The AIM identifier, when one was stripped (`]Q1` = QR code).
        symbology: Option<String>,
    },
    Garbage {
        why: &'static str,
        len: usize,
    },
}

pub struct Framer {
    config: FrameConfig,
    buf: Vec<u8>,
    /// Bytes of the current scan beyond the cap: the scan is dropped at its end.
    overflow: usize,
    last_byte: Option<Instant>,
}

impl Framer {
    pub fn new(config: FrameConfig) -> Framer {
        Framer {
            config,
            buf: Vec::with_capacity(64),
            overflow: 0,
            last_byte: None,
        }
    }

    /// Feeds bytes read at `now`; returns the scans they complete.
    pub fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<Frame> {
        let mut frames = Vec::new();
        if let Some(f) = self.tick(now) {
            frames.push(f);
        }
        for &b in bytes {
            let ends = match self.config.terminator {
                Terminator::Cr => b == b'\r',
                Terminator::Lf => b == b'\n',
                Terminator::CrLf => b == b'\r' || b == b'\n',
                Terminator::None => false,
            };
            if ends {
                frames.extend(self.finish());
                continue;
            }
            // The other line-end byte of a CR-only or LF-only scanner is noise.
            if matches!(self.config.terminator, Terminator::Cr | Terminator::Lf)
                && (b == b'\r' || b == b'\n')
            {
                continue;
            }
            if self.buf.len() >= MAX_SCAN_LEN {
                self.overflow += 1;
            } else {
                self.buf.push(b);
            }
        }
        if !bytes.is_empty() {
            self.last_byte = Some(now);
        }
        frames
    }

    /// Called when a read times out: ends a scan after the idle gap.
    pub fn tick(&mut self, now: Instant) -> Option<Frame> {
        let last = self.last_byte?;
        if now.duration_since(last) < self.config.idle
            || (self.buf.is_empty() && self.overflow == 0)
        {
            return None;
        }
        self.last_byte = None;
        if self.config.terminator == Terminator::None {
            return self.finish();
        }
        let len = self.buf.len() + self.overflow;
        self.buf.clear();
        self.overflow = 0;
        Some(Frame::Garbage {
            why: "incomplete scan: no terminator arrived",
            len,
        })
    }

    fn finish(&mut self) -> Option<Frame> {
        if self.overflow > 0 {
            let len = self.buf.len() + self.overflow;
            self.buf.clear();
            self.overflow = 0;
            return Some(Frame::Garbage {
                why: "longer than any barcode a checkout scans",
                len,
            });
        }
        if self.buf.is_empty() {
            return None;
        }
        let mut data: &[u8] = &self.buf;
        if !self.config.prefix.is_empty()
            && let Some(rest) = data.strip_prefix(self.config.prefix.as_slice())
        {
            data = rest;
        }
        if !self.config.suffix.is_empty()
            && let Some(rest) = data.strip_suffix(self.config.suffix.as_slice())
        {
            data = rest;
        }
        let mut symbology = None;
        if self.config.strip_aim
            && data.len() >= 3
            && data[0] == b']'
            && data[1].is_ascii_alphabetic()
        {
            symbology = Some(String::from_utf8_lossy(&data[..3]).into_owned());
            data = &data[3..];
        }
        let frame = Frame::Scan {
            text: String::from_utf8_lossy(data).into_owned(),
            symbology,
        };
        self.buf.clear();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scans(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Scan { text, .. } => text.clone(),
                Frame::Garbage { why, .. } => format!("garbage: {why}"),
            })
            .collect()
    }

    #[test]
    fn terminators_end_scans_and_crlf_gives_one() {
        let now = Instant::now();
        let mut f = Framer::new(FrameConfig::default());
        let out = f.push(b"286000000000000000\r\n4006381333931\r\n", now);
        assert_eq!(scans(&out), ["286000000000000000", "4006381333931"]);
        let mut cr = Framer::new(FrameConfig {
            terminator: Terminator::Cr,
            ..FrameConfig::default()
        });
        assert_eq!(scans(&cr.push(b"123\r\n456\r", now)), ["123", "456"]);
        let mut lf = Framer::new(FrameConfig {
            terminator: Terminator::Lf,
            ..FrameConfig::default()
        });
        assert_eq!(scans(&lf.push(b"123\r\n", now)), ["123"]);
    }

    #[test]
    fn aim_prefix_and_suffix_are_stripped() {
        let now = Instant::now();
        let config = FrameConfig {
            prefix: b"@@".to_vec(),
            suffix: b"#".to_vec(),
            ..FrameConfig::default()
        };
        let mut f = Framer::new(config);
        let out = f.push(b"@@]Q1286000000000000000#\r", now);
        assert_eq!(
            out,
            [Frame::Scan {
                text: "286000000000000000".into(),
                symbology: Some("]Q1".into())
            }]
        );
    }

    #[test]
    fn without_terminator_an_idle_gap_ends_the_scan() {
        let t0 = Instant::now();
        let mut f = Framer::new(FrameConfig {
            terminator: Terminator::None,
            ..FrameConfig::default()
        });
        assert!(f.push(b"28600000", t0).is_empty());
        assert!(
            f.push(b"0000000000", t0 + Duration::from_millis(20))
                .is_empty()
        );
        assert_eq!(f.tick(t0 + Duration::from_millis(60)), None);
        let out = f.tick(t0 + Duration::from_millis(200)).unwrap();
        assert_eq!(scans(&[out]), ["286000000000000000"]);
    }

    #[test]
    fn a_stalled_partial_scan_is_dropped_not_joined_to_the_next() {
        let t0 = Instant::now();
        let mut f = Framer::new(FrameConfig::default());
        assert!(f.push(b"2860000", t0).is_empty());
        let out = f.push(b"4006381333931\r", t0 + Duration::from_secs(2));
        assert_eq!(
            scans(&out),
            [
                "garbage: incomplete scan: no terminator arrived",
                "4006381333931"
            ]
        );
    }

    #[test]
    fn over_long_input_is_garbage_and_memory_stays_bounded() {
        let now = Instant::now();
        let mut f = Framer::new(FrameConfig::default());
        let long = vec![b'7'; 100_000];
        assert!(f.push(&long, now).is_empty());
        assert!(f.buf.capacity() <= 1024, "buffer stays capped");
        let out = f.push(b"\r286000000000000000\r", now);
        assert_eq!(
            scans(&out),
            [
                "garbage: longer than any barcode a checkout scans",
                "286000000000000000"
            ]
        );
    }

    proptest! {
        /// A stream split at any byte boundaries frames exactly as the whole stream.
        #[test]
        fn splitting_never_changes_the_scans(cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let stream = b"]Q1286000000000000000\r\n4006381333931\r\nhello\r\n";
            let now = Instant::now();
            let whole = Framer::new(FrameConfig::default()).push(stream, now);
            let mut f = Framer::new(FrameConfig::default());
            let mut out = Vec::new();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            points.sort_unstable();
            let mut start = 0;
            for p in points.into_iter().chain([stream.len()]) {
                out.extend(f.push(&stream[start..p], now));
                start = p;
            }
            prop_assert_eq!(out, whole);
        }

        /// Any bytes at all: no panic, bounded buffer, every frame within the cap.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), term in 0u8..4) {
            let terminator = [Terminator::Cr, Terminator::Lf, Terminator::CrLf, Terminator::None][term as usize];
            let mut f = Framer::new(FrameConfig { terminator, ..FrameConfig::default() });
            let now = Instant::now();
            for chunk in data.chunks(7) {
                for frame in f.push(chunk, now) {
                    if let Frame::Scan { text, .. } = frame {
                        prop_assert!(text.len() <= MAX_SCAN_LEN * 3);
                    }
                }
                prop_assert!(f.buf.len() <= MAX_SCAN_LEN);
            }
            let _ = f.tick(now + Duration::from_secs(1));
        }
    }
}
