//! A columnar copy of each source's current snapshot: Arrow IPC files beside the store
//! (`<store>.columns/<source>.<table>.arrow`), written right after a successful pull from the
//! snapshot and the keys the store gave it. Planning loads them instead of decoding SQLite rows
//! when their run id is the source's last successful pull; anything missing, stale or unreadable
//! is read from SQLite instead, so the copy can be deleted at any time.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::scan::{self, normalise_key_into, Col};
use crate::model::Snapshot;
use crate::store::SnapshotKeys;

const RUN_KEY: &str = "scimsync.run_id";

pub fn dir_for(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".columns");
    store.with_file_name(name)
}

fn file(store: &Path, source: &str, table: &str) -> PathBuf {
    dir_for(store).join(format!("{source}.{table}.arrow"))
}

/// Whether plans may use the columnar copy (SCIMSYNC_COLUMNS=off forces SQLite scans).
/// Drop a source's columnar copy (after a single-object refresh made it out of date).
pub fn invalidate(store: &Path, source: &str) {
    for table in ["users", "groups", "memberships", "active_members"] {
        let _ = std::fs::remove_file(file(store, source, table));
    }
}

pub fn enabled() -> bool {
    std::env::var("SCIMSYNC_COLUMNS").map(|v| v != "off").unwrap_or(true)
}

fn text(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn key(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    let mut buf = String::new();
    for v in values {
        match v {
            Some(s) if normalise_key_into(&s, &mut buf) => b.append_value(&buf),
            _ => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

fn ints(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = Int64Builder::new();
    values.for_each(|v| b.append_value(v));
    Arc::new(b.finish())
}

/// The batches of one source's tables, in the engine's scan schemas.
pub fn batches(
    source: &str,
    snap: &Snapshot,
    keys: &SnapshotKeys,
) -> Result<Vec<(&'static str, Vec<RecordBatch>)>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    let users_schema = schema_of(&scan::user_columns());
    let mut users = Vec::new();
    for (chunk, ks) in snap.users.chunks(scan::BATCH_ROWS).zip(keys.user_keys.chunks(scan::BATCH_ROWS)) {
        let s = |f: fn(&crate::model::User) -> &Option<String>| chunk.iter().map(move |u| f(u).clone());
        let mut active = BooleanBuilder::new();
        chunk.iter().for_each(|u| active.append_value(u.active));
        let cols: Vec<ArrayRef> = vec![
            text(chunk.iter().map(|_| Some(source.to_string()))),
            ints(ks.iter().copied()),
            text(chunk.iter().map(|u| Some(u.id.clone()))),
            text(s(|u| &u.user_name)),
            key(s(|u| &u.user_name)),
            text(s(|u| &u.external_id)),
            key(s(|u| &u.external_id)),
            text(s(|u| &u.email)),
            key(s(|u| &u.email)),
            text(s(|u| &u.given_name)),
            text(s(|u| &u.family_name)),
            text(s(|u| &u.formatted)),
            text(s(|u| &u.display_name)),
            Arc::new(active.finish()),
            text(s(|u| &u.title)),
            text(s(|u| &u.phone)),
            text(s(|u| &u.timezone)),
            text(s(|u| &u.role)),
        ];
        users.push(RecordBatch::try_new(users_schema.clone(), cols)?);
    }
    out.push(("users", users));

    let groups_schema = schema_of(&scan::group_columns());
    let mut groups = Vec::new();
    for (chunk, ks) in snap.groups.chunks(scan::BATCH_ROWS).zip(keys.group_keys.chunks(scan::BATCH_ROWS)) {
        let cols: Vec<ArrayRef> = vec![
            text(chunk.iter().map(|_| Some(source.to_string()))),
            ints(ks.iter().copied()),
            text(chunk.iter().map(|g| Some(g.id.clone()))),
            text(chunk.iter().map(|g| Some(g.display_name.clone()))),
            key(chunk.iter().map(|g| Some(g.display_name.clone()))),
            text(chunk.iter().map(|g| g.external_id.clone())),
        ];
        groups.push(RecordBatch::try_new(groups_schema.clone(), cols)?);
    }
    out.push(("groups", groups));

    let m_schema = schema_of(&scan::membership_columns());
    let memberships = keys
        .membership_keys
        .chunks(scan::BATCH_ROWS)
        .map(|c| RecordBatch::try_new(m_schema.clone(), vec![ints(c.iter().map(|k| k.0)), ints(c.iter().map(|k| k.1))]))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(("memberships", memberships));

    // Memberships of active users (scope and the membership diff read only these).
    let active: rustc_hash::FxHashSet<i64> = snap
        .users
        .iter()
        .zip(&keys.user_keys)
        .filter(|(u, _)| u.active)
        .map(|(_, k)| *k)
        .collect();
    let active_pairs: Vec<(i64, i64)> = keys.membership_keys.iter().copied().filter(|(_, u)| active.contains(u)).collect();
    let active_members = active_pairs
        .chunks(scan::BATCH_ROWS)
        .map(|c| RecordBatch::try_new(m_schema.clone(), vec![ints(c.iter().map(|k| k.0)), ints(c.iter().map(|k| k.1))]))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(("active_members", active_members));
    Ok(out)
}

fn schema_of(cols: &[(&'static str, Col)]) -> SchemaRef {
    scan::TableScan {
        name: "",
        sql: String::new(),
        columns: cols.to_vec(),
    }
    .schema()
}

/// Write the columnar copy of `source` as of pull `run_id` (each file atomically: temp + rename).
pub fn write(store: &Path, source: &str, run_id: i64, snap: &Snapshot, keys: &SnapshotKeys) -> Result<(), String> {
    let dir = dir_for(store);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (table, batches) in batches(source, snap, keys).map_err(|e| e.to_string())? {
        let path = file(store, source, table);
        let tmp = path.with_extension("arrow.tmp");
        let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| empty_schema(table));
        let mut meta = schema.metadata().clone();
        meta.insert(RUN_KEY.into(), run_id.to_string());
        let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta));
        let f = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut w = FileWriter::try_new(f, &schema).map_err(|e| e.to_string())?;
        for b in &batches {
            w.write(&b.clone().with_schema(schema.clone()).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn empty_schema(table: &str) -> SchemaRef {
    match table {
        "users" => schema_of(&scan::user_columns()),
        "groups" => schema_of(&scan::group_columns()),
        _ => schema_of(&scan::membership_columns()),
    }
}

/// The columnar copy of one table of `source`, if it is of pull `run_id` and of the schema
/// the engine expects.
pub fn read(store: &Path, source: &str, run_id: i64, table: &str) -> Option<Vec<RecordBatch>> {
    let path = file(store, source, table);
    let f = File::open(&path).ok()?;
    let reader = FileReader::try_new(f, None)
        .map_err(|e| tracing::debug!(path = %path.display(), "unreadable columnar copy: {e}"))
        .ok()?;
    let schema = reader.schema();
    if schema.metadata().get(RUN_KEY).map(String::as_str) != Some(run_id.to_string().as_str()) {
        tracing::debug!(path = %path.display(), run_id, "columnar copy is of another pull");
        return None;
    }
    let expected = empty_schema(table);
    if schema.fields() != expected.fields() {
        tracing::debug!(path = %path.display(), "columnar copy has another schema");
        return None;
    }
    let mut out: Vec<RecordBatch> = Vec::new();
    for b in reader {
        // Re-wrap the columns in the engine's schema (without the file's run-id metadata).
        let b = b
            .map_err(|e| tracing::debug!(path = %path.display(), "unreadable columnar batch: {e}"))
            .ok()?;
        out.push(RecordBatch::try_new(expected.clone(), b.columns().to_vec()).ok()?);
    }
    if out.is_empty() {
        out.push(RecordBatch::new_empty(expected));
    }
    Some(out)
}
