//! Timestamps as stored: RFC 3339 UTC with microseconds, so text order is time order.
use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in the stored form.
pub fn now() -> String {
    format(Utc::now())
}

/// `t` in the stored form.
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

/// A duration as the config writes one: `45s`, `10m`, `2h`, `1d` (the largest unit that
/// divides it), else seconds with a fraction.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// Parse `30s`, `15m`, `2h`, `1d` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30s, 15m, 2h or 1d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use s, m, h or d)")),
    };
    if secs == 0 {
        return Err(format!("'{s}' must be longer than zero"));
    }
    Ok(std::time::Duration::from_secs(secs))
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
