//! What the IdP connectors share over [`Http`]: GETs that turn a non-2xx answer into an error
//! naming the request, JSON bodies parsed with the failing field named, and a guard that
//! follows only links pointing back at the configured API (a `next` link elsewhere would carry
//! the token with it).
use std::time::Duration;

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::config::HttpSettings as ConnSettings;
use crate::http::{Auth, Http, HttpSettings, Response};

use super::SourceError;

pub struct Api {
    pub http: Http,
    /// Requests sent (each GET once, whatever its retries).
    requests: std::sync::atomic::AtomicU64,
    pub source_name: String,
    /// scheme://host[:port] of the base URL: links must stay on it.
    origin: String,
}

/// scheme://host[:port] of a URL (the transport's rule, which redirects are held to as well).
pub use crate::http::origin as origin_of;

impl Api {
    /// An API client for an IdP's connection with `auth` and its page concurrency.
    pub fn new(
        source_name: &str,
        conn: &ConnSettings,
        auth: impl FnOnce(Option<crate::secret::Secret>) -> Auth,
        extra: Vec<(String, String)>,
    ) -> Result<Api, SourceError> {
        let token = conn.token.resolve(source_name)?;
        let mut settings = HttpSettings::new(source_name, auth(token));
        settings.concurrency = conn.concurrency;
        settings.max_objects = conn.max_objects;
        settings.extra_headers = extra;
        Api::with_settings(settings, &conn.base_url)
    }

    pub fn with_settings(settings: HttpSettings, base_url: &str) -> Result<Api, SourceError> {
        let source_name = settings.source_name.clone();
        let http = Http::new(settings).map_err(|message| SourceError::Unsupported {
            source_name: source_name.clone(),
            message,
        })?;
        let origin = origin_of(base_url).ok_or_else(|| SourceError::Unsupported {
            source_name: source_name.clone(),
            message: format!("base_url '{base_url}' is not a URL"),
        })?;
        Ok(Api {
            http,
            source_name,
            origin,
            requests: Default::default(),
        })
    }

    /// GET `url` (absolute, on the configured origin); a non-2xx answer is an error.
    pub async fn get(&self, url: &str, headers: &[(HeaderName, String)]) -> Result<Response, SourceError> {
        if origin_of(url).as_deref() != Some(self.origin.as_str()) {
            return Err(self.bad(
                url,
                format!("refusing to follow a link off {} (the token would go with it)", self.origin),
            ));
        }
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self.http.send(Method::GET, url, headers, None).await?;
        Ok(self.http.success(&Method::GET, url, resp)?)
    }

    /// POST a JSON body to `url` (on the configured origin); a non-2xx answer is an error. A
    /// POST is not retried after a connection failure (it may have been done).
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, SourceError> {
        if origin_of(url).as_deref() != Some(self.origin.as_str()) {
            return Err(self.bad(url, format!("refusing to post off {}", self.origin)));
        }
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let headers = [(reqwest::header::CONTENT_TYPE, "application/json".to_string())];
        let resp = self
            .http
            .send(Method::POST, url, &headers, Some(body.to_string().into_bytes().into()))
            .await?;
        let resp = self.http.success(&Method::POST, url, resp)?;
        self.parse(url, &resp.body)
    }

    /// GET `url` and parse its JSON body as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, headers: &[(HeaderName, String)]) -> Result<(T, Response), SourceError> {
        let resp = self.get(url, headers).await?;
        let value = self.parse(url, &resp.body)?;
        Ok((value, resp))
    }

    /// Parse a JSON body, naming the path of the field that does not fit.
    pub fn parse<T: DeserializeOwned>(&self, url: &str, body: &[u8]) -> Result<T, SourceError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            self.bad(url, format!("unexpected response: field '{at}': {}", e.inner()))
        })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn bad(&self, url: &str, message: String) -> SourceError {
        SourceError::Response {
            source_name: self.source_name.clone(),
            url: url.to_string(),
            message,
        }
    }
}

/// Okta's `Link` headers: the `rel="next"` target, verbatim.
pub fn next_link(resp: &Response) -> Option<String> {
    resp.headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let rel_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("rel=\"next\"") || p.trim().eq_ignore_ascii_case("rel=next"));
            rel_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        })
}

/// When an Okta-style response says the rate-limit window is spent, wait for its reset.
pub async fn respect_rate_limit(source_name: &str, resp: &Response) {
    if crate::http::rate_limit_spent(&resp.headers) {
        let wait = crate::http::rate_limit_reset(&resp.headers, std::time::SystemTime::now())
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(300));
        tracing::info!(
            source = source_name,
            wait_ms = wait.as_millis() as u64,
            "rate limit spent; waiting for the window to reset"
        );
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
}

/// Run `f` over `items` with at most `n` in flight, keeping the input order of the results.
pub async fn bounded<I, T, F, Fut>(items: Vec<I>, n: usize, f: F) -> Result<Vec<T>, SourceError>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, SourceError>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(items.into_iter().map(f)).buffered(n.max(1)).try_collect().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(links: &[&str]) -> Response {
        let mut headers = HeaderMap::new();
        for l in links {
            headers.append(reqwest::header::LINK, HeaderValue::from_str(l).unwrap());
        }
        Response {
            status: 200,
            headers,
            body: Default::default(),
            attempts: 1,
        }
    }

    #[test]
    fn okta_next_link_is_taken_verbatim_from_either_header_form() {
        let two_lines = response(&[
            "<https://acme.okta.com/api/v1/users?limit=200>; rel=\"self\"",
            "<https://acme.okta.com/api/v1/users?after=00ub%3D&limit=200>; rel=\"next\"",
        ]);
        assert_eq!(
            next_link(&two_lines).as_deref(),
            Some("https://acme.okta.com/api/v1/users?after=00ub%3D&limit=200")
        );
        let one_line = response(&["<https://a/x?limit=2>; rel=\"self\", <https://a/x?after=b&limit=2>; rel=\"next\""]);
        assert_eq!(next_link(&one_line).as_deref(), Some("https://a/x?after=b&limit=2"));
        assert_eq!(next_link(&response(&["<https://a/x?limit=2>; rel=\"self\""])), None);
    }

    #[test]
    fn origin_check_compares_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://acme.okta.com/api/v1/users?x=1").as_deref(),
            Some("https://acme.okta.com")
        );
        assert_ne!(origin_of("http://acme.okta.com/"), origin_of("https://acme.okta.com/"));
        assert_ne!(origin_of("http://127.0.0.1:1/"), origin_of("http://127.0.0.1:2/"));
    }
}
