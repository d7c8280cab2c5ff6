//! Versioned migrations, tracked in SQLite's `user_version`. Each entry upgrades from the
//! previous version; a store newer than the binary is refused rather than misread.
use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
];

/// The schema version this build writes.
pub fn known_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub struct Version {
    found: i64,
}

impl Version {
    /// Written by an older scimsync: [`migrate`] upgrades it.
    pub fn is_older(&self) -> bool {
        self.found < MIGRATIONS.len() as i64
    }

    pub fn check(self, path: &Path) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        if self.found > known {
            return Err(StoreError::TooNew {
                path: path.into(),
                found: self.found,
                known,
            });
        }
        Ok(())
    }
}

pub fn version(conn: &Connection) -> rusqlite::Result<Version> {
    Ok(Version {
        found: conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
    })
}

/// The auditor views kept as `queries/views/NAME.sql` (SQL that SQLite, DuckDB and DataFusion
/// share): installed into the store so that any SQLite tool sees them, and planned by
/// DataFusion for `scimsync sql` (where `--at` shifts the tables under them).
pub const VIEWS: &[(&str, &str)] = &[
    ("app_access", include_str!("../../queries/views/app_access.sql")),
    ("idp_vs_app", include_str!("../../queries/views/idp_vs_app.sql")),
    ("latest_findings", include_str!("../../queries/views/latest_findings.sql")),
];

/// (Re)create each auditor view whose stored SQL is not the current one.
fn sync_views(conn: &Connection) -> rusqlite::Result<()> {
    for (name, body) in VIEWS {
        let want = format!("CREATE VIEW {name} AS\n{}", body.trim_end());
        let have: Option<String> = conn
            .query_row("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?1", [name], |r| {
                r.get(0)
            })
            .ok();
        if have.as_deref() != Some(want.as_str()) {
            conn.execute_batch(&format!("DROP VIEW IF EXISTS {name};\n{want};"))?;
        }
    }
    Ok(())
}

pub fn migrate(conn: &Connection) -> rusqlite::Result<Version> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    if current < MIGRATIONS.len() as i64 {
        // An upgrade that built an index of a large store filled the page cache with it; the
        // command that opened the store should not carry that (a plan after schema 11 at 1M
        // users peaked at 976-984 MiB against 685-737).
        conn.execute_batch("PRAGMA shrink_memory")?;
        crate::memory::release_freed();
    }
    sync_views(conn)?;
    Ok(Version {
        found: current.max(MIGRATIONS.len() as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_6_moves_memberships_to_keys_and_keeps_what_the_view_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 5;
             INSERT INTO runs (id, kind, source, started_at, status) VALUES (1, 'pull', 'idp.corp', 't0', 'ok'), (2, 'pull', 'idp.corp', 't1', 'ok');
             INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id) VALUES (10, 'idp.corp', 'u1', 1, '{}', 0, 'a', 1), (11, 'idp.corp', 'u2', 1, '{}', 0, 'a', 1);
             INSERT INTO groups (gid, source, id, display_name, raw, hash, valid_from, run_id) VALUES (20, 'idp.corp', 'g1', 'G', '{}', 0, 'a', 1);
             INSERT INTO memberships VALUES ('idp.corp', 'g1', 'u2', 20, 11, 'v2', 2), ('idp.corp', 'g1', 'u1', 20, 10, 'v1', 1);",
        )
        .unwrap();
        drop(conn);
        let store = crate::store::Store::open(&path).unwrap();
        let mut stmt = store
            .connection()
            .prepare("SELECT source, group_id, user_id, gid, uid, valid_from, run_id FROM memberships ORDER BY user_id")
            .unwrap();
        let got: Vec<(String, String, String, i64, i64, String, i64)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let row = |u: &str, uid, v: &str, run| ("idp.corp".to_string(), "g1".to_string(), u.to_string(), 20, uid, v.to_string(), run);
        assert_eq!(got, vec![row("u1", 10, "v1", 1), row("u2", 11, "v2", 2)]);
    }

    /// SQLite meets an account's linked IdP user in `app_access`, and a refresh its objects, by
    /// (source, id). With the `users_source` index alone it walked every user of the IdP for
    /// each account (5 rows/s on a 1M-user store) and for each member of a refreshed group.
    #[test]
    fn sqlite_reads_app_access_by_user_key() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let mut stmt = conn.prepare("EXPLAIN QUERY PLAN SELECT * FROM app_access").unwrap();
        let steps: Vec<String> = stmt.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        let linked_user = steps
            .iter()
            .find(|s| s.starts_with("SEARCH i "))
            .unwrap_or_else(|| panic!("no search of the IdP user in {steps:#?}"));
        assert!(linked_user.contains("id=?"), "{linked_user}");
        // Refreshing one group looks each member up by id (50 members: 9.7 s at 1M without it).
        use super::super::snapshot::{GROUP_BY_ID, UID_BY_ID, USER_BY_ID};
        for lookup in [USER_BY_ID, GROUP_BY_ID, UID_BY_ID] {
            let step: String = conn
                .query_row(&format!("EXPLAIN QUERY PLAN {lookup}"), ["a", "b"], |r| r.get(3))
                .unwrap();
            assert!(step.contains("id=?"), "{lookup}: {step}");
        }
    }
}
