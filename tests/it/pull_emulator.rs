//! Pull failures against the project's emulator: a page that keeps failing leaves the previous
//! snapshot untouched and the run marked failed; transient 429/503 are retried. And a plan over
//! such a pull whose results the store refuses is marked failed too; and the links of accounts
//! and groups a later pull no longer shows are dropped.
use std::time::Duration;

use axum::http::Method;
use scimsync_emulator::{Directory, Fault};
use serde_json::json;

use crate::support::*;

fn directory(users: usize) -> Directory {
    let mut d = Directory::default();
    let ids: Vec<String> = (0..users)
        .map(|i| d.add_user(json!({"userName": format!("u{i}"), "active": true, "title": "t"})))
        .collect();
    d.add_group("Staff", &ids[..ids.len().min(10)]);
    d
}

fn config(idp: &str, app: &str) -> String {
    format!("[idp.corp]\nkind = \"scim\"\nbase_url = \"{idp}\"\ntoken_env = \"IT_TOKEN\"\npage_size = 1000\nconcurrency = 2\n\n[app.tool]\nidp = \"corp\"\nbase_url = \"{app}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Staff\"]\n")
}

/// An IdP and an app emulator with `idp_users` and `app_users`, and a workspace that has
/// pulled both (the emulators are returned to be changed and kept alive).
fn pulled(idp_users: usize, app_users: usize) -> (EmulatorHost, EmulatorHost, Workspace) {
    let idp = EmulatorHost::start(directory(idp_users));
    let app = EmulatorHost::start(directory(app_users));
    let ws = Workspace::new(&config(&idp.emulator.base_url, &app.emulator.base_url));
    assert_ok(&ws.cli(&["pull"]));
    (idp, app, ws)
}

fn snapshot_rows(ws: &Workspace) -> Vec<Vec<String>> {
    rows(
        &ws.db(),
        "SELECT source, id, user_name, title, active, raw, valid_from FROM users ORDER BY uid",
    )
}

#[test]
fn a_failing_page_keeps_the_previous_snapshot_and_marks_the_run_failed() {
    let (idp, _app, ws) = pulled(2500, 3);
    let before = snapshot_rows(&ws);
    assert_eq!(before.len(), 2503);

    // The directory changes, and page 3 of /Users (startIndex 2001) now always fails.
    idp.emulator.with_directory(|d| {
        let first = d.users.keys().next().unwrap().clone();
        d.users.get_mut(&first).unwrap()["title"] = json!("changed");
    });
    idp.emulator.add_fault(Fault {
        path_suffix: Some("/Users".into()),
        method: Some(Method::GET),
        start_index: Some(2001),
        status: 502,
        ..Default::default()
    });
    let out = ws.cli(&["pull"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("idp.corp") && err.contains("startIndex=2001") && err.contains("(page 3)") && err.contains("HTTP 502"),
        "{err}"
    );

    assert_eq!(snapshot_rows(&ws), before, "the previous snapshot must be untouched");
    let db = ws.db();
    let last = rows(
        &db,
        "SELECT status, error IS NOT NULL FROM runs WHERE source = 'idp.corp' ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(last, vec![vec!["failed".to_string(), "1".into()]]);
    assert_eq!(
        count(&db, "SELECT last_pull_run FROM sources WHERE name = 'idp.corp'"),
        1,
        "last successful pull is still the first"
    );
    assert_eq!(
        rows(&db, "SELECT status FROM runs WHERE source = 'app.tool' ORDER BY id DESC LIMIT 1"),
        vec![vec!["ok".to_string()]],
        "other sources still pull"
    );
    drop(db);

    let status = ws.cli(&["status"]);
    assert_ok(&status);
    assert!(stdout(&status).contains("FAILED"), "{}", stdout(&status));

    // Once the fault is gone the change arrives.
    idp.emulator.clear_faults();
    assert_ok(&ws.cli(&["pull"]));
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM users WHERE title = 'changed'"), 1);
}

#[test]
fn transient_429_and_503_are_retried() {
    let idp = EmulatorHost::start(directory(1500));
    let app = EmulatorHost::start(directory(1));
    idp.emulator.add_fault(Fault {
        path_suffix: Some("/Users".into()),
        start_index: Some(1001),
        status: 429,
        retry_after: Some("1".into()),
        times: Some(1),
        ..Default::default()
    });
    idp.emulator.add_fault(Fault {
        path_suffix: Some("/Groups".into()),
        status: 503,
        times: Some(2),
        ..Default::default()
    });
    idp.emulator.add_fault(Fault {
        path_suffix: Some("/Users".into()),
        start_index: Some(1),
        status: 0,
        delay: Some(Duration::from_millis(200)),
        times: Some(1),
        ..Default::default()
    });
    let ws = Workspace::new(&config(&idp.emulator.base_url, &app.emulator.base_url));
    let t = std::time::Instant::now();
    assert_ok(&ws.cli(&["pull"]));
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be waited for");
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM users WHERE source = 'idp.corp'"), 1500);
    // SPC + 2 user pages + 1 retried + 1 groups page + 2 retried.
    assert_eq!(idp.emulator.requests(), 7);
}

#[test]
fn the_token_never_reaches_output_or_store() {
    let idp = EmulatorHost::start(directory(5));
    let app = EmulatorHost::start(directory(1));
    app.emulator.add_fault(Fault {
        status: 500,
        ..Default::default()
    });
    let ws = Workspace::new(&config(&idp.emulator.base_url, &app.emulator.base_url));
    let out = ws.cli(&["-vvv", "pull"]);
    assert_eq!(out.status.code(), Some(1));
    let store = std::fs::read(ws.store()).unwrap();
    let wal = std::fs::read(ws.path("scimsync.db-wal")).unwrap_or_default();
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("store", &store), ("wal", &wal)] {
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "token found in {what}");
    }
    assert!(stderr(&out).contains("HTTP 500"), "{}", stderr(&out));
}

/// When the sources' last pulls say their snapshots held at once would pass the memory limit,
/// each source is fetched and written before the next is fetched; the store ends the same. A
/// plan of snapshots that size is warned of when it would not fit (it fits in 1 GiB at 1M a side).
#[test]
fn sources_too_large_to_hold_at_once_are_pulled_one_at_a_time() {
    let idp = EmulatorHost::start(directory(300));
    let app = EmulatorHost::start(directory(20));
    let ws = Workspace::new(&config(&idp.emulator.base_url, &app.emulator.base_url));
    let first = ws.cli(&["pull"]);
    assert_ok(&first);
    assert!(!stderr(&first).contains("one source at a time"), "{}", stderr(&first));
    let before = snapshot_rows(&ws);

    // The last pulls now say 1M users and 5M memberships a side: ≈ 2 GiB held at once.
    let conn = rusqlite::Connection::open(ws.store()).unwrap();
    conn.execute(
        "UPDATE runs SET counts = '{\"users\":1000000,\"groups\":100000,\"memberships\":5000000}' WHERE kind = 'pull'",
        [],
    )
    .unwrap();
    drop(conn);
    // A plan of that size fits in 1 GiB (it peaks near 0.95 GiB): not warned of there; under
    // 768 MiB it is warned of before it starts (in too small a container it is killed).
    let out = ws.cli(&["--memory-limit", "1GiB", "plan"]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("peaked near"), "{}", stderr(&out));
    let out = ws.cli(&["--memory-limit", "768MiB", "plan"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("hold 2000000 users and 10000000 memberships")
            && stderr(&out).contains("over the 768 MiB memory limit (--memory-limit / memory_limit)"),
        "{}",
        stderr(&out)
    );
    let out = ws.cli(&["-v", "--memory-limit", "1GiB", "pull"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("pulling one source at a time") && stderr(&out).contains("over the memory limit of 1024 MiB"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot_rows(&ws), before, "nothing changed, nothing written differently");
    assert_eq!(
        count(&ws.db(), "SELECT count(*) FROM runs WHERE kind = 'pull' AND status = 'ok'"),
        4
    );

    // The pulls just written say 300 and 20 users: fetched at once again, planned unwarned.
    let out = ws.cli(&["-v", "--memory-limit", "1GiB", "pull"]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("one source at a time"), "{}", stderr(&out));
    let out = ws.cli(&["--memory-limit", "1GiB", "plan"]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("peaked near"), "{}", stderr(&out));
}

/// A plan whose links and findings the store refuses (here a trigger; a full disk or a damaged
/// page in the field) marks its run failed with the store's error, rather than leaving it
/// `running` until the next writer calls it abandoned, and keeps none of its links.
#[test]
fn a_plan_whose_findings_the_store_refuses_marks_its_run_failed() {
    let (_idp, _app, ws) = pulled(5, 1);
    rusqlite::Connection::open(ws.store())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_findings BEFORE INSERT ON finding_rows BEGIN SELECT RAISE(ABORT, 'findings refused by the test'); END;",
        )
        .unwrap();
    let out = ws.cli(&["plan"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("findings refused by the test"), "{}", stderr(&out));
    assert_eq!(
        rows(
            &ws.db(),
            "SELECT status, error LIKE '%findings refused by the test%' FROM runs WHERE kind = 'plan'"
        ),
        vec![vec!["failed".to_string(), "1".to_string()]]
    );
    assert_eq!(count(&ws.db(), "SELECT count(*) FROM links"), 0, "the plan's link is rolled back");
}

/// A link whose app account (or app group) a later pull no longer shows is dropped by the next
/// plan: its IdP user is then missing again, and the other links stay.
#[test]
fn links_whose_app_side_is_gone_are_dropped_by_the_next_plan() {
    let (_idp, app, ws) = pulled(5, 3);
    assert_ok(&ws.cli(&["plan"]));
    let linked = |ws: &Workspace| {
        rows(
            &ws.db(),
            "SELECT i.user_name FROM links l JOIN users i ON i.source = 'idp.corp' AND i.id = l.idp_user_id ORDER BY 1",
        )
    };
    let names = |v: &[&str]| v.iter().map(|n| vec![n.to_string()]).collect::<Vec<_>>();
    assert_eq!(linked(&ws), names(&["u0", "u1", "u2"]));
    assert_eq!(count(&ws.db(), "SELECT count(*) FROM group_links"), 1);

    app.emulator.with_directory(|d| {
        let gone = d.user_by_name("u1").unwrap().to_string();
        d.remove("Users", &gone);
        let group = d.groups.keys().next().unwrap().clone();
        d.remove("Groups", &group);
    });
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&out);
    assert_eq!(linked(&ws), names(&["u0", "u2"]));
    assert_eq!(count(&ws.db(), "SELECT count(*) FROM group_links"), 0);
    assert_eq!(
        rows(
            &ws.db(),
            "SELECT counts ->> 'dropped_links' FROM runs WHERE kind = 'plan' ORDER BY id DESC LIMIT 1"
        ),
        vec![vec!["2".to_string()]]
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing: Vec<&str> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "user.missing")
        .filter_map(|f| f["subject"].as_str())
        .collect();
    assert!(missing.contains(&"u1"), "{missing:?}");
}
