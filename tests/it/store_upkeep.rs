//! `scimsync backup` and `scimsync check`: a consistent copy taken while another connection is
//! writing, which `check` passes and `plan` reads; no overwrite; a flipped byte in a columnar
//! copy and a damaged page in the SQLite file are found and named.
use scimsync_emulator::Directory;

use crate::support::*;

fn workspace(app: &EmulatorHost) -> Workspace {
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n\
         [app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Staff\"]\n",
        app.emulator.base_url
    ));
    let users: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com")}))
        .collect();
    let members: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    let doc = serde_json::json!({"users": users, "groups": [{"id": "g1", "name": "Staff", "members": members}]});
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    ws
}

#[test]
fn a_backup_taken_while_another_connection_writes_is_consistent_and_never_overwrites() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app);
    // Another writer holds a write transaction with a row in it while the backup runs.
    let writer = rusqlite::Connection::open(ws.store()).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO runs (kind, source, started_at, status) VALUES ('pull', 'idp.corp', 'x', 'running');")
        .unwrap();
    let out = ws.cli(&["backup", "copy.db"]);
    assert_ok(&out);
    writer.execute_batch("COMMIT").unwrap();
    let copy = ws.path("copy.db");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM users WHERE source = 'idp.corp'"), 200);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM runs WHERE started_at = 'x'"),
        0,
        "uncommitted rows are not in the copy"
    );
    drop(conn);
    let checked = ws.cli(&["--store", "copy.db", "check"]);
    assert_ok(&checked);
    assert!(stdout(&checked).contains(": ok"), "{}", stdout(&checked));
    let planned = ws.cli(&["--store", "copy.db", "plan", "--format", "json"]);
    assert_ok(&planned);
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(plan["operations"].as_array().unwrap().len(), 201, "200 creates and the group");

    let again = ws.cli(&["backup", "copy.db"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists: backup does not overwrite"), "{}", stderr(&again));
}

#[test]
fn a_backup_taken_during_a_running_pull_is_the_store_before_it_which_check_passes_and_plan_reads() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app);
    // A directory large enough that its pull runs for a while (parse, then write).
    let users: Vec<serde_json::Value> = (0..60_000)
        .map(|i| serde_json::json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com")}))
        .collect();
    let doc = serde_json::json!({"users": users, "groups": [{"id": "g1", "name": "Staff", "members": ["u0"]}]});
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    let mut pull = ws.spawn(&["pull", "--app", "wiki"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(&ws.db(), "SELECT count(*) FROM runs WHERE status = 'running'") == 0 {
        assert!(std::time::Instant::now() < deadline, "the pull never started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = ws.cli(&["backup", "during.db"]);
    assert_ok(&out);
    assert!(pull.wait().unwrap().success());
    let copy = rusqlite::Connection::open(ws.path("during.db")).unwrap();
    assert!(
        count(&copy, "SELECT count(*) FROM runs WHERE status = 'running'") >= 1,
        "the copy was taken while the pull ran"
    );
    assert_eq!(
        count(&copy, "SELECT count(*) FROM users WHERE source = 'idp.corp'"),
        200,
        "the snapshot before the pull, whole"
    );
    drop(copy);
    assert_ok(&ws.cli(&["--store", "during.db", "check"]));
    let planned = ws.cli(&["--store", "during.db", "plan", "--format", "json"]);
    assert_ok(&planned);
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(plan["operations"].as_array().unwrap().len(), 201, "200 creates and the group");
    // The store itself has the pull.
    assert_eq!(count(&ws.db(), "SELECT count(*) FROM users WHERE source = 'idp.corp'"), 60_000);
}

#[test]
fn check_names_a_flipped_byte_in_a_columnar_copy_and_a_damaged_page() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app);
    assert_ok(&ws.cli(&["check"]));
    let status = stdout(&ws.cli(&["status"]));
    assert!(
        status.contains("scimsync.db (") && status.contains(" MiB, WAL ") && status.contains("columnar copies"),
        "{status}"
    );
    // One byte of the IdP's users copy flipped.
    let copy = ws.path("scimsync.db.columns").join("idp.corp.users.arrow");
    let mut bytes = std::fs::read(&copy).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&copy, bytes).unwrap();
    let out = ws.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("idp.corp.users.arrow': its bytes do not match its checksum"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("1 problem(s) found"), "{}", stderr(&out));

    // A page of a standalone copy overwritten.
    assert_ok(&ws.cli(&["backup", "damaged.db"]));
    let path = ws.path("damaged.db");
    let mut db = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(db.len() > 6 * page, "{} bytes", db.len());
    db[3 * page..4 * page].fill(0xA5);
    std::fs::write(&path, db).unwrap();
    let out = ws.cli(&["--store", "damaged.db", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("integrity"), "{}\n{}", stdout(&out), stderr(&out));
    // An auditor query that reads a damaged page says so as plainly as every other command.
    assert_ok(&ws.cli(&["backup", "damaged-users.db"]));
    let path = ws.path("damaged-users.db");
    let (root, size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let root = conn
            .query_row("SELECT rootpage FROM sqlite_master WHERE name = 'users'", [], |r| r.get(0))
            .unwrap();
        let size = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (root, size)
    };
    let mut db = std::fs::read(&path).unwrap();
    let at = ((root - 1) * size) as usize;
    db[at..at + size as usize].fill(0xA5);
    std::fs::write(&path, db).unwrap();
    for args in [
        &["--store", "damaged-users.db", "sql", "SELECT * FROM users", "--format", "csv"][..],
        &["--store", "damaged-users.db", "plan"],
    ] {
        let out = ws.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("the store file is damaged") && stderr(&out).contains("scimsync check"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    // A file that is not a store at all: every command says so plainly at open, before a pull
    // reads anything.
    std::fs::write(ws.path("garbage.db"), vec![0x5Au8; 8 * page]).unwrap();
    for args in [
        &["--store", "garbage.db", "pull"][..],
        &["--store", "garbage.db", "plan"],
        &["--store", "garbage.db", "status"],
    ] {
        let out = ws.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("garbage.db': file is not a database: the store file is damaged") && err.contains("scimsync backup"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("directory.json"), "nothing was pulled: {err}");
    }
}
