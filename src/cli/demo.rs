//! `scimsync demo`: a self-contained run on an embedded default. A sample company (the `file`
//! IdP) and four app emulators seeded with drift are started in-process, mirrored into a store
//! in the demo directory, planned (findings of every kind), and auditor queries run over it.
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::table;
use super::{Globals, Outcome};
use scimsync::config::Config;
use scimsync::source::ProgressSink;
use scimsync::store::Store;
use scimsync_emulator::sample::{Company, Person, SplitMix, DEPARTMENTS};
use scimsync_emulator::{Directory, Emulator, Vendor};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo's config, directory file and store (replaced if present).
    #[arg(long, default_value = "scimsync-demo", value_name = "DIR")]
    dir: PathBuf,
    /// Number of people in the sample company.
    #[arg(long, default_value_t = 400)]
    users: usize,
    /// Stop after the plan (leave the drift in place).
    #[arg(long)]
    no_apply: bool,
}

/// The four seed apps and the IdP groups bound to each.
const APPS: &[(&str, &str, &[&str])] = &[
    ("whimsical", "whimsical", &["Editors", "Viewers"]),
    ("quip", "quip", &["Engineering", "Product"]),
    ("blogin", "blogin", &["Sales", "Marketing"]),
    ("workramp", "workramp", &["Support", "People"]),
];

fn in_group(p: &Person, group: &str) -> bool {
    match group {
        "Editors" => p.editor == Some(true),
        "Viewers" => p.editor == Some(false),
        dept => DEPARTMENTS[p.department] == dept,
    }
}

fn scim_user(p: &Person) -> serde_json::Value {
    json!({"userName": p.email, "externalId": p.employee_id, "active": true, "displayName": format!("{} {}", p.first, p.last),
           "name": {"givenName": p.first, "familyName": p.last, "formatted": format!("{} {}", p.first, p.last)},
           "emails": [{"value": p.email, "type": "work", "primary": true}], "title": p.title, "timezone": p.timezone})
}

/// An app as it might be found in the wild: most in-scope people provisioned, some missing,
/// some left active after leaving the IdP, a few with drifted attributes, a few unknown accounts.
fn drifted_app(company: &Company, bound: &[&str], rng: &mut SplitMix) -> Directory {
    let mut dir = Directory::default();
    let mut members: Vec<(String, Vec<String>)> = bound.iter().map(|g| (g.to_string(), Vec::new())).collect();
    for p in company.people.iter().filter(|p| bound.iter().any(|g| in_group(p, g))) {
        if p.active && rng.chance(12) {
            continue; // missing in the app
        }
        if !p.active && rng.chance(60) {
            continue; // correctly deprovisioned earlier
        }
        let mut u = scim_user(p);
        if rng.chance(6) {
            u["title"] = json!("Changed By Hand");
        }
        let id = dir.add_user(u);
        for (g, m) in members.iter_mut() {
            if in_group(p, g) && rng.chance(95) {
                m.push(id.clone());
            }
        }
    }
    for k in 0..3 {
        dir.add_user(json!({"userName": format!("contractor{k}@partner.example"), "active": true, "emails": [{"value": format!("contractor{k}@partner.example"), "type": "work"}]}));
    }
    for (g, m) in members.into_iter().skip(1) {
        dir.add_group(&g, &m); // the first bound group has not been created in the app yet
    }
    dir
}

pub async fn run(_g: &Globals, args: DemoArgs) -> anyhow::Result<Outcome> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir)?;
    for f in ["scimsync.db", "scimsync.db-wal", "scimsync.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir_all(scimsync::engine::columnar::dir_for(&dir.join("scimsync.db")));
    let company = Company::generate(args.users, 0, 2026);
    std::fs::write(dir.join("directory.json"), company.to_file_json(0, 2026))?;

    let mut rng = SplitMix::new(7);
    let mut emulators: Vec<Emulator> = Vec::new();
    let mut config = String::from("# Written by `scimsync demo`: the sample IdP and four app emulators (gone when the demo exits).\nstore = \"scimsync.db\"\n\n[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n");
    for (name, profile, bound) in APPS {
        let vendor = Vendor::parse(profile).unwrap_or_default();
        let emulator = Emulator::start_as(drifted_app(&company, bound, &mut rng), None, vendor, false).await?;
        let groups: Vec<String> = bound.iter().map(|b| format!("\"{b}\"")).collect();
        config.push_str(&format!(
            "\n[app.{name}]\nidp = \"corp\"\nprofile = \"{profile}\"\nbase_url = \"{}\"\ngroups = [{}]\n",
            emulator.base_url,
            groups.join(", ")
        ));
        emulators.push(emulator);
    }
    let config_path = dir.join("scimsync.toml");
    std::fs::write(&config_path, &config)?;
    let config = Config::load(&config_path)?;
    let mut store = Store::open(&config.store)?;

    println!(
        "== scimsync demo: {} people in the IdP, apps {}\n",
        args.users,
        APPS.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
    );
    let started = std::time::Instant::now();
    let outcomes = pull_all(&config, &mut store).await?;
    let mut t = table(&["source", "result", "users", "groups", "memberships"]);
    for o in &outcomes {
        match &o.result {
            Ok(c) => t.add_row(vec![
                o.source.clone(),
                "ok".into(),
                c.users.to_string(),
                c.groups.to_string(),
                c.memberships.to_string(),
            ]),
            Err(e) => t.add_row(vec![
                o.source.clone(),
                format!("FAILED: {e}"),
                String::new(),
                String::new(),
                String::new(),
            ]),
        };
    }
    println!("pull ({:.2}s):\n{t}\n", started.elapsed().as_secs_f64());

    let started = std::time::Instant::now();
    let plan = scimsync::plan::plan(&config, &mut store, None).await?;
    let mut t = table(&["app", "finding", "count", "example"]);
    let mut counts: std::collections::BTreeMap<(&str, &str), (usize, String)> = Default::default();
    for f in &plan.findings {
        let e = counts
            .entry((f.app.as_str(), f.kind.as_str()))
            .or_insert((0, scimsync::plan::describe_finding(f)));
        e.0 += 1;
    }
    for ((app, kind), (n, example)) in &counts {
        t.add_row(vec![app.to_string(), kind.to_string(), n.to_string(), example.clone()]);
    }
    println!(
        "plan ({:.2}s): {} findings, {} changes pending, {} SCIM operations\n{t}\n",
        started.elapsed().as_secs_f64(),
        plan.findings.len(),
        plan.pending(),
        plan.operations.len()
    );

    // Apply the plan to the emulators (each behaving like its app), then check the result.
    if !args.no_apply {
        apply_and_check(&config, &mut store, plan.run_id).await?;
    }
    drop(emulators);

    audit(&config.store, &config_path, plan.run_id).await?;
    println!(
        "The demo store is {store}. Explore it with:\n  scimsync --config {cfg} sql \"SELECT * FROM idp_vs_app LIMIT 5\"\n  scimsync --config {cfg} report --list\n  scimsync --config {cfg} report --html audit.html\n  sqlite3 {store} \"SELECT app, COUNT(*) FROM app_access GROUP BY app\"",
        store = config.store.display(),
        cfg = config_path.display()
    );
    Ok(Outcome::Ok)
}

async fn apply_and_check(config: &Config, store: &mut Store, plan_id: i64) -> anyhow::Result<()> {
    let opts = scimsync::apply::ApplyOptions {
        app: None,
        concurrency: None,
        max_deactivations: None,
        force: false,
        stop: None,
    };
    let report = scimsync::apply::apply(config, Store::open(&config.store)?, plan_id, &opts).await?;
    println!("apply:");
    super::apply::print_report(&report);
    pull_all(config, store).await?;
    let after = scimsync::plan::plan(config, store, None).await?;
    let mut left: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &after.findings {
        *left.entry(f.kind.as_str()).or_default() += 1;
    }
    println!(
        "\npull + plan again: {} changes pending, {} operations; left for people: {}\n",
        after.pending(),
        after.operations.len(),
        if left.is_empty() {
            "nothing".to_string()
        } else {
            left.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
        }
    );
    Ok(())
}

async fn pull_all(config: &Config, store: &mut Store) -> anyhow::Result<Vec<scimsync::pull::PullOutcome>> {
    let no_progress = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
    Ok(scimsync::pull::pull(config, store, None, &no_progress).await?)
}

/// Auditor questions the demo answers with `scimsync sql` / `scimsync report` (as the same
/// code paths): (title, arguments after `scimsync --config …`, SQL or report, as of the plan).
const AUDITS: &[(&str, &str, bool)] = &[
    (
        "Who has access: accounts per app, linked to an IdP user or not",
        "SELECT app, access, SUM(account_active) AS active, COUNT(*) AS total FROM app_access GROUP BY app, access ORDER BY app, access",
        false,
    ),
    (
        "Deactivated in the IdP but active in an app, as it was before the apply (history)",
        "deactivated_but_active",
        true,
    ),
    (
        "App accounts never matched to an IdP user (import candidates)",
        "unmatched_accounts",
        false,
    ),
];

async fn audit(store: &std::path::Path, config_path: &std::path::Path, first_plan: i64) -> anyhow::Result<()> {
    for (title, what, before) in AUDITS {
        let at = before.then(|| first_plan.to_string());
        let point = at.as_deref().map(|a| scimsync::audit::diff::resolve_point(store, a)).transpose()?;
        let auditor = scimsync::audit::Auditor::open(store, point)?;
        let at_arg = at.map(|a| format!(" --at {a}")).unwrap_or_default();
        let (command, rows) = match scimsync::audit::reports::find(what) {
            Some(r) => (
                format!("scimsync --config {} report {what}{at_arg}", config_path.display()),
                auditor.query(r.sql, &format!("report {what}")).await?,
            ),
            None => (
                format!("scimsync --config {} sql{at_arg} \"{what}\"", config_path.display()),
                auditor.query(what, "demo query").await?,
            ),
        };
        println!("{title}:\n  $ {command}");
        scimsync::audit::output::write(&rows, scimsync::audit::output::Format::Table, &mut std::io::stdout())?;
        println!();
    }
    Ok(())
}
