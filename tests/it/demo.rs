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
    assert!(text.contains("SUSPENDED") && text.contains("contractor0@partner.example"), "{text}");

    let db = rusqlite::Connection::open(dir.path().join("scimsync-demo/scimsync.db")).unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE source = 'idp.corp'"), 400);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs WHERE status <> 'ok'"), 0);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT app) FROM bindings WHERE idp_group_id IS NOT NULL"),
        4
    );
    // Suspended IdP users still active in an app are in the data the demo shows.
    assert!(count(&db, "SELECT COUNT(*) FROM users a JOIN users i ON i.source = 'idp.corp' AND i.email = a.email WHERE a.source LIKE 'app.%' AND a.active AND NOT i.active") > 0);

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
