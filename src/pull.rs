//! `scimsync pull`: fetch every selected source concurrently, then write each complete snapshot
//! in its own transaction; when their last pulls say every snapshot held at once would pass the
//! memory limit, fetch and write one source at a time. A source that fails leaves its previous
//! snapshot untouched and its run marked failed; the other sources are still written.
use std::borrow::Cow;
use std::time::Instant;

use futures::future::join_all;

use crate::config::{AppConfig, Config, IdpConfig};
use crate::model::{Baseline, Snapshot};
use crate::source::{self, Progress, ProgressSink, SourceError};
use crate::store::{SnapshotCounts, SourceInfo, Store, StoreError};

/// The outcome of pulling one source.
#[derive(Debug)]
pub struct PullOutcome {
    /// The source (`idp.NAME`, `app.NAME`).
    pub source: String,
    /// Its pull run.
    pub run_id: i64,
    /// How long it took.
    pub seconds: f64,
    /// What the snapshot held, or why the pull failed.
    pub result: Result<SnapshotCounts, String>,
}

/// What to pull: the IdPs and apps named by `--app` (the app and its IdP), or everything.
pub fn targets<'a>(config: &'a Config, app: Option<&str>) -> Result<(Vec<&'a IdpConfig>, Vec<&'a AppConfig>), String> {
    match app {
        None => Ok((config.idps.iter().collect(), config.apps.iter().collect())),
        Some(name) => {
            let a = config.require_app(name).map_err(|e| e.to_string())?;
            Ok((vec![config.idp_of(a)], vec![a]))
        }
    }
}

fn idp_info(idp: &IdpConfig) -> SourceInfo {
    SourceInfo {
        name: idp.source_name(),
        role: "idp",
        kind: idp.kind().as_str().to_string(),
        profile: None,
        base_url: Some(idp.location()),
    }
}

fn app_info(app: &AppConfig) -> SourceInfo {
    SourceInfo {
        name: app.source_name(),
        role: "app",
        kind: "scim".into(),
        profile: Some(app.profile.clone()),
        base_url: Some(app.http.base_url.clone()),
    }
}

/// Bindings the IdP's previous pull resolved: (app, name in `groups`, IdP group id).
type Resolved = [(String, String, String)];

async fn fetch_idp(
    config: &Config,
    idp: &IdpConfig,
    base: Option<Baseline>,
    resolved: &Resolved,
    progress: Progress<'_>,
) -> Result<Snapshot, SourceError> {
    let src = source::idp_source(idp)?;
    let mut snap = match base {
        Some(base) if src.incremental() => match src.pull_changes(base, progress).await {
            Err(SourceError::Resync { source_name, message }) => {
                tracing::warn!("{source_name}: {message}; reading everything instead");
                src.pull(progress).await?
            }
            other => other?,
        },
        _ => src.pull(progress).await?,
    };
    for app in config.apps.iter().filter(|a| a.idp == idp.name) {
        let mut bindings = src.bindings(app, &snap).await?;
        follow_renamed_groups(app, &idp.source_name(), &snap, resolved, &mut bindings);
        for b in bindings.iter().filter(|b| b.idp_group_id.is_none()) {
            tracing::warn!(
                "app '{}': bound group '{}' matches no group in {}; the app's scope is incomplete",
                app.name,
                b.group_name,
                idp.source_name()
            );
        }
        snap.bindings.extend(bindings);
    }
    Ok(snap)
}

/// A binding, once resolved, follows its IdP group by id: a bound group renamed in the IdP
/// stays bound (and the plan renames the app group), with a warning naming the stale name in
/// `groups` and the new one. Only a group that is really gone, or a name that never matched,
/// stays unresolved.
fn follow_renamed_groups(
    app: &crate::config::AppConfig,
    idp: &str,
    snap: &Snapshot,
    resolved: &Resolved,
    bindings: &mut [crate::model::Binding],
) {
    for b in bindings.iter_mut().filter(|b| b.idp_group_id.is_none()) {
        let earlier = resolved.iter().find(|(a, name, _)| *a == app.name && *name == b.group_name);
        let Some((_, _, id)) = earlier else { continue };
        if let Some(g) = snap.groups.iter().find(|g| &g.id == id) {
            tracing::warn!(
                "app '{}': bound group '{}' is now named '{}' in {idp}; following it by its id ({id}). Put the new name in `groups`",
                app.name,
                b.group_name,
                g.display_name
            );
            b.idp_group_id = Some(id.clone());
        }
    }
}

fn fetched_log(source: &str, started: Instant) {
    tracing::debug!(source, seconds = started.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "fetched");
}

/// What a pulled snapshot holds in memory while it is written, per object, from the sources'
/// last pulls: measured at 1M users and 5M memberships, ≈ 0.7 GiB for the snapshot (users
/// held packed, memberships as ids) and ≈ 0.3 GiB more while it is written (its keys, the
/// membership index). Since raw objects are held compressed these overstate a SCIM source:
/// both sources of a 1M `gen --serve` pull held at once peaked at 1,094 MiB where they
/// estimate 1.9 GiB. Kept: an overstatement only pulls one source at a time.
const HELD_PER_USER: u64 = 700;
const HELD_PER_GROUP: u64 = 300;
const HELD_PER_MEMBERSHIP: u64 = 60;

/// The memory every source's snapshot would hold at once, when that passes the process's
/// memory limit (then sources are pulled one at a time); None to fetch them all at once. A
/// source never pulled counts for nothing: the first pull fetches everything at once.
fn one_at_a_time(store: &Store, jobs: &[(SourceInfo, i64)]) -> Result<Option<u64>, StoreError> {
    if jobs.len() < 2 {
        return Ok(None);
    }
    let c = store.last_pull_totals(jobs.iter().map(|(info, _)| info.name.as_str()))?;
    let held = c.users * HELD_PER_USER + c.groups * HELD_PER_GROUP + c.memberships * HELD_PER_MEMBERSHIP;
    Ok((held > crate::memory::limit()).then_some(held))
}

/// Write one pulled snapshot with its columnar copy beside the commit.
fn write_pulled(store: &mut Store, info: &SourceInfo, run_id: i64, mut snap: Snapshot) -> Result<SnapshotCounts, StoreError> {
    let store_path = store.path().to_path_buf();
    // The memberships go to the write, which lets them go once resolved to positions.
    let memberships = Cow::Owned(std::mem::take(&mut snap.memberships));
    let (counts, _) = store.write_snapshot_keyed(info, run_id, &snap, memberships, |keys| {
        // The columnar copy is an accelerator: a failure to write it only slows plans. It is of
        // `run_id`, so it is not used unless this pull's commit succeeds.
        let t = Instant::now();
        if let Err(e) = crate::engine::columnar::write(&store_path, &info.name, info.role, run_id, &snap, keys) {
            tracing::warn!("{}: columnar copy not written ({e}); plans will read the store instead", info.name);
        }
        tracing::debug!(source = %info.name, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "columnar copy written");
    })?;
    if counts.dangling_members > 0 {
        tracing::warn!(
            "{}: {} group member reference(s) name no user and were skipped",
            info.name,
            counts.dangling_members
        );
    }
    Ok(counts)
}

/// Write one fetched snapshot (with its columnar copy), or record why the source failed.
fn write_fetched(
    store: &mut Store,
    info: SourceInfo,
    run_id: i64,
    fetched: Result<Snapshot, SourceError>,
    fetch_secs: f64,
) -> Result<PullOutcome, StoreError> {
    let t = Instant::now();
    let result = match fetched {
        Ok(snap) => write_pulled(store, &info, run_id, snap).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(message) = &result {
        store.fail_run(run_id, message)?;
        tracing::debug!(source = %info.name, run = run_id, "pull failed: {message}");
    }
    Ok(PullOutcome {
        source: info.name,
        run_id,
        seconds: fetch_secs + t.elapsed().as_secs_f64(),
        result,
    })
}

/// Pull the selected sources into `store`, incrementally where an IdP can.
pub async fn pull(
    config: &Config,
    store: &mut Store,
    app: Option<&str>,
    progress_for: &(dyn Fn(&str) -> ProgressSink + Sync),
) -> Result<Vec<PullOutcome>, StoreError> {
    pull_with(config, store, app, false, progress_for).await
}

/// Pull the selected sources into `store`. IdPs whose connector reads changes (Okta, Entra)
/// start from their stored snapshot and cursor unless `full`. `progress_for` gives each source
/// its progress sink.
pub async fn pull_with(
    config: &Config,
    store: &mut Store,
    app: Option<&str>,
    full: bool,
    progress_for: &(dyn Fn(&str) -> ProgressSink + Sync),
) -> Result<Vec<PullOutcome>, StoreError> {
    let (idps, apps) = targets(config, app).map_err(|m| StoreError::Snapshot {
        path: store.path().into(),
        source_name: "pull".into(),
        object: "--app".into(),
        message: m,
    })?;
    let mut jobs: Vec<(SourceInfo, i64)> = Vec::new();
    for info in idps.iter().map(|i| idp_info(i)).chain(apps.iter().map(|a| app_info(a))) {
        let run = store.start_run("pull", Some(&info.name))?;
        jobs.push((info, run));
    }
    let mut bases = Vec::new();
    let mut resolved = Vec::new();
    for idp in &idps {
        resolved.push(store.resolved_bindings(&idp.source_name())?);
        bases.push(if full || !idp.kind().incremental() {
            None
        } else {
            store.baseline(&idp.source_name())?
        });
    }
    // Each source's fetch, in the order of `jobs`.
    type Fetch<'f> = std::pin::Pin<Box<dyn std::future::Future<Output = (Result<Snapshot, SourceError>, f64)> + 'f>>;
    let mut fetches: Vec<Fetch<'_>> = Vec::new();
    for ((idp, base), resolved) in idps.iter().zip(bases).zip(&resolved) {
        let sink = progress_for(&idp.source_name());
        fetches.push(Box::pin(async move {
            let t = Instant::now();
            let fetched = fetch_idp(config, idp, base, resolved, &*sink).await;
            fetched_log(&idp.source_name(), t);
            (fetched, t.elapsed().as_secs_f64())
        }));
    }
    for a in &apps {
        let sink = progress_for(&a.source_name());
        fetches.push(Box::pin(async move {
            let t = Instant::now();
            let fetched = source::app::pull_app(a, &*sink).await;
            fetched_log(&a.source_name(), t);
            (fetched, t.elapsed().as_secs_f64())
        }));
    }

    // The writes below fill SQLite's page cache while pulled snapshots are still held: at
    // 64 MiB instead of 256 a two-source 1M pull peaked 0.2 GiB lower, and wrote as fast.
    store.set_cache_mib(64)?;
    let mut outcomes = Vec::new();
    let held = one_at_a_time(store, &jobs)?;
    if let Some(estimate) = held {
        // Every snapshot held at once would pass the memory limit: each source is fetched and
        // written before the next is fetched.
        tracing::info!(
            "pulling one source at a time: their last pulls suggest {} MiB held at once, over the memory limit of {} MiB (--memory-limit)",
            estimate >> 20,
            crate::memory::limit() >> 20
        );
        for ((info, run_id), fetch) in jobs.into_iter().zip(fetches) {
            let (fetched, fetch_secs) = fetch.await;
            outcomes.push(write_fetched(store, info, run_id, fetched, fetch_secs)?);
            // The snapshot is gone: what it held goes back before the next one is fetched.
            crate::memory::release_freed();
        }
    } else {
        let started = Instant::now();
        let fetched = join_all(fetches).await;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "all sources fetched");
        for ((info, run_id), (fetched, fetch_secs)) in jobs.into_iter().zip(fetched) {
            outcomes.push(write_fetched(store, info, run_id, fetched, fetch_secs)?);
        }
    }
    store.set_cache_mib(crate::store::CACHE_MIB)?;
    Ok(outcomes)
}
