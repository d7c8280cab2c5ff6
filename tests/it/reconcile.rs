//! `scimsync reconcile`: pull → plan → apply in one run, with the guard and failed pulls
//! holding an app back (exit 2), and a second run finding the app in sync.
use serde_json::{json, Value};

use scimsync_emulator::{Directory, Fault};

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

fn spawn(ws: &Workspace, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(args)
        .current_dir(ws.dir.path())
        .env("IT_TOKEN", TOKEN)
        .env("SCIMSYNC_RETRY_BASE_MS", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn sigterm(child: &std::process::Child) {
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn the_loop_fixes_new_drift_each_cycle_quarantines_a_failing_app_and_stops_cleanly() {
    let good = EmulatorHost::start(Directory::default());
    let broken = EmulatorHost::start(Directory::default());
    broken.emulator.add_fault(Fault {
        status: 503,
        ..Fault::default()
    });
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n\n[app.broken]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        good.emulator.base_url, broken.emulator.base_url
    ));
    let mut active = vec![true; 5];
    std::fs::write(ws.path("directory.json"), directory(&active).to_string()).unwrap();
    let mut child = spawn(
        &ws,
        &[
            "reconcile",
            "--every",
            "1s",
            "--quarantine-after",
            "2",
            "--metrics-file",
            "metrics.prom",
        ],
    );
    let accounts = |host: &EmulatorHost| {
        host.emulator
            .with_directory(|d| (d.users.len(), d.users.values().filter(|u| u["active"] == true).count()))
    };
    wait_for("the first cycle", || accounts(&good) == (5, 5));

    // A second instance is refused while the loop holds the lock.
    let second = ws.cli(&["reconcile"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("in use by another scimsync") && stderr(&second).contains(&format!("pid {}", child.id())),
        "{}",
        stderr(&second)
    );

    // Drift injected between cycles is fixed by a later cycle: two leave, one joins.
    active[0] = false;
    active[1] = false;
    active.push(true);
    std::fs::write(ws.path("directory.json"), directory(&active).to_string()).unwrap();
    wait_for("the next cycle to apply the change", || accounts(&good) == (6, 4));

    // The failing app is quarantined; the other goes on.
    wait_for("quarantine", || {
        std::fs::read_to_string(ws.path("metrics.prom")).is_ok_and(|m| m.contains("scimsync_app_quarantined{app=\"broken\"} 1"))
    });
    let metrics = std::fs::read_to_string(ws.path("metrics.prom")).unwrap();
    assert!(metrics.contains("scimsync_app_quarantined{app=\"wiki\"} 0"), "{metrics}");
    assert!(
        metrics.contains("scimsync_last_success_timestamp_seconds{app=\"wiki\"}"),
        "{metrics}"
    );
    let status = ws.cli(&["status"]);
    assert!(stdout(&status).contains("app broken: QUARANTINED"), "{}", stdout(&status));
    active[2] = false;
    std::fs::write(ws.path("directory.json"), directory(&active).to_string()).unwrap();
    wait_for("wiki reconciled while broken is quarantined", || accounts(&good) == (6, 3));

    // SIGTERM during an apply: the operations in flight finish and are journaled, then exit 0.
    good.emulator.set_write_latency(Some(std::time::Duration::from_millis(300)));
    let more: Vec<bool> = (0..20).map(|i| i >= 3).collect();
    std::fs::write(ws.path("directory.json"), directory(&more).to_string()).unwrap();
    wait_for("an operation in flight", || {
        count(&ws.db(), "SELECT COUNT(*) FROM operations WHERE status = 'in_flight'") > 0
    });
    sigterm(&child);
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("stopped cleanly"), "{out}");
    let db = ws.db();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'in_flight'"),
        0,
        "every operation in flight was journaled"
    );
    assert!(
        count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'planned' AND app = 'wiki'") > 0,
        "the rest was left for the next run"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'done'"),
        count(&db, "SELECT COUNT(*) FROM events WHERE outcome = 'success'")
    );
}

#[test]
fn one_user_is_reconciled_on_demand_and_nothing_else() {
    let host = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        host.emulator.base_url
    ));
    let mut doc = directory(&[true; 6]);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    assert_ok(&ws.cli(&["reconcile"]));
    // Two people change in the IdP, and a third leaves.
    doc["users"][3]["lastname"] = json!("Changed");
    doc["users"][4]["lastname"] = json!("AlsoChanged");
    doc["users"][5]["active"] = json!(false);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    let family = |login: &str| {
        host.emulator.with_directory(|d| {
            let u = d.users.values().find(|u| u["userName"] == login).unwrap();
            (
                u["name"]["familyName"].as_str().unwrap_or_default().to_string(),
                u["active"].as_bool().unwrap(),
            )
        })
    };
    let out = ws.cli(&["reconcile", "--app", "wiki", "--user", "USER3@x.com"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("user USER3@x.com in app wiki: 1 finding(s), 1 operation(s): 1 done, 0 failed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(family("user3@x.com"), ("Changed".to_string(), true));
    assert_eq!(family("user4@x.com"), ("L".to_string(), true), "only the user asked for");
    let out = ws.cli(&["reconcile", "--app", "wiki", "--user", "user5@x.com"]);
    assert_ok(&out);
    assert!(!family("user5@x.com").1, "{}", stdout(&out));
    let db = ws.db();
    // The other changes the plans saw were marked skipped, for the full cycle to redo.
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM operations WHERE status = 'skipped' AND action LIKE 'group.%'"
        ) >= 1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM operations WHERE status = 'done' AND plan_id > (SELECT MIN(plan_id) FROM plans) AND subject NOT IN ('user3@x.com', 'user5@x.com')"
        ),
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs WHERE kind = 'refresh'"), 4);
    drop(db);
    // The next full cycle picks up the rest.
    let full = ws.cli(&["reconcile"]);
    assert_ok(&full);
    assert_eq!(family("user4@x.com").0, "AlsoChanged");
    let unknown = ws.cli(&["reconcile", "--app", "wiki", "--user", "nobody@x.com"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no user 'nobody@x.com' in idp.corp"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn one_group_is_reconciled_on_demand_with_its_new_members() {
    let host = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\", \"Ops\"]\n",
        host.emulator.base_url
    ));
    let mut doc = directory(&[true; 6]);
    doc["groups"] = json!([
        {"id": "g1", "name": "Eng", "members": ["u0", "u1", "u2", "u3"]},
        {"id": "g2", "name": "Ops", "members": ["u1", "u4", "u5"]}
    ]);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    assert_ok(&ws.cli(&["reconcile"]));
    assert_ok(&ws.cli(&["pull"]));
    // Eng loses u1 (still in Ops) and gains a new hire; Ops gains u2 and a user changes.
    doc["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "u6", "username": "new@x.com", "email": "new@x.com", "firstname": "N", "lastname": "H", "active": true}));
    doc["users"][0]["lastname"] = json!("Changed");
    doc["groups"] = json!([
        {"id": "g1", "name": "Eng", "members": ["u0", "u2", "u3", "u6"]},
        {"id": "g2", "name": "Ops", "members": ["u1", "u2", "u4", "u5"]}
    ]);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    let members = |group: &str| -> Vec<String> {
        host.emulator.with_directory(|d| {
            let g = d.groups.values().find(|g| g["displayName"] == group).unwrap();
            let mut names: Vec<String> = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let id = m["value"].as_str().unwrap();
                    d.users[id]["userName"].as_str().unwrap().to_string()
                })
                .collect();
            names.sort();
            names
        })
    };
    let out = ws.cli(&["reconcile", "--app", "wiki", "--group", "eng"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("group eng in app wiki: 2 finding(s), 3 operation(s): 3 done, 0 failed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(members("Eng"), ["new@x.com", "user0@x.com", "user2@x.com", "user3@x.com"]);
    assert_eq!(
        members("Ops"),
        ["user1@x.com", "user4@x.com", "user5@x.com"],
        "only the group asked for"
    );
    let family0 = || {
        host.emulator
            .with_directory(|d| d.users.values().find(|u| u["userName"] == "user0@x.com").unwrap()["name"]["familyName"].clone())
    };
    assert_eq!(family0(), json!("L"), "a user's own drift waits for the full cycle");
    let db = ws.db();
    let runs: Vec<String> = db
        .prepare("SELECT source FROM runs WHERE kind = 'refresh' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        runs,
        ["idp.corp", "idp.corp", "idp.corp", "app.wiki"],
        "IdP group, its new member, IdP group again, app group"
    );
    drop(db);
    // The full cycle picks up the rest and is then in sync.
    assert_ok(&ws.cli(&["reconcile"]));
    assert_eq!(members("Ops"), ["user1@x.com", "user2@x.com", "user4@x.com", "user5@x.com"]);
    assert_eq!(family0(), json!("Changed"));
    let again = ws.cli(&["reconcile", "--app", "wiki", "--group", "Eng"]);
    assert_ok(&again);
    assert!(stdout(&again).contains("0 finding(s), 0 operation(s)"), "{}", stdout(&again));
    let unknown = ws.cli(&["reconcile", "--app", "wiki", "--group", "Nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no group 'Nope' in idp.corp"), "{}", stderr(&unknown));
}

#[test]
fn a_group_bound_since_the_last_pull_is_reconciled_and_an_unbound_one_is_an_error() {
    let host = EmulatorHost::start(Directory::default());
    let config = |groups: &str| {
        format!(
            "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [{groups}]\n",
            host.emulator.base_url
        )
    };
    let ws = Workspace::new(&config("\"Eng\""));
    let mut doc = directory(&[true; 4]);
    doc["groups"] = json!([
        {"id": "g1", "name": "Eng", "members": ["u0", "u1"]},
        {"id": "g2", "name": "Ops", "members": ["u1", "u2", "u3"]}
    ]);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    assert_ok(&ws.cli(&["reconcile"]));
    // Ops is bound in the config; no full pull has run since.
    std::fs::write(ws.path("scimsync.toml"), config("\"Eng\", \"Ops\"")).unwrap();
    let out = ws.cli(&["reconcile", "--app", "wiki", "--group", "Ops"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("0 finding(s), 0 operation(s)"), "{}", stdout(&out));
    let ops = host.emulator.with_directory(|d| {
        d.groups
            .values()
            .find(|g| g["displayName"] == "Ops")
            .map(|g| g["members"].as_array().map_or(0, Vec::len))
    });
    assert_eq!(ops, Some(3), "Ops was created with its three members");
    // A group the app is not bound to is not "in sync": it is an error saying why.
    std::fs::write(ws.path("scimsync.toml"), config("\"Eng\"")).unwrap();
    let unbound = ws.cli(&["reconcile", "--app", "wiki", "--group", "Ops"]);
    assert_eq!(unbound.status.code(), Some(1), "{}", stdout(&unbound));
    assert!(stderr(&unbound).contains("is not bound to app 'wiki'"), "{}", stderr(&unbound));
}
