//! Laying text out on the receipt printer's line: 32 columns on 58 mm paper, 48 on 80 mm
//! (docs/devices.md §10.5). A CJK or full-width character takes two columns, everything else
//! one; rows and wrapping count columns, never characters.

/// Columns one character takes on the printer: two for the East Asian wide and full-width
/// ranges (CJK, Hangul, kana, full-width forms, CJK punctuation), one otherwise.
pub fn char_columns(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F        // Hangul Jamo initials
        | 0x2E80..=0x303E      // CJK radicals, Kangxi, CJK symbols and punctuation
        | 0x3041..=0x33FF      // kana, Bopomofo, Hangul compatibility, CJK compatibility
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xA000..=0xA4CF      // Yi
        | 0xAC00..=0xD7A3      // Hangul syllables
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0xFE30..=0xFE4F      // CJK compatibility forms
        | 0xFF00..=0xFF60      // full-width forms
        | 0xFFE0..=0xFFE6      // full-width signs (￥ included)
        | 0x20000..=0x3FFFD // CJK extensions B and later
    );
    if wide { 2 } else { 1 }
}

/// Columns a text takes on the printer.
pub fn columns(text: &str) -> usize {
    text.chars().map(char_columns).sum()
}

/// A label on the left and its value on the right of one `width`-column line; when both do
/// not fit with a space between, the label (wrapped) and then the value on a line of its own,
/// to the right (wrapped when longer than the line).
pub fn row(width: usize, left: &str, right: &str) -> Vec<String> {
    let used = columns(left) + columns(right);
    if used < width {
        return vec![format!("{left}{}{right}", " ".repeat(width - used))];
    }
    let mut out = wrap(left, width);
    for part in wrap(right, width) {
        let pad = width.saturating_sub(columns(&part));
        out.push(format!("{}{part}", " ".repeat(pad)));
    }
    out
}

/// `text` broken into lines of at most `width` columns: at spaces where it can, inside a
/// word only when the word alone is longer than the line (a wide character is never split).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!line.is_empty());
        if columns(&line) + sep + columns(word) <= width {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            if columns(&line) + char_columns(c) > width {
                lines.push(std::mem::take(&mut line));
            }
            line.push(c);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(columns("Amount"), 6);
        assert_eq!(columns("金额"), 4);
        assert_eq!(columns("￥8.00"), 6);
        assert_eq!(columns("（商户）"), 8);
        assert_eq!(columns("ä"), 1);
    }

    #[test]
    fn rows_fill_the_line_by_columns() {
        for width in [32, 48] {
            for (k, v) in [
                ("金额 Amount", "10.00 CNY"),
                ("实付", "8.00 CNY"),
                ("Sale", "S1"),
            ] {
                let lines = row(width, k, v);
                assert_eq!(lines.len(), 1);
                assert_eq!(columns(&lines[0]), width, "{lines:?}");
                assert!(lines[0].starts_with(k) && lines[0].ends_with(v));
            }
        }
    }

    #[test]
    fn a_value_that_does_not_fit_goes_right_on_the_next_line() {
        let lines = row(32, "交易号 Trade no", "2026112222001400001234567890");
        assert_eq!(lines[0], "交易号 Trade no");
        assert_eq!(columns(&lines[1]), 32);
        assert!(lines[1].ends_with("2026112222001400001234567890"));
        // Exactly the width with no space between does not fit either.
        assert_eq!(row(4, "ab", "cd").len(), 2);
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_never_inside_a_wide_character() {
        assert_eq!(
            wrap("The customer's payment was refunded in full.", 32),
            ["The customer's payment was", "refunded in full."]
        );
        let lines = wrap("谢谢惠顾欢迎再次光临本店祝您生活愉快万事如意", 32);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| columns(l) <= 32));
        assert_eq!(columns(&lines[0]), 32);
        let odd = wrap("a谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢谢", 32);
        assert_eq!(
            columns(&odd[0]),
            31,
            "a wide character that would cross the edge moves down"
        );
        assert_eq!(wrap("", 32), [""]);
    }
}
