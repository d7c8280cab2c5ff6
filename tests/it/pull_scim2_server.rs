//! `scimsync pull` against the third-party scim2-server: 10,000 users and 500 groups with
//! members are mirrored exactly; a pull with no changes writes nothing; changes close history.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::support::*;

const USERS: usize = 10_000;
const GROUPS: usize = 500;

fn seed_user(i: usize) -> Value {
    let mut u = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{i:05}@example.com"),
        "externalId": format!("E{i:05}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}"), "formatted": format!("Given{i} Family{i}")},
        "displayName": format!("User {i}"),
        "active": !i.is_multiple_of(7),
        "title": if i.is_multiple_of(3) { Value::Null } else { json!(format!("Title {}", i % 11)) },
        "timezone": "Europe/Paris",
    });
    if !i.is_multiple_of(5) {
        u["emails"] = json!([{"value": format!("user{i:05}@example.com"), "type": "work", "primary": true}, {"value": format!("home{i}@example.org"), "type": "home"}]);
    }
    if i.is_multiple_of(4) {
        u["phoneNumbers"] = json!([{"value": format!("+1 555 {i:05}"), "type": "work"}]);
    }
    u
}

fn group_members(g: usize, ids: &[String]) -> BTreeSet<String> {
    let mut m: BTreeSet<String> = ids[g * 20..g * 20 + 20].iter().cloned().collect();
    m.insert(ids[(g * 37 + 11) % ids.len()].clone()); // some users sit in two groups
    m
}

fn config(server: &Scim2Server) -> String {
    format!(
        r#"
[idp.corp]
kind = "scim"
base_url = "{}"
token_env = "IT_TOKEN"
page_size = 1000

[app.wiki]
idp = "corp"
base_url = "{}"
token_env = "IT_TOKEN"
groups = ["group-0001", "group-0002"]
"#,
        server.url("idp"),
        server.url("app")
    )
}

fn run_counts(ws: &Workspace, source: &str) -> Value {
    let c: String = ws
        .db()
        .query_row(
            "SELECT counts FROM runs WHERE source = ?1 AND status = 'ok' ORDER BY id DESC LIMIT 1",
            [source],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&c).unwrap()
}

#[test]
fn pull_mirrors_scim2_server_row_by_row_and_keeps_history() {
    let server = Scim2Server::start(&["idp", "app"]);
    let idp = server.url("idp");
    let seeded: Vec<Value> = (0..USERS).map(seed_user).collect();
    let ids = bulk_create(&idp, "/Users", &seeded);
    let groups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("group-{g:04}"),
                        "members": group_members(g, &ids).into_iter().map(|v| json!({"value": v})).collect::<Vec<_>>()})
        })
        .collect();
    let gids = bulk_create(&idp, "/Groups", &groups);
    let app_users = bulk_create(&server.url("app"), "/Users", &(0..10).map(seed_user).collect::<Vec<_>>());
    bulk_create(
        &server.url("app"),
        "/Groups",
        &[
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "group-0001", "members": [{"value": app_users[0]}]}),
        ],
    );

    let ws = Workspace::new(&config(&server));
    let started = std::time::Instant::now();
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    eprintln!(
        "pulled {USERS} users / {GROUPS} groups from scim2-server in {:.2}s",
        started.elapsed().as_secs_f64()
    );

    // Users, attribute by attribute.
    let db = ws.db();
    let stored = rows(&db, "SELECT id, user_name, external_id, given_name, family_name, formatted, display_name, email, active, title, phone, timezone FROM users WHERE source = 'idp.corp' ORDER BY user_name");
    assert_eq!(stored.len(), USERS);
    for (i, row) in stored.iter().enumerate() {
        let s = &seeded[i];
        let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "NULL".into());
        let expected = vec![
            ids[i].clone(),
            text(&s["userName"]),
            text(&s["externalId"]),
            text(&s["name"]["givenName"]),
            text(&s["name"]["familyName"]),
            text(&s["name"]["formatted"]),
            text(&s["displayName"]),
            text(&s["emails"][0]["value"]),
            if s["active"] == json!(true) { "1".into() } else { "0".into() },
            text(&s["title"]),
            text(&s["phoneNumbers"][0]["value"]),
            text(&s["timezone"]),
        ];
        assert_eq!(row, &expected, "user {i}");
    }

    // Groups and their members.
    let stored_groups = rows(
        &db,
        "SELECT id, display_name FROM groups WHERE source = 'idp.corp' ORDER BY display_name",
    );
    assert_eq!(stored_groups.len(), GROUPS);
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows(&db, "SELECT group_id, user_id FROM memberships WHERE source = 'idp.corp'") {
        members.entry(r[0].clone()).or_default().insert(r[1].clone());
    }
    for (g, row) in stored_groups.iter().enumerate() {
        assert_eq!(row, &vec![gids[g].clone(), format!("group-{g:04}")]);
        assert_eq!(members.get(&gids[g]), Some(&group_members(g, &ids)), "members of group {g}");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE source = 'app.wiki'"), 10);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM memberships WHERE source = 'app.wiki'"), 1);
    assert_eq!(
        rows(&db, "SELECT app, group_name, idp_group_id FROM bindings ORDER BY group_name"),
        vec![
            vec!["wiki".to_string(), "group-0001".into(), gids[1].clone()],
            vec!["wiki".into(), "group-0002".into(), gids[2].clone()]
        ]
    );
    drop(db);

    // A second pull with no changes writes nothing.
    assert_ok(&ws.cli(&["pull"]));
    let c = run_counts(&ws, "idp.corp");
    assert_eq!(
        (c["added"].as_u64(), c["changed"].as_u64(), c["removed"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{c}"
    );
    assert_eq!(c["users"], json!(USERS));
    let before_change = scimsync::time::now();

    // Change one user, delete another, take a member out of a group.
    let (s, _) = http(
        "PATCH",
        &format!("{idp}/Users/{}", ids[1]),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "Chief Tester"}]}),
        ),
    );
    assert!(s == 200 || s == 204, "PATCH returned {s}");
    assert_eq!(http("DELETE", &format!("{idp}/Users/{}", ids[2]), None).0, 204);
    assert_ok(&ws.cli(&["pull"]));
    let c = run_counts(&ws, "idp.corp");
    assert_eq!(c["users"], json!(USERS - 1));
    assert!(c["changed"].as_u64().unwrap() >= 1 && c["removed"].as_u64().unwrap() >= 1, "{c}");

    let db = ws.db();
    assert_eq!(
        rows(&db, &format!("SELECT title FROM users WHERE id = '{}'", ids[1])),
        vec![vec!["Chief Tester".to_string()]]
    );
    // History: the state before the change is still a query.
    let at = |t: &str, id: &str| {
        rows(
            &db,
            &format!("SELECT title FROM user_history WHERE id = '{id}' AND valid_from <= '{t}' AND (valid_to IS NULL OR valid_to > '{t}')"),
        )
    };
    assert_eq!(at(&before_change, &ids[1]), vec![vec!["Title 1".to_string()]]);
    assert_eq!(at(&before_change, &ids[2]).len(), 1, "the deleted user existed before");
    assert_eq!(at(&scimsync::time::now(), &ids[2]).len(), 0, "and not after");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM user_versions"), 2);
}

/// A SCIM IdP's enterprise attributes are stored under the names every IdP connector uses
/// (`department`, `cost_center`, `manager_id`), and its raw object as scim2-server returned it.
#[test]
fn a_scim_idps_enterprise_attributes_are_stored_under_the_idp_names() {
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let server = Scim2Server::start(&["idp", "app"]);
    let idp = server.url("idp");
    let boss = bulk_create(&idp, "/Users", &[seed_user(1)]).remove(0);
    let mut ada = seed_user(2);
    ada["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
    ada[ENTERPRISE] = json!({"department": "Sales", "costCenter": "CC7", "manager": {"value": boss}});
    let ada_id = bulk_create(&idp, "/Users", &[ada]).remove(0);

    let ws = Workspace::new(&config(&server));
    assert_ok(&ws.cli(&["pull"]));
    let db = ws.db();
    let stored = rows(
        &db,
        &format!("SELECT attributes, raw FROM users WHERE source = 'idp.corp' AND id = '{ada_id}'"),
    );
    let attributes: BTreeMap<String, String> = serde_json::from_str(&stored[0][0]).unwrap();
    assert_eq!(attributes.get("department").map(String::as_str), Some("Sales"));
    assert_eq!(attributes.get("cost_center").map(String::as_str), Some("CC7"));
    assert_eq!(attributes.get("manager_id"), Some(&boss));
    let raw: Value = serde_json::from_str(&stored[0][1]).unwrap();
    assert_eq!(raw[ENTERPRISE]["department"], json!("Sales"));
    assert_eq!(raw["id"], json!(ada_id));
}
