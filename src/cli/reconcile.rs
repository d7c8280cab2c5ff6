//! `scimsync reconcile [--app A] [--every DURATION] [--metrics-file PATH]`: pull → plan → apply
//! unattended (see [`scimsync::reconcile`]). One run: exit 0 (nothing to do, or all applied), 2 (an
//! app held back: guard, failed pull, quarantine), 1 (an error or a failed operation). With
//! `--every`, a loop holding the store's lock until SIGTERM/SIGINT, which lets the operations in
//! flight finish and be journaled before exiting 0.
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use super::{Globals, Outcome};
use scimsync::config::DeactivationLimit;
use scimsync::reconcile::{cycle, metrics, parse_duration, pause, CycleOptions, CycleReport, Target};

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Reconcile only this app (its IdP is pulled too).
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Run as a loop, a cycle every DURATION (30s, 15m, 2h), ±10 % jitter.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    every: Option<Duration>,
    /// Write Prometheus metrics to PATH (atomically) after each cycle.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// Reconcile just this user (login: userName or email) of `--app`: refresh it on both
    /// sides, plan, apply its operations. Seconds, not a full cycle.
    #[arg(long, value_name = "LOGIN", requires = "app", conflicts_with = "every")]
    user: Option<String>,
    /// Reconcile just this group (display name) of `--app`: refresh it and its members on both
    /// sides, plan, apply its operations (and create the accounts its members need).
    #[arg(long, value_name = "NAME", requires = "app", conflicts_with_all = ["every", "user"])]
    group: Option<String>,
    /// Quarantine an app after N failed cycles in a row (then retried at growing intervals).
    #[arg(long, default_value_t = 3, value_name = "N")]
    quarantine_after: i64,
    /// Override the apps' max_deactivations for this run.
    #[arg(long, value_name = "N|P%", value_parser = DeactivationLimit::parse)]
    max_deactivations: Option<DeactivationLimit>,
    /// Apply even when the deactivation guard would refuse.
    #[arg(long)]
    force: bool,
}

fn print(report: &CycleReport) {
    for a in &report.apps {
        println!("{} {}", scimsync::time::now(), a.summary());
    }
    println!(
        "{} reconcile: plan #{} (pull {:.1}s, plan {:.1}s, apply {:.1}s, prune {:.1}s{})",
        scimsync::time::now(),
        report.plan_id.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        report.pull_seconds,
        report.plan_seconds,
        report.apply_seconds,
        report.prune_seconds,
        match &report.pruned {
            Some(p) if p.store.rows() > 0 => format!(": {} row(s) removed", p.store.rows()),
            Some(_) => String::new(),
            None => ": FAILED, see the log".into(),
        }
    );
}

pub async fn run(g: &Globals, args: ReconcileArgs) -> anyhow::Result<Outcome> {
    let config = g.load_config()?;
    let store = g.store_path(Some(&config));
    let (_lock, opened) = g.open_for_writing(&store)?;
    drop(opened);
    let stop = super::stop_on_signals();
    let opts = CycleOptions {
        app: args.app.clone(),
        max_deactivations: args.max_deactivations,
        force: args.force,
        stop: Some(stop.clone()),
        quarantine_after: args.quarantine_after.max(1),
        quarantine_base: args.every.unwrap_or(Duration::from_secs(60)),
    };
    // Replaced every cycle, like any output file: never over the store or the config, through
    // a temporary file created exclusively beside it.
    let protected = super::outfile::Protected::store_and_config(&store, &g.config);
    let write_metrics = |report: &CycleReport| -> anyhow::Result<()> {
        if let Some(path) = &args.metrics_file {
            super::outfile::write_file(path, metrics(report).as_bytes(), true, &protected, "--metrics-file")?;
        }
        Ok(())
    };
    let target = match (&args.user, &args.group) {
        (Some(login), _) => Some(Target::User(login)),
        (None, Some(name)) => Some(Target::Group(name)),
        _ => None,
    };
    if let (Some(target), Some(app)) = (target, &args.app) {
        let r = scimsync::reconcile::reconcile_object(&config, &store, app, target, &opts).await?;
        for f in &r.findings {
            println!(
                "  {} {} {}",
                scimsync::plan::symbol(f),
                f.kind,
                scimsync::terminal::printable(&scimsync::plan::describe_finding(f))
            );
        }
        for note in &r.notes {
            println!("  note: {note}");
        }
        if let Some(why) = &r.blocked {
            println!("{target} in app {app}: blocked: {why}");
            return Ok(Outcome::Pending);
        }
        println!(
            "{target} in app {app}: {} finding(s), {} operation(s): {} done, {} failed",
            r.findings.len(),
            r.operations,
            r.done,
            r.failed
        );
        if r.failed > 0 {
            anyhow::bail!("{} operation(s) failed; they are journaled", r.failed);
        }
        return Ok(Outcome::Ok);
    }
    let Some(every) = args.every else {
        let report = cycle(&config, &store, &opts).await?;
        print(&report);
        write_metrics(&report)?;
        return match report.exit_code() {
            1 => anyhow::bail!("operations failed; they are journaled and the next reconcile retries what is still needed"),
            2 => Ok(Outcome::Pending),
            _ => Ok(Outcome::Ok),
        };
    };
    loop {
        match cycle(&config, &store, &opts).await {
            Ok(report) => {
                print(&report);
                write_metrics(&report)?;
            }
            // A cycle that cannot run at all (the store, the engine) is logged; the loop goes on.
            Err(e) => eprintln!("{} error: reconcile cycle failed: {e:#}", scimsync::time::now()),
        }
        if stop.load(Ordering::SeqCst) || !pause(every, &stop).await {
            println!("{} reconcile: stopped cleanly", scimsync::time::now());
            return Ok(Outcome::Ok);
        }
    }
}
