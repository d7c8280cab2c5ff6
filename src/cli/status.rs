//! `scimsync status`: each source with its last successful pull and counts.
use clap::Args;

use super::output::table;
use super::{Globals, Outcome};
use scimsync::store::Store;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Globals, args: StatusArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let path = g.store_path(config.as_ref());
    if !path.exists() {
        anyhow::bail!("no store at {} yet; run `scimsync pull` first", path.display());
    }
    let store = Store::open_read_only(&path)?;
    let rows = store.source_statuses()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Ok);
    }
    let mut t = table(&[
        "source",
        "role",
        "kind",
        "profile",
        "last successful pull",
        "last run",
        "users",
        "active",
        "groups",
        "memberships",
    ]);
    for r in &rows {
        let last = match (&r.last_run_status, &r.last_run_error) {
            (Some(s), Some(e)) if s == "failed" => format!("FAILED: {}", e.chars().take(80).collect::<String>()),
            (Some(s), _) => s.clone(),
            (None, _) => "-".into(),
        };
        t.add_row(super::output::safe_row(vec![
            r.name.clone(),
            r.role.clone(),
            r.kind.clone(),
            r.profile.clone().unwrap_or_default(),
            r.last_success.clone().unwrap_or_else(|| "never".into()),
            last,
            r.users.to_string(),
            r.active_users.to_string(),
            r.groups.to_string(),
            r.memberships.to_string(),
        ]));
    }
    println!("{t}");
    for h in store.app_healths()? {
        match &h.quarantined_until {
            Some(until) => println!(
                "app {}: QUARANTINED after {} failed reconcile cycles, next try after {until}; last error: {}",
                h.app,
                h.consecutive_failures,
                h.last_error.clone().unwrap_or_default()
            ),
            None if h.consecutive_failures > 0 => println!(
                "app {}: {} failed reconcile cycle(s) in a row; last error: {}",
                h.app,
                h.consecutive_failures,
                h.last_error.clone().unwrap_or_default()
            ),
            None => {}
        }
    }
    println!("store: {}", path.display());
    Ok(Outcome::Ok)
}
