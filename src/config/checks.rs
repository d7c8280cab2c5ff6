//! The checks of single values: names, URLs, counts, token sources.
use std::path::PathBuf;

use super::{TokenSource, DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE};

pub(super) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("connection name '{name}' may hold only letters, digits, '_' and '-'"));
    }
    Ok(())
}

/// An http(s) URL without credentials in it. The error never repeats a URL that holds
/// credentials: a password in `https://user:pass@host` belongs in `token_env` or `token_file`,
/// and would otherwise be stored in `sources.base_url` and printed by `status`.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let host = parsed.host_str().unwrap_or_default();
        return Err(format!(
            "the URL for {host} holds credentials (user:password@); put the token in token_env or token_file instead"
        ));
    }
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("'{url}': scheme '{other}' is not http or https")),
    }
}

pub(super) fn check_max_objects(v: Option<u64>) -> Result<u64, String> {
    match v {
        None => Ok(crate::paging::DEFAULT_MAX_OBJECTS),
        Some(0) => Err("must be at least 1".into()),
        Some(n) => Ok(n),
    }
}

pub(super) fn check_page_size(v: Option<u32>) -> Result<u32, String> {
    match v {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(0) => Err("must be at least 1".into()),
        Some(n) => Ok(n),
    }
}

pub(super) fn check_concurrency(v: Option<usize>) -> Result<usize, String> {
    match v {
        None => Ok(DEFAULT_CONCURRENCY),
        Some(n) if (1..=64).contains(&n) => Ok(n),
        Some(n) => Err(format!("{n} is outside 1..=64")),
    }
}

pub(super) fn token_source(env: Option<String>, file: Option<PathBuf>) -> Result<TokenSource, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err("set either token_env or token_file, not both".into()),
        (Some(v), None) => Ok(TokenSource::Env(v)),
        (None, Some(p)) => Ok(TokenSource::File(p)),
        (None, None) => Ok(TokenSource::None),
    }
}

/// Parse a size like `1GiB`, `512MiB`, `800M`, `2G` or plain bytes (K/M/G/T are binary
/// multiples, as memory limits are).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size like 512MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("'{s}': unknown unit '{other}' (use KiB, MiB, GiB)")),
    };
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < (64 << 20) {
        return Err(format!("'{s}' is below 64MiB, too little to run"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_in_binary_units_and_refuse_nonsense() {
        assert_eq!(super::parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(super::parse_size("512M"), Ok(512 << 20));
        assert_eq!(super::parse_size("2g"), Ok(2 << 30));
        assert!(super::parse_size("10MiB").unwrap_err().contains("below 64MiB"));
        assert!(super::parse_size("1 parsec").is_err());
        assert!(super::parse_size("99999999999999GiB").is_err());
    }
}
