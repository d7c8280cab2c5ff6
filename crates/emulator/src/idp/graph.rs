//! The Microsoft Graph fake: the token endpoint, users with `$select`, delta rounds for users
//! and groups (`@removed`, replays, 410 for an expired token), app role assignments, user
//! creation.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::*;

pub(super) async fn graph_token(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) const GRAPH_DEFAULT_USER: &[&str] = &[
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

/// A user with the `$select`ed properties. `manager` is a navigation property: a delta round
/// answers it as `manager@delta`; a list read only with `$expand=manager`.
pub(super) fn graph_user(u: &IdpUser, select: &[String], delta: bool, expand_manager: bool) -> Value {
    // Graph has exactly fifteen extension attributes, all present, unset ones null: the
    // directory's custom values fill them in name order.
    let mut custom = u.custom.values();
    let extension: serde_json::Map<String, Value> = (1..=15).map(|n| (format!("extensionAttribute{n}"), json!(custom.next()))).collect();
    let full = json!({"id": u.id, "userPrincipalName": u.login, "mail": u.email, "givenName": u.first, "surname": u.last,
        "displayName": format!("{} {}", u.first, u.last), "accountEnabled": u.active, "employeeId": u.employee_id,
        "jobTitle": u.title, "mobilePhone": null, "businessPhones": [], "officeLocation": null, "preferredLanguage": null,
        "department": u.department, "onPremisesExtensionAttributes": extension});
    let keep: Vec<&str> = if select.is_empty() {
        GRAPH_DEFAULT_USER.to_vec()
    } else {
        select.iter().map(String::as_str).chain(["id"]).collect()
    };
    let mut out = serde_json::Map::new();
    for k in keep {
        if k == "manager" {
            if !delta {
                continue;
            }
            let managers: Vec<Value> = u
                .manager
                .iter()
                .map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m}))
                .collect();
            out.insert("manager@delta".into(), Value::Array(managers));
        } else if let Some(v) = full.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    if expand_manager {
        if let Some(m) = &u.manager {
            out.insert("manager".into(), json!({"@odata.type": "#microsoft.graph.user", "id": m}));
        }
    }
    Value::Object(out)
}

pub(super) const GRAPH_PAGE: usize = 100;
pub(super) const GRAPH_MEMBER_CHUNK: usize = 20;

/// Answer one page of a delta round: a new round from `$deltatoken` (or the start), or the
/// next page of one in progress (`$skiptoken`).
pub(super) fn delta_page(
    s: &Shared,
    path: &str,
    q: &[(String, String)],
    build: impl FnOnce(&IdpDirectory, u64, &[String]) -> Vec<Value>,
) -> Response {
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

pub(super) fn select_of(q: &[(String, String)]) -> Vec<String> {
    param(q, "$select")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

/// `GET /users?$filter=userPrincipalName eq 'x'` (or `mail eq`) with `$select`: the single-user
/// read. Other filters are refused.
pub(super) async fn graph_users(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
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
    let expand_manager = param(&q, "$expand").is_some_and(|e| e == "manager" || e.starts_with("manager("));
    let dir = s.dir.lock().expect("not poisoned");
    let value: Vec<Value> = dir
        .users
        .values()
        .filter(|u| {
            let have = if field == "mail" { &u.email } else { &u.login };
            have.eq_ignore_ascii_case(&value)
        })
        .map(|u| graph_user(u, &select, false, expand_manager))
        .collect();
    json_response(StatusCode::OK, json!({"value": value}))
}

pub(super) async fn graph_users_delta(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    delta_page(&s, "users", &q, |dir, since, select| {
        let mut out: Vec<Value> = dir
            .users
            .values()
            .filter(|u| u.updated > since)
            .map(|u| graph_user(u, select, true, false))
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

pub(super) async fn graph_groups_delta(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
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

pub(super) async fn graph_assignments(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
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

pub(super) async fn graph_create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
        Ok(u) => json_response(StatusCode::CREATED, graph_user(&u, &[], false, false)),
        Err(()) => vendor_error(
            s.vendor,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest: Another object with the same value for property userPrincipalName already exists.",
        ),
    }
}
