//! Crash trials: `scimsync pull` and `scimsync apply` killed with SIGKILL at random points, 50
//! times each, then resumed. A pull leaves the store holding the previous snapshot or the new
//! one, never a mix, and SQLite's integrity check passes; an apply resumed again and again
//! creates nothing twice, loses no journal row and ends in the planned state.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scimsync_emulator::sample::SplitMix;
use scimsync_emulator::Directory;
use serde_json::json;

use crate::support::*;

const TRIALS: usize = 50;

/// A directory of `n` users whose titles all say `version`.
fn directory(n: usize, version: &str) -> String {
    let users: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"), "jobTitle": version, "active": true}))
        .collect();
    let members: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]}).to_string()
}

fn spawn(ws: &Workspace, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(args)
        .current_dir(ws.dir.path())
        .env("IT_TOKEN", TOKEN)
        .env("SCIMSYNC_RETRY_BASE_MS", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_pull_killed_at_random_points_leaves_one_whole_snapshot() {
    let host = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        host.emulator.base_url
    ));
    // Two versions that differ in every user and in the count.
    let versions = [(20_000, "v1"), (18_000, "v2")];
    std::fs::write(ws.path("directory.json"), directory(versions[0].0, versions[0].1)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let t = Instant::now();
    assert_ok(&ws.cli(&["pull", "--full"]));
    let full_ms = (t.elapsed().as_millis() as u64).max(50);

    let mut rng = SplitMix::new(2026);
    let (mut killed, mut finished) = (0, 0);
    let started = Instant::now();
    for trial in 0..TRIALS {
        let (n, v) = versions[(trial + 1) % 2];
        std::fs::write(ws.path("directory.json"), directory(n, v)).unwrap();
        let mut child = spawn(&ws, &["pull"]);
        // Kill anywhere from the start to a little after a whole pull would have ended.
        std::thread::sleep(Duration::from_millis(rng.below(full_ms * 3 / 2 + 20)));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap();
                killed += 1;
            }
        }
        child.wait().unwrap();
        let db = ws.db();
        assert_eq!(rows(&db, "PRAGMA integrity_check"), vec![vec!["ok".to_string()]], "trial {trial}");
        let by_title = rows(
            &db,
            "SELECT title, count(*) FROM users WHERE source = 'idp.corp' GROUP BY title ORDER BY title",
        );
        assert_eq!(by_title.len(), 1, "trial {trial}: a mix of snapshots: {by_title:?}");
        let (title, count) = (&by_title[0][0], by_title[0][1].parse::<usize>().unwrap());
        let expected = versions.iter().find(|(_, v)| v == title).unwrap().0;
        assert_eq!(count, expected, "trial {trial}: snapshot {title} is whole");
        let members = rows(&db, "SELECT count(*) FROM memberships WHERE source = 'idp.corp'")[0][0]
            .parse::<usize>()
            .unwrap();
        assert_eq!(members, expected, "trial {trial}: memberships belong to the same snapshot");
    }
    assert!(started.elapsed() < Duration::from_secs(300), "trials are bounded in time");
    assert!(
        killed >= TRIALS / 2,
        "most trials must kill a running pull ({killed} killed, {finished} finished)"
    );
    // And afterwards a pull completes and the store is the file.
    assert_ok(&ws.cli(&["pull"]));
    eprintln!("pull crash trials: {killed} killed mid-run, {finished} finished before the kill; every store whole");
}

#[test]
fn an_apply_killed_again_and_again_creates_nothing_twice() {
    let host = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nconcurrency = 4\n",
        host.emulator.base_url
    ));
    let n = 400;
    std::fs::write(ws.path("directory.json"), directory(n, "v1")).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let planned = count(&ws.db(), "SELECT count(*) FROM operations");
    // Every write is done at once but answered 3 ms later: kills land between the two.
    host.emulator.set_write_latency(Some(Duration::from_millis(3)));
    let mut rng = SplitMix::new(7);
    let mut killed = 0;
    for _ in 0..TRIALS {
        let mut child = spawn(&ws, &["apply", "--yes"]);
        std::thread::sleep(Duration::from_millis(20 + rng.below(120)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let db = ws.db();
        assert_eq!(count(&db, "SELECT count(*) FROM operations"), planned, "no journal row lost");
        if count(&db, "SELECT count(*) FROM operations WHERE status != 'done'") == 0 {
            break;
        }
    }
    host.emulator.set_write_latency(None);
    assert_ok(&ws.cli(&["apply", "--yes"]));
    let db = ws.db();
    assert_eq!(count(&db, "SELECT count(*) FROM operations WHERE status != 'done'"), 0);
    let names: Vec<String> = host
        .emulator
        .with_directory(|d| d.users.values().map(|u| u["userName"].as_str().unwrap().to_string()).collect());
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (n, n), "every account once");
    let group_members = host.emulator.with_directory(|d| {
        d.groups
            .values()
            .next()
            .map(|g| g["members"].as_array().map_or(0, |m| m.len()))
            .unwrap_or(0)
    });
    assert!(killed >= 5, "the apply was killed mid-run ({killed} times)");
    // The group may have been created while some creations were cut off: the next cycle
    // completes it.
    if group_members < n {
        assert_ok(&ws.cli(&["reconcile"]));
    }
    let group_members = host.emulator.with_directory(|d| {
        d.groups
            .values()
            .next()
            .map(|g| g["members"].as_array().map_or(0, |m| m.len()))
            .unwrap_or(0)
    });
    assert_eq!(group_members, n);
    eprintln!("apply crash trials: killed {killed} times; {n} accounts, each once");
}
