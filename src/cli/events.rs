//! `scimsync events [--since T] [--app A] [--format table|json] [--limit N]`.
use std::io::Write;

use clap::{Args, ValueEnum};

use super::{output, Globals, Outcome};
use scimsync::store::Store;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EventsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-01 or 2026-11-01T12:00:00Z).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only this app's events.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    #[arg(long, value_enum, default_value_t = EventsFormat::Table)]
    format: EventsFormat,
    /// The newest N events (0 = all).
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
}

pub fn run(g: &Globals, args: EventsArgs) -> anyhow::Result<Outcome> {
    let config = g.optional_config()?;
    let path = g.store_path(config.as_ref());
    if !path.exists() {
        anyhow::bail!("store '{}' does not exist: run `scimsync pull` first", path.display());
    }
    let store = Store::open_read_only(&path)?;
    if let Some(since) = &args.since {
        let ok = chrono::DateTime::parse_from_rfc3339(since).is_ok() || chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d").is_ok();
        if !ok {
            anyhow::bail!("--since '{since}': expected an RFC 3339 time (2026-11-01T12:00:00Z) or a date (2026-11-01)");
        }
    }
    let events = store.events(args.since.as_deref(), args.app.as_deref(), args.limit)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        EventsFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &events)?;
            writeln!(out)?;
        }
        EventsFormat::Table => {
            let mut t = output::table(&["at", "event", "app", "subject", "outcome", "http", "message"]);
            for e in &events {
                t.add_row(super::output::safe_row(vec![
                    e.at.clone(),
                    e.name.clone(),
                    e.app.clone(),
                    e.subject.clone().unwrap_or_default(),
                    e.outcome.clone(),
                    e.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                ]));
            }
            writeln!(out, "{t}")?;
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}
