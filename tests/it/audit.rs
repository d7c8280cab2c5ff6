//! Auditor SQL through the CLI: `sql` in every format, `--at`, saved reports, `diff`, HTML
//! pages, and the read-only guarantee (every write refused, the store byte-for-byte unchanged).
use serde_json::Value;

use crate::apply_scim2_server::{config, seed};
use crate::support::*;

fn csv_lines(o: &std::process::Output) -> Vec<String> {
    assert_ok(o);
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn formats_reports_history_diff_and_html_over_a_drifted_store() {
    let server = Scim2Server::start(&["idp", "app"]);
    seed(&server);
    let ws = Workspace::new(&config(&server, ""));
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let before_apply = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // Formats.
    let q = "SELECT user_name, active FROM users WHERE source = 'app.wiki' ORDER BY user_name";
    assert_eq!(
        csv_lines(&ws.cli(&["sql", q, "--format", "csv"])),
        [
            "user_name,active",
            "alice,1",
            "carol,1",
            "contractor,1",
            "dave,1",
            "erin,0",
            "frank,1"
        ]
    );
    let json: Value = serde_json::from_str(&stdout(&ws.cli(&["sql", q, "--format", "json"]))).unwrap();
    assert_eq!(json[1], serde_json::json!({"user_name": "carol", "active": 1}));
    let nd = stdout(&ws.cli(&["sql", q, "--format", "ndjson"]));
    assert_eq!(nd.lines().count(), 6);
    assert_eq!(
        serde_json::from_str::<Value>(nd.lines().last().unwrap()).unwrap()["user_name"],
        "frank"
    );
    let table = stdout(&ws.cli(&["sql", q, "--format", "table"]));
    assert!(table.contains("| contractor ") && table.contains("(6 rows)"), "{table}");
    assert_ok(&ws.cli(&["sql", q, "-o", "users.parquet"]));
    let file = std::fs::File::open(ws.path("users.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 6);
    // Memberships: DataFusion joins the key table as SQLite's view does.
    let q = "SELECT source, group_id, user_id, valid_from, run_id FROM memberships ORDER BY source, group_id, user_id";
    let by_sqlite: Vec<String> = rows(&ws.db(), q).into_iter().map(|r| r.join(",")).collect();
    let by_sql = csv_lines(&ws.cli(&["sql", q, "--format", "csv"]));
    assert!(by_sqlite.len() >= 8, "{by_sqlite:?}");
    assert_eq!(by_sql[1..], by_sqlite[..]);
    // app_access: `sql` plans a form of its own for the current state (via_groups over the
    // integer keys); SQLite's view, and `sql --at` (the portable view over the history), must
    // give the same rows, via_groups as a set (it lists its groups in no fixed order).
    let q = "SELECT app, account_id, account_user_name, account_email, account_active, account_role, idp, idp_user_id, \
             idp_user_name, idp_email, idp_active, matched_by, access, via_groups FROM app_access ORDER BY app, account_id";
    let sorted_groups = |mut row: Vec<String>| {
        let last = row.pop().unwrap();
        let mut groups: Vec<&str> = last.split(", ").collect();
        groups.sort();
        row.push(groups.join(", "));
        row
    };
    let by_sqlite: Vec<Vec<String>> = rows(&ws.db(), q).into_iter().map(sorted_groups).collect();
    let by_sql = |extra: &[&str]| -> Vec<Vec<String>> {
        let out = ws.cli(&[&["sql", q, "--format", "json"], extra].concat());
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        let fields = [
            "app",
            "account_id",
            "account_user_name",
            "account_email",
            "account_active",
            "account_role",
            "idp",
        ];
        let fields = fields.iter().chain(&[
            "idp_user_id",
            "idp_user_name",
            "idp_email",
            "idp_active",
            "matched_by",
            "access",
            "via_groups",
        ]);
        let rows = json.as_array().unwrap().iter().map(|r| {
            fields
                .clone()
                .map(|f| match &r[*f] {
                    Value::Null => "NULL".to_string(),
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect()
        });
        rows.map(sorted_groups).collect()
    };
    assert!(
        by_sqlite.iter().any(|r| r[13].contains(", ")),
        "a user granted by two groups: {by_sqlite:?}"
    );
    assert!(by_sqlite.iter().any(|r| r[12] == "unlinked"), "{by_sqlite:?}");
    assert_eq!(by_sql(&[]), by_sqlite);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(by_sql(&["--at", &now]), by_sqlite);
    let empty = ws.cli(&["sql", "SELECT user_name FROM users WHERE false", "--format", "json"]);
    assert_eq!(stdout(&empty).trim(), "[]");
    std::fs::write(ws.path("q.sql"), "SELECT count(*) AS n FROM users WHERE source = 'idp.corp'").unwrap();
    assert_eq!(csv_lines(&ws.cli(&["sql", "-f", "q.sql"])), ["n", "6"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["sql", "-"])
        .current_dir(ws.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"SELECT count(*) AS n FROM groups WHERE source = 'idp.corp'",
    )
    .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(csv_lines(&piped), ["n", "5"]);

    // Views and reports on the drifted state.
    let access = csv_lines(&ws.cli(&[
        "sql",
        "SELECT account_user_name, idp_user_name, via_groups, access FROM app_access WHERE app = 'wiki' ORDER BY 1",
    ]));
    assert!(
        ["alice,alice,\"Eng, Design\",linked", "alice,alice,\"Design, Eng\",linked"]
            .iter()
            .any(|l| access.contains(&l.to_string())),
        "{access:?}"
    );
    assert!(access.contains(&"contractor,,,unlinked".to_string()), "{access:?}");
    let list = stdout(&ws.cli(&["report", "--list"]));
    for r in [
        "access_review",
        "deactivated_but_active",
        "active_without_group",
        "role_mismatches",
        "attribute_differences",
        "group_differences",
        "unmatched_accounts",
        "admins",
        "changes_since_previous_pull",
    ] {
        assert!(list.contains(r), "{list}");
        assert_ok(&ws.cli(&["report", r, "--format", "csv"]));
    }
    let stale = csv_lines(&ws.cli(&["report", "deactivated_but_active", "--format", "csv"]));
    assert_eq!(
        stale,
        [
            "app,account,account_email,idp_user_id,idp_user,why",
            &format!("wiki,carol,carol@x.com,{},carol,inactive in the IdP", idp_id(&ws, "carol"))
        ]
    );
    assert_eq!(
        csv_lines(&ws.cli(&["report", "unmatched_accounts", "--format", "csv"]))[1..].len(),
        1
    );
    let roles = csv_lines(&ws.cli(&["report", "role_mismatches", "--format", "csv"]));
    assert!(roles[1].starts_with("wiki,frank,viewer,editor"), "{roles:?}");
    let groups = csv_lines(&ws.cli(&["report", "group_differences", "--app", "wiki", "--format", "csv"]));
    assert!(groups.iter().any(|l| l.starts_with("wiki,group.renamed,")), "{groups:?}");
    assert_eq!(
        csv_lines(&ws.cli(&["report", "group_differences", "--app", "nope", "--format", "csv"])).len(),
        1,
        "header only"
    );
    let unknown = ws.cli(&["report", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no report 'nope'; the reports are: access_review"),
        "{}",
        stderr(&unknown)
    );

    // Apply, pull again: now carol is deactivated and bob has an account.
    assert_ok(&ws.cli(&["apply", "--yes", "--max-deactivations", "40%"]));
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let carol = "SELECT active FROM users WHERE source = 'app.wiki' AND user_name = 'carol'";
    assert_eq!(csv_lines(&ws.cli(&["sql", carol])), ["active", "0"]);
    assert_eq!(csv_lines(&ws.cli(&["sql", carol, "--at", &before_apply])), ["active", "1"]);
    assert_eq!(
        csv_lines(&ws.cli(&["report", "deactivated_but_active", "--format", "csv"])).len(),
        1
    );
    assert_eq!(
        csv_lines(&ws.cli(&["report", "deactivated_but_active", "--at", &before_apply, "--format", "csv"])).len(),
        2
    );
    assert_eq!(
        csv_lines(&ws.cli(&["sql", "SELECT kind, subject FROM latest_findings"])),
        ["kind,subject", "user.unmanaged,contractor"],
        "in sync but for the account no IdP user owns"
    );
    let changes = csv_lines(&ws.cli(&["report", "changes_since_previous_pull", "--app", "wiki", "--format", "csv"]));
    assert!(
        changes.contains(&"wiki,app.wiki,user,".to_string()) || changes.iter().any(|l| l.contains(",user,") && l.ends_with(",bob,added")),
        "{changes:?}"
    );

    // diff: from before the apply to now, for the app.
    let diff = csv_lines(&ws.cli(&["diff", "--from", &before_apply, "--app", "wiki", "--format", "csv"]));
    assert!(
        diff.iter().any(|l| l.contains(",user,") && l.contains(",carol,changed,active")),
        "{diff:?}"
    );
    assert!(diff.iter().any(|l| l.contains(",user,") && l.contains(",bob,added,")), "{diff:?}");
    assert!(
        diff.iter().any(|l| l.contains(",membership,") && l.contains("Eng: bob,added")),
        "{diff:?}"
    );
    assert!(
        diff.iter().all(|l| l.starts_with("wiki,app.wiki,") || l.starts_with("app,")),
        "{diff:?}"
    );
    // Every source, from before the first pull: all added, source after source in order (each
    // source's groups, memberships and users are separate statements written in turn).
    let all = csv_lines(&ws.cli(&["diff", "--from", "2000-01-01", "--format", "csv"]));
    let sources: Vec<&str> = all[1..].iter().map(|l| l.split(',').nth(1).unwrap()).collect();
    let mut distinct = sources.clone();
    distinct.dedup();
    assert!(distinct.len() >= 2 && distinct.windows(2).all(|w| w[0] < w[1]), "{distinct:?}");
    assert!(all[1..].iter().all(|l| l.contains(",added,")), "{all:?}");
    let bad = ws.cli(&["diff", "--from", "yesterday"]);
    assert!(
        stderr(&bad).contains("'yesterday' is neither a run id nor a time"),
        "{}",
        stderr(&bad)
    );
    let bad = ws.cli(&["diff", "--from", "999"]);
    assert!(stderr(&bad).contains("no run 999 in the store"), "{}", stderr(&bad));

    // HTML: one report, and the overview of all.
    assert_ok(&ws.cli(&["report", "access_review", "--html", "access.html"]));
    let page = std::fs::read_to_string(ws.path("access.html")).unwrap();
    assert!(
        page.contains("<table class=\"sortable\">") && page.contains("<td>carol</td>") && page.contains("<svg"),
        "{page}"
    );
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "self-contained");
    assert_ok(&ws.cli(&["report", "--html", "overview.html"]));
    let overview = std::fs::read_to_string(ws.path("overview.html")).unwrap();
    assert_eq!(overview.matches("<section").count(), 9);
    assert!(overview.contains("App accounts, per app and access"));
}

fn idp_id(ws: &Workspace, user: &str) -> String {
    rows(
        &ws.db(),
        &format!("SELECT id FROM users WHERE source = 'idp.corp' AND user_name = '{user}'"),
    )[0][0]
        .clone()
}

/// A file's bytes, absent as empty: a read-only SQLite reader of a WAL-mode store may create
/// the empty `-wal` side file, which holds no data.
fn digest(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn every_write_is_refused_and_the_store_is_byte_for_byte_unchanged() {
    let host = EmulatorHost::start(scimsync_emulator::Directory::default());
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        host.emulator.base_url
    ));
    std::fs::write(
        ws.path("directory.json"),
        r#"{"users": [{"id": "u1", "username": "a@x.com", "email": "a@x.com", "active": true}], "groups": [{"id": "g1", "name": "Eng", "members": ["u1"]}]}"#,
    )
    .unwrap();
    assert_ok(&ws.cli(&["reconcile"]));
    let files = ["scimsync.db", "scimsync.db-wal"].map(|f| ws.path(f));
    let before: Vec<_> = files.iter().map(|f| digest(f)).collect();
    for sql in [
        "INSERT INTO users (source, id) VALUES ('x', 'y')",
        "UPDATE users SET active = 0",
        "DELETE FROM events",
        "DROP TABLE users",
        "CREATE TABLE x AS SELECT * FROM users",
        "CREATE VIEW v AS SELECT 1",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA journal_mode = DELETE",
        "COPY users TO 'users.csv'",
        "SELECT 1; DELETE FROM users",
    ] {
        let out = ws.cli(&["sql", sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        assert!(
            stderr(&out).contains("read-only") || stderr(&out).contains("one statement"),
            "{sql}: {}",
            stderr(&out)
        );
    }
    assert!(!ws.path("users.csv").exists() && !ws.path("other.db").exists());
    let after: Vec<_> = files.iter().map(|f| digest(f)).collect();
    for ((f, b), a) in files.iter().zip(&before).zip(&after) {
        assert!(b == a, "{} changed ({} → {} bytes)", f.display(), b.len(), a.len());
    }
    // Errors name the problem.
    let typo = ws.cli(&["sql", "SELEC * FROM users"]);
    assert!(stderr(&typo).contains("SQL query:"), "{}", stderr(&typo));
    let missing = ws.cli(&["sql", "SELECT * FROM userz"]);
    assert!(stderr(&missing).contains("userz"), "{}", stderr(&missing));
    let column = ws.cli(&["sql", "SELECT nope FROM users"]);
    assert!(stderr(&column).contains("nope"), "{}", stderr(&column));
    let nostore = ws.cli(&["--store", "absent.db", "sql", "SELECT 1"]);
    assert!(stderr(&nostore).contains("no store at 'absent.db'"), "{}", stderr(&nostore));
}

#[test]
fn memory_limit_bounds_the_auditor_pool_and_is_checked_where_it_is_given() {
    let ws = Workspace::new("memory_limit = \"256MiB\"\n[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n");
    std::fs::write(
        ws.path("directory.json"),
        r#"{"users": [{"id": "u1", "username": "a@x.com"}], "groups": []}"#,
    )
    .unwrap();
    assert_ok(&ws.cli(&["pull"]));
    // A join whose build side (8M keys) is more than half of 256 MiB.
    let join = "SELECT count(*) AS n FROM generate_series(1, 8000000) a JOIN generate_series(1, 8000000) b ON a.value = b.value";
    let out = ws.cli(&["sql", join]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("Resources exhausted"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("memory pool of 128 MiB") && stderr(&out).contains("--memory-limit"),
        "says how to give it more: {}",
        stderr(&out)
    );
    // The flag overrides the config.
    let out = ws.cli(&["--memory-limit", "4GiB", "sql", "--format", "csv", join]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "n\n8000000\n");
    let out = ws.cli(&["--memory-limit", "10MiB", "sql", "SELECT 1"]);
    assert!(stderr(&out).contains("'10MiB' is below 64MiB"), "{}", stderr(&out));
    // Unset, the limit is 1 GiB (the common limit of a scheduled job): a pool of 512 MiB.
    std::fs::write(ws.path("scimsync.toml"), "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n").unwrap();
    let out = ws.cli(&["sql", join]);
    assert_ok(&out);
    let big = "SELECT count(*) AS n FROM generate_series(1, 60000000) a JOIN generate_series(1, 60000000) b ON a.value = b.value";
    let out = ws.cli(&["sql", big]);
    assert!(stderr(&out).contains("memory pool of 512 MiB"), "{}", stderr(&out));
    std::fs::write(ws.path("scimsync.toml"), "memory_limit = \"lots\"\n").unwrap();
    let out = ws.cli(&["sql", "SELECT 1"]);
    assert!(
        stderr(&out).contains("memory_limit") && stderr(&out).contains("'lots' is not a size"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn admins_are_app_accounts_with_an_admin_role_or_an_admin_app_group() {
    let ws = Workspace::new("");
    let store = scimsync::store::Store::open(&ws.store()).unwrap();
    store
        .connection()
        .execute_batch(
            "INSERT INTO runs (id, kind, started_at, status, snapshot_at) VALUES (1, 'pull', 't', 'ok', 't');
             INSERT INTO sources (name, role, kind) VALUES ('app.wiki', 'app', 'scim'), ('idp.corp', 'idp', 'file');
             INSERT INTO users (uid, source, id, user_name, active, role, raw, hash, valid_from, run_id) VALUES
                 (1, 'app.wiki', 'a1', 'ann', 1, 'Admin', '{}', 0, 't', 1),
                 (2, 'app.wiki', 'a2', 'bob', 0, NULL, '{}', 0, 't', 1),
                 (3, 'app.wiki', 'a3', 'cat', 1, NULL, '{}', 0, 't', 1),
                 (4, 'app.wiki', 'a4', 'dan', 1, 'viewer', '{}', 0, 't', 1),
                 (5, 'idp.corp', 'i1', 'eve', 1, 'admin', '{}', 0, 't', 1);
             INSERT INTO groups (gid, source, id, display_name, raw, hash, valid_from, run_id) VALUES
                 (10, 'app.wiki', 'g1', 'Wiki Admins', '{}', 0, 't', 1),
                 (11, 'app.wiki', 'g2', 'Super ADMIN', '{}', 0, 't', 1),
                 (12, 'app.wiki', 'g3', 'Staff', '{}', 0, 't', 1),
                 (13, 'idp.corp', 'g4', 'Admins', '{}', 0, 't', 1);
             INSERT INTO member_keys (gid, uid, run_id) VALUES (10, 2, 1), (11, 2, 1), (12, 2, 1), (12, 3, 1), (12, 1, 1), (13, 5, 1);",
        )
        .unwrap();
    drop(store);
    let rows = csv_lines(&ws.cli(&["report", "admins", "--format", "csv"]));
    assert_eq!(rows[0], "app,account,account_active,role,admin_groups");
    assert_eq!(rows[1], "wiki,ann,1,Admin,");
    let bob: Vec<&str> = rows[2].splitn(5, ',').collect();
    assert_eq!(bob[..4], ["wiki", "bob", "0", ""]);
    let mut groups: Vec<&str> = bob[4].trim_matches('"').split(", ").collect();
    groups.sort();
    assert_eq!(groups, ["Super ADMIN", "Wiki Admins"]);
    assert_eq!(rows.len(), 3, "{rows:?}");
}
