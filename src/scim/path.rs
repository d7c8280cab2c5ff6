//! URLs built from what an SP says: resource ids in paths and filters in queries, encoded as
//! RFC 3986 asks and no more (strict servers refuse `%2D` for `-` and `+` for a space in a
//! query value).
//!
//! An id is the SP's own string. Only the unreserved characters (RFC 3986 §2.3: letters, digits,
//! `-`, `.`, `_`, `~`) go into a path segment as they are; everything else is percent-encoded.
//! The ids `.` and `..` (and their encoded forms, which URL parsers decode back) cannot be
//! addressed at all: `Users/..` is the service's base URL after dot-segment removal (§5.2.4), so
//! a DELETE would go to the wrong resource. Such an id is refused, never sent.
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters.
pub const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Whether a path segment is a dot segment once a URL parser has read it (WHATWG URL decodes
/// `%2e` in segments): one or two dots, each `.` or `%2e` in either case. Read without
/// allocating: every path of a plan is checked (180k at 1M users), and the lower-cased copy
/// with its dots decoded took two allocations a segment.
fn dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() && dots < 3 {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    rest.is_empty() && (dots == 1 || dots == 2)
}

/// Whether an id can be one path segment of a request.
pub fn addressable(id: &str) -> bool {
    !id.is_empty() && !dot_segment(id)
}

/// An id (an SP's, an IdP's, or from the config) as one path segment; `Err` naming the id when
/// it cannot be addressed.
pub fn segment(id: &str) -> Result<String, String> {
    if !addressable(id) {
        return Err(format!(
            "the id '{id}' cannot be addressed in a URL path (it would resolve to another resource)"
        ));
    }
    Ok(utf8_percent_encode(id, NOT_UNRESERVED).to_string())
}

/// `{resource}/{id}` with the id as one [`segment`].
pub fn resource_path(resource: &str, id: &str) -> Result<String, String> {
    segment(id).map(|s| format!("{resource}/{s}"))
}

/// Whether a relative request path (as an operation stores it) holds no dot segment and no
/// empty segment: the request goes to the resource it names.
pub fn safe_request_path(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .enumerate()
        .all(|(i, seg)| !dot_segment(seg) && (i == 0 || !seg.is_empty()))
}

/// A query value (a filter) encoded for a URL: a space is `%20`, never `+`.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same answer as the definition: lower-cased, `%2e` decoded, `.` or `..`.
        #[test]
        fn dot_segments_are_what_a_url_parser_decodes_to_one_or_two_dots(segment in "[.%2eEa/]{0,8}") {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            prop_assert_eq!(dot_segment(&segment), decoded == "." || decoded == "..");
        }
    }

    #[test]
    fn only_reserved_characters_are_encoded() {
        assert_eq!(
            resource_path("Users", "2819c223-7f76-453a-919d-413861904646").unwrap(),
            "Users/2819c223-7f76-453a-919d-413861904646"
        );
        assert_eq!(resource_path("Users", "a.b_c~d").unwrap(), "Users/a.b_c~d");
        assert_eq!(resource_path("Users", "a/b?c#d e%").unwrap(), "Users/a%2Fb%3Fc%23d%20e%25");
        assert_eq!(resource_path("Groups", "Zoë").unwrap(), "Groups/Zo%C3%AB");
    }

    #[test]
    fn dot_ids_are_refused() {
        for id in ["%2e.", "%2E%2E", ".."] {
            assert!(!addressable(id), "{id}");
        }
        for id in ["%2e%2e%2e", "%2", "%2f", ".a", "a.", "%2e%"] {
            assert!(addressable(id), "{id}");
        }
        for id in [".", "..", "%2e", "%2E%2e", ".%2E", ""] {
            assert!(resource_path("Users", id).is_err(), "{id}");
        }
        assert!(resource_path("Users", "...").is_ok());
        assert!(!safe_request_path("Users/.."));
        assert!(!safe_request_path("Users/%2e"));
        assert!(!safe_request_path("Users/"));
        assert!(safe_request_path("Users/abc"));
        assert!(safe_request_path("Users?filter=x"));
    }

    #[test]
    fn filters_use_percent_twenty() {
        assert_eq!(query_value("userName eq \"a b\""), "userName%20eq%20%22a%20b%22");
    }
}
