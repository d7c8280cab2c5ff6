//! `scimsync init`: write the commented example config.
use anyhow::{bail, Context};
use clap::Args;

use super::{Globals, Outcome};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(g: &Globals, args: InitArgs) -> anyhow::Result<Outcome> {
    if g.config.exists() && !args.force {
        bail!("{} already exists; pass --force to overwrite it", g.config.display());
    }
    std::fs::write(&g.config, scimsync::config::EXAMPLE).with_context(|| format!("cannot write {}", g.config.display()))?;
    println!(
        "wrote {} — edit the [idp.*] and [app.*] sections, then run `scimsync pull`",
        g.config.display()
    );
    Ok(Outcome::Ok)
}
