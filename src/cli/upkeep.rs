//! `scimsync prune`, `scimsync backup FILE` and `scimsync check`: retention, a consistent copy
//! of the store while other commands run, and what is wrong with a store (exit 1, each problem
//! named).
use std::path::PathBuf;

use clap::Args;

use super::{Globals, Outcome};
use scimsync::store::{integrity, PruneOptions, Vacuum};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Say what would be removed (rows per table, bytes), remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite the store once with incremental vacuum (a store made before it; needs free disk
    /// space the size of the store).
    #[arg(long, conflicts_with = "dry_run")]
    vacuum: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the copy goes (refused if it exists).
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn prune(g: &Globals, args: PruneArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let path = g.store_path(config.as_ref());
    if !path.exists() {
        anyhow::bail!("no store at {}", path.display());
    }
    let policy = config.map(|c| c.retention).unwrap_or_default();
    let (_lock, mut store) = g.open_for_writing(&path)?;
    let opts = PruneOptions {
        now: chrono::Utc::now(),
        dry_run: args.dry_run,
        budget: None,
        vacuum: if args.vacuum { Vacuum::Rewrite } else { Vacuum::All },
    };
    let pruned = scimsync::retention::prune(&mut store, &policy, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&pruned)?);
    } else {
        for line in scimsync::retention::describe(&pruned, &path) {
            println!("{line}");
        }
    }
    Ok(Outcome::Ok)
}

pub fn backup(g: &Globals, args: BackupArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let path = g.store_path(config.as_ref());
    let started = std::time::Instant::now();
    let bytes = integrity::backup(&path, &args.file)?;
    println!(
        "backup of {} written to {} ({:.1} MiB in {:.1} s); its columnar copies are not copied: the first plan reads SQLite, the next pull writes them",
        path.display(),
        args.file.display(),
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Ok)
}

pub fn check(g: &Globals, _args: CheckArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let path = g.store_path(config.as_ref());
    let mut problems = integrity::check_file(&path)?;
    let (copies, columnar) = scimsync::engine::columnar::verify(&path);
    problems.extend(columnar);
    if problems.is_empty() {
        println!(
            "store {}: ok (integrity, schema version, references; {copies} columnar copies match their checksums)",
            path.display()
        );
        return Ok(Outcome::Ok);
    }
    for p in &problems {
        println!("{p}");
    }
    anyhow::bail!("store {}: {} problem(s) found", path.display(), problems.len())
}
