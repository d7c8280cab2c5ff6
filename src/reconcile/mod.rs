//! `scimsync reconcile`: one cycle is pull → plan → apply with every guard of apply. Apps whose
//! cycles keep failing are quarantined (retried at growing intervals) while the others go on.
//! Here: the cycle and its report; [`metrics`]: the report as Prometheus text; [`object`]: the
//! single-object reconcile of one user or group. The CLI only prints.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::{ApplyError, ApplyOptions};
use crate::config::{Config, DeactivationLimit};
use crate::source::ProgressSink;
use crate::store::Store;

mod metrics;
mod object;

pub use metrics::metrics;
pub use object::{reconcile_object, ObjectReconcile, Target};

/// What happened to one app in one cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AppState {
    /// Nothing to do: the app matches the IdP.
    InSync,
    /// Planned and applied.
    Applied {
        /// Operations done.
        done: u64,
        /// Operations failed.
        failed: u64,
    },
    /// The deactivation guard refused (a person decides; not a failure).
    Blocked {
        /// Why.
        reason: String,
    },
    /// A pull of either side failed this cycle: nothing applied from an old snapshot.
    PullFailed {
        /// The pull's error.
        error: String,
    },
    /// Not planned (no complete pull of both sides, an apply since the last pull).
    NotPlanned {
        /// Why.
        reason: String,
    },
    /// Sat the cycle out: failing cycles quarantined it.
    Quarantined {
        /// Until when.
        until: String,
    },
    /// Planned and applied, but with an incomplete scope: the deactivations a loss of scope
    /// would cause were withheld (a person fixes `groups` or the IdP).
    HeldBack {
        /// Operations done.
        done: u64,
        /// Operations failed.
        failed: u64,
        /// Why deactivations were withheld.
        reason: String,
    },
}

/// One app's cycle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppCycle {
    /// The app.
    pub app: String,
    /// What happened.
    pub state: AppState,
    /// Its findings, by kind.
    pub findings: BTreeMap<crate::vocab::FindingKind, u64>,
    /// Its planned operations.
    pub operations: u64,
    /// Cycles failed in a row.
    pub consecutive_failures: i64,
    /// The last cycle that succeeded.
    pub last_success_at: Option<String>,
    /// Until when it is quarantined.
    pub quarantined_until: Option<String>,
}

impl AppCycle {
    /// One line for people.
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

/// One cycle.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CycleReport {
    /// Its plan, when it made one.
    pub plan_id: Option<i64>,
    /// Each app.
    pub apps: Vec<AppCycle>,
    /// Seconds pulling.
    pub pull_seconds: f64,
    /// Seconds planning.
    pub plan_seconds: f64,
    /// Seconds applying.
    pub apply_seconds: f64,
    /// Seconds pruning (retention, after the apply).
    pub prune_seconds: f64,
    /// What the prune after the cycle did (None: it failed, which the log says; the cycle stands).
    pub pruned: Option<crate::retention::Pruned>,
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

/// What a cycle does.
pub struct CycleOptions {
    /// Only this app.
    pub app: Option<String>,
    /// The guard's limit, over the config's.
    pub max_deactivations: Option<DeactivationLimit>,
    /// Past the guard.
    pub force: bool,
    /// Set to stop between apps.
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
    #[error(transparent)]
    UnknownApp(#[from] crate::config::UnknownApp),
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
    let (active, benched) = this_cycles_apps(config, &store, opts)?;

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
    if let Some(mut plan) = plan {
        report.plan_id = Some(plan.run_id);
        let mut counts = PlanCounts::of(&plan);
        // What the apply reads is in the store: the plan's findings and operations, and the
        // pages this connection read while planning, go back before it starts.
        let (run_id, apps) = (plan.run_id, std::mem::take(&mut plan.apps));
        drop(plan);
        store.release_memory()?;
        for info in &apps {
            let app = &info.app;
            let (findings, operations) = counts.take(app);
            let state = match pull_error(&info.sp.source).or_else(|| pull_error(&info.idp.source)) {
                Some(error) => AppState::PullFailed { error },
                None => plan_and_apply(&active, store_path, run_id, info, operations, opts).await?,
            };
            let c = AppCycle {
                app: app.clone(),
                state,
                findings,
                operations,
                consecutive_failures: 0,
                last_success_at: None,
                quarantined_until: None,
            };
            report.apps.push(record_health(&mut store, c, opts)?);
        }
    }
    report.apply_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    report.pruned = prune_after_cycle(config, &mut store);
    report.prune_seconds = t.elapsed().as_secs_f64();
    report.apps.extend(benched);
    report.apps.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(report)
}

/// A plan's findings by app and kind, and its operations by app: all a cycle's report needs of
/// them once the plan is stored.
#[derive(Default)]
struct PlanCounts {
    findings: BTreeMap<String, BTreeMap<crate::vocab::FindingKind, u64>>,
    operations: BTreeMap<String, u64>,
}

impl PlanCounts {
    fn of(plan: &crate::plan::PlanOutcome) -> PlanCounts {
        let mut counts = PlanCounts::default();
        for f in &plan.findings {
            *counts.findings.entry(f.app.clone()).or_default().entry(f.kind).or_insert(0) += 1;
        }
        for o in &plan.operations {
            *counts.operations.entry(o.app.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// One app's findings by kind and its number of operations.
    fn take(&mut self, app: &str) -> (BTreeMap<crate::vocab::FindingKind, u64>, u64) {
        (
            self.findings.remove(app).unwrap_or_default(),
            self.operations.remove(app).unwrap_or(0),
        )
    }
}

/// How long the prune after a cycle may take; what is left goes at the next cycle.
const PRUNE_BUDGET: Duration = Duration::from_secs(5);
/// Pages a cycle hands back at most (100 MiB of 4 KiB pages).
const PRUNE_VACUUM_PAGES: u32 = 25_600;

/// Retention after the cycle (its apply is over: a prune never holds one up), in a bounded time.
/// A failed prune is logged and does not fail the cycle.
fn prune_after_cycle(config: &Config, store: &mut Store) -> Option<crate::retention::Pruned> {
    let opts = crate::store::PruneOptions {
        now: chrono::Utc::now(),
        dry_run: false,
        budget: Some(PRUNE_BUDGET),
        vacuum: crate::store::Vacuum::Bounded(PRUNE_VACUUM_PAGES),
    };
    match crate::retention::prune(store, &config.retention, &opts) {
        Ok(p) => {
            if p.store.rows() > 0 || p.copies_removed.0 > 0 {
                tracing::info!(
                    rows = p.store.rows(),
                    freed_bytes = p.store.freed_bytes,
                    returned_bytes = p.store.returned_bytes,
                    "pruned after the cycle"
                );
            }
            Some(p)
        }
        Err(e) => {
            tracing::warn!("prune after the cycle failed (the cycle stands): {e}");
            None
        }
    }
}

/// The apps this cycle runs (those `--app` selects, less the quarantined, whose time has not
/// come: they sit the cycle out and are not even pulled), with the IdPs they use; and the
/// quarantined apps' entries for the report.
fn this_cycles_apps(config: &Config, store: &Store, opts: &CycleOptions) -> Result<(Config, Vec<AppCycle>), ReconcileError> {
    let now = crate::time::now();
    let mut active = config.clone();
    let mut benched = Vec::new();
    active.apps.retain(|a| opts.app.as_ref().is_none_or(|want| want == &a.name));
    if let Some(want) = &opts.app {
        if active.apps.is_empty() {
            config.require_app(want)?;
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
    Ok((active, benched))
}

/// A pulled app's state after its plan: not planned, in sync, or applied (blocked by the
/// guard, or held back when its scope is incomplete).
async fn plan_and_apply(
    active: &Config,
    store_path: &Path,
    plan_id: i64,
    info: &crate::plan::AppPlanInfo,
    operations: u64,
    opts: &CycleOptions,
) -> Result<AppState, ReconcileError> {
    if let Some(reason) = &info.skipped {
        return Ok(AppState::NotPlanned { reason: reason.clone() });
    }
    if operations == 0 && info.scope_complete {
        return Ok(AppState::InSync);
    }
    let applied = if operations == 0 {
        Ok((0, 0))
    } else {
        match crate::apply::apply(active, Store::open(store_path)?, plan_id, &opts.apply_options(&info.app)).await {
            Ok(r) => Ok((r.done(), r.failed())),
            Err(e @ ApplyError::Guard { .. }) => Err(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(match applied {
        Err(reason) => AppState::Blocked { reason },
        Ok((done, failed)) if info.scope_complete => AppState::Applied { done, failed },
        Ok((done, failed)) => AppState::HeldBack {
            done,
            failed,
            reason: crate::plan::WITHHELD.to_string(),
        },
    })
}

/// Record the app's cycle in its health (a failure counts toward quarantine) and give the
/// cycle its health as it stands now.
fn record_health(store: &mut Store, mut c: AppCycle, opts: &CycleOptions) -> Result<AppCycle, ReconcileError> {
    if c.failed() {
        let error = c.summary();
        store.app_failed(&c.app, &error, |n| quarantine_until(n, opts.quarantine_after, opts.quarantine_base))?;
    } else if matches!(c.state, AppState::InSync | AppState::Applied { .. } | AppState::HeldBack { .. }) {
        store.app_succeeded(&c.app)?;
    }
    let h = store.app_health(&c.app)?;
    c.consecutive_failures = h.consecutive_failures;
    c.last_success_at = h.last_success_at;
    c.quarantined_until = h.quarantined_until;
    Ok(c)
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
