//! `scimsync pull [--app A]`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::output::{progress_enabled, table};
use super::{Globals, Outcome};
use scimsync::source::ProgressSink;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Pull only this app (and the IdP that provisions it).
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Read everything, even from IdPs that can read only what changed (Okta, Entra ID).
    #[arg(long)]
    full: bool,
}

pub async fn run(g: &Globals, args: PullArgs) -> anyhow::Result<Outcome> {
    let config = g.load_config()?;
    let (_lock, mut store) = g.open_for_writing(&g.store_path(Some(&config)))?;
    let bars = progress_enabled(g.quiet).then(MultiProgress::new);
    let made: Arc<Mutex<HashMap<String, ProgressBar>>> = Arc::default();
    let progress_for = |source: &str| -> ProgressSink {
        let Some(multi) = &bars else { return Box::new(|_: &str, _, _| {}) };
        let bar = multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} {msg:>7} [{bar:30}] {pos}/{len} ({per_sec})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(source.to_string());
        made.lock().expect("not poisoned").insert(source.to_string(), bar.clone());
        Box::new(move |what: &str, done, total| {
            bar.set_message(what.to_string());
            bar.set_length(total);
            bar.set_position(done);
        })
    };
    let outcomes = scimsync::pull::pull_with(&config, &mut store, args.app.as_deref(), args.full, &progress_for).await?;
    for bar in made.lock().expect("not poisoned").values() {
        bar.finish_and_clear();
    }

    let mut t = table(&[
        "source",
        "run",
        "result",
        "users",
        "groups",
        "memberships",
        "added",
        "changed",
        "removed",
        "seconds",
    ]);
    let mut failed = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(c) => {
                t.add_row(super::output::safe_row(vec![
                    o.source.clone(),
                    o.run_id.to_string(),
                    if c.incremental { "ok (changes only)" } else { "ok" }.into(),
                    c.users.to_string(),
                    c.groups.to_string(),
                    c.memberships.to_string(),
                    c.added.to_string(),
                    c.changed.to_string(),
                    c.removed.to_string(),
                    format!("{:.2}", o.seconds),
                ]));
            }
            Err(msg) => {
                t.add_row(super::output::safe_row(vec![
                    o.source.clone(),
                    o.run_id.to_string(),
                    "FAILED".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("{:.2}", o.seconds),
                ]));
                failed.push(msg.clone());
            }
        }
    }
    if !g.quiet {
        println!("{t}");
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "pull failed for {} source(s); their previous snapshots are kept:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(Outcome::Ok)
}
