//! The emulator's HTTP side (axum on 127.0.0.1, a free port).
use std::collections::{HashMap, HashSet};
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

use super::directory::{emails_of, parse_eq_filter, Directory};
use super::vendor::Vendor;

/// A fault injected into matching requests.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Matches when the request path ends with this (`/Users`, `/Groups/…`), any if `None`.
    pub path_suffix: Option<String>,
    pub method: Option<Method>,
    /// Matches only the list page with this `startIndex`.
    pub start_index: Option<u64>,
    /// Matches only requests whose query string contains this (`skip=200`, `after=`).
    pub query_contains: Option<String>,
    pub status: u16,
    pub retry_after: Option<String>,
    pub delay: Option<Duration>,
    /// How many matching requests fail; `None` is every one.
    pub times: Option<u64>,
    /// The share of matching requests that fail (evenly spread, deterministic); `None` is all.
    pub rate: Option<f64>,
    /// Matching requests seen so far (for `rate`).
    pub seen: u64,
    /// Drop the connection without an answer (the request is not processed).
    pub drop_connection: bool,
    /// Answer with this body (and `status`) instead of a SCIM error: malformed JSON, an empty
    /// 200, a huge body.
    pub body: Option<String>,
}

/// Handlers answer errors as ready responses; boxed to keep `Result`s small.
type Refusal = Box<Response>;

#[derive(Default)]
struct Shared {
    dir: Mutex<Directory>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<u64>,
    /// POST /Users per lower-cased userName asked for (to prove nothing is created twice).
    creates: Mutex<HashMap<String, u64>>,
    token: Option<String>,
    vendor: Vendor,
    /// Whimsical: accounts created over SCIM are not listed until their user signs in.
    pending_until_login: bool,
    pending: Mutex<HashSet<String>>,
    /// A delay after a write is done and before it is answered (a slow app whose answer a
    /// client may never see).
    write_latency: Mutex<Option<Duration>>,
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Start a generic emulator on a free loopback port inside the current tokio runtime.
    pub async fn start(dir: Directory, token: Option<&str>) -> std::io::Result<Emulator> {
        Emulator::start_as(dir, token, Vendor::Generic, false).await
    }

    /// Start an emulator that behaves like `vendor`'s app.
    pub async fn start_as(dir: Directory, token: Option<&str>, vendor: Vendor, pending_until_login: bool) -> std::io::Result<Emulator> {
        let shared = Arc::new(Shared {
            dir: Mutex::new(dir),
            token: token.map(str::to_string),
            vendor,
            pending_until_login,
            ..Default::default()
        });
        let app = Router::new()
            .route("/ServiceProviderConfig", get(spc))
            .route("/{resource}", get(list).post(create))
            .route("/{resource}/{id}", get(get_one).delete(delete_one).put(replace).patch(patch))
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

    pub fn vendor(&self) -> Vendor {
        self.shared.vendor
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

    /// POST /Users requests per lower-cased userName (rejected ones included).
    pub fn creates(&self) -> HashMap<String, u64> {
        self.shared.creates.lock().expect("not poisoned").clone()
    }

    /// Answer every write only after `latency` (the write itself is done at once).
    pub fn set_write_latency(&self, latency: Option<Duration>) {
        *self.shared.write_latency.lock().expect("not poisoned") = latency;
    }

    /// Whimsical: the user with this userName signs in for the first time and appears in lists.
    pub fn login(&self, user_name: &str) {
        let dir = self.shared.dir.lock().expect("not poisoned");
        if let Some(id) = dir.user_by_name(user_name) {
            self.shared.pending.lock().expect("not poisoned").remove(id);
        }
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
    let fault = take_fault(&s.faults, method, uri).await?;
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match &fault.body {
        Some(body) => {
            let mut r = (status, body.clone()).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static(crate::scim::MEDIA_TYPE));
            r
        }
        None => scim_error(status, None, "injected fault"),
    };
    if let Some(ra) = fault.retry_after {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_str(&ra).expect("valid header"));
    }
    Some(r)
}

/// The fault that fires for this request, if any, after its delay (a pure delay returns None).
pub(super) async fn take_fault(faults: &Mutex<Vec<Fault>>, method: &Method, uri: &Uri) -> Option<Fault> {
    let start_index = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("startIndex"))
            .and_then(|(_, v)| v.parse::<u64>().ok())
    });
    let fault = {
        let mut faults = faults.lock().expect("not poisoned");
        let mut hit = None;
        for f in faults.iter_mut() {
            let matches = f.path_suffix.as_deref().is_none_or(|p| uri.path().ends_with(p))
                && f.method.as_ref().is_none_or(|m| m == method)
                && f.start_index.is_none_or(|i| start_index == Some(i))
                && f.query_contains.as_deref().is_none_or(|q| uri.query().unwrap_or("").contains(q))
                && f.times != Some(0);
            if !matches {
                continue;
            }
            f.seen += 1;
            let fires = f
                .rate
                .is_none_or(|r| ((f.seen as f64) * r).floor() > (((f.seen - 1) as f64) * r).floor());
            if fires {
                if let Some(n) = f.times.as_mut() {
                    *n -= 1;
                }
                hit = Some(f.clone());
                break;
            }
        }
        hit
    }?;
    if let Some(d) = fault.delay {
        tokio::time::sleep(d).await;
    }
    if fault.drop_connection {
        // Unwinding out of the handler ends this connection's task: the client sees the
        // connection close with no response. resume_unwind skips the panic hook (no noise).
        std::panic::resume_unwind(Box::new("emulator: dropped connection"));
    }
    if fault.status == 0 {
        return None; // a pure delay
    }
    Some(fault)
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
               "filter": {"supported": true, "maxResults": 1000}, "sort": {"supported": false}, "etag": {"supported": true}, "changePassword": {"supported": false}}),
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
    if s.vendor.requires_start_index() && (param("startIndex").is_none() || param("count").is_none()) {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidValue"), "startIndex and count are required");
    }
    if resource == "Groups" && s.vendor.rejects_group_filter() && (param("filter").is_some() || param("sortBy").is_some()) {
        return scim_error(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            "GET /Groups does not support sorting or filtering",
        );
    }
    let start = param("startIndex").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1).max(1) as usize;
    let count = param("count").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1000).clamp(0, 1000) as usize;
    let mut dir = s.dir.lock().expect("not poisoned");
    let pending = s.pending.lock().expect("not poisoned");
    let listed = |r: &&Value| resource != "Users" || pending.is_empty() || !r["id"].as_str().is_some_and(|id| pending.contains(id));
    let (total, page): (usize, Vec<&Value>) = match param("filter") {
        Some(f) => {
            let Some((attr, value)) = parse_eq_filter(&f) else {
                return scim_error(
                    StatusCode::BAD_REQUEST,
                    Some("invalidFilter"),
                    "only `attr eq \"value\"` filters are supported",
                );
            };
            let all: Vec<&Value> = dir.filter(&resource, &attr, &value).into_iter().filter(listed).collect();
            (all.len(), all.into_iter().skip(start - 1).take(count).collect())
        }
        None if pending.is_empty() => dir.page(&resource, start, count),
        None => {
            let all: Vec<&Value> = dir.collection(&resource).values().filter(listed).collect();
            (all.len(), all.into_iter().skip(start - 1).take(count).collect())
        }
    };
    scim_json(
        StatusCode::OK,
        json!({"schemas": [crate::scim::LIST_SCHEMA], "totalResults": total, "startIndex": start, "itemsPerPage": page.len(), "Resources": page}),
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

fn refuse(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Refusal {
    Box::new(scim_error(status, scim_type, detail))
}

fn body_object(body: &Bytes) -> Result<Value, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(refuse(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "body is not a JSON object")),
    }
}

/// The vendor's rules on a user about to be stored (`old`: the stored version, for updates).
/// Returns the user as the app would keep it, or the app's error.
fn shape_user(s: &Shared, dir: &Directory, id: Option<&str>, mut v: Value, old: Option<&Value>) -> Result<Value, Refusal> {
    let vendor = s.vendor;
    if vendor.rejects_upper_case_email() {
        let emails = v.get("emails").and_then(Value::as_array).into_iter().flatten();
        let upper = emails
            .filter_map(|e| e.get("value").and_then(Value::as_str))
            .chain(v.get("userName").and_then(Value::as_str))
            .any(|e| e.chars().any(char::is_uppercase));
        if upper {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                "email addresses must be lower case",
            ));
        }
    }
    if let (true, Some(old)) = (vendor.keeps_names_after_creation(), old) {
        v["name"] = old.get("name").cloned().unwrap_or(Value::Null);
        if v["name"].is_null() {
            v.as_object_mut().expect("object").remove("name");
        }
    }
    if vendor.sets_user_name() {
        match old {
            Some(old) => {
                if v.get("userName").is_some() && v.get("userName") != old.get("userName") {
                    return Err(refuse(StatusCode::BAD_REQUEST, Some("mutability"), "userName may not be modified"));
                }
                v["userName"] = old["userName"].clone();
            }
            None => {
                // Quip sets userName itself: a handle of its own, whatever was sent.
                let n = dir.users.len() + 1;
                v["userName"] = json!(format!("quip-user-{n}"));
            }
        }
    }
    if vendor.quip_shapes() {
        if let Some(Value::Array(emails)) = v.get_mut("emails") {
            for e in emails.iter_mut() {
                e["type"] = json!("work");
            }
        }
        let given = v.pointer("/name/givenName").and_then(Value::as_str).unwrap_or_default().to_string();
        let family = v
            .pointer("/name/familyName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if v.get("name").is_some_and(Value::is_object) {
            v["name"]["formatted"] = json!(format!("{given} {family}").trim().to_string());
        }
    }
    if vendor.unique_emails() {
        for e in emails_of(&v) {
            if dir.users_by_email(&e).iter().any(|holder| Some(holder.as_str()) != id) {
                return Err(refuse(
                    StatusCode::CONFLICT,
                    Some("uniqueness"),
                    "email is already used by another account",
                ));
            }
        }
    }
    if let Some(name) = v.get("userName").and_then(Value::as_str) {
        if dir.user_by_name(name).is_some_and(|holder| Some(holder) != id) {
            return Err(Box::new(scim_error(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                "userName is already in use",
            )));
        }
    }
    Ok(v)
}

fn shape_group(s: &Shared, mut v: Value) -> Value {
    if s.vendor.quip_shapes() {
        v.as_object_mut().expect("object").remove("externalId");
    }
    v
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
    let v = match body_object(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let response = create_now(&s, &resource, v);
    let latency = *s.write_latency.lock().expect("not poisoned");
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    response
}

fn create_now(s: &Shared, resource: &str, v: Value) -> Response {
    let mut dir = s.dir.lock().expect("not poisoned");
    if resource == "Users" {
        let asked = v.get("userName").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        *s.creates.lock().expect("not poisoned").entry(asked).or_default() += 1;
        let v = match shape_user(s, &dir, None, v, None) {
            Ok(v) => v,
            Err(r) => return *r,
        };
        let created = dir.create("Users", v);
        if s.pending_until_login {
            let id = created["id"].as_str().expect("id").to_string();
            s.pending.lock().expect("not poisoned").insert(id);
        }
        return scim_json(StatusCode::CREATED, created);
    }
    let v = shape_group(s, v);
    scim_json(StatusCode::CREATED, dir.create(resource, v))
}

/// If-Match (RFC 7644 §3.14): a stale version is refused with 412.
fn precondition(headers: &HeaderMap, current: &Value) -> Option<Response> {
    let wanted = headers.get("if-match")?.to_str().ok()?;
    let have = current.pointer("/meta/version").and_then(Value::as_str).unwrap_or_default();
    (wanted != "*" && wanted != have).then(|| scim_error(StatusCode::PRECONDITION_FAILED, None, "version mismatch"))
}

/// Store `new` as the resource `id` after the vendor's rules.
fn store_update(s: &Shared, resource: &str, id: &str, new: Value, headers: &HeaderMap) -> Response {
    let mut dir = s.dir.lock().expect("not poisoned");
    store_update_locked(s, &mut dir, resource, id, new, headers)
}

fn store_update_locked(s: &Shared, dir: &mut Directory, resource: &str, id: &str, new: Value, headers: &HeaderMap) -> Response {
    let Some(old) = dir.collection(resource).get(id).cloned() else {
        return scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found"));
    };
    if let Some(r) = precondition(headers, &old) {
        return r;
    }
    let new = if resource == "Users" {
        match shape_user(s, dir, Some(id), new, Some(&old)) {
            Ok(v) => v,
            Err(r) => return *r,
        }
    } else {
        shape_group(s, new)
    };
    match dir.put(resource, id, new) {
        Some(v) => scim_json(StatusCode::OK, v),
        None => scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found")),
    }
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
    if resource == "Groups" && s.vendor.rejects_group_put() {
        return scim_error(StatusCode::METHOD_NOT_ALLOWED, None, "PUT is not supported for Groups");
    }
    match body_object(&body) {
        Ok(v) => store_update(&s, &resource, &id, v, &headers),
        Err(r) => *r,
    }
}

async fn patch(
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
    if resource == "Groups" && s.vendor.rejects_group_patch() {
        return scim_error(StatusCode::METHOD_NOT_ALLOWED, None, "PATCH is not supported for Groups");
    }
    let req = match body_object(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(ops) = req.get("Operations").and_then(Value::as_array) else {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "no Operations");
    };
    // Read, change and write under one lock: concurrent PATCHes of one resource must not lose
    // each other's changes.
    let mut dir = s.dir.lock().expect("not poisoned");
    let Some(mut current) = dir.collection(&resource).get(&id).cloned() else {
        return scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found"));
    };
    if let Err(m) = crate::scim::patch::apply(&mut current, ops) {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidValue"), &m);
    }
    store_update_locked(&s, &mut dir, &resource, &id, current, &headers)
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
    let mut dir = s.dir.lock().expect("not poisoned");
    if resource == "Users" && s.vendor.delete_deactivates() {
        let Some(mut u) = dir.users.get(&id).cloned() else {
            return scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found"));
        };
        u["active"] = json!(false);
        dir.put("Users", &id, u);
        return StatusCode::NO_CONTENT.into_response();
    }
    match dir.remove(&resource, &id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => scim_error(StatusCode::NOT_FOUND, None, &format!("{resource} {id} not found")),
    }
}
