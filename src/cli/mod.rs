//! The command line. Each subcommand lives in its own file; this one parses, sets up logging,
//! runs the command and maps its outcome to an exit code: 0 ok, 1 error, 2 changes pending
//! (with `--detailed-exitcode`) or blocked by a guard.
mod apply;
mod demo;
mod events;
mod export;
mod gen_serve;
mod import;
mod init;
mod outfile;
mod output;
mod plan;
mod pull;
mod reconcile;
mod sql;
mod status;
mod upkeep;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use scimsync::config::Config;

/// Mirror an identity provider and its SCIM apps into SQLite, find drift, fix it.
#[derive(Debug, Parser)]
#[command(name = "scimsync", version, about, long_about = None)]
pub struct Cli {
    /// Config file.
    #[arg(long, global = true, default_value = "scimsync.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Store file (default: `store` from the config, else ./scimsync.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The most one request may wait between retries in all, like 10m (default: the config's
    /// `max_retry_wait`, else 10m).
    #[arg(long, global = true, value_name = "DURATION", value_parser = scimsync::time::parse_duration)]
    pub max_retry_wait: Option<std::time::Duration>,
    /// The most one run (a command, or a reconcile cycle) may wait between retries in all, like
    /// 1h (default: the config's `max_retry_wait_per_run`, else 1h).
    #[arg(long, global = true, value_name = "DURATION", value_parser = scimsync::time::parse_duration)]
    pub max_retry_wait_per_run: Option<std::time::Duration>,
    /// When another scimsync is writing the store, wait for it instead of exiting with an error.
    #[arg(long, global = true)]
    pub wait: bool,
    /// The memory the process should stay within, like 1GiB or 4GiB (default: the config's
    /// `memory_limit`, else 1GiB; never more than the container or machine has). Auditor
    /// queries get half of it as their pool; sorts and aggregations beyond it spill to disk
    /// beside the store.
    #[arg(long, global = true, value_name = "SIZE", value_parser = scimsync::config::parse_size)]
    pub memory_limit: Option<u64>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented scimsync.toml.
    Init(init::InitArgs),
    /// Mirror the IdP and the apps into the store.
    Pull(pull::PullArgs),
    /// Find drift between the IdP and each app (findings, stored as a plan run).
    Plan(plan::PlanArgs),
    /// Execute the latest plan (or --plan FILE): journaled SCIM writes, retries, deletion guard.
    Apply(apply::ApplyArgs),
    /// Pull, plan and apply in one unattended run (exit 2 when a guard or a failed pull held an app back).
    Reconcile(reconcile::ReconcileArgs),
    /// The provisioning event log (named like JumpCloud Directory Insights events).
    Events(events::EventsArgs),
    /// App accounts with no IdP counterpart (New) or linked to one (Imported); --create adds the new ones to the IdP.
    Import(import::ImportArgs),
    /// Read-only SQL over the store (DataFusion): tables, history, auditor views; --at a past time.
    Sql(sql::SqlArgs),
    /// Run a saved auditor report (queries/reports), as text, CSV, JSON, Parquet or HTML.
    Report(sql::ReportArgs),
    /// What changed in the mirrored state between two runs or times.
    Diff(sql::DiffArgs),
    /// Sources, last successful pull and counts.
    Status(status::StatusArgs),
    /// Write the store's tables, current state and history, as Parquet into a lake (--lake DIR) that several stores can share.
    Export(export::ExportArgs),
    /// A Ballista scheduler and executors on loopback until Ctrl-C, for `sql`/`report --lake DIR --cluster URL` (prints the URL).
    Cluster(export::ClusterArgs),
    /// Remove what `[retention]` lets go (old plans, history, events, runs) and hand the space back.
    Prune(upkeep::PruneArgs),
    /// A consistent copy of the store while other commands run (never overwrites).
    Backup(upkeep::BackupArgs),
    /// The store's integrity, schema version, references and columnar copies (exit 1 on a problem).
    Check(upkeep::CheckArgs),
    /// Self-contained run on an embedded sample company and four app emulators.
    Demo(demo::DemoArgs),
    /// Synthetic IdP and app with controlled drift, written into a store, for benchmarks.
    Gen(GenArgs),
    /// Write a synthetic directory in the `file` IdP format (benchmarks, experiments).
    #[command(hide = true)]
    GenFile(GenFileArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// IdP users.
    #[arg(long)]
    users: usize,
    /// IdP groups (the app is bound to 49 in 50 of them).
    #[arg(long, default_value_t = 1000)]
    groups: usize,
    /// IdP memberships (default: 5 per user).
    #[arg(long)]
    memberships: Option<usize>,
    /// Fraction of objects given each kind of drift.
    #[arg(long, default_value_t = 0.01)]
    drift: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give users department, cost center and manager attributes and the app three mappings of
    /// them (the enterprise extension), drifted like the rest: the plan benchmark with mappings.
    #[arg(long, conflicts_with = "serve")]
    mapped: bool,
    /// Directory for the store and its config (replaced).
    #[arg(long, default_value = "scimsync-gen")]
    dir: PathBuf,
    /// Then serve the generated IdP and app over SCIM from the emulator on loopback ports (the
    /// config points at them) until Ctrl-C: for `pull` and `apply` over HTTP.
    #[arg(long)]
    serve: bool,
}

#[derive(Debug, clap::Args)]
pub struct GenFileArgs {
    #[arg(long)]
    users: usize,
    /// Project groups beyond the departments and the Editors/Viewers role groups.
    #[arg(long, default_value_t = 0)]
    groups: usize,
    #[arg(long, default_value_t = 20)]
    members_per_group: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

/// What a command reports back to the exit-code mapping.
pub enum Outcome {
    Ok,
    /// Changes pending or a guard stopped the run (exit 2).
    Pending,
}

pub fn main() -> ExitCode {
    exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Pending) => ExitCode::from(2),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let redact = |t: String| scimsync::secret::redact(&scimsync::terminal::printable_text(&t)).into_owned();
            eprintln!("error: {}", redact(e.to_string()));
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {}", redact(cause.to_string()));
            }
            ExitCode::from(1)
        }
    }
}

/// `scimsync status | head -1`: the reader closed the pipe and has what it wanted. `println!`
/// panics when stdout is gone; every command takes that as success (exit 0, nothing on stderr),
/// as other Unix tools do, wherever in the command it happens.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env("SCIMSYNC_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,h2=warn,rustls=warn")));
    // Colour only on a terminal: logs sent to files or collectors stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every log line passes the one redaction point: a server that echoes a token in an
        // error detail does not get it printed.
        .with_writer(|| scimsync::secret::RedactingWriter::new(std::io::stderr()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(bytes) = cli.memory_limit {
        scimsync::memory::set_limit(bytes);
    }
    let globals = Globals {
        config: cli.config.clone(),
        store: cli.store.clone(),
        quiet: cli.quiet,
        max_retry_wait: cli.max_retry_wait,
        max_retry_wait_per_run: cli.max_retry_wait_per_run,
        wait: cli.wait,
        memory_limit: cli.memory_limit,
    };
    match cli.command {
        Command::Init(args) => init::run(&globals, args),
        Command::Pull(args) => runtime()?.block_on(pull::run(&globals, args)),
        Command::Status(args) => status::run(&globals, args),
        Command::Prune(args) => upkeep::prune(&globals, args),
        Command::Backup(args) => upkeep::backup(&globals, args),
        Command::Export(args) => runtime()?.block_on(export::run(&globals, args)),
        Command::Cluster(args) => runtime()?.block_on(export::cluster(&globals, args)),
        Command::Check(args) => upkeep::check(&globals, args),
        Command::Apply(args) => runtime()?.block_on(apply::run(&globals, args)),
        Command::Events(args) => events::run(&globals, args),
        Command::Import(args) => runtime()?.block_on(import::run(&globals, args)),
        Command::Reconcile(args) => runtime()?.block_on(reconcile::run(&globals, args)),
        Command::Plan(args) => runtime()?.block_on(plan::run(&globals, args)),
        Command::Sql(args) => runtime()?.block_on(sql::run_sql(&globals, args)),
        Command::Report(args) => runtime()?.block_on(sql::run_report(&globals, args)),
        Command::Diff(args) => runtime()?.block_on(sql::run_diff(&globals, args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(&globals, args)),
        Command::Gen(a) => {
            let spec = scimsync::gen::GenSpec {
                users: a.users,
                groups: a.groups,
                memberships: a.memberships.unwrap_or(a.users * 5),
                drift: a.drift,
                seed: a.seed,
                mapped: a.mapped,
            };
            let t = std::time::Instant::now();
            // Served, both sides stay held; else each is generated and written in turn.
            let (store, timings, generated) = if a.serve {
                let (store, timings, generated) = scimsync::gen::write_generated(&spec, &a.dir)?;
                (store, timings, Some(generated))
            } else {
                let (store, timings) = scimsync::gen::write(&spec, &a.dir)?;
                (store, timings, None)
            };
            for (source, c, secs) in timings {
                println!(
                    "{source}: {} users, {} groups, {} memberships written in {secs:.2}s",
                    c.users, c.groups, c.memberships
                );
            }
            println!(
                "store {} ready in {:.1}s; plan it with: scimsync --config {} plan",
                store.display(),
                t.elapsed().as_secs_f64(),
                a.dir.join("scimsync.toml").display()
            );
            if let Some(generated) = generated {
                runtime()?.block_on(crate::cli::gen_serve::serve(generated, &a.dir, |idp, app| {
                    println!("serving the IdP at {idp} and the app at {app} (SCIM, no token); Ctrl-C stops");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                }))?;
            }
            Ok(Outcome::Ok)
        }
        Command::GenFile(a) => {
            let company = scimsync_emulator::sample::Company::generate(a.users, a.groups, a.seed);
            std::fs::write(&a.out, company.to_file_json(a.members_per_group, a.seed))?;
            Ok(Outcome::Ok)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "scimsync", &mut std::io::stdout());
            Ok(Outcome::Ok)
        }
    }
}

/// A flag set by SIGINT or SIGTERM.
pub(crate) fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("stopping: finishing the operations in flight");
        eprintln!("stopping: finishing the operations in flight, then exiting");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    stop
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The global options every command may need.
pub struct Globals {
    pub config: PathBuf,
    pub store: Option<PathBuf>,
    pub quiet: bool,
    pub max_retry_wait: Option<std::time::Duration>,
    pub max_retry_wait_per_run: Option<std::time::Duration>,
    pub wait: bool,
    pub memory_limit: Option<u64>,
}

impl Globals {
    /// The store at `path` for a command that writes it (or an app): the store lock first (see
    /// [`scimsync::store::StoreLock`]), then the store, with the runs a killed writer left
    /// `running` marked abandoned.
    pub fn open_for_writing(&self, path: &std::path::Path) -> anyhow::Result<(scimsync::store::StoreLock, scimsync::store::Store)> {
        let lock = scimsync::store::StoreLock::acquire(path, self.wait)?;
        let store = scimsync::store::Store::open(path)?;
        store.abandon_unfinished_runs(&lock)?;
        Ok((lock, store))
    }

    /// The config, with the retry budget it sets (or the flags override) put in force.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let config = Config::load(&self.config)?;
        if let (None, Some(bytes)) = (self.memory_limit, config.memory_limit) {
            scimsync::memory::set_limit(bytes);
        }
        scimsync::http::set_retry_budget(
            self.max_retry_wait.unwrap_or(config.max_retry_wait),
            self.max_retry_wait_per_run.unwrap_or(config.max_retry_wait_per_run),
        );
        Ok(config)
    }

    /// `--store`, else the config's `store`, else ./scimsync.db.
    pub fn store_path(&self, config: Option<&Config>) -> PathBuf {
        self.store
            .clone()
            .or_else(|| config.map(|c| c.store.clone()))
            .unwrap_or_else(|| PathBuf::from("scimsync.db"))
    }

    /// The config if the file exists (commands that can work from the store alone).
    pub fn optional_config(&self) -> anyhow::Result<Option<Config>> {
        if self.config.exists() {
            Ok(Some(self.load_config()?))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Every `scimsync …` command the README shows — in code blocks, cron/systemd/Kubernetes
    /// examples and inline code — is accepted by the argument parser as written (so a renamed
    /// flag cannot leave the README behind). Placeholders (`…`, `FILE`, `N`) are skipped.
    #[test]
    fn every_readme_command_parses() {
        let readme = include_str!("../../README.md");
        let mut checked = 0;
        let mut in_block = false;
        for line in readme.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            for (i, _) in line.match_indices("scimsync ") {
                let before = &line[..i];
                // A command position: in inline code right after its backtick; in a code block
                // at the line start, after a shell operator, `ExecStart=…/` or a quote.
                let at_command = before.ends_with('`')
                    || in_block
                        && (before.trim().is_empty()
                            || before.ends_with("&& ")
                            || before.ends_with("| ")
                            || before.ends_with("bin/")
                            || before.ends_with('"'));
                if !at_command {
                    continue;
                }
                // Words up to the end of the command (a backtick, comment, redirection, pipe or
                // `;` outside quotes); "quoted words" stay whole.
                let mut words: Vec<String> = vec![String::new()];
                let mut quoted = false;
                for c in line[i..].chars() {
                    match c {
                        '"' => quoted = !quoted,
                        '`' | '#' | '>' | '|' | ';' | ')' if !quoted => break,
                        c if c.is_whitespace() && !quoted => words.push(String::new()),
                        c => words.last_mut().expect("never empty").push(c),
                    }
                }
                words.retain(|w| !w.is_empty());
                let command = words.join(" ");
                // Prose names a command (`scimsync gen`) without its arguments: only code blocks
                // and inline code with arguments are commands to run.
                if words.len() < 2
                    || !in_block && words.len() == 2
                    || quoted
                    || words.iter().any(|w| {
                        w.contains('…')
                            || w.contains('[')
                            || w.contains('|')
                            || w.chars().all(|c| c.is_ascii_uppercase() || c == '_') && w.len() > 1
                    })
                    || command.contains(" NAME")
                    || command.contains("\\")
                {
                    continue;
                }
                if let Err(e) = super::Cli::try_parse_from(&words) {
                    panic!("README line does not parse: `{command}`\n{e}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 25, "only {checked} README commands found");
    }
}
