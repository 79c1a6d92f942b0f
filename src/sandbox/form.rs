//! Open Platform request forms as the platform reads them: the query and the form body,
//! percent-decoded to bytes, then decoded in the charset the query declares (UTF-8, GBK or
//! GB18030), in which the answer is also written.

use std::collections::BTreeMap;

use encoding_rs::Encoding;

/// A charset the platform accepts in `charset`: UTF-8, GBK (also declared as GB2312) or
/// GB18030, by their `encoding_rs` labels, any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Charset(&'static Encoding);

impl Charset {
    const UTF_8: Charset = Charset(encoding_rs::UTF_8);

    fn from_label(label: &[u8]) -> Option<Charset> {
        Encoding::for_label_no_replacement(label)
            .filter(|e| [encoding_rs::UTF_8, encoding_rs::GBK, encoding_rs::GB18030].contains(e))
            .map(Charset)
    }

    /// The name the answer's Content-Type gives.
    pub(super) fn name(self) -> &'static str {
        if self.0 == encoding_rs::GBK {
            "GBK"
        } else if self.0 == encoding_rs::GB18030 {
            "GB18030"
        } else {
            "utf-8"
        }
    }

    pub(super) fn content_type(self) -> String {
        format!("text/html;charset={}", self.name())
    }

    /// The text's bytes in this charset (a character it cannot hold becomes `&#…;`).
    pub(super) fn encode(self, text: &str) -> Vec<u8> {
        self.0.encode(text).0.into_owned()
    }

    /// `None` when the bytes are not valid in this charset.
    fn decode(self, bytes: &[u8]) -> Option<String> {
        self.0
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(std::borrow::Cow::into_owned)
    }
}

/// A request refused before its parameters could be read.
pub(super) struct FormRefusal {
    pub(super) charset: Charset,
    pub(super) sub_code: &'static str,
    pub(super) sub_msg: String,
}

/// The parameters of the query and the form body, decoded in the charset the query declares
/// (`charset`; UTF-8 when absent), as the platform reads them: it looks for `charset` only in
/// the query.
pub(super) fn decode_form(
    query: &[u8],
    body: &[u8],
) -> Result<(BTreeMap<String, String>, Charset), FormRefusal> {
    let label = form_pairs(query)
        .filter(|(k, _)| k == b"charset")
        .map(|(_, v)| v)
        .last()
        .unwrap_or_default();
    let charset = if label.is_empty() {
        Charset::UTF_8
    } else {
        Charset::from_label(&label).ok_or_else(|| FormRefusal {
            charset: Charset::UTF_8,
            sub_code: "isv.invalid-charset",
            sub_msg: format!(
                "charset {} is not supported; use utf-8 or GBK",
                String::from_utf8_lossy(&label)
            ),
        })?
    };
    let mut params = BTreeMap::new();
    for (k, v) in form_pairs(query).chain(form_pairs(body)) {
        let (Some(key), Some(value)) = (charset.decode(&k), charset.decode(&v)) else {
            return Err(FormRefusal {
                charset,
                sub_code: "isv.invalid-parameter",
                sub_msg: format!(
                    "parameter {} is not valid {}",
                    String::from_utf8_lossy(&k),
                    charset.name()
                ),
            });
        };
        params.insert(key, value);
    }
    Ok((params, charset))
}

/// `application/x-www-form-urlencoded` pairs as bytes: `+` is a space, `%XX` a byte, and a `%`
/// not followed by two hex digits stays itself, as `url::form_urlencoded::parse` reads them;
/// but the bytes are left for the declared charset (that parser takes them as UTF-8).
fn form_pairs(input: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let escaped = (b == b'%')
            .then(|| input.get(i + 1..i + 3).and_then(hex_byte))
            .flatten();
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let digit = |c: &u8| {
        char::from(*c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let [high, low] = digits else {
        return None;
    };
    Some((digit(high)? << 4) | digit(low)?)
}
