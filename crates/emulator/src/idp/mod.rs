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

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::server::{take_fault, Fault};

mod graph;
mod jumpcloud;
mod okta;

use graph::*;
use jumpcloud::*;
use okta::*;

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
    pub department: Option<String>,
    pub cost_center: Option<String>,
    /// The manager's user id.
    pub manager: Option<String>,
    /// Vendor-specific custom attributes (JumpCloud `attributes[]`, Okta custom profile keys,
    /// Entra `onPremisesExtensionAttributes`).
    pub custom: BTreeMap<String, String>,
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
                department: Some(["Sales", "Engineering", "Support"][i % 3].to_string()),
                cost_center: (i % 2 == 0).then(|| format!("CC{}", i % 5)),
                // Every user but the first of each ten reports to that first one.
                manager: (i % 10 != 0).then(|| format!("u{:07}", i - i % 10)),
                custom: if i % 4 == 0 {
                    [("badge".to_string(), format!("B{i}"))].into()
                } else {
                    BTreeMap::new()
                },
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
    /// The API this fake serves.
    pub fn vendor(&self) -> IdpVendor {
        self.shared.vendor
    }

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
