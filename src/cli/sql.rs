//! `scimsync sql`, `scimsync report` and `scimsync diff`: read-only auditor queries over the
//! store (see [`scimsync::audit`]), written as a table, CSV, JSON, NDJSON or Parquet.
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::Args;

use super::outfile::{write_file, OutputFile, Protected};
use super::{Globals, Outcome};
use scimsync::audit::output::{self, Format};
use scimsync::audit::{diff, html, reports, AuditError, Auditor};
use scimsync::lake::read::LakeAuditor;

/// Where and how a result is written.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format (default: from -o's extension, else a table on a terminal, CSV in a pipe).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write to FILE instead of standard output (atomically: a temporary file, then renamed).
    /// Never the store or the config.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file (-o, --html) when it exists.
    #[arg(long)]
    force: bool,
    /// CSV: keep cells that start with = + - @ as they are (by default they get a leading ',
    /// so that a spreadsheet shows them as text instead of running them as formulas).
    #[arg(long)]
    keep_formulas: bool,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query ("-" reads it from standard input).
    #[arg(value_name = "QUERY", required_unless_present = "file", conflicts_with = "file")]
    query: Option<String>,
    /// Read the query from FILE.
    #[arg(short = 'f', long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Answer over the state as it was at this time (2026-10-01T00:00:00Z, 2026-10-01) or at
    /// the end of this run id.
    #[arg(long, value_name = "TIME|RUN")]
    at: Option<String>,
    /// Over a Parquet lake (`scimsync export --lake DIR`) instead of the store: the query runs
    /// over each store in it, its id as the first column.
    #[arg(long, value_name = "DIR")]
    lake: Option<PathBuf>,
    /// With --lake: run on the Ballista cluster whose scheduler is at URL (df://host:port;
    /// `scimsync cluster` starts one), which must see the lake at the same path.
    #[arg(long, value_name = "URL", requires = "lake")]
    cluster: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report (see --list). With --html and no NAME: an overview page of every report.
    #[arg(value_name = "NAME", required_unless_present_any = ["list", "html"])]
    name: Option<String>,
    /// List the saved reports.
    #[arg(long)]
    list: bool,
    /// Only this app's rows.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// As of this time or run id (see `scimsync sql --at`).
    #[arg(long, value_name = "TIME|RUN")]
    at: Option<String>,
    /// Write a self-contained HTML page (sortable table, summary chart) to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    html: Option<PathBuf>,
    /// Over a Parquet lake (`scimsync export --lake DIR`) instead of the store: the report runs
    /// over each store in it, its id as the first column.
    #[arg(long, value_name = "DIR", conflicts_with = "html")]
    lake: Option<PathBuf>,
    /// With --lake: run on the Ballista cluster whose scheduler is at URL (see `sql --cluster`).
    #[arg(long, value_name = "URL", requires = "lake")]
    cluster: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// From this run id (the end of it) or time.
    #[arg(long, value_name = "RUN|TIME")]
    from: String,
    /// To this run id or time (default: now).
    #[arg(long, value_name = "RUN|TIME")]
    to: Option<String>,
    /// Only this app's objects.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

fn store(g: &Globals) -> anyhow::Result<PathBuf> {
    Ok(g.store_path(g.optional_config()?.as_ref()))
}

/// What no output file may replace.
fn protected(g: &Globals, store: &Path) -> Protected {
    Protected::store_and_config(store, &g.config)
}

fn at(store: &Path, at: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(at.map(|a| diff::resolve_point(store, a)).transpose()?)
}

/// What a query runs over: the store, or every store of a lake.
enum Over {
    Store(Auditor),
    Lake(LakeAuditor),
}

impl Over {
    /// The store (as of `at`), or the lake at `lake` when given (`at` then a time), its queries
    /// run on the cluster at `cluster` when given.
    async fn open(g: &Globals, lake: Option<&Path>, cluster: Option<&str>, at: Option<&str>) -> anyhow::Result<Over> {
        Ok(match lake {
            Some(lake) => {
                let at = at.map(|a| scimsync::lake::read::resolve_at(lake, a)).transpose()?;
                Over::Lake(LakeAuditor::open(lake, at.as_deref(), cluster).await?)
            }
            None => {
                let store = store(g)?;
                Over::Store(Auditor::open(&store, self::at(&store, at)?)?)
            }
        })
    }

    async fn queries_into<'w>(
        &self,
        statements: &[String],
        origin: &str,
        app: Option<&str>,
        make_sink: impl FnOnce(arrow::datatypes::SchemaRef) -> Result<output::Sink<'w>, AuditError>,
    ) -> Result<usize, AuditError> {
        match self {
            Over::Store(a) => a.queries_into(statements, origin, app, make_sink).await,
            Over::Lake(l) => l.queries_into(statements, origin, app, make_sink).await,
        }
    }
}

/// Run `sql` and write its result as it is computed; returns the rows written. CSV,
/// JSON, NDJSON and Parquet never hold the whole result.
async fn stream(
    auditor: &Over,
    statements: &[String],
    origin: &str,
    app: Option<&str>,
    out: &OutputArgs,
    protected: &Protected,
) -> anyhow::Result<usize> {
    let format = Format::choose(out.format, out.output.as_deref(), std::io::stdout().is_terminal());
    let keep = out.keep_formulas;
    match &out.output {
        None if format == Format::Parquet && std::io::stdout().is_terminal() => {
            anyhow::bail!("--format parquet is binary: write it to a file with -o FILE.parquet")
        }
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            match auditor
                .queries_into(statements, origin, app, |schema| {
                    output::Sink::new(schema, format, keep, &mut stdout)
                })
                .await
            {
                // `scimsync sql … | head`: the reader has what it wanted.
                Err(e) if e.to_string().contains("Broken pipe") => Ok(0),
                r => Ok(r?),
            }
        }
        Some(path) => {
            let mut file = OutputFile::create(path, out.force, protected, "-o")?;
            let rows = auditor
                .queries_into(statements, origin, app, |schema| {
                    output::Sink::new(schema, format, keep, file.writer())
                })
                .await?;
            file.commit()?;
            eprintln!("{rows} row(s) written to {}", path.display());
            Ok(rows)
        }
    }
}

pub async fn run_sql(g: &Globals, args: SqlArgs) -> anyhow::Result<Outcome> {
    let (sql, origin) = match (&args.query, &args.file) {
        (Some(q), _) if q == "-" => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            (s, "query (standard input)".to_string())
        }
        (Some(q), _) => (q.clone(), "query".to_string()),
        (None, Some(f)) => (
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("-f '{}': {e}", f.display()))?,
            format!("file '{}'", f.display()),
        ),
        (None, None) => unreachable!("clap requires QUERY or -f"),
    };
    let store = store(g)?;
    let over = Over::open(g, args.lake.as_deref(), args.cluster.as_deref(), args.at.as_deref()).await?;
    stream(&over, &[sql], &origin, None, &args.out, &protected(g, &store)).await?;
    Ok(Outcome::Ok)
}

pub async fn run_report(g: &Globals, args: ReportArgs) -> anyhow::Result<Outcome> {
    if args.list {
        let mut t = super::output::table(&["report", "what it shows"]);
        for r in reports::REPORTS {
            t.add_row(vec![r.name, r.title()]);
        }
        println!("{t}");
        return Ok(Outcome::Ok);
    }
    let store = store(g)?;
    let chosen: Vec<&reports::Report> = match &args.name {
        Some(name) => vec![reports::find(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no report '{name}'; the reports are: {}",
                reports::REPORTS.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            )
        })?],
        None => reports::REPORTS.iter().collect(),
    };
    let Some(path) = &args.html else {
        // One report, streamed like `sql`.
        let r = chosen[0];
        let over = Over::open(g, args.lake.as_deref(), args.cluster.as_deref(), args.at.as_deref()).await?;
        stream(
            &over,
            &[r.sql.to_string()],
            &format!("report {}", r.name),
            args.app.as_deref(),
            &args.out,
            &protected(g, &store),
        )
        .await?;
        return Ok(Outcome::Ok);
    };
    let at = at(&store, args.at.as_deref())?;
    let generated = match &at {
        Some(t) => format!("store {} as of {t}", store.display()),
        None => format!("store {} at {}", store.display(), scimsync::time::now()),
    };
    let auditor = Auditor::open(&store, at)?;
    let mut results = Vec::new();
    for r in &chosen {
        let rows = auditor
            .query_for_app(r.sql, &format!("report {}", r.name), args.app.as_deref())
            .await?;
        results.push((r, rows));
    }
    let descriptions: Vec<String> = chosen.iter().map(|r| r.header().skip(1).collect::<Vec<_>>().join("\n")).collect();
    let sections: Vec<html::Section> = results
        .iter()
        .zip(&descriptions)
        .map(|((r, rows), d)| html::Section {
            name: r.name,
            title: r.title(),
            description: d,
            rows,
        })
        .collect();
    let charts = if args.name.is_some() {
        vec![("Rows per app", html::rows_per_app(&results[0].1)?)]
    } else {
        let filter = match &args.app {
            Some(a) => format!("WHERE app = {}", scimsync::store::sql_text(a)),
            None => String::new(),
        };
        let mut charts = Vec::new();
        for (title, sql) in [
            ("Findings of the latest plan, per app and kind", format!("SELECT app || ' · ' || kind AS label, count(*) AS n FROM latest_findings {filter} GROUP BY 1 ORDER BY 1")),
            ("App accounts, per app and access", format!("SELECT app || ' · ' || access || CASE WHEN account_active = 1 THEN ' · active' ELSE ' · inactive' END AS label, count(*) AS n FROM app_access {filter} GROUP BY 1 ORDER BY 1")),
        ] {
            let rows = auditor.query(&sql, "overview chart").await?;
            let bars = html::cells(&rows)?
                .into_iter()
                .map(|r| (r[0].clone(), r[1].parse().unwrap_or(0)))
                .collect();
            charts.push((title, bars));
        }
        charts
    };
    let heading = match &args.name {
        Some(_) => format!("scimsync audit report: {}", chosen[0].title()),
        None => "scimsync audit overview".to_string(),
    };
    let page = html::page(&heading, &generated, &charts, &sections)?;
    write_file(path, page.as_bytes(), args.out.force, &protected(g, &store), "--html")?;
    eprintln!("{} report(s) written to {}", sections.len(), path.display());
    Ok(Outcome::Ok)
}

pub async fn run_diff(g: &Globals, args: DiffArgs) -> anyhow::Result<Outcome> {
    let store = store(g)?;
    let from = diff::resolve_point(&store, &args.from)?;
    let to = match &args.to {
        Some(t) => diff::resolve_point(&store, t)?,
        None => scimsync::time::now(),
    };
    let auditor = Over::Store(Auditor::open(&store, None)?);
    let rows = stream(
        &auditor,
        &diff::queries(&from, &to, args.app.as_deref(), &diff::sources(&store)?),
        "diff",
        None,
        &args.out,
        &protected(g, &store),
    )
    .await?;
    if !g.quiet {
        eprintln!("changes from {from} to {to}: {rows} row(s)");
    }
    Ok(Outcome::Ok)
}
