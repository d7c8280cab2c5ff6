//! A plan run, start to end: check that each app and its IdP have a complete snapshot, run the
//! drift engine over the store, turn its findings into operations, and record links, findings and
//! operations as a plan run.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::planner::{plan_app, AppPlanning};
use super::{Operation, Plan};
use crate::config::{AppConfig, Config};
use crate::engine::{self, AppInput, DriftResult, EngineError, Finding};
use crate::profile::{Profile, ProfileError, RoleModel};
use crate::store::{PullState, Store, StoreError};

/// One app as planned: the snapshots used and what may limit the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppPlanInfo {
    /// The app.
    pub app: String,
    /// Its IdP's pulls.
    pub idp: PullState,
    /// Its own pulls.
    pub sp: PullState,
    /// Every bound group resolved: deactivations for leaving the scope may be planned.
    pub scope_complete: bool,
    /// Why the app was not planned, when it was not.
    pub skipped: Option<String>,
    /// What people should know about this plan of it.
    pub warnings: Vec<String>,
}

/// A plan run's results.
#[derive(Debug, serde::Serialize)]
pub struct PlanOutcome {
    /// The plan run (and plan) id.
    pub run_id: i64,
    /// Each selected app, planned or not.
    pub apps: Vec<AppPlanInfo>,
    /// Every finding, in their total order.
    pub findings: Vec<Finding>,
    /// The SCIM operations that correct the findings, in the order `apply` runs them.
    pub operations: Vec<Operation>,
    /// Seconds per stage (`-v plan`).
    #[serde(skip)]
    pub timings: Vec<(String, f64)>,
}

impl PlanOutcome {
    /// Findings that call for a change in an app.
    pub fn pending(&self) -> usize {
        self.findings.iter().filter(|f| f.kind.is_actionable()).count()
    }

    /// Apps planned with an incomplete scope: the deactivations a loss of scope would cause are
    /// withheld there (a bound group is gone, or a name in `groups` never matched).
    pub fn withheld(&self) -> Vec<&AppPlanInfo> {
        self.apps.iter().filter(|a| a.skipped.is_none() && !a.scope_complete).collect()
    }
}

/// What an app with an incomplete scope does not get, in words.
pub const WITHHELD: &str =
    "its scope is incomplete (a bound group is gone, or a name in `groups` matches no IdP group): deactivations of users who are only out of scope are withheld";

fn describe(p: &PullState) -> String {
    match (&p.last_ok_run, &p.last_ok_at) {
        (Some(r), Some(at)) => format!("{} pull #{r} ({at})", p.source),
        _ => format!("{} (never pulled)", p.source),
    }
}

/// Why a plan run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `--app` names no app of the config.
    #[error(transparent)]
    UnknownApp(#[from] crate::config::UnknownApp),
    /// An app's `roles` names a role its profile cannot set.
    #[error("config file '{}': [app.{app}] key 'roles': profile {profile} cannot set role '{role}' (it conveys {conveys})", config.display())]
    Role {
        /// The config file.
        config: PathBuf,
        /// The app.
        app: String,
        /// Its profile.
        profile: String,
        /// The role.
        role: String,
        /// What the profile can set, in words.
        conveys: String,
    },
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The app's profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The drift engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The app's `roles` must be ones its profile can convey.
fn check_roles(config: &Config, app: &AppConfig, profile: &Profile) -> Result<(), PlanError> {
    for role in app.roles.keys() {
        let ok = match profile.roles.model {
            RoleModel::None => false,
            _ => profile.roles.settable.is_empty() || profile.roles.settable.iter().any(|r| r.eq_ignore_ascii_case(role)),
        };
        if !ok {
            return Err(PlanError::Role {
                config: config.path.clone(),
                app: app.name.clone(),
                profile: profile.name.clone(),
                role: role.clone(),
                conveys: match profile.roles.model {
                    RoleModel::None => "no roles".to_string(),
                    _ => format!("only {}", profile.roles.settable.join(", ")),
                },
            });
        }
    }
    Ok(())
}

/// What a plan has peaked at per user and per membership of the snapshots it reads: at 1M
/// users a side (1.99M users, 9.8M memberships) a steady plan peaked at 718–852 MiB and the
/// first plan of a store at 779–975 MiB, the pages of the columnar copies it maps counted
/// (released after decoding and after each query); how high depends on which drift queries
/// the two streams run side by side. These give 981 MiB there.
const PLAN_PER_USER: u64 = 360;
const PLAN_PER_MEMBERSHIP: u64 = 32;

/// Warn, before the engine starts, when the snapshots the plan reads are of a size whose plans
/// have peaked above the memory this process can have (`--memory-limit` when set, else the
/// container's or machine's): in a 1 GiB container the first plan of a 1M-user store is killed
/// by the kernel with no word of why, and a steady one thrashes.
fn warn_if_short_of_memory(store: &Store, snapshots: &BTreeMap<String, i64>) -> Result<(), PlanError> {
    let c = store.last_pull_totals(snapshots.keys().map(String::as_str))?;
    let (users, memberships) = (c.users, c.memberships);
    let needed = users * PLAN_PER_USER + memberships * PLAN_PER_MEMBERSHIP;
    let (ceiling, what) = crate::memory::ceiling();
    if needed > ceiling {
        tracing::warn!(
            "the snapshots this plan reads hold {users} users and {memberships} memberships; plans of that size have peaked near {} MiB, over the {} MiB {what}: the plan may be killed or run very slowly; give the job more memory",
            needed >> 20,
            ceiling >> 20
        );
    }
    Ok(())
}

/// Plan `app` (or every app): findings from the last successful snapshot of each side.
pub async fn plan(config: &Config, store: &mut Store, app: Option<&str>) -> Result<PlanOutcome, PlanError> {
    plan_with(config, store, app, false).await
}

/// [`plan`]; `after_refresh`: the app's objects of interest were just refreshed one by one
/// (single-object reconcile), so an apply since its last full pull does not stop the plan.
pub async fn plan_with(config: &Config, store: &mut Store, app: Option<&str>, after_refresh: bool) -> Result<PlanOutcome, PlanError> {
    let selected: Vec<_> = match app {
        Some(name) => vec![config.require_app(name)?],
        None => config.apps.iter().collect(),
    };
    let mut profiles = Vec::new();
    for a in &selected {
        let profile = Profile::of_app(&a.profile, store.service_provider_config(&a.source_name())?.as_deref())?;
        check_roles(config, a, &profile)?;
        profiles.push(profile);
    }
    let mut infos = Vec::new();
    let mut inputs = Vec::new();
    let mut snapshots = BTreeMap::new();
    let mut timings: Vec<(String, f64)> = Vec::new();
    let started = std::time::Instant::now();
    for (a, profile) in selected.iter().copied().zip(&profiles) {
        let custom = &config.idp_of(a).custom_attributes;
        let mappings = profile.effective_mappings(&a.mappings, custom)?;
        let (info, input) = check_app(store, a, profile, mappings, after_refresh, &mut snapshots)?;
        infos.push(info);
        inputs.extend(input);
    }

    stage_done(&mut timings, "store/links and state", started);
    warn_if_short_of_memory(store, &snapshots)?;
    let run_id = store.start_run("plan", app.map(|a| format!("app.{a}")).as_deref())?;
    // Links and findings are stored by a writer of their own, in one transaction: the links as
    // soon as correlation has made them (a first plan's million, while the engine finds drift),
    // the findings as soon as they are sorted (while the engine reads the planner's inputs), and
    // the commit once the engine has succeeded, while the planner, which reads only snapshots
    // (and takes the links from the engine), works on a read-only connection beside it.
    let (parts, writer) = spawn_plan_writer(store.path(), run_id);
    let engine_started = std::time::Instant::now();
    let result = engine::drift_reporting(
        store.path(),
        &inputs,
        |c| {
            let _ = parts.send(PlanPart::Correlated(c));
        },
        |findings| {
            let _ = parts.send(PlanPart::Findings(findings));
        },
    )
    .await;
    stage_done(&mut timings, "engine", engine_started);
    let mut result = match result {
        Ok(r) => r,
        Err(e) => {
            drop(parts);
            // Its links and findings are rolled back; its own error, if any, is the lesser one.
            let _ = writer.join();
            store.fail_run(run_id, &e.to_string())?;
            return Err(e.into());
        }
    };
    timings.append(&mut result.timings);
    crate::memory::release_freed();

    let t = std::time::Instant::now();
    let _ = parts.send(PlanPart::Finished);
    drop(parts);
    let planned = plan_operations(store.path(), &inputs, &result);
    let (written, write_seconds) = writer.join().expect("storing the findings does not panic");
    let written = match written {
        Ok(stored) => stored,
        Err(e) => {
            store.fail_run(run_id, &e.to_string())?;
            return Err(e.into());
        }
    };
    assert!(written, "the writer is given the links, the findings and the engine's end");
    let planned = planned?;
    for (app, warnings) in planned.warnings {
        if let Some(info) = infos.iter_mut().find(|i| i.app == app) {
            info.warnings.extend(warnings);
        }
    }
    timings.push(("store/findings".into(), write_seconds));
    timings.push(("planner".into(), planned.seconds));
    stage_done(&mut timings, "store/findings ∥ planner", t);
    let t = std::time::Instant::now();
    let plan = Plan {
        plan_id: run_id,
        created_at: crate::time::now(),
        snapshots,
        operations: planned.operations,
    };
    store.insert_plan(&plan)?;
    let operations = plan.operations;
    stage_done(&mut timings, "store/operations", t);
    Ok(PlanOutcome {
        run_id,
        apps: infos,
        findings: std::sync::Arc::try_unwrap(result.findings).expect("the writer let go of the findings"),
        operations,
        timings,
    })
}

/// The plan writer's page cache: its links are written while the engine peaks, and what it
/// holds beyond this goes to the WAL file rather than stacking on the engine's memory. At 1M
/// users (975k new links) its commit took 0.30-0.34 s against 0.43-0.48 s with the store's
/// 256 MiB, and the first plan's peak was 774-868 MiB against 840-957 MiB.
const WRITER_CACHE_MIB: u32 = 16;

/// The plan writer's thread: whether it stored the plan run, and its seconds.
type PlanWriter = std::thread::JoinHandle<(Result<bool, StoreError>, f64)>;

/// What the plan writer is handed, in this order.
enum PlanPart {
    /// The links, as soon as correlation has made them.
    Correlated(engine::Correlated),
    /// The findings, as soon as they are in their order.
    Findings(std::sync::Arc<Vec<Finding>>),
    /// The engine succeeded.
    Finished,
}

/// A thread, with a connection of its own, that stores a plan run's links and findings in one
/// transaction as [`PlanPart`]s arrive ([`Store::write_plan`]). It returns whether it
/// stored them (not when the sender is dropped early: the engine failed) and the seconds it
/// took once the engine had ended.
fn spawn_plan_writer(path: &Path, run_id: i64) -> (std::sync::mpsc::Sender<PlanPart>, PlanWriter) {
    let (parts, received) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let writer = std::thread::spawn(move || {
        let finished_at = std::cell::Cell::new(None);
        let written = Store::open(&path).and_then(|mut store| {
            store.set_cache_mib(WRITER_CACHE_MIB)?;
            store.write_plan(
                run_id,
                || match received.recv() {
                    Ok(PlanPart::Correlated(c)) => Some(c),
                    _ => None,
                },
                || match received.recv() {
                    Ok(PlanPart::Findings(findings)) => Some(findings),
                    _ => None,
                },
                || match received.recv() {
                    Ok(PlanPart::Finished) => {
                        finished_at.set(Some(std::time::Instant::now()));
                        true
                    }
                    _ => false,
                },
            )
        });
        // The seconds from the engine's end on: what the plan waits for here.
        (written, finished_at.get().map_or(0.0, |t| t.elapsed().as_secs_f64()))
    });
    (parts, writer)
}

/// One app's two sides as a plan finds them: what limits its plan (a failed latest pull, an
/// incomplete scope, an apply since its last pull), and, when it can be planned, its links
/// brought up to date, its snapshots noted and its engine input.
fn check_app<'a>(
    store: &mut Store,
    a: &'a AppConfig,
    profile: &'a Profile,
    mappings: Vec<crate::mapping::Mapping>,
    after_refresh: bool,
    snapshots: &mut BTreeMap<String, i64>,
) -> Result<(AppPlanInfo, Option<AppInput<'a>>), PlanError> {
    let idp_source = format!("idp.{}", a.idp);
    let idp = store.pull_state(&idp_source)?;
    let sp = store.pull_state(&a.source_name())?;
    let mut warnings = Vec::new();
    // A mapping to an attribute the app's /Schemas does not declare would be refused on every
    // write: it is left out and said, like a config mistake.
    let mappings = match store.user_schema(&a.source_name())? {
        Some(declared) => {
            let (kept, missing): (Vec<_>, Vec<_>) = mappings
                .into_iter()
                .partition(|m| crate::scim::discovery::declares(&declared, &m.target));
            for m in missing {
                warnings.push(format!(
                    "mapping '{}': the app's /Schemas does not declare this attribute, so it is neither compared nor written; fix the mapping or the app's schema",
                    m.target
                ));
            }
            kept
        }
        None => mappings,
    };
    for side in [&idp, &sp] {
        if let Some(e) = &side.latest_failed {
            warnings.push(format!(
                "THE LATEST PULL OF {} FAILED; planning from its last successful snapshot. Error: {e}",
                side.source
            ));
        }
    }
    let (bound, unresolved) = store.binding_counts(&a.name, &idp_source)?;
    let scope_complete = bound > 0 && unresolved == 0;
    if unresolved > 0 {
        warnings.push(format!("{unresolved} bound group name(s) match no group in {idp_source}: no deactivation or deletion is planned for this app until `groups` is fixed"));
    } else if bound == 0 && idp.last_ok_run.is_some() {
        warnings.push(format!(
            "no bound groups resolved by {idp_source}: pull again after changing `groups`; no deactivation is planned"
        ));
    }
    let sp_pulled_at = match sp.last_ok_run {
        Some(run) => store.run_started_at(run)?,
        None => None,
    };
    let changed_since = match &sp_pulled_at {
        Some(at) if !after_refresh => store.changed_by_apply_after(&a.name, at)?,
        _ => None,
    };
    let skipped = if idp.last_ok_run.is_none() || sp.last_ok_run.is_none() {
        Some(format!(
            "needs a successful pull of both sides first: {}, {}",
            describe(&idp),
            describe(&sp)
        ))
    } else {
        changed_since.map(|at| format!("apply changed it at {at}, after its last pull ({}): pull it first", describe(&sp)))
    };
    let mut input = None;
    if skipped.is_none() {
        store.resolve_links(
            &a.name,
            &idp_source,
            &a.source_name(),
            profile.users.created_pending,
            sp_pulled_at.as_deref(),
        )?;
        snapshots.insert(idp_source.clone(), idp.last_ok_run.unwrap_or_default());
        snapshots.insert(a.source_name(), sp.last_ok_run.unwrap_or_default());
        input = Some(AppInput {
            config: a,
            idp_source,
            scope_complete,
            profile,
            mappings,
        });
    }
    let info = AppPlanInfo {
        app: a.name.clone(),
        idp,
        sp,
        scope_complete,
        skipped,
        warnings,
    };
    Ok((info, input))
}

/// The operations for every planned app's findings, numbered across apps.
struct Planned {
    operations: Vec<Operation>,
    /// Per app: findings that could not become an operation, and why.
    warnings: Vec<(String, Vec<String>)>,
    seconds: f64,
}

fn plan_operations(path: &Path, inputs: &[AppInput], result: &DriftResult) -> Result<Planned, PlanError> {
    let t = std::time::Instant::now();
    let store = Store::open_read_only(path)?;
    let (mut operations, mut warnings) = (Vec::new(), Vec::new());
    let mut next_seq = 1;
    let none = Default::default();
    let no_links = Default::default();
    let no_users = Default::default();
    let no_values = Default::default();
    for input in inputs {
        let name = &input.config.name;
        let findings: Vec<&Finding> = result.findings.iter().filter(|f| &f.app == name).collect();
        let planned = plan_app(
            &store,
            &AppPlanning {
                config: input.config,
                profile: input.profile,
                new_group_members: result.new_group_members.get(name).unwrap_or(&none),
                member_links: result.member_links.get(name).unwrap_or(&no_links),
                idp_users: result.idp_users.get(name).unwrap_or(&no_users),
                mappings: &input.mappings,
                mapped_creates: result.mapped_creates.get(name).unwrap_or(&no_values),
            },
            &findings,
            &mut next_seq,
        )?;
        warnings.push((name.clone(), planned.warnings));
        // Taken, not moved over, when it is the first (at 1M users moving 180k operations took
        // 0.02 s).
        if operations.is_empty() {
            operations = planned.operations;
        } else {
            operations.extend(planned.operations);
        }
    }
    Ok(Planned {
        operations,
        warnings,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Record a plan stage's time (for `-v plan`) and log it with the process's memory.
fn stage_done(timings: &mut Vec<(String, f64)>, stage: &str, started: std::time::Instant) {
    let seconds = started.elapsed().as_secs_f64();
    tracing::debug!(stage, seconds, memory = %crate::memory::resident(), "plan stage done");
    timings.push((stage.into(), seconds));
}
