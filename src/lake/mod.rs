//! `scimsync export --lake DIR`: the store's tables, current state and history, written as
//! Parquet into a lake that several stores can share and any Parquet reader (DuckDB, Spark,
//! DataFusion) can query.
//!
//! Layout (Hive style; `store_id` and `day` are partition columns, in the path only):
//!
//! ```text
//! DIR/TABLE/store_id=ID/day=YYYY-MM-DD/part.parquet   a table with days
//! DIR/sources/store_id=ID/part.parquet                 sources (no days)
//! DIR/_scimsync/ID.json                                the store's manifest
//! ```
//!
//! Each partition is one zstd-compressed file, written beside its place and renamed over it, so a
//! reader sees the old file or the new one, never part of one. An export compares each partition
//! it reads with the manifest's digest of it and writes only those that changed; with no run or
//! event newer than the last export it reads nothing at all. Which days it reads, and whether a
//! day the store no longer has is removed, depends on the table ([`tables::Kind`]).
pub mod cluster;
pub mod manifest;
pub mod read;
pub mod tables;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use futures::StreamExt;

use self::manifest::Partition;
use self::tables::{Kind, LakeTable, TABLES};
use crate::audit::{AuditError, Auditor};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A file or directory of the lake could not be read or written.
    #[error("lake: '{path}': {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A manifest that cannot be used.
    #[error("lake: manifest '{path}': {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A store id that cannot name the store's directories.
    #[error("lake: store id '{0}': {rule}", rule = crate::config::STORE_ID_RULE)]
    StoreId(String),
    /// Another export of the same store into the same lake holds its lock.
    #[error("lake: another export of store '{store_id}' into '{lake}' is running")]
    Busy {
        /// The store id.
        store_id: String,
        /// The lake.
        lake: PathBuf,
    },
    /// A table could not be read from the store.
    #[error("lake: reading {table} from the store: {source}")]
    Read {
        /// The table.
        table: String,
        /// The auditor's error.
        source: AuditError,
    },
    /// A partition or spool file could not be written.
    #[error("lake: writing '{path}': {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Arrow's or Parquet's error.
        message: String,
    },
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::Io { path: path.into(), source }
}

/// Arrow's or Parquet's error writing `path`.
fn write_err<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> LakeError + '_ {
    move |e| LakeError::Write {
        path: path.into(),
        message: e.to_string(),
    }
}

/// What one export did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportSummary {
    /// The store's id in the lake.
    pub store_id: String,
    /// No run or event newer than the last export: nothing read, nothing written.
    pub nothing_new: bool,
    /// What was done to each table.
    pub tables: Vec<TableSummary>,
    /// Wall time of the export.
    pub seconds: f64,
}

/// What one export did to one table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableSummary {
    /// The table.
    pub table: String,
    /// Rows read from the store.
    pub rows_read: u64,
    /// Partitions (re)written.
    pub partitions_written: usize,
    /// The rows in them.
    pub rows_written: u64,
    /// Partitions removed (a day the store's current state no longer has).
    pub partitions_removed: usize,
}

impl ExportSummary {
    /// Partitions written, over every table.
    pub fn partitions_written(&self) -> usize {
        self.tables.iter().map(|t| t.partitions_written).sum()
    }
}

/// A store id as the lake's paths and the config take it.
pub fn check_store_id(id: &str) -> Result<(), LakeError> {
    if crate::config::valid_store_id(id) {
        Ok(())
    } else {
        Err(LakeError::StoreId(id.to_string()))
    }
}

/// Export the store at `store` into the lake at `lake` as `store_id`. The caller holds the
/// store's lock, so no run is half-written while the tables are read.
pub async fn export(store: &Path, lake: &Path, store_id: &str) -> Result<ExportSummary, LakeError> {
    check_store_id(store_id)?;
    let started = std::time::Instant::now();
    let meta = manifest::dir(lake);
    std::fs::create_dir_all(&meta).map_err(io(&meta))?;
    let _lock = lock(lake, store_id)?;
    let mut manifest = manifest::load(lake, store_id)?;
    let (last_run, last_event, horizon, views) = read_store_facts(store)?;
    let mut summary = ExportSummary {
        store_id: store_id.to_string(),
        ..ExportSummary::default()
    };
    if manifest.exports > 0 && last_run == manifest.last_run && last_event == manifest.last_event {
        summary.nothing_new = true;
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }
    let now = crate::time::now();
    // Log tables: rows are written on the day they come to be, so only the days from the last
    // export's on can have new ones.
    let since = manifest.exported_at.as_deref().map(|t| t.chars().take(10).collect::<String>());
    let auditor = Auditor::open(store, None).map_err(|source| LakeError::Read {
        table: "the store".into(),
        source,
    })?;
    let spool = meta.join(format!("spool-{store_id}"));
    if spool.exists() {
        std::fs::remove_dir_all(&spool).map_err(io(&spool))?; // a crashed export's
    }
    std::fs::create_dir_all(&spool).map_err(io(&spool))?;
    for table in TABLES {
        let state = manifest.tables.entry(table.name.to_string()).or_default();
        let since = if table.kind == Kind::Log { since.as_deref() } else { None };
        let days = spool_table(&auditor, table, since, &spool).await?;
        summary.tables.push(apply_days(lake, store_id, table, days, &mut state.partitions)?);
    }
    std::fs::remove_dir_all(&spool).map_err(io(&spool))?;
    // Versions the store's retention removed before the lake had them: the lake's state is whole
    // only from the store's horizon on (later prunes remove what the lake already holds).
    if let Some(h) = horizon {
        if manifest.exported_at.as_ref().is_none_or(|last| *last < h) && manifest.horizon.as_ref().is_none_or(|lake| *lake < h) {
            manifest.horizon = Some(h);
        }
    }
    manifest.views = views;
    manifest.exports += 1;
    manifest.exported_at = Some(now);
    manifest.last_run = last_run;
    manifest.last_event = last_event;
    manifest::save(lake, &manifest)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// An exclusive lock on the store's part of the lake, held while the file stays open.
fn lock(lake: &Path, store_id: &str) -> Result<File, LakeError> {
    let path = manifest::dir(lake).join(format!("{store_id}.lock"));
    let file = File::create(&path).map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LakeError::Busy {
            store_id: store_id.into(),
            lake: lake.into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

/// The newest run and event, the history horizon, and the store's own views (those the auditor
/// does not plan from `queries/views`, and not `memberships`, a table in the lake).
#[allow(clippy::type_complexity)]
fn read_store_facts(store: &Path) -> Result<(i64, i64, Option<String>, BTreeMap<String, String>), LakeError> {
    let s = crate::store::Store::open_read_only(store)?;
    let failed = |source| {
        LakeError::from(crate::store::StoreError::Sqlite {
            path: store.into(),
            source,
        })
    };
    let conn = s.connection();
    let q = |sql: &str| -> Result<i64, LakeError> {
        conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.unwrap_or(0))
            .map_err(failed)
    };
    let (run, event) = (q("SELECT max(id) FROM runs")?, q("SELECT max(id) FROM events")?);
    let horizon = crate::store::retention::history_horizon(conn).map_err(failed)?;
    let mut views = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'view'")
        .map_err(failed)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))
        .map_err(failed)?;
    for row in rows {
        let (name, sql) = row.map_err(failed)?;
        let planned_by_auditor = crate::store::VIEWS.iter().any(|(v, _)| *v == name);
        if planned_by_auditor || name == tables::MEMBERSHIPS {
            continue;
        }
        if let Some(body) = sql.as_deref().and_then(crate::store::view_body) {
            views.insert(name, body.trim().to_string());
        }
    }
    Ok((run, event, horizon, views))
}

/// One day's rows of a table, spooled to an Arrow stream file while the table is read.
struct SpooledDay {
    path: PathBuf,
    writer: Option<StreamWriter<std::io::BufWriter<File>>>,
    rows: u64,
    digest: Digest,
}

/// The partition key of a table without days.
const NO_DAY: &str = "all";

/// The partition of rows whose day is missing or not a date.
const UNKNOWN_DAY: &str = "unknown";

/// Read `table` (its days from `since` on, if given) through the auditor, spooling each day's
/// rows to its own file under `spool` and digesting them.
async fn spool_table(
    auditor: &Auditor,
    table: &LakeTable,
    since: Option<&str>,
    spool: &Path,
) -> Result<BTreeMap<String, SpooledDay>, LakeError> {
    let read_err = |source| LakeError::Read {
        table: table.name.into(),
        source,
    };
    let schema = table.schema();
    let mut stream = auditor
        .stream(&table.read_sql(since), &format!("export of {}", table.name), None)
        .await
        .map_err(read_err)?;
    let mut days: BTreeMap<String, SpooledDay> = BTreeMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| read_err(crate::audit::sql_error(&format!("export of {}", table.name), &e)))?;
        if batch.num_rows() == 0 {
            continue;
        }
        // The table's columns (the day is the last), typed as the lake's schema says.
        let day_column = batch.column(batch.num_columns() - 1).as_string::<i32>().clone();
        let table_columns: Vec<usize> = (0..batch.num_columns() - 1).collect();
        let columns = batch
            .project(&table_columns)
            .and_then(|b| crate::audit::conform(b, &schema))
            .map_err(|e| LakeError::Write {
                path: spool.into(),
                message: format!("{}: {e}", table.name),
            })?
            .columns()
            .to_vec();
        let digests = row_digests(&columns);
        // Rows by day, in the order read (a batch is almost always of one day).
        let mut by_day: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let day = match table.day {
                None => NO_DAY,
                Some(_) if day_column.is_valid(row) && valid_day(day_column.value(row)) => day_column.value(row),
                Some(_) => UNKNOWN_DAY,
            };
            by_day.entry(day).or_default().push(row as u32);
        }
        for (day, rows) in by_day {
            let spooled = match days.get_mut(day) {
                Some(s) => s,
                None => {
                    let path = spool.join(format!("{}-{}.arrows", table.name, days.len()));
                    days.entry(day.to_string()).or_insert(SpooledDay {
                        writer: Some(spool_writer(&path, &schema)?),
                        path,
                        rows: 0,
                        digest: Digest::default(),
                    })
                }
            };
            let indices = UInt32Array::from(rows);
            let taken = columns
                .iter()
                .map(|c| arrow::compute::take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(write_err(&spooled.path))?;
            let part = RecordBatch::try_new(schema.clone(), taken).map_err(write_err(&spooled.path))?;
            for &row in indices.values() {
                spooled.digest.add(digests[row as usize]);
            }
            spooled.rows += part.num_rows() as u64;
            spooled
                .writer
                .as_mut()
                .expect("open while reading")
                .write(&part)
                .map_err(write_err(&spooled.path))?;
        }
    }
    for day in days.values_mut() {
        if let Some(mut w) = day.writer.take() {
            w.finish().map_err(write_err(&day.path))?;
        }
    }
    Ok(days)
}

/// A `YYYY-MM-DD` date (what a partition directory may be named).
fn valid_day(day: &str) -> bool {
    let b = day.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn spool_writer(path: &Path, schema: &SchemaRef) -> Result<StreamWriter<std::io::BufWriter<File>>, LakeError> {
    let file = File::create(path).map_err(io(path))?;
    StreamWriter::try_new(std::io::BufWriter::new(file), schema).map_err(write_err(path))
}

/// Write the days that changed, drop the days that are gone (per the table's kind), and bring
/// `partitions` (the manifest's) in line with what is now on disk.
fn apply_days(
    lake: &Path,
    store_id: &str,
    table: &LakeTable,
    days: BTreeMap<String, SpooledDay>,
    partitions: &mut BTreeMap<String, Partition>,
) -> Result<TableSummary, LakeError> {
    let mut summary = TableSummary {
        table: table.name.into(),
        ..TableSummary::default()
    };
    let read: Vec<String> = days.keys().cloned().collect();
    for (day, spooled) in days {
        summary.rows_read += spooled.rows;
        let digest = spooled.digest.hex();
        let known = partitions.get(&day);
        let unchanged = known.is_some_and(|p| p.digest == digest && p.rows == spooled.rows);
        // History with fewer rows than the lake has: the store's retention pruned them (an export
        // long after the last one); the lake keeps them.
        let pruned = table.kind != Kind::Mirror && known.is_some_and(|p| spooled.rows < p.rows);
        if !unchanged && !pruned {
            let file = partition_file(table, store_id, &day);
            write_parquet(&spooled.path, &lake.join(&file))?;
            summary.partitions_written += 1;
            summary.rows_written += spooled.rows;
            partitions.insert(
                day,
                Partition {
                    file,
                    rows: spooled.rows,
                    digest,
                },
            );
        }
        std::fs::remove_file(&spooled.path).map_err(io(&spooled.path))?;
    }
    if table.kind == Kind::Mirror {
        let gone: Vec<String> = partitions.keys().filter(|d| !read.contains(d)).cloned().collect();
        for day in gone {
            let p = partitions.remove(&day).expect("listed above");
            let path = lake.join(&p.file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir); // only when empty
            }
            summary.partitions_removed += 1;
        }
    }
    Ok(summary)
}

/// A partition's file, relative to the lake.
fn partition_file(table: &LakeTable, store_id: &str, day: &str) -> String {
    if table.day.is_none() {
        format!("{}/store_id={store_id}/part.parquet", table.name)
    } else {
        format!("{}/store_id={store_id}/day={day}/part.parquet", table.name)
    }
}

/// Copy the spooled Arrow stream at `spool` into a zstd Parquet file at `target` (in place of
/// the one there, see [`replace_file`]).
fn write_parquet(spool: &Path, target: &Path) -> Result<(), LakeError> {
    let reader = StreamReader::try_new(std::io::BufReader::new(File::open(spool).map_err(io(spool))?), None).map_err(write_err(target))?;
    replace_file(target, |file| {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
            .set_max_row_group_bytes(Some(crate::audit::output::ROW_GROUP_BYTES))
            .set_created_by(format!("scimsync {} (lake format {})", env!("CARGO_PKG_VERSION"), tables::FORMAT))
            .build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, reader.schema(), Some(props)).map_err(write_err(target))?;
        for batch in reader {
            writer.write(&batch.map_err(write_err(target))?).map_err(write_err(target))?;
        }
        writer.into_inner().map_err(write_err(target))
    })
}

/// Write `bytes` to `path` in place of what is there (see [`replace_file`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LakeError> {
    replace_file(path, |mut file| {
        use std::io::Write;
        file.write_all(bytes).map_err(io(path))?;
        Ok(file)
    })
}

/// Replace `target` with what `fill` writes: into a hidden file beside it (`.NAME.tmp`, which no
/// reader of `*.parquet` or `*.json` takes), synced, then renamed over it, so a reader sees the
/// old file or the new one, never part of one.
fn replace_file(target: &Path, fill: impl FnOnce(File) -> Result<File, LakeError>) -> Result<(), LakeError> {
    let dir = target.parent().expect("a lake file is in a directory");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = target.file_name().expect("a file").to_string_lossy();
    let temporary = dir.join(format!(".{name}.tmp"));
    let file = fill(File::create(&temporary).map_err(io(&temporary))?)?;
    file.sync_all().map_err(io(&temporary))?;
    drop(file);
    std::fs::rename(&temporary, target).map_err(io(target))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all(); // the rename itself, on file systems that need it
    }
    Ok(())
}

/// An order-independent digest of a set of rows: the sums of their 128-bit hashes, and their
/// count beside it in the manifest.
#[derive(Debug, Default, Clone, Copy)]
struct Digest {
    high: u64,
    low: u64,
}

impl Digest {
    fn add(&mut self, row: u128) {
        self.high = self.high.wrapping_add((row >> 64) as u64);
        self.low = self.low.wrapping_add(row as u64);
    }

    fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.high, self.low)
    }
}

/// Each row's hash: its values in column order, each marked as NULL, an integer or text (with its
/// length), so that no two different rows run together into the same bytes.
fn row_digests(columns: &[ArrayRef]) -> Vec<u128> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut out = Vec::with_capacity(rows);
    let mut bytes = Vec::with_capacity(256);
    for row in 0..rows {
        bytes.clear();
        for c in columns {
            if c.is_null(row) {
                bytes.push(0);
                continue;
            }
            match c.data_type() {
                DataType::Int64 => {
                    bytes.push(1);
                    bytes.extend_from_slice(&c.as_primitive::<arrow::datatypes::Int64Type>().value(row).to_le_bytes());
                }
                _ => {
                    let s = c.as_string::<i32>().value(row);
                    bytes.push(2);
                    bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    bytes.extend_from_slice(s.as_bytes());
                }
            }
        }
        out.push(xxhash_rust::xxh3::xxh3_128(&bytes));
    }
    out
}

/// The schema of a lake table's files, for readers (tests, `sql --lake` later).
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    TABLES.iter().find(|t| t.name == table).map(|t| t.schema())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn digests_do_not_depend_on_row_order_but_on_every_value() {
        let a: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![Some("ab"), Some("c"), None]));
        let b: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(1), None, Some(3)]));
        let digest = |cols: &[ArrayRef]| {
            let mut d = Digest::default();
            row_digests(cols).into_iter().for_each(|h| d.add(h));
            d.hex()
        };
        let reversed = |c: &ArrayRef| arrow::compute::take(c, &UInt32Array::from(vec![2, 1, 0]), None).unwrap();
        assert_eq!(digest(&[a.clone(), b.clone()]), digest(&[reversed(&a), reversed(&b)]));
        // "ab","c" and "a","bc" hold the same characters in the same order: still different rows.
        let split: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![Some("a"), Some("bc"), None]));
        assert_ne!(digest(&[a.clone(), b.clone()]), digest(&[split, b.clone()]));
        let null_for_empty: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![Some("ab"), Some("c"), Some("")]));
        assert_ne!(digest(&[a, b.clone()]), digest(&[null_for_empty, b]));
    }

    /// A spooled day of `table` whose first (integer) column counts from `from`, the rest NULL.
    fn spooled(table: &LakeTable, dir: &Path, name: &str, from: i64, rows: usize) -> SpooledDay {
        let schema = table.schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| -> ArrayRef {
                if i == 0 {
                    Arc::new(arrow::array::Int64Array::from_iter_values(from..from + rows as i64))
                } else {
                    arrow::array::new_null_array(f.data_type(), rows)
                }
            })
            .collect();
        let mut digest = Digest::default();
        row_digests(&columns).into_iter().for_each(|h| digest.add(h));
        let path = dir.join(name);
        let mut w = spool_writer(&path, &schema).unwrap();
        w.write(&RecordBatch::try_new(schema, columns).unwrap()).unwrap();
        w.finish().unwrap();
        SpooledDay {
            path,
            writer: None,
            rows: rows as u64,
            digest,
        }
    }

    #[test]
    fn each_kind_of_table_rewrites_keeps_or_removes_its_days_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        for (name, kind) in [("users", Kind::Mirror), ("events", Kind::Log), ("operation_rows", Kind::Kept)] {
            let table = TABLES.iter().find(|t| t.name == name).unwrap();
            assert_eq!(table.kind, kind);
            let mut partitions = BTreeMap::new();
            let first: BTreeMap<String, SpooledDay> = [
                ("2026-01-01".to_string(), spooled(table, dir.path(), "a", 0, 3)),
                ("2026-01-02".to_string(), spooled(table, dir.path(), "b", 10, 2)),
            ]
            .into();
            let s = apply_days(&lake, "s1", table, first, &mut partitions).unwrap();
            assert_eq!((s.partitions_written, s.rows_written), (2, 5), "{name}");
            let old_day = lake.join(&partitions["2026-01-01"].file);
            // Day 1 read again with the same rows: not written. Day 2 not read at all.
            let again: BTreeMap<String, SpooledDay> = [("2026-01-01".to_string(), spooled(table, dir.path(), "a", 0, 3))].into();
            let s = apply_days(&lake, "s1", table, again, &mut partitions).unwrap();
            assert_eq!(s.partitions_written, 0, "{name}");
            let day_two_kept = partitions.contains_key("2026-01-02");
            assert_eq!(s.partitions_removed, usize::from(!day_two_kept), "{name}");
            assert_eq!(day_two_kept, kind != Kind::Mirror, "{name}: a day the store no longer has");
            // Day 1 with one row fewer (pruned) and then with a changed row.
            let fewer: BTreeMap<String, SpooledDay> = [("2026-01-01".to_string(), spooled(table, dir.path(), "a", 0, 2))].into();
            let s = apply_days(&lake, "s1", table, fewer, &mut partitions).unwrap();
            assert_eq!(s.partitions_written, usize::from(kind == Kind::Mirror), "{name}: fewer rows");
            let changed: BTreeMap<String, SpooledDay> = [("2026-01-01".to_string(), spooled(table, dir.path(), "a", 100, 3))].into();
            let s = apply_days(&lake, "s1", table, changed, &mut partitions).unwrap();
            assert_eq!(s.partitions_written, 1, "{name}: changed rows");
            assert!(
                old_day.exists() && !dir.path().join("a").exists(),
                "{name}: renamed in place, spool removed"
            );
        }
    }

    #[test]
    fn store_ids_are_safe_path_names() {
        for ok in ["eu", "us-east_1", "tenant.42"] {
            assert!(check_store_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "_meta", "spaced id", &"x".repeat(65)] {
            assert!(check_store_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_are_dates() {
        assert!(valid_day("2026-12-05"));
        for bad in ["2026-12-5", "all", "2026/12/05", "2026-12-05T"] {
            assert!(!valid_day(bad), "{bad}");
        }
    }
}
