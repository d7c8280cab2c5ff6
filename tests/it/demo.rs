//! `scimsync demo` runs on its embedded default and leaves a store that the CLI and SQL can read.
use crate::support::*;

#[test]
fn demo_pulls_every_source_and_answers_auditor_queries() {
    let dir = tempfile::tempdir().unwrap();
    let out = scimsync(dir.path(), &["demo"]);
    assert_ok(&out);
    let text = stdout(&out);
    for source in ["idp.corp", "app.whimsical", "app.quip", "app.blogin", "app.workramp"] {
        assert!(text.contains(source), "{source} missing from:\n{text}");
    }
    assert!(text.contains("contractor0@partner.example"), "{text}");
    // The full reconcile: every planned operation applied, and a second plan has nothing to do.
    assert!(
        text.contains("0 failed") && text.contains("pull + plan again: 0 changes pending, 0 operations"),
        "{text}"
    );

    let db = rusqlite::Connection::open(dir.path().join("scimsync-demo/scimsync.db")).unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE source = 'idp.corp'"), 400);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs WHERE status <> 'ok'"), 0);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT app) FROM bindings WHERE idp_group_id IS NOT NULL"),
        4
    );
    // No suspended IdP user is left active in an app, and every write is journaled with its event.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users a JOIN users i ON i.source = 'idp.corp' AND i.email = a.email WHERE a.source LIKE 'app.%' AND a.active AND NOT i.active"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operations WHERE status <> 'done'"), 0);
    assert!(count(&db, "SELECT COUNT(*) FROM operations") > 50);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM operations"),
        count(&db, "SELECT COUNT(*) FROM events WHERE outcome = 'success'")
    );

    // The plan ran and found drift of the kinds the emulators were seeded with.
    assert!(
        text.contains("plan (") && text.contains("user.orphaned") && text.contains("group.takeover"),
        "{text}"
    );
    let kinds = rows(&db, "SELECT DISTINCT kind FROM findings ORDER BY kind");
    for kind in [
        "group.members",
        "group.missing",
        "group.takeover",
        "user.drift",
        "user.missing",
        "user.orphaned",
        "user.unmanaged",
    ] {
        assert!(kinds.iter().any(|k| k[0] == kind), "{kind} not found: {kinds:?}");
    }

    // The status command the demo suggests works on its output.
    let status = scimsync(dir.path(), &["--config", "scimsync-demo/scimsync.toml", "status"]);
    assert_ok(&status);
    assert!(stdout(&status).contains("app.workramp"));
}

/// The findings of a plan on a demo store, without run ids or timestamps, and how many sources
/// the engine loaded from the columnar copy (its debug log).
fn demo_findings(dir: &std::path::Path, env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let out = demo_cli(dir, &["plan", "--format", "json"], env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = stderr(&out);
    let loaded = err
        .lines()
        .find(|l| l.contains("sources loaded"))
        .unwrap_or_else(|| panic!("no load log in:\n{err}"));
    let cached = loaded.split_whitespace().find(|w| w.starts_with("cached=")).unwrap().to_string();
    (v["findings"].clone(), cached)
}

#[test]
fn plans_from_the_columnar_copy_equal_plans_from_sqlite() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    for d in [&a, &b, &c] {
        assert_ok(&scimsync(d.path(), &["demo", "--no-apply"]));
    }
    let columns = a.path().join("scimsync-demo/scimsync.db.columns");
    assert!(columns.join("app.quip.users.arrow").exists(), "pull writes the columnar copy");
    let (from_copy, cached) = demo_findings(a.path(), &[]);
    assert_eq!(cached, "cached=5", "all five sources are read from the copy");
    let (from_sqlite, cached) = demo_findings(b.path(), &[("SCIMSYNC_COLUMNS", "off")]);
    assert_eq!(cached, "cached=0");
    assert!(from_copy.as_array().is_some_and(|f| f.len() > 50), "{from_copy}");
    assert_eq!(from_copy, from_sqlite);

    // A damaged copy is not trusted: the plan reads that source from the store instead and
    // finds the same (an IdP's copy holds its active memberships, an app's its memberships:
    // both are taken from SQLite then).
    for damaged in ["idp.corp.users.arrow", "app.quip.memberships.arrow"] {
        std::fs::write(c.path().join("scimsync-demo/scimsync.db.columns").join(damaged), b"not arrow").unwrap();
    }
    let (from_damaged, cached) = demo_findings(c.path(), &[]);
    assert_eq!(cached, "cached=3", "the damaged sources are read from the store");
    assert_eq!(from_damaged, from_copy);
}

/// `scimsync ARGS` on the demo store in `dir` with `env` and the debug log on, run to success.
fn demo_cli(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["--config", "scimsync-demo/scimsync.toml"])
        .args(args)
        .current_dir(dir)
        .env("SCIMSYNC_LOG", "scimsync=debug")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_ok(&out);
    out
}

/// `scimsync ARGS` on the demo store in `dir` with `env`: its stdout, and how many columnar
/// copies the auditor read (its debug log).
fn demo_answer(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (String, usize) {
    let out = demo_cli(dir, args, env);
    let copies = stderr(&out).lines().filter(|l| l.contains("columnar copy read")).count();
    (stdout(&out), copies)
}

#[test]
fn the_auditor_reads_the_current_state_from_the_columnar_copies_as_sqlite_has_it() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&scimsync(dir.path(), &["demo", "--no-apply"]));
    let columns = dir.path().join("scimsync-demo/scimsync.db.columns");
    assert!(
        columns.join("idp.corp.inactive_members.arrow").exists(),
        "an IdP's copy keeps its inactive users' memberships"
    );
    // Groups a list (", ") in sorted order: group_concat joins them in no fixed order.
    let sorted_lists = |out: &str| -> Vec<String> {
        let mut lines: Vec<String> = out
            .lines()
            .map(|l| {
                l.split(',')
                    .map(|f| {
                        let mut parts: Vec<&str> = f.split(", ").collect();
                        parts.sort_unstable();
                        parts.join(", ")
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        lines.sort();
        lines
    };
    let queries = [
        // The memberships of inactive IdP users come from their own copy.
        "SELECT u.source, u.active, count(*) AS n FROM member_keys k JOIN users u ON u.uid = k.uid GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT source, id, user_name, email, active, role FROM users ORDER BY uid",
        "SELECT gid, source, id, display_name, external_id FROM groups ORDER BY gid",
        "SELECT * FROM app_access",
    ];
    let mut read_from_copies = 0;
    for q in queries {
        let (off, none) = demo_answer(dir.path(), &["sql", q, "--format", "csv"], &[("SCIMSYNC_COLUMNS", "off")]);
        let (on, copies) = demo_answer(dir.path(), &["sql", q, "--format", "csv"], &[]);
        assert_eq!(none, 0);
        assert_eq!(sorted_lists(&on), sorted_lists(&off), "{q}");
        assert!(off.lines().count() > 5, "{q}: {off}");
        read_from_copies += copies;
    }
    let inactive = demo_answer(dir.path(), &["sql", queries[0], "--format", "csv"], &[]).0;
    assert!(
        inactive.lines().any(|l| l.starts_with("idp.corp,0,")),
        "inactive IdP users with groups: {inactive}"
    );
    assert!(read_from_copies >= 10, "the copies were read: {read_from_copies}");
    for r in scimsync::audit::reports::REPORTS {
        let (off, _) = demo_answer(dir.path(), &["report", r.name, "--format", "csv"], &[("SCIMSYNC_COLUMNS", "off")]);
        let (on, _) = demo_answer(dir.path(), &["report", r.name, "--format", "csv"], &[]);
        assert_eq!(sorted_lists(&on), sorted_lists(&off), "report {}", r.name);
    }
    // A columns the copies do not keep, a copy damaged or of another pull: SQLite is read, with
    // the same answer.
    let raw = "SELECT id, hash FROM users ORDER BY uid";
    assert_eq!(demo_answer(dir.path(), &["sql", raw], &[]).1, 0);
    let q = queries[1];
    let (before, _) = demo_answer(dir.path(), &["sql", q, "--format", "csv"], &[]);
    std::fs::write(columns.join("app.quip.users.arrow"), b"not arrow").unwrap();
    let (after, copies) = demo_answer(dir.path(), &["sql", q, "--format", "csv"], &[]);
    assert_eq!(after, before);
    assert!(copies < 5, "not every source's copy could be read: {copies}");
}
