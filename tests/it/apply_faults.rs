//! Apply under failure: killed midway and resumed (nothing created twice, no journal row lost),
//! and a storm of 429s that slows the apply down without failing it.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use scimsync_emulator::{Directory, Fault};

use crate::support::*;

fn directory(n: usize) -> Value {
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"), "firstname": "F", "lastname": format!("L{i}"), "active": true, "employeeIdentifier": format!("E{i}")}))
        .collect();
    let members: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]})
}

fn workspace(host: &EmulatorHost, n: usize) -> Workspace {
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nconcurrency = 2\n",
        host.emulator.base_url
    ));
    std::fs::write(ws.path("directory.json"), directory(n).to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    ws
}

#[test]
fn an_apply_killed_midway_resumes_without_creating_twice() {
    let host = EmulatorHost::start(Directory::default());
    let ws = workspace(&host, 30);
    let planned = count(&ws.db(), "SELECT COUNT(*) FROM operations");
    assert_eq!(planned, 31, "30 creates and the group");
    // Slow answers: each create is done at once but answered 150 ms later.
    host.emulator.set_write_latency(Some(Duration::from_millis(150)));
    let mut child = ws.spawn(&["apply", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let progress = |what: &str| assert!(Instant::now() < deadline, "apply made no progress: {what}");
    while count(&ws.db(), "SELECT COUNT(*) FROM operations WHERE status = 'done'") < 6 {
        progress("6 operations done");
        std::thread::sleep(Duration::from_millis(20));
    }
    // From here on the app makes each create at once and holds its answer past the kill: a
    // create that reaches it now is one the journal cannot see answered. Killing as soon as an
    // operation was claimed raced its request to the app, which under load was sometimes
    // still unsent, and the resume then had nothing to find.
    host.emulator.set_write_latency(Some(Duration::from_secs(60)));
    let made_before = host.emulator.creates().len();
    while host.emulator.creates().len() <= made_before {
        progress("a create reached the app");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operations"), planned, "no journal row lost");
    let interrupted = count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'in_flight'");
    assert!(interrupted > 0);
    drop(db);
    std::thread::sleep(Duration::from_millis(300)); // let the server finish the requests it had
    host.emulator.set_write_latency(None);

    let out = ws.cli(&["apply", "--yes"]);
    assert_ok(&out);
    let creates = host.emulator.creates();
    assert_eq!(creates.len(), 30);
    assert!(creates.values().all(|n| *n == 1), "a create was sent twice: {creates:?}");
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operations WHERE status = 'done'"), planned);
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE message LIKE 'found after an interrupted apply%'"
        ) >= 1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM links WHERE matched_by = 'created'"), 30);
    drop(db);
    host.emulator.with_directory(|d| {
        let g = d.groups.values().next().unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 30, "the group got every member");
    });
    assert_ok(&ws.cli(&["pull"]));
    let again = ws.cli(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn a_429_storm_slows_the_apply_without_failing_it() {
    let host = EmulatorHost::start(Directory::default());
    let ws = workspace(&host, 40);
    // Every other write is refused with 429 and a Retry-After of 0 s.
    host.emulator.add_fault(Fault {
        method: Some(axum::http::Method::POST),
        status: 429,
        retry_after: Some("0".into()),
        rate: Some(0.5),
        ..Fault::default()
    });
    let before = host.emulator.requests();
    let out = ws.cli(&["apply", "--yes", "--concurrency", "4"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("41 done, 0 failed"), "{}", stdout(&out));
    let served = host.emulator.requests() - before;
    assert!(served >= 41 + 20, "the 429s were retried: {served} requests");
    let db = ws.db();
    assert!(
        count(&db, "SELECT COUNT(*) FROM operations WHERE attempts = 1") == 41,
        "attempts count journal writes, not HTTP retries"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE outcome = 'success'"), 41);
}

#[test]
fn dropped_connections_neither_fail_nor_duplicate_the_apply() {
    let host = EmulatorHost::start(Directory::default());
    let ws = workspace(&host, 30);
    // A third of all requests lose their connection before the app handles them.
    host.emulator.add_fault(Fault {
        drop_connection: true,
        rate: Some(0.34),
        ..Fault::default()
    });
    let out = ws.cli(&["apply", "--yes", "--concurrency", "4"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("31 done, 0 failed"), "{}", stdout(&out));
    let creates = host.emulator.creates();
    assert_eq!(creates.len(), 30);
    assert!(creates.values().all(|n| *n == 1), "{creates:?}");
    host.emulator.clear_faults();
    assert_ok(&ws.cli(&["pull"]));
    assert_eq!(ws.cli(&["plan", "--detailed-exitcode"]).status.code(), Some(0));
}
