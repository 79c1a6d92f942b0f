//! Exact money: an amount is an integer count of a currency's minor units.
//!
//! No floating point touches money anywhere in scanpay (docs/design.md §3.6). Parsing is
//! strict because an amount typed by a register developer or an operator must mean exactly
//! one thing; formatting is per gateway: the Open Platform wants a major-unit decimal string
//! (`"12.50"` yuan), AMS wants the minor-unit count as a string (`"1250"`).

pub mod basket;
pub mod breakdown;

use std::fmt;

/// An ISO 4217 currency scanpay knows the minor-unit exponent of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

/// ISO 4217 codes and exponents of the currencies Alipay's in-store products settle in.
/// Exponents follow ISO 4217 (and AMS's amount rules: JPY/KRW/VND/CLP have no minor unit).
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2),
    ("BHD", 3),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("IDR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MOP", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
];

impl Currency {
    /// Looks a currency up by its ISO 4217 code (upper case, as on the wire).
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimal places of the minor unit (2 for CNY, 0 for JPY).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency {0:?}: use an ISO 4217 code such as \"CNY\" or \"USD\"")]
    UnknownCurrency(String),
    #[error("amount is empty: write it like \"12.50\"")]
    Empty,
    #[error(
        "amount {0:?} is not a plain decimal: write digits with an optional '.' and fraction, like \"12.50\" (no sign, exponent, spaces or separators)"
    )]
    Syntax(String),
    #[error("amount {amount:?} has more decimals than {currency} allows ({exponent})")]
    TooPrecise {
        amount: String,
        currency: &'static str,
        exponent: u8,
    },
    #[error("amount {0:?} is too large")]
    Overflow(String),
    #[error("amounts in {0} and {1} cannot be combined")]
    CurrencyMismatch(&'static str, &'static str),
}

/// An exact amount of money: `minor` units of `currency` (fen for CNY, cents for USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    minor: i64,
    currency: Currency,
}

impl Amount {
    pub fn from_minor(minor: i64, currency: Currency) -> Amount {
        Amount { minor, currency }
    }

    /// Parses a major-unit decimal such as `"12.50"` strictly: ASCII digits, at most one `.`
    /// followed by 1..=exponent digits. Signs, exponents, spaces, thousands separators,
    /// a bare `.` on either side and over-precise fractions are all rejected.
    pub fn parse(text: &str, currency: Currency) -> Result<Amount, MoneyError> {
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        let syntax = || MoneyError::Syntax(text.to_string());
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) {
            return Err(syntax());
        }
        let fraction = match fraction {
            None => "",
            Some(f) if all_digits(f) => f,
            Some(_) => return Err(syntax()),
        };
        let exponent = currency.exponent();
        if fraction.len() > usize::from(exponent) {
            return Err(MoneyError::TooPrecise {
                amount: text.to_string(),
                currency: currency.code(),
                exponent,
            });
        }
        let overflow = || MoneyError::Overflow(text.to_string());
        let mut minor: i64 = 0;
        let padded = fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(usize::from(exponent));
        for digit in whole.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit - b'0')))
                .ok_or_else(overflow)?;
        }
        Ok(Amount { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// Major-unit decimal with exactly `exponent` decimals: `"12.50"` CNY, `"1250"` JPY.
    /// This is the Open Platform wire form (`total_amount`, `refund_amount`).
    pub fn to_major_string(&self) -> String {
        let exponent = u32::from(self.currency.exponent());
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exponent as usize
        )
    }

    /// Minor-unit count as a string: `"1250"`. This is the AMS wire form (`Amount.value`).
    pub fn to_minor_string(&self) -> String {
        self.minor.to_string()
    }

    pub fn checked_add(&self, other: &Amount) -> Result<Amount, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or_else(|| MoneyError::Overflow(format!("{self} + {other}")))?;
        Ok(Amount::from_minor(minor, self.currency))
    }

    pub fn checked_sub(&self, other: &Amount) -> Result<Amount, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or_else(|| MoneyError::Overflow(format!("{self} - {other}")))?;
        Ok(Amount::from_minor(minor, self.currency))
    }

    fn same_currency(&self, other: &Amount) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.code(),
                other.currency.code(),
            ))
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_major_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }
    fn jpy() -> Currency {
        Currency::from_code("JPY").unwrap()
    }
    fn kwd() -> Currency {
        Currency::from_code("KWD").unwrap()
    }

    #[test]
    fn parses_plain_decimals_into_minor_units() {
        let cases = [
            ("12.50", 1250),
            ("12.5", 1250),
            ("12", 1200),
            ("0.01", 1),
            ("0", 0),
            ("007.00", 700),
            ("100000000.00", 10_000_000_000),
        ];
        for (text, minor) in cases {
            assert_eq!(Amount::parse(text, cny()).unwrap().minor(), minor, "{text}");
        }
        assert_eq!(Amount::parse("1250", jpy()).unwrap().minor(), 1250);
        assert_eq!(Amount::parse("1.234", kwd()).unwrap().minor(), 1234);
    }

    #[test]
    fn rejects_everything_that_is_not_a_plain_decimal() {
        for text in [
            "1e3", "-1", "+1", " 1", "1 ", "1,000", "1.", ".5", "1..0", "1.0.0", "0x10", "١٢",
            "NaN", "inf", "12.5a", "1_000",
        ] {
            assert!(
                matches!(Amount::parse(text, cny()), Err(MoneyError::Syntax(_))),
                "{text:?} was accepted"
            );
        }
        assert_eq!(Amount::parse("", cny()), Err(MoneyError::Empty));
    }

    #[test]
    fn rejects_more_decimals_than_the_currency_has() {
        assert!(matches!(
            Amount::parse("12.505", cny()),
            Err(MoneyError::TooPrecise { exponent: 2, .. })
        ));
        assert!(matches!(
            Amount::parse("12.5", jpy()),
            Err(MoneyError::TooPrecise { exponent: 0, .. })
        ));
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert!(matches!(
            Amount::parse("92233720368547758.08", cny()),
            Err(MoneyError::Overflow(_))
        ));
        assert!(matches!(
            Amount::parse("99999999999999999999999", jpy()),
            Err(MoneyError::Overflow(_))
        ));
        // The largest representable value still parses.
        assert_eq!(
            Amount::parse("92233720368547758.07", cny())
                .unwrap()
                .minor(),
            i64::MAX
        );
    }

    #[test]
    fn formats_per_gateway() {
        let a = Amount::parse("12.5", cny()).unwrap();
        assert_eq!(a.to_major_string(), "12.50");
        assert_eq!(a.to_minor_string(), "1250");
        assert_eq!(Amount::from_minor(1, cny()).to_major_string(), "0.01");
        assert_eq!(Amount::from_minor(0, cny()).to_major_string(), "0.00");
        assert_eq!(Amount::from_minor(1250, jpy()).to_major_string(), "1250");
        assert_eq!(Amount::from_minor(1234, kwd()).to_major_string(), "1.234");
        assert_eq!(Amount::from_minor(-5, cny()).to_major_string(), "-0.05");
        assert_eq!(
            Amount::from_minor(i64::MIN, cny()).to_major_string(),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn round_trips_every_cent_of_a_range() {
        for minor in (0..100_000).step_by(7) {
            let a = Amount::from_minor(minor, cny());
            assert_eq!(Amount::parse(&a.to_major_string(), cny()).unwrap(), a);
        }
    }

    #[test]
    fn arithmetic_is_checked_and_currency_safe() {
        let a = Amount::from_minor(i64::MAX, cny());
        assert!(a.checked_add(&Amount::from_minor(1, cny())).is_err());
        assert!(
            Amount::from_minor(1, cny())
                .checked_add(&Amount::from_minor(1, jpy()))
                .is_err()
        );
        assert_eq!(
            Amount::from_minor(500, cny())
                .checked_sub(&Amount::from_minor(200, cny()))
                .unwrap()
                .minor(),
            300
        );
    }

    #[test]
    fn unknown_currency_is_named() {
        let err = Currency::from_code("XYZ").unwrap_err();
        assert!(err.to_string().contains("XYZ"));
        assert!(Currency::from_code("cny").is_err(), "codes are upper case");
    }
}
