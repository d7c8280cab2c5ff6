//! Apply against the project's emulators, each behaving like its seed's app: the profile's
//! rules must be what makes the writes succeed (the emulator refuses the others), and one
//! reconcile must leave nothing to do.
use serde_json::{json, Value};

use scimsync_emulator::{Directory, Vendor};

use crate::support::*;

/// An IdP user in the `file` format.
fn person(id: &str, email: &str, first: &str, last: &str, active: bool) -> Value {
    json!({"id": id, "username": email, "email": email, "firstname": first, "lastname": last, "displayName": format!("{first} {last}"),
           "employeeIdentifier": format!("E-{id}"), "active": active, "jobTitle": "Engineer"})
}

fn app_user(email: &str, first: &str, last: &str, active: bool, ext: Option<&str>) -> Value {
    let mut u = json!({"userName": email, "active": active, "name": {"givenName": first, "familyName": last},
                       "displayName": format!("{first} {last}"), "emails": [{"value": email, "type": "work", "primary": true}]});
    if let Some(e) = ext {
        u["externalId"] = json!(e);
    }
    u
}

fn workspace(host: &EmulatorHost, profile: &str, directory: &Value, extra: &str) -> Workspace {
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.{profile}]\nidp = \"corp\"\nprofile = \"{profile}\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\", \"Ops\"]\n{extra}",
        host.emulator.base_url
    ));
    std::fs::write(ws.path("directory.json"), directory.to_string()).unwrap();
    ws
}

/// pull → plan → apply; returns the apply's stdout.
fn reconcile(ws: &Workspace) -> String {
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let out = ws.cli(&["apply", "--yes"]);
    assert_ok(&out);
    stdout(&out)
}

/// pull → plan must find nothing to change.
#[track_caller]
fn assert_converged(ws: &Workspace) {
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["plan", "--format", "json", "--detailed-exitcode"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "not converged: {v:#}\n{}", stderr(&out));
    assert_eq!(v["operations"], json!([]));
}

fn users_by_name(host: &EmulatorHost) -> std::collections::BTreeMap<String, Value> {
    host.emulator.with_directory(|d| {
        d.users
            .values()
            .map(|u| (u["userName"].as_str().unwrap().to_string(), u.clone()))
            .collect()
    })
}

fn users_by_email(host: &EmulatorHost) -> std::collections::BTreeMap<String, Value> {
    host.emulator.with_directory(|d| {
        d.users
            .values()
            .map(|u| (u["emails"][0]["value"].as_str().unwrap().to_string(), u.clone()))
            .collect()
    })
}

fn group_members(host: &EmulatorHost, name: &str) -> Vec<String> {
    host.emulator.with_directory(|d| {
        let g = d
            .groups
            .values()
            .find(|g| g["displayName"] == name)
            .unwrap_or_else(|| panic!("no group {name}"));
        let mut m: Vec<String> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| d.users[m["value"].as_str().unwrap()]["userName"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    })
}

#[test]
fn quip_reuses_a_disabled_accounts_email_and_writes_groups_with_put() {
    let mut dir = Directory::default();
    let old = dir.add_user(app_user("ann@x.com", "Ann", "Old", false, Some("E-old"))); // a former employee
    let bob = dir.add_user(app_user("bob@x.com", "Bob", "B", true, Some("E-b")));
    let cy = dir.add_user(app_user("cy@x.com", "Cy", "C", true, Some("E-c")));
    dir.add_group("Eng", &[bob.clone(), cy.clone()]);
    let host = EmulatorHost::start_as(dir, Vendor::Quip, false);
    let directory = json!({"users": [person("a", "ann@x.com", "Ann", "New", true), person("b", "bob@x.com", "Bob", "Bee", true), person("c", "cy@x.com", "Cy", "C", false)],
                           "groups": [{"id": "g1", "name": "Eng", "members": ["a", "b", "c"]}, {"id": "g2", "name": "Ops", "members": ["b"]}]});
    let ws = workspace(&host, "quip", &directory, "match = [\"externalId\"]\non_unassign = \"delete\"\n");
    reconcile(&ws);
    let users = users_by_email(&host);
    // The disabled account gave its email away; the new Ann was created with it.
    let released = &host.emulator.with_directory(|d| d.users[&old].clone());
    assert!(
        released["emails"][0]["value"].as_str().unwrap().ends_with("@scimsync.invalid"),
        "{released}"
    );
    assert_eq!(released["active"], false);
    assert_eq!(users["ann@x.com"]["name"]["formatted"], "Ann New");
    assert_eq!(users["ann@x.com"]["emails"][0]["type"], "work");
    // bob's family name was patched, with formatted kept "given family"; cy was "deleted" = deactivated.
    assert_eq!(users["bob@x.com"]["name"]["formatted"], "Bob Bee");
    assert_eq!(users["cy@x.com"]["active"], false, "DELETE deactivates in Quip");
    // Groups by PUT with the full list (the emulator refuses PATCH on /Groups).
    let handle = |email: &str| users[email]["userName"].as_str().unwrap().to_string();
    let mut eng = vec![handle("ann@x.com"), handle("bob@x.com")];
    eng.sort();
    assert_eq!(group_members(&host, "Eng"), eng);
    assert_eq!(group_members(&host, "Ops"), [handle("bob@x.com")]);
    assert!(handle("ann@x.com").starts_with("quip-user-"), "Quip sets userName");
    assert_converged(&ws);
    let events = ws.cli(&["events", "--format", "json"]);
    let ev: Value = serde_json::from_slice(&events.stdout).unwrap();
    let names: Vec<&str> = ev.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"user_delete_provision") && names.contains(&"user_create_provision"),
        "{names:?}"
    );
}

#[test]
fn workramp_lists_with_start_index_and_patches_groups() {
    let mut dir = Directory::default();
    let bob = dir.add_user(app_user("bob@x.com", "Bob", "B", true, Some("E-b")));
    dir.add_group("eng", &[bob]);
    let host = EmulatorHost::start_as(dir, Vendor::WorkRamp, false);
    let directory = json!({"users": [person("a", "ann@x.com", "Ann", "A", true), person("b", "bob@x.com", "Bob", "B", true)],
                           "groups": [{"id": "g1", "name": "Eng", "members": ["a", "b"]}, {"id": "g2", "name": "Ops", "members": ["a"]}]});
    let ws = workspace(&host, "workramp", &directory, "");
    let out = reconcile(&ws);
    assert!(out.contains("0 failed"), "{out}");
    assert_eq!(group_members(&host, "Eng"), ["ann@x.com", "bob@x.com"], "renamed and patched");
    assert_eq!(group_members(&host, "Ops"), ["ann@x.com"]);
    assert_converged(&ws);
}

#[test]
fn whimsical_gets_lower_case_emails_keeps_names_and_never_creates_twice() {
    let mut dir = Directory::default();
    dir.add_user(app_user("bob@x.com", "Bob", "B", true, None));
    let host = EmulatorHost::start_as(dir, Vendor::Whimsical, true);
    let mut directory = json!({"users": [person("a", "Ann.Upper@X.com", "Ann", "A", true), person("b", "bob@x.com", "Bob", "B", true)],
                               "groups": [{"id": "g1", "name": "Eng", "members": ["a", "b"]}, {"id": "g2", "name": "Ops", "members": []}]});
    let ws = workspace(&host, "whimsical", &directory, "match = [\"email\"]\n");
    reconcile(&ws);
    let users = users_by_name(&host);
    assert!(users.contains_key("ann.upper@x.com"), "userName = lower-cased email: {users:?}");
    // Ann is pending until she signs in: not listed, yet not created again.
    assert_ok(&ws.cli(&["pull"]));
    let plan = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&plan);
    let v: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(
        !v["findings"].as_array().unwrap().iter().any(|f| f["kind"] == "user.missing"),
        "a pending account is not missing: {v:#}"
    );
    assert_ok(&ws.cli(&["apply", "--yes"]));
    assert_eq!(host.emulator.creates().get("ann.upper@x.com"), Some(&1));
    host.emulator.login("ann.upper@x.com");
    // A name change in the IdP is not sent after creation.
    directory["users"][1]["firstname"] = json!("Robert");
    std::fs::write(ws.path("directory.json"), directory.to_string()).unwrap();
    assert_converged(&ws);
    assert_eq!(users_by_name(&host)["bob@x.com"]["name"]["givenName"], "Bob");
    // The roles Whimsical cannot set over SCIM are refused in the config.
    std::fs::write(
        ws.path("scimsync.toml"),
        std::fs::read_to_string(ws.path("scimsync.toml")).unwrap() + "roles = { admin = \"Admins\" }\n",
    )
    .unwrap();
    let bad = ws.cli(&["plan"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("[app.whimsical] key 'roles'") && stderr(&bad).contains("admin"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn blogin_sends_title_timezone_and_formatted() {
    let host = EmulatorHost::start_as(Directory::default(), Vendor::BlogIn, false);
    let mut a = person("a", "ann@x.com", "Ann", "A", true);
    a["timezone"] = json!("Europe/Paris");
    a["phone"] = json!("+33 1 23");
    // Both bound groups exist (a bound name the IdP lacks would hold the plan back).
    let directory =
        json!({"users": [a], "groups": [{"id": "g1", "name": "Eng", "members": ["a"]}, {"id": "g2", "name": "Ops", "members": []}]});
    let ws = workspace(&host, "blogin", &directory, "");
    reconcile(&ws);
    let ann = &users_by_name(&host)["ann@x.com"];
    assert_eq!(ann["title"], "Engineer");
    assert_eq!(ann["timezone"], "Europe/Paris");
    assert_eq!(ann["name"]["formatted"], "Ann A");
    assert_converged(&ws);
}
