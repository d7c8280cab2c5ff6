//! The emulator's HTTP side (axum on 127.0.0.1, a free port).
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::directory::Directory;

/// A fault injected into matching requests.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Matches when the request path ends with this (`/Users`, `/Groups/…`), any if `None`.
    pub path_suffix: Option<String>,
    pub method: Option<Method>,
    /// Matches only the list page with this `startIndex`.
    pub start_index: Option<u64>,
    pub status: u16,
    pub retry_after: Option<String>,
    pub delay: Option<Duration>,
    /// How many matching requests fail; `None` is every one.
    pub times: Option<u64>,
}

#[derive(Default)]
struct Shared {
    dir: Mutex<Directory>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<u64>,
    token: Option<String>,
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Start on a free loopback port inside the current tokio runtime.
    pub async fn start(dir: Directory, token: Option<&str>) -> std::io::Result<Emulator> {
        let shared = Arc::new(Shared {
            dir: Mutex::new(dir),
            token: token.map(str::to_string),
            ..Default::default()
        });
        let app = Router::new()
            .route("/ServiceProviderConfig", get(spc))
            .route("/{resource}", get(list).post(create))
            .route("/{resource}/{id}", get(get_one).delete(delete_one).put(replace))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator {
            base_url: format!("http://{addr}"),
            shared,
            shutdown: Some(tx),
        })
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().expect("not poisoned").push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("not poisoned").clear();
    }

    /// Requests served so far (faults included).
    pub fn requests(&self) -> u64 {
        *self.shared.requests.lock().expect("not poisoned")
    }

    pub fn with_directory<T>(&self, f: impl FnOnce(&mut Directory) -> T) -> T {
        f(&mut self.shared.dir.lock().expect("not poisoned"))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(crate::scim::MEDIA_TYPE));
    r
}

fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({"schemas": [crate::scim::ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim_json(status, body)
}

/// Auth, request counting and fault injection, shared by every handler.
async fn gate(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    *s.requests.lock().expect("not poisoned") += 1;
    if let Some(token) = &s.token {
        let ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {token}"));
        if !ok {
            return Some(scim_error(StatusCode::UNAUTHORIZED, None, "missing or wrong bearer token"));
        }
    }
    let start_index = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("startIndex"))
            .and_then(|(_, v)| v.parse::<u64>().ok())
    });
    let fault = {
        let mut faults = s.faults.lock().expect("not poisoned");
        let hit = faults.iter_mut().find(|f| {
            f.path_suffix.as_deref().is_none_or(|p| uri.path().ends_with(p))
                && f.method.as_ref().is_none_or(|m| m == method)
                && f.start_index.is_none_or(|i| start_index == Some(i))
                && f.times != Some(0)
        });
        hit.map(|f| {
            if let Some(n) = f.times.as_mut() {
                *n -= 1;
            }
            f.clone()
        })
    }?;
    if let Some(d) = fault.delay {
        tokio::time::sleep(d).await;
    }
    if fault.status == 0 {
        return None; // a pure delay
    }
    let mut r = scim_error(
        StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        None,
        "injected fault",
    );
    if let Some(ra) = fault.retry_after {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_str(&ra).expect("valid header"));
    }
    Some(r)
}

fn known(resource: &str) -> bool {
    resource == "Users" || resource == "Groups"
}

async fn spc(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    scim_json(
        StatusCode::OK,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"], "patch": {"supported": true}, "bulk": {"supported": false},
               "filter": {"supported": true, "maxResults": 1000}, "sort": {"supported": false}, "etag": {"supported": false}, "changePassword": {"supported": false}}),
    )
}

async fn list(
    State(s): State<Arc<Shared>>,
    Path(resource): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    if !known(&resource) {
        return scim_error(StatusCode::NOT_FOUND, None, "unknown resource type");
    }
    let param = |k: &str| q.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let start = param("startIndex").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1).max(1) as usize;
    let count = param("count").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1000).clamp(0, 1000) as usize;
    let dir = s.dir.lock().expect("not poisoned");
    let all = dir.collection(&resource);
    let page: Vec<&Value> = all.values().skip(start - 1).take(count).collect();
    scim_json(
        StatusCode::OK,
        json!({"schemas": [crate::scim::LIST_SCHEMA], "totalResults": all.len(), "startIndex": start, "itemsPerPage": page.len(), "Resources": page}),
    )
}

async fn get_one(
    State(s): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    match s.dir.lock().expect("not poisoned").collection(&resource).get(&id) {
        Some(v) => scim_json(StatusCode::OK, v.clone()),
        None => scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found")),
    }
}

async fn create(
    State(s): State<Arc<Shared>>,
    Path(resource): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    if !known(&resource) {
        return scim_error(StatusCode::NOT_FOUND, None, "unknown resource type");
    }
    let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "body is not a JSON object");
    };
    let mut dir = s.dir.lock().expect("not poisoned");
    if resource == "Users" {
        let name = v.get("userName").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        if dir
            .users
            .values()
            .any(|u| u.get("userName").and_then(Value::as_str).is_some_and(|n| n.to_lowercase() == name))
        {
            return scim_error(StatusCode::CONFLICT, Some("uniqueness"), "userName is already in use");
        }
    }
    scim_json(StatusCode::CREATED, dir.create(&resource, v))
}

async fn replace(
    State(s): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    let Ok(mut v @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "body is not a JSON object");
    };
    let mut dir = s.dir.lock().expect("not poisoned");
    let Some(old) = dir.collection_mut(&resource).get_mut(&id) else {
        return scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found"));
    };
    v["id"] = json!(id);
    v["schemas"] = old["schemas"].clone();
    v["meta"] = old["meta"].clone();
    *old = v.clone();
    scim_json(StatusCode::OK, v)
}

async fn delete_one(
    State(s): State<Arc<Shared>>,
    Path((resource, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &method, &uri, &headers).await {
        return r;
    }
    match s.dir.lock().expect("not poisoned").collection_mut(&resource).remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found")),
    }
}
