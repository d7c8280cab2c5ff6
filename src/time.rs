//! Timestamps as stored: RFC 3339 UTC with microseconds, so text order is time order.
use chrono::{DateTime, SecondsFormat, Utc};

pub fn now() -> String {
    format(Utc::now())
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse a user-given instant (`2026-10-01T00:00:00Z`, `2026-10-01`) into the stored form.
pub fn parse_instant(s: &str) -> Option<String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(format(t.with_timezone(&Utc)));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(format(d.and_hms_opt(0, 0, 0)?.and_utc()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_normalise_to_stored_form() {
        assert_eq!(
            super::parse_instant("2026-10-01T02:00:00+02:00").unwrap(),
            "2026-10-01T00:00:00.000000Z"
        );
        assert_eq!(super::parse_instant("2026-10-01").unwrap(), "2026-10-01T00:00:00.000000Z");
        assert!(super::parse_instant("yesterday").is_none());
    }
}
