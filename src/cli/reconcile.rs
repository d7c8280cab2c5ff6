//! `scimsync reconcile [--app A]`: pull → plan → apply in one unattended run, with every guard
//! of `apply`. One summary line per app. Exit 0 (nothing to do, or all applied), 2 (an app was
//! blocked by the deactivation guard, or not planned because a pull failed), 1 (an error or a
//! failed operation).
use std::collections::HashSet;

use clap::Args;

use super::{Globals, Outcome};
use crate::apply::{ApplyError, ApplyOptions};
use crate::config::DeactivationLimit;
use crate::source::ProgressSink;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Reconcile only this app (its IdP is pulled too).
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Override the apps' max_deactivations for this run.
    #[arg(long, value_name = "N|P%", value_parser = DeactivationLimit::parse)]
    max_deactivations: Option<DeactivationLimit>,
    /// Apply even when the deactivation guard would refuse.
    #[arg(long)]
    force: bool,
}

pub async fn run(g: &Globals, args: ReconcileArgs) -> anyhow::Result<Outcome> {
    let config = g.load_config()?;
    let mut store = Store::open(&g.store_path(Some(&config)))?;
    let started = std::time::Instant::now();
    let quiet = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
    let pulls = crate::pull::pull(&config, &mut store, args.app.as_deref(), &quiet).await?;
    let failed: HashSet<String> = pulls.iter().filter(|p| p.result.is_err()).map(|p| p.source.clone()).collect();
    for p in &pulls {
        if let Err(e) = &p.result {
            eprintln!("error: pull of {} failed: {e}", p.source);
        }
    }
    let plan = crate::drift::plan(&config, &mut store, args.app.as_deref()).await?;
    let mut blocked = false;
    let mut errors = 0u64;
    for info in &plan.apps {
        let app = &info.app;
        let findings = plan.findings.iter().filter(|f| &f.app == app).count();
        let ops = plan.operations.iter().filter(|o| &o.app == app).count();
        if failed.contains(&info.idp.source) || failed.contains(&info.sp.source) {
            println!(
                "app {app}: not applied: this cycle's pull failed ({findings} findings from the previous snapshot, {ops} operations left)"
            );
            blocked = true;
            continue;
        }
        if let Some(why) = &info.skipped {
            println!("app {app}: not planned: {why}");
            blocked = true;
            continue;
        }
        if ops == 0 {
            println!("app {app}: in sync ({findings} findings, none to apply)");
            continue;
        }
        let opts = ApplyOptions {
            app: Some(app.clone()),
            concurrency: None,
            max_deactivations: args.max_deactivations,
            force: args.force,
        };
        match crate::apply::apply(&config, Store::open(store.path())?, plan.run_id, &opts).await {
            Ok(r) => {
                errors += r.failed();
                println!(
                    "app {app}: {findings} findings, {ops} operations: {} done, {} failed ({:.1} ops/s)",
                    r.done(),
                    r.failed(),
                    (r.done() + r.failed()) as f64 / r.seconds.max(1e-9)
                );
                for f in r.failures.iter().take(10) {
                    eprintln!("failed: {f}");
                }
            }
            Err(e @ ApplyError::Guard { .. }) => {
                println!("app {app}: blocked: {e}");
                blocked = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    for info in &plan.apps {
        for w in &info.warnings {
            eprintln!("warning: app '{}': {w}", info.app);
        }
    }
    println!("reconcile: plan #{} in {:.1}s", plan.run_id, started.elapsed().as_secs_f64());
    if errors > 0 {
        anyhow::bail!("{errors} operation(s) failed; they are journaled and the next reconcile retries what is still needed");
    }
    Ok(if blocked { Outcome::Pending } else { Outcome::Ok })
}
