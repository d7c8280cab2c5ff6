//! Auditor SQL: read-only DataFusion queries over the store (`scimsync sql`, saved reports,
//! `diff`), optionally as of an instant. The store is opened read-only and only queries are
//! accepted, so nothing an auditor types can change the audit record.
mod catalog;
mod csv_pipe;
pub mod diff;
mod group_concat;
pub mod html;
mod json;
mod limits;
pub mod output;
mod pushdown;
pub mod reports;
mod via_groups;

/// The tables whose state at an instant is their current rows and closed versions valid then,
/// and those kept to the rows that existed by then: the store's rules, which a lake follows too.
pub(crate) use catalog::{AS_OF, VERSIONED};

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

/// Why an auditor query or report could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No store at the path yet.
    #[error("no store at '{0}' yet; run `scimsync pull` first")]
    NoStore(String),
    /// The store could not be read (a damaged file said plainly).
    #[error("store '{path}': {}", crate::store::describe_sqlite(.source))]
    Store {
        /// The store.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A statement that would write (auditors only read).
    #[error("{0}")]
    ReadOnly(String),
    /// A query that does not plan or run.
    #[error("SQL {origin}: {message}")]
    Sql {
        /// Where the SQL came from (`--file PATH`, `report NAME`, the command line).
        origin: String,
        /// The engine's words.
        message: String,
    },
    /// A bad argument (`--at`, a report name, …).
    #[error("{0}")]
    Input(String),
    /// The store cannot be read as it is (a newer schema, a damaged file).
    #[error(transparent)]
    Schema(#[from] crate::store::StoreError),
}

/// A result: its schema (also when there are no rows) and its batches.
pub struct Rows {
    /// Its columns.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

impl Rows {
    /// Rows in all.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A read-only query session over one store.
pub struct Auditor {
    ctx: SessionContext,
}

impl Auditor {
    /// Open the store at `path` read-only; `at` (stored instant form) shows it as it was then.
    pub fn open(path: &Path, at: Option<String>) -> Result<Auditor, AuditError> {
        if !path.exists() {
            return Err(AuditError::NoStore(path.display().to_string()));
        }
        // The schema version first: a store from a newer scimsync is refused before it is read
        // (and one from an older scimsync is upgraded).
        drop(crate::store::Store::open_read_only(path)?);
        let schema = catalog::StoreSchema::new(path, at).map_err(|source| AuditError::Store {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Auditor {
            ctx: catalog::session(Arc::new(schema)),
        })
    }

    /// An auditor over a session its caller has filled with tables and views (see
    /// [`session_on`]): the same read-only checks, limits and output.
    pub fn with_session(ctx: SessionContext) -> Auditor {
        Auditor { ctx }
    }

    /// Run one read-only statement. `origin` names where the SQL came from in errors
    /// (`query`, `file reports/x.sql`, …).
    pub async fn query(&self, sql: &str, origin: &str) -> Result<Rows, AuditError> {
        self.query_for_app(sql, origin, None).await
    }

    /// [`Self::query`], keeping only the rows whose `app` column is `app` (when given), in the
    /// query's order.
    pub async fn query_for_app(&self, sql: &str, origin: &str, app: Option<&str>) -> Result<Rows, AuditError> {
        let df = self.plan(sql, origin, app).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| sql_error(origin, &e))?;
        Ok(Rows { schema, batches })
    }

    /// Run one read-only statement (keeping only `app`'s rows, when given) and write its result
    /// to the sink `make_sink` opens, batch by batch as the engine produces them: a result of
    /// millions of rows (every membership to CSV or Parquet) is never held whole. Returns the
    /// rows written.
    pub async fn query_into<'w>(
        &self,
        sql: &str,
        origin: &str,
        app: Option<&str>,
        make_sink: impl FnOnce(SchemaRef) -> Result<output::Sink<'w>, AuditError>,
    ) -> Result<usize, AuditError> {
        self.queries_into(&[sql.to_string()], origin, app, make_sink).await
    }

    /// [`Self::query_into`] for statements of one result run one after the other, their rows
    /// written in turn to one sink (with the first statement's columns): only one statement's
    /// joins hold memory at a time.
    pub async fn queries_into<'w>(
        &self,
        statements: &[String],
        origin: &str,
        app: Option<&str>,
        make_sink: impl FnOnce(SchemaRef) -> Result<output::Sink<'w>, AuditError>,
    ) -> Result<usize, AuditError> {
        use futures::StreamExt;
        let mut sink: Option<(SchemaRef, output::Sink<'w>)> = None;
        let mut make_sink = Some(make_sink);
        for sql in statements {
            let df = self.plan(sql, origin, app).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(|e| sql_error(origin, &e))?;
            if sink.is_none() {
                let make = make_sink.take().expect("made once");
                sink = Some((schema.clone(), make(schema)?));
            }
            let (columns, sink) = sink.as_mut().expect("made above");
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| sql_error(origin, &e))?;
                sink.write(&conform(batch, columns).map_err(|e| sql_error(origin, &e))?)?;
            }
            drop(stream);
            // What this statement's joins and sorts freed on the engine's threads, handed back
            // before the next statement allocates on others (glibc keeps it per thread).
            crate::memory::release_freed();
        }
        match sink {
            Some((_, sink)) => sink.finish(),
            None => Err(AuditError::Input(format!("{origin}: no statement to run"))),
        }
    }

    /// Run one read-only statement (keeping only `app`'s rows, when given), its result as a
    /// stream of batches (the engine's errors as they come; [`sql_error`] names them as the
    /// other methods do).
    pub async fn stream(
        &self,
        sql: &str,
        origin: &str,
        app: Option<&str>,
    ) -> Result<datafusion::execution::SendableRecordBatchStream, AuditError> {
        let df = self.plan(sql, origin, app).await?;
        df.execute_stream().await.map_err(|e| sql_error(origin, &e))
    }

    async fn plan(&self, sql: &str, origin: &str, app: Option<&str>) -> Result<datafusion::dataframe::DataFrame, AuditError> {
        read_only(sql, origin)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let mut df = self.ctx.sql_with_options(sql, options).await.map_err(|e| sql_error(origin, &e))?;
        if let Some(app) = app {
            if df.schema().field_with_unqualified_name("app").is_err() {
                return Err(AuditError::Input(format!("{origin}: --app needs an `app` column in the result")));
            }
            df = df
                .filter(datafusion::prelude::col("app").eq(datafusion::prelude::lit(app)))
                .map_err(|e| sql_error(origin, &e))?;
        }
        Ok(df)
    }
}

/// A session with the auditor's functions and limits on `runtime` (see [`runtime`]), no tables
/// yet; every session made on one runtime shares its memory pool.
pub fn session_on(runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>) -> SessionContext {
    catalog::configured_session(runtime)
}

/// The auditor's functions (SQLite's names, bounded string growth, `json_extract`) registered in
/// `ctx`, for a session made otherwise (a cluster's).
pub fn register_functions(ctx: &SessionContext) {
    catalog::register_functions(ctx)
}

/// The auditor's memory pool (half the memory limit), spilling to `spill_dir`.
pub fn runtime(spill_dir: Option<&Path>) -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    catalog::runtime_spilling_to(spill_dir)
}

/// `batch` with `schema`'s columns: the same columns, their types cast where a later statement
/// of [`Auditor::queries_into`] typed one differently (a NULL column, a view of a string), or a
/// columnar copy keeps one differently (`active` a boolean). A batch of no columns keeps its rows.
pub fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    if batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type())
        .eq(schema.fields().iter().map(|f| f.data_type()))
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &rows)
}

/// The engine's error for SQL from `origin`, in its words less its prefixes.
pub fn sql_error(origin: &str, e: &dyn std::fmt::Display) -> AuditError {
    let mut message = e.to_string().replace("Error during planning: ", "").replace("SQL error: ", "");
    if message.contains("Resources exhausted") {
        message.push_str(&format!(
            "\n(the query needed more than the auditor's memory pool of {} MiB, half of the memory limit: give it more with --memory-limit or the config's memory_limit, e.g. --memory-limit 4GiB)",
            limits::session_memory_limit() >> 20
        ));
    }
    AuditError::Sql {
        origin: origin.to_string(),
        message,
    }
}

/// Statements that write, named even when the parser does not know their SQLite form.
const WRITE_VERBS: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "UPSERT",
    "MERGE",
    "DROP",
    "CREATE",
    "ALTER",
    "TRUNCATE",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "COPY",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "SET",
    "RESET",
    "GRANT",
    "REVOKE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
];

fn refused(sql: &str, origin: &str) -> AuditError {
    let verb: String = sql
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    AuditError::ReadOnly(format!(
        "{origin}: {verb} refused: `scimsync sql` is read-only (SELECT, WITH … SELECT, EXPLAIN); the store is the audit record and is only changed by pull, plan and apply"
    ))
}

/// Refuse anything but a single query (or EXPLAIN of one), naming what was refused.
pub fn read_only(sql: &str, origin: &str) -> Result<(), AuditError> {
    let first = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
    if WRITE_VERBS.contains(&first.as_str()) {
        return Err(refused(sql, origin));
    }
    let statements = DFParser::parse_sql(sql).map_err(|e| AuditError::Sql {
        origin: origin.to_string(),
        message: e.to_string().replace("SQL error: ", ""),
    })?;
    if statements.len() != 1 {
        return Err(AuditError::Sql {
            origin: origin.to_string(),
            message: format!("expected one statement, found {}", statements.len()),
        });
    }
    fn is_query(s: &DfStatement) -> bool {
        match s {
            DfStatement::Statement(s) => matches!(**s, SqlStatement::Query(_)),
            DfStatement::Explain(e) => is_query(&e.statement),
            _ => false,
        }
    }
    if !is_query(&statements[0]) {
        return Err(refused(sql, origin));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_only;

    #[test]
    fn only_queries_pass() {
        for ok in ["SELECT 1", "with x as (select 1) select * from x", "EXPLAIN SELECT * FROM users"] {
            read_only(ok, "query").unwrap();
        }
        for bad in [
            "INSERT INTO users VALUES (1)",
            "UPDATE users SET active = 0",
            "DELETE FROM users",
            "DROP TABLE users",
            "CREATE TABLE x (a INT)",
            "CREATE VIEW v AS SELECT 1",
            "ATTACH DATABASE 'x.db' AS x",
            "PRAGMA journal_mode = DELETE",
            "COPY users TO 'x.csv'",
            "EXPLAIN ANALYZE INSERT INTO users VALUES (1)",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let e = read_only(bad, "query").unwrap_err().to_string();
            assert!(e.contains("read-only") || e.contains("SQL query"), "{bad}: {e}");
        }
        assert!(read_only("SELECT 1; DELETE FROM users", "query")
            .unwrap_err()
            .to_string()
            .contains("one statement"));
    }
}
