//! The JumpCloud fake: v1 systemusers (skip, `totalCount`), v2 groups, members and app
//! associations (skip, `x-total-count`), user creation.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::*;

pub(super) fn jc_user(u: &IdpUser) -> Value {
    json!({"_id": u.id, "username": u.login, "email": u.email, "firstname": u.first, "lastname": u.last,
           "displayname": format!("{} {}", u.first, u.last).to_lowercase(), "state": if u.staged { "STAGED" } else if u.active { "ACTIVATED" } else { "SUSPENDED" },
           "activated": true, "suspended": !u.active, "account_locked": false, "employeeIdentifier": u.employee_id,
           "jobTitle": u.title, "phoneNumbers": [], "created": stamp(0), "department": u.department, "costCenter": u.cost_center,
           "manager": u.manager, "attributes": u.custom.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>()})
}

pub(super) fn with_total(items: Vec<Value>, total: usize) -> Response {
    let mut r = json_response(StatusCode::OK, Value::Array(items));
    r.headers_mut().insert("x-total-count", HeaderValue::from(total as u64));
    r
}

pub(super) async fn jc_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
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

pub(super) async fn jc_groups(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
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

pub(super) async fn jc_members(State(s): State<Arc<Shared>>, Path(id): Path<String>, Query(q): Query<Vec<(String, String)>>) -> Response {
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

pub(super) async fn jc_associations(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
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

pub(super) async fn jc_create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
