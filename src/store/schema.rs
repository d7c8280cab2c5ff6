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
];

pub struct Version {
    found: i64,
}

impl Version {
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
    sync_views(conn)?;
    Ok(Version {
        found: current.max(MIGRATIONS.len() as i64),
    })
}
