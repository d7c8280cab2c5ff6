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

pub fn migrate(conn: &Connection) -> rusqlite::Result<Version> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(Version {
        found: current.max(MIGRATIONS.len() as i64),
    })
}
