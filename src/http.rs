//! The one place that moves bytes over HTTP: auth headers, timeouts, a cap on response bodies,
//! bounded concurrency, and retries with exponential backoff and full jitter on 429/502/503/504
//! and connection errors, honouring `Retry-After` (seconds or an HTTP date).
//!
//! Protocol layers (SCIM, and the IdP connectors) build requests and read responses; they never
//! touch reqwest themselves.
//!
//! What a server says is not trusted:
//! - Redirects are followed here, not by reqwest: only for GET and HEAD, only to the same origin
//!   (scheme, host and port), at most [`MAX_REDIRECTS`] times. A redirect to another origin would
//!   take the credentials (or, for SCIM and Okta, take the snapshot from a server nobody
//!   configured); a POST is never replayed to a new URL (the Entra token request carries the
//!   client secret in its body). Either is an error naming both URLs.
//! - Retries have a budget: the time one request may spend waiting between attempts, and the
//!   time a whole run may ([`set_retry_budget`]), so that one throttling server cannot stall a
//!   run for hours.
//! - Error text that quotes the server passes [`crate::secret::redact`] when displayed.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use tokio::sync::Semaphore;

use crate::secret::Secret;

/// How a connection authenticates. The secret goes into a header marked sensitive, so it is
/// never printed by reqwest's debug output either.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials (emulators, tests).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// A header with a scheme word before the token, e.g. Okta's `Authorization: SSWS …`.
    Scheme {
        /// The scheme word.
        scheme: &'static str,
        /// The token.
        token: Secret,
    },
    /// A bare header, e.g. JumpCloud's `x-api-key`.
    Header {
        /// The header's name.
        name: &'static str,
        /// The token.
        token: Secret,
    },
}

/// How a request is retried: which answers, how often, how long between.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all for a retryable answer or a network failure.
    pub max_attempts: u32,
    /// Attempts for requests the server throttles (429): a storm slows a run down rather than
    /// failing it.
    pub max_throttled_attempts: u32,
    /// The first backoff.
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
    /// A `Retry-After` longer than this is an error rather than a wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // SCIMSYNC_RETRY_BASE_MS shortens the backoff for tests; it is not a user setting.
        let base_ms = std::env::var("SCIMSYNC_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250);
        RetryPolicy {
            max_attempts: 5,
            max_throttled_attempts: 30,
            base: Duration::from_millis(base_ms),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// One connection's settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The connection's name in errors and logs, like `app.quip`.
    pub source_name: String,
    /// Its credentials.
    pub auth: Auth,
    /// Per request.
    pub timeout: Duration,
    /// The largest body read.
    pub max_body_bytes: usize,
    /// Requests at once.
    pub concurrency: usize,
    /// Its retries.
    pub retry: RetryPolicy,
    /// Headers sent with every request (JumpCloud's `x-org-id`).
    pub extra_headers: Vec<(String, String)>,
    /// Objects one listing of this source may hold (see [`crate::paging`]).
    pub max_objects: u64,
}

impl HttpSettings {
    /// Defaults for `source_name` with `auth`.
    pub fn new(source_name: impl Into<String>, auth: Auth) -> Self {
        // SCIMSYNC_HTTP_TIMEOUT_MS shortens the request timeout for tests; it is not a user
        // setting.
        let timeout_ms = std::env::var("SCIMSYNC_HTTP_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60_000);
        // SCIMSYNC_MAX_BODY_BYTES lowers the response size cap for tests.
        let max_body_bytes = std::env::var("SCIMSYNC_MAX_BODY_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64 * 1024 * 1024);
        HttpSettings {
            source_name: source_name.into(),
            auth,
            timeout: Duration::from_millis(timeout_ms),
            max_body_bytes,
            concurrency: 4,
            retry: RetryPolicy::default(),
            extra_headers: Vec::new(),
            max_objects: crate::paging::DEFAULT_MAX_OBJECTS,
        }
    }
}

/// Same-origin redirects followed for one request, at most.
pub const MAX_REDIRECTS: usize = 5;

/// The retry budget: how long one request, and one run (a command, or one reconcile cycle), may
/// spend waiting between attempts (the config's defaults until set). Process-wide;
/// [`set_retry_budget`] sets it from the config and flags and starts a new run's budget.
static RETRY_WAIT_PER_REQUEST_MS: AtomicU64 = AtomicU64::new(crate::config::DEFAULT_MAX_RETRY_WAIT.as_millis() as u64);
static RETRY_WAIT_PER_RUN_MS: AtomicU64 = AtomicU64::new(crate::config::DEFAULT_MAX_RETRY_WAIT_PER_RUN.as_millis() as u64);
static RETRY_WAITED_THIS_RUN_MS: AtomicU64 = AtomicU64::new(0);

/// Set the retry budget (per request, per run) and start a new run's account.
pub fn set_retry_budget(per_request: Duration, per_run: Duration) {
    RETRY_WAIT_PER_REQUEST_MS.store(per_request.as_millis() as u64, Ordering::SeqCst);
    RETRY_WAIT_PER_RUN_MS.store(per_run.as_millis() as u64, Ordering::SeqCst);
    RETRY_WAITED_THIS_RUN_MS.store(0, Ordering::SeqCst);
}

/// Start a new run's account of retry waits (each reconcile cycle is a run).
pub fn start_retry_budget_run() {
    RETRY_WAITED_THIS_RUN_MS.store(0, Ordering::SeqCst);
}

/// Whether waiting `wait` more stays within the budget, given what this request has waited;
/// the reason when it does not. The run's account is charged when it does.
fn charge_retry_wait(waited: Duration, wait: Duration) -> Result<(), String> {
    let per_request = Duration::from_millis(RETRY_WAIT_PER_REQUEST_MS.load(Ordering::SeqCst));
    if waited + wait > per_request {
        return Err(format!(
            "gave up: another {:.1}s wait would pass the retry budget of {} per request (max_retry_wait), {:.1}s already waited",
            wait.as_secs_f64(),
            crate::time::human_duration(per_request),
            waited.as_secs_f64()
        ));
    }
    let per_run = RETRY_WAIT_PER_RUN_MS.load(Ordering::SeqCst);
    let ms = wait.as_millis() as u64;
    let before = RETRY_WAITED_THIS_RUN_MS.fetch_add(ms, Ordering::SeqCst);
    if before + ms > per_run {
        RETRY_WAITED_THIS_RUN_MS.fetch_sub(ms, Ordering::SeqCst);
        return Err(format!(
            "gave up: the run's retry budget of {} (max_retry_wait_per_run) is spent",
            crate::time::human_duration(Duration::from_millis(per_run))
        ));
    }
    Ok(())
}

/// What went wrong, with where: the connection, the request and (for lists) the page. Its text
/// passes [`crate::secret::redact`]: a server may echo a token in what it answers.
#[derive(Debug)]
pub struct HttpError {
    /// The source (`idp.NAME`, `app.NAME`).
    pub source_name: String,
    /// The request's method.
    pub method: String,
    /// The request's URL.
    pub url: String,
    /// The page of a listing, when it was one.
    pub page: Option<u64>,
    /// What went wrong.
    pub kind: HttpErrorKind,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let page = self.page.map(|p| format!(" (page {p})")).unwrap_or_default();
        let text = format!("{}: {} {}{page}: {}", self.source_name, self.method, self.url, self.kind);
        f.write_str(&crate::secret::redact(&text))
    }
}

impl std::error::Error for HttpError {}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpErrorKind {
    /// An answer that is not a success (after any retries).
    #[error("HTTP {status}{} after {attempts} attempt(s){}", reason(*status), if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// Its status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The server's detail (redacted).
        detail: String,
        /// Its body.
        body: Bytes,
    },
    /// No answer: connection refused or reset, timeout (after any retries).
    #[error("{message} after {attempts} attempt(s)")]
    Network {
        /// What the transport said.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server's TLS certificate was refused: not retried, it will not change by itself.
    #[error("the server's TLS certificate is not trusted: {0}")]
    Tls(String),
    /// A body over the size cap.
    #[error("response body larger than the {limit}-byte limit")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// A body that is not what was asked for (not JSON, the wrong shape).
    #[error("{0}")]
    BadBody(String),
    /// Paging that cannot be trusted (see [`crate::paging`]).
    #[error("{0}")]
    Paging(String),
    /// A redirect that is not followed: to another origin, for a method that is not replayed,
    /// or past [`MAX_REDIRECTS`].
    #[error("redirected to {to}: {why}; not followed")]
    Redirect {
        /// Where it pointed.
        to: String,
        /// Why it was not followed.
        why: String,
    },
    /// The retry budget ran out before the server answered.
    #[error("HTTP {status}{} after {attempts} attempt(s): {why}", reason(*status))]
    RetryBudget {
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Which budget ran out.
        why: String,
    },
}

fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

impl HttpError {
    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            HttpErrorKind::Status { status, .. } => Some(status),
            _ => None,
        }
    }
    /// The same error, for page `page` of a listing.
    pub fn with_page(mut self, page: u64) -> Self {
        self.page = Some(page);
        self
    }
}

/// A response that arrived (any status), with its body read under the size cap.
#[derive(Debug, Clone)]
pub struct Response {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Attempts made.
    pub attempts: u32,
}

impl Response {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The transport of one connection: retries, its budget, redirects held to one origin, the body cap.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    settings: Arc<HttpSettings>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("source_name", &self.settings.source_name).finish()
    }
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long until a rate-limit window resets, from Okta-style `X-Rate-Limit-Reset` (UTC epoch
/// seconds), measured against the response's `Date` when it has one (the server's clock, not
/// ours), else against `now`.
pub fn rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset: u64 = headers.get("x-rate-limit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let server_now = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    Some(at.duration_since(server_now).unwrap_or(Duration::ZERO))
}

/// Whether an Okta-style `X-Rate-Limit-Remaining` says the window is spent.
pub fn rate_limit_spent(headers: &HeaderMap) -> bool {
    headers
        .get("x-rate-limit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        == Some(0)
}

/// Exponential backoff with full jitter: a random wait in [0, min(cap, base·2^attempt)].
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base.saturating_mul(1u32 << attempt.min(16));
    let ceiling = exp.min(policy.cap);
    ceiling.mul_f64(rand::random::<f64>())
}

impl Http {
    /// A transport for `settings`; the error says why a client cannot be built.
    pub fn new(settings: HttpSettings) -> Result<Http, String> {
        let mut headers = HeaderMap::new();
        let mut secret_header = |name: HeaderName, value: String| -> Result<(), String> {
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| format!("{}: the token holds characters not allowed in an HTTP header", settings.source_name))?;
            v.set_sensitive(true);
            headers.insert(name, v);
            Ok(())
        };
        match &settings.auth {
            Auth::None => {}
            Auth::Bearer(t) => secret_header(reqwest::header::AUTHORIZATION, format!("Bearer {}", t.expose()))?,
            Auth::Scheme { scheme, token } => secret_header(reqwest::header::AUTHORIZATION, format!("{scheme} {}", token.expose()))?,
            Auth::Header { name, token } => secret_header(HeaderName::from_static(name), token.expose().to_string())?,
        }
        for (k, v) in &settings.extra_headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("{}: header {k}: {e}", settings.source_name))?;
            let value = HeaderValue::from_str(v).map_err(|e| format!("{}: header {k}: {e}", settings.source_name))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("scimsync/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `send`, which checks the origin and the method first.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("{}: cannot build HTTP client: {e}", settings.source_name))?;
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Ok(Http {
            client,
            settings: Arc::new(settings),
            permits,
        })
    }

    /// The connection's name.
    pub fn source_name(&self) -> &str {
        &self.settings.source_name
    }

    /// The checks for one listing of this source.
    pub fn page_guard(&self) -> crate::paging::PageGuard {
        crate::paging::PageGuard::new(self.settings.max_objects)
    }

    /// An error of this connection for `method` `url`.
    pub fn error(&self, method: &Method, url: &str, kind: HttpErrorKind) -> HttpError {
        HttpError {
            source_name: self.settings.source_name.clone(),
            method: method.to_string(),
            url: url.to_string(),
            page: None,
            kind,
        }
    }

    /// `resp` when it is a success (2xx); else the error naming the request, its status, its
    /// attempts and the server's detail (the one rule for "a non-2xx answer is an error").
    /// The error is the one every request of this module returns (the async ones are not
    /// linted for its size; boxing it here alone would gain nothing).
    #[allow(clippy::result_large_err)]
    pub fn success(&self, method: &Method, url: &str, resp: Response) -> Result<Response, HttpError> {
        if resp.is_success() {
            return Ok(resp);
        }
        Err(self.error(
            method,
            url,
            HttpErrorKind::Status {
                status: resp.status,
                attempts: resp.attempts,
                detail: detail_of(&resp.body),
                body: resp.body,
            },
        ))
    }

    /// Send a request, retrying what is retryable and following same-origin redirects of a GET
    /// or HEAD (see the module doc). Returns the final response whatever its status; only
    /// transport failures, exhausted retries on retryable statuses and refused redirects are
    /// errors.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Option<Bytes>,
    ) -> Result<Response, HttpError> {
        let mut current = url.to_string();
        let mut hops = 0;
        loop {
            let resp = self.send_retrying(&method, &current, headers, body.clone()).await?;
            let Some(location) = redirect_location(&resp) else {
                return Ok(resp);
            };
            let refuse = |to: String, why: String| self.error(&method, &current, HttpErrorKind::Redirect { to, why });
            let target = match url::Url::parse(&current).and_then(|base| base.join(&location)) {
                Ok(t) => t,
                Err(e) => return Err(refuse(location, format!("not a URL ({e})"))),
            };
            let (from_origin, to_origin) = (origin(&current), target.origin().ascii_serialization());
            if from_origin.as_deref() != Some(to_origin.as_str()) {
                return Err(refuse(
                    target.to_string(),
                    format!(
                        "another origin than {} (the credentials would go with it)",
                        from_origin.unwrap_or_default()
                    ),
                ));
            }
            if method != Method::GET && method != Method::HEAD {
                return Err(refuse(target.to_string(), format!("a {method} is never sent again to a new URL")));
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(refuse(target.to_string(), format!("more than {MAX_REDIRECTS} redirects")));
            }
            tracing::debug!(source = %self.settings.source_name, from = %current, to = %target, "following a same-origin redirect");
            current = target.to_string();
        }
    }

    /// [`Http::send`] without redirects: one URL, retried.
    async fn send_retrying(
        &self,
        method: &Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Option<Bytes>,
    ) -> Result<Response, HttpError> {
        let method = method.clone();
        let policy = &self.settings.retry;
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let outcome = {
                let _permit = self.permits.acquire().await.expect("semaphore is never closed");
                self.send_once(&method, url, headers, body.clone()).await
            };
            let wait = match &outcome {
                Ok(resp) if retryable(resp.status) => {
                    let after = resp
                        .headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    match after {
                        Some(d) if d > policy.max_retry_after => {
                            let detail = format!(
                                "Retry-After of {}s exceeds the {}s limit",
                                d.as_secs(),
                                policy.max_retry_after.as_secs()
                            );
                            return Err(self.error(
                                &method,
                                url,
                                HttpErrorKind::Status {
                                    status: resp.status,
                                    attempts: attempt,
                                    detail,
                                    body: resp.body.clone(),
                                },
                            ));
                        }
                        // Jitter on top of Retry-After keeps clients that were told the same
                        // time from coming back in lockstep.
                        Some(d) => d + backoff(policy, 0),
                        None => match rate_limit_reset(&resp.headers, SystemTime::now()) {
                            Some(d) if resp.status == 429 && d <= policy.max_retry_after => d + backoff(policy, 0),
                            _ => backoff(policy, attempt - 1),
                        },
                    }
                }
                Ok(_) => {
                    return outcome.map(|mut r| {
                        r.attempts = attempt;
                        r
                    })
                }
                // A POST that may have reached the server is not sent again blindly: the caller
                // looks the object up first (see apply).
                Err(e) if matches!(e.kind, HttpErrorKind::Network { .. }) && method != Method::POST => backoff(policy, attempt - 1),
                Err(_) => return outcome,
            };
            let throttled = matches!(&outcome, Ok(r) if r.status == 429);
            let limit = if throttled {
                policy.max_throttled_attempts
            } else {
                policy.max_attempts
            };
            if attempt >= limit {
                return match outcome {
                    Ok(resp) => {
                        let detail = detail_of(&resp.body);
                        Err(self.error(
                            &method,
                            url,
                            HttpErrorKind::Status {
                                status: resp.status,
                                attempts: attempt,
                                detail,
                                body: resp.body,
                            },
                        ))
                    }
                    Err(mut e) => {
                        if let HttpErrorKind::Network { attempts, .. } = &mut e.kind {
                            *attempts = attempt;
                        }
                        Err(e)
                    }
                };
            }
            if let Err(why) = charge_retry_wait(waited, wait) {
                return Err(match outcome {
                    Ok(resp) => self.error(
                        &method,
                        url,
                        HttpErrorKind::RetryBudget {
                            status: resp.status,
                            attempts: attempt,
                            why,
                        },
                    ),
                    Err(mut e) => {
                        if let HttpErrorKind::Network { message, attempts } = &mut e.kind {
                            *attempts = attempt;
                            message.push_str(&format!("; {why}"));
                        }
                        e
                    }
                });
            }
            waited += wait;
            tracing::debug!(source = %self.settings.source_name, %method, url, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Option<Bytes>,
    ) -> Result<Response, HttpError> {
        let mut req = self.client.request(method.clone(), url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let mut resp = req.send().await.map_err(|e| {
            let message = describe(&e);
            let kind = match certificate_problem(&message) {
                Some(problem) => HttpErrorKind::Tls(problem),
                None => HttpErrorKind::Network { message, attempts: 1 },
            };
            self.error(method, url, kind)
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limit = self.settings.max_body_bytes;
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(self.error(method, url, HttpErrorKind::TooLarge { limit }));
        }
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(self.error(method, url, HttpErrorKind::TooLarge { limit }));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(self.error(
                        method,
                        url,
                        HttpErrorKind::Network {
                            message: format!("reading the body: {}", describe(&e)),
                            attempts: 1,
                        },
                    ))
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: Bytes::from(buf),
            attempts: 1,
        })
    }
}

/// The target of a redirect answer (301, 302, 303, 307, 308 with a `Location`).
fn redirect_location(resp: &Response) -> Option<String> {
    if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    resp.headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// scheme://host[:port] of a URL.
pub fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// A readable cause for a reqwest error, walking its source chain (timeouts, refused
/// connections, TLS certificate problems).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut parts = vec![if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    }];
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// A refused server certificate, in words, from rustls's error text (`invalid peer certificate:
/// UnknownIssuer`, …); `None` for other connection failures.
fn certificate_problem(message: &str) -> Option<String> {
    let at = message.find("invalid peer certificate")?;
    let detail = message[at + "invalid peer certificate".len()..].trim_start_matches(':').trim();
    let plain = [
        (
            "UnknownIssuer",
            "it is signed by an authority this machine does not trust (self-signed, or a private CA)",
        ),
        (
            "CaUsedAsEndEntity",
            "it is a CA certificate, used as the server's own (self-signed)",
        ),
        ("Expired", "it has expired"),
        ("NotValidYet", "it is not valid yet (check the clock)"),
        ("NotValidForName", "it is not valid for this host name"),
        ("Revoked", "it has been revoked"),
    ]
    .iter()
    .find(|(code, _)| detail.contains(code))
    .map(|(_, words)| *words);
    Some(match plain {
        Some(words) => format!("{words} ({detail})"),
        None => detail.to_string(),
    })
}

/// A short description of an error body for messages: the SCIM detail if it is one, else the
/// start of the text.
/// The text passes [`crate::secret::redact`]: servers echo what they were sent.
pub fn detail_of(body: &[u8]) -> String {
    crate::secret::redact(&raw_detail_of(body)).into_owned()
}

fn raw_detail_of(body: &[u8]) -> String {
    if let Some(e) = crate::scim::ScimErrorBody::parse(body) {
        return e.summary();
    }
    // Okta {errorCode, errorSummary}, Microsoft Graph {error: {code, message}}, JumpCloud
    // {message}.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let graph = v.get("error").filter(|e| e.is_object());
        let found = match (s(&v, "errorCode"), s(&v, "errorSummary"), graph) {
            (Some(code), Some(summary), _) => Some(format!("{code}: {summary}")),
            (_, _, Some(e)) => Some(format!(
                "{}: {}",
                s(e, "code").unwrap_or_default(),
                s(e, "message").unwrap_or_default()
            )),
            _ => s(&v, "message"),
        };
        if let Some(f) = found {
            return f;
        }
    }
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.chars().count() > 200 {
        format!("{}…", t.chars().take(200).collect::<String>())
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_bounded_by_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            max_throttled_attempts: 30,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
        };
        for attempt in 0..20 {
            assert!(backoff(&p, attempt) <= Duration::from_secs(1));
        }
        assert!(backoff(&p, 0) <= Duration::from_millis(100));
    }

    #[test]
    fn error_message_names_source_request_and_page() {
        let e = HttpError {
            source_name: "app.quip".into(),
            method: "GET".into(),
            url: "http://x/Users?startIndex=2001&count=1000".into(),
            page: Some(3),
            kind: HttpErrorKind::Status {
                status: 502,
                attempts: 5,
                detail: "upstream down".into(),
                body: Bytes::new(),
            },
        };
        assert_eq!(
            e.to_string(),
            "app.quip: GET http://x/Users?startIndex=2001&count=1000 (page 3): HTTP 502 Bad Gateway after 5 attempt(s): upstream down"
        );
    }

    #[test]
    fn certificate_errors_are_said_plainly() {
        let m = "cannot connect: client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            certificate_problem(m).unwrap(),
            "it is signed by an authority this machine does not trust (self-signed, or a private CA) (UnknownIssuer)"
        );
        assert!(certificate_problem("cannot connect: Connection refused").is_none());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = HttpSettings::new("app.x", Auth::Bearer(Secret::new("tok-123456")));
        assert!(!format!("{s:?}").contains("tok-123456"));
        let h = Http::new(s).unwrap();
        assert!(!format!("{h:?}").contains("tok-123456"));
    }
}
