//! `sql --lake` and `report --lake`: the auditor's SQL over a lake, once per store, each answer
//! with the store's id as its first column. Each store is planned as its own store would be: the
//! lake's files of that store as its tables (as they were at `--at`, when given), its own views
//! (from its manifest), and the auditor's views of `queries/views` (their portable form).
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::manifest::{self, Manifest};
use super::tables::{LakeTable, TABLES};
use crate::audit::output::Sink;
use crate::audit::{AuditError, Auditor, AS_OF, VERSIONED};

/// The first column of every answer over a lake.
pub const STORE_COLUMN: &str = "store_id";

/// The auditor over every store of a lake.
pub struct LakeAuditor {
    stores: Vec<(String, Auditor)>,
}

/// `--at` over a lake: a time (run ids are each store's own), refused before a store's horizon.
pub fn resolve_at(lake: &Path, point: &str) -> Result<String, AuditError> {
    if point.parse::<i64>().is_ok() {
        return Err(AuditError::Input(format!(
            "--at {point}: over a lake --at takes a time like 2026-10-01T00:00:00Z or 2026-10-01 (run ids are each store's own)"
        )));
    }
    let instant = crate::time::parse_instant(point)
        .ok_or_else(|| AuditError::Input(format!("--at '{point}' is not a time like 2026-10-01T00:00:00Z or 2026-10-01")))?;
    for m in manifest::load_all(lake).map_err(lake_err)? {
        if let Some(h) = m.horizon.as_ref().filter(|h| instant < **h) {
            return Err(AuditError::Input(format!(
                "--at '{point}' ({instant}) is before store '{}''s history horizon in the lake: the versions that ended before {h} were removed from the store before they were exported; the earliest instant answerable for it is {h}",
                m.store_id
            )));
        }
    }
    Ok(instant)
}

fn lake_err(e: super::LakeError) -> AuditError {
    AuditError::Input(e.to_string())
}

impl LakeAuditor {
    /// Every store of the lake at `lake`, seen at `at` (stored form) if given; its queries run
    /// here, or on the Ballista cluster whose scheduler is at `cluster` (`df://host:port`).
    pub async fn open(lake: &Path, at: Option<&str>, cluster: Option<&str>) -> Result<LakeAuditor, AuditError> {
        let lake = std::fs::canonicalize(lake).map_err(|e| AuditError::Input(format!("lake '{}': {e}", lake.display())))?;
        let manifests = manifest::load_all(&lake).map_err(lake_err)?;
        if manifests.is_empty() {
            return Err(AuditError::Input(format!(
                "lake '{}': no store has exported into it (`scimsync export --lake {}`)",
                lake.display(),
                lake.display()
            )));
        }
        let mut stores = Vec::new();
        for m in &manifests {
            let ctx = store_session(&lake, m, at, cluster)
                .await
                .map_err(|e| AuditError::Input(format!("lake '{}', store '{}': {e}", lake.display(), m.store_id)))?;
            stores.push((m.store_id.clone(), Auditor::with_session(ctx)));
        }
        Ok(LakeAuditor { stores })
    }

    /// The stores, in the order their answers come.
    pub fn store_ids(&self) -> Vec<&str> {
        self.stores.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Run `statements` over each store in turn (keeping only `app`'s rows when given) and write
    /// the answers to one sink, the store's id first on every row; returns the rows written.
    pub async fn queries_into<'w>(
        &self,
        statements: &[String],
        origin: &str,
        app: Option<&str>,
        make_sink: impl FnOnce(SchemaRef) -> Result<Sink<'w>, AuditError>,
    ) -> Result<usize, AuditError> {
        let mut sink: Option<(SchemaRef, Sink<'w>)> = None;
        let mut make_sink = Some(make_sink);
        for (store_id, auditor) in &self.stores {
            for sql in statements {
                let origin = format!("{origin} (store '{store_id}')");
                let mut stream = auditor.stream(sql, &origin, app).await?;
                let answer = with_store_column(&stream.schema());
                if sink.is_none() {
                    let make = make_sink.take().expect("made once");
                    sink = Some((answer.clone(), make(answer.clone())?));
                }
                let (schema, sink) = sink.as_mut().expect("made above");
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| crate::audit::sql_error(&origin, &e))?;
                    let batch = prepend_store(&batch, store_id, &answer).map_err(|e| crate::audit::sql_error(&origin, &e))?;
                    sink.write(&crate::audit::conform(batch, schema).map_err(|e| crate::audit::sql_error(&origin, &e))?)?;
                }
            }
        }
        match sink {
            Some((_, sink)) => sink.finish(),
            None => Err(AuditError::Input(format!("{origin}: no statement to run"))),
        }
    }
}

fn with_store_column(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(STORE_COLUMN, DataType::Utf8, false))];
    fields.extend(schema.fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

fn prepend_store(batch: &RecordBatch, store_id: &str, schema: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![store_id; batch.num_rows()]))];
    columns.extend(batch.columns().iter().cloned());
    RecordBatch::try_new(schema.clone(), columns)
}

/// The session settings and functions the auditor plans with, for a cluster's executors.
pub fn auditor_state() -> datafusion::execution::SessionState {
    crate::audit::session_on(crate::audit::runtime(None)).state()
}

/// One store's session: its files as tables (at `at`), its views, the auditor's views; planned
/// here and run here, or by the cluster at `cluster`. Views are planned into the queries that
/// read them, so a cluster is sent scans of the lake's files only.
async fn store_session(lake: &Path, m: &Manifest, at: Option<&str>, cluster: Option<&str>) -> Result<SessionContext, DataFusionError> {
    let runtime: Arc<RuntimeEnv> = crate::audit::runtime(None);
    // The tables as exported, for the store's own views (its history views read every version,
    // as the store's do) and for the state at an instant.
    let whole = crate::audit::session_on(runtime.clone());
    for t in TABLES {
        whole.register_table(t.name, files_of(&whole, lake, m, t).await?)?;
    }
    let ctx = crate::audit::session_on(runtime);
    let ctx = match cluster {
        Some(url) => {
            // A Ballista session is given Ballista's functions: the auditor's go back over them.
            let remote = super::cluster::remote(url, ctx.state()).await?;
            crate::audit::register_functions(&remote);
            remote
        }
        None => ctx,
    };
    for t in TABLES {
        let table = match at {
            Some(at) => at_instant(&whole, t, at).await?,
            None => whole.table_provider(t.name).await?,
        };
        ctx.register_table(t.name, table)?;
    }
    for (name, body) in &m.views {
        ctx.register_table(name.as_str(), whole.sql(body).await?.into_view())?;
    }
    for (name, body) in crate::store::VIEWS {
        let view = ctx.sql(body).await?.into_view();
        ctx.register_table(*name, view)?;
    }
    Ok(ctx)
}

/// The store's files of `table`, listed by its manifest (files another export is writing are
/// not read), as one table; with none, an empty one (planned from SQL, as a cluster can be sent
/// it: an in-memory table cannot).
async fn files_of(whole: &SessionContext, lake: &Path, m: &Manifest, table: &LakeTable) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let schema = table.schema();
    let files: Vec<ListingTableUrl> = m
        .tables
        .get(table.name)
        .into_iter()
        .flat_map(|t| t.partitions.values())
        .map(|p| ListingTableUrl::parse(lake.join(&p.file).to_string_lossy()))
        .collect::<Result<_, _>>()?;
    if files.is_empty() {
        let columns: Vec<String> = table
            .columns()
            .map(|(c, int)| format!("CAST(NULL AS {}) AS \"{c}\"", if int { "BIGINT" } else { "VARCHAR" }))
            .collect();
        return Ok(whole.sql(&format!("SELECT {} WHERE false", columns.join(", "))).await?.into_view());
    }
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// `table` as it was at `at`: a versioned table's rows valid then (the columns its versions keep
/// too), a table of rows that come to be kept to those that existed by then, others whole.
async fn at_instant(whole: &SessionContext, table: &LakeTable, at: &str) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let at = at.replace('\'', "");
    let sql = if let Some((_, versions)) = VERSIONED.iter().find(|(t, _)| *t == table.name) {
        let closed = TABLES.iter().find(|t| t.name == *versions).expect("versions are exported");
        let columns: Vec<String> = table
            .columns()
            .filter(|(c, _)| closed.columns().any(|(v, _)| v == *c))
            .map(|(c, _)| format!("\"{c}\""))
            .collect();
        let columns = columns.join(", ");
        format!(
            "SELECT {columns} FROM \"{}\" WHERE valid_from <= '{at}' UNION ALL SELECT {columns} FROM \"{versions}\" WHERE valid_from <= '{at}' AND valid_to > '{at}'",
            table.name
        )
    } else if let Some((_, since)) = AS_OF.iter().find(|(t, _)| *t == table.name) {
        format!("SELECT * FROM \"{}\" WHERE \"{since}\" <= '{at}'", table.name)
    } else {
        return whole.table_provider(table.name).await;
    };
    Ok(whole.sql(&sql).await?.into_view())
}
