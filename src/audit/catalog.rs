//! The store as a DataFusion schema. Tables are read from SQLite only when a query names them
//! (a query over `events` does not load a million users), each once per session. With an
//! instant (`--at`), the tables that keep history are read as they were then; the auditor
//! views are planned by DataFusion over those tables, so they follow the instant too.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraint, Constraints};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties, Statistics, StatisticsArgs};
use datafusion::prelude::SessionContext;
use rusqlite::{Connection, OpenFlags};

use datafusion::common::config::ConfigOptions;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown};

use super::pushdown;
use crate::engine::scan::{for_each_batch, Col};
use crate::store::VIEWS;

/// Tables whose past state is current rows ∪ closed versions (`<table>_versions` naming aside).
pub(crate) const VERSIONED: &[(&str, &str)] = &[
    ("users", "user_versions"),
    ("groups", "group_versions"),
    ("memberships", "membership_versions"),
    ("bindings", "binding_versions"),
];

/// Tables with no versions, filtered to the rows that existed at the instant: (table, column
/// holding when the row came to be).
pub(crate) const AS_OF: &[(&str, &str)] = &[
    ("links", "linked_at"),
    ("group_links", "linked_at"),
    ("runs", "started_at"),
    ("events", "at"),
    ("plans", "created_at"),
];

/// Store views DataFusion plans from their own SQL (read from the store) rather than reading
/// SQLite's rows: SQLite's `memberships` (schema 6) seeks into `users` and `groups` once per
/// membership (18.8 s for the 9.8M of a 1M-user `gen` store), where hash joins over the scanned
/// tables take a few seconds. With an instant, SQLite's view is read (its current rows, then
/// the closed versions); on an older store they are tables.
const PLANNED_HERE: &[&str] = &["memberships", "membership_history"];

/// Auditor views with a part of their own for the current state (no instant), over the store's
/// internal integer keys, which keep no history: `queries/views/current/NAME.sql` takes the
/// place of what follows the view's [`CURRENT_PART`] line.
const CURRENT_FORMS: &[(&str, &str)] = &[("app_access", include_str!("../../queries/views/current/app_access.sql"))];

/// The line of a view in [`CURRENT_FORMS`] that opens the part its current form replaces.
const CURRENT_PART: &str = "-- via_groups (for the current state";

/// `memberships` as DataFusion plans it: the store's view, its joins written so that the small
/// tables (runs, users, groups) are the hash joins' build sides and the millions of
/// `member_keys` stream through them (the scans carry no row counts to reorder joins by). In the
/// store's own order every build side held millions of rows: 1.29 GiB peak to write the 9.8M
/// memberships of a 1M-user `gen` store to CSV in 10.6 s, against 0.91 GiB in 7.2 s.
const MEMBERSHIPS_PLANNED: &str = "SELECT g.source AS source, g.id AS group_id, u.id AS user_id, k.gid AS gid, k.uid AS uid, \
     r.snapshot_at AS valid_from, k.run_id AS run_id \
     FROM runs r RIGHT JOIN (users u JOIN (groups g JOIN member_keys k ON g.gid = k.gid) ON u.uid = k.uid) ON r.id = k.run_id";

#[derive(Debug)]
pub struct StoreSchema {
    path: PathBuf,
    at: Option<String>,
    /// Store tables and SQLite views: name → column (name, declared type).
    objects: HashMap<String, Vec<(String, String)>>,
    /// The SQL of the store's views in [`PLANNED_HERE`].
    view_sql: HashMap<String, String>,
    /// The store's tables (not its views), and their row counts once asked for.
    tables: std::collections::HashSet<String>,
    /// The memory pool and spill files of every session over this schema (the views' sessions
    /// only plan; queries run in the auditor's).
    runtime: Arc<RuntimeEnv>,
    row_estimates: Mutex<HashMap<String, Option<usize>>>,
    /// Every source of the store (name, role, last successful pull) when the current state is
    /// asked for and each has had one: whose columnar copies may serve [`COPIED`] tables.
    copies: Vec<(String, String, i64)>,
    /// What each read of a table handed SQLite from DataFusion's dynamic filters (table,
    /// conditions), in the order the reads started: shown with `-vv`, checked by tests.
    handed: Mutex<Vec<(String, String)>>,
}

/// Tables of the current state that the sources' columnar copies (`engine::columnar`) hold as
/// well as SQLite, for the columns they keep: the store's table, and the copy's that has its
/// columns. Read from the copies (mapped, a few columns touched), a million users take
/// milliseconds instead of the ≈ 0.8 s SQLite takes to hand over their rows.
const COPIED: &[(&str, &str)] = &[("users", "users"), ("groups", "groups"), ("member_keys", "memberships")];

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Every source (name, role, last successful pull), or none if any source has not had one.
fn sources_with_pulls(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare("SELECT name, role, last_pull_run FROM sources ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
    })?;
    let all: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(all
        .iter()
        .map(|(name, role, run)| run.map(|run| (name.clone(), role.clone(), run)))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default())
}

/// SQLite's error reading the store, a damaged file said plainly (as every command says it).
fn sqlite_err(what: &str, e: &rusqlite::Error) -> DataFusionError {
    df_err(what, crate::store::describe_sqlite(e))
}

fn df_err(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(format!("{what}: {e}").into())
}

impl StoreSchema {
    /// The objects of the store at `path` (opened read-only), seen at `at` (stored form) if given.
    pub fn new(path: &Path, at: Option<String>) -> rusqlite::Result<StoreSchema> {
        let conn = open(path)?;
        let names: Vec<(String, String, Option<String>)> = {
            let mut stmt =
                conn.prepare("SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut objects = HashMap::new();
        let mut view_sql = HashMap::new();
        let tables = names
            .iter()
            .filter(|(_, kind, _)| kind == "table")
            .map(|(n, _, _)| n.clone())
            .collect();
        for (name, kind, sql) in names {
            // `CREATE VIEW name AS <body>`: the body is planned here.
            if let Some(body) = sql
                .filter(|_| kind == "view" && PLANNED_HERE.contains(&name.as_str()))
                .and_then(|sql| crate::store::view_body(&sql).map(str::to_string))
            {
                let has_keys = body.contains("member_keys");
                view_sql.insert(
                    name.clone(),
                    if name == "memberships" && has_keys {
                        MEMBERSHIPS_PLANNED.to_string()
                    } else {
                        body
                    },
                );
            }
            if VIEWS.iter().any(|(v, _)| *v == name) {
                continue; // planned by DataFusion from queries/views
            }
            let mut stmt = conn.prepare(&format!("SELECT name, type FROM pragma_table_info('{name}')"))?;
            let cols = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            objects.insert(name, cols);
        }
        let copies = if at.is_none() && crate::engine::columnar::enabled() && objects.contains_key("sources") {
            sources_with_pulls(&conn)?
        } else {
            Vec::new()
        };
        Ok(StoreSchema {
            path: path.into(),
            at,
            objects,
            view_sql,
            tables,
            row_estimates: Mutex::new(HashMap::new()),
            runtime: runtime_for(path),
            copies,
            handed: Mutex::new(Vec::new()),
        })
    }

    /// The projected columns (`schema`) of table `name` from the sources' columnar copies, one
    /// batch at a time to `emit`, if the copies can give them: every source's copies of its
    /// last pull are there and whole, they keep these columns, and they hold as many rows as
    /// the store's table (they are written from the same snapshot; when they are not the same,
    /// SQLite is read). Returns whether it read them. Filters are left to DataFusion (SQLite's
    /// are inexact anyway).
    fn read_copies(&self, name: &str, schema: &SchemaRef, emit: &mut dyn FnMut(RecordBatch) -> bool) -> Result<bool, DataFusionError> {
        use crate::engine::columnar;
        let Some((copied, indices)) = self.copy_columns(name, schema) else {
            return Ok(false);
        };
        let mut batches = Vec::new();
        for (source, role, run) in &self.copies {
            let tables: &[&str] = if copied == "memberships" {
                columnar::member_tables(role)
            } else {
                std::slice::from_ref(&copied)
            };
            for table in tables {
                match columnar::read_columns(&self.path, source, *run, table, &indices) {
                    Some(read) => batches.extend(read),
                    None => return Ok(false),
                }
            }
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if Some(rows) != self.row_estimate(name) {
            tracing::debug!(
                table = name,
                rows,
                "the columnar copies do not hold the store's rows: reading SQLite"
            );
            return Ok(false);
        }
        for batch in batches {
            let batch = super::conform(batch, schema).map_err(|e| {
                df_err(
                    &format!("store '{}': reading {name} from its columnar copies", self.path.display()),
                    e,
                )
            })?;
            if !emit(batch) {
                break;
            }
        }
        Ok(true)
    }

    /// The copied table that may give the projected columns (`schema`) of table `name`, and
    /// where they are in it, if the copies keep them all (whether they are whole and of the
    /// store's rows is known only once they are read, [`Self::read_copies`]).
    fn copy_columns(&self, name: &str, schema: &SchemaRef) -> Option<(&'static str, Vec<usize>)> {
        let (_, copied) = COPIED.iter().find(|(t, _)| *t == name).filter(|_| !self.copies.is_empty())?;
        let copy_schema = crate::engine::columnar::table_schema(copied);
        let indices = schema
            .fields()
            .iter()
            .map(|f| {
                let i = copy_schema.index_of(f.name()).ok()?;
                arrow::compute::can_cast_types(copy_schema.field(i).data_type(), f.data_type()).then_some(i)
            })
            .collect::<Option<Vec<usize>>>()?;
        Some((copied, indices))
    }

    /// The columns `name` offers: with an instant, a versioned table offers those its versions
    /// keep too (not the current rows' internal keys).
    fn columns(&self, name: &str) -> Vec<(String, String)> {
        let cols = self.objects[name].clone();
        match (&self.at, VERSIONED.iter().find(|(t, _)| *t == name)) {
            (Some(_), Some((_, versions))) => {
                let closed: Vec<&String> = self.objects.get(*versions).into_iter().flatten().map(|(c, _)| c).collect();
                cols.into_iter().filter(|(c, _)| closed.contains(&c)).collect()
            }
            _ => cols,
        }
    }

    /// The SQLite query that reads `columns` of `name` (as of the instant, if any), keeping
    /// the rows that pass `filter` (SQL, see [`sqlite_condition`]) when one is given.
    fn read_sql(&self, name: &str, columns: &[&str], filter: Option<&str>) -> String {
        let list = if columns.is_empty() {
            "1 AS present".to_string() // COUNT(*): rows, no columns
        } else {
            columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
        };
        let and = filter.map(|f| format!(" AND {f}")).unwrap_or_default();
        let only = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        let Some(at) = &self.at else {
            return format!("SELECT {list} FROM \"{name}\"{only}");
        };
        let at = at.replace('\'', "");
        if let Some((_, versions)) = VERSIONED.iter().find(|(t, _)| *t == name) {
            return format!(
                "SELECT {list} FROM \"{name}\" WHERE valid_from <= '{at}'{and} UNION ALL SELECT {list} FROM \"{versions}\" WHERE valid_from <= '{at}' AND valid_to > '{at}'{and}"
            );
        }
        if let Some((_, since)) = AS_OF.iter().find(|(t, _)| *t == name) {
            return format!("SELECT {list} FROM \"{name}\" WHERE \"{since}\" <= '{at}'{and}");
        }
        format!("SELECT {list} FROM \"{name}\"{only}")
    }

    /// Read the projected columns of `name` from SQLite, handing each batch to `emit` as it is
    /// read (`emit` returns false when nobody wants more), keeping the rows that pass `filter`
    /// (the query's own conditions) and those of the `dynamic` conditions that are worth testing
    /// ([`pushdown::selective`]).
    fn read(
        &self,
        name: &str,
        schema: &SchemaRef,
        filter: Option<&str>,
        dynamic: Vec<String>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<(), DataFusionError> {
        if self.read_copies(name, schema, emit)? {
            return Ok(());
        }
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let kinds: Vec<Col> = schema
            .fields()
            .iter()
            .map(|f| if f.data_type() == &DataType::Int64 { Col::Int } else { Col::Text })
            .collect();
        let what = format!("store '{}': reading {name}", self.path.display());
        let conn = open(&self.path).map_err(|e| sqlite_err(&what, &e))?;
        let dynamic = pushdown::selective(&conn, name, &columns, dynamic);
        if !dynamic.is_empty() {
            let handed = dynamic.join(" AND ");
            tracing::debug!(table = %name, "dynamic filters handed to SQLite: {handed}");
            self.handed.lock().expect("no panics while held").push((name.to_string(), handed));
        }
        let all: Vec<&str> = filter.into_iter().chain(dynamic.iter().map(String::as_str)).collect();
        let filter = (!all.is_empty()).then(|| all.join(" AND "));
        let mut stmt = conn
            .prepare(&self.read_sql(name, &columns, filter.as_deref()))
            .map_err(|e| sqlite_err(&what, &e))?;
        let mut rows = stmt.query([]).map_err(|e| sqlite_err(&what, &e))?;
        if columns.is_empty() {
            let mut n = 0;
            while rows.next().map_err(|e| sqlite_err(&what, &e))?.is_some() {
                n += 1;
            }
            let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n));
            emit(RecordBatch::try_new_with_options(schema.clone(), vec![], &options)?);
            return Ok(());
        }
        for_each_batch(&mut rows, &kinds, schema, emit).map_err(|e| df_err(&what, e))
    }

    /// The rows of table `name` (all of them: with an instant, an upper bound), once per session;
    /// None for a view or when SQLite cannot say.
    fn row_estimate(&self, name: &str) -> Option<usize> {
        if !self.tables.contains(name) {
            return None;
        }
        if let Some(n) = self.row_estimates.lock().expect("no panics while held").get(name) {
            return *n;
        }
        // SQLite counts a table from its b-tree's pages (0.08 s for the 9.8M keys of a 1M-user store).
        let n = open(&self.path)
            .and_then(|c| c.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| r.get::<_, i64>(0)))
            .ok()
            .map(|n| n.max(0) as usize);
        self.row_estimates.lock().expect("no panics while held").insert(name.to_string(), n);
        n
    }

    fn table_of(self: &Arc<Self>, name: &str) -> Arc<dyn TableProvider> {
        let columns = self.columns(name);
        let schema: SchemaRef = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(c, t)| {
                    let int = t.to_ascii_uppercase().contains("INT");
                    Field::new(c.as_str(), if int { DataType::Int64 } else { DataType::Utf8 }, true)
                })
                .collect::<Vec<_>>(),
        ));
        // What SQLite compares as DataFusion does: see [`pushdown::Comparable`].
        let comparable = columns
            .into_iter()
            .filter(|(_, t)| {
                let t = t.to_ascii_uppercase();
                ["INT", "CHAR", "CLOB", "TEXT"].iter().any(|k| t.contains(k))
            })
            .map(|(c, _)| c)
            .collect();
        Arc::new(StoreTable {
            store: self.clone(),
            name: name.to_string(),
            schema,
            comparable: Arc::new(comparable),
        })
    }

    /// The SQL DataFusion plans the auditor view `name` from: `portable` with its current-state
    /// part in place when the query is of the current state and the store has the integer keys
    /// that part reads, else `portable` as it is.
    fn view_body<'a>(&self, name: &str, portable: &'a str) -> std::borrow::Cow<'a, str> {
        match CURRENT_FORMS.iter().find(|(v, _)| *v == name) {
            Some((_, current)) if self.has_current_keys() => {
                let at = portable.find(CURRENT_PART).expect("a view with a current form marks its part");
                format!("{}{current}", &portable[..at]).into()
            }
            _ => portable.into(),
        }
    }

    /// Whether the query is of the current state on a store with the internal integer keys
    /// (which keep no history) that the views' current forms read.
    fn has_current_keys(&self) -> bool {
        self.at.is_none() && self.tables.contains("member_keys")
    }

    /// The SQL of a store view that DataFusion plans better than SQLite reads it, if `name` is one.
    fn planned_here(&self, name: &str) -> Option<&str> {
        self.view_sql.get(name).filter(|_| self.at.is_none()).map(String::as_str)
    }
}

/// A table of the store, read when a plan runs its scan: only the columns the plan needs, as a
/// stream of batches (a query that streams its result, such as every membership to CSV, never
/// holds the table).
#[derive(Debug)]
struct StoreTable {
    store: Arc<StoreSchema>,
    name: String,
    schema: SchemaRef,
    /// Columns SQLite may filter as it reads (see [`pushdown::Comparable`]).
    comparable: Arc<std::collections::HashSet<String>>,
}

impl StoreTable {
    fn comparable(&self) -> pushdown::Comparable<'_> {
        pushdown::Comparable {
            schema: &self.schema,
            columns: &self.comparable,
        }
    }
}

#[async_trait]
impl TableProvider for StoreTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Comparisons of a column with a literal are handed to SQLite too (inexactly: DataFusion
    /// still applies them), so that its indexes skip what the query does not want: `diff`
    /// reads one source's history at a time, and read every source's whole before.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>, DataFusionError> {
        Ok(filters
            .iter()
            .map(|f| match pushdown::logical(f, &self.comparable()) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let conditions: Vec<String> = filters.iter().filter_map(|f| pushdown::logical(f, &self.comparable())).collect();
        let filter = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let read = StoreRead {
            store: self.store.clone(),
            name: self.name.clone(),
            schema,
            filter,
            comparable: self.comparable.clone(),
            dynamic: Vec::new(),
        };
        let (store, name) = (self.store.clone(), self.name.clone());
        let rows = tokio::task::spawn_blocking(move || store.row_estimate(&name))
            .await
            .map_err(|e| df_err("reading the store", e))?;
        Ok(Arc::new(EstimatedScan::new(read, state.config().target_partitions(), limit, rows)?))
    }
}

/// A store scan with the table's row count as an (inexact) estimate, so that the optimizer
/// builds each hash join on its smaller side and streams the larger one (a stream has no
/// statistics of its own; without them every join built on whatever the SQL wrote first).
///
/// It takes DataFusion's dynamic filters (a hash join's build-side keys, pushed to the scan of
/// its probe side), which SQLite applies as far as it can say them ([`pushdown::dynamic`]) when
/// the read starts: the read starts when the scan is first polled, after the join has read its
/// build side.
#[derive(Debug)]
struct EstimatedScan {
    scan: Arc<StreamingTableExec>,
    /// The read the scan's partitions share, and how it was split (to rebuild it with filters).
    read: StoreRead,
    partitions: usize,
    limit: Option<usize>,
    rows: Option<usize>,
}

impl EstimatedScan {
    fn new(read: StoreRead, partitions: usize, limit: Option<usize>, rows: Option<usize>) -> datafusion::error::Result<EstimatedScan> {
        let parts = SharedRead::partitions(Arc::new(read.clone()), partitions);
        let scan = Arc::new(StreamingTableExec::try_new(
            read.schema.clone(),
            parts,
            None,
            Vec::new(),
            false,
            limit,
        )?);
        Ok(EstimatedScan {
            scan,
            read,
            partitions,
            limit,
            rows,
        })
    }
}

impl DisplayAs for EstimatedScan {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.scan.fmt_as(t, f)?;
        if let Some(n) = self.rows {
            write!(f, ", rows≈{n}")?;
        }
        if let Some(sql) = &self.read.filter {
            write!(f, ", sqlite_filter={sql}")?;
        }
        match self.read.dynamic.len() {
            0 => Ok(()),
            n => write!(f, ", dynamic_filters={n}"),
        }
    }
}

impl ExecutionPlan for EstimatedScan {
    fn name(&self) -> &str {
        "StoreScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.scan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    /// The dynamic filters taken: a join computes its filter only when a node shows it uses it.
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        for filter in &self.read.dynamic {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("a store scan has no children".into()))
        }
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> datafusion::error::Result<SendableRecordBatchStream> {
        self.scan.execute(partition, ctx)
    }

    /// Dynamic filters are taken (SQLite applies what it can of them, DataFusion's joins still
    /// match every row: they only spare reading rows no join would keep); the query's own
    /// filters were handed over when the scan was planned, and stay DataFusion's here. A read
    /// the columnar copies may serve takes none: it costs milliseconds, and waiting for the
    /// filters would start it only once the joins above have read their build sides, where it
    /// now runs beside them (0.15–0.25 s more for active_without_group and unmatched_accounts
    /// at 1M users).
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        if self.read.store.copy_columns(&self.read.name, &self.read.schema).is_some() {
            return Ok(FilterPushdownPropagation::all_unsupported(child_pushdown_result));
        }
        let mut taken = Vec::new();
        let verdicts = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| {
                // Only a filter that is itself dynamic: a static part said to be taken would
                // no longer be applied by DataFusion.
                if f.filter.downcast_ref::<DynamicFilterPhysicalExpr>().is_some() {
                    taken.push(f.filter);
                    PushedDown::Yes
                } else {
                    PushedDown::No
                }
            })
            .collect();
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(verdicts);
        if taken.is_empty() {
            return Ok(propagation);
        }
        let mut read = self.read.clone();
        read.dynamic.extend(taken);
        let scan = EstimatedScan::new(read, self.partitions, self.limit, self.rows)?;
        Ok(propagation.with_updated_node(Arc::new(scan)))
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> datafusion::error::Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.scan.schema());
        if let Some(n) = self.rows {
            stats.num_rows = Precision::Inexact(n);
        }
        Ok(Arc::new(stats))
    }
}

/// The batches of one read, taken by whichever partition asks next.
type SharedRx = Arc<SharedBatches>;

/// The batches of one read, and the read itself until it starts: when the plan runs, or, for a
/// read with dynamic filters, when a partition first asks for a batch, so that the filters it
/// hands to SQLite are those of hash joins that have read their build sides.
struct SharedBatches {
    rx: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Result<RecordBatch, DataFusionError>>>,
    start: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for SharedBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBatches").finish_non_exhaustive()
    }
}

impl SharedBatches {
    /// Start the read now if it has not started.
    fn start(&self) {
        if let Some(start) = self.start.lock().expect("no panics while held").take() {
            tokio::task::spawn_blocking(start);
        }
    }

    async fn next(&self) -> Option<Result<RecordBatch, DataFusionError>> {
        self.start();
        self.rx.lock().await.recv().await
    }
}

/// One read of a table shared by the scan's partitions: each batch goes to whichever partition
/// asks for it next, at most two batches ahead of them. A single-partition scan was split
/// round-robin by DataFusion into a repartition that read ahead of its consumers without bound
/// (its consumers are hash joins still building) and spilled: 112–120 MB of each 2M-user scan
/// of `report access_review` at 1M users, even with a 2 GiB pool.
#[derive(Debug)]
struct SharedRead {
    read: StoreRead,
    /// The scan's partitions.
    n: usize,
    /// The read under way until every partition has taken its stream from it, and which have.
    /// A partition that has taken one already starts the next read (a plan run again).
    state: Mutex<Option<(SharedRx, Vec<bool>)>>,
}

impl SharedRead {
    /// `n` partitions over `read` (just `read` for one).
    fn partitions(read: Arc<StoreRead>, n: usize) -> Vec<Arc<dyn PartitionStream>> {
        if n <= 1 {
            return vec![read];
        }
        let shared = Arc::new(SharedRead {
            read: (*read).clone(),
            n,
            state: Mutex::new(None),
        });
        (0..n)
            .map(|index| {
                Arc::new(SharedPart {
                    shared: shared.clone(),
                    index,
                }) as Arc<dyn PartitionStream>
            })
            .collect()
    }

    /// The read partition `index` takes its batches from, started if need be.
    fn receiver(&self, index: usize) -> SharedRx {
        let mut state = self.state.lock().expect("no panics while held");
        if !matches!(&*state, Some((_, taken)) if !taken[index]) {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            // Ends when every partition's stream is gone (its sends fail) or the rows are out.
            let batches = SharedBatches {
                rx: tokio::sync::Mutex::new(rx),
                start: Mutex::new(Some(Box::new(self.read.sending_to(tx)))),
            };
            if self.read.dynamic.is_empty() {
                batches.start(); // nothing to wait for: read ahead of the consumers
            }
            *state = Some((Arc::new(batches), vec![false; self.n]));
        }
        let (rx, taken) = state.as_mut().expect("set above");
        taken[index] = true;
        let rx = rx.clone();
        if taken.iter().all(|t| *t) {
            // Held by the partitions' streams alone from now: when they are gone, so is the read.
            *state = None;
        }
        rx
    }
}

/// Partition `index` of a [`SharedRead`].
#[derive(Debug)]
struct SharedPart {
    shared: Arc<SharedRead>,
    index: usize,
}

impl PartitionStream for SharedPart {
    fn schema(&self) -> &SchemaRef {
        &self.shared.read.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.shared.receiver(self.index);
        let batches = futures::stream::unfold(rx, |rx| async move {
            let next = rx.next().await;
            next.map(|batch| (batch, rx))
        });
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            self.shared.read.schema.clone(),
            batches,
        ))
    }
}

/// One read of a table's projected columns, on a blocking thread, two batches ahead of the
/// query at most.
#[derive(Debug, Clone)]
struct StoreRead {
    store: Arc<StoreSchema>,
    name: String,
    schema: SchemaRef,
    /// Conditions SQLite applies as it reads, from the query's filters.
    filter: Option<String>,
    /// The table's columns SQLite may compare (see [`pushdown::Comparable`]).
    comparable: Arc<std::collections::HashSet<String>>,
    /// DataFusion's dynamic filters on the read, said to SQLite as they are when it starts.
    dynamic: Vec<Arc<dyn PhysicalExpr>>,
}

impl PartitionStream for StoreRead {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// A read with dynamic filters starts when the stream is first polled (see
    /// [`SharedBatches`]), one without at once.
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        use futures::StreamExt;
        if self.dynamic.is_empty() {
            return self.started();
        }
        let read = self.clone();
        let batches = futures::stream::once(async move { read.started() }).flatten();
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        ))
    }
}

impl StoreRead {
    /// The read, started now on a blocking thread, as a stream.
    fn started(&self) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let send = self.sending_to(builder.tx());
        builder.spawn_blocking(move || {
            send();
            Ok(())
        });
        builder.build()
    }

    /// What the dynamic filters say now, as SQLite conditions (to be weighed by the read).
    fn dynamic_conditions(&self) -> Vec<String> {
        let table = pushdown::Comparable {
            schema: &self.schema,
            columns: &self.comparable,
        };
        self.dynamic.iter().flat_map(|f| pushdown::dynamic(f, &table)).collect()
    }

    /// The read, to run on a blocking thread: each batch sent to `tx`, then an error if one
    /// ended it. It stops when nobody receives any more.
    fn sending_to(&self, tx: tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>) -> impl FnOnce() + Send + 'static {
        let this = self.clone();
        move || {
            let dynamic = this.dynamic_conditions();
            let read = this
                .store
                .read(&this.name, &this.schema, this.filter.as_deref(), dynamic, &mut |batch| {
                    tx.blocking_send(Ok(batch)).is_ok()
                });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(e));
            }
        }
    }
}

/// The auditor's memory pool ([`super::limits::session_memory_limit`]), spilling beside the
/// store when its directory is writable (a read-only mount: the system's temporary directory).
fn runtime_for(store: &Path) -> Arc<RuntimeEnv> {
    let dir = match store.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let writable = std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    crate::engine::memory_limited_runtime(super::limits::session_memory_limit(), writable.then_some(dir.as_path()))
}

/// A session on `runtime` with the auditor's functions and limits, and no tables yet.
pub fn configured_session(runtime: Arc<RuntimeEnv>) -> SessionContext {
    let ctx = crate::engine::session_with_runtime(runtime);
    register_functions(&ctx);
    ctx
}

/// The auditor's functions, registered in `ctx` (over DataFusion's of the same names).
pub fn register_functions(ctx: &SessionContext) {
    super::limits::register_bounded_functions(ctx);
    // SQLite's (and DuckDB's) name for string_agg, so one view text serves all three.
    ctx.register_udaf(super::group_concat::string_agg());
    ctx.register_udf(super::json::json_extract());
}

/// The auditor's memory pool ([`super::limits::session_memory_limit`]), spilling to `dir` (or
/// the system's temporary directory).
pub fn runtime_spilling_to(dir: Option<&Path>) -> Arc<RuntimeEnv> {
    crate::engine::memory_limited_runtime(super::limits::session_memory_limit(), dir)
}

/// A fresh DataFusion session whose default schema is `schema`.
pub fn session(schema: Arc<StoreSchema>) -> SessionContext {
    session_sharing(SharedSchema {
        store: schema,
        loaded: Default::default(),
    })
}

/// A session over `schema`, whose tables and views are those already loaded by the sessions
/// sharing it (a view's session plans it with the tables the auditor's session has read).
fn session_sharing(schema: SharedSchema) -> SessionContext {
    let ctx = configured_session(schema.store.runtime.clone());
    let catalog = ctx.catalog("datafusion").expect("the default catalog");
    catalog
        .register_schema("public", Arc::new(schema))
        .expect("replacing the default schema");
    ctx
}

/// The schema as registered, with the tables and views its sessions have loaded. The cache is
/// kept here, not in [`StoreSchema`]: its tables hold the `StoreSchema`, and a `StoreSchema`
/// holding them would never be freed, nor its runtime, whose spill directory beside the store
/// was then left behind by every `sql` and `report`.
#[derive(Debug, Clone)]
struct SharedSchema {
    store: Arc<StoreSchema>,
    loaded: Arc<Mutex<HashMap<String, Arc<dyn TableProvider>>>>,
}

impl SharedSchema {
    /// A view of `queries/views` (or of the store), planned over this schema.
    async fn view(&self, body: &str) -> Result<Arc<dyn TableProvider>, DataFusionError> {
        let ctx = session_sharing(self.clone());
        Ok(ctx.sql(body).await?.into_view())
    }
}

#[async_trait]
impl SchemaProvider for SharedSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .objects
            .keys()
            .cloned()
            .chain(VIEWS.iter().map(|(v, _)| v.to_string()))
            .collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(t) = self.loaded.lock().expect("no panics while held").get(name) {
            return Ok(Some(t.clone()));
        }
        let table = if let Some((_, body)) = VIEWS.iter().find(|(v, _)| *v == name) {
            self.view(&self.store.view_body(name, body)).await?
        } else if let Some(body) = self.store.planned_here(name) {
            self.view(body).await?
        } else if name == super::via_groups::TABLE && self.store.has_current_keys() {
            Arc::new(ViaGroupsTable {
                store: self.store.clone(),
                key: Constraints::new_unverified(vec![Constraint::PrimaryKey(vec![0, 1])]),
            })
        } else if self.store.objects.contains_key(name) {
            self.store.table_of(name)
        } else {
            return Ok(None);
        };
        self.loaded
            .lock()
            .expect("no panics while held")
            .insert(name.to_string(), table.clone());
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.store.objects.contains_key(name) || VIEWS.iter().any(|(v, _)| *v == name)
    }
}

/// [`super::via_groups::TABLE`]: `app_access`'s `via_groups` of the current state, by the
/// operator that gathers them from the bound groups and the member keys of this store.
#[derive(Debug)]
struct ViaGroupsTable {
    /// The store alone, not the [`SharedSchema`] that caches this table: holding that, the
    /// cache held itself, and the store's spill directory stayed behind.
    store: Arc<StoreSchema>,
    /// (app, uid), its key.
    key: Constraints,
}

#[async_trait]
impl TableProvider for ViaGroupsTable {
    fn schema(&self) -> SchemaRef {
        super::via_groups::schema()
    }

    /// One row per (app, uid): a query that reads none of its columns (`unmatched_accounts`,
    /// `deactivated_but_active`) has its left join removed, and the operator is not run.
    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.key)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        use super::via_groups::{ViaGroupsExec, BOUND_GROUPS_SQL, MEMBER_KEYS_SQL};
        let ctx = session(self.store.clone());
        let bound = ctx.sql(BOUND_GROUPS_SQL).await?.create_physical_plan().await?;
        let keys = ctx.sql(MEMBER_KEYS_SQL).await?.create_physical_plan().await?;
        Ok(Arc::new(ViaGroupsExec::try_new(bound, keys, projection.cloned())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_own_membership_views_are_planned_here_unless_at_an_instant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::store::Store::open(&path).unwrap());
        let now = StoreSchema::new(&path, None).unwrap();
        let body = now.planned_here("memberships").expect("a view of the store");
        assert!(body.trim_start().starts_with("SELECT") && body.contains("member_keys"), "{body}");
        assert!(now.planned_here("membership_history").is_some());
        assert_eq!(now.planned_here("users"), None, "tables are read, not planned");
        let then = StoreSchema::new(&path, Some("2026-01-01T00:00:00Z".into())).unwrap();
        assert_eq!(then.planned_here("memberships"), None);
        // app_access: its current-state form reads the integer keys, which keep no history.
        let portable = VIEWS.iter().find(|(v, _)| *v == "app_access").unwrap().1;
        assert!(now.view_body("app_access", portable).contains("JOIN current_via_groups v"));
        assert_eq!(then.view_body("app_access", portable), portable);
        assert_eq!(now.view_body("idp_vs_app", "SELECT 1"), "SELECT 1");
    }

    /// A new store with pull run 1 and `sql` run in it (the directory lives as long as it).
    fn store_with(sql: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = crate::store::Store::open(&path).unwrap();
        store
            .connection()
            .execute_batch(&format!(
                "INSERT INTO runs (id, kind, started_at, status, snapshot_at) VALUES (1, 'pull', 't', 'ok', 't');\n{sql}"
            ))
            .unwrap();
        (dir, path)
    }

    /// The physical plan an auditor makes of `sql` on the store at `path`, as EXPLAIN prints it.
    async fn physical_plan(path: &Path, sql: &str) -> String {
        let auditor = crate::audit::Auditor::open(path, None).unwrap();
        let rows = auditor.query(&format!("EXPLAIN {sql}"), "test").await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&rows.batches).unwrap().to_string();
        text[text.find("physical_plan").expect("a physical plan")..].to_string()
    }

    /// A table's scan is one read shared by its partitions: every row once, whichever partition
    /// takes it, and again when the plan runs again; no round-robin repartition above it.
    #[tokio::test]
    async fn a_scan_hands_each_row_to_one_partition_once_per_run() {
        // 150,000 users: three batches of the store's reads.
        let (_dir, path) = store_with(
            "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 150000)
                 INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id)
                     SELECT v, 'idp.x', 'u' || v, 1, '{}', 0, 't', 1 FROM n;",
        );
        let physical = physical_plan(&path, "SELECT uid FROM users WHERE id <> 'u7'").await;
        assert!(!physical.contains("RoundRobinBatch"), "{physical}");
        assert!(physical.contains("partition_sizes=2"), "{physical}");
        let auditor = crate::audit::Auditor::open(&path, None).unwrap();
        let counted = auditor
            .query(
                "SELECT count(*) AS n, count(DISTINCT uid) AS d, sum(uid) AS s FROM users WHERE id <> 'u7'",
                "test",
            )
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&counted.batches).unwrap().to_string();
        assert!(text.contains("| 149999 | 149999 | 11250074993 |"), "{text}");
        // The partitions of one scan, run twice: all rows each time, none twice.
        let schema = StoreSchema::new(&path, None).unwrap();
        let table = Arc::new(schema).table_of("users");
        let ctx = SessionContext::new();
        let uid = table.schema().index_of("uid").unwrap();
        let scan = table.scan(&ctx.state(), Some(&vec![uid]), &[], None).await.unwrap();
        for _ in 0..2 {
            let mut uids = Vec::new();
            for p in 0..scan.properties().partitioning.partition_count() {
                let stream = scan.execute(p, ctx.task_ctx()).unwrap();
                let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream).await.unwrap();
                for b in batches {
                    let col = b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
                    uids.extend(col.values().iter().copied());
                }
            }
            uids.sort_unstable();
            assert_eq!(uids, (1..=150000).collect::<Vec<i64>>());
        }
    }

    /// `app_access`'s `via_groups` is gathered only for a query that reads it: the reports
    /// that do not (`unmatched_accounts`, `deactivated_but_active`) took 0.3 s longer at 1M
    /// while the operator's table had no key to drop its left join by.
    #[tokio::test]
    async fn app_access_gathers_via_groups_only_when_a_query_reads_them() {
        let (_dir, path) = store_with("");
        let unread = physical_plan(&path, "SELECT account_id FROM app_access WHERE access = 'unlinked'").await;
        assert!(!unread.contains("ViaGroupsExec"), "{unread}");
        let read = physical_plan(&path, "SELECT account_id, via_groups FROM app_access").await;
        assert!(read.contains("ViaGroupsExec"), "{read}");
    }

    /// `app_access` meets each app source with the IdPs bound to it (a few rows) before the
    /// accounts, so the accounts stream through a hash table of those rows. Joined after them,
    /// the bound IdPs were the probe side of a table of every account (985k at 1M users, 107 MB
    /// of the pool): `SELECT * FROM app_access` to CSV peaked at 721–811 MiB against 656–754.
    #[tokio::test]
    async fn app_access_streams_the_accounts_through_the_app_sources_bound_idps() {
        let (_dir, path) = store_with("");
        let physical = physical_plan(&path, "SELECT account_id, idp FROM app_access").await;
        let at = |projection: &str| physical.find(projection).unwrap_or_else(|| panic!("{projection} in {physical}"));
        // A hash join builds its left (first printed) side.
        assert!(
            at("projection=[app, idp]") < at("projection=[source, id"),
            "the accounts are a build side:\n{physical}"
        );
    }

    #[tokio::test]
    async fn memberships_stream_member_keys_through_hash_joins_built_on_the_small_tables() {
        // Two groups and five users, with a few more keys than either.
        let (_dir, path) = store_with(
            "INSERT INTO groups (gid, source, id, display_name, raw, hash, valid_from, run_id) VALUES (1, 'idp.x', 'g1', 'G1', '{}', 0, 't', 1), (2, 'idp.x', 'g2', 'G2', '{}', 0, 't', 1);
                 WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 5)
                 INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id)
                     SELECT v, 'idp.x', 'u' || v, 1, '{}', 0, 't', 1 FROM n;
                 INSERT INTO member_keys (gid, uid, run_id) SELECT g.gid, u.uid, 1 FROM groups g, users u;",
        );
        let physical = physical_plan(&path, "SELECT * FROM memberships").await;
        let at = |projection: &str| physical.find(projection).unwrap_or_else(|| panic!("{projection} in {physical}"));
        // A hash join builds its left (first printed) side; member_keys must be the last input.
        let keys = at("projection=[gid, uid, run_id]");
        for small in [
            "projection=[id, snapshot_at]",
            "projection=[uid, id]",
            "projection=[gid, source, id]",
        ] {
            assert!(at(small) < keys, "{small} is not a build side:\n{physical}");
        }
    }

    /// `latest_findings` reads the stored rows of the latest plans (`finding_rows`), not the
    /// `findings` view, which repeats a shared plan's rows for every plan sharing them: at 1M
    /// users with 60 kept plans that was 16.8M rows, and DataFusion, which has no row count for
    /// a view, built its hash join on them: `report group_differences` failed the 512 MiB pool
    /// of the default limit. (With a row count, a table of at most a million rows may be the
    /// build side, and a larger one streams through the latest plans.)
    #[tokio::test]
    async fn latest_findings_reads_the_stored_rows_of_the_latest_plans() {
        let (_dir, path) = store_with(
            "INSERT INTO sources (name, role, kind, last_pull_run) VALUES ('app.wiki', 'app', 'scim', 1);
                 INSERT INTO runs (id, kind, started_at, status) VALUES (2, 'plan', 't', 'ok'), (3, 'plan', 't', 'ok');
                 INSERT INTO finding_rows (run_id, app, kind, subject) VALUES (3, 'wiki', 'user.missing', 'new');
                 WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 1000)
                 INSERT INTO finding_rows (run_id, app, kind, subject) SELECT 2, 'wiki', 'user.missing', 'old' FROM n;",
        );
        let latest = |path: PathBuf| async move {
            let auditor = crate::audit::Auditor::open(&path, None).unwrap();
            let rows = auditor.query("SELECT run_id, subject FROM latest_findings", "test").await.unwrap();
            arrow::util::pretty::pretty_format_batches(&rows.batches).unwrap().to_string()
        };
        let text = latest(path.clone()).await;
        assert!(text.contains("| 3      | new     |") && !text.contains("old"), "{text}");
        // Plan 4 found what plan 3 found: its rows are plan 3's, under its own id.
        let store = crate::store::Store::open(&path).unwrap();
        store
            .connection()
            .execute_batch("INSERT INTO runs (id, kind, started_at, status, findings_of) VALUES (4, 'plan', 't', 'ok', 3);")
            .unwrap();
        drop(store);
        let text = latest(path.clone()).await;
        assert!(
            text.contains("| 4      | new     |") && !text.contains("old") && !text.contains("| 3"),
            "{text}"
        );
        let physical = physical_plan(&path, "SELECT * FROM latest_findings").await;
        let at = |projection: &str| physical.find(projection).unwrap_or_else(|| panic!("{projection} in {physical}"));
        // The scan of the findings is of a table, with its row count (a view's has none).
        let scan = at("projection=[run_id, app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value]");
        let line = &physical[scan..physical[scan..].find('\n').map_or(physical.len(), |n| scan + n)];
        assert!(line.contains("rows≈1001"), "findings read from a view:\n{physical}");
    }

    /// `sql` and `report` spill beside the store, in a directory of their own that goes when the
    /// auditor does: every run left an empty `datafusion-*` directory there while the schema's
    /// tables held the schema (a cron job's store directory filled with them).
    #[tokio::test]
    async fn an_auditor_leaves_no_spill_directory_beside_the_store() {
        let (dir, path) = store_with(
            "INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id) VALUES (1, 'idp.x', 'u1', 1, '{}', 0, 't', 1);",
        );
        let spill_dirs = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("datafusion-"))
                .count()
        };
        let auditor = crate::audit::Auditor::open(&path, None).unwrap();
        assert_eq!(spill_dirs(), 1, "the pool's spill directory is made beside the store");
        // A table read and a view planned over it: both are cached by the schema.
        auditor.query("SELECT count(*) FROM users", "test").await.unwrap();
        auditor.query("SELECT * FROM memberships", "test").await.unwrap();
        // app_access's current form, whose via_groups are an operator's over the store.
        auditor.query("SELECT * FROM app_access", "test").await.unwrap();
        drop(auditor);
        // A scan whose rows a join no longer wanted ends on its own thread, a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while spill_dirs() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(spill_dirs(), 0, "the spill directory goes with the auditor");
    }

    /// `report changes_since_previous_pull` on a store whose sources' last pulls added, changed
    /// and removed users and memberships: DataFusion's dynamic filters (the last runs, once
    /// read) reach SQLite's reads of the millions of users, versions and memberships, and the
    /// rows are those of the same query without them. At 1M users the report read 9.8M
    /// memberships to keep none (2.4 s); joined on the run alone, the runs reach `member_keys`
    /// below the joins that name a membership (1.3 s).
    #[tokio::test]
    async fn the_last_runs_reach_sqlite_and_the_changes_are_those_without_them() {
        // Two sources, pulled twice each (idp.x: runs 1 and 3; app.y: 2 and 4). Users 1-200 are
        // idp.x's, 201-400 app.y's; every 7th was written by its source's last pull, every
        // 5th of those replaced a version it closed; versions 1001-1012 were removed by it. The
        // others replaced versions the first pulls closed (so that the last runs are selective
        // enough to be handed to SQLite, see `pushdown::selective`).
        let (_dir, path) = store_with(
            "INSERT INTO runs (id, kind, source, started_at, status, snapshot_at) VALUES
                 (2, 'pull', 'app.y', 't2', 'ok', 't2'), (3, 'pull', 'idp.x', 't3', 'ok', 't3'), (4, 'pull', 'app.y', 't4', 'ok', 't4');
             INSERT INTO sources (name, role, kind, last_pull_run) VALUES ('idp.x', 'idp', 'scim', 3), ('app.y', 'app', 'scim', 4);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 400)
             INSERT INTO users (uid, source, id, user_name, active, raw, hash, valid_from, run_id)
                 SELECT v, CASE WHEN v <= 200 THEN 'idp.x' ELSE 'app.y' END, 'u' || v, 'name' || v, 1, '{}', 0, 't',
                        CASE WHEN v % 7 = 0 THEN 3 ELSE 1 END + (v > 200) FROM n;
             INSERT INTO user_versions (uid, source, id, user_name, active, raw, hash, valid_from, run_id, valid_to, ended_by_run)
                 SELECT uid, source, id, user_name, 1, '{}', 0, 't', 0, 't', run_id FROM users WHERE run_id <= 2;
             INSERT INTO user_versions (uid, source, id, user_name, active, raw, hash, valid_from, run_id, valid_to, ended_by_run)
                 SELECT uid, source, id, user_name, 1, '{}', 0, 't', run_id - 2, 't', run_id FROM users WHERE run_id > 2 AND uid % 5 = 0;
             WITH RECURSIVE n(v) AS (SELECT 1001 UNION ALL SELECT v + 1 FROM n WHERE v < 1012)
             INSERT INTO user_versions (uid, source, id, user_name, active, raw, hash, valid_from, run_id, valid_to, ended_by_run)
                 SELECT v, CASE WHEN v % 2 = 0 THEN 'idp.x' ELSE 'app.y' END, 'gone' || v, NULL, 1, '{}', 0, 't', 1, 't',
                        CASE WHEN v % 2 = 0 THEN 3 ELSE 4 END FROM n;
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 20)
             INSERT INTO groups (gid, source, id, display_name, raw, hash, valid_from, run_id)
                 SELECT v, CASE WHEN v <= 10 THEN 'idp.x' ELSE 'app.y' END, 'g' || v, 'Group ' || v, '{}', 0, 't', 1 FROM n;
             INSERT INTO member_keys (gid, uid, run_id)
                 SELECT g.gid, u.uid, CASE WHEN (g.gid * u.uid) % 11 = 0 THEN 3 ELSE 1 END + (g.gid > 10)
                 FROM groups g JOIN users u ON u.source = g.source WHERE (g.gid + u.uid) % 3 = 0;
             INSERT INTO membership_versions (source, group_id, user_id, valid_from, run_id, valid_to, ended_by_run)
                 VALUES ('idp.x', 'g1', 'u5', 't', 1, 't', 3), ('app.y', 'g12', 'u300', 't', 2, 't', 4), ('app.y', 'g12', 'u301', 't', 2, 't', 2);",
        );
        let report = crate::audit::reports::find("changes_since_previous_pull").unwrap().sql;
        let run = |dynamic: bool| {
            let path = path.clone();
            async move {
                let schema = Arc::new(StoreSchema::new(&path, None).unwrap());
                let ctx = session(schema.clone());
                ctx.sql(&format!("SET datafusion.optimizer.enable_dynamic_filter_pushdown = {dynamic}"))
                    .await
                    .unwrap();
                let batches = ctx.sql(report).await.unwrap().collect().await.unwrap();
                let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
                let handed = schema.handed.lock().unwrap().clone();
                (text, handed)
            }
        };
        let (with, handed) = run(true).await;
        let (without, none) = run(false).await;
        assert_eq!(with, without);
        assert!(none.is_empty(), "{none:?}");
        let rows = |object: &str, change: &str| {
            with.lines()
                .filter(|l| l.contains(&format!("| {object} ")) && l.contains(&format!("| {change} ")))
                .count()
        };
        let conn = rusqlite::Connection::open(&path).unwrap();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize;
        let changed = count("SELECT count(*) FROM user_versions WHERE ended_by_run > 2 AND uid < 1000");
        assert!(changed > 0);
        assert_eq!(rows("user", "changed"), changed, "{with}");
        assert_eq!(
            rows("user", "added"),
            count("SELECT count(*) FROM users WHERE run_id > 2") - changed,
            "{with}"
        );
        assert_eq!(rows("user", "removed"), 12, "{with}");
        assert_eq!(
            rows("membership", "added"),
            count("SELECT count(*) FROM member_keys WHERE run_id > 2"),
            "{with}"
        );
        assert_eq!(rows("membership", "removed"), 2, "{with}");
        for table in ["users", "user_versions", "member_keys", "membership_versions"] {
            assert!(handed.iter().any(|(t, c)| t == table && c.contains("run")), "{table}: {handed:?}");
        }
    }

    /// Comparisons with literals reach SQLite (its indexes skip what is not wanted), but only
    /// on columns SQLite compares as DataFusion does: a view's computed count holds integers,
    /// which SQLite finds unequal to the text '2' DataFusion compares them as.
    #[tokio::test]
    async fn comparisons_reach_sqlite_only_where_it_compares_alike() {
        let (_dir, path) = store_with(
            "INSERT INTO users (uid, source, id, active, raw, hash, valid_from, run_id) VALUES
                     (1, 'idp.x', 'u1', 1, '{}', 0, 't', 1), (2, 'idp.x', 'u2', 1, '{}', 0, 't', 1), (3, 'app.y', 'a1', 1, '{}', 0, 't', 1);
                 CREATE VIEW per_source AS SELECT source, count(*) AS n FROM users GROUP BY source;",
        );
        let auditor = crate::audit::Auditor::open(&path, None).unwrap();
        let text = |rows: crate::audit::Rows| arrow::util::pretty::pretty_format_batches(&rows.batches).unwrap().to_string();
        let plan = text(
            auditor
                .query("EXPLAIN SELECT id FROM users WHERE source = 'idp.x' AND uid >= 2", "test")
                .await
                .unwrap(),
        );
        assert!(plan.contains(r#"sqlite_filter="source" = 'idp.x' AND "uid" >= 2"#), "{plan}");
        let rows = text(
            auditor
                .query("SELECT id FROM users WHERE source = 'idp.x' AND uid >= 2", "test")
                .await
                .unwrap(),
        );
        assert!(rows.contains("u2") && !rows.contains("u1") && !rows.contains("a1"), "{rows}");
        let rows = auditor.query("SELECT source FROM per_source WHERE n = '2'", "test").await.unwrap();
        assert_eq!(rows.len(), 1, "{}", text(rows));
    }
}
