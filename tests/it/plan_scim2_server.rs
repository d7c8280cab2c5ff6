//! End to end: scim2-server holds an IdP tenant and an app tenant seeded with drift of every
//! finding kind; `pull` then `plan --format json` must list exactly the expected findings.
use serde_json::{json, Value};

use crate::support::*;

fn user(name: &str, ext: Option<&str>, email: &str, active: bool, title: &str) -> Value {
    let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": active, "title": title,
                       "emails": [{"value": email, "type": "work", "primary": true}]});
    if let Some(e) = ext {
        u["externalId"] = json!(e);
    }
    u
}

fn group(name: &str, members: &[&str]) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()})
}

fn config(server: &Scim2Server, groups: &str) -> String {
    format!(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [{groups}]\nroles = {{ editor = \"Editors\", viewer = \"Viewers\" }}\n",
        server.url("idp"),
        server.url("app")
    )
}

/// (kind, subject, attribute, old_value, new_value, detail) of every finding, sorted.
fn findings(out: &std::process::Output) -> Vec<[String; 6]> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", stdout(out)));
    let s = |f: &Value, k: &str| f[k].as_str().unwrap_or("∅").to_string();
    let mut rows: Vec<[String; 6]> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            [
                s(f, "kind"),
                s(f, "subject"),
                s(f, "attribute"),
                s(f, "old_value"),
                s(f, "new_value"),
                s(f, "detail"),
            ]
        })
        .collect();
    rows.sort();
    rows
}

fn row(kind: &str, subject: &str, attribute: &str, old: &str, new: &str, detail: &str) -> [String; 6] {
    [kind, subject, attribute, old, new, detail].map(str::to_string)
}

#[test]
fn plan_finds_exactly_the_seeded_drift() {
    let server = Scim2Server::start(&["idp", "app"]);
    let idp = server.url("idp");
    let app = server.url("app");
    let i = bulk_create(
        &idp,
        "/Users",
        &[
            user("alice", Some("E1"), "alice@x.com", true, "Engineer"), // linked by externalId, title drift
            user("bob", Some("E2"), "bob@x.com", true, "Engineer"),     // missing in the app
            user("carol", Some("E3"), "carol@x.com", false, "Engineer"), // inactive in the IdP, active in the app
            user("dave", Some("E4"), "dave@x.com", true, "Sales"),      // only in an unbound group
            user("erin", Some("E5"), "erin@x.com", true, "Engineer"),   // inactive in the app
            user("frank", Some("E6"), "frank@x.com", true, "Lead"),     // editor in the IdP, viewer in the app
            user("gina", None, "gina@x.com", true, "Engineer"),         // two app accounts share her email
        ],
    );
    let (alice, bob, carol, dave, erin, frank, gina) = (&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6]);
    bulk_create(
        &idp,
        "/Groups",
        &[
            group("Eng", &[alice, bob, carol, erin, frank, gina]),
            group("Sales", &[dave]),
            group("Editors", &[frank]),
            group("Ops", &[bob]),
            group("Design", &[alice, erin]),
            group("Platform", &[frank]),
        ],
    );
    let mut frank_app = user("frank", Some("E6"), "frank@x.com", true, "Lead");
    frank_app["roles"] = json!([{"value": "viewer", "primary": true}]);
    let a = bulk_create(
        &app,
        "/Users",
        &[
            user("alice", Some("E1"), "alice@x.com", true, "Intern"),
            user("carol", Some("E3"), "carol@x.com", true, "Engineer"),
            user("dave", Some("E4"), "dave@x.com", true, "Sales"),
            user("erin", Some("E5"), "erin@x.com", false, "Engineer"),
            frank_app,
            user("g1", None, "gina@x.com", true, "Engineer"),
            user("g2", None, "GINA@x.com", true, "Engineer"),
            user("contractor", None, "c@partner.example", true, "Temp"),
        ],
    );
    let (a_alice, a_carol) = (&a[0], &a[1]);
    bulk_create(&app, "/Groups", &[group("design", &[a_alice, a_carol]), group("Platform", &[])]);

    let ws = Workspace::new(&config(&server, r#""Eng", "Ops", "Design", "Platform""#));
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["plan", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "changes are pending: {}", stderr(&out));
    let expected = vec![
        row("group.members", "Design", "add", "∅", erin, "erin"),
        row("group.members", "Design", "remove", a_carol, "∅", "carol"),
        row("group.members", "Platform", "add", "∅", frank, "frank"),
        row("group.missing", "Eng", "displayName", "∅", "Eng", "∅"),
        row("group.missing", "Ops", "displayName", "∅", "Ops", "∅"),
        row("group.renamed", "Design", "displayName", "design", "Design", "∅"),
        row("group.takeover", "Platform", "∅", "∅", "∅", "linked by name"),
        row("group.takeover", "design", "∅", "∅", "∅", "linked by name"),
        row(
            "user.conflict",
            "gina",
            "email",
            "g1",
            "∅",
            "several accounts match, or one account matches several IdP users",
        ),
        row(
            "user.conflict",
            "gina",
            "email",
            "g2",
            "∅",
            "several accounts match, or one account matches several IdP users",
        ),
        row("user.drift", "alice", "title", "Intern", "Engineer", "∅"),
        row("user.missing", "bob", "∅", "∅", "∅", "∅"),
        row("user.orphaned", "carol", "active", "true", "false", "inactive in the IdP"),
        row("user.orphaned", "dave", "active", "true", "false", "in no bound group"),
        row("user.reactivate", "erin", "active", "false", "true", "∅"),
        row("user.role_mismatch", "frank", "role", "viewer", "editor", "∅"),
        row("user.unmanaged", "contractor", "∅", "∅", "∅", "active"),
    ];
    assert_eq!(findings(&out), expected);
    // The table format groups by kind and cuts long lists at --limit.
    let table = ws.cli(&["plan", "--limit", "1"]);
    assert_ok(&table);
    let text = stdout(&table);
    assert!(text.contains("  user.conflict (2)") && text.contains("    … and 1 more"), "{text}");
    assert!(
        text.contains("~ alice  title: Intern → Engineer") && text.contains("- carol  (inactive in the IdP)"),
        "{text}"
    );

    let db = ws.db();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM findings WHERE run_id = (SELECT MIN(run_id) FROM findings)"
        ),
        expected.len() as i64
    );
    assert_eq!(
        rows(&db, "SELECT matched_by, COUNT(*) FROM links GROUP BY matched_by ORDER BY 1"),
        vec![vec!["externalId".to_string(), "5".into()]]
    );
    drop(db);

    // Phase 2: the IdP renames Design and deletes Platform (unbound from the app first).
    let design = rows(
        &ws.db(),
        "SELECT id FROM groups WHERE source = 'idp.corp' AND display_name = 'Design'",
    )[0][0]
        .clone();
    let platform = rows(
        &ws.db(),
        "SELECT id FROM groups WHERE source = 'idp.corp' AND display_name = 'Platform'",
    )[0][0]
        .clone();
    let (s, _) = http(
        "PATCH",
        &format!("{idp}/Groups/{design}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Design Team"}]}),
        ),
    );
    assert!(s == 200 || s == 204);
    assert_eq!(http("DELETE", &format!("{idp}/Groups/{platform}"), None).0, 204);
    std::fs::write(ws.path("scimsync.toml"), config(&server, r#""Eng", "Ops", "Design Team""#)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&out);
    let got = findings(&out);
    assert!(
        got.contains(&row("group.renamed", "Design Team", "displayName", "design", "Design Team", "∅")),
        "{got:#?}"
    );
    assert!(
        got.contains(&row("group.orphaned", "Platform", "∅", "∅", "∅", "deleted in the IdP")),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|r| r[0] == "group.takeover"),
        "links from the first plan are kept: {got:#?}"
    );
}
