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
    println!("store: {}", describe_size(&path));
    let mut tables = table(&["table", "rows"]);
    for (name, rows) in store.table_rows()? {
        tables.add_row(vec![name.to_string(), rows.to_string()]);
    }
    println!("{tables}");
    match store.history_horizon()? {
        Some(h) => println!("history horizon: {h} (`--at` and `diff` answer from then on; retention removed what ended before)"),
        None => println!("history horizon: none (all history kept)"),
    }
    match store.last_prune_at()? {
        Some(t) => println!("last prune: {t}"),
        None => println!("last prune: never (`scimsync prune`, or `reconcile` after each cycle)"),
    }
    Ok(Outcome::Ok)
}

/// The store's path and what it takes on disk: the file, its WAL, its columnar copies.
fn describe_size(path: &std::path::Path) -> String {
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    let copies: u64 = std::fs::read_dir(scimsync::engine::columnar::dir_for(path))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| size(&e.path())).sum())
        .unwrap_or(0);
    format!(
        "{} ({:.1} MiB, WAL {:.1} MiB, columnar copies {:.1} MiB)",
        path.display(),
        mib(size(path)),
        mib(size(std::path::Path::new(&wal))),
        mib(copies)
    )
}
