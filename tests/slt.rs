//! Runs `tests/slt/*.slt` (sqllogictest) against the drift engine's queries: each file seeds the
//! input tables with INSERT and asserts a query's exact output. A `harness = false` test (see
//! [`main`]): it takes file filters and can rewrite the expected output.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Engine {
    ctx: SessionContext,
}

#[derive(Debug)]
struct Error(String);
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Engine {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let df = self.ctx.sql(sql).await.map_err(|e| Error(e.to_string()))?;
        let batches = df.collect().await.map_err(|e| Error(e.to_string()))?;
        let head = sql.trim_start().to_ascii_lowercase();
        if !(head.starts_with("select") || head.starts_with("with")) {
            return Ok(DBOutput::StatementComplete(0));
        }
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        let mut width = 0;
        for b in &batches {
            width = b.num_columns();
            let fmts: Vec<ArrayFormatter> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
                .collect();
            for r in 0..b.num_rows() {
                rows.push(
                    fmts.iter()
                        .map(|f| {
                            let s = f.value(r).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

/// `cargo test --test slt -- [FILTER ...] [--complete]`: run the `.slt` files whose names contain
/// one of the filters (all without one); `--complete` (or `SCIMSYNC_SLT_COMPLETE=1`) rewrites
/// each file's expected output with what the engine answers now, to review with `git diff`.
/// Other `-` arguments (those `cargo test` passes to every test binary) are ignored, and a filter
/// that matches no file runs nothing, so `cargo test NAME` for another test still passes here.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete") || std::env::var("SCIMSYNC_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let filters: Vec<&str> = args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("no .slt files in {}", dir.display());
        return ExitCode::FAILURE;
    }
    files.retain(|f| {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        filters.is_empty() || filters.iter().any(|w| name.contains(w))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failures = runtime.block_on(run_files(&files, complete));
    let name = |f: &PathBuf| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for f in &files {
        let failed = failures.iter().find(|(p, _)| p == f);
        println!(
            "slt {} ... {}",
            name(f),
            if failed.is_some() {
                "FAILED"
            } else if complete {
                "completed"
            } else {
                "ok"
            }
        );
    }
    for (f, e) in &failures {
        println!("\n---- {} ----\n{e}", f.display());
    }
    println!(
        "\nslt result: {}. {} passed; {} failed",
        if failures.is_empty() { "ok" } else { "FAILED" },
        files.len() - failures.len(),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Run (or, with `complete`, rewrite) each file on a fresh engine session; the failures.
async fn run_files(files: &[PathBuf], complete: bool) -> Vec<(PathBuf, String)> {
    let mut failures = Vec::new();
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok::<_, Error>(Engine {
                ctx: scimsync::engine::views_session().await.map_err(|e| Error(e.to_string()))?,
            })
        });
        let outcome = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner.run_file_async(file).await.map_err(|e| e.to_string())
        };
        if let Err(e) = outcome {
            failures.push((file.clone(), e));
        }
    }
    failures
}
