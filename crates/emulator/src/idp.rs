//! Local fakes of the IdP APIs scimsync reads (JumpCloud, Okta, Microsoft Graph), built from
//! `shared/reference/idp-apis.md`: their envelopes, page defaults and caps, paging (skip and
//! `totalCount`/`x-total-count`, `Link` headers, `@odata.nextLink`/`@odata.deltaLink`), Okta's
//! `X-Rate-Limit-*` headers and 429s, Graph's delta rounds with `@removed` and replays, 410 for
//! an expired delta token, and fault injection ([`Fault`]). One neutral [`IdpDirectory`] is
//! served in each vendor's shape; it keeps a logical clock so that changes can be listed since
//! a point (Okta's `lastUpdated`, Graph's delta tokens).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::server::{take_fault, Fault};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpVendor {
    JumpCloud,
    Okta,
    Entra,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdpUser {
    pub id: String,
    pub login: String,
    pub email: String,
    pub first: String,
    pub last: String,
    pub employee_id: Option<String>,
    pub title: Option<String>,
    pub active: bool,
    /// Created but not activated (JumpCloud/Okta STAGED); not active.
    pub staged: bool,
    /// The logical time of the last change.
    pub updated: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdpGroup {
    pub id: String,
    pub name: String,
    pub members: BTreeSet<String>,
    pub updated: u64,
    pub members_updated: u64,
}

/// A directory with a logical clock: every change ticks it and is remembered, so that changes
/// since a time can be listed.
#[derive(Debug, Default)]
pub struct IdpDirectory {
    pub users: BTreeMap<String, IdpUser>,
    pub groups: BTreeMap<String, IdpGroup>,
    /// App id → bound group ids.
    pub apps: BTreeMap<String, Vec<String>>,
    clock: u64,
    /// (time, "user"|"group", id) of deletions.
    tombstones: Vec<(u64, &'static str, String)>,
    /// (time, group, user, added) of membership changes.
    member_log: Vec<(u64, String, String, bool)>,
}

/// Okta-style timestamp of a logical time.
pub fn stamp(t: u64) -> String {
    let at = chrono::DateTime::from_timestamp(EPOCH + t as i64, 0).expect("in range");
    at.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

/// 2026-01-01T00:00:00Z: logical time 0.
const EPOCH: i64 = 1_767_225_600;

fn unstamp(s: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some((t.timestamp() - EPOCH).max(0) as u64)
}

impl IdpDirectory {
    /// `users` users (every 25th inactive) and `groups` groups; user i is in groups i mod g and
    /// 7i mod g. Ids sort in creation order.
    pub fn generate(users: usize, groups: usize) -> IdpDirectory {
        let mut d = IdpDirectory::default();
        for i in 0..users {
            d.put_user(IdpUser {
                id: format!("u{i:07}"),
                login: format!("user{i}@example.com"),
                email: format!("user{i}@example.com"),
                first: format!("First{i}"),
                last: format!("Last{i}"),
                employee_id: Some(format!("E{i}")),
                title: (i % 3 == 0).then(|| "Engineer".to_string()),
                active: i % 25 != 24,
                staged: false,
                updated: 0,
            });
        }
        for g in 0..groups {
            d.put_group(&format!("g{g:05}"), &format!("Group {g}"));
        }
        if groups > 0 {
            for i in 0..users {
                let uid = format!("u{i:07}");
                d.add_member(&format!("g{:05}", i % groups), &uid);
                d.add_member(&format!("g{:05}", (7 * i) % groups), &uid);
            }
        }
        d
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn clock(&self) -> u64 {
        self.clock
    }

    pub fn put_user(&mut self, mut u: IdpUser) {
        u.updated = self.tick();
        self.users.insert(u.id.clone(), u);
    }

    /// Change a user (ticks the clock).
    pub fn update_user(&mut self, id: &str, f: impl FnOnce(&mut IdpUser)) {
        let t = self.tick();
        if let Some(u) = self.users.get_mut(id) {
            f(u);
            u.updated = t;
        }
    }

    pub fn delete_user(&mut self, id: &str) {
        let t = self.tick();
        self.users.remove(id);
        self.tombstones.push((t, "user", id.to_string()));
        let groups: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.members.contains(id))
            .map(|g| g.id.clone())
            .collect();
        for g in groups {
            self.remove_member(&g, id);
        }
    }

    pub fn put_group(&mut self, id: &str, name: &str) {
        let t = self.tick();
        let g = self.groups.entry(id.to_string()).or_insert_with(|| IdpGroup {
            id: id.to_string(),
            ..Default::default()
        });
        g.name = name.to_string();
        g.updated = t;
    }

    pub fn delete_group(&mut self, id: &str) {
        let t = self.tick();
        self.groups.remove(id);
        self.tombstones.push((t, "group", id.to_string()));
    }

    pub fn add_member(&mut self, group: &str, user: &str) {
        let t = self.tick();
        if let Some(g) = self.groups.get_mut(group) {
            if g.members.insert(user.to_string()) {
                g.members_updated = t;
                self.member_log.push((t, group.to_string(), user.to_string(), true));
            }
        }
    }

    pub fn remove_member(&mut self, group: &str, user: &str) {
        let t = self.tick();
        if let Some(g) = self.groups.get_mut(group) {
            if g.members.remove(user) {
                g.members_updated = t;
                self.member_log.push((t, group.to_string(), user.to_string(), false));
            }
        }
    }

    pub fn bind(&mut self, app: &str, group: &str) {
        self.apps.entry(app.to_string()).or_default().push(group.to_string());
    }

    /// Every (group id, user id) membership.
    pub fn memberships(&self) -> BTreeSet<(String, String)> {
        self.groups
            .values()
            .flat_map(|g| g.members.iter().map(move |u| (g.id.clone(), u.clone())))
            .collect()
    }
}

/// A Graph delta round: its entries, the logical time it is as of, and the `$select` it was
/// started with (Graph encodes it into the tokens).
struct Round {
    entries: Vec<Value>,
    at: u64,
    select: Vec<String>,
}

type Mutation = Box<dyn FnOnce(&mut IdpDirectory) + Send>;

struct Shared {
    vendor: IdpVendor,
    dir: Mutex<IdpDirectory>,
    token: String,
    base_url: Mutex<String>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<HashMap<String, u64>>,
    total: Mutex<u64>,
    /// Changes made when the request count reaches a number (objects changing mid-scan).
    mutations: Mutex<Vec<(u64, Mutation)>>,
    /// Okta: requests allowed per one-second window, and the windows' use.
    rate_limit: Mutex<Option<u64>>,
    window: Mutex<(u64, u64)>,
    throttled: Mutex<u64>,
    /// Graph: delta tokens issued before this logical time answer 410.
    expired_before: Mutex<u64>,
    /// Graph: delta rounds being paged, by key.
    rounds: Mutex<Vec<Round>>,
    /// Graph: client credentials and the access tokens issued.
    client: Option<(String, String)>,
    issued: Mutex<Vec<String>>,
    /// Graph: access tokens granted in all, and the request count at which those granted so far
    /// stop being accepted (an expiry in the middle of a pull).
    granted: Mutex<u64>,
    expire_tokens_at: Mutex<Option<u64>>,
}

/// A running IdP fake. Dropping it stops the server.
pub struct IdpFake {
    /// The `base_url` to configure: the host for JumpCloud and Okta, `…/v1.0` for Graph.
    pub base_url: String,
    /// Graph: the token endpoint (`token_url`).
    pub token_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl IdpFake {
    /// Start a fake that wants `token` (JumpCloud's API key, Okta's SSWS token, or for Graph the
    /// client secret of client `client_id` when given, else a bearer token).
    pub async fn start(vendor: IdpVendor, dir: IdpDirectory, token: &str, client_id: Option<&str>) -> std::io::Result<IdpFake> {
        let shared = Arc::new(Shared {
            vendor,
            dir: Mutex::new(dir),
            token: token.to_string(),
            base_url: Mutex::new(String::new()),
            faults: Mutex::default(),
            requests: Mutex::default(),
            total: Mutex::default(),
            mutations: Mutex::default(),
            rate_limit: Mutex::default(),
            window: Mutex::default(),
            throttled: Mutex::default(),
            expired_before: Mutex::default(),
            rounds: Mutex::default(),
            client: client_id.map(|c| (c.to_string(), token.to_string())),
            issued: Mutex::default(),
            granted: Mutex::default(),
            expire_tokens_at: Mutex::default(),
        });
        let router = match vendor {
            IdpVendor::JumpCloud => Router::new()
                .route("/api/systemusers", get(jc_users).post(jc_create))
                .route("/api/v2/usergroups", get(jc_groups))
                .route("/api/v2/usergroups/{id}/members", get(jc_members))
                .route("/api/v2/applications/{id}/associations", get(jc_associations))
                .route_layer(middleware::from_fn_with_state(shared.clone(), gated)),
            IdpVendor::Okta => Router::new()
                .route("/api/v1/users", get(okta_users).post(okta_create))
                .route("/api/v1/users/{id}", get(okta_user_by_id))
                .route("/api/v1/groups", get(okta_groups))
                .route("/api/v1/groups/{id}/users", get(okta_members))
                .route("/api/v1/apps/{id}/groups", get(okta_app_groups))
                .route_layer(middleware::from_fn_with_state(shared.clone(), gated)),
            IdpVendor::Entra => Router::new()
                .route("/v1.0/users", get(graph_users).post(graph_create))
                .route("/v1.0/users/delta", get(graph_users_delta))
                .route("/v1.0/groups/delta", get(graph_groups_delta))
                .route("/v1.0/servicePrincipals/{id}/appRoleAssignedTo", get(graph_assignments))
                .route_layer(middleware::from_fn_with_state(shared.clone(), gated))
                .route("/{tenant}/oauth2/v2.0/token", post(graph_token)),
        }
        .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let host = format!("http://{addr}");
        *shared.base_url.lock().expect("not poisoned") = host.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(IdpFake {
            base_url: if vendor == IdpVendor::Entra {
                format!("{host}/v1.0")
            } else {
                host.clone()
            },
            token_url: format!("{host}/tenant-1/oauth2/v2.0/token"),
            shared,
            shutdown: Some(tx),
        })
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().expect("not poisoned").push(fault);
    }

    /// Run `f` on the directory when the fake has served `n` requests.
    pub fn mutate_at(&self, n: u64, f: impl FnOnce(&mut IdpDirectory) + Send + 'static) {
        self.shared.mutations.lock().expect("not poisoned").push((n, Box::new(f)));
    }

    pub fn with_directory<T>(&self, f: impl FnOnce(&mut IdpDirectory) -> T) -> T {
        f(&mut self.shared.dir.lock().expect("not poisoned"))
    }

    /// Requests served, in all.
    pub fn requests(&self) -> u64 {
        *self.shared.total.lock().expect("not poisoned")
    }

    /// Requests served per path (query excluded).
    pub fn requests_by_path(&self) -> HashMap<String, u64> {
        self.shared.requests.lock().expect("not poisoned").clone()
    }

    /// Okta: allow `n` requests per one-second window (429 beyond).
    pub fn set_rate_limit(&self, n: Option<u64>) {
        *self.shared.rate_limit.lock().expect("not poisoned") = n;
    }

    /// Okta: 429s served for the rate limit.
    pub fn throttled(&self) -> u64 {
        *self.shared.throttled.lock().expect("not poisoned")
    }

    /// Graph: the access tokens granted so far stop working once the fake has served `n`
    /// requests (401 until the client fetches a new one).
    pub fn expire_access_tokens_at(&self, n: u64) {
        *self.shared.expire_tokens_at.lock().expect("not poisoned") = Some(n);
    }

    /// Graph: access tokens granted in all.
    pub fn tokens_granted(&self) -> u64 {
        *self.shared.granted.lock().expect("not poisoned")
    }

    /// Graph: every delta token issued so far answers 410 Gone.
    pub fn expire_delta_tokens(&self) {
        let now = self.shared.dir.lock().expect("not poisoned").clock + 1;
        *self.shared.expired_before.lock().expect("not poisoned") = now;
    }
}

impl Drop for IdpFake {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn vendor_error(vendor: IdpVendor, status: StatusCode, message: &str) -> Response {
    let body = match vendor {
        IdpVendor::JumpCloud => json!({"code": status.as_u16(), "message": message, "status": status.canonical_reason().unwrap_or("")}),
        IdpVendor::Okta => {
            let code = if status == StatusCode::TOO_MANY_REQUESTS {
                "E0000047"
            } else {
                "E0000001"
            };
            json!({"errorCode": code, "errorSummary": message, "errorLink": code, "errorId": "oae-fake", "errorCauses": []})
        }
        IdpVendor::Entra => json!({"error": {"code": status.canonical_reason().unwrap_or("error"), "message": message,
                                             "innerError": {"date": "2026-01-01T00:00:00", "request-id": "fake"}}}),
    };
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Every data route goes through [`gate`] first (the token endpoint does not).
async fn gated(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match gate(&s, req.method(), req.uri(), req.headers()).await {
        Ok(()) => next.run(req).await,
        Err(r) => r,
    }
}

/// Counting, auth, mutations, faults and Okta's rate limit. `Err` is the answer to give.
async fn gate(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
    let n = {
        let mut t = s.total.lock().expect("not poisoned");
        *t += 1;
        *t
    };
    *s.requests.lock().expect("not poisoned").entry(uri.path().to_string()).or_default() += 1;
    let due: Vec<Mutation> = {
        let mut m = s.mutations.lock().expect("not poisoned");
        let (now, later): (Vec<_>, Vec<_>) = m.drain(..).partition(|(at, _)| *at <= n);
        *m = later;
        now.into_iter().map(|(_, f)| f).collect()
    };
    for f in due {
        f(&mut s.dir.lock().expect("not poisoned"));
    }
    {
        let mut at = s.expire_tokens_at.lock().expect("not poisoned");
        if at.is_some_and(|at| n >= at) {
            s.issued.lock().expect("not poisoned").clear();
            *at = None;
        }
    }
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let authorised = match s.vendor {
        IdpVendor::JumpCloud => header("x-api-key") == s.token,
        IdpVendor::Okta => {
            header("authorization") == format!("SSWS {}", s.token) || header("authorization") == format!("Bearer {}", s.token)
        }
        IdpVendor::Entra => {
            let issued = s.issued.lock().expect("not poisoned");
            let bearer = header("authorization").strip_prefix("Bearer ").unwrap_or("");
            match &s.client {
                Some(_) => issued.iter().any(|t| t == bearer),
                None => bearer == s.token,
            }
        }
    };
    if !authorised {
        return Err(vendor_error(s.vendor, StatusCode::UNAUTHORIZED, "missing or wrong credentials"));
    }
    if let Some(limit) = *s.rate_limit.lock().expect("not poisoned") {
        let second = now_secs();
        let mut w = s.window.lock().expect("not poisoned");
        if w.0 != second {
            *w = (second, 0);
        }
        if w.1 >= limit {
            *s.throttled.lock().expect("not poisoned") += 1;
            let mut r = vendor_error(
                s.vendor,
                StatusCode::TOO_MANY_REQUESTS,
                "API call exceeded rate limit due to too many requests.",
            );
            rate_headers(&mut r, limit, 0, second + 1);
            return Err(r);
        }
        w.1 += 1;
    }
    if let Some(f) = take_fault(&s.faults, method, uri).await {
        let mut r = vendor_error(
            s.vendor,
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected fault",
        );
        if let Some(ra) = f.retry_after {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_str(&ra).expect("valid header"));
        }
        return Err(r);
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn rate_headers(r: &mut Response, limit: u64, remaining: u64, reset: u64) {
    let h = r.headers_mut();
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
    h.insert(
        "date",
        HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())).expect("valid"),
    );
}

fn param(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// `limit`/`skip` with a default and a cap.
fn window_of(q: &[(String, String)], default: usize, cap: usize) -> (usize, usize) {
    let limit = param(q, "limit").and_then(|v| v.parse().ok()).unwrap_or(default).min(cap);
    let skip = param(q, "skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    (limit, skip)
}

// ---------------------------------------------------------------- JumpCloud

fn jc_user(u: &IdpUser) -> Value {
    json!({"_id": u.id, "username": u.login, "email": u.email, "firstname": u.first, "lastname": u.last,
           "displayname": format!("{} {}", u.first, u.last).to_lowercase(), "state": if u.staged { "STAGED" } else if u.active { "ACTIVATED" } else { "SUSPENDED" },
           "activated": true, "suspended": !u.active, "account_locked": false, "employeeIdentifier": u.employee_id,
           "jobTitle": u.title, "phoneNumbers": [], "created": stamp(0)})
}

fn with_total(items: Vec<Value>, total: usize) -> Response {
    let mut r = json_response(StatusCode::OK, Value::Array(items));
    r.headers_mut().insert("x-total-count", HeaderValue::from(total as u64));
    r
}

async fn jc_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let (limit, skip) = window_of(&q, 10, 100);
    // v1 filters the fake knows: `username:$eq:VALUE`, `email:$eq:VALUE` (case-sensitive, as
    // JumpCloud documents).
    let filter = match param(&q, "filter") {
        Some(f) => match f.split_once(":$eq:") {
            Some((field @ ("username" | "email"), value)) => Some((field.to_string(), value.to_string())),
            _ => return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "unsupported filter"),
        },
        None => None,
    };
    let dir = s.dir.lock().expect("not poisoned");
    let matching: Vec<&IdpUser> = dir
        .users
        .values()
        .filter(|u| {
            filter
                .as_ref()
                .is_none_or(|(f, v)| if f == "username" { &u.login == v } else { &u.email == v })
        })
        .collect();
    let results: Vec<Value> = matching.iter().skip(skip).take(limit).map(|u| jc_user(u)).collect();
    json_response(StatusCode::OK, json!({"totalCount": matching.len(), "results": results}))
}

async fn jc_groups(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let (limit, skip) = window_of(&q, 10, 100);
    let dir = s.dir.lock().expect("not poisoned");
    let items = dir
        .groups
        .values()
        .skip(skip)
        .take(limit)
        .map(|g| json!({"id": g.id, "name": g.name, "description": "", "email": "", "type": "user_group", "membershipMethod": "STATIC", "attributes": {}}))
        .collect();
    with_total(items, dir.groups.len())
}

async fn jc_members(State(s): State<Arc<Shared>>, Path(id): Path<String>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let (limit, skip) = window_of(&q, 10, 100);
    let dir = s.dir.lock().expect("not poisoned");
    let Some(g) = dir.groups.get(&id) else {
        return vendor_error(s.vendor, StatusCode::NOT_FOUND, "no such group");
    };
    let items = g
        .members
        .iter()
        .skip(skip)
        .take(limit)
        .map(|u| json!({"to": {"id": u, "type": "user", "attributes": {}}, "attributes": {}}))
        .collect();
    with_total(items, g.members.len())
}

async fn jc_associations(State(s): State<Arc<Shared>>, Path(id): Path<String>, Query(q): Query<Vec<(String, String)>>) -> Response {
    if param(&q, "targets").as_deref() != Some("user_group") && param(&q, "targets").as_deref() != Some("user") {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "targets must be user or user_group");
    }
    let (limit, skip) = window_of(&q, 10, 100);
    let dir = s.dir.lock().expect("not poisoned");
    let Some(bound) = dir.apps.get(&id) else {
        return vendor_error(s.vendor, StatusCode::NOT_FOUND, "no such application");
    };
    let items: Vec<Value> = if param(&q, "targets").as_deref() == Some("user_group") {
        bound
            .iter()
            .map(|g| json!({"to": {"id": g, "type": "user_group", "attributes": {}}, "attributes": {}}))
            .collect()
    } else {
        Vec::new()
    };
    let total = items.len();
    with_total(items.into_iter().skip(skip).take(limit).collect(), total)
}

// ---------------------------------------------------------------- Okta

fn okta_user(u: &IdpUser) -> Value {
    json!({"id": u.id, "status": if u.staged { "STAGED" } else if u.active { "ACTIVE" } else { "DEPROVISIONED" }, "created": stamp(0), "activated": null,
           "statusChanged": null, "lastLogin": stamp(u.updated + 1000), "lastUpdated": stamp(u.updated), "passwordChanged": null,
           "type": {"id": "oty-fake"},
           "profile": {"firstName": u.first, "lastName": u.last, "login": u.login, "email": u.email, "mobilePhone": null,
                       "secondEmail": null, "employeeNumber": u.employee_id, "title": u.title},
           "_links": {"self": {"href": format!("/api/v1/users/{}", u.id)}}})
}

/// A page of an `after`-cursor list (items in id order), with Okta's two `Link` lines and rate
/// headers.
fn okta_page(s: &Shared, uri: &Uri, items: Vec<(String, Value)>, q: &[(String, String)], default: usize, cap: usize) -> Response {
    let limit = param(q, "limit").and_then(|v| v.parse().ok()).unwrap_or(default).min(cap);
    let after = param(q, "after");
    let rest: Vec<(String, Value)> = items.into_iter().filter(|(id, _)| after.as_ref().is_none_or(|a| id > a)).collect();
    let more = rest.len() > limit;
    let page: Vec<(String, Value)> = rest.into_iter().take(limit).collect();
    let base = s.base_url.lock().expect("not poisoned").clone();
    let self_url = format!("{base}{}", uri);
    let mut r = json_response(StatusCode::OK, Value::Array(page.iter().map(|(_, v)| v.clone()).collect()));
    r.headers_mut().append(
        "link",
        HeaderValue::from_str(&format!("<{self_url}>; rel=\"self\"")).expect("valid"),
    );
    if more {
        let last = page.last().map(|(id, _)| id.clone()).unwrap_or_default();
        let mut next: Vec<(String, String)> = q.iter().filter(|(k, _)| k != "after").cloned().collect();
        next.push(("after".into(), last));
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(next).finish();
        r.headers_mut().append(
            "link",
            HeaderValue::from_str(&format!("<{base}{}?{query}>; rel=\"next\"", uri.path())).expect("valid"),
        );
    }
    let limit_per_window = s.rate_limit.lock().expect("not poisoned").unwrap_or(600);
    let used = {
        let w = s.window.lock().expect("not poisoned");
        if w.0 == now_secs() {
            w.1
        } else {
            0
        }
    };
    rate_headers(&mut r, limit_per_window, limit_per_window.saturating_sub(used), now_secs() + 1);
    r
}

/// The user filters the fake knows: `lastUpdated gt|ge "…"`, `profile.login eq "…"`,
/// `profile.email eq "…"` (values as JSON strings).
enum OktaFilter {
    Since { inclusive: bool, t: u64 },
    Login(String),
    Email(String),
}

fn okta_filter(filter: &str) -> Option<OktaFilter> {
    let (field, rest) = filter.trim().split_once(' ')?;
    let (op, value) = rest.split_once(' ')?;
    let value: String = serde_json::from_str(value.trim()).ok()?;
    match (field, op) {
        ("lastUpdated", "gt" | "ge") => Some(OktaFilter::Since {
            inclusive: op == "ge",
            t: unstamp(&value)?,
        }),
        ("profile.login", "eq") => Some(OktaFilter::Login(value)),
        ("profile.email", "eq") => Some(OktaFilter::Email(value)),
        _ => None,
    }
}

impl OktaFilter {
    fn matches(&self, u: &IdpUser) -> bool {
        match self {
            OktaFilter::Since { inclusive: true, t } => u.updated >= *t,
            OktaFilter::Since { inclusive: false, t } => u.updated > *t,
            OktaFilter::Login(l) => u.login.eq_ignore_ascii_case(l),
            OktaFilter::Email(e) => u.email.eq_ignore_ascii_case(e),
        }
    }
}

async fn okta_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, uri: Uri) -> Response {
    let filter = match param(&q, "filter") {
        Some(f) => match okta_filter(&f) {
            Some(f) => Some(f),
            None => return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "Invalid search criteria."),
        },
        None => None,
    };
    let items = {
        let dir = s.dir.lock().expect("not poisoned");
        // Only the page's window (and one more, to know there is a next page) is rendered.
        let after = param(&q, "after");
        let window = param(&q, "limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(200).min(200) + 1;
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        dir.users
            .range::<String, _>((start, std::ops::Bound::Unbounded))
            .map(|(_, u)| u)
            // Without a filter or search, Okta leaves DEPROVISIONED users out.
            .filter(|u| filter.is_some() || param(&q, "search").is_some() || u.active)
            .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
            .take(window)
            .map(|u| (u.id.clone(), okta_user(u)))
            .collect()
    };
    okta_page(&s, &uri, items, &q, 200, 200)
}

async fn okta_user_by_id(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let dir = s.dir.lock().expect("not poisoned");
    match dir.users.get(&id) {
        Some(u) => json_response(StatusCode::OK, okta_user(u)),
        None => vendor_error(s.vendor, StatusCode::NOT_FOUND, "Not found: Resource not found"),
    }
}

async fn okta_groups(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, uri: Uri) -> Response {
    let items = {
        let dir = s.dir.lock().expect("not poisoned");
        // `q`: groups whose name starts with it (case-insensitive).
        let prefix = param(&q, "q").map(|p| p.to_lowercase());
        dir.groups
            .values()
            .filter(|g| prefix.as_ref().is_none_or(|p| g.name.to_lowercase().starts_with(p.as_str())))
            .map(|g| {
                (
                    g.id.clone(),
                    json!({"id": g.id, "created": stamp(0), "lastUpdated": stamp(g.updated), "lastMembershipUpdated": stamp(g.members_updated),
                       "objectClass": ["okta:user_group"], "type": "OKTA_GROUP", "profile": {"name": g.name, "description": null}}),
                )
            })
            .collect()
    };
    okta_page(&s, &uri, items, &q, 10_000, 10_000)
}

async fn okta_members(State(s): State<Arc<Shared>>, Path(id): Path<String>, Query(q): Query<Vec<(String, String)>>, uri: Uri) -> Response {
    let items = {
        let dir = s.dir.lock().expect("not poisoned");
        let Some(g) = dir.groups.get(&id) else {
            return vendor_error(s.vendor, StatusCode::NOT_FOUND, "Not found: Resource not found");
        };
        g.members
            .iter()
            .filter_map(|u| dir.users.get(u))
            .map(|u| (u.id.clone(), okta_user(u)))
            .collect()
    };
    okta_page(&s, &uri, items, &q, 1000, 1000)
}

async fn okta_app_groups(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    uri: Uri,
) -> Response {
    let items = {
        let dir = s.dir.lock().expect("not poisoned");
        let Some(bound) = dir.apps.get(&id) else {
            return vendor_error(s.vendor, StatusCode::NOT_FOUND, "Not found: Resource not found");
        };
        let mut v: Vec<(String, Value)> = bound
            .iter()
            .map(|g| {
                (
                    g.clone(),
                    json!({"id": g, "priority": 0, "lastUpdated": stamp(0), "profile": {}, "_links": {}}),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    okta_page(&s, &uri, items, &q, 20, 200)
}

// ---------------------------------------------------------------- Microsoft Graph

async fn graph_token(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    *s.total.lock().expect("not poisoned") += 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let ok = s.client.as_ref().is_some_and(|(id, secret)| {
        form.get("client_id") == Some(id)
            && form.get("client_secret") == Some(secret)
            && form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("scope").is_some_and(|sc| sc.ends_with("/.default"))
    });
    if !ok {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    let mut granted = s.granted.lock().expect("not poisoned");
    *granted += 1;
    let token = format!("graph-access-{granted}");
    s.issued.lock().expect("not poisoned").push(token.clone());
    json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}),
    )
}

const GRAPH_DEFAULT_USER: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

fn graph_user(u: &IdpUser, select: &[String]) -> Value {
    let full = json!({"id": u.id, "userPrincipalName": u.login, "mail": u.email, "givenName": u.first, "surname": u.last,
        "displayName": format!("{} {}", u.first, u.last), "accountEnabled": u.active, "employeeId": u.employee_id,
        "jobTitle": u.title, "mobilePhone": null, "businessPhones": [], "officeLocation": null, "preferredLanguage": null});
    let keep: Vec<&str> = if select.is_empty() {
        GRAPH_DEFAULT_USER.to_vec()
    } else {
        select.iter().map(String::as_str).chain(["id"]).collect()
    };
    let mut out = serde_json::Map::new();
    for k in keep {
        if let Some(v) = full.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

const GRAPH_PAGE: usize = 100;
const GRAPH_MEMBER_CHUNK: usize = 20;

/// Answer one page of a delta round: a new round from `$deltatoken` (or the start), or the
/// next page of one in progress (`$skiptoken`).
fn delta_page(s: &Shared, path: &str, q: &[(String, String)], build: impl FnOnce(&IdpDirectory, u64, &[String]) -> Vec<Value>) -> Response {
    let base = s.base_url.lock().expect("not poisoned").clone();
    let (key, offset) = match param(q, "$skiptoken") {
        Some(tok) => {
            let Some((k, o)) = tok
                .split_once('.')
                .and_then(|(k, o)| Some((k.parse::<usize>().ok()?, o.parse::<usize>().ok()?)))
            else {
                return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "bad skip token");
            };
            (k, o)
        }
        None => {
            // A delta token is "{time}-{round}": the round that issued it holds the $select.
            let (since, select) = match param(q, "$deltatoken") {
                Some(t) => {
                    let parsed = t
                        .split_once('-')
                        .and_then(|(a, k)| Some((a.parse::<u64>().ok()?, k.parse::<usize>().ok()?)));
                    let rounds = s.rounds.lock().expect("not poisoned");
                    match parsed.and_then(|(a, k)| Some((a, rounds.get(k)?.select.clone()))) {
                        Some(found) => found,
                        None => return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "syncStateNotFound"),
                    }
                }
                None => (0, select_of(q)),
            };
            if param(q, "$deltatoken").is_some() && since < *s.expired_before.lock().expect("not poisoned") {
                let mut r = vendor_error(s.vendor, StatusCode::GONE, "resyncRequired: the delta token has expired");
                r.headers_mut()
                    .insert("location", HeaderValue::from_str(&format!("{base}/v1.0/{path}")).expect("valid"));
                return r;
            }
            let dir = s.dir.lock().expect("not poisoned");
            let entries = build(&dir, since, &select);
            let mut rounds = s.rounds.lock().expect("not poisoned");
            rounds.push(Round {
                entries,
                at: dir.clock,
                select,
            });
            (rounds.len() - 1, 0)
        }
    };
    let rounds = s.rounds.lock().expect("not poisoned");
    let Some(round) = rounds.get(key) else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "unknown skip token");
    };
    let page: Vec<Value> = round.entries.iter().skip(offset).take(GRAPH_PAGE).cloned().collect();
    let mut body = json!({"@odata.context": format!("{base}/v1.0/$metadata#{path}"), "value": page});
    if offset + GRAPH_PAGE < round.entries.len() {
        body["@odata.nextLink"] = json!(format!("{base}/v1.0/{path}/delta?$skiptoken={key}.{}", offset + GRAPH_PAGE));
    } else {
        body["@odata.deltaLink"] = json!(format!("{base}/v1.0/{path}/delta?$deltatoken={}-{key}", round.at));
    }
    json_response(StatusCode::OK, body)
}

fn select_of(q: &[(String, String)]) -> Vec<String> {
    param(q, "$select")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

/// `GET /users?$filter=userPrincipalName eq 'x'` (or `mail eq`) with `$select`: the single-user
/// read. Other filters are refused.
async fn graph_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let Some(filter) = param(&q, "$filter") else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "the fake serves /users with $filter only");
    };
    let parsed = filter.split_once(" eq '").and_then(|(field, rest)| {
        let value = rest.strip_suffix('\'')?.replace("''", "'");
        matches!(field, "userPrincipalName" | "mail").then(|| (field.to_string(), value))
    });
    let Some((field, value)) = parsed else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "Request_UnsupportedQuery");
    };
    let select = select_of(&q);
    let dir = s.dir.lock().expect("not poisoned");
    let value: Vec<Value> = dir
        .users
        .values()
        .filter(|u| {
            let have = if field == "mail" { &u.email } else { &u.login };
            have.eq_ignore_ascii_case(&value)
        })
        .map(|u| graph_user(u, &select))
        .collect();
    json_response(StatusCode::OK, json!({"value": value}))
}

async fn graph_users_delta(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    delta_page(&s, "users", &q, |dir, since, select| {
        let mut out: Vec<Value> = dir
            .users
            .values()
            .filter(|u| u.updated > since)
            .map(|u| graph_user(u, select))
            .collect();
        if since > 0 {
            out.extend(
                dir.tombstones
                    .iter()
                    .filter(|(t, kind, _)| *t > since && *kind == "user")
                    .map(|(_, _, id)| json!({"id": id, "@removed": {"reason": "deleted"}})),
            );
        }
        out
    })
}

async fn graph_groups_delta(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    delta_page(&s, "groups", &q, |dir, since, _| {
        let mut out = Vec::new();
        for g in dir.groups.values() {
            let changes: Vec<Value> = if since == 0 {
                g.members
                    .iter()
                    .map(|u| json!({"@odata.type": "#microsoft.graph.user", "id": u}))
                    .collect()
            } else {
                let mut last: BTreeMap<&str, bool> = BTreeMap::new();
                for (t, grp, user, added) in &dir.member_log {
                    if *t > since && *grp == g.id {
                        last.insert(user.as_str(), *added);
                    }
                }
                last.into_iter()
                    .map(|(u, added)| {
                        if added {
                            json!({"@odata.type": "#microsoft.graph.user", "id": u})
                        } else {
                            json!({"@odata.type": "#microsoft.graph.user", "id": u, "@removed": {"reason": "deleted"}})
                        }
                    })
                    .collect()
            };
            if g.updated <= since && changes.is_empty() {
                continue;
            }
            // A large group spans several objects (Graph "replays" it); each carries part of
            // its member changes.
            let chunks: Vec<&[Value]> = if changes.is_empty() {
                vec![&[]]
            } else {
                changes.chunks(GRAPH_MEMBER_CHUNK).collect()
            };
            for chunk in chunks {
                out.push(json!({"id": g.id, "displayName": g.name, "members@delta": chunk}));
            }
        }
        if since > 0 {
            out.extend(
                dir.tombstones
                    .iter()
                    .filter(|(t, kind, _)| *t > since && *kind == "group")
                    .map(|(_, _, id)| json!({"id": id, "@removed": {"reason": "deleted"}})),
            );
        }
        out
    })
}

async fn graph_assignments(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let dir = s.dir.lock().expect("not poisoned");
    let Some(bound) = dir.apps.get(&id) else {
        return vendor_error(s.vendor, StatusCode::NOT_FOUND, "Resource does not exist");
    };
    let value: Vec<Value> = bound
        .iter()
        .map(|g| {
            json!({"id": format!("a-{g}"), "appRoleId": "00000000-0000-0000-0000-000000000000", "principalId": g,
                   "principalType": "Group", "principalDisplayName": dir.groups.get(g).map(|x| x.name.clone()), "resourceId": id})
        })
        .collect();
    json_response(StatusCode::OK, json!({"value": value}))
}

// ---------------------------------------------------------------- user creation (import)

/// Add a user created over an API; `Err` when the login is taken (case-insensitively).
fn create_user(s: &Shared, mut u: IdpUser) -> Result<IdpUser, ()> {
    let mut dir = s.dir.lock().expect("not poisoned");
    if dir.users.values().any(|x| x.login.eq_ignore_ascii_case(&u.login)) {
        return Err(());
    }
    u.id = format!("u9{:06}", dir.users.len());
    dir.put_user(u.clone());
    Ok(dir.users[&u.id].clone())
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_string).filter(|s| !s.is_empty())
}

async fn jc_create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let (Some(login), Some(email)) = (text(&v, &["username"]), text(&v, &["email"])) else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "username and email are required");
    };
    let staged = text(&v, &["state"]).as_deref() == Some("STAGED");
    let u = IdpUser {
        login,
        email,
        first: text(&v, &["firstname"]).unwrap_or_default(),
        last: text(&v, &["lastname"]).unwrap_or_default(),
        employee_id: text(&v, &["employeeIdentifier"]),
        title: text(&v, &["jobTitle"]),
        active: !staged,
        staged,
        ..Default::default()
    };
    match create_user(&s, u) {
        Ok(u) => json_response(StatusCode::OK, jc_user(&u)),
        Err(()) => vendor_error(s.vendor, StatusCode::CONFLICT, "Already Exists: username"),
    }
}

async fn okta_create(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let field = |k: &str| text(&v, &["profile", k]);
    let (Some(login), Some(email), Some(first), Some(last)) = (field("login"), field("email"), field("firstName"), field("lastName"))
    else {
        return vendor_error(
            s.vendor,
            StatusCode::BAD_REQUEST,
            "Api validation failed: login, email, firstName and lastName are required",
        );
    };
    let activate = param(&q, "activate").as_deref() != Some("false");
    let u = IdpUser {
        login,
        email,
        first,
        last,
        employee_id: field("employeeNumber"),
        title: field("title"),
        active: activate,
        staged: !activate,
        ..Default::default()
    };
    match create_user(&s, u) {
        Ok(u) => json_response(StatusCode::OK, okta_user(&u)),
        Err(()) => vendor_error(
            s.vendor,
            StatusCode::BAD_REQUEST,
            "Api validation failed: login: An object with this field already exists",
        ),
    }
}

async fn graph_create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return vendor_error(s.vendor, StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let enabled = v.get("accountEnabled").and_then(Value::as_bool);
    let (Some(enabled), Some(_), Some(_), Some(upn), Some(_)) = (
        enabled,
        text(&v, &["displayName"]),
        text(&v, &["mailNickname"]),
        text(&v, &["userPrincipalName"]),
        text(&v, &["passwordProfile", "password"]),
    ) else {
        return vendor_error(
            s.vendor,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest: accountEnabled, displayName, mailNickname, userPrincipalName and passwordProfile are required",
        );
    };
    let u = IdpUser {
        login: upn,
        email: text(&v, &["mail"]).unwrap_or_default(),
        first: text(&v, &["givenName"]).unwrap_or_default(),
        last: text(&v, &["surname"]).unwrap_or_default(),
        employee_id: text(&v, &["employeeId"]),
        title: text(&v, &["jobTitle"]),
        active: enabled,
        ..Default::default()
    };
    match create_user(&s, u) {
        Ok(u) => json_response(StatusCode::CREATED, graph_user(&u, &[])),
        Err(()) => vendor_error(
            s.vendor,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest: Another object with the same value for property userPrincipalName already exists.",
        ),
    }
}
