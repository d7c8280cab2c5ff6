//! Single-object reconcile (`reconcile --user`, `--group`): refresh one user or group on both
//! sides, plan the app, and apply only the operations about it.
use std::collections::BTreeSet;
use std::path::Path;

use super::{CycleOptions, ReconcileError};
use crate::apply::ApplyError;
use crate::config::Config;
use crate::store::Store;

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
    /// The app.
    pub app: String,
    /// The user or group, as given.
    pub object: String,
    /// The findings about it.
    pub findings: Vec<crate::engine::Finding>,
    /// Operations applied for it.
    pub operations: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Why the guard refused, when it did.
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
    let app = config.require_app(app_name)?;
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
