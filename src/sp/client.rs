//! A SCIM 2.0 client: the protocol rules of [`crate::scim`], moved over [`crate::http`].
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{HeaderName, ACCEPT, CONTENT_TYPE, IF_MATCH};
use reqwest::Method;
use serde_json::value::RawValue;

use crate::http::{Http, HttpError, HttpErrorKind, Response};
use crate::scim::list::{planned_starts, ListPage, Scan};
use crate::scim::spc::ServiceProviderConfig;
use crate::scim::MEDIA_TYPE;

/// What a page-by-page listing hands its consumer, in collection order.
pub enum Listed {
    /// One page's resources.
    Page(Vec<Box<RawValue>>),
    /// Forget every page handed so far: the listing starts again from the first page.
    Restart,
}

fn collect(out: &mut Vec<Box<RawValue>>, listed: Listed) {
    match listed {
        Listed::Page(resources) => out.extend(resources),
        Listed::Restart => out.clear(),
    }
}

/// A SCIM 2.0 client for one service provider (its base URL and transport).
#[derive(Clone, Debug)]
pub struct ScimClient {
    http: Http,
    base_url: String,
}

/// Progress callback: resources received so far and the total announced.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

impl ScimClient {
    /// A client for the SP at `base_url` over `http`.
    pub fn new(base_url: &str, http: Http) -> ScimClient {
        ScimClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    /// The source name it reports errors under (`app.NAME`, `idp.NAME`).
    pub fn source_name(&self) -> &str {
        self.http.source_name()
    }

    /// The absolute URL of `path` (relative to the base URL).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Send one SCIM request with the SCIM media type; returns the response whatever its status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<Response, HttpError> {
        let url = self.url(path);
        if !crate::scim::path::safe_request_path(path) {
            return Err(self.http.error(
                &method,
                &url,
                HttpErrorKind::BadBody(format!(
                    "refusing to send: the path '{path}' holds an empty or dot segment and would reach another resource"
                )),
            ));
        }
        let mut headers: Vec<(HeaderName, String)> = vec![(ACCEPT, format!("{MEDIA_TYPE}, application/json"))];
        if body.is_some() {
            headers.push((CONTENT_TYPE, MEDIA_TYPE.to_string()));
        }
        if let Some(tag) = if_match {
            headers.push((IF_MATCH, tag.to_string()));
        }
        let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("a JSON value serialises")));
        self.http.send(method, &url, &headers, bytes).await
    }

    /// GET that must succeed (2xx); anything else becomes an error with the SP's detail.
    pub async fn get_ok(&self, path: &str) -> Result<Bytes, HttpError> {
        let resp = self.request(Method::GET, path, None, None).await?;
        Ok(self.http.success(&Method::GET, &self.url(path), resp)?.body)
    }

    /// RFC 7644 §4. An SP without the endpoint (404) is taken to support nothing optional.
    pub async fn service_provider_config(&self) -> Result<ServiceProviderConfig, HttpError> {
        match self.get_ok("ServiceProviderConfig").await {
            Ok(body) => ServiceProviderConfig::parse(&body).map_err(|m| {
                self.http
                    .error(&Method::GET, &self.url("ServiceProviderConfig"), HttpErrorKind::BadBody(m))
            }),
            Err(e) if e.status() == Some(404) => Ok(ServiceProviderConfig::default()),
            Err(e) => Err(e),
        }
    }

    /// RFC 7644 §4 `/Schemas`: the User attribute paths the SP declares (lower-cased), or None
    /// when it cannot say (no endpoint, an error, an answer without the User schema). Never
    /// fails a pull: the answer only turns mappings the SP lacks into warnings.
    pub async fn user_schema(&self) -> Option<std::collections::BTreeSet<String>> {
        let body = match self.get_ok("Schemas").await {
            Ok(body) => body,
            Err(e) => {
                tracing::debug!("{}: /Schemas not read: {e}", self.source_name());
                return None;
            }
        };
        match crate::scim::discovery::user_attributes(&body) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("{}: {}: {e}", self.source_name(), self.url("Schemas"));
                None
            }
        }
    }

    async fn page(&self, resource: &str, start: u64, count: u32, page_no: u64) -> Result<ListPage, HttpError> {
        let path = format!("{resource}?startIndex={start}&count={count}");
        let body = self.get_ok(&path).await.map_err(|e| e.with_page(page_no))?;
        ListPage::parse(&body).map_err(|m| {
            self.http
                .error(&Method::GET, &self.url(&path), HttpErrorKind::BadBody(m))
                .with_page(page_no)
        })
    }

    fn paging_error(&self, resource: &str, start: u64, count: u32, page_no: u64, message: String) -> HttpError {
        self.http
            .error(
                &Method::GET,
                &self.url(&format!("{resource}?startIndex={start}&count={count}")),
                HttpErrorKind::Paging(message),
            )
            .with_page(page_no)
    }

    /// Every resource of a collection (`Users`, `Groups`), handed to `take` page by page in
    /// collection order as the pages arrive, so that a consumer keeps its own model of each
    /// resource and not the text of a whole collection. The first page tells the total and the
    /// SP's real page size; the rest are fetched `concurrency` at a time. Any inconsistency (a
    /// changing total, a short page in the middle, a short tally) is an error: never a partial
    /// list. When the SP's pages turn out uneven, `take` is told to [`Listed::Restart`] and the
    /// collection is read again one page after another.
    pub async fn list_each<E: From<HttpError>>(
        &self,
        resource: &str,
        page_size: u32,
        concurrency: usize,
        progress: Progress<'_>,
        take: &mut (dyn FnMut(Listed) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        let first = self.page(resource, 1, page_size, 1).await?;
        let mut scan = Scan::new();
        let mut guard = self.http.page_guard();
        scan.accept(&first).map_err(|m| self.paging_error(resource, 1, page_size, 1, m))?;
        let total = scan.total().unwrap_or(0);
        guard
            .claimed_total(total)
            .and_then(|()| guard.raw_page(&first.resources))
            .map_err(|m| self.paging_error(resource, 1, page_size, 1, m))?;
        let step = first.resources.len() as u64;
        take(Listed::Page(first.resources))?;
        progress(scan.collected, total);
        if scan.next_start().is_none() {
            return Ok(());
        }
        if step == 0 {
            return Err(self.paging_error(resource, 1, page_size, 1, scan.short_error()).into());
        }
        let starts = planned_starts(total, step, step);
        let fetched = stream::iter(starts.enumerate().map(|(i, start)| {
            let page_no = i as u64 + 2;
            async move { self.page(resource, start, step as u32, page_no).await.map(|p| (start, page_no, p)) }
        }))
        .buffered(concurrency.max(1));
        let mut fetched = std::pin::pin!(fetched);
        while let Some((start, page_no, page)) = fetched.try_next().await? {
            let expected = step.min(total + 1 - start);
            if page.resources.is_empty() {
                return Err(self.paging_error(resource, start, step as u32, page_no, scan.short_error()).into());
            }
            if page.resources.len() as u64 != expected {
                // The SP's page size varies: the planned offsets no longer line up. Walk the
                // collection again one page after another, advancing by what each page returns.
                tracing::debug!(
                    source = self.source_name(),
                    resource,
                    start,
                    "uneven pages; rescanning sequentially"
                );
                take(Listed::Restart)?;
                return self.list_sequential_each(resource, page_size, progress, take).await;
            }
            scan.accept(&page)
                .and_then(|()| guard.raw_page(&page.resources))
                .map_err(|m| self.paging_error(resource, start, step as u32, page_no, m))?;
            take(Listed::Page(page.resources))?;
            progress(scan.collected, total);
        }
        if scan.next_start().is_some() {
            return Err(self
                .paging_error(resource, scan.collected + 1, step as u32, scan.pages + 1, scan.short_error())
                .into());
        }
        Ok(())
    }

    /// RFC 7644 §3.4.2.4 as written: `startIndex += len(Resources)` until `totalResults`.
    pub async fn list_sequential(&self, resource: &str, page_size: u32, progress: Progress<'_>) -> Result<Vec<Box<RawValue>>, HttpError> {
        let mut out = Vec::new();
        self.list_sequential_each(resource, page_size, progress, &mut |listed| {
            collect(&mut out, listed);
            // Boxed: the collector never fails, and clippy refuses a closure whose error is large.
            Ok::<(), Box<HttpError>>(())
        })
        .await
        .map_err(|e| *e)?;
        Ok(out)
    }

    /// [`ScimClient::list_sequential`], page by page (as [`ScimClient::list_each`]).
    async fn list_sequential_each<E: From<HttpError>>(
        &self,
        resource: &str,
        page_size: u32,
        progress: Progress<'_>,
        take: &mut (dyn FnMut(Listed) -> Result<(), E> + Send),
    ) -> Result<(), E> {
        let mut scan = Scan::new();
        let mut guard = self.http.page_guard();
        let mut start = 1;
        loop {
            let page_no = scan.pages + 1;
            let page = self.page(resource, start, page_size, page_no).await?;
            let empty = page.resources.is_empty();
            scan.accept(&page)
                .and_then(|()| guard.claimed_total(scan.total().unwrap_or(0)))
                .and_then(|()| guard.raw_page(&page.resources))
                .map_err(|m| self.paging_error(resource, start, page_size, page_no, m))?;
            take(Listed::Page(page.resources))?;
            progress(scan.collected, scan.total().unwrap_or(0));
            match scan.next_start() {
                None => return Ok(()),
                Some(_) if empty => return Err(self.paging_error(resource, start, page_size, page_no, scan.short_error()).into()),
                Some(next) => start = next,
            }
        }
    }

    /// [`ScimClient::expect_ok`] on `/{resource}/{id}`; an id that cannot be addressed is an
    /// error before anything is sent.
    async fn by_id(
        &self,
        method: Method,
        resource: &str,
        id: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<serde_json::Value, HttpError> {
        let path = match crate::scim::path::resource_path(resource, id) {
            Ok(p) => p,
            Err(m) => {
                let url = self.url(&format!("{resource}/{id}"));
                return Err(self.http.error(&method, &url, HttpErrorKind::BadBody(m)));
            }
        };
        self.expect_ok(method, &path, body, if_match).await
    }

    /// A request whose response must be 2xx; returns the JSON body (Null for 204/empty).
    async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<serde_json::Value, HttpError> {
        let resp = self.request(method.clone(), path, body, if_match).await?;
        let resp = self.http.success(&method, &self.url(path), resp)?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| {
            self.http.error(
                &method,
                &self.url(path),
                HttpErrorKind::BadBody(format!("response is not JSON: {e}")),
            )
        })
    }

    /// GET `/{resource}/{id}` (§3.4.1).
    pub async fn get(&self, resource: &str, id: &str) -> Result<serde_json::Value, HttpError> {
        self.by_id(Method::GET, resource, id, None, None).await
    }

    /// POST `/{resource}` (§3.3): the created resource.
    pub async fn create(&self, resource: &str, body: &serde_json::Value) -> Result<serde_json::Value, HttpError> {
        self.expect_ok(Method::POST, resource, Some(body), None).await
    }

    /// PUT `/{resource}/{id}` (§3.5.1).
    pub async fn replace(
        &self,
        resource: &str,
        id: &str,
        body: &serde_json::Value,
        if_match: Option<&str>,
    ) -> Result<serde_json::Value, HttpError> {
        self.by_id(Method::PUT, resource, id, Some(body), if_match).await
    }

    /// PATCH `/{resource}/{id}` (§3.5.2); `Null` when the SP answers 204.
    pub async fn patch(
        &self,
        resource: &str,
        id: &str,
        ops: &[crate::scim::patch::Operation],
        if_match: Option<&str>,
    ) -> Result<serde_json::Value, HttpError> {
        self.by_id(Method::PATCH, resource, id, Some(&crate::scim::patch::body(ops)), if_match)
            .await
    }

    /// DELETE `/{resource}/{id}` (§3.6).
    pub async fn delete(&self, resource: &str, id: &str, if_match: Option<&str>) -> Result<(), HttpError> {
        self.by_id(Method::DELETE, resource, id, None, if_match).await.map(|_| ())
    }

    /// GET `/{resource}?filter=…` (§3.4.2.2): the matching resources (first page, up to `count`).
    pub async fn search(&self, resource: &str, filter: &str, count: u32) -> Result<Vec<Box<RawValue>>, HttpError> {
        let path = format!(
            "{resource}?filter={}&startIndex=1&count={count}",
            crate::scim::path::query_value(filter)
        );
        let body = self.get_ok(&path).await?;
        ListPage::parse(&body)
            .map(|p| p.resources)
            .map_err(|m| self.http.error(&Method::GET, &self.url(&path), HttpErrorKind::BadBody(m)))
    }
}
