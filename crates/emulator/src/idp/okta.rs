//! The Okta fake: users, groups, members and app groups with `Link` paging, `X-Rate-Limit-*`
//! headers and 429s, `lastUpdated` filters, user creation.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::*;

pub(super) fn okta_user(u: &IdpUser) -> Value {
    let mut user = json!({"id": u.id, "status": if u.staged { "STAGED" } else if u.active { "ACTIVE" } else { "DEPROVISIONED" }, "created": stamp(0), "activated": null,
           "statusChanged": null, "lastLogin": stamp(u.updated + 1000), "lastUpdated": stamp(u.updated), "passwordChanged": null,
           "type": {"id": "oty-fake"},
           "profile": {"firstName": u.first, "lastName": u.last, "login": u.login, "email": u.email, "mobilePhone": null,
                       "secondEmail": null, "employeeNumber": u.employee_id, "title": u.title, "department": u.department,
                       "costCenter": u.cost_center, "managerId": u.manager},
           "_links": {"self": {"href": format!("/api/v1/users/{}", u.id)}}});
    // Custom profile attributes sit beside the base ones in `profile`.
    for (k, v) in &u.custom {
        user["profile"][k] = json!(v);
    }
    user
}

/// A page of an `after`-cursor list (items in id order), with Okta's two `Link` lines and rate
/// headers.
pub(super) fn okta_page(
    s: &Shared,
    uri: &Uri,
    items: Vec<(String, Value)>,
    q: &[(String, String)],
    default: usize,
    cap: usize,
) -> Response {
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
pub(super) enum OktaFilter {
    Since { inclusive: bool, t: u64 },
    Login(String),
    Email(String),
}

pub(super) fn okta_filter(filter: &str) -> Option<OktaFilter> {
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

pub(super) async fn okta_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, uri: Uri) -> Response {
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

pub(super) async fn okta_user_by_id(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let dir = s.dir.lock().expect("not poisoned");
    match dir.users.get(&id) {
        Some(u) => json_response(StatusCode::OK, okta_user(u)),
        None => vendor_error(s.vendor, StatusCode::NOT_FOUND, "Not found: Resource not found"),
    }
}

pub(super) async fn okta_groups(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, uri: Uri) -> Response {
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

pub(super) async fn okta_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    uri: Uri,
) -> Response {
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

pub(super) async fn okta_app_groups(
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

pub(super) async fn okta_create(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>, body: Bytes) -> Response {
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
