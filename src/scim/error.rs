//! RFC 7644 §3.12 error bodies, parsed tolerantly: `status` may be a string (as the RFC says)
//! or a number (as some SPs send), and every field may be missing.
use serde::{Deserialize, Deserializer};

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ScimErrorBody {
    /// The HTTP status it repeats (a string or a number, as servers differ).
    #[serde(default, deserialize_with = "status_any")]
    pub status: Option<u16>,
    /// `uniqueness`, `invalidFilter`, `mutability`, …
    #[serde(default, rename = "scimType")]
    pub scim_type: Option<String>,
    /// The server's words.
    #[serde(default)]
    pub detail: Option<String>,
}

fn status_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    })
}

impl ScimErrorBody {
    /// Parse a body if it looks like a SCIM error; `None` for anything else (HTML, empty, …).
    pub fn parse(body: &[u8]) -> Option<ScimErrorBody> {
        let e: ScimErrorBody = serde_json::from_slice(body).ok()?;
        (e.status.is_some() || e.scim_type.is_some() || e.detail.is_some()).then_some(e)
    }

    /// One line for error messages: `uniqueness: userName already exists`.
    pub fn summary(&self) -> String {
        match (&self.scim_type, &self.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) => t.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7644_3_12_example_with_string_status() {
        let body = include_bytes!("../../tests/fixtures/scim/rfc7644-3.12-error-uniqueness.json");
        let e = ScimErrorBody::parse(body).unwrap();
        assert_eq!(e.status, Some(409));
        assert_eq!(e.scim_type.as_deref(), Some("uniqueness"));
        assert_eq!(
            e.summary(),
            "uniqueness: One or more of the attribute values are already in use or are reserved."
        );
    }

    #[test]
    fn numeric_status_is_accepted() {
        let e = ScimErrorBody::parse(br#"{"status":404,"detail":"Resource 2819c223 not found"}"#).unwrap();
        assert_eq!(e.status, Some(404));
    }

    #[test]
    fn non_scim_bodies_are_not_errors() {
        assert!(ScimErrorBody::parse(b"<html>Bad gateway</html>").is_none());
        assert!(ScimErrorBody::parse(b"{}").is_none());
        assert!(ScimErrorBody::parse(b"").is_none());
    }
}
