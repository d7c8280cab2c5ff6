//! `scimsync backup FILE` and `scimsync check`: a consistent copy of the store while other
//! commands run, and what is wrong with a store (exit 1, each problem named).
use std::path::PathBuf;

use clap::Args;

use super::{Globals, Outcome};
use scimsync::store::integrity;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the copy goes (refused if it exists).
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {}

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
