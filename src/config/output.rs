//! `[led]`, `[printer]` and `[receipt]`: the status light, the receipt printer and what the
//! receipt says.

use serde::Deserialize;

use super::ConfigError;
use super::validate::Validator;
use crate::output::labels::Language;
use crate::output::led::LedConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLed {
    kind: Option<String>,
    green: Option<String>,
    red: Option<String>,
    yellow: Option<String>,
    blue: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrinter {
    kind: Option<String>,
    path: Option<String>,
    address: Option<String>,
    baud: Option<u32>,
    width: Option<u32>,
    encoding: Option<String>,
    copies: Option<u8>,
    beep: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceipt {
    store_name: Option<String>,
    store_name_zh: Option<String>,
    store_name_en: Option<String>,
    #[serde(default)]
    header: Vec<String>,
    header_zh: Option<Vec<String>>,
    header_en: Option<Vec<String>>,
    #[serde(default)]
    footer: Vec<String>,
    footer_zh: Option<Vec<String>>,
    footer_en: Option<Vec<String>>,
    language: Option<String>,
    merchant_copy: Option<bool>,
    pub(super) utc_offset: Option<String>,
}

impl Validator<'_> {
    pub(super) fn led(&self, raw: Option<RawLed>) -> Result<LedConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(LedConfig::None);
        };
        let kind = raw.kind.unwrap_or_else(|| "sysfs".to_string());
        match kind.as_str() {
            "none" => Ok(LedConfig::None),
            "terminal" => Ok(LedConfig::Terminal),
            "sysfs" => {
                let path = |p: &Option<String>| p.as_deref().map(|p| self.path(p));
                let leds = crate::output::led::SysfsLeds {
                    green: path(&raw.green),
                    red: path(&raw.red),
                    yellow: path(&raw.yellow),
                    blue: path(&raw.blue),
                };
                if leds.green.is_none() && leds.red.is_none() {
                    return Err(self.missing("led", "green", "name at least the green and red LED directories, e.g. green = \"/sys/class/leds/scanpay:green\""));
                }
                Ok(LedConfig::Sysfs(leds))
            }
            "gpio" => Err(self.invalid("led", "kind", &kind, "GPIO LEDs are not supported yet: expose them as LED-class devices (gpio-leds in the device tree) and use \"sysfs\"")),
            other => Err(self.invalid("led", "kind", other, "\"sysfs\", \"terminal\" or \"none\"")),
        }
    }

    pub(super) fn printer(
        &self,
        raw: Option<RawPrinter>,
        receipt: Option<RawReceipt>,
        terminal_id: &str,
        zone: crate::clock::StoreZone,
    ) -> Result<Option<crate::output::printer::PrinterConfig>, ConfigError> {
        use crate::output::printer::{PrinterConfig, PrinterKind};
        let Some(raw) = raw else { return Ok(None) };
        let receipt = receipt.unwrap_or_default();
        let kind_text = raw.kind.clone().unwrap_or_else(|| "none".to_string());
        let need_path = || {
            self.required(
                raw.path.as_deref(),
                "printer",
                "path",
                "name the device or file, e.g. path = \"/dev/usb/lp0\"",
            )
            .map(|p| self.path(p))
        };
        let kind = match kind_text.as_str() {
            "none" => PrinterKind::None,
            "file" => PrinterKind::File(need_path()?),
            "serial" => PrinterKind::Serial {
                path: need_path()?,
                baud: raw.baud.unwrap_or(9600),
            },
            "tcp" => {
                let address = self.required(
                    raw.address.clone(),
                    "printer",
                    "address",
                    "the printer's host and port, e.g. address = \"192.0.2.10:9100\"",
                )?;
                let address = if address.contains(':') {
                    address
                } else {
                    format!("{address}:9100")
                };
                PrinterKind::Tcp(address)
            }
            other => {
                return Err(self.invalid(
                    "printer",
                    "kind",
                    other,
                    "\"file\", \"tcp\", \"serial\" or \"none\"",
                ));
            }
        };
        let width = match raw.width.unwrap_or(58) {
            58 => 32,
            80 => 48,
            other => {
                return Err(self.invalid(
                    "printer",
                    "width",
                    other,
                    "the paper width in mm: 58 or 80",
                ));
            }
        };
        let enc_text = raw
            .encoding
            .clone()
            .unwrap_or_else(|| "gb18030".to_string());
        let encoding = crate::output::escpos::Encoding::parse(&enc_text).ok_or_else(|| {
            self.invalid(
                "printer",
                "encoding",
                &enc_text,
                "\"gb18030\" (Chinese printers) or \"ascii\"",
            )
        })?;
        let copies = raw.copies.unwrap_or(1);
        if !(1..=3).contains(&copies) {
            return Err(self.invalid("printer", "copies", copies, "1 to 3"));
        }
        let beep_text = raw.beep.clone().unwrap_or_else(|| "off".to_string());
        let beep = crate::output::escpos::Beeper::parse(&beep_text).ok_or_else(|| {
            self.invalid(
                "printer",
                "beep",
                &beep_text,
                "\"off\", \"esc_b\" (ESC B, most Chinese-market printers) or \"esc_paren_a\" (Epson ESC ( A)",
            )
        })?;
        let lang_text = receipt.language.clone().unwrap_or_else(|| "en".to_string());
        let language = Language::parse(&lang_text).ok_or_else(|| {
            self.invalid(
                "receipt",
                "language",
                &lang_text,
                "\"zh\" (Chinese labels), \"en\" (English) or \"both\"",
            )
        })?;
        let one = |v: &Option<String>| v.clone().map(|s| vec![s]);
        let lines: [(&'static str, Option<Vec<String>>); 9] = [
            ("store_name", one(&receipt.store_name)),
            ("store_name_zh", one(&receipt.store_name_zh)),
            ("store_name_en", one(&receipt.store_name_en)),
            ("header", Some(receipt.header.clone())),
            ("header_zh", receipt.header_zh.clone()),
            ("header_en", receipt.header_en.clone()),
            ("footer", Some(receipt.footer.clone())),
            ("footer_zh", receipt.footer_zh.clone()),
            ("footer_en", receipt.footer_en.clone()),
        ];
        for (key, value) in &lines {
            for line in value.iter().flatten() {
                if line.chars().count() > 64 || line.chars().any(char::is_control) {
                    return Err(self.invalid(
                        "receipt",
                        key,
                        line,
                        "lines of at most 64 printable characters",
                    ));
                }
            }
        }
        let [
            name,
            name_zh,
            name_en,
            header,
            header_zh,
            header_en,
            footer,
            footer_zh,
            footer_en,
        ] = lines.map(|(_, v)| v);
        let pick = |plain: Option<Vec<String>>, zh, en| {
            in_language(language, plain.unwrap_or_default(), zh, en)
        };
        Ok(Some(PrinterConfig {
            kind,
            copies,
            merchant_copy: receipt.merchant_copy.unwrap_or(false),
            receipt: crate::output::receipt::ReceiptContext {
                store_name: pick(name, name_zh, name_en),
                terminal_id: terminal_id.to_string(),
                header: pick(header, header_zh, header_en),
                footer: pick(footer, footer_zh, footer_en),
                width,
                encoding,
                zone,
                language,
            },
            beep,
        }))
    }
}

/// The lines a slip prints for one text in `language`: the language's own key, or the plain
/// key when it has none; in both languages the Chinese, then the English, the plain key
/// standing in (once) for the one that is not set.
fn in_language(
    language: Language,
    plain: Vec<String>,
    zh: Option<Vec<String>>,
    en: Option<Vec<String>>,
) -> Vec<String> {
    match (language, zh, en) {
        (Language::Zh, Some(zh), _) => zh,
        (Language::En, _, Some(en)) => en,
        (Language::Both, Some(zh), Some(en)) => [zh, en].concat(),
        (Language::Both, Some(zh), None) => [zh, plain].concat(),
        (Language::Both, None, Some(en)) => [plain, en].concat(),
        _ => plain,
    }
}
