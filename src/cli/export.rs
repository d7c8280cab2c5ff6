//! `scimsync export --lake DIR`: the store's tables as Parquet in a lake (see `scimsync::lake`);
//! `scimsync cluster`: a Ballista cluster on loopback to query it with.
use std::path::PathBuf;

use clap::Args;

use super::{Globals, Outcome};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The lake directory (made if missing); several stores can export into one.
    #[arg(long, value_name = "DIR")]
    lake: PathBuf,
    /// This store's name in the lake (default: the config's `store_id`).
    #[arg(long, value_name = "ID")]
    store_id: Option<String>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(g: &Globals, args: ExportArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let store_id = match args.store_id.or_else(|| config.as_ref().and_then(|c| c.store_id.clone())) {
        Some(id) => id,
        None => anyhow::bail!(
            "export --lake needs this store's name in the lake: set `store_id = \"...\"` at the top of {} or pass --store-id",
            g.config.display()
        ),
    };
    let path = g.store_path(config.as_ref());
    if !path.exists() {
        anyhow::bail!("no store at {}", path.display());
    }
    // Held while the tables are read, so that no pull, plan or apply is half-written in them.
    let (_lock, store) = g.open_for_writing(&path)?;
    drop(store);
    let summary = scimsync::lake::export(&path, &args.lake, &store_id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if summary.nothing_new {
        println!(
            "store '{store_id}': nothing new since its last export into {} (no newer run or event); nothing written",
            args.lake.display()
        );
    } else {
        for t in summary.tables.iter().filter(|t| t.partitions_written + t.partitions_removed > 0) {
            println!(
                "{:<20} {:>10} rows read, {:>3} partition(s) written ({} rows), {} removed",
                t.table, t.rows_read, t.partitions_written, t.rows_written, t.partitions_removed
            );
        }
        println!(
            "store '{store_id}' exported into {} in {:.1} s: {} partition(s) written",
            args.lake.display(),
            summary.seconds,
            summary.partitions_written()
        );
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Executors to start beside the scheduler.
    #[arg(long, default_value_t = 2)]
    executors: usize,
}

/// `scimsync cluster`: a Ballista scheduler and its executors in this process on loopback, with
/// the auditor's functions, until Ctrl-C: for `sql`/`report --lake DIR --cluster URL` on one
/// machine and for tests.
pub async fn cluster(_g: &Globals, args: ClusterArgs) -> anyhow::Result<Outcome> {
    let executors = args.executors.max(1);
    let state = scimsync::lake::read::auditor_state();
    let url = scimsync::lake::cluster::start_standalone(&state, executors).await?;
    println!("{url}");
    eprintln!(
        "Ballista scheduler at {url} with {executors} executor(s) on loopback; run `scimsync sql … --lake DIR --cluster {url}`; Ctrl-C stops it"
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(Outcome::Ok)
}
