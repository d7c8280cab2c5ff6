//! `scimsync reconcile`: one cycle is pull → plan → apply with every guard of apply. Apps whose
//! cycles keep failing are quarantined (retried at growing intervals) while the others go on.
//! The loop, the store lock and the metrics file live here too; the CLI only prints.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::{ApplyError, ApplyOptions};
use crate::config::{Config, DeactivationLimit};
use crate::source::ProgressSink;
use crate::store::Store;

/// What happened to one app in one cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AppState {
    InSync,
    Applied {
        done: u64,
        failed: u64,
    },
    /// The deactivation guard refused (a person decides; not a failure).
    Blocked {
        reason: String,
    },
    /// A pull of either side failed this cycle: nothing applied from an old snapshot.
    PullFailed {
        error: String,
    },
    NotPlanned {
        reason: String,
    },
    Quarantined {
        until: String,
    },
    /// Planned and applied, but with an incomplete scope: the deactivations a loss of scope
    /// would cause were withheld (a person fixes `groups` or the IdP).
    HeldBack {
        done: u64,
        failed: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AppCycle {
    pub app: String,
    pub state: AppState,
    pub findings: BTreeMap<crate::vocab::FindingKind, u64>,
    pub operations: u64,
    pub consecutive_failures: i64,
    pub last_success_at: Option<String>,
    pub quarantined_until: Option<String>,
}

impl AppCycle {
    pub fn summary(&self) -> String {
        let n: u64 = self.findings.values().sum();
        match &self.state {
            AppState::InSync => format!("app {}: in sync ({n} findings, none to apply)", self.app),
            AppState::Applied { done, failed } => format!(
                "app {}: {n} findings, {} operations: {done} done, {failed} failed",
                self.app, self.operations
            ),
            AppState::Blocked { reason } => format!("app {}: blocked: {reason}", self.app),
            AppState::PullFailed { error } => format!(
                "app {}: not applied: this cycle's pull failed ({error}); {} consecutive failed cycle(s)",
                self.app, self.consecutive_failures
            ),
            AppState::NotPlanned { reason } => format!("app {}: not planned: {reason}", self.app),
            AppState::HeldBack { done, failed, reason } => format!(
                "app {}: {n} findings, {} operations: {done} done, {failed} failed; HELD BACK: {reason}",
                self.app, self.operations
            ),
            AppState::Quarantined { until } => format!(
                "app {}: QUARANTINED after {} failed cycles; next try after {until}",
                self.app, self.consecutive_failures
            ),
        }
    }

    fn failed(&self) -> bool {
        matches!(
            self.state,
            AppState::PullFailed { .. } | AppState::Applied { failed: 1.., .. } | AppState::HeldBack { failed: 1.., .. }
        )
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CycleReport {
    pub plan_id: Option<i64>,
    pub apps: Vec<AppCycle>,
    pub pull_seconds: f64,
    pub plan_seconds: f64,
    pub apply_seconds: f64,
}

impl CycleReport {
    /// Exit code of a one-shot run: 1 failed operations, 2 held back, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.apps.iter().any(|a| {
            matches!(
                a.state,
                AppState::Applied { failed: 1.., .. } | AppState::HeldBack { failed: 1.., .. }
            )
        }) {
            1
        } else if self.apps.iter().any(|a| {
            matches!(
                a.state,
                AppState::Blocked { .. }
                    | AppState::PullFailed { .. }
                    | AppState::NotPlanned { .. }
                    | AppState::Quarantined { .. }
                    | AppState::HeldBack { .. }
            )
        }) {
            2
        } else {
            0
        }
    }
}

pub struct CycleOptions {
    pub app: Option<String>,
    pub max_deactivations: Option<DeactivationLimit>,
    pub force: bool,
    pub stop: Option<Arc<AtomicBool>>,
    /// Consecutive failed cycles after which an app is quarantined.
    pub quarantine_after: i64,
    /// The first quarantine lasts this long; each further failure doubles it (capped at a day).
    pub quarantine_base: Duration,
}

impl CycleOptions {
    /// The apply options of this run for one app.
    fn apply_options(&self, app: &str) -> ApplyOptions {
        ApplyOptions {
            app: Some(app.to_string()),
            concurrency: None,
            max_deactivations: self.max_deactivations,
            force: self.force,
            stop: self.stop.clone(),
        }
    }
}

fn quarantine_until(n: i64, after: i64, base: Duration) -> Option<String> {
    if n < after {
        return None;
    }
    let factor = 1u32 << (n - after).clamp(0, 16) as u32;
    let wait = base.saturating_mul(factor).min(Duration::from_secs(86_400));
    let until = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    Some(until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// Why a reconcile cycle or a single-object reconcile could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// `--app` names no app of the config.
    #[error("no app '{app}' in {}", config.display())]
    UnknownApp {
        /// The name asked for.
        app: String,
        /// The config file.
        config: PathBuf,
    },
    /// A single-object reconcile before any full pull.
    #[error("single-object reconcile needs a full pull of {idp_name} and {app_source} first: run `scimsync reconcile` or `scimsync pull`")]
    NotPulled {
        /// The IdP's source name.
        idp_name: String,
        /// The app's source name.
        app_source: String,
    },
    /// The user or group to reconcile is not in the IdP.
    #[error("no {what} '{name}' in {source_name} (a {what} deleted in the IdP is handled by the next full cycle)")]
    NotInIdp {
        /// `user` or `group`.
        what: &'static str,
        /// The login or group name given.
        name: String,
        /// The IdP's source name.
        source_name: String,
    },
    /// The group is not in the app's `groups`.
    #[error("group '{group}' is not bound to app '{app}' (not in its `groups`): nothing to reconcile")]
    NotBound {
        /// The group's name in the IdP.
        group: String,
        /// The app.
        app: String,
    },
    /// The group is not among the app's assignments as of the last full pull.
    #[error("group '{group}' is not among app '{app}''s assignments in {source_name} as of the last full pull: run a full `scimsync reconcile` (or `pull`) to read them")]
    NotAssigned {
        /// The group's name in the IdP.
        group: String,
        /// The app.
        app: String,
        /// The IdP's source name.
        source_name: String,
    },
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading a source.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Planning.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// Applying.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Run one cycle.
pub async fn cycle(config: &Config, store_path: &Path, opts: &CycleOptions) -> Result<CycleReport, ReconcileError> {
    let mut store = Store::open(store_path)?;
    let mut report = CycleReport::default();
    // Each cycle is a run of its own for the retry budget: a throttling app spends this
    // cycle's budget, and the next cycle starts afresh.
    crate::http::start_retry_budget_run();
    let now = crate::time::now();
    // Quarantined apps sit this cycle out (and are not even pulled) until their time comes.
    let mut active = config.clone();
    let mut benched = Vec::new();
    active.apps.retain(|a| opts.app.as_ref().is_none_or(|want| want == &a.name));
    if let Some(want) = &opts.app {
        if active.apps.is_empty() {
            return Err(ReconcileError::UnknownApp {
                app: want.clone(),
                config: config.path.clone(),
            });
        }
    }
    let mut kept = Vec::new();
    for a in active.apps.drain(..) {
        let h = store.app_health(&a.name)?;
        match &h.quarantined_until {
            Some(until) if until.as_str() > now.as_str() => benched.push(AppCycle {
                app: a.name.clone(),
                state: AppState::Quarantined { until: until.clone() },
                findings: BTreeMap::new(),
                operations: 0,
                consecutive_failures: h.consecutive_failures,
                last_success_at: h.last_success_at.clone(),
                quarantined_until: Some(until.clone()),
            }),
            _ => kept.push(a),
        }
    }
    active.apps = kept;
    let used_idps: Vec<String> = active.apps.iter().map(|a| a.idp.clone()).collect();
    active.idps.retain(|i| used_idps.contains(&i.name));

    let t = Instant::now();
    let quiet = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
    let pulls = if active.apps.is_empty() {
        Vec::new()
    } else {
        crate::pull::pull(&active, &mut store, None, &quiet).await?
    };
    report.pull_seconds = t.elapsed().as_secs_f64();
    let pull_error = |source: &str| {
        pulls
            .iter()
            .find(|p| p.source == source)
            .and_then(|p| p.result.as_ref().err().cloned())
    };

    let t = Instant::now();
    let plan = if active.apps.is_empty() {
        None
    } else {
        Some(crate::plan::plan(&active, &mut store, None).await?)
    };
    report.plan_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if let Some(plan) = &plan {
        report.plan_id = Some(plan.run_id);
        for info in &plan.apps {
            let app = &info.app;
            let mut findings = BTreeMap::new();
            for f in plan.findings.iter().filter(|f| &f.app == app) {
                *findings.entry(f.kind).or_insert(0u64) += 1;
            }
            let operations = plan.operations.iter().filter(|o| &o.app == app).count() as u64;
            let pull_failed = pull_error(&info.sp.source).or_else(|| pull_error(&info.idp.source));
            let state = if let Some(error) = pull_failed {
                AppState::PullFailed { error }
            } else if let Some(reason) = &info.skipped {
                AppState::NotPlanned { reason: reason.clone() }
            } else if operations == 0 && info.scope_complete {
                AppState::InSync
            } else {
                let applied = if operations == 0 {
                    Ok((0, 0))
                } else {
                    match crate::apply::apply(&active, Store::open(store_path)?, plan.run_id, &opts.apply_options(app)).await {
                        Ok(r) => Ok((r.done(), r.failed())),
                        Err(e @ ApplyError::Guard { .. }) => Err(e.to_string()),
                        Err(e) => return Err(e.into()),
                    }
                };
                match applied {
                    Err(reason) => AppState::Blocked { reason },
                    Ok((done, failed)) if info.scope_complete => AppState::Applied { done, failed },
                    Ok((done, failed)) => AppState::HeldBack {
                        done,
                        failed,
                        reason: crate::plan::WITHHELD.to_string(),
                    },
                }
            };
            let mut c = AppCycle {
                app: app.clone(),
                state,
                findings,
                operations,
                consecutive_failures: 0,
                last_success_at: None,
                quarantined_until: None,
            };
            if c.failed() {
                let error = c.summary();
                store.app_failed(app, &error, |n| quarantine_until(n, opts.quarantine_after, opts.quarantine_base))?;
            } else if matches!(c.state, AppState::InSync | AppState::Applied { .. } | AppState::HeldBack { .. }) {
                store.app_succeeded(app)?;
            }
            let h = store.app_health(app)?;
            c.consecutive_failures = h.consecutive_failures;
            c.last_success_at = h.last_success_at;
            c.quarantined_until = h.quarantined_until;
            report.apps.push(c);
        }
    }
    report.apply_seconds = t.elapsed().as_secs_f64();
    report.apps.extend(benched);
    report.apps.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(report)
}

/// Prometheus text exposition of a cycle.
pub fn metrics(report: &CycleReport) -> String {
    let mut out = String::new();
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    out.push_str("# HELP scimsync_findings Findings of the last cycle by app and kind.\n# TYPE scimsync_findings gauge\n");
    for a in &report.apps {
        for (kind, n) in &a.findings {
            out.push_str(&format!(
                "scimsync_findings{{app=\"{}\",kind=\"{}\"}} {n}\n",
                esc(&a.app),
                esc(kind.as_str())
            ));
        }
    }
    out.push_str("# HELP scimsync_operations Operations of the last cycle by outcome.\n# TYPE scimsync_operations gauge\n");
    for a in &report.apps {
        let (done, failed) = match a.state {
            AppState::Applied { done, failed } | AppState::HeldBack { done, failed, .. } => (done, failed),
            _ => (0, 0),
        };
        out.push_str(&format!("scimsync_operations{{app=\"{}\",outcome=\"done\"}} {done}\n", esc(&a.app)));
        out.push_str(&format!(
            "scimsync_operations{{app=\"{}\",outcome=\"failed\"}} {failed}\n",
            esc(&a.app)
        ));
    }
    out.push_str(
        "# HELP scimsync_cycle_duration_seconds Duration of the last cycle's stages.\n# TYPE scimsync_cycle_duration_seconds gauge\n",
    );
    for (stage, s) in [
        ("pull", report.pull_seconds),
        ("plan", report.plan_seconds),
        ("apply", report.apply_seconds),
    ] {
        out.push_str(&format!("scimsync_cycle_duration_seconds{{stage=\"{stage}\"}} {s:.3}\n"));
    }
    out.push_str("# HELP scimsync_last_success_timestamp_seconds Last cycle that left the app in sync or applied.\n# TYPE scimsync_last_success_timestamp_seconds gauge\n");
    for a in &report.apps {
        if let Some(t) = a
            .last_success_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            out.push_str(&format!(
                "scimsync_last_success_timestamp_seconds{{app=\"{}\"}} {}\n",
                esc(&a.app),
                t.timestamp()
            ));
        }
    }
    out.push_str("# HELP scimsync_app_quarantined 1 while the app is quarantined.\n# TYPE scimsync_app_quarantined gauge\n");
    out.push_str("# HELP scimsync_app_consecutive_failures Failed cycles in a row.\n# TYPE scimsync_app_consecutive_failures gauge\n");
    for a in &report.apps {
        let q = u8::from(a.quarantined_until.is_some());
        out.push_str(&format!("scimsync_app_quarantined{{app=\"{}\"}} {q}\n", esc(&a.app)));
        out.push_str(&format!(
            "scimsync_app_consecutive_failures{{app=\"{}\"}} {}\n",
            esc(&a.app),
            a.consecutive_failures
        ));
    }
    out
}

pub use crate::time::parse_duration;

/// Sleep `base` ± 10 %, waking early when `stop` is set. Returns false when stopped.
pub async fn pause(base: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + base.mul_f64(0.9 + 0.2 * rand::random::<f64>());
    while Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100).min(deadline - Instant::now())).await;
    }
    !stop.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn a_held_back_app_counts_its_operations_in_the_metrics() {
        let report = CycleReport {
            apps: vec![AppCycle {
                app: "wiki".into(),
                state: AppState::HeldBack {
                    done: 3,
                    failed: 1,
                    reason: crate::plan::WITHHELD.into(),
                },
                findings: BTreeMap::new(),
                operations: 4,
                consecutive_failures: 1,
                last_success_at: None,
                quarantined_until: None,
            }],
            ..CycleReport::default()
        };
        let text = metrics(&report);
        assert!(text.contains("scimsync_operations{app=\"wiki\",outcome=\"done\"} 3"), "{text}");
        assert!(text.contains("scimsync_operations{app=\"wiki\",outcome=\"failed\"} 1"), "{text}");
        assert_eq!(report.exit_code(), 1, "a failed operation wins over held back");
        assert!(report.apps[0].summary().contains("HELD BACK"));
    }

    #[test]
    fn quarantine_grows_and_is_capped() {
        assert!(quarantine_until(2, 3, Duration::from_secs(60)).is_none());
        assert!(quarantine_until(3, 3, Duration::from_secs(60)).is_some());
        let far = quarantine_until(40, 3, Duration::from_secs(60)).unwrap();
        let limit = (chrono::Utc::now() + chrono::Duration::hours(25)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        assert!(far < limit, "capped at a day: {far}");
    }
}

/// The object of a single-object reconcile.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A user by login (userName, else email).
    User(&'a str),
    /// A group by display name.
    Group(&'a str),
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(login) => write!(f, "user {login}"),
            Target::Group(name) => write!(f, "group {name}"),
        }
    }
}

/// What a single-object reconcile did.
#[derive(Debug, serde::Serialize)]
pub struct ObjectReconcile {
    pub app: String,
    pub object: String,
    pub findings: Vec<crate::engine::Finding>,
    pub operations: u64,
    pub done: u64,
    pub failed: u64,
    pub blocked: Option<String>,
    /// What the refresh could not cover (members new to the store and not found, …).
    pub notes: Vec<String>,
}

/// The ids a refresh found for the object on each side.
struct Refreshed {
    idp_id: String,
    sp_id: Option<String>,
    notes: Vec<String>,
}

/// Refresh one object on both sides (the IdP's by login or name, the app's through its link or
/// by login or name), plan the app, and apply only the operations on that object: for a user,
/// its `user.*` operations (group memberships as of the last full pull); for a group, its
/// `group.*` operations and the creation of the accounts its members need. Operations on
/// anything else are marked skipped in the plan, for the next full cycle.
pub async fn reconcile_object(
    config: &Config,
    store_path: &Path,
    app_name: &str,
    target: Target<'_>,
    opts: &CycleOptions,
) -> Result<ObjectReconcile, ReconcileError> {
    let app = config.app(app_name).ok_or_else(|| ReconcileError::UnknownApp {
        app: app_name.to_string(),
        config: config.path.clone(),
    })?;
    let idp = config.idp_of(app);
    let (idp_name, app_source) = (idp.source_name(), app.source_name());
    let mut store = Store::open(store_path)?;
    if store.pull_state(&idp_name)?.last_ok_run.is_none() || store.pull_state(&app_source)?.last_ok_run.is_none() {
        return Err(ReconcileError::NotPulled { idp_name, app_source });
    }
    let source = crate::source::idp_source(idp)?;
    let client = crate::source::app::scim_client(&app_source, &app.http)?;
    let refreshed = match target {
        Target::User(login) => refresh_user(&mut store, source.as_ref(), &client, app, login).await?,
        Target::Group(name) => refresh_group(&mut store, source.as_ref(), &client, app, name).await?,
    };
    crate::engine::columnar::invalidate(store_path, &idp_name);
    crate::engine::columnar::invalidate(store_path, &app_source);

    let plan = crate::plan::plan_with(config, &mut store, Some(&app.name), true).await?;
    let about_groups = matches!(target, Target::Group(_));
    let concerns = |idp_id: &Option<String>, sp: &Option<String>| {
        idp_id.as_deref() == Some(refreshed.idp_id.as_str()) || (sp.is_some() && sp == &refreshed.sp_id)
    };
    let mut keep: Vec<i64> = Vec::new();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for o in plan
        .operations
        .iter()
        .filter(|o| o.action.is_group() == about_groups && concerns(&o.idp_id, &o.sp_id))
    {
        keep.push(o.seq);
        if let Some(body) = &o.body {
            crate::plan::referenced_users(&body.value(), &mut referenced);
        }
    }
    // Members without an account yet: their creation comes with the group.
    keep.extend(
        plan.operations
            .iter()
            .filter(|o| o.action == crate::vocab::Action::UserCreate && o.idp_id.as_ref().is_some_and(|id| referenced.contains(id)))
            .map(|o| o.seq),
    );
    store.skip_operations_except(plan.run_id, &keep, &format!("single-object reconcile of {target}"))?;
    let findings: Vec<_> = plan
        .findings
        .into_iter()
        .filter(|f| f.kind.is_group() == about_groups && concerns(&f.idp_id, &f.sp_id))
        .collect();
    let mut out = ObjectReconcile {
        app: app.name.clone(),
        object: target.to_string(),
        findings,
        operations: keep.len() as u64,
        done: 0,
        failed: 0,
        blocked: None,
        notes: refreshed.notes,
    };
    if keep.is_empty() {
        return Ok(out);
    }
    match crate::apply::apply(config, Store::open(store_path)?, plan.run_id, &opts.apply_options(&app.name)).await {
        Ok(r) => {
            out.done = r.done();
            out.failed = r.failed();
        }
        Err(e @ ApplyError::Guard { .. }) => out.blocked = Some(e.to_string()),
        Err(e) => return Err(e.into()),
    }
    Ok(out)
}

async fn refresh_user(
    store: &mut Store,
    source: &dyn crate::source::IdpSource,
    client: &crate::sp::ScimClient,
    app: &crate::config::AppConfig,
    login: &str,
) -> Result<Refreshed, ReconcileError> {
    let user = source.fetch_user(login).await?.ok_or_else(|| ReconcileError::NotInIdp {
        what: "user",
        name: login.to_string(),
        source_name: source.name().to_string(),
    })?;
    store.refresh_user(source.name(), &user)?;
    let linked = store
        .user_links_of(&app.name, &std::collections::HashSet::from([user.id.as_str()]))?
        .remove(&user.id);
    let account = match &linked {
        Some(sp) => crate::source::app::fetch_user_by_id(client, sp).await?,
        None => crate::source::app::fetch_user(client, login).await?,
    };
    if let Some(a) = &account {
        store.refresh_user(&app.source_name(), a)?;
    }
    Ok(Refreshed {
        idp_id: user.id,
        sp_id: account.map(|a| a.id).or(linked),
        notes: Vec::new(),
    })
}

async fn refresh_group(
    store: &mut Store,
    source: &dyn crate::source::IdpSource,
    client: &crate::sp::ScimClient,
    app: &crate::config::AppConfig,
    name: &str,
) -> Result<Refreshed, ReconcileError> {
    let (group, members) = source.fetch_group(name).await?.ok_or_else(|| ReconcileError::NotInIdp {
        what: "group",
        name: name.to_string(),
        source_name: source.name().to_string(),
    })?;
    // The binding, resolved as a full pull would: a group bound in the config since the last
    // full pull is bound now; a group the app is not bound to is an error, never a quiet
    // "nothing to do".
    match &app.idp_app_id {
        None => {
            let Some(bound_as) = app.groups.iter().find(|n| **n == group.display_name || n.as_str() == name) else {
                return Err(ReconcileError::NotBound {
                    group: group.display_name,
                    app: app.name.clone(),
                });
            };
            if store.bind_group(&app.name, source.name(), bound_as, &group.id)? {
                tracing::info!(
                    "app '{}': bound group '{bound_as}' resolved to {} ({})",
                    app.name,
                    group.id,
                    source.name()
                );
            }
        }
        Some(_) => {
            if !store
                .resolved_bindings(source.name())?
                .iter()
                .any(|(a, _, id)| *a == app.name && *id == group.id)
            {
                return Err(ReconcileError::NotAssigned {
                    group: group.display_name,
                    app: app.name.clone(),
                    source_name: source.name().to_string(),
                });
            }
        }
    }
    let mut notes = Vec::new();
    let r = store.refresh_group(source.name(), &group, &members)?;
    if !r.unknown_members.is_empty() {
        // Members that joined the IdP since the last full pull: read them, then the memberships.
        for u in source.fetch_users_by_id(&r.unknown_members).await? {
            store.refresh_user(source.name(), &u)?;
        }
        let again = store.refresh_group(source.name(), &group, &members)?;
        if !again.unknown_members.is_empty() {
            notes.push(format!(
                "{} member id(s) of {} name no user: {}",
                again.unknown_members.len(),
                source.name(),
                again.unknown_members.join(", ")
            ));
        }
    }
    let app_source = app.source_name();
    let linked = store.group_links(&app.name)?.get(&group.id).cloned();
    let sp_group = match &linked {
        Some(sp) => crate::source::app::fetch_group_by_id(client, sp).await?,
        None => crate::source::app::fetch_group(client, &group.display_name, app.http.page_size).await?,
    };
    if let Some((g, sp_members)) = &sp_group {
        let r = store.refresh_group(&app_source, g, sp_members)?;
        if !r.unknown_members.is_empty() {
            for id in &r.unknown_members {
                if let Some(a) = crate::source::app::fetch_user_by_id(client, id).await? {
                    store.refresh_user(&app_source, &a)?;
                }
            }
            store.refresh_group(&app_source, g, sp_members)?;
        }
    }
    Ok(Refreshed {
        idp_id: group.id,
        sp_id: sp_group.map(|(g, _)| g.id).or(linked),
        notes,
    })
}
