//! `scimsync apply [--app A] [--yes] [--max-deactivations N|P%] [--force] [--dry-run] [--plan FILE]`.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::{output, Globals, Outcome};
use scimsync::apply::executor::{check_fresh, check_guard, pending};
use scimsync::apply::{ApplyError, ApplyOptions, ApplyReport};
use scimsync::config::DeactivationLimit;
use scimsync::plan::Plan;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply only this app's operations.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Override the apps' max_deactivations for this run: a count ("25") or a share ("10%").
    #[arg(long, value_name = "N|P%", value_parser = DeactivationLimit::parse)]
    max_deactivations: Option<DeactivationLimit>,
    /// Apply even when the deactivation guard would refuse.
    #[arg(long)]
    force: bool,
    /// Print the requests instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// Apply this plan file (from `plan --out`) instead of the latest stored plan.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Operations in flight at once (default: each app's `concurrency`).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
}

pub async fn run(g: &Globals, args: ApplyArgs) -> anyhow::Result<Outcome> {
    let config = g.load_config()?;
    let (_lock, mut store) = g.open_for_writing(&g.store_path(Some(&config)))?;
    let plan_id = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("plan file '{}': {e}", path.display()))?;
            // The error names the field (`operations[3].method: unknown method 'GET' …`).
            let plan: Plan = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| anyhow::anyhow!("plan file '{}': not a scimsync plan: {e}", path.display()))?;
            check_fresh(&store, &plan, args.app.as_deref())?;
            store.insert_plan(&plan)?;
            plan.plan_id
        }
        None => store
            .latest_plan_id()?
            .ok_or_else(|| anyhow::anyhow!("no plan in {}: run `scimsync plan` first", store.path().display()))?,
    };
    let (plan, entries) = store.load_journal(plan_id)?.expect("the plan was just found");
    let todo = pending(&entries, args.app.as_deref());
    if todo.is_empty() {
        println!("plan #{plan_id}: nothing to apply");
        return Ok(Outcome::Ok);
    }
    check_fresh(&store, &plan, args.app.as_deref())?;
    let opts = ApplyOptions {
        app: args.app.clone(),
        concurrency: args.concurrency,
        max_deactivations: args.max_deactivations,
        force: args.force,
        stop: Some(super::stop_on_signals()),
    };
    if let Err(e @ ApplyError::Guard { .. }) = check_guard(&config, &store, &todo, &opts) {
        eprintln!("error: {e}");
        return Ok(Outcome::Pending);
    }
    if args.dry_run {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for e in &todo {
            let base = config
                .app(&e.op.app)
                .map(|a| a.http.base_url.trim_end_matches('/').to_string())
                .unwrap_or_default();
            writeln!(
                out,
                "# {} {} ({}) [{}]",
                e.op.seq,
                e.op.action,
                e.op.subject.clone().unwrap_or_default(),
                e.status
            )?;
            writeln!(out, "{} {base}/{}", e.op.method, e.op.path)?;
            if let Some(b) = &e.op.body {
                writeln!(out, "{b}")?;
            }
        }
        writeln!(out, "plan #{plan_id}: {} operation(s) not sent (--dry-run)", todo.len())?;
        out.flush()?;
        return Ok(Outcome::Ok);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "plan #{plan_id} has {} operation(s); apply asks for confirmation: run it from a terminal, or pass --yes",
                todo.len()
            );
        }
        eprint!("Apply {} operation(s) of plan #{plan_id}? [y/N] ", todo.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing applied");
            return Ok(Outcome::Ok);
        }
    }
    let report = match scimsync::apply::apply_loaded(&config, store, &plan, entries, &opts).await {
        Ok(r) => r,
        Err(e @ ApplyError::Guard { .. }) => {
            eprintln!("error: {e}");
            return Ok(Outcome::Pending);
        }
        Err(e) => return Err(e.into()),
    };
    print_report(&report);
    if report.failed() > 0 {
        anyhow::bail!(
            "{} operation(s) failed; they are journaled and `scimsync apply` retries them",
            report.failed()
        );
    }
    Ok(Outcome::Ok)
}

pub fn print_report(report: &ApplyReport) {
    let mut t = output::table(&["app", "action", "done", "failed", "skipped"]);
    for ((app, action), (done, failed, skipped)) in &report.counts {
        t.add_row(super::output::safe_row(vec![
            app.clone(),
            action.to_string(),
            done.to_string(),
            failed.to_string(),
            skipped.to_string(),
        ]));
    }
    println!("{t}");
    for f in report.failures.iter().take(20) {
        eprintln!("failed: {}", scimsync::terminal::printable(f));
    }
    if report.failures.len() > 20 {
        eprintln!("… and {} more failures (scimsync events)", report.failures.len() - 20);
    }
    let ops = report.done() + report.failed();
    println!(
        "plan #{}: {} done, {} failed in {:.2}s ({:.0} ops/s, {} requests)",
        report.plan_id,
        report.done(),
        report.failed(),
        report.seconds,
        ops as f64 / report.seconds.max(1e-9),
        report.requests
    );
}
