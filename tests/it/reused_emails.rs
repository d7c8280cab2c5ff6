//! Reused emails: a new hire whose address a departed person's disabled account still holds.
//! The generic app reports a `user.conflict` (the old account is neither linked, reactivated
//! nor renamed) unless the app opts in with `reactivate_by_email`; Quip's own way (seed 001:
//! release the email on the old account, then create) is covered in `apply_vendors`.
use scimsync_emulator::Directory;
use serde_json::{json, Value};

use crate::support::*;

fn setup(extra: &str) -> (EmulatorHost, Workspace) {
    let mut dir = Directory::default();
    dir.add_user(
        json!({"userName": "oldtimer", "active": false, "name": {"givenName": "Old", "familyName": "Timer"},
                        "emails": [{"value": "shared@x.com", "type": "work", "primary": true}]}),
    );
    let host = EmulatorHost::start(dir);
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nmanage_groups = false\n{extra}",
        host.emulator.base_url
    ));
    let directory = json!({"users": [{"id": "n1", "username": "newbie", "email": "shared@x.com", "firstname": "New", "lastname": "Hire", "active": true}],
                           "groups": [{"id": "g1", "name": "Eng", "members": ["n1"]}]});
    std::fs::write(ws.path("directory.json"), directory.to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    (host, ws)
}

fn plan(ws: &Workspace) -> Value {
    let out = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_disabled_account_matching_only_by_email_is_not_handed_to_a_new_hire() {
    let (host, ws) = setup("");
    let v = plan(&ws);
    let conflict: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "user.conflict")
        .collect();
    assert_eq!(conflict.len(), 1, "{v:#}");
    assert!(conflict[0]["detail"].as_str().unwrap().contains("departed person"), "{v:#}");
    assert_eq!(v["operations"], json!([]), "nothing is reactivated or renamed");
    assert_ok(&ws.cli(&["apply", "--yes"]));
    let old = host
        .emulator
        .with_directory(|d| d.users.values().find(|u| u["userName"] == "oldtimer").cloned().unwrap());
    assert_eq!(old["active"], false);
    assert_eq!(old["name"]["givenName"], "Old");
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM links"), 0);
}

#[test]
fn an_app_that_opts_in_reactivates_by_email() {
    let (_host, ws) = setup("reactivate_by_email = true\n");
    let v = plan(&ws);
    let actions: Vec<&str> = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.reactivate"), "{actions:?}");
}
