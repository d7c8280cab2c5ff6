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
