//! ESC/POS bytes (docs/devices.md §10.1–10.3): a small builder for receipts. Text is encoded in the
//! printer's character set (GB18030 for Chinese-market printers, whose Chinese mode `FS &` is
//! switched on for it; or plain ASCII); characters the set cannot hold print as `?`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gb18030,
    Ascii,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "gb18030" | "gbk" => Some(Encoding::Gb18030),
            "ascii" => Some(Encoding::Ascii),
            _ => None,
        }
    }
}

/// The printer's buzzer command, if it has one (docs/devices.md §10.6): `ESC B n t`
/// (`1B 42 n t`: n beeps of t × 50 ms, the Chinese-market printers' command) or Epson's
/// `ESC ( A` function 97 (`1B 28 41 05 00 61 64 c t1 t2`: c beeps of t1 × 100 ms on and
/// t2 × 100 ms off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Beeper {
    #[default]
    Off,
    EscB,
    EscParenA,
}

impl Beeper {
    pub fn parse(s: &str) -> Option<Beeper> {
        match s {
            "off" => Some(Beeper::Off),
            "esc_b" => Some(Beeper::EscB),
            "esc_paren_a" => Some(Beeper::EscParenA),
            _ => None,
        }
    }

    /// The bytes that beep `times` times (at most 9), or none when off.
    pub fn bytes(self, times: u8) -> Vec<u8> {
        let times = times.clamp(1, 9);
        match self {
            Beeper::Off => Vec::new(),
            // 150 ms each.
            Beeper::EscB => vec![0x1B, 0x42, times, 3],
            // 200 ms on, 100 ms off.
            Beeper::EscParenA => vec![0x1B, 0x28, 0x41, 0x05, 0x00, 0x61, 0x64, times, 2, 1],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

pub struct EscPos {
    bytes: Vec<u8>,
    encoding: Encoding,
}

impl EscPos {
    /// `ESC @`, then Chinese character mode for GB18030 printers.
    pub fn new(encoding: Encoding) -> EscPos {
        let mut p = EscPos {
            bytes: vec![0x1B, 0x40],
            encoding,
        };
        if encoding == Encoding::Gb18030 {
            p.bytes.extend_from_slice(&[0x1C, 0x26]);
        }
        p
    }

    pub fn align(&mut self, a: Align) -> &mut Self {
        let n = match a {
            Align::Left => 0,
            Align::Center => 1,
            Align::Right => 2,
        };
        self.bytes.extend_from_slice(&[0x1B, 0x61, n]);
        self
    }

    pub fn bold(&mut self, on: bool) -> &mut Self {
        self.bytes.extend_from_slice(&[0x1B, 0x45, u8::from(on)]);
        self
    }

    /// Double width and height (`GS ! 0x11`), or normal size.
    pub fn double(&mut self, on: bool) -> &mut Self {
        self.bytes
            .extend_from_slice(&[0x1D, 0x21, if on { 0x11 } else { 0x00 }]);
        self
    }

    /// One line of text and a line feed.
    pub fn line(&mut self, text: &str) -> &mut Self {
        self.text(text);
        self.bytes.push(0x0A);
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        // Control characters in data must not turn into printer commands.
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        match self.encoding {
            Encoding::Gb18030 => {
                // `¥` is a 4-byte GB18030 sequence most printers print as junk; `￥` is 2 bytes.
                let clean = clean.replace('¥', "￥");
                let (encoded, _, _) = encoding_rs::GB18030.encode(&clean);
                self.bytes.extend_from_slice(&encoded);
            }
            Encoding::Ascii => self.bytes.extend(
                clean
                    .chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' }),
            ),
        }
        self
    }

    pub fn feed(&mut self, lines: u8) -> &mut Self {
        self.bytes.extend_from_slice(&[0x1B, 0x64, lines]);
        self
    }

    /// A QR code of `data`: model 2, module size `size`, error correction M.
    pub fn qr(&mut self, data: &str, size: u8) -> &mut Self {
        let data = data.as_bytes();
        let k = data.len().min(7000) + 3;
        self.bytes
            .extend_from_slice(&[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
        self.bytes.extend_from_slice(&[
            0x1D,
            0x28,
            0x6B,
            0x03,
            0x00,
            0x31,
            0x43,
            size.clamp(1, 16),
        ]);
        self.bytes
            .extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31]);
        self.bytes.extend_from_slice(&[
            0x1D,
            0x28,
            0x6B,
            (k & 0xFF) as u8,
            (k >> 8) as u8,
            0x31,
            0x50,
            0x30,
        ]);
        self.bytes.extend_from_slice(&data[..k - 3]);
        self.bytes
            .extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
        self
    }

    /// Feeds past the cutter and cuts (partial cut, `GS V B n`).
    pub fn cut(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&[0x1D, 0x56, 0x42, 0x03]);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// `DLE EOT 4` (roll paper sensor status) and the answer's meaning.
pub const PAPER_STATUS_QUERY: [u8; 3] = [0x10, 0x04, 0x04];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaperStatus {
    Ok,
    NearEnd,
    Out,
}

/// Reads a `DLE EOT 4` answer; `None` if the byte is not a status byte.
pub fn paper_status(byte: u8) -> Option<PaperStatus> {
    if byte & 0x93 != 0x12 {
        return None;
    }
    Some(if byte & 0x60 != 0 {
        PaperStatus::Out
    } else if byte & 0x0C != 0 {
        PaperStatus::NearEnd
    } else {
        PaperStatus::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_documented_bytes() {
        let mut p = EscPos::new(Encoding::Gb18030);
        p.align(Align::Center)
            .bold(true)
            .double(true)
            .line("中文")
            .double(false)
            .bold(false);
        p.qr("ABC", 6).cut();
        let b = p.into_bytes();
        let expected: Vec<u8> = [
            &[0x1B, 0x40, 0x1C, 0x26][..],
            &[0x1B, 0x61, 0x01, 0x1B, 0x45, 0x01, 0x1D, 0x21, 0x11],
            &[0xD6, 0xD0, 0xCE, 0xC4, 0x0A],
            &[0x1D, 0x21, 0x00, 0x1B, 0x45, 0x00],
            &[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x06],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31],
            &[
                0x1D, 0x28, 0x6B, 0x06, 0x00, 0x31, 0x50, 0x30, b'A', b'B', b'C',
            ],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30],
            &[0x1D, 0x56, 0x42, 0x03],
        ]
        .concat();
        assert_eq!(b, expected);
    }

    #[test]
    fn beeper_bytes() {
        assert_eq!(Beeper::EscB.bytes(1), [0x1B, 0x42, 1, 3]);
        assert_eq!(Beeper::EscB.bytes(3), [0x1B, 0x42, 3, 3]);
        assert_eq!(
            Beeper::EscParenA.bytes(3),
            [0x1B, 0x28, 0x41, 0x05, 0x00, 0x61, 0x64, 3, 2, 1]
        );
        assert!(Beeper::Off.bytes(3).is_empty());
        assert_eq!(Beeper::parse("esc_paren_a"), Some(Beeper::EscParenA));
        assert_eq!(Beeper::parse("on"), None);
    }

    #[test]
    fn yen_prints_as_the_two_byte_fullwidth_sign_and_controls_are_neutralised() {
        let mut p = EscPos::new(Encoding::Gb18030);
        p.text("¥\u{1b}@");
        let b = p.into_bytes();
        assert_eq!(&b[4..], &[0xA3, 0xA4, b' ', b'@']);
        let mut a = EscPos::new(Encoding::Ascii);
        a.text("a中");
        assert_eq!(&a.into_bytes()[2..], b"a?");
    }

    #[test]
    fn paper_status_bytes() {
        assert_eq!(paper_status(0x12), Some(PaperStatus::Ok));
        assert_eq!(paper_status(0x1E), Some(PaperStatus::NearEnd));
        assert_eq!(paper_status(0x72), Some(PaperStatus::Out));
        assert_eq!(paper_status(0x00), None);
    }
}
