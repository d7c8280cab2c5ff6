//! `scimsync demo`: a self-contained run on an embedded default. A sample company (the `file`
//! IdP) and four app emulators seeded with drift are started in-process, mirrored into a store
//! in the demo directory, planned (findings of every kind), and auditor queries run over it.
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::table;
use super::{Globals, Outcome};
use crate::config::Config;
use crate::emulator::{Directory, Emulator, Vendor};
use crate::sample::{Company, Person, SplitMix, DEPARTMENTS};
use crate::source::ProgressSink;
use crate::store::Store;

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
    let _ = std::fs::remove_dir_all(crate::engine::columnar::dir_for(&dir.join("scimsync.db")));
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
    let plan = crate::drift::plan(&config, &mut store, None).await?;
    let mut t = table(&["app", "finding", "count", "example"]);
    let mut counts: std::collections::BTreeMap<(&str, &str), (usize, String)> = Default::default();
    for f in &plan.findings {
        let e = counts
            .entry((f.app.as_str(), f.kind.as_str()))
            .or_insert((0, crate::drift::describe_finding(f)));
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

    for (title, sql) in AUDITS {
        println!(
            "{title}\n  {}\n{}\n",
            sql.split_whitespace().collect::<Vec<_>>().join(" "),
            query_table(&store, sql)?
        );
    }
    println!("The demo store is {}. Explore it with:\n  scimsync --config {} status\n  sqlite3 {} \"SELECT source, COUNT(*) FROM users GROUP BY source\"", config.store.display(), config_path.display(), config.store.display());
    Ok(Outcome::Ok)
}

async fn apply_and_check(config: &Config, store: &mut Store, plan_id: i64) -> anyhow::Result<()> {
    let opts = crate::apply::ApplyOptions {
        app: None,
        concurrency: None,
        max_deactivations: None,
        force: false,
        stop: None,
    };
    let report = crate::apply::apply(config, Store::open(&config.store)?, plan_id, &opts).await?;
    println!("apply:");
    super::apply::print_report(&report);
    pull_all(config, store).await?;
    let after = crate::drift::plan(config, store, None).await?;
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

async fn pull_all(config: &Config, store: &mut Store) -> anyhow::Result<Vec<crate::pull::PullOutcome>> {
    let no_progress = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
    Ok(crate::pull::pull(config, store, None, &no_progress).await?)
}

/// Auditor questions the demo answers straight from the store.
const AUDITS: &[(&str, &str)] = &[
    (
        "Accounts per app (active / total):",
        "SELECT s.name AS source, SUM(u.active) AS active, COUNT(u.uid) AS total FROM sources s LEFT JOIN users u ON u.source = s.name GROUP BY s.name ORDER BY s.name",
    ),
    (
        "Suspended in the IdP but still active in an app (matched by email):",
        "SELECT a.source AS app, a.user_name, i.status_raw AS idp_status FROM users a JOIN users i ON i.source = 'idp.corp' AND lower(i.email) = lower(a.email)
         WHERE a.source LIKE 'app.%' AND a.active AND NOT i.active ORDER BY a.source, a.user_name LIMIT 10",
    ),
    (
        "App accounts with no IdP counterpart (import candidates):",
        "SELECT a.source AS app, a.user_name FROM users a LEFT JOIN users i ON i.source = 'idp.corp' AND lower(i.email) = lower(a.email)
         WHERE a.source LIKE 'app.%' AND i.uid IS NULL ORDER BY a.source, a.user_name LIMIT 10",
    ),
];

fn query_table(store: &Store, sql: &str) -> anyhow::Result<comfy_table::Table> {
    let mut stmt = store.connection().prepare(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
    let mut t = table(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let n = names.len();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let cells: Vec<String> = (0..n)
            .map(|i| match r.get_ref(i) {
                Ok(rusqlite::types::ValueRef::Text(s)) => String::from_utf8_lossy(s).into_owned(),
                Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                Ok(rusqlite::types::ValueRef::Real(v)) => v.to_string(),
                _ => String::new(),
            })
            .collect();
        t.add_row(cells);
    }
    Ok(t)
}
