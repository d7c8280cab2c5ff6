//! `scimsync apply`: run a plan's operations phase by phase with bounded concurrency, each one
//! journaled before and after its HTTP call. An operation left in flight by a killed apply is
//! looked up before anything is sent again, so nothing is created twice.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::config::{AppConfig, Config, DeactivationLimit};
use crate::http::{detail_of, RetryPolicy};
use crate::plan::{resolve_refs, Body, Operation, Plan};
use crate::plan::{Finish, JournalEntry};
use crate::profile::Profile;
use crate::scim::outcome::{self, Next};
use crate::sp::{Directory, GroupSearch, ScimClient};
use crate::store::Store;
use crate::vocab::{Action, OpStatus};

/// Why an apply could not run.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A snapshot the plan was made from is no longer the latest: plan again.
    #[error(
        "plan #{plan_id} is stale: {source_name} was pulled again (pull #{now}; the plan read pull #{planned}). Run `scimsync plan` again"
    )]
    Stale {
        /// The plan.
        plan_id: i64,
        /// The source whose snapshot moved.
        source_name: String,
        /// The pull run the plan read.
        planned: i64,
        /// The latest pull run.
        now: i64,
    },
    /// The deactivation guard refused: the plan takes away more accounts than allowed.
    #[error("app '{app}': the plan deactivates or deletes {planned} of {accounts} active accounts, more than max_deactivations allows ({allowed}). Nothing was applied; check the plan, then use --force (or raise the limit)")]
    Guard {
        /// The app.
        app: String,
        /// Deactivations and deletions planned.
        planned: u64,
        /// Its active accounts.
        accounts: u64,
        /// How many it may take away.
        allowed: u64,
    },
    /// The plan names an app the config does not have.
    #[error("app '{0}' is in the plan but not in the config")]
    UnknownApp(String),
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Opening an app's client.
    #[error(transparent)]
    Connect(#[from] crate::sp::ConnectError),
    /// An app's profile.
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
}

/// How to apply.
pub struct ApplyOptions {
    /// Only this app's operations.
    pub app: Option<String>,
    /// Operations in flight at once, per phase (default: the app's `concurrency`).
    pub concurrency: Option<usize>,
    /// The guard's limit, over the config's.
    pub max_deactivations: Option<DeactivationLimit>,
    /// Past the guard.
    pub force: bool,
    /// Set (by a signal) to stop starting operations: those in flight finish and are journaled,
    /// the rest stay planned for the next apply.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl ApplyOptions {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// What an apply did, per app and action.
#[derive(Debug, Default, serde::Serialize)]
pub struct ApplyReport {
    /// The plan applied.
    pub plan_id: i64,
    /// (app, action) → (done, failed, skipped).
    pub counts: BTreeMap<(String, Action), (u64, u64, u64)>,
    /// One line per failed operation.
    pub failures: Vec<String>,
    /// Requests sent.
    pub requests: u64,
    /// How long it took.
    pub seconds: f64,
}

impl ApplyReport {
    /// Operations that failed.
    pub fn failed(&self) -> u64 {
        self.counts.values().map(|c| c.1).sum()
    }
    /// Operations done.
    pub fn done(&self) -> u64 {
        self.counts.values().map(|c| c.0).sum()
    }
}

/// The operations of `plan` an apply would run now (not done yet), for `app` or all.
pub fn pending<'a>(entries: &'a [JournalEntry], app: Option<&str>) -> Vec<&'a JournalEntry> {
    entries.iter().filter(|e| is_pending(e, app)).collect()
}

fn is_pending(e: &JournalEntry, app: Option<&str>) -> bool {
    e.status.is_pending() && app.is_none_or(|a| e.op.app == a)
}

/// Refuse a plan made from snapshots that have since been replaced.
pub fn check_fresh(store: &Store, plan: &Plan, app: Option<&str>) -> Result<(), ApplyError> {
    for (source, run) in &plan.snapshots {
        let relevant = app.is_none_or(|a| *source == format!("app.{a}") || source.starts_with("idp."));
        if !relevant {
            continue;
        }
        let now = store.pull_state(source)?.last_ok_run.unwrap_or_default();
        if now != *run {
            return Err(ApplyError::Stale {
                plan_id: plan.plan_id,
                source_name: source.clone(),
                planned: *run,
                now,
            });
        }
    }
    Ok(())
}

/// The accidental-deletion guard: refuse when an app's pending deactivations exceed its limit.
pub fn check_guard(config: &Config, store: &Store, todo: &[&JournalEntry], opts: &ApplyOptions) -> Result<(), ApplyError> {
    let mut per_app: BTreeMap<&str, u64> = BTreeMap::new();
    for e in todo.iter().filter(|e| e.op.is_deactivation()) {
        *per_app.entry(e.op.app.as_str()).or_default() += 1;
    }
    for (app, planned) in per_app {
        let cfg = config.app(app).ok_or_else(|| ApplyError::UnknownApp(app.into()))?;
        let Some(limit) = opts.max_deactivations.as_ref().or(cfg.max_deactivations.as_ref()) else {
            continue;
        };
        let accounts = store.active_accounts(&cfg.source_name())?;
        let allowed = limit.allowed(accounts);
        if planned > allowed && !opts.force {
            return Err(ApplyError::Guard {
                app: app.into(),
                planned,
                accounts,
                allowed,
            });
        }
    }
    Ok(())
}

/// The app's profile, narrowed by the ServiceProviderConfig its last pull read.
pub fn app_profile(store: &Store, app: &AppConfig) -> Result<Profile, ApplyError> {
    let spc = store.service_provider_config(&app.source_name())?;
    Ok(Profile::of_app(&app.profile, spc.as_deref())?)
}

struct AppRuntime {
    client: ScimClient,
    profile: Profile,
    /// IdP user id → app account id: stored links plus accounts created by this apply.
    links: Mutex<HashMap<String, String>>,
}

fn client_for(app: &AppConfig) -> Result<ScimClient, ApplyError> {
    // Writes wait out longer storms of 429/503 than reads: an apply may slow down, not fail.
    let retry = RetryPolicy {
        max_attempts: 8,
        max_throttled_attempts: 60,
        ..RetryPolicy::default()
    };
    Ok(crate::sp::connect(&app.source_name(), &app.http, retry)?)
}

/// Run the pending operations of a stored plan.
pub async fn apply(config: &Config, store: Store, plan_id: i64, opts: &ApplyOptions) -> Result<ApplyReport, ApplyError> {
    let (plan, entries) = store.load_journal(plan_id)?.expect("caller checked the plan exists");
    apply_loaded(config, store, &plan, entries, opts).await
}

/// [`apply`] for a plan and journal the caller has already read from `store`.
pub async fn apply_loaded(
    config: &Config,
    mut store: Store,
    plan: &Plan,
    mut entries: Vec<JournalEntry>,
    opts: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let plan_id = plan.plan_id;
    check_fresh(&store, plan, opts.app.as_deref())?;
    entries.retain(|e| is_pending(e, opts.app.as_deref()));
    let todo = entries;
    check_guard(config, &store, &todo.iter().collect::<Vec<_>>(), opts)?;
    if !todo.is_empty() {
        store.own_operations(plan_id)?;
    }

    let mut runtimes: HashMap<String, Arc<AppRuntime>> = HashMap::new();
    for e in &todo {
        if runtimes.contains_key(&e.op.app) {
            continue;
        }
        let cfg = config.app(&e.op.app).ok_or_else(|| ApplyError::UnknownApp(e.op.app.clone()))?;
        runtimes.insert(
            e.op.app.clone(),
            Arc::new(AppRuntime {
                client: client_for(cfg)?,
                profile: app_profile(&store, cfg)?,
                links: Mutex::new(store.user_links(&cfg.name)?),
            }),
        );
    }
    let default_concurrency = |app: &str| config.app(app).map(|a| a.http.concurrency).unwrap_or(4).max(1);
    let store = Arc::new(Mutex::new(store));
    let started = Instant::now();
    let mut report = ApplyReport {
        plan_id,
        ..ApplyReport::default()
    };
    let mut phases: BTreeMap<u8, Vec<JournalEntry>> = BTreeMap::new();
    for e in todo {
        phases.entry(e.op.phase).or_default().push(e);
    }
    for (_, entries) in phases {
        if opts.stopping() {
            break;
        }
        let concurrency = opts
            .concurrency
            .unwrap_or_else(|| entries.first().map(|e| default_concurrency(&e.op.app)).unwrap_or(4));
        // Operations on the same object (several member batches of one group) run one after
        // the other, in plan order: concurrent read-modify-writes could lose one. Different
        // objects run concurrently.
        let mut same_object: BTreeMap<(String, String), Vec<JournalEntry>> = BTreeMap::new();
        for e in entries {
            same_object.entry((e.op.app.clone(), e.op.path.clone())).or_default().push(e);
        }
        let results: Vec<(Operation, Outcome)> = stream::iter(same_object.into_values().map(|chain| {
            let rt = runtimes[&chain[0].op.app].clone();
            let store = store.clone();
            async move {
                let mut out = Vec::with_capacity(chain.len());
                for e in chain {
                    let outcome = if opts.stopping() {
                        Outcome {
                            status: OpStatus::NotStarted,
                            error: None,
                            requests: 0,
                        }
                    } else {
                        run_one(&rt, &store, plan_id, &e).await
                    };
                    out.push((e.op, outcome));
                }
                out
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .flat_map(stream::iter)
        .collect()
        .await;
        for (op, outcome) in results {
            report.requests += outcome.requests;
            let c = report.counts.entry((op.app.clone(), op.action)).or_default();
            match outcome.status {
                OpStatus::Done => c.0 += 1,
                OpStatus::Failed => {
                    c.1 += 1;
                    report.failures.push(format!(
                        "app '{}': {} {} ({}): {}",
                        op.app,
                        op.method,
                        op.path,
                        op.subject.unwrap_or_default(),
                        outcome.error.unwrap_or_default()
                    ));
                }
                _ => c.2 += 1,
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct Outcome {
    status: OpStatus,
    error: Option<String>,
    requests: u64,
}

/// Journal a finish; a journal that cannot be written is reported loudly (the SP call happened).
fn finish(store: &Mutex<Store>, plan_id: i64, op: &Operation, f: Finish, message: Option<&str>) -> Option<String> {
    let mut s = store.lock().expect("store lock");
    match s.op_finished(plan_id, op, &f, message) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(app = %op.app, seq = op.seq, "JOURNAL WRITE FAILED after the SCIM call: {e}");
            Some(e.to_string())
        }
    }
}

fn resource_id(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

/// Carry out one operation: claim it, look for an interrupted create, send it (a PUT built on
/// the resource as read now), and take the step [`outcome::next`] decides from the answer; the
/// end is journaled whatever happens.
async fn run_one(rt: &AppRuntime, store: &Mutex<Store>, plan_id: i64, entry: &JournalEntry) -> Outcome {
    let mut one = OneOp {
        rt,
        store,
        plan_id,
        op: &entry.op,
        requests: 0,
    };
    if let Some(refused) = one.claim(entry) {
        return refused;
    }
    // An interrupted create may have reached the app: look before creating again.
    if entry.status == OpStatus::InFlight && one.op.creates() {
        one.requests += 1;
        match lookup(rt, one.op).await {
            Ok(Some(id)) => return one.done(Some(&id), None, Some("found after an interrupted apply; linked")),
            Ok(None) => {}
            Err(e) => return one.failed(None, format!("lookup after an interrupted apply: {e}")),
        }
    }
    one.send_and_follow().await
}

/// One operation being carried out: where its end is journaled, and the requests it took.
struct OneOp<'a> {
    rt: &'a AppRuntime,
    store: &'a Mutex<Store>,
    plan_id: i64,
    op: &'a Operation,
    requests: u64,
}

impl OneOp<'_> {
    /// Journal the operation done (and remember the account a create made, for the members
    /// of groups later in this apply).
    fn done(&self, result_id: Option<&str>, http_status: Option<u16>, message: Option<&str>) -> Outcome {
        let op = self.op;
        if let (Some(id), Some(idp), Action::UserCreate) = (result_id, op.idp_id.as_deref(), op.action) {
            self.rt.links.lock().expect("links lock").insert(idp.to_string(), id.to_string());
        }
        let finished = Finish {
            status: OpStatus::Done,
            http_status,
            error: None,
            result_id,
        };
        let error = finish(self.store, self.plan_id, op, finished, message);
        Outcome {
            status: if error.is_none() { OpStatus::Done } else { OpStatus::Failed },
            error,
            requests: self.requests,
        }
    }

    /// Journal the operation failed.
    fn failed(&self, http_status: Option<u16>, error: String) -> Outcome {
        let finished = Finish {
            status: OpStatus::Failed,
            http_status,
            error: Some(&error),
            result_id: None,
        };
        finish(self.store, self.plan_id, self.op, finished, None);
        Outcome {
            status: OpStatus::Failed,
            error: Some(error),
            requests: self.requests,
        }
    }

    /// Claim the operation in the journal first (compare-and-set on what this apply read): an
    /// operation another apply has claimed or finished since is never sent a second time.
    /// `Some` when it may not be sent.
    fn claim(&self, entry: &JournalEntry) -> Option<Outcome> {
        let claimed = self
            .store
            .lock()
            .expect("store lock")
            .op_claim(self.plan_id, self.op.seq, entry.status, entry.attempts);
        let (status, error) = match claimed {
            Ok(true) => return None,
            Ok(false) => (OpStatus::NotStarted, "claimed by another apply; not sent".to_string()),
            Err(e) => (OpStatus::Failed, format!("journal: {e}; not sent")),
        };
        Some(Outcome {
            status,
            error: Some(error),
            requests: self.requests,
        })
    }

    /// Send the operation and follow the answer (a 412 is retried once).
    async fn send_and_follow(&mut self) -> Outcome {
        let (rt, op) = (self.rt, self.op);
        let mut body = op.body.as_ref().map(Body::value);
        let mut dropped = Vec::new();
        if let Some(b) = body.as_mut() {
            let links = rt.links.lock().expect("links lock");
            dropped = resolve_refs(b, &|idp| links.get(idp).cloned());
            // A reference outside a member list (a manager) that could not be resolved would be
            // sent as `{"$idp_user": …}`: the operation is not sent.
            let mut left = std::collections::BTreeSet::new();
            crate::plan::referenced_users(b, &mut left);
            if let Some(idp) = left.first() {
                let message = format!("the account of IdP user '{idp}' this operation refers to was not created; not sent");
                drop(links);
                return self.failed(None, message);
            }
        }
        let method = http_method(op.method);
        let note = (!dropped.is_empty()).then(|| format!("{} member(s) left out: their accounts were not created", dropped.len()));
        let mut if_match: Option<String> = None;
        for round in 0..2 {
            // A PUT replaces the whole resource: it is built on the resource as read now, so
            // that what scimsync does not manage goes back unchanged (and, with ETags, it is
            // sent only if the resource is still that version).
            let sent = if method == Method::PUT {
                self.requests += 1;
                match put_on_current(rt, op, body.as_ref()).await {
                    Ok(Some((merged, version))) => {
                        if rt.profile.etag {
                            if_match = version;
                        }
                        Some(merged)
                    }
                    Ok(None) if op.is_deactivation() => return self.done(None, Some(404), Some("already gone")),
                    Ok(None) => return self.failed(Some(404), format!("{} is gone: nothing to PUT", op.path)),
                    Err(e) => return self.failed(e.status(), format!("reading {} before the PUT: {e}", op.path)),
                }
            } else {
                body.clone()
            };
            let resp = match send(rt, op, &method, sent.as_ref(), if_match.as_deref(), &mut self.requests).await {
                Ok(r) => r,
                Err(SendError::Http(e)) => return self.failed(e.status(), e.to_string()),
                Err(SendError::Found(id)) => return self.done(Some(&id), None, Some("the connection dropped; found by lookup and linked")),
            };
            let write = outcome::Write {
                creates: op.creates(),
                removes: matches!(op.action, Action::UserDeactivate | Action::UserDelete | Action::GroupDelete),
                put: method == Method::PUT,
                conditional: if_match.is_some(),
                sent: sent.as_ref(),
                created_pending: rt.profile.users.created_pending,
                first_try: round == 0,
            };
            let status = resp.status;
            match outcome::next(&write, status, &resp.body) {
                Next::Done { id } => return self.done(id.as_deref(), Some(status), note.as_deref()),
                Next::LookUpCreated => return self.look_up_created(status, &resp.body).await,
                // A PUT that did not take is a failure saying so (sending it again every cycle
                // would change nothing); a create is done (the group exists and is linked), its
                // missing members added next time.
                Next::MembersIgnored { missing, .. } if write.put => {
                    return self.failed(
                        Some(status),
                        format!(
                            "HTTP {status}, but the app's answer lacks {missing} of the members the PUT sent: it ignores members on PUT (without PATCH, this app cannot have its groups' members managed)"
                        ),
                    )
                }
                Next::MembersIgnored { id, missing } => {
                    let note = format!("the app created the group without {missing} of its members; the next plan adds them");
                    return self.done(id.as_deref(), Some(status), Some(&note));
                }
                Next::LookUpExisting => return self.look_up_existing(status, &resp.body).await,
                Next::AlreadyGone => return self.done(None, Some(status), Some("already gone")),
                // A PUT reads the resource again before it is sent: the next round merges on
                // the new version.
                Next::ReadAgainAndRetry if write.put && write.first_try => continue,
                Next::ReadAgainAndRetry => match self.read_version(status).await {
                    Ok(version) => if_match = Some(version),
                    Err(failed) => return failed,
                },
                Next::Fail => return self.failed(Some(status), format!("HTTP {status}: {}", detail_of(&resp.body))),
            }
        }
        self.failed(Some(412), "HTTP 412 twice".into())
    }

    /// A create the app accepted without naming an id: whether the object exists is unknown
    /// until it is looked up. Not found, the operation fails and is sent again by the next
    /// apply.
    async fn look_up_created(&mut self, status: u16, answer: &[u8]) -> Outcome {
        let detail = format!("HTTP {status} but the answer names no id ({})", detail_of(answer));
        self.requests += 1;
        match lookup(self.rt, self.op).await {
            Ok(Some(id)) => self.done(Some(&id), Some(status), Some("the answer named no id; found by lookup and linked")),
            Ok(None) => self.failed(
                Some(status),
                format!("{detail}; no such object found, so it is sent again next time"),
            ),
            Err(e) => self.failed(Some(status), format!("{detail}, then lookup failed: {e}")),
        }
    }

    /// A 409 to a create: link the existing object only if it carries the key asked for.
    async fn look_up_existing(&mut self, status: u16, answer: &[u8]) -> Outcome {
        self.requests += 1;
        match lookup(self.rt, self.op).await {
            Ok(Some(id)) => self.done(Some(&id), Some(status), Some("already in the app; linked")),
            Ok(None) => {
                let detail = detail_of(answer);
                let _ = self.store.lock().expect("store lock").lookup_event(
                    self.op,
                    self.plan_id,
                    Some(status),
                    &format!("409 on create and no account carrying its key found (user.conflict; nothing linked): {detail}"),
                );
                self.failed(
                    Some(status),
                    format!("HTTP 409: {detail}; no account carrying its key found (user.conflict; nothing linked or written)"),
                )
            }
            Err(e) => self.failed(Some(status), format!("HTTP 409, then lookup failed: {e}")),
        }
    }

    /// After a 412: the object's version as read now, for `If-Match`.
    async fn read_version(&mut self, status: u16) -> Result<String, Outcome> {
        self.requests += 1;
        match self.rt.client.get_ok(&self.op.path).await {
            Ok(b) => serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.pointer("/meta/version").and_then(Value::as_str).map(str::to_string))
                .ok_or_else(|| self.failed(Some(status), "HTTP 412 and the object has no meta.version".into())),
            Err(e) => Err(self.failed(e.status(), format!("HTTP 412, then re-read failed: {e}"))),
        }
    }
}

/// An operation's method, for the HTTP client.
fn http_method(method: crate::vocab::Method) -> Method {
    match method {
        crate::vocab::Method::Post => Method::POST,
        crate::vocab::Method::Put => Method::PUT,
        crate::vocab::Method::Patch => Method::PATCH,
        crate::vocab::Method::Delete => Method::DELETE,
    }
}

/// The body of a read-modify-write PUT: the resource as the app returns it now, with the
/// operation's planned change applied ([`crate::scim::patch::put_body`]), and its version.
/// `None` when the resource is gone.
async fn put_on_current(rt: &AppRuntime, op: &Operation, planned: Option<&Value>) -> Result<Option<(Value, Option<String>)>, PutError> {
    let resp = rt.client.request(Method::GET, &op.path, None, None).await.map_err(PutError::Http)?;
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(PutError::Read(resp.status, detail_of(&resp.body)));
    }
    let current: Value =
        serde_json::from_slice(&resp.body).map_err(|e| PutError::Read(resp.status, format!("the resource is not JSON: {e}")))?;
    let version = resp
        .headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| current.pointer("/meta/version").and_then(Value::as_str).map(str::to_string));
    let merged = crate::scim::patch::put_body(&current, planned.unwrap_or(&Value::Null)).map_err(|m| PutError::Read(resp.status, m))?;
    Ok(Some((merged, version)))
}

/// Why the resource a PUT is built on could not be read.
#[derive(Debug)]
enum PutError {
    Http(crate::http::HttpError),
    Read(u16, String),
}

impl PutError {
    fn status(&self) -> Option<u16> {
        match self {
            PutError::Http(e) => e.status(),
            PutError::Read(s, _) => Some(*s),
        }
    }
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::Http(e) => write!(f, "{e}"),
            PutError::Read(status, m) => write!(f, "HTTP {status}: {m}"),
        }
    }
}

enum SendError {
    Http(crate::http::HttpError),
    /// A create whose answer was lost turned out to have been made: the object's id.
    Found(String),
}

/// Send one operation. The transport retries everything but a POST whose connection failed
/// (it may have reached the app): that is looked up, and sent again only when not found.
async fn send(
    rt: &AppRuntime,
    op: &Operation,
    method: &Method,
    body: Option<&Value>,
    if_match: Option<&str>,
    requests: &mut u64,
) -> Result<crate::http::Response, SendError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        *requests += 1;
        match rt.client.request(method.clone(), &op.path, body, if_match).await {
            Err(e) if matches!(e.kind, crate::http::HttpErrorKind::Network { .. }) && op.creates() && attempt < 8 => {
                *requests += 1;
                if let Some(id) = lookup(rt, op).await.map_err(SendError::Http)? {
                    return Err(SendError::Found(id));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map_err(SendError::Http),
        }
    }
}

/// Find the object a create was for: a user by userName, externalId or email; a group by
/// displayName (filtered when the app filters groups, else listed and matched here).
async fn lookup(rt: &AppRuntime, op: &Operation) -> Result<Option<String>, crate::http::HttpError> {
    let Some(body) = op.body.as_ref().map(Body::value) else {
        return Ok(None);
    };
    let str_at = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_string);
    if op.action == Action::GroupCreate {
        let Some(name) = str_at("/displayName") else { return Ok(None) };
        let how = if rt.profile.groups.filter {
            GroupSearch::Filter
        } else {
            GroupSearch::Scan
        };
        let found = Directory::new(&rt.client).groups_named(&name, how, 100).await?;
        return Ok(found
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r.get()).ok())
            .find(|g| {
                g.get("displayName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
            .as_ref()
            .and_then(resource_id));
    }
    for (attr, value) in [
        ("userName", str_at("/userName")),
        ("externalId", str_at("/externalId")),
        ("emails.value", str_at("/emails/0/value")),
    ] {
        let Some(value) = value else { continue };
        let answered: Vec<Value> = Directory::new(&rt.client)
            .users_where(attr, &value)
            .await?
            .iter()
            .filter_map(|r| serde_json::from_str(r.get()).ok())
            .collect();
        // An app that ignores the filter answers with accounts of other people: linking one
        // and then writing the new person's names and emails to it would hand it over. Only an
        // account that carries the key asked for is taken.
        let (found, strangers): (Vec<Value>, Vec<Value>) = answered.into_iter().partition(|u| carries_key(u, attr, &value));
        if !strangers.is_empty() {
            tracing::warn!(
                app = %op.app,
                "lookup by {attr} answered {} account(s) that do not carry it (the app ignores the filter?); not linked",
                strangers.len()
            );
        }
        // An email filter also returns disabled accounts (Quip): prefer an active one.
        let active: Vec<&Value> = found
            .iter()
            .filter(|u| u.get("active").and_then(Value::as_bool).unwrap_or(true))
            .collect();
        if let [one] = active.as_slice() {
            return Ok(resource_id(one));
        }
        // userName and externalId name one identity even when it is disabled; an email does not.
        if let ([one], false) = (found.as_slice(), attr == "emails.value") {
            return Ok(resource_id(one));
        }
    }
    Ok(None)
}

/// Whether a user resource carries `value` for the lookup key `attr`: userName and emails
/// compare without case (RFC 7643 §4.1.1, §4.1.2: not caseExact), externalId exactly (§3.1).
fn carries_key(user: &Value, attr: &str, value: &str) -> bool {
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).map(str::trim)
    }
    match attr {
        "userName" => text(user.get("userName")).is_some_and(|u| u.to_lowercase() == value.trim().to_lowercase()),
        "externalId" => text(user.get("externalId")) == Some(value.trim()),
        "emails.value" => user.get("emails").and_then(Value::as_array).is_some_and(|emails| {
            emails
                .iter()
                .any(|e| text(e.get("value")).is_some_and(|v| v.to_lowercase() == value.trim().to_lowercase()))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looked_up_account_must_carry_the_key() {
        let u =
            serde_json::json!({"id": "9", "userName": "Bob@Example.com", "externalId": "E-1", "emails": [{"value": "bob@example.com"}]});
        assert!(carries_key(&u, "userName", "bob@example.com"));
        assert!(!carries_key(&u, "userName", "alice@example.com"));
        assert!(carries_key(&u, "externalId", "E-1"));
        assert!(!carries_key(&u, "externalId", "e-1"));
        assert!(carries_key(&u, "emails.value", "BOB@example.com"));
        assert!(!carries_key(&u, "emails.value", "eve@example.com"));
        assert!(!carries_key(&serde_json::json!({"id": "1"}), "userName", "x"));
    }
}
