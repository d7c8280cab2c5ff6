//! RFC 7644 §3.4.2.2 filters. Values use JSON string syntax (RFC 7159), so quotes, backslashes
//! and control characters are escaped exactly as JSON escapes them; the whole filter is then
//! percent-encoded as a query value by the transport.

/// `attr eq "value"` with `value` escaped as a JSON string.
pub fn eq(attr: &str, value: &str) -> String {
    format!("{attr} eq {}", json_string(value))
}

/// A JSON string literal for `s`, quotes included.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_value() {
        assert_eq!(eq("userName", "bjensen"), r#"userName eq "bjensen""#);
    }

    #[test]
    fn quotes_backslashes_and_controls_are_json_escaped() {
        assert_eq!(eq("displayName", r#"R&D "core" \ ops"#), r#"displayName eq "R&D \"core\" \\ ops""#);
        assert_eq!(eq("userName", "a\nb\u{1}"), r#"userName eq "a\nb\u0001""#);
    }

    #[test]
    fn operator_words_stay_inside_the_string() {
        let f = eq("displayName", r#"x" or userName pr or "y"#);
        assert_eq!(f, r#"displayName eq "x\" or userName pr or \"y""#);
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(eq("userName", "zoë@exämple.com"), "userName eq \"zoë@exämple.com\"");
    }
}
