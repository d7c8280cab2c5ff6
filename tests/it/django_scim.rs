//! A second independent SCIM service provider: django-scim2 (PyPI), in its default mode and
//! configured without PATCH. In its default mode the whole loop — pull, plan, apply, pull, plan
//! — converges: accounts created, names corrected, a leaver deactivated, a group created and
//! given its members (django-scim2 takes members by PATCH only). Without PATCH, accounts are
//! written by PUT and nothing is ever PATCHed (its request log says so); its groups' members
//! cannot be written at all, and the operation fails saying so.
use serde_json::{json, Value};

use crate::support::*;

fn user(name: &str, family: &str, active: bool) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": format!("E-{name}"), "active": active,
           "name": {"givenName": name, "familyName": family}, "emails": [{"value": format!("{name}@x.com"), "type": "work", "primary": true}]})
}

fn by_name(base: &str) -> std::collections::BTreeMap<String, Value> {
    let (status, v) = http("GET", &format!("{base}/Users?startIndex=1&count=50"), None);
    assert_eq!(status, 200, "{v}");
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["userName"].as_str().unwrap().to_string(), u.clone()))
        .collect()
}

fn converges(without_patch: bool) {
    let server = DjangoScim::start(without_patch);
    let app = &server.base_url;
    // In the app already: ann (an old family name) and cat (still active, she left).
    for u in [user("ann", "Old", true), user("cat", "Doe", true)] {
        let (status, v) = http("POST", &format!("{app}/Users"), Some(&u));
        assert_eq!(status, 201, "{v}");
    }
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.django]\nidp = \"corp\"\nbase_url = \"{app}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\npage_size = 50\n"
    ));
    let person = |id: &str, name: &str, family: &str, active: bool| json!({"id": id, "username": name, "email": format!("{name}@x.com"), "firstname": name, "lastname": family, "active": active, "employeeIdentifier": format!("E-{name}")});
    let mut directory = json!({"users": [person("1", "ann", "New", true), person("2", "ben", "Doe", true), person("3", "cat", "Doe", false)],
                               "groups": [{"id": "g1", "name": "Eng", "members": ["1", "2", "3"]}]});
    std::fs::write(ws.path("directory.json"), directory.to_string()).unwrap();
    let first = ws.cli(&["reconcile"]);
    assert_ok(&first);
    let users = by_name(app);
    assert_eq!(users["ann"]["name"]["familyName"], "New");
    assert_eq!(users["ben"]["active"], true, "ben was created");
    assert_eq!(users["cat"]["active"], false, "cat was deactivated");
    // A new hire joins Eng: the group gets a member.
    directory["users"].as_array_mut().unwrap().push(person("4", "dan", "Doe", true));
    directory["groups"][0]["members"].as_array_mut().unwrap().push(json!("4"));
    std::fs::write(ws.path("directory.json"), directory.to_string()).unwrap();
    let second = ws.cli(&["reconcile"]);
    if without_patch {
        // django-scim2 ignores `members` on POST and PUT (its Group adapter reads displayName
        // only; members change by PATCH alone): without PATCH its groups' members cannot be
        // managed. The PUT's answer shows it, and the operation fails saying so, instead of
        // being "done" and sent again every cycle.
        assert_eq!(second.status.code(), Some(1), "{}", stdout(&second));
        let errors = ws.cli(&["sql", "SELECT error FROM operations WHERE status = 'failed'", "--format", "csv"]);
        assert!(stdout(&errors).contains("ignores members on PUT"), "{}", stdout(&errors));
        assert!(by_name(app)["dan"]["active"] == true, "dan was created");
        assert!(server.requests().iter().all(|r| !r.starts_with("PATCH")), "{:?}", server.requests());
        assert!(
            server.requests().iter().any(|r| r.starts_with("PUT /scim/v2/Users/")),
            "{:?}",
            server.requests()
        );
        return;
    }
    assert_ok(&second);
    let (_, groups) = http("GET", &format!("{app}/Groups?startIndex=1&count=50"), None);
    let eng = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == "Eng")
        .cloned()
        .unwrap();
    let ids: std::collections::BTreeSet<String> = eng["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    let users = by_name(app);
    let want: std::collections::BTreeSet<String> = ["ann", "ben", "dan"]
        .iter()
        .map(|n| users[*n]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, want);
    assert_ok(&ws.cli(&["pull"]));
    let again = ws.cli(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "converged: {}", stdout(&again));
    assert!(server.requests().iter().any(|r| r.starts_with("PATCH")), "{:?}", server.requests());
}

#[test]
fn converges_on_django_scim2() {
    converges(false);
}

#[test]
fn converges_on_django_scim2_without_patch() {
    converges(true);
}
