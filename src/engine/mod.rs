//! The drift engine: DataFusion over the store. The store's current tables are read once into
//! Arrow (see [`scan`]), the config becomes a few small tables ([`tables`]), then the SQL under
//! `queries/` runs: correlation (links), scope, and one query per finding kind. The joins run
//! in DataFusion, never pushed down into SQLite.
pub mod columnar;
mod comparison_key;
mod findings;
mod group_members;
mod mapped;
mod member_diff;
mod pairs;
pub mod planner_inputs;
mod prior;
pub mod scan;
mod scope;
pub mod tables;
mod user_links;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use mapped::CreateValues;
pub use tables::AppInput;

use crate::vocab::FindingKind;

/// Drift queries, one per finding kind, in the order findings are reported.
pub const DRIFT_QUERIES: &[(FindingKind, &str)] = &[
    (FindingKind::UserMissing, include_str!("../../queries/drift/user.missing.sql")),
    (FindingKind::UserDrift, include_str!("../../queries/drift/user.drift.sql")),
    (FindingKind::UserOrphaned, include_str!("../../queries/drift/user.orphaned.sql")),
    (FindingKind::UserReactivate, include_str!("../../queries/drift/user.reactivate.sql")),
    (
        FindingKind::UserRoleMismatch,
        include_str!("../../queries/drift/user.role_mismatch.sql"),
    ),
    (FindingKind::UserUnmanaged, include_str!("../../queries/drift/user.unmanaged.sql")),
    (FindingKind::UserConflict, include_str!("../../queries/drift/user.conflict.sql")),
    (FindingKind::GroupMissing, include_str!("../../queries/drift/group.missing.sql")),
    (FindingKind::GroupRenamed, include_str!("../../queries/drift/group.renamed.sql")),
    (FindingKind::GroupMembers, include_str!("../../queries/drift/group.members.sql")),
    (FindingKind::GroupOrphaned, include_str!("../../queries/drift/group.orphaned.sql")),
    (FindingKind::GroupTakeover, include_str!("../../queries/drift/group.takeover.sql")),
    (FindingKind::GroupDuplicate, include_str!("../../queries/drift/group.duplicate.sql")),
];
/// `queries/correlate/users.sql`.
pub const CORRELATE_USERS: &str = include_str!("../../queries/correlate/users.sql");
/// `queries/correlate/groups.sql`.
pub const CORRELATE_GROUPS: &str = include_str!("../../queries/correlate/groups.sql");
/// `queries/scope.sql`.
pub const SCOPE: &str = include_str!("../../queries/scope.sql");
/// `queries/linked_pairs.sql`.
pub const LINKED_PAIRS: &str = include_str!("../../queries/linked_pairs.sql");
/// `queries/pairs.sql`.
pub const PAIRS: &str = include_str!("../../queries/pairs.sql");
/// `queries/active_members.sql`.
pub const ACTIVE_MEMBERS: &str = include_str!("../../queries/active_members.sql");
/// `queries/correlate/prior.sql`.
pub const PRIOR: &str = include_str!("../../queries/correlate/prior.sql");
/// `queries/correlate/free.sql`.
pub const FREE: &str = include_str!("../../queries/correlate/free.sql");
/// `queries/correlate/candidates.sql`.
pub const CANDIDATES: &str = include_str!("../../queries/correlate/candidates.sql");
/// `queries/correlate/chosen.sql`.
pub const CHOSEN: &str = include_str!("../../queries/correlate/chosen.sql");
/// `queries/correlate/dropped_users.sql`.
pub const DROPPED_USERS: &str = include_str!("../../queries/correlate/dropped_users.sql");
/// `queries/correlate/dropped_groups.sql`.
pub const DROPPED_GROUPS: &str = include_str!("../../queries/correlate/dropped_groups.sql");

/// Why the engine could not answer; names the query.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading the store.
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    /// A query that did not plan or run.
    #[error("query {query}: {source}")]
    Query {
        /// The query (`drift/user.missing`, `correlate/users`, …).
        query: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// A drift query answered a kind the vocabulary does not have.
    #[error("query {query}: column kind: {source}")]
    Kind {
        /// The query.
        query: String,
        /// The name.
        source: crate::vocab::UnknownName,
    },
}

/// One finding, as every drift query returns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// The app.
    pub app: String,
    /// Its kind.
    pub kind: FindingKind,
    /// Whom or what, for people.
    pub subject: Option<String>,
    /// The IdP object.
    pub idp_id: Option<String>,
    /// The app object.
    pub sp_id: Option<String>,
    /// The attribute (or `add`/`remove` for members).
    pub attribute: Option<String>,
    /// The app's value.
    pub old_value: Option<String>,
    /// The IdP's value.
    pub new_value: Option<String>,
    /// More, in words.
    pub detail: Option<String>,
}

/// A correlation decided by this plan, to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link<'a> {
    /// The app.
    pub app: &'a str,
    /// The IdP object.
    pub idp_id: &'a str,
    /// The app object.
    pub sp_id: &'a str,
    /// How it was matched (`externalId`, `userName`, `email`, `displayName`, `created`).
    pub matched_by: &'a str,
    /// The integer keys (`users.uid` / `groups.gid`) of each side at link time.
    pub idp_key: Option<i64>,
    /// The app side's key.
    pub sp_key: Option<i64>,
}

/// The links a plan makes, kept as the engine's columns and read in [`Link`] order: held as a
/// `String` a field, a 1M-user first plan's 975,354 new links took ≈ 0.2 GiB until stored.
#[derive(Debug, Clone, Default)]
pub struct NewLinks {
    /// app, idp id, sp id, matched_by (text, never null), idp key, sp key (integers).
    rows: Option<RecordBatch>,
    /// Row positions in order.
    order: Vec<u32>,
}

impl NewLinks {
    /// How many.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Links from (app, idp id, sp id, matched_by, idp key, sp key) rows, in that order.
    #[cfg(test)]
    pub(crate) fn from_rows(rows: &[(&str, &str, &str, &str, i64, i64)]) -> NewLinks {
        use arrow::array::{ArrayRef, Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            ("app", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("idp_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
            ("sp_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
            ("matched_by", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3)))),
            ("idp_key", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4)))),
            ("sp_key", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.5)))),
        ])
        .expect("columns of one length");
        NewLinks {
            rows: Some(batch),
            order: (0..rows.len() as u32).collect(),
        }
    }

    /// Each link, in order.
    pub fn iter(&self) -> impl Iterator<Item = Link<'_>> {
        self.rows.iter().flat_map(move |b| {
            let text = |i: usize| b.column(i).as_string::<i32>();
            let key = |i: usize| b.column(i).as_primitive::<arrow::datatypes::Int64Type>();
            let (app, idp, sp, by, idp_key, sp_key) = (text(0), text(1), text(2), text(3), key(4), key(5));
            self.order.iter().map(move |&i| {
                let i = i as usize;
                let key = |a: &arrow::array::Int64Array| (!a.is_null(i)).then(|| a.value(i));
                Link {
                    app: app.value(i),
                    idp_id: idp.value(i),
                    sp_id: sp.value(i),
                    matched_by: by.value(i),
                    idp_key: key(idp_key),
                    sp_key: key(sp_key),
                }
            })
        })
    }
}

/// What correlation decided, handed over as soon as it is known (see [`drift_reporting`]).
#[derive(Debug, Default)]
pub struct Correlated {
    /// Links made by this plan (stored links that still hold are not repeated).
    pub links: NewLinks,
    /// Group links made by this plan.
    pub group_links: NewLinks,
    /// Stored links whose app side is gone: (app, "user" | "group", app id).
    pub dropped: Vec<(String, String, String)>,
}

/// What a drift run found.
#[derive(Debug, Default)]
pub struct DriftResult {
    /// Every finding, in their total order (shared with the plan's writer as soon as they
    /// are: [`drift_reporting`], as is what correlation decided).
    pub findings: Arc<Vec<Finding>>,
    /// The members of the groups the plan creates (see [`planner_inputs`]).
    pub new_group_members: planner_inputs::NewGroupMembers,
    /// The accounts of the users group operations name (see [`planner_inputs`]).
    pub member_links: planner_inputs::MemberLinks,
    /// The IdP users the planner needs whole (see [`planner_inputs`]).
    pub idp_users: planner_inputs::IdpUsers,
    /// The mapped values of the accounts the plan creates (apps with `mappings`).
    pub mapped_creates: CreateValues,
    /// Seconds per stage: scan, correlate, each query.
    pub timings: Vec<(String, f64)>,
}

/// Build sides up to this many rows (and [`BROADCAST_BYTES`]) are hashed once and probed by
/// every partition (no repartitioning of either side); larger ones are hash-partitioned.
/// Measured at 1M users: the engine's CPU time fell from 6.0 s to 4.8 s against partitioning
/// every join, whose repartitioning copies the wide user rows.
const BROADCAST_ROWS: usize = 1 << 20;
const BROADCAST_BYTES: usize = 128 << 20;

/// The drift query that runs last (see [`find_drift`]).
const LAST: FindingKind = FindingKind::GroupMembers;

/// A session with two partitions per table (the machine has two cores), plain `Utf8`
/// strings, broadcast joins for build sides of up to a million rows (see reference notes), and
/// the engine's own `comparison_key` function.
pub fn session() -> SessionContext {
    session_of(session_config())
}

fn session_of(config: SessionConfig) -> SessionContext {
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(comparison_key::comparison_key());
    ctx
}

/// The drift engine's [`session`]: it keeps the columnar copies it maps
/// ([`columnar::MappedPages`]), whose pages each query releases when done (see [`collect`]).
fn drift_session() -> SessionContext {
    session_of(session_config().with_extension(Arc::new(columnar::MappedPages::default())))
}

/// Hand the pages of the copies mapped in `ctx` (a [`drift_session`]) back to the kernel: the
/// next query faults in those it reads.
fn release_mapped_pages(ctx: &SessionContext) {
    if let Some(pages) = ctx.state_ref().read().config().get_extension::<columnar::MappedPages>() {
        pages.release();
    }
}

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_target_partitions(2).with_batch_size(8192);
    let opts = config.options_mut();
    opts.sql_parser.map_string_types_to_utf8view = false;
    opts.optimizer.hash_join_single_partition_threshold = BROADCAST_BYTES;
    opts.optimizer.hash_join_single_partition_threshold_rows = BROADCAST_ROWS;
    config
}

/// A runtime whose memory pool holds at most `limit` bytes: sorts and aggregations that reach
/// it spill to files in `spill_dir` (else the system's temporary directory, which in a container
/// is often memory itself), other operators fail with "resources exhausted" rather than take the
/// process down (auditors' ad-hoc SQL). Build it once and share it: the spill directory is
/// created when it is built.
pub fn memory_limited_runtime(limit: usize, spill_dir: Option<&std::path::Path>) -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    // Fair to spilling operators: a sort that spills keeps a share to merge its spills with,
    // where the greedy pool let the hash joins beside it take everything.
    let pool = TrackConsumersPool::new(FairSpillPool::new(limit), std::num::NonZeroUsize::new(5).expect("5 is not 0"));
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_memory_pool(Arc::new(pool));
    if let Some(dir) = spill_dir {
        runtime = runtime.with_temp_file_path(dir);
    }
    runtime.build_arc().expect("a runtime with a memory pool builds")
}

/// [`session`] on `runtime` (see [`memory_limited_runtime`]).
pub fn session_with_runtime(runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>) -> SessionContext {
    SessionContext::new_with_config_rt(session_config(), runtime)
}

/// Register batches as an in-memory table, split round-robin into two partitions.
pub fn register(ctx: &SessionContext, name: &str, batches: Vec<RecordBatch>) -> Result<(), EngineError> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .expect("scans return at least one (possibly empty) batch");
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(), Vec::new()];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % 2].push(b);
    }
    if parts[1].is_empty() {
        parts.pop();
    }
    let table = MemTable::try_new(schema, parts).map_err(|source| EngineError::Query {
        query: format!("register {name}"),
        source,
    })?;
    ctx.register_table(name, Arc::new(table)).map_err(|source| EngineError::Query {
        query: format!("register {name}"),
        source,
    })?;
    Ok(())
}

/// The batches of the in-memory table `name` with only `columns`, taken where the table holds
/// them (a query over it waits its turn for the runtime's threads: at 1M users a projection of
/// the 4.8M memberships took 0.04-0.13 s while the planner's queries ran); `None` when `name` is
/// not an in-memory table or lacks one of `columns`.
async fn table_columns(ctx: &SessionContext, name: &str, columns: &[&str]) -> Result<Option<Vec<RecordBatch>>, EngineError> {
    let provider = ctx.table_provider(name).await.map_err(|source| EngineError::Query {
        query: format!("read {name}"),
        source,
    })?;
    let Some(table) = provider.downcast_ref::<MemTable>() else {
        return Ok(None);
    };
    let schema = datafusion::catalog::TableProvider::schema(table);
    let Some(indices): Option<Vec<usize>> = columns.iter().map(|c| schema.index_of(c).ok()).collect() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for partition in &table.batches {
        for batch in partition.read().await.iter() {
            out.push(batch.project(&indices).expect("columns of the table's schema"));
        }
    }
    Ok(Some(out))
}

/// Log (at trace level, `-vvv`) the Arrow bytes each table registered in `ctx` holds, the
/// largest first: what the engine keeps between queries. A buffer shared by several batches or
/// tables (slices of one mapped columnar copy, a column passed through a projection) is counted
/// once, for the first table that holds it.
fn trace_tables(ctx: &SessionContext, at: &str) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let Some(schema) = ctx.catalog("datafusion").and_then(|c| c.schema("public")) else {
        return;
    };
    fn count(data: &arrow::array::ArrayData, seen: &mut std::collections::HashSet<usize>) -> usize {
        let own: usize = data
            .buffers()
            .iter()
            .chain(data.nulls().map(|n| n.buffer()))
            .filter(|b| seen.insert(b.data_ptr().as_ptr() as usize))
            .map(|b| b.capacity())
            .sum();
        own + data.child_data().iter().map(|c| count(c, seen)).sum::<usize>()
    }
    let mut seen = std::collections::HashSet::new();
    let mut sizes: Vec<(String, usize, usize)> = Vec::new();
    for name in schema.table_names() {
        let Ok(Some(table)) = futures::executor::block_on(schema.table(&name)) else {
            continue;
        };
        let Some(mem) = table.downcast_ref::<MemTable>() else {
            continue;
        };
        let (mut bytes, mut rows) = (0, 0);
        for part in &mem.batches {
            for b in part.try_read().iter().flat_map(|p| p.iter()) {
                bytes += b.columns().iter().map(|c| count(&c.to_data(), &mut seen)).sum::<usize>();
                rows += b.num_rows();
            }
        }
        sizes.push((name, rows, bytes));
    }
    sizes.sort_by_key(|(_, _, bytes)| std::cmp::Reverse(*bytes));
    let total: usize = sizes.iter().map(|(_, _, b)| b).sum();
    let list: Vec<String> = sizes.iter().map(|(n, r, b)| format!("{n} {r} rows {} MiB", b >> 20)).collect();
    tracing::trace!(at, total_mib = total >> 20, memory = %crate::memory::resident(), "engine tables: {}", list.join(", "));
}

/// Drop a materialised step once the queries that read it have run (its memory goes with it).
fn deregister(ctx: &SessionContext, name: &str) -> Result<(), EngineError> {
    ctx.deregister_table(name).map_err(|source| EngineError::Query {
        query: format!("deregister {name}"),
        source,
    })?;
    Ok(())
}

async fn collect(ctx: &SessionContext, name: &str, sql: &str) -> Result<Vec<RecordBatch>, EngineError> {
    let err = |source| EngineError::Query {
        query: name.to_string(),
        source,
    };
    let state = ctx.state();
    // SCIMSYNC_EXPLAIN=<part of a query name> prints that query's EXPLAIN ANALYZE (profiling).
    if std::env::var("SCIMSYNC_EXPLAIN").is_ok_and(|w| !w.is_empty() && name.contains(&w)) {
        let explain = state.create_logical_plan(&format!("EXPLAIN ANALYZE {sql}")).await.map_err(err)?;
        let plan = DataFrame::new(state.clone(), explain).collect().await.map_err(err)?;
        eprintln!(
            "== {name}\n{}",
            arrow::util::pretty::pretty_format_batches(&plan)
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
    }
    let started = Instant::now();
    let plan = state.create_logical_plan(sql).await.map_err(err)?;
    let df = DataFrame::new(state, plan);
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut batches = df.collect().await.map_err(err)?;
    release_mapped_pages(ctx);
    tracing::debug!(
        query = name,
        seconds = started.elapsed().as_secs_f64(),
        rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        memory = %crate::memory::resident(),
        "query done"
    );
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Each batch of `sql`'s result to `each` as it comes (nothing collected); `false` from `each`
/// stops early and is returned.
pub(super) async fn stream(
    ctx: &SessionContext,
    name: &str,
    sql: &str,
    mut each: impl FnMut(&RecordBatch) -> bool,
) -> Result<bool, EngineError> {
    use futures::StreamExt;
    let err = |source| EngineError::Query {
        query: name.to_string(),
        source,
    };
    let started = std::time::Instant::now();
    let mut batches = ctx.sql(sql).await.map_err(err)?.execute_stream().await.map_err(err)?;
    while let Some(batch) = batches.next().await {
        if !each(&batch.map_err(err)?) {
            return Ok(false);
        }
    }
    release_mapped_pages(ctx);
    // As `collect` logs each query (`-vv`), for the profile of a plan.
    tracing::debug!(query = name, seconds = started.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "query streamed");
    Ok(true)
}

/// Column `name` of a query's output `b`, cast to `Utf8` (any string type).
fn utf8_column(b: &RecordBatch, name: &str) -> arrow::array::ArrayRef {
    let col = b.column_by_name(name).unwrap_or_else(|| panic!("query output lacks column {name}"));
    arrow::compute::cast(col, &DataType::Utf8).expect("string-like column")
}

/// Column `name` of `b` as optional strings (any string type, cast to Utf8).
fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = utf8_column(b, name);
    let arr = col.as_string::<i32>();
    (0..arr.len())
        .map(|i| (!arr.is_null(i)).then(|| arr.value(i).to_string()))
        .collect()
}

/// (app, id) rows (two text columns) without NULLs.
fn app_ids(batches: &[RecordBatch]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in batches {
        let (app, id) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
        for i in 0..b.num_rows() {
            if app.is_valid(i) && id.is_valid(i) {
                out.push((app.value(i).to_string(), id.value(i).to_string()));
            }
        }
    }
    out
}

/// The links to store from a correlation output: ids in `idp`/`sp`, keys in `idp_key`/`sp_key`;
/// the rows whose status is one of `keep`, with no id or match missing.
fn links_of(batches: &[RecordBatch], [idp, sp, idp_key, sp_key]: [&str; 4], keep: &[&str]) -> NewLinks {
    use arrow::compute::{cast, filter_record_batch};
    let schema = Arc::new(arrow::datatypes::Schema::new(
        ["app", idp, sp, "matched_by", idp_key, sp_key]
            .iter()
            .enumerate()
            .map(|(i, n)| arrow::datatypes::Field::new(*n, if i < 4 { DataType::Utf8 } else { DataType::Int64 }, true))
            .collect::<Vec<_>>(),
    ));
    let mut kept = Vec::new();
    for b in batches {
        let column = |name: &str, to: &DataType| {
            let col = b.column_by_name(name).unwrap_or_else(|| panic!("query output lacks column {name}"));
            cast(col, to).expect("string or integer column")
        };
        let status = column("status", &DataType::Utf8);
        let status = status.as_string::<i32>();
        let cols: Vec<_> = schema.fields().iter().map(|f| column(f.name(), f.data_type())).collect();
        let mask: arrow::array::BooleanArray = (0..b.num_rows())
            .map(|i| Some(!status.is_null(i) && keep.contains(&status.value(i)) && cols[..4].iter().all(|c| c.is_valid(i))))
            .collect();
        let projected = RecordBatch::try_new(schema.clone(), cols).expect("columns of the schema");
        kept.push(filter_record_batch(&projected, &mask).expect("mask matches the batch"));
    }
    let rows = arrow::compute::concat_batches(&schema, &kept).expect("batches of one schema");
    drop(kept);
    let order = link_order(&rows);
    NewLinks { rows: Some(rows), order }
}

/// The positions of `rows` (app, idp id, sp id, matched_by: text, never null; idp key, sp key:
/// integers, NULL first) in the order of all six columns: what `lexsort_to_indices` gives, in a
/// fifth of the time (0.6 s for a first plan's 975k links). Each row is sorted by its app's
/// rank and its idp id's first eight bytes, which decide almost every comparison; only rows
/// that tie on both are compared whole.
fn link_order(rows: &RecordBatch) -> Vec<u32> {
    use arrow::datatypes::Int64Type;
    let text = |i: usize| rows.column(i).as_string::<i32>();
    let key = |i: usize| rows.column(i).as_primitive::<Int64Type>();
    let (app, idp, sp, by, idp_key, sp_key) = (text(0), text(1), text(2), text(3), key(4), key(5));
    let opt = |a: &arrow::array::PrimitiveArray<Int64Type>, r: usize| a.is_valid(r).then(|| a.value(r));
    let mut names: Vec<&str> = Vec::new();
    let mut app_at: Vec<u32> = Vec::with_capacity(rows.num_rows());
    for r in 0..rows.num_rows() {
        let name = app.value(r);
        let at = names.iter().position(|n| *n == name).unwrap_or_else(|| {
            names.push(name);
            names.len() - 1
        });
        app_at.push(at as u32);
    }
    let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
    by_name.sort_unstable_by_key(|&n| names[n as usize]);
    let mut rank = vec![0u32; names.len()];
    for (r, &n) in by_name.iter().enumerate() {
        rank[n as usize] = r as u32;
    }
    let prefix = |s: &str| {
        let mut bytes = [0u8; 8];
        let n = s.len().min(8);
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        u64::from_be_bytes(bytes)
    };
    let mut keyed: Vec<(u32, u64, u32)> = (0..rows.num_rows())
        .map(|r| (rank[app_at[r] as usize], prefix(idp.value(r)), r as u32))
        .collect();
    drop(app_at);
    keyed.sort_unstable_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
            let (x, y) = (a.2 as usize, b.2 as usize);
            (idp.value(x), sp.value(x), by.value(x), opt(idp_key, x), opt(sp_key, x)).cmp(&(
                idp.value(y),
                sp.value(y),
                by.value(y),
                opt(idp_key, y),
                opt(sp_key, y),
            ))
        })
    });
    keyed.into_iter().map(|(_, _, r)| r).collect()
}

/// Where a loading job leaves its result.
type Slot<T> = std::sync::Mutex<Option<T>>;

/// Batches of one drift table (several pieces of one table are concatenated).
type TablePiece = (&'static str, Vec<RecordBatch>);

/// The drift tables of the store at `path`: each source's users, groups and memberships from
/// its columnar copy when that is of its last successful pull, else from SQLite; the small
/// tables (bindings, links) from SQLite. The copies are read and the small tables scanned on
/// two threads at once. Returns (table name, batches) pieces to concatenate, and whether any
/// source was read from SQLite (its `active_members` are then to be computed). The copies'
/// mappings are kept in `pages`.
fn load_tables(path: &Path, pages: &columnar::MappedPages) -> Result<(Vec<TablePiece>, bool), EngineError> {
    let sqlite = |source| scan::ScanError::Sqlite { table: "sources", source };
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    let max_of = |sql| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(sqlite);
    let max_uid = max_of("SELECT COALESCE(MAX(uid), 0) FROM users")?;
    let max_link = max_of("SELECT COALESCE(MAX(rowid), 0) FROM links")?;
    let sources: Vec<(String, String, Option<i64>)> = {
        let mut stmt = conn
            .prepare("SELECT name, role, last_pull_run FROM sources ORDER BY name")
            .map_err(sqlite)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(sqlite)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sqlite)?
    };
    drop(conn);
    // The tables always read from SQLite, the links (two halves) first.
    let mut small: Vec<scan::TableScan> = scan::drift_tables(max_uid, max_link)
        .into_iter()
        .filter(|t| !matches!(t.name, "users" | "groups" | "memberships"))
        .collect();
    small.sort_by_key(|t| t.name != "prior_links");
    // Jobs: one per table read from SQLite, then one per (source, copied table).
    let copies: Vec<(&str, i64, &'static str)> = sources
        .iter()
        .filter_map(|(source, role, run)| run.filter(|_| columnar::enabled()).map(|run| (source.as_str(), role, run)))
        .flat_map(|(source, role, run)| columnar::tables_for(role).map(|t| (source, run, t)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let copy_slots: Vec<Slot<Vec<RecordBatch>>> = copies.iter().map(|_| Default::default()).collect();
    let small_slots: Vec<Slot<Result<Vec<RecordBatch>, scan::ScanError>>> = small.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        let work = || loop {
            match next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                i if i < small.len() => *small_slots[i].lock().expect("not poisoned") = Some(scan::scan_alone(path, &small[i])),
                i if i < small.len() + copies.len() => {
                    let (source, run, table) = copies[i - small.len()];
                    *copy_slots[i - small.len()].lock().expect("not poisoned") = columnar::read(path, source, run, table, pages);
                }
                _ => break,
            }
        };
        s.spawn(work);
        work();
    });
    // A source's copy is used only when all its tables were read.
    let mut read: HashMap<&str, Vec<(&'static str, Vec<RecordBatch>)>> = HashMap::new();
    for ((source, _, table), slot) in copies.iter().zip(copy_slots) {
        if let Some(batches) = slot.into_inner().expect("not poisoned") {
            read.entry(source).or_default().push((table, batches));
        }
    }
    let mut pieces: Vec<TablePiece> = Vec::new();
    let mut missed = Vec::new();
    for (source, role, _) in &sources {
        match read.remove(source.as_str()) {
            Some(tables) if tables.len() == columnar::tables_for(role).len() => pieces.extend(tables),
            _ => missed.push(source.clone()),
        }
    }
    tracing::debug!(cached = sources.len() - missed.len(), from_sqlite = missed.len(), "sources loaded");
    for (t, slot) in small.iter().zip(small_slots) {
        let batches = slot.into_inner().expect("not poisoned").expect("every job ran")?;
        pieces.push((t.name, batches));
    }
    if !missed.is_empty() {
        let tables: Vec<scan::TableScan> = if missed.len() == sources.len() {
            // Nothing cached: the whole store, users split across threads.
            scan::drift_tables(max_uid, max_link)
                .into_iter()
                .filter(|t| matches!(t.name, "users" | "groups" | "memberships"))
                .collect()
        } else {
            missed.iter().flat_map(|s| scan::source_tables(s)).collect()
        };
        let batches = scan::scan_all(path, &tables, 2)?;
        pieces.extend(tables.into_iter().map(|t| t.name).zip(batches));
    }
    Ok((pieces, !missed.is_empty()))
}

/// The tables that come from the config (see [`tables`]); with no apps, empty tables of the
/// same schemas.
fn register_config_tables(ctx: &SessionContext, apps: &[AppInput<'_>]) -> Result<(), EngineError> {
    register(ctx, "apps", vec![tables::apps(apps)])?;
    register(ctx, "app_match", vec![tables::app_match(apps)])?;
    register(ctx, "app_email_reuse", vec![tables::app_email_reuse(apps)])?;
    register(ctx, "app_roles", vec![tables::app_roles(apps)])?;
    register(ctx, "app_attributes", vec![tables::app_attributes(apps)])
}

/// Register `sql` as view `name` (planned into each query that reads it, never materialised).
async fn create_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<(), EngineError> {
    ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
        .await
        .map_err(|source| EngineError::Query {
            query: format!("view {name}"),
            source,
        })?;
    Ok(())
}

/// Load the store's current state (two scans at a time, each on its own read-only connection
/// to `store_path`) and run correlation, scope and every drift query for `apps`; then what the
/// planner needs beyond the findings.
pub async fn drift(store_path: &Path, apps: &[AppInput<'_>]) -> Result<DriftResult, EngineError> {
    drift_reporting(store_path, apps, |_| (), |_| ()).await
}

/// [`drift`], handing `correlated` the links correlation made and dropped as soon as it has,
/// before the drift queries run (a first plan's million new links are stored meanwhile), and
/// `sorted` the findings as soon as they are in their order, before the planner's inputs are
/// read (a first plan's 370k findings are stored meanwhile).
pub async fn drift_reporting(
    store_path: &Path,
    apps: &[AppInput<'_>],
    correlated: impl FnOnce(Correlated),
    sorted: impl FnOnce(Arc<Vec<Finding>>),
) -> Result<DriftResult, EngineError> {
    let mut result = DriftResult::default();
    let ctx = drift_session();
    let t = Instant::now();
    let attributes = load(&ctx, store_path, apps).await?;
    result.timings.push(("scan".into(), t.elapsed().as_secs_f64()));
    trace_tables(&ctx, "loaded");
    let correlation = correlate(&ctx, &mut result).await?;
    // The plan's writer stores the new links while the drift queries run. Many (a first plan's
    // million) keep it busy on the second core: the planner's inputs are then read after the
    // findings are handed over, not beside the membership diff, so that the diff and the
    // findings are no later (read beside it, the first plan at 1M users took 0.1-0.2 s longer).
    let inputs_beside_diff = correlation.links.len() < NEW_LINKS_THAT_BUSY_THE_WRITER;
    correlated(correlation);
    trace_tables(&ctx, "correlated");
    let findings = find_drift(&ctx, &mut result, apps, attributes, inputs_beside_diff).await?;
    trace_tables(&ctx, "drift found");
    let t = Instant::now();
    keep_for_planner(&ctx, &apps.iter().map(|a| a.idp_source.as_str()).collect()).await?;
    result.timings.push(("kept for the planner".into(), t.elapsed().as_secs_f64()));
    trace_tables(&ctx, "kept for the planner");
    result.findings = Arc::new(findings);
    sorted(result.findings.clone());
    let t = Instant::now();
    if !inputs_beside_diff {
        let inputs = early_planner_inputs(ctx.clone(), early_findings(result.findings.iter())).await?;
        take_early_planner_inputs(&mut result, inputs);
    }
    read_member_links(&ctx, &mut result).await?;
    result.timings.push(("planner inputs".into(), t.elapsed().as_secs_f64()));
    if apps.iter().any(|a| !a.mappings.is_empty()) {
        let t = Instant::now();
        result.mapped_creates = mapped::create_values(&ctx, apps, &result.findings).await?;
        result.timings.push(("planner/mapped values".into(), t.elapsed().as_secs_f64()));
    }
    Ok(result)
}

/// The scans of the store (or its columnar copies) and the config's tables, registered; and
/// the attributes the apps' mappings need, being read.
async fn load(ctx: &SessionContext, store_path: &Path, apps: &[AppInput<'_>]) -> Result<mapped::Attributes, EngineError> {
    let attributes = mapped::Attributes::read(store_path, apps);
    let path = store_path.to_path_buf();
    let pages = ctx.state_ref().read().config().get_extension::<columnar::MappedPages>();
    let pages = pages.unwrap_or_default();
    let (scanned, from_sqlite) = tokio::task::block_in_place(|| load_tables(&path, &pages))?;
    // Scans of one table (the halves of users, each source's copy) become one table; a table
    // no source provided is registered empty.
    let mut by_name: Vec<(&str, Vec<RecordBatch>)> = scan::drift_tables(0, 0)
        .into_iter()
        .map(|t| (t.name, vec![RecordBatch::new_empty(t.schema())]))
        .collect();
    by_name.dedup_by_key(|(name, _)| *name);
    by_name.push((
        "active_members",
        vec![RecordBatch::new_empty(columnar::table_schema("active_members"))],
    ));
    for (name, batches) in scanned {
        let (_, all) = by_name.iter_mut().find(|(n, _)| *n == name).expect("a drift table");
        all.extend(batches.into_iter().filter(|b| b.num_rows() > 0));
    }
    let mut copied_active = Vec::new();
    for (name, batches) in by_name {
        match name {
            // Computed below from what SQLite gave, then joined by the copies' own.
            "active_members" if from_sqlite => copied_active = batches,
            _ => register(ctx, name, batches)?,
        }
    }
    if from_sqlite {
        // Copies hold an IdP's active memberships and an app's memberships (see
        // columnar::tables_for), so this recomputes no row a copy gave, except an app's
        // (never read: they join IdP groups only).
        let mut active = collect(ctx, "active_members", ACTIVE_MEMBERS).await?;
        active.append(&mut copied_active);
        register(ctx, "active_members", active)?;
    }
    register_config_tables(ctx, apps)?;
    Ok(attributes)
}

/// Correlation: the links made and dropped, and the tables `links`, `group_links` and `scope`
/// (its timings into `result`).
async fn correlate(ctx: &SessionContext, result: &mut DriftResult) -> Result<Correlated, EngineError> {
    // Correlation: user links (prior → links) and the dropped user links on one branch; dropped
    // group links, group links and scope, which do not depend on them, on the other; then the
    // pairs. The stored user links (975k rows at 1M users, 77 MB) are read by `prior` only,
    // which finds the dropped ones as it confirms the others: they are let go before
    // correlation's own tables grow.
    let t = Instant::now();
    let users_branch = async {
        let t = Instant::now();
        let (prior, dropped) = prior::prior(ctx).await?;
        deregister(ctx, "prior_links")?;
        register(ctx, "prior", prior)?;
        let links = user_links::links(ctx).await?;
        deregister(ctx, "prior")?;
        let new_links = links_of(&links, ["idp_user_id", "sp_user_id", "idp_uid", "sp_uid"], &["new"]);
        register(ctx, "links", links)?;
        Ok::<_, EngineError>((new_links, dropped, t.elapsed().as_secs_f64()))
    };
    // Its own task: the users branch blocks its thread while it computes (prior's lookups, the
    // matching), which in one task with it (`join!`) held this branch's next step back.
    let other_ctx = ctx.clone();
    let other_branch = tokio::spawn(async move {
        let ctx = &other_ctx;
        let t = Instant::now();
        let dropped = collect(ctx, "correlate/dropped_groups", DROPPED_GROUPS).await?;
        let group_links = collect(ctx, "correlate/groups", CORRELATE_GROUPS).await?;
        let new_group_links = links_of(&group_links, ["idp_group_id", "sp_group_id", "idp_gid", "sp_gid"], &["takeover"]);
        register(ctx, "group_links", group_links)?;
        let scope = scope::scope(ctx).await?;
        register(ctx, "scope", scope)?;
        Ok::<_, EngineError>((app_ids(&dropped), new_group_links, t.elapsed().as_secs_f64()))
    });
    let users = users_branch.await;
    let other = other_branch
        .await
        .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
    let (links, dropped_users, users_seconds) = users?;
    let (dropped_groups, group_links, other_seconds) = other?;
    let tagged = |rows: Vec<(String, String)>, kind: &'static str| rows.into_iter().map(move |(app, id)| (app, kind.to_string(), id));
    let dropped = tagged(dropped_users, "user").chain(tagged(dropped_groups, "group")).collect();
    // The stored links are read by correlation only (`links` and `group_links` now hold them).
    deregister(ctx, "prior_group_links")?;
    // What correlation held (the stored links, its hash tables) is freed on the threads that ran
    // it; handed back, the drift queries' peak does not stack on it.
    crate::memory::release_freed();
    result.timings.push(("correlate/users".into(), users_seconds));
    result.timings.push(("correlate/groups, dropped, scope".into(), other_seconds));
    result.timings.push(("correlate".into(), t.elapsed().as_secs_f64()));
    Ok(Correlated {
        links,
        group_links,
        dropped,
    })
}

/// Every drift query: their findings (their timings into `result`); `inputs_beside_diff`: the
/// planner's inputs that need no `group.members` finding are read beside the membership diff
/// (into `result`).
async fn find_drift(
    ctx: &SessionContext,
    result: &mut DriftResult,
    apps: &[AppInput<'_>],
    attributes: mapped::Attributes,
    inputs_beside_diff: bool,
) -> Result<Vec<Finding>, EngineError> {
    // Two streams of queries side by side (a query leaves a core idle while it builds a hash
    // table or gathers its output, and the other fills it): the linked pairs and the three
    // queries that read them; and the rest but `group.members`, which runs after both. Each
    // stream then takes the next of the rest until none is left: at 1M users the pairs' stream
    // is done in 0.3 s, the other's queries take 0.6 s.
    let run = |kind: FindingKind, sql: &'static str| async move {
        let t = Instant::now();
        let query = format!("drift/{kind}");
        let batches = collect(ctx, &query, sql).await?;
        let findings = findings::sorted(&query, &batches)?;
        Ok::<_, EngineError>((kind.to_string(), findings, t.elapsed().as_secs_f64()))
    };
    type Query = (FindingKind, &'static str);
    let (with_pairs, without): (Vec<&Query>, Vec<&Query>) = DRIFT_QUERIES.iter().partition(|(_, sql)| reads_pairs(sql));
    let rest: Vec<&Query> = without.into_iter().filter(|(kind, _)| *kind != LAST).collect();
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let run_the_rest = |mut out: Vec<_>| async {
        while let Some(&&(kind, sql)) = rest.get(taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            out.push(run(kind, sql).await?);
        }
        Ok::<_, EngineError>(out)
    };
    let pairs_stream = async {
        let t = Instant::now();
        let pairs = pairs::pairs(ctx).await?;
        register(ctx, "pairs", pairs)?;
        let mut out = vec![("correlate/pairs".to_string(), Vec::new(), t.elapsed().as_secs_f64())];
        for &(kind, sql) in with_pairs {
            out.push(run(kind, sql).await?);
        }
        trace_tables(ctx, "pairs read");
        deregister(ctx, "pairs")?;
        if apps.iter().any(|a| !a.mappings.is_empty()) {
            let t = Instant::now();
            tokio::task::block_in_place(|| attributes.register(ctx))?;
            out.push(("mapped/attributes (waited for)".to_string(), Vec::new(), t.elapsed().as_secs_f64()));
            let t = Instant::now();
            let findings = mapped::drift(ctx, apps).await?;
            out.push(("user.drift (mapped)".to_string(), findings, t.elapsed().as_secs_f64()));
        }
        run_the_rest(out).await
    };
    let other_stream = run_the_rest(Vec::new());
    let (a, b) = futures::join!(pairs_stream, other_stream);
    let mut done = a?;
    done.extend(b?);
    // The membership diff: its two sides' keys (115 MB at 1M users) are not held beside the
    // pairs' hash tables. Its queries and sorts leave a core idle a third of the time, which the
    // planner's inputs that need no `group.members` finding take, in a task of their own (the
    // diff's sorts block the thread they run on).
    crate::memory::release_freed();
    let early = inputs_beside_diff.then(|| early_findings(done.iter().flat_map(|(_, findings, _)| findings)));
    let early_inputs = early.map(|early| tokio::spawn(early_planner_inputs(ctx.clone(), early)));
    let t = Instant::now();
    let diffed = member_diff::register_tables(ctx).await;
    let diff_seconds = t.elapsed().as_secs_f64();
    if let Some(inputs) = early_inputs {
        let inputs = inputs.await.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
        diffed?;
        take_early_planner_inputs(result, inputs?);
    } else {
        diffed?;
    }
    done.push(("group.members/diff".to_string(), Vec::new(), diff_seconds));
    let (_, sql) = DRIFT_QUERIES
        .iter()
        .find(|(kind, _)| *kind == LAST)
        .expect("group.members is a drift query");
    let t = Instant::now();
    let members = group_members::sorted_findings(ctx, sql).await?;
    done.push((LAST.to_string(), members, t.elapsed().as_secs_f64()));
    let t = Instant::now();
    for table in ["member_diff", "managed_groups"] {
        deregister(ctx, table)?;
    }
    let mut runs = Vec::with_capacity(done.len());
    for (kind, findings, seconds) in done {
        runs.push(findings);
        result.timings.push((kind, seconds));
    }
    let all = findings::merge(runs);
    result.timings.push(("findings/merge".into(), t.elapsed().as_secs_f64()));
    Ok(all)
}

/// Let go of what only the drift queries read, before the planner's queries: the apps'
/// memberships, the group links and bindings, and every user but the apps' IdPs' (the planner's
/// queries and the mapped values read those only). At 1M users that unmaps 0.3 GiB of columnar
/// copies. A batch of `users` is kept whole when any of its rows is such an IdP's (a batch
/// scanned from SQLite may hold several sources).
async fn keep_for_planner(ctx: &SessionContext, idp_sources: &std::collections::HashSet<&str>) -> Result<(), EngineError> {
    for table in ["memberships", "group_links", "bindings"] {
        deregister(ctx, table)?;
    }
    let err = |source| EngineError::Query {
        query: "keep IdP users".into(),
        source,
    };
    let provider = ctx.table_provider("users").await.map_err(err)?;
    let Some(table) = provider.downcast_ref::<MemTable>() else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for partition in &table.batches {
        for batch in partition.read().await.iter() {
            let sources = batch.column_by_name("source").expect("users have a source").as_string::<i32>();
            if sources.iter().any(|s| s.is_some_and(|s| idp_sources.contains(s))) {
                kept.push(batch.clone());
            }
        }
    }
    drop(provider);
    deregister(ctx, "users")?;
    if kept.is_empty() {
        kept.push(RecordBatch::new_empty(columnar::table_schema("users")));
    }
    register(ctx, "users", kept)?;
    crate::memory::release_freed();
    Ok(())
}

/// New links from one correlation that keep the plan's writer busy on the second core while
/// the drift queries run (at 1M users a first plan stores 975k; a steady one none).
const NEW_LINKS_THAT_BUSY_THE_WRITER: usize = 65_536;

/// The findings the planner's early inputs read ([`early_planner_inputs`]): every
/// `user.missing`, `user.drift` and `group.missing`.
fn early_findings<'f>(findings: impl Iterator<Item = &'f Finding>) -> Vec<Finding> {
    let early = |f: &&Finding| {
        matches!(
            f.kind,
            FindingKind::UserMissing | FindingKind::UserDrift | FindingKind::GroupMissing
        )
    };
    findings.filter(early).cloned().collect()
}

/// The IdP users the planner needs whole, the new groups' members, and their timings.
type EarlyPlannerInputs = (planner_inputs::IdpUsers, planner_inputs::NewGroupMembers, Vec<(String, f64)>);

/// Keep the planner's early inputs and their timings in `result`.
fn take_early_planner_inputs(result: &mut DriftResult, (idp_users, new_group_members, timings): EarlyPlannerInputs) {
    result.idp_users = idp_users;
    result.new_group_members = new_group_members;
    result.timings.extend(timings);
}

/// The planner's inputs that need no `group.members` finding: the IdP users it needs whole
/// and the new groups' members (with their timings).
async fn early_planner_inputs(ctx: SessionContext, findings: Vec<Finding>) -> Result<EarlyPlannerInputs, EngineError> {
    let ((users, users_seconds), (members, members_seconds)) = futures::join!(
        timed(planner_inputs::idp_users(&ctx, &findings)),
        timed(planner_inputs::new_group_members(&ctx, &findings))
    );
    let timings = vec![
        ("planner/idp_users".to_string(), users_seconds),
        ("planner/new_group_members".to_string(), members_seconds),
    ];
    Ok((users?, members?, timings))
}

/// `future`'s output and the seconds it took.
async fn timed<T>(future: impl std::future::Future<Output = T>) -> (T, f64) {
    let t = Instant::now();
    let out = future.await;
    (out, t.elapsed().as_secs_f64())
}

/// The accounts of the members group operations name, read once every finding is known and
/// the new groups' members are (the other planner inputs are read beside the membership diff).
async fn read_member_links(ctx: &SessionContext, result: &mut DriftResult) -> Result<(), EngineError> {
    let t = Instant::now();
    result.member_links = planner_inputs::member_links(ctx, &result.findings, &result.new_group_members).await?;
    result.timings.push(("planner/member_links".into(), t.elapsed().as_secs_f64()));
    Ok(())
}

/// Whether a drift query reads the materialised `pairs` table.
fn reads_pairs(sql: &str) -> bool {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .any(|l| l.contains("FROM pairs") || l.contains("JOIN pairs"))
}

/// A session with every input table empty (the schemas the engine uses) and the correlation,
/// scope, drift and planner queries registered as views (`links`, `group_links`, `scope`,
/// `drift_user_missing`, …, `plan_member_links`, …). The `.slt` tests seed rows with INSERT
/// and query the views.
pub async fn views_session() -> Result<SessionContext, EngineError> {
    let ctx = session();
    let mut seen = std::collections::HashSet::new();
    for table in scan::drift_tables(0, 0).into_iter().filter(|t| seen.insert(t.name)) {
        register(&ctx, table.name, vec![RecordBatch::new_empty(table.schema())])?;
    }
    register_config_tables(&ctx, &[])?;
    let mut views: Vec<(String, &str)> = vec![
        ("active_members".into(), ACTIVE_MEMBERS),
        ("prior".into(), PRIOR),
        ("free".into(), FREE),
        ("candidates".into(), CANDIDATES),
        ("chosen".into(), CHOSEN),
        ("links".into(), CORRELATE_USERS),
        ("group_links".into(), CORRELATE_GROUPS),
        ("scope".into(), SCOPE),
        ("linked_pairs".into(), LINKED_PAIRS),
        ("pairs".into(), PAIRS),
        ("managed_groups".into(), member_diff::MANAGED),
        ("desired_members".into(), member_diff::DESIRED),
        ("actual_members".into(), member_diff::ACTUAL),
        ("member_diff".into(), member_diff::DIFF),
    ];
    views.extend(
        DRIFT_QUERIES
            .iter()
            .map(|(kind, sql)| (format!("drift_{}", kind.as_str().replace('.', "_")), *sql)),
    );
    for query in planner_inputs::QUERIES {
        planner_inputs::register_pairs(&ctx, query.input, query.columns, &[])?;
        views.push((query.view.into(), query.sql));
    }
    for (name, sql) in views {
        create_view(&ctx, &name, sql).await?;
    }
    Ok(ctx)
}

#[cfg(test)]
mod planner_table_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_planner_keeps_the_idp_users_and_no_drift_only_table() {
        let ctx = views_session().await.unwrap();
        // Batches as the copies give them (one source each) and as SQLite may (mixed).
        let users = |rows: &[(&str, i64)]| {
            let schema = columnar::table_schema("users");
            let columns = schema
                .fields()
                .iter()
                .map(|f| match f.name().as_str() {
                    "source" => Arc::new(arrow::array::StringArray::from_iter_values(rows.iter().map(|r| r.0))) as arrow::array::ArrayRef,
                    "uid" => Arc::new(arrow::array::Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                    _ => arrow::array::new_null_array(f.data_type(), rows.len()),
                })
                .collect();
            RecordBatch::try_new(schema, columns).unwrap()
        };
        deregister(&ctx, "users").unwrap();
        let batches = vec![
            users(&[("idp.corp", 1), ("idp.corp", 2)]),
            users(&[("app.wiki", 11), ("app.wiki", 12)]),
            users(&[("app.wiki", 13), ("idp.corp", 3)]),
            users(&[("idp.other", 21)]),
        ];
        register(&ctx, "users", batches).unwrap();
        keep_for_planner(&ctx, &["idp.corp"].into()).await.unwrap();
        let kept = collect(&ctx, "kept", "SELECT uid FROM users ORDER BY uid").await.unwrap();
        let uids: Vec<i64> = kept
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        assert_eq!(uids, [1, 2, 3, 13]);
        for gone in ["memberships", "group_links", "bindings"] {
            assert!(!ctx.table_exist(gone).unwrap(), "{gone} is still registered");
        }
    }
}

/// The ` AS VALUES (…), (…)` that ends a test's `CREATE TABLE` with `rows` (nothing when there
/// are none: the table is then created empty).
#[cfg(test)]
fn values_clause(rows: Vec<String>) -> String {
    if rows.is_empty() {
        String::new()
    } else {
        format!(" AS VALUES {}", rows.join(", "))
    }
}

/// A test's SQL literal for a text value: quoted, or `NULL`.
#[cfg(test)]
fn sql_text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |v| format!("'{v}'"))
}

/// A test's SQL literal for an integer value, or `NULL`.
#[cfg(test)]
fn sql_int(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

#[cfg(test)]
mod pair_tests {
    #[test]
    fn the_queries_that_wait_for_pairs_are_the_ones_that_read_them() {
        let readers: Vec<&str> = super::DRIFT_QUERIES
            .iter()
            .filter(|(_, sql)| super::reads_pairs(sql))
            .map(|(kind, _)| kind.as_str())
            .collect();
        assert_eq!(readers, ["user.drift", "user.reactivate", "user.role_mismatch"]);
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;

    /// idp id, sp id, matched_by, status, idp key.
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, Option<i64>);

    fn batch(rows: &[Row]) -> RecordBatch {
        let text = |f: &dyn Fn(&Row) -> Option<String>| Arc::new(rows.iter().map(f).collect::<StringArray>()) as arrow::array::ArrayRef;
        // The status as a dictionary, as a query's CASE may give it: it is cast, not assumed.
        let status: DictionaryArray<Int32Type> = rows.iter().map(|r| Some(r.3)).collect();
        RecordBatch::try_from_iter([
            ("app", text(&|_| Some("bench".into()))),
            ("idp_user_id", text(&|r| Some(r.0.into()))),
            ("sp_user_id", text(&|r| r.1.map(Into::into))),
            ("matched_by", text(&|r| r.2.map(Into::into))),
            ("status", Arc::new(status) as _),
            ("idp_uid", Arc::new(rows.iter().map(|r| r.4).collect::<Int64Array>()) as _),
            (
                "sp_uid",
                Arc::new(rows.iter().map(|r| r.4.map(|k| k + 100)).collect::<Int64Array>()) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn new_links_are_the_kept_complete_rows_in_link_order_across_batches() {
        let batches = [
            batch(&[
                ("u3", Some("s3"), Some("userName"), "new", Some(3)),
                ("u1", Some("s1"), Some("email"), "kept", Some(1)),
                ("u2", None, Some("userName"), "new", Some(2)),
            ]),
            batch(&[
                ("u0", Some("s0"), Some("externalId"), "new", None),
                ("u0", Some("s0"), Some("externalId"), "new", Some(0)),
                ("u4", Some("s4"), None, "new", Some(4)),
            ]),
        ];
        let links = links_of(&batches, ["idp_user_id", "sp_user_id", "idp_uid", "sp_uid"], &["new"]);
        let got: Vec<_> = links
            .iter()
            .map(|l| (l.app, l.idp_id, l.sp_id, l.matched_by, l.idp_key, l.sp_key))
            .collect();
        assert_eq!(
            got,
            [
                ("bench", "u0", "s0", "externalId", None, None),
                ("bench", "u0", "s0", "externalId", Some(0), Some(100)),
                ("bench", "u3", "s3", "userName", Some(3), Some(103)),
            ]
        );
        assert_eq!(links.len(), 3);
        assert!(links_of(&batches, ["idp_user_id", "sp_user_id", "idp_uid", "sp_uid"], &["gone"]).is_empty());
    }

    /// app, idp id, sp id, matched_by, idp key, sp key.
    type LinkRow = (String, String, String, String, Option<i64>, Option<i64>);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn links_are_in_the_order_lexsort_gives(
            rows in proptest::collection::vec(
                ("[ab]{1,2}", "(u\\x00?|user)[0-9]{0,10}", "[as]{0,2}", "[em]", proptest::option::of(0i64..3), proptest::option::of(0i64..3)),
                0..40),
        ) {
            let text = |f: &dyn Fn(&LinkRow) -> String| {
                Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>()) as arrow::array::ArrayRef
            };
            let batch = RecordBatch::try_from_iter([
                ("app", text(&|r| r.0.clone())),
                ("idp_id", text(&|r| r.1.clone())),
                ("sp_id", text(&|r| r.2.clone())),
                ("matched_by", text(&|r| r.3.clone())),
                ("idp_key", Arc::new(rows.iter().map(|r| r.4).collect::<Int64Array>()) as _),
                ("sp_key", Arc::new(rows.iter().map(|r| r.5).collect::<Int64Array>()) as _),
            ])
            .unwrap();
            let sort: Vec<arrow::compute::SortColumn> = batch
                .columns()
                .iter()
                .map(|c| arrow::compute::SortColumn { values: c.clone(), options: None })
                .collect();
            let lexsorted = arrow::compute::lexsort_to_indices(&sort, None).unwrap();
            // Rows equal in every column may come in either order: compare the rows, not positions.
            let as_rows = |order: &[u32]| order.iter().map(|&r| rows[r as usize].clone()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(as_rows(&link_order(&batch)), as_rows(lexsorted.values()));
        }
    }
}
