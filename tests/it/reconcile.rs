//! `scimsync reconcile`: pull → plan → apply in one run, with the guard and failed pulls
//! holding an app back (exit 2), and a second run finding the app in sync.
use serde_json::{json, Value};

use scimsync::emulator::{Directory, Fault};

use crate::support::*;

fn directory(active: &[bool]) -> Value {
    let users: Vec<Value> = active
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"), "firstname": "F", "lastname": "L", "active": a, "employeeIdentifier": format!("E{i}")}))
        .collect();
    let members: Vec<String> = (0..active.len()).map(|i| format!("u{i}")).collect();
    json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]})
}

#[test]
fn reconcile_applies_then_is_in_sync_and_respects_the_guard() {
    let host = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nmax_deactivations = 1\n",
        host.emulator.base_url
    ));
    std::fs::write(ws.path("directory.json"), directory(&[true; 10]).to_string()).unwrap();
    let first = ws.cli(&["reconcile"]);
    assert_ok(&first);
    assert!(
        stdout(&first).contains("app wiki: 11 findings, 11 operations: 11 done, 0 failed"),
        "{}",
        stdout(&first)
    );
    let second = ws.cli(&["reconcile"]);
    assert_ok(&second);
    assert!(stdout(&second).contains("app wiki: in sync"), "{}", stdout(&second));

    // Three leave: more deactivations than max_deactivations = 1 allows.
    let mut active = [true; 10];
    active[..3].fill(false);
    std::fs::write(ws.path("directory.json"), directory(&active).to_string()).unwrap();
    let guarded = ws.cli(&["reconcile"]);
    assert_eq!(guarded.status.code(), Some(2), "{}", stdout(&guarded));
    assert!(stdout(&guarded).contains("app wiki: blocked"), "{}", stdout(&guarded));
    assert_eq!(
        host.emulator
            .with_directory(|d| d.users.values().filter(|u| u["active"] == false).count()),
        0
    );
    let forced = ws.cli(&["reconcile", "--force"]);
    assert_ok(&forced);
    assert_eq!(
        host.emulator
            .with_directory(|d| d.users.values().filter(|u| u["active"] == false).count()),
        3
    );

    // A failing app pull: nothing is applied from the old snapshot.
    active[3] = false;
    std::fs::write(ws.path("directory.json"), directory(&active).to_string()).unwrap();
    host.emulator.add_fault(Fault {
        path_suffix: Some("/Users".into()),
        status: 500,
        ..Fault::default()
    });
    let failing = ws.cli(&["reconcile", "--force"]);
    assert_eq!(failing.status.code(), Some(2), "{}", stdout(&failing));
    assert!(stdout(&failing).contains("this cycle's pull failed"), "{}", stdout(&failing));
    assert_eq!(
        host.emulator
            .with_directory(|d| d.users.values().filter(|u| u["active"] == false).count()),
        3
    );
    host.emulator.clear_faults();
    assert_ok(&ws.cli(&["reconcile", "--force"]));
    assert_eq!(
        host.emulator
            .with_directory(|d| d.users.values().filter(|u| u["active"] == false).count()),
        4
    );
}
