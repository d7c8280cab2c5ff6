//! `scimsync import --app A [--create [--yes]] [--new-only] [--format table|json]`.
use std::io::Write;

use clap::{Args, ValueEnum};

use super::output::table;
use super::{Globals, Outcome};
use scimsync::import::{self, ImportStatus};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ImportFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The app whose accounts to list.
    #[arg(long, value_name = "APP")]
    app: String,
    /// Create the new (unmatched, active) accounts in the IdP. A dry run unless --yes.
    #[arg(long)]
    create: bool,
    /// With --create: really create them.
    #[arg(long, requires = "create")]
    yes: bool,
    /// List only the New accounts.
    #[arg(long)]
    new_only: bool,
    #[arg(long, value_enum, default_value_t = ImportFormat::Table)]
    format: ImportFormat,
}

pub async fn run(g: &Globals, args: ImportArgs) -> anyhow::Result<Outcome> {
    let config = g.load_config()?;
    let (_lock, mut store) = g.open_for_writing(&g.store_path(Some(&config)))?;
    let mut list = import::list(&config, &mut store, &args.app).await?;
    if args.new_only {
        list.accounts.retain(|c| c.status == ImportStatus::New);
    }
    let created = if args.create && args.yes {
        Some(import::create(&config, &store, &list).await?)
    } else {
        None
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.format == ImportFormat::Json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({"list": list, "created": created}))?;
        writeln!(out)?;
        out.flush()?;
        return Ok(Outcome::Ok);
    }
    let mut t = table(&["status", "userName", "email", "name", "active", "IdP user", "matched by"]);
    for c in &list.accounts {
        t.add_row(super::output::safe_row(vec![
            match c.status {
                ImportStatus::New => "New".to_string(),
                ImportStatus::Imported => "Imported".to_string(),
            },
            c.user_name.clone().unwrap_or_default(),
            c.email.clone().unwrap_or_default(),
            c.display_name.clone().unwrap_or_default(),
            if c.active { "yes" } else { "no" }.into(),
            c.idp_user.clone().unwrap_or_default(),
            c.matched_by.clone().unwrap_or_default(),
        ]));
    }
    let new = list.accounts.iter().filter(|c| c.status == ImportStatus::New).count();
    writeln!(out, "app '{}' against {} (plan run {}):\n{t}", list.app, list.idp, list.plan_run)?;
    writeln!(out, "{new} new, {} imported", list.accounts.len() - new)?;
    let to_create: Vec<_> = list.to_create().collect();
    let groups = if list.bound_groups.is_empty() {
        "(none bound)".to_string()
    } else {
        list.bound_groups.join(", ")
    };
    match (&created, args.create) {
        (None, true) => {
            writeln!(
                out,
                "\nwould create {} user(s) in {} (dry run; add --yes):",
                to_create.len(),
                list.idp
            )?;
            for c in &to_create {
                writeln!(
                    out,
                    "  + {}",
                    scimsync::terminal::printable(c.user_name.as_deref().or(c.email.as_deref()).unwrap_or("?"))
                )?;
            }
            let inactive = list.accounts.iter().filter(|c| c.status == ImportStatus::New && !c.active).count();
            if inactive > 0 {
                writeln!(out, "  ({inactive} inactive new account(s) are not imported)")?;
            }
        }
        (Some(results), _) => {
            let mut t = table(&["userName", "IdP id", "note"]);
            let mut failed = 0;
            for r in results {
                if r.error.is_some() {
                    failed += 1;
                }
                t.add_row(super::output::safe_row(vec![
                    r.user_name.clone().unwrap_or_default(),
                    r.idp_id.clone().unwrap_or_else(|| "FAILED".into()),
                    r.error.clone().or(r.note.clone()).unwrap_or_default(),
                ]));
            }
            writeln!(out, "\ncreated in {}:\n{t}", list.idp)?;
            writeln!(
                out,
                "Imported users are managed in '{}' only once they are members of a group bound to it: {groups}.",
                list.app
            )?;
            out.flush()?;
            if failed > 0 {
                anyhow::bail!("{failed} of {} user(s) could not be created in {}", results.len(), list.idp);
            }
        }
        (None, false) => {
            if !to_create.is_empty() {
                writeln!(
                    out,
                    "`scimsync import --app {} --create` creates the {} new active account(s) in {}.",
                    list.app,
                    to_create.len(),
                    list.idp
                )?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Ok)
}
