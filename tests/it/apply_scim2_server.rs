//! End to end against scim2-server (the generic profile): pull → plan → apply → pull → plan
//! is empty; the deactivation guard, dry runs, plan files, stale plans and the event log.
use serde_json::{json, Value};

use crate::support::*;

fn user(name: &str, ext: &str, email: &str, active: bool, title: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": ext, "active": active, "title": title,
           "name": {"givenName": name, "familyName": "Doe"},
           "emails": [{"value": email, "type": "work", "primary": true}]})
}

fn group(name: &str, members: &[&String]) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()})
}

pub(crate) fn config(server: &Scim2Server, extra: &str) -> String {
    format!(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\", \"Ops\", \"Design\", \"Editors\"]\nroles = {{ editor = \"Editors\" }}\n{extra}",
        server.url("idp"),
        server.url("app")
    )
}

/// The app's users by userName: (active, title, role).
fn app_users(base: &str) -> std::collections::BTreeMap<String, (bool, String, String)> {
    let (_, v) = http("GET", &format!("{base}/Users?startIndex=1&count=1000"), None);
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap().to_string(),
                (
                    u["active"].as_bool().unwrap_or(true),
                    u["title"].as_str().unwrap_or("").to_string(),
                    u["roles"][0]["value"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// The app's groups: name → sorted member userNames.
fn app_groups(base: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let users: std::collections::HashMap<String, String> = {
        let (_, v) = http("GET", &format!("{base}/Users?startIndex=1&count=1000"), None);
        v["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["id"].as_str().unwrap().to_string(), u["userName"].as_str().unwrap().to_string()))
            .collect()
    };
    let (_, v) = http("GET", &format!("{base}/Groups?startIndex=1&count=1000"), None);
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut m: Vec<String> = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| users.get(m["value"].as_str().unwrap()).cloned().unwrap_or_default())
                .collect();
            m.sort();
            (g["displayName"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

pub(crate) fn seed(server: &Scim2Server) {
    let (idp, app) = (server.url("idp"), server.url("app"));
    let i = bulk_create(
        &idp,
        "/Users",
        &[
            user("alice", "E1", "alice@x.com", true, "Engineer"),
            user("bob", "E2", "bob@x.com", true, "Engineer"),
            user("carol", "E3", "carol@x.com", false, "Engineer"),
            user("dave", "E4", "dave@x.com", true, "Sales"),
            user("erin", "E5", "erin@x.com", true, "Engineer"),
            user("frank", "E6", "frank@x.com", true, "Lead"),
        ],
    );
    bulk_create(
        &idp,
        "/Groups",
        &[
            group("Eng", &[&i[0], &i[1], &i[2], &i[4], &i[5]]),
            group("Sales", &[&i[3]]),
            group("Ops", &[&i[1]]),
            group("Design", &[&i[0], &i[4]]),
            group("Editors", &[&i[5]]),
        ],
    );
    let mut frank = user("frank", "E6", "frank@x.com", true, "Lead");
    frank["roles"] = json!([{"value": "viewer", "primary": true}]);
    let a = bulk_create(
        &app,
        "/Users",
        &[
            user("alice", "E1", "alice@x.com", true, "Intern"),
            user("carol", "E3", "carol@x.com", true, "Engineer"),
            user("dave", "E4", "dave@x.com", true, "Sales"),
            user("erin", "E5", "erin@x.com", false, "Engineer"),
            frank,
            user("contractor", "C1", "c@partner.example", true, "Temp"),
        ],
    );
    bulk_create(&app, "/Groups", &[group("design", &[&a[0], &a[1], &a[5]])]);
}

#[test]
fn apply_converges_and_journals_every_write() {
    let server = Scim2Server::start(&["idp", "app"]);
    seed(&server);
    let app = server.url("app");
    let ws = Workspace::new(&config(&server, ""));
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan", "--out", "plan.json"]));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(ws.path("plan.json")).unwrap()).unwrap();
    let actions: Vec<&str> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    // Dependency order: creates, reactivation, group creates, group changes, updates, deactivations.
    assert_eq!(
        actions,
        [
            "user.create",
            "user.reactivate",
            "group.create",
            "group.create",
            "group.create",
            "group.update",
            "group.members",
            "group.members",
            "user.update",
            "user.update",
            "user.deactivate",
            "user.deactivate"
        ],
        "{plan:#}"
    );

    // Planned again with nothing changed: the same operations, stored once (the later plans
    // share the first's rows); the second plan finds no takeover (the first made that link), the
    // third finds what the second did and shares its findings. `apply` runs the latest plan,
    // which gets its own journal first.
    assert_ok(&ws.cli(&["plan"]));
    assert_ok(&ws.cli(&["plan"]));
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_rows"), 12);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operations"), 36);
    assert_eq!(
        (
            count(&db, "SELECT COUNT(*) FROM finding_rows"),
            count(&db, "SELECT COUNT(*) FROM findings")
        ),
        (14 + 13, 14 + 13 + 13)
    );
    let first_plan = count(&db, "SELECT MIN(plan_id) FROM plans");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM plans WHERE operations_of = (SELECT MIN(plan_id) FROM plans)"
        ),
        2
    );
    drop(db);

    // A dry run sends nothing; without --yes and a terminal, nothing is applied.
    let before = app_users(&app);
    let dry = ws.cli(&["apply", "--dry-run"]);
    assert_ok(&dry);
    assert!(
        stdout(&dry).contains("POST ") && stdout(&dry).contains("\"$idp_user\""),
        "{}",
        stdout(&dry)
    );
    let refused = ws.cli(&["apply"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(app_users(&app), before);

    // The guard: two deactivations among 5 active accounts exceed 1 (and 20%).
    let guarded = ws.cli(&["apply", "--yes", "--max-deactivations", "1"]);
    assert_eq!(guarded.status.code(), Some(2), "{}", stderr(&guarded));
    assert!(stderr(&guarded).contains("deactivates or deletes 2 of 5"), "{}", stderr(&guarded));
    assert_eq!(app_users(&app), before, "the guard refuses the whole apply");
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM operations WHERE status <> 'planned'"), 0);

    let out = ws.cli(&["apply", "--yes", "--max-deactivations", "40%"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("12 done, 0 failed"), "{}", stdout(&out));
    let users = app_users(&app);
    assert_eq!(users["bob"], (true, "Engineer".into(), "".into()));
    assert_eq!(users["alice"].1, "Engineer");
    assert!(!users["carol"].0 && !users["dave"].0 && users["erin"].0);
    assert_eq!(users["frank"].2, "editor");
    assert!(users["contractor"].0, "unmanaged accounts are never changed");
    let groups = app_groups(&app);
    assert_eq!(
        groups["Design"],
        ["alice", "contractor", "erin"],
        "renamed; carol out, erin in, contractor kept"
    );
    assert_eq!(groups["Eng"], ["alice", "bob", "erin", "frank"]);
    assert_eq!(groups["Ops"], ["bob"]);

    let db = ws.db();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'done' AND attempts = 1"),
        12
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE outcome = 'success'"), 12);
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM operations WHERE plan_id = {first_plan} AND status = 'planned'")
        ),
        12,
        "the first plan's journal is its own: nothing of it was applied"
    );
    assert_eq!(
        count(&db, "SELECT operations_of FROM plans WHERE operations_of IS NOT NULL"),
        first_plan,
        "the applied plan has its own rows; the second still shares the first's"
    );
    assert_eq!(
        rows(&db, "SELECT name, COUNT(*) FROM events GROUP BY name ORDER BY name"),
        [
            ["group_create_provision", "3"],
            ["group_update_provision", "3"],
            ["user_create_provision", "1"],
            ["user_deprovision", "2"],
            ["user_update_provision", "3"]
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM links WHERE matched_by = 'created'"), 1);
    drop(db);
    let events = ws.cli(&["events", "--app", "wiki"]);
    assert_ok(&events);
    assert!(
        stdout(&events).contains("user_create_provision") && stdout(&events).contains("bob"),
        "{}",
        stdout(&events)
    );

    // Applying again does nothing; planning before a pull is refused (the app changed).
    assert!(stdout(&ws.cli(&["apply", "--yes"])).contains("nothing to apply"));
    let stale = ws.cli(&["plan"]);
    assert!(stderr(&stale).contains("pull it first"), "{}", stderr(&stale));
    // An old plan file is stale once the app has been pulled again.
    assert_ok(&ws.cli(&["pull"]));
    let old = ws.cli(&["apply", "--yes", "--plan", "plan.json"]);
    assert!(stderr(&old).contains("is stale"), "{}", stderr(&old));

    let again = ws.cli(&["plan", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "converged: {}", stdout(&again));
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["operations"], json!([]));
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user.unmanaged"], "{v:#}");
}

#[test]
fn one_group_reconciles_through_scim_filters_on_both_sides() {
    let server = Scim2Server::start(&["idp", "app"]);
    seed(&server);
    let app = server.url("app");
    let ws = Workspace::new(&config(&server, ""));
    assert_ok(&ws.cli(&["pull"]));
    // The IdP's "Design" is the app's "design": found by displayName on both sides, renamed,
    // carol out and erin in; the rest of the plan (Eng, Ops, users) waits for a full cycle.
    let out = ws.cli(&["reconcile", "--app", "wiki", "--group", "Design"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("group Design in app wiki:"), "{}", stdout(&out));
    let groups = app_groups(&app);
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["Design"], "{}", stdout(&out));
    assert_eq!(groups["Design"], ["alice", "contractor", "erin"]);
    assert!(!app_users(&app)["erin"].0, "erin's reactivation is a user operation");
    assert!(
        count(
            &ws.db(),
            "SELECT COUNT(*) FROM operations WHERE status = 'skipped' AND action = 'group.create'"
        ) >= 2,
        "Eng and Ops are left for the full cycle"
    );
}
