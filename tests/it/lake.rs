//! `scimsync export --lake`: every table of a store that has pulled, planned and applied is in
//! the lake as the store has it, read back by DuckDB (a reader scimsync did not write) and by
//! DataFusion; a second export with nothing new writes nothing; a change rewrites only the
//! partitions it touched; two stores share one lake; an export that fails halfway leaves a lake
//! that reads as before, and the next export completes it.
use std::path::Path;

use scimsync::lake::tables::TABLES;
use scimsync_emulator::Directory;

use crate::support::*;

fn directory(users: usize, inactive: &[usize], staff: usize) -> String {
    let users: Vec<serde_json::Value> = (0..users)
        .map(|i| {
            serde_json::json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"),
                "firstname": format!("First{i}"), "lastname": "Last", "active": !inactive.contains(&i)})
        })
        .collect();
    let members: Vec<String> = (0..staff).map(|i| format!("u{i}")).collect();
    serde_json::json!({"users": users, "groups": [{"id": "g1", "name": "Staff", "members": members}, {"id": "g2", "name": "Ops", "members": ["u1", "u2"]}]})
        .to_string()
}

fn workspace(app: &EmulatorHost, store_id: &str) -> Workspace {
    let ws = Workspace::new(&format!(
        "store_id = \"{store_id}\"\n\n[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n\
         [app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Staff\", \"Ops\"]\n",
        app.emulator.base_url
    ));
    std::fs::write(ws.path("directory.json"), directory(40, &[], 30)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan", "-q"]));
    assert_ok(&ws.cli(&["apply", "--yes", "-q"]));
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan", "-q"]));
    ws
}

/// The table's rows as the store has them, sorted, as strings ("NULL" for NULL).
fn store_rows(ws: &Workspace, table: &str) -> Vec<Vec<String>> {
    let t = TABLES.iter().find(|t| t.name == table).unwrap();
    let columns: Vec<String> = t.columns().map(|(c, _)| format!("\"{c}\"")).collect();
    let mut rows = rows(&ws.db(), &format!("SELECT {} FROM \"{table}\"", columns.join(", ")));
    rows.sort();
    rows
}

/// The table's rows of `store_id` as DuckDB reads the lake (partition columns from the paths).
fn duckdb_rows(lake: &Path, store_id: &str) -> serde_json::Value {
    let python = std::env::var("SCIMSYNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let tables: Vec<(String, Vec<String>, bool)> = TABLES
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.columns().map(|(c, _)| c.to_string()).collect(),
                t.day.is_some(),
            )
        })
        .collect();
    let script = r#"
import duckdb, json, os, sys
lake, store_id, tables = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
con = duckdb.connect()
for name, columns, has_days in tables:
    pattern = os.path.join(lake, name, "*", "*", "*.parquet") if has_days else os.path.join(lake, name, "*", "*.parquet")
    cols = ", ".join('"%s"' % c for c in columns)
    try:
        got = con.execute(f"SELECT {cols} FROM read_parquet(?, hive_partitioning = true) WHERE store_id = ?", [pattern, store_id]).fetchall()
    except duckdb.IOException:
        got = []  # no file yet
    out[name] = sorted([["NULL" if v is None else str(v) for v in row] for row in got])
print(json.dumps(out))
"#;
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            script,
            lake.to_str().unwrap(),
            store_id,
            &serde_json::to_string(&tables).unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}. Run the tests with ./scripts/test.sh, which installs duckdb and sets SCIMSYNC_PYTHON.")
        });
    assert!(
        out.status.success(),
        "duckdb read of the lake failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The table's rows of `store_id` as DataFusion reads the lake, sorted, as strings.
fn datafusion_rows(lake: &Path, table: &str, store_id: &str) -> Vec<Vec<String>> {
    use arrow::datatypes::DataType;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};
    let t = TABLES.iter().find(|t| t.name == table).unwrap();
    let dir = lake.join(table);
    if !dir.exists() {
        return Vec::new();
    }
    let mut partitions = vec![("store_id".to_string(), DataType::Utf8)];
    if t.day.is_some() {
        partitions.push(("day".to_string(), DataType::Utf8));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let ctx = SessionContext::new();
        let options = ParquetReadOptions::default().table_partition_cols(partitions);
        ctx.register_parquet("t", format!("{}/", dir.display()), options).await.unwrap();
        let columns: Vec<String> = t.columns().map(|(c, _)| format!("\"{c}\"")).collect();
        let sql = format!("SELECT {} FROM t WHERE store_id = '{store_id}'", columns.join(", "));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut rows = Vec::new();
        for b in batches {
            for r in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(r) {
                                "NULL".to_string()
                            } else {
                                arrow::util::display::array_value_to_string(c, r).unwrap()
                            }
                        })
                        .collect(),
                );
            }
        }
        rows.sort();
        rows
    })
}

/// The same rows, or a failure naming the table, the reader, the counts and the first row that
/// differs (not every row of both).
#[track_caller]
fn assert_same_rows(got: &[Vec<String>], expected: &[Vec<String>], what: &str) {
    if got != expected {
        let first = got.iter().zip(expected).find(|(g, e)| g != e);
        panic!(
            "{what}: {} rows, the store has {}; first difference: {first:?} (or the extra rows)",
            got.len(),
            expected.len()
        );
    }
}

fn assert_lake_matches_store(ws: &Workspace, lake: &Path, store_id: &str) {
    let duck = duckdb_rows(lake, store_id);
    for t in TABLES {
        let expected = store_rows(ws, t.name);
        let by_duckdb: Vec<Vec<String>> = serde_json::from_value(duck[t.name].clone()).unwrap();
        assert_same_rows(&by_duckdb, &expected, &format!("{}: DuckDB's rows of the lake", t.name));
        assert_same_rows(
            &datafusion_rows(lake, t.name, store_id),
            &expected,
            &format!("{}: DataFusion's rows of the lake", t.name),
        );
    }
}

fn export(ws: &Workspace, lake: &Path) -> serde_json::Value {
    let out = ws.cli(&["export", "--lake", lake.to_str().unwrap(), "--json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn written(summary: &serde_json::Value, table: &str) -> u64 {
    summary["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .map_or(0, |t| t["partitions_written"].as_u64().unwrap())
}

fn parquet_files(lake: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut dirs = vec![lake.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push((
                    p.strip_prefix(lake).unwrap().display().to_string(),
                    e.metadata().unwrap().modified().unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn an_export_is_the_store_as_duckdb_and_datafusion_read_it_and_the_next_writes_only_what_changed() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app, "it-a");
    let lake = ws.path("lake");
    let first = export(&ws, &lake);
    assert_eq!(first["nothing_new"], false);
    for table in [
        "users",
        "memberships",
        "links",
        "events",
        "operation_rows",
        "finding_rows",
        "runs",
        "sources",
    ] {
        assert!(written(&first, table) >= 1, "{table}: {first}");
    }
    assert!(!store_rows(&ws, "events").is_empty() && !store_rows(&ws, "links").is_empty());
    assert_lake_matches_store(&ws, &lake, "it-a");
    let files = parquet_files(&lake);
    assert!(files.iter().any(|(f, _)| f.starts_with("users/store_id=it-a/day=")), "{files:?}");
    assert!(files.iter().any(|(f, _)| f == "sources/store_id=it-a/part.parquet"), "{files:?}");

    // Nothing new: nothing read, nothing written.
    let again = export(&ws, &lake);
    assert_eq!(again["nothing_new"], true, "{again}");
    assert_eq!(parquet_files(&lake), files);

    // A user deactivated and one left Staff: the IdP's users and memberships change, their old
    // versions close; the links, findings and operations (no plan since) stay as they were.
    std::fs::write(ws.path("directory.json"), directory(40, &[3], 29)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let changed = export(&ws, &lake);
    assert_eq!(changed["nothing_new"], false);
    for table in ["users", "user_versions", "memberships", "membership_versions", "runs"] {
        assert_eq!(written(&changed, table), 1, "{table}: {changed}");
    }
    for table in [
        "links",
        "group_links",
        "finding_rows",
        "operation_rows",
        "plans",
        "groups",
        "bindings",
    ] {
        assert_eq!(written(&changed, table), 0, "{table}: {changed}");
    }
    assert!(store_rows(&ws, "user_versions").iter().any(|r| r[2] == "u3"));
    assert_lake_matches_store(&ws, &lake, "it-a");
    let unchanged: Vec<_> = parquet_files(&lake).into_iter().filter(|(f, _)| f.starts_with("links/")).collect();
    assert_eq!(
        unchanged,
        files.iter().filter(|(f, _)| f.starts_with("links/")).cloned().collect::<Vec<_>>()
    );

    // A second store into the same lake: each reads back as its own store.
    let other_app = EmulatorHost::start(Directory::default());
    let other = workspace(&other_app, "it-b");
    export(&other, &lake);
    assert_lake_matches_store(&other, &lake, "it-b");
    assert_lake_matches_store(&ws, &lake, "it-a");
    assert!(lake.join("_scimsync/it-a.json").exists() && lake.join("_scimsync/it-b.json").exists());
}

#[test]
fn an_export_that_fails_halfway_leaves_a_readable_lake_and_the_next_one_completes_it() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app, "it-c");
    let lake = ws.path("lake");
    export(&ws, &lake);
    std::fs::write(ws.path("directory.json"), directory(40, &[5], 28)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    // `runs` cannot be written (a file stands where its directory goes): the export fails after
    // rewriting users and memberships, before its manifest.
    let manifest = std::fs::read_to_string(lake.join("_scimsync/it-c.json")).unwrap();
    let runs = lake.join("runs");
    std::fs::rename(&runs, ws.path("runs.moved")).unwrap();
    std::fs::write(&runs, "not a directory").unwrap();
    let failed = ws.cli(&["export", "--lake", lake.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    assert!(stderr(&failed).contains("runs"), "{}", stderr(&failed));
    assert_eq!(
        std::fs::read_to_string(lake.join("_scimsync/it-c.json")).unwrap(),
        manifest,
        "the manifest is the last good export's"
    );
    // Every file in the lake is whole (DuckDB reads each), and no temporary file looks like one.
    std::fs::remove_file(&runs).unwrap();
    std::fs::rename(ws.path("runs.moved"), &runs).unwrap();
    let read = duckdb_rows(&lake, "it-c");
    assert!(!read["users"].as_array().unwrap().is_empty());
    assert!(parquet_files(&lake).iter().all(|(f, _)| !f.contains(".tmp")));

    let completed = export(&ws, &lake);
    assert_eq!(completed["nothing_new"], false);
    assert_eq!(written(&completed, "runs"), 1, "{completed}");
    assert_lake_matches_store(&ws, &lake, "it-c");
}

#[test]
fn export_names_what_it_needs() {
    let ws = Workspace::new("[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n");
    std::fs::write(ws.path("directory.json"), directory(3, &[], 3)).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["export", "--lake", "lake"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("set `store_id = \"...\"`"), "{}", stderr(&out));
    let out = ws.cli(&["export", "--lake", "lake", "--store-id", "../up"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("store id '../up'"), "{}", stderr(&out));
    let bad = Workspace::new("store_id = \"a b\"\n[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n");
    let out = bad.cli(&["export", "--lake", "lake"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("store_id"), "{}", stderr(&out));
}

/// A report's or query's rows as JSON objects (with `drop_store`, only that store's rows, without
/// their store_id), a list of groups (", ") in sorted order (string_agg joins them in no fixed
/// order), the rows sorted.
fn answer(out: &std::process::Output, drop_store: Option<&str>) -> Vec<String> {
    assert_ok(out);
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows: Vec<String> = rows
        .into_iter()
        .filter(|r| drop_store.is_none_or(|id| r["store_id"] == id))
        .map(|mut r| {
            if drop_store.is_some() {
                r.remove("store_id");
            }
            for v in r.values_mut() {
                if let Some(s) = v.as_str().filter(|s| s.contains(", ")) {
                    let mut parts: Vec<&str> = s.split(", ").collect();
                    parts.sort_unstable();
                    *v = serde_json::Value::String(parts.join(", "));
                }
            }
            serde_json::Value::Object(r).to_string()
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn every_saved_report_over_a_lake_of_two_stores_answers_as_each_store_does_now_and_at_an_instant() {
    let (app_d, app_e) = (EmulatorHost::start(Directory::default()), EmulatorHost::start(Directory::default()));
    let d = workspace(&app_d, "it-d");
    let e = workspace(&app_e, "it-e");
    // Store d changes after an instant `--at` answers for: a user deactivated, one leaves Staff.
    let before: String = d.db().query_row("SELECT max(finished_at) FROM runs", [], |r| r.get(0)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(d.path("directory.json"), directory(40, &[7], 25)).unwrap();
    assert_ok(&d.cli(&["pull"]));
    assert_ok(&d.cli(&["plan", "-q"]));
    let lake = d.path("lake");
    export(&d, &lake);
    export(&e, &lake);
    let lake_arg = lake.to_str().unwrap();
    let mut compared = 0;
    for r in scimsync::audit::reports::REPORTS {
        let over_lake = d.cli(&["report", r.name, "--lake", lake_arg, "--format", "json"]);
        for (ws, id) in [(&d, "it-d"), (&e, "it-e")] {
            let own = answer(&ws.cli(&["report", r.name, "--format", "json"]), None);
            let from_lake = answer(&over_lake, Some(id));
            assert_eq!(from_lake, own, "report {} of store {id} over the lake", r.name);
            compared += own.len();
        }
        let then = answer(&d.cli(&["report", r.name, "--at", &before, "--format", "json"]), None);
        let then_from_lake = answer(
            &d.cli(&["report", r.name, "--lake", lake_arg, "--at", &before, "--format", "json"]),
            Some("it-d"),
        );
        assert_eq!(then_from_lake, then, "report {} --at {before} of store it-d over the lake", r.name);
    }
    assert!(compared > 100, "the reports had rows to compare: {compared}");
    // Ad-hoc SQL: each store's own answer, its id first; and the state before the change.
    let sql = "SELECT source, id, active FROM users WHERE source = 'idp.corp' ORDER BY id";
    let now = answer(&d.cli(&["sql", sql, "--lake", lake_arg, "--format", "json"]), Some("it-d"));
    assert_eq!(now, answer(&d.cli(&["sql", sql, "--format", "json"]), None));
    assert!(now.iter().any(|r| r.contains("\"u7\"") && r.contains("\"active\":0")), "{now:?}");
    let then = answer(
        &d.cli(&["sql", sql, "--lake", lake_arg, "--at", &before, "--format", "json"]),
        Some("it-d"),
    );
    assert_eq!(then, answer(&d.cli(&["sql", sql, "--at", &before, "--format", "json"]), None));
    assert!(then.iter().any(|r| r.contains("\"u7\"") && r.contains("\"active\":1")), "{then:?}");
    let csv = d.cli(&["sql", "SELECT count(*) AS n FROM users", "--lake", lake_arg, "--format", "csv"]);
    assert_ok(&csv);
    assert_eq!(stdout(&csv).lines().next(), Some("store_id,n"));
    assert_eq!(stdout(&csv).lines().count(), 3, "a row per store: {}", stdout(&csv));
    // Run ids are each store's own: over a lake --at takes a time.
    let by_run = d.cli(&["sql", sql, "--lake", lake_arg, "--at", "3"]);
    assert_eq!(by_run.status.code(), Some(1));
    assert!(stderr(&by_run).contains("takes a time"), "{}", stderr(&by_run));
}

/// `scimsync cluster`: a Ballista scheduler and two executors on loopback, killed with the test.
struct Cluster {
    child: std::process::Child,
    url: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(["cluster", "--executors", "2"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().to_string();
        assert!(url.starts_with("df://localhost:"), "the cluster's URL: {url:?}");
        Cluster { child, url }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_saved_report_runs_on_a_ballista_cluster_of_two_executors_as_it_runs_here() {
    let (app_f, app_g) = (EmulatorHost::start(Directory::default()), EmulatorHost::start(Directory::default()));
    let f = workspace(&app_f, "it-f");
    let g = workspace(&app_g, "it-g");
    std::fs::write(f.path("directory.json"), directory(40, &[9], 27)).unwrap();
    assert_ok(&f.cli(&["pull"]));
    let lake = f.path("lake");
    export(&f, &lake);
    export(&g, &lake);
    let lake_arg = lake.to_str().unwrap();
    let cluster = Cluster::start(f.dir.path());
    let mut rows = 0;
    for r in scimsync::audit::reports::REPORTS {
        let here = answer(&f.cli(&["report", r.name, "--lake", lake_arg, "--format", "json"]), None);
        let there = answer(
            &f.cli(&["report", r.name, "--lake", lake_arg, "--cluster", &cluster.url, "--format", "json"]),
            None,
        );
        assert_eq!(there, here, "report {} on the cluster", r.name);
        rows += here.len();
    }
    assert!(rows > 100, "the reports had rows to compare: {rows}");
    let sql = "SELECT source, count(*) AS n, sum(active) AS active FROM users GROUP BY source";
    let there = answer(
        &f.cli(&["sql", sql, "--lake", lake_arg, "--cluster", &cluster.url, "--format", "json"]),
        None,
    );
    assert_eq!(there, answer(&f.cli(&["sql", sql, "--lake", lake_arg, "--format", "json"]), None));
    assert_eq!(there.len(), 4, "two sources in each of two stores: {there:?}");
    // A cluster that is not there is said so, naming it.
    let gone = f.cli(&["sql", sql, "--lake", lake_arg, "--cluster", "df://localhost:9", "--format", "json"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("df://localhost:9") && stderr(&gone).contains("does not answer"),
        "{}",
        stderr(&gone)
    );
    let bare = f.cli(&["sql", sql, "--lake", lake_arg, "--cluster", "localhost:9", "--format", "json"]);
    assert_eq!(bare.status.code(), Some(1));
    assert!(stderr(&bare).contains("df://host:port"), "{}", stderr(&bare));
}
