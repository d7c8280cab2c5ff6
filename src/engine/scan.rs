//! SQLite → Arrow: read a query's rows into record batches of a declared schema. Schemas are
//! explicit (never inferred from the first row, which breaks on NULLs), strings are plain
//! `Utf8`, and match keys are normalised here, once, rather than by `lower()` in every query.
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// Rows per batch.
pub const BATCH_ROWS: usize = 65_536;

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Col {
    /// Text as stored.
    Text,
    /// Text, trimmed and lower-cased: a correlation key. Empty becomes NULL.
    Key,
    /// An integer.
    Int,
    /// A boolean (0/1).
    Bool,
}

/// A table to scan: its name in the engine, the SQL that reads it, and its columns.
pub struct TableScan {
    /// Its name in the engine.
    pub name: &'static str,
    /// The SQL that reads it.
    pub sql: String,
    /// Its columns and how each is read.
    pub columns: Vec<(&'static str, Col)>,
}

impl TableScan {
    /// Its Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(n, c)| {
                    let t = match c {
                        Col::Text | Col::Key => DataType::Utf8,
                        Col::Int => DataType::Int64,
                        Col::Bool => DataType::Boolean,
                    };
                    Field::new(*n, t, true)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// A correlation key: trimmed and lower-cased; empty is none.
pub fn normalise_key(s: &str) -> Option<String> {
    let mut buf = String::new();
    normalise_key_into(s, &mut buf).then_some(buf)
}

/// Trim and lower-case `s` into `buf` (reused across rows); false when nothing is left.
pub fn normalise_key_into(s: &str, buf: &mut String) -> bool {
    buf.clear();
    let t = s.trim();
    if t.is_ascii() {
        buf.extend(t.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        buf.extend(t.chars().flat_map(char::to_lowercase));
    }
    !buf.is_empty()
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
}

fn builders(cols: &[Col]) -> Vec<Builder> {
    cols.iter()
        .map(|c| match c {
            Col::Text | Col::Key => Builder::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
            Col::Int => Builder::Int(Int64Builder::with_capacity(BATCH_ROWS)),
            Col::Bool => Builder::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
        })
        .collect()
}

fn finish(schema: &SchemaRef, bs: &mut [Builder]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let arrays: Vec<ArrayRef> = bs
        .iter_mut()
        .map(|b| match b {
            Builder::Text(b) => Arc::new(b.finish()) as ArrayRef,
            Builder::Int(b) => Arc::new(b.finish()) as ArrayRef,
            Builder::Bool(b) => Arc::new(b.finish()) as ArrayRef,
        })
        .collect();
    RecordBatch::try_new(schema.clone(), arrays)
}

/// Why a table could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// SQLite refused (a damaged file said plainly).
    #[error("reading table {table}: {}", crate::store::describe_sqlite(.source))]
    Sqlite {
        /// The table.
        table: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The rows did not make a batch.
    #[error("reading table {table}: {source}")]
    Arrow {
        /// The table.
        table: &'static str,
        /// Arrow's error.
        source: arrow::error::ArrowError,
    },
}

/// Scan every table, `threads` at a time, each on its own read-only connection to `path`.
pub fn scan_all(path: &std::path::Path, tables: &[TableScan], threads: usize) -> Result<Vec<Vec<RecordBatch>>, ScanError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Slot = std::sync::Mutex<Option<Result<Vec<RecordBatch>, ScanError>>>;
    let results: Vec<Slot> = tables.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(tables.len()) {
            s.spawn(|| {
                let conn = match open(path) {
                    Ok(c) => c,
                    Err(source) => {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i < tables.len() {
                            *results[i].lock().expect("not poisoned") = Some(Err(ScanError::Sqlite {
                                table: tables[i].name,
                                source,
                            }));
                        }
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= tables.len() {
                        break;
                    }
                    let t = std::time::Instant::now();
                    let scanned = scan(&conn, &tables[i]);
                    tracing::debug!(table = tables[i].name, seconds = t.elapsed().as_secs_f64(), "scanned");
                    *results[i].lock().expect("not poisoned") = Some(scanned);
                }
            });
        }
    });
    results
        .into_iter()
        .zip(tables)
        .map(|(r, t)| {
            r.into_inner().expect("not poisoned").unwrap_or_else(|| {
                Err(ScanError::Sqlite {
                    table: t.name,
                    source: rusqlite::Error::InvalidQuery,
                })
            })
        })
        .collect()
}

/// A read-only connection to the store for scans (waiting up to 10 s for a writer's lock).
pub(super) fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// [`scan`] of one table on a read-only connection of its own to the store at `path`.
pub fn scan_alone(path: &std::path::Path, t: &TableScan) -> Result<Vec<RecordBatch>, ScanError> {
    let conn = open(path).map_err(|source| ScanError::Sqlite { table: t.name, source })?;
    let started = std::time::Instant::now();
    let scanned = scan(&conn, t);
    tracing::debug!(table = t.name, seconds = started.elapsed().as_secs_f64(), "scanned");
    scanned
}

/// Run the scan's SQL and convert every row.
pub fn scan(conn: &Connection, t: &TableScan) -> Result<Vec<RecordBatch>, ScanError> {
    let sqlite = |source| ScanError::Sqlite { table: t.name, source };
    let mut stmt = conn.prepare(&t.sql).map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    let cols: Vec<Col> = t.columns.iter().map(|(_, c)| *c).collect();
    read_rows(&mut rows, &cols, &t.schema()).map_err(|e| match e {
        RowsError::Sqlite(source) => ScanError::Sqlite { table: t.name, source },
        RowsError::Arrow(source) => ScanError::Arrow { table: t.name, source },
    })
}

/// Why [`read_rows`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// SQLite refused (a damaged file said plainly).
    #[error("{}", crate::store::describe_sqlite(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// The rows did not make a batch.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Convert every row of a running query into batches of `schema` (its fields read as `cols`).
/// A value of another SQLite type than its column's becomes NULL (a number in a text column
/// becomes its text).
pub fn read_rows(rows: &mut rusqlite::Rows<'_>, cols: &[Col], schema: &SchemaRef) -> Result<Vec<RecordBatch>, RowsError> {
    let mut batches = Vec::new();
    for_each_batch(rows, cols, schema, &mut |b| {
        batches.push(b);
        true
    })?;
    Ok(batches)
}

/// [`read_rows`], handing each batch of [`BATCH_ROWS`] rows to `emit` as soon as it is full
/// instead of holding them all; `emit` returns false to stop reading (the reader went away).
/// At least one batch is emitted (an empty one for no rows).
pub fn for_each_batch(
    rows: &mut rusqlite::Rows<'_>,
    cols: &[Col],
    schema: &SchemaRef,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), RowsError> {
    let mut bs = builders(cols);
    let mut key = String::new();
    let mut emitted = false;
    let mut n = 0usize;
    while let Some(row) = rows.next()? {
        for (i, (col, b)) in cols.iter().zip(bs.iter_mut()).enumerate() {
            let v = row.get_ref(i)?;
            match (b, v) {
                (Builder::Text(b), ValueRef::Text(s)) => {
                    let s = std::str::from_utf8(s).unwrap_or_default();
                    if *col == Col::Key {
                        if normalise_key_into(s, &mut key) {
                            b.append_value(&key)
                        } else {
                            b.append_null()
                        }
                    } else {
                        b.append_value(s)
                    }
                }
                (Builder::Text(b), ValueRef::Integer(x)) => b.append_value(x.to_string()),
                (Builder::Text(b), ValueRef::Real(x)) => b.append_value(x.to_string()),
                (Builder::Text(b), _) => b.append_null(),
                (Builder::Int(b), ValueRef::Integer(x)) => b.append_value(x),
                (Builder::Int(b), _) => b.append_null(),
                (Builder::Bool(b), ValueRef::Integer(x)) => b.append_value(x != 0),
                (Builder::Bool(b), _) => b.append_null(),
            }
        }
        n += 1;
        if n == BATCH_ROWS {
            emitted = true;
            if !emit(finish(schema, &mut bs)?) {
                return Ok(());
            }
            n = 0;
        }
    }
    if n > 0 || !emitted {
        emit(finish(schema, &mut bs)?);
    }
    Ok(())
}

/// The columns of the engine's `users` table, in scan order.
pub fn user_columns() -> Vec<(&'static str, Col)> {
    use Col::*;
    vec![
        ("source", Text),
        ("uid", Int),
        ("id", Text),
        ("user_name", Text),
        ("user_name_key", Key),
        ("external_id", Text),
        ("external_id_key", Key),
        ("email", Text),
        ("email_key", Key),
        ("given_name", Text),
        ("family_name", Text),
        ("formatted", Text),
        ("display_name", Text),
        ("active", Bool),
        ("title", Text),
        ("phone", Text),
        ("timezone", Text),
        ("role", Text),
    ]
}

/// The columns of the engine's `groups` table, in scan order.
pub fn group_columns() -> Vec<(&'static str, Col)> {
    use Col::*;
    vec![
        ("source", Text),
        ("gid", Int),
        ("id", Text),
        ("display_name", Text),
        ("name_key", Key),
        ("external_id", Text),
    ]
}

/// The columns of `memberships` (and `active_members`): gid and uid are unique across
/// sources, so no source column is needed.
pub fn membership_columns() -> Vec<(&'static str, Col)> {
    vec![("gid", Col::Int), ("uid", Col::Int)]
}

/// The scans of the per-source tables, restricted by a SQL condition.
fn users_scan(condition: &str) -> TableScan {
    TableScan {
        name: "users",
        sql: format!(
            "SELECT source, uid, id, user_name, user_name, external_id, external_id, email, email, given_name, family_name, formatted, \
             display_name, active, title, phone, timezone, role FROM users WHERE {condition}"
        ),
        columns: user_columns(),
    }
}

fn groups_scan(condition: &str) -> TableScan {
    TableScan {
        name: "groups",
        sql: format!("SELECT source, gid, id, display_name, display_name, external_id FROM groups WHERE {condition}"),
        columns: group_columns(),
    }
}

/// Memberships straight from their key table (the `memberships` view would join the ids
/// back): all of them, or those of one source's groups.
fn memberships_scan(source: Option<&str>) -> TableScan {
    let sql = match source {
        None => "SELECT gid, uid FROM member_keys".to_string(),
        Some(source) => format!("SELECT k.gid, k.uid FROM groups g JOIN member_keys k ON k.gid = g.gid WHERE g.source = {source}"),
    };
    TableScan {
        name: "memberships",
        sql,
        columns: membership_columns(),
    }
}

/// The three per-source tables read from SQLite for one source (when its columnar copy is
/// missing or stale). Source names are `idp.NAME`/`app.NAME` with NAME of [A-Za-z0-9_-].
pub fn source_tables(source: &str) -> Vec<TableScan> {
    let quoted = crate::store::sql_text(source);
    let condition = format!("source = {quoted}");
    vec![users_scan(&condition), groups_scan(&condition), memberships_scan(Some(&quoted))]
}

/// The store tables the drift queries read (current state only; `raw` is not needed). The
/// users table, the widest, and the links, the longest of those always read from SQLite, are
/// read as two halves of their rowid ranges (up to `max_uid` and `max_link`) so both threads
/// share them; scans with the same name are registered as one table.
pub fn drift_tables(max_uid: i64, max_link: i64) -> Vec<TableScan> {
    use Col::*;
    let mid = max_uid / 2;
    let link_mid = max_link / 2;
    let links_scan = |range: String| TableScan {
        name: "prior_links",
        sql: format!("SELECT app, idp_user_id, sp_user_id, matched_by, idp_uid, sp_uid FROM links WHERE rowid {range}"),
        columns: vec![
            ("app", Text),
            ("idp_user_id", Text),
            ("sp_user_id", Text),
            ("matched_by", Text),
            ("idp_uid", Int),
            ("sp_uid", Int),
        ],
    };
    vec![
        users_scan(&format!("uid BETWEEN {} AND {mid}", i64::MIN)),
        users_scan(&format!("uid BETWEEN {} AND {}", mid + 1, i64::MAX)),
        groups_scan("1"),
        memberships_scan(None),
        TableScan {
            name: "bindings",
            sql: "SELECT app, idp, group_name, idp_group_id FROM bindings".into(),
            columns: vec![("app", Text), ("idp", Text), ("group_name", Text), ("idp_group_id", Text)],
        },
        links_scan(format!("BETWEEN {} AND {link_mid}", i64::MIN)),
        links_scan(format!("BETWEEN {} AND {}", link_mid + 1, i64::MAX)),
        TableScan {
            name: "prior_group_links",
            sql: "SELECT app, idp_group_id, sp_group_id, matched_by, idp_gid, sp_gid FROM group_links".into(),
            columns: vec![
                ("app", Text),
                ("idp_group_id", Text),
                ("sp_group_id", Text),
                ("matched_by", Text),
                ("idp_gid", Int),
                ("sp_gid", Int),
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    #[test]
    fn keys_are_trimmed_lowercased_and_empty_is_null() {
        assert_eq!(normalise_key("  Alice@Ex.COM "), Some("alice@ex.com".into()));
        assert_eq!(normalise_key("ÉVA"), Some("éva".into()));
        assert_eq!(normalise_key("   "), None);
    }

    #[test]
    fn scans_nulls_in_the_first_row_with_the_declared_type() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(a TEXT, b INTEGER); INSERT INTO t VALUES (NULL, NULL), (' X ', 3);")
            .unwrap();
        let t = TableScan {
            name: "t",
            sql: "SELECT a, a, b FROM t".into(),
            columns: vec![("a", Col::Text), ("a_key", Col::Key), ("b", Col::Int)],
        };
        let batches = scan(&conn, &t).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let keys = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(keys.is_null(0));
        assert_eq!(keys.value(1), "x");
    }
}
