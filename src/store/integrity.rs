//! The store's integrity (`scimsync check`) and consistent copies (`scimsync backup`).
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::schema;
use super::{Result, StoreError};

/// Rows that point at something the store no longer has: (what, the query counting them, the
/// schema version that has what it reads).
const ORPHANS: &[(&str, &str, i64)] = &[
    (
        "memberships of a user the store does not have",
        "SELECT count(*) FROM member_keys m WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.uid = m.uid)",
        6,
    ),
    (
        "memberships of a group the store does not have",
        "SELECT count(*) FROM member_keys m WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.gid = m.gid)",
        6,
    ),
    (
        "findings of a run the store does not have",
        "SELECT count(*) FROM findings f WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = f.run_id)",
        2,
    ),
    (
        "plans without their run",
        "SELECT count(*) FROM plans p WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = p.plan_id)",
        3,
    ),
    (
        "operations of a plan the store does not have",
        "SELECT count(*) FROM operations o WHERE NOT EXISTS (SELECT 1 FROM plans p WHERE p.plan_id = o.plan_id)",
        3,
    ),
    (
        "plan runs sharing the findings of a run the store does not have",
        "SELECT count(*) FROM runs s WHERE s.findings_of IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = s.findings_of)",
        10,
    ),
    (
        "plans sharing the operations of a plan the store does not have",
        "SELECT count(*) FROM plans s WHERE s.operations_of IS NOT NULL AND NOT EXISTS (SELECT 1 FROM plans p WHERE p.plan_id = s.operations_of)",
        10,
    ),
];

/// What `check` found in the SQLite file: each problem in words (empty: sound).
pub fn check_file(path: &Path) -> Result<Vec<String>> {
    let err = |source| StoreError::Sqlite { path: path.into(), source };
    if !path.exists() {
        return Ok(vec![format!("no store at '{}'", path.display())]);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(err)?;
    let mut problems = Vec::new();
    // quick_check reads every page: a damaged one is named here, whatever table it holds.
    let answer: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect());
    match answer {
        Ok(lines) if lines == ["ok"] => {}
        Ok(lines) => problems.extend(lines.into_iter().map(|l| format!("integrity: {l}"))),
        Err(e) => {
            problems.push(format!("integrity: {e}"));
            return Ok(problems);
        }
    }
    let version: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("schema version unreadable: {e}"));
            return Ok(problems);
        }
    };
    let known = schema::known_version();
    if version > known {
        problems.push(format!(
            "schema version {version} is newer than this scimsync's ({known}): use the scimsync that wrote it"
        ));
        return Ok(problems);
    }
    if version < known {
        // Not damage: the next command that opens it for writing upgrades it.
        tracing::info!("schema version {version}; this scimsync upgrades it to {known} when it next writes");
    }
    for (what, sql, _) in ORPHANS.iter().filter(|(_, _, since)| version >= *since) {
        match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
            Ok(0) => {}
            Ok(n) => problems.push(format!("{n} {what}")),
            Err(e) => problems.push(format!("{what}: cannot count ({e})")),
        }
    }
    Ok(problems)
}

/// A consistent copy of the store at `to` while other commands read and write it: SQLite's
/// online backup in one step (one read transaction: in WAL mode writers go on meanwhile).
/// Refuses an existing `to`; the copy is written beside it and renamed into place only when
/// complete, so `to` is never a partial file.
pub fn backup(from: &Path, to: &Path) -> Result<u64> {
    if to.exists() {
        return Err(StoreError::Input(format!("'{}' exists: backup does not overwrite", to.display())));
    }
    if !from.exists() {
        return Err(StoreError::Input(format!("no store at '{}'", from.display())));
    }
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|source| StoreError::Sqlite { path: from.into(), source })?;
    let dst_err = |source| StoreError::Sqlite {
        path: partial.clone(),
        source,
    };
    {
        let mut dst = Connection::open(&partial).map_err(dst_err)?;
        let b = rusqlite::backup::Backup::new(&src, &mut dst).map_err(dst_err)?;
        b.step(-1).map_err(dst_err)?;
    }
    // A file, not a WAL pair: the copy stands alone.
    let conn = Connection::open(&partial).map_err(dst_err)?;
    conn.pragma_update(None, "journal_mode", "DELETE").map_err(dst_err)?;
    drop(conn);
    // hard_link fails if `to` appeared meanwhile: never overwrite.
    std::fs::hard_link(&partial, to).map_err(|e| StoreError::Input(format!("cannot create '{}': {e}", to.display())))?;
    let _ = std::fs::remove_file(&partial);
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}
