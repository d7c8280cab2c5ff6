//! Directory data is written by strangers: a user's display name can hold an ANSI or OSC
//! escape that clears an auditor's screen, retitles the terminal or hides a line. Human output
//! (tables, plan and import listings, error messages) passes what it prints from the data
//! through [`printable`]; machine formats (JSON, CSV, Parquet) keep the data as it is, except
//! for the spreadsheet-formula guard of [`csv_cell`].
use std::borrow::Cow;

/// Whether a character must not reach a terminal raw: C0 and C1 controls (ESC starts ANSI and
/// OSC sequences, U+009B is a one-byte CSI), DEL, and the bidirectional overrides that reorder
/// what a reader sees.
fn unsafe_char(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_newlines,
        c if c.is_control() => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}' => true,
        _ => false,
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c, keep_newlines) {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value for one cell or field of human output: every control character escaped (`\u{1b}`,
/// `\n`, …), so that it stays on its line and cannot drive the terminal.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A message of several lines for human output: like [`printable`], but newlines and tabs stay.
pub fn printable_text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// A CSV cell for a spreadsheet: one that starts with `=`, `+`, `-`, `@`, a tab or a carriage
/// return is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV injection"); a
/// leading `'` makes it text.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_clear_the_screen_no_more() {
        assert_eq!(printable("Eve\u{1b}[2J\u{1b}]0;pwned\u{7}"), "Eve\\u{1b}[2J\\u{1b}]0;pwned\\u{7}");
        assert_eq!(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(printable("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(printable("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert!(matches!(printable("Zoë Ça va — ok"), Cow::Borrowed(_)));
        assert_eq!(printable_text("line 1\nline\u{1b}[31m 2"), "line 1\nline\\u{1b}[31m 2");
    }

    #[test]
    fn formula_cells_become_text() {
        for f in ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(f), format!("'{f}"));
        }
        assert_eq!(csv_cell("alice@example.com"), "alice@example.com");
        assert_eq!(csv_cell(""), "");
    }
}
