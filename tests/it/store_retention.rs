//! `scimsync prune` and `reconcile`'s prune: retention removes old plans, history, events and
//! runs, keeps what is still needed (the latest plan, a plan `apply` could still run, a plan
//! with an operation in flight, links, the current state), answers `--at` from the horizon on
//! exactly as before, refuses instants before it, and leaves a store `check` passes.
use std::time::Duration;

use scimsync_emulator::Directory;

use crate::support::*;

const RETENTION: &str = "[retention]\nplans = \"1s\"\nkeep_plans = 1\nhistory = \"1s\"\nevents = \"1s\"\nruns = \"1s\"\n\n";

fn directory(ws: &Workspace, users: usize, inactive: &[usize]) {
    let list: Vec<serde_json::Value> = (0..users)
        .map(|i| {
            serde_json::json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"),
                "active": !inactive.contains(&i)})
        })
        .collect();
    let members: Vec<String> = (0..users).map(|i| format!("u{i}")).collect();
    let doc = serde_json::json!({"users": list, "groups": [{"id": "g1", "name": "Staff", "members": members}]});
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
}

fn workspace(app: &EmulatorHost) -> Workspace {
    let ws = Workspace::new(&format!(
        "{RETENTION}[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n\
         [app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Staff\"]\n",
        app.emulator.base_url
    ));
    directory(&ws, 20, &[]);
    ws
}

fn plan_ids(ws: &Workspace) -> Vec<i64> {
    rows(&ws.db(), "SELECT plan_id FROM plans ORDER BY plan_id")
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

fn latest_plan(ws: &Workspace) -> i64 {
    *plan_ids(ws).last().unwrap()
}

fn csv(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.cli(args);
    assert_ok(&out);
    stdout(&out)
}

#[test]
fn prune_keeps_what_is_needed_and_answers_from_its_horizon_exactly_as_before() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app);
    for args in [&["pull"][..], &["plan"], &["apply", "--yes"]] {
        assert_ok(&ws.cli(args));
    }
    let applied = latest_plan(&ws);
    let before_changes = scimsync::time::now();
    // Two users leave: a plan that deactivates them, whose first operation a crashed apply left
    // in flight.
    directory(&ws, 20, &[3, 4]);
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let in_flight = latest_plan(&ws);
    rusqlite::Connection::open(ws.store())
        .unwrap()
        .execute("UPDATE operations SET status = 'in_flight', attempts = 1 WHERE plan_id = ?1 AND seq = (SELECT min(seq) FROM operations WHERE plan_id = ?1)", [in_flight])
        .unwrap();
    // A pull and a plan that a later pull makes stale, then the current pull with two plans.
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let stale = latest_plan(&ws);
    directory(&ws, 21, &[3, 4]);
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let current = latest_plan(&ws);
    assert_ok(&ws.cli(&["plan"]));
    let latest = latest_plan(&ws);
    assert_eq!(plan_ids(&ws), vec![applied, in_flight, stale, current, latest]);

    let links = count(&ws.db(), "SELECT count(*) FROM links");
    let question = "SELECT source, id, active, user_name FROM users ORDER BY source, id";
    let membership_question = "SELECT source, group_id, user_id FROM memberships ORDER BY 1, 2, 3";
    std::thread::sleep(Duration::from_millis(1300));
    let inside = scimsync::time::now();
    let users_then = csv(&ws, &["sql", "--format", "csv", "--at", &inside, question]);
    let members_then = csv(&ws, &["sql", "--format", "csv", "--at", &inside, membership_question]);
    assert!(count(&ws.db(), "SELECT count(*) FROM user_versions") > 0);
    assert!(count(&ws.db(), "SELECT count(*) FROM events") > 0);

    // A dry run says what would go and removes nothing.
    let dry = csv(&ws, &["prune", "--dry-run"]);
    assert!(dry.contains("would remove") && dry.contains("plans 2"), "{dry}");
    assert_eq!(plan_ids(&ws).len(), 5, "a dry run removes nothing");
    // Leftovers in the columnar directory: a copy of a source the store does not have, and a
    // temporary file of a crashed pull.
    let columns = ws.path("scimsync.db.columns");
    std::fs::copy(columns.join("idp.corp.users.arrow"), columns.join("idp.gone.users.arrow")).unwrap();
    std::fs::write(columns.join("idp.corp.users.arrow.tmp"), b"half").unwrap();

    let out = csv(&ws, &["prune"]);
    assert!(out.contains("removed") && out.contains("history horizon: 20"), "{out}");
    assert!(
        out.contains(&format!("kept plan #{in_flight} past its retention: an operation is in flight")),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept plan #{current} past its retention: apply could still run it")),
        "{out}"
    );
    assert_eq!(plan_ids(&ws), vec![in_flight, current, latest]);
    let db = ws.db();
    for plan in [applied, stale] {
        assert_eq!(count(&db, &format!("SELECT count(*) FROM findings WHERE run_id = {plan}")), 0);
        assert_eq!(count(&db, &format!("SELECT count(*) FROM operations WHERE plan_id = {plan}")), 0);
        assert_eq!(count(&db, &format!("SELECT count(*) FROM runs WHERE id = {plan}")), 0);
    }
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM operations WHERE plan_id = {in_flight} AND status = 'in_flight'")
        ),
        1
    );
    assert!(count(&db, &format!("SELECT count(*) FROM operations WHERE plan_id = {latest}")) > 0);
    assert_eq!(count(&db, "SELECT count(*) FROM links"), links, "links are never pruned");
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM user_versions"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM users WHERE source = 'idp.corp'"), 21);
    assert_eq!(
        count(&db, "SELECT count(*) FROM memberships WHERE valid_from IS NULL"),
        0,
        "the runs the current memberships come from are kept"
    );
    drop(db);
    assert!(!columns.join("idp.gone.users.arrow").exists() && !columns.join("idp.corp.users.arrow.tmp").exists());
    assert!(columns.join("idp.corp.users.arrow").exists(), "the current copy stays");

    // From the horizon on, the same answers; before it, an error naming the horizon.
    assert_eq!(csv(&ws, &["sql", "--format", "csv", "--at", &inside, question]), users_then);
    assert_eq!(
        csv(&ws, &["sql", "--format", "csv", "--at", &inside, membership_question]),
        members_then
    );
    for args in [
        vec!["sql", "--at", before_changes.as_str(), question],
        vec!["diff", "--from", before_changes.as_str()],
        vec!["report", "admins", "--at", before_changes.as_str()],
        vec!["diff", "--from", "1"],
    ] {
        let out = ws.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("the earliest instant still answerable is 20"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let status = csv(&ws, &["status"]);
    assert!(
        status.contains("history horizon: 20") && status.contains("user_versions") && status.contains("last prune: 20"),
        "{status}"
    );
    assert_ok(&ws.cli(&["check"]));
    // The plan `apply` runs is still whole.
    let applied_now = ws.cli(&["apply", "--yes"]);
    assert_ok(&applied_now);
    // Nothing left to prune.
    assert!(csv(&ws, &["prune"]).contains("nothing to remove"));
}

#[test]
fn reconcile_prunes_after_each_cycle() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app);
    assert_ok(&ws.cli(&["reconcile"]));
    std::thread::sleep(Duration::from_millis(1200));
    directory(&ws, 20, &[7]);
    let out = ws.cli(&["reconcile"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("row(s) removed"), "{}", stdout(&out));
    assert_eq!(plan_ids(&ws).len(), 1, "the first cycle's plan went; the one just applied stays");
    assert_eq!(
        count(
            &ws.db(),
            "SELECT count(*) FROM events WHERE at < (SELECT min(created_at) FROM plans)"
        ),
        0
    );
    assert_ok(&ws.cli(&["check"]));
}
