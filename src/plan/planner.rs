//! Findings → SCIM operations, through the app's profile. Reads what the findings and the
//! engine do not carry (the IdP user to create, a PUT group's current members) from the
//! snapshots in the store, never the links or findings being written; makes no network call.
use std::collections::{BTreeMap, HashMap, HashSet};

use super::bodies::{
    add_members, members, Email, MemberValue, Name, NewGroup, NewUser, Patch, PatchOp, PatchValue, Phone, Role, WholeGroup,
};
use super::{phase, Action, Body, FindingKind, Method, Operation};
use crate::config::{AppConfig, OnUnassign};
use crate::engine::Finding;
use crate::mapping::{Mapping, TargetKind};
use crate::model::User;
use crate::profile::{EmailReuse, Formatted, Profile, UserNameFrom};
use crate::store::{Result, Store};

/// One app to plan.
pub struct AppPlanning<'a> {
    /// Its config section.
    pub config: &'a AppConfig,
    /// Its profile, narrowed by its ServiceProviderConfig.
    pub profile: &'a Profile,
    /// IdP group id → its members' IdP ids, for the groups this plan creates (the engine's).
    pub new_group_members: &'a HashMap<String, Vec<String>>,
    /// IdP user id → its linked account, for every user `group.members` adds and every member
    /// of a group created (the engine's: the links as the plan stores them).
    pub member_links: &'a HashMap<String, String>,
    /// IdP user id → the user, for the users to create and those whose name changes (the
    /// engine's).
    pub idp_users: &'a HashMap<String, User>,
    /// Its attribute mappings (the profile's and the app's).
    pub mappings: &'a [Mapping],
    /// IdP user id → (target, value) of the mapped attributes, for the users to create.
    pub mapped_creates: &'a HashMap<String, Vec<(String, String)>>,
}

/// What planning one app produced.
#[derive(Debug, Default)]
pub struct AppOperations {
    /// The operations, numbered.
    pub operations: Vec<Operation>,
    /// Findings that could not become an operation, and why.
    pub warnings: Vec<String>,
}

/// `Users/{id}`. An id that cannot be addressed (`.`, `..`) gives a path the plan refuses
/// below: it becomes a warning, never a request.
fn user_path(id: &str) -> String {
    crate::scim::path::resource_path("Users", id).unwrap_or_else(|_| format!("Users/{id}"))
}

fn group_path(id: &str) -> String {
    crate::scim::path::resource_path("Groups", id).unwrap_or_else(|_| format!("Groups/{id}"))
}

fn patch(ops: Vec<PatchOp>) -> Body {
    Body::of(&Patch::new(ops))
}

fn primary_email<'a>(profile: &'a Profile, value: String) -> [Email<'a>; 1] {
    [Email {
        primary: true,
        kind: &profile.users.email_type,
        value,
    }]
}

/// The member values of IdP users: their linked accounts, or the accounts this plan creates.
struct MemberValues<'a> {
    links: &'a HashMap<String, String>,
    /// IdP users this plan creates an account for.
    missing: HashSet<&'a str>,
}

impl MemberValues<'_> {
    fn of<'s>(&'s self, idp_id: &'s str) -> Option<MemberValue<'s>> {
        if let Some(sp) = self.links.get(idp_id) {
            Some(MemberValue::Account(sp))
        } else if self.missing.contains(idp_id) {
            Some(MemberValue::ToCreate(idp_id))
        } else {
            None
        }
    }
}

/// The value an app holds for an IdP value of `attribute` (case rules).
fn shaped(profile: &Profile, attribute: &str, value: &str) -> String {
    if profile.lowercases(attribute) {
        value.to_lowercase()
    } else {
        value.to_string()
    }
}

/// The userName to create an account with.
fn user_name_for(profile: &Profile, u: &User) -> Option<String> {
    let raw = if profile.users.user_name_from == UserNameFrom::Email {
        u.email.as_ref().or(u.user_name.as_ref())
    } else {
        u.user_name.as_ref().or(u.email.as_ref())
    }?;
    Some(shaped(profile, "userName", raw))
}

fn formatted(u: &User) -> Option<String> {
    match (&u.given_name, &u.family_name) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(g), None) => Some(g.clone()),
        (None, Some(f)) => Some(f.clone()),
        (None, None) => None,
    }
}

/// POST /Users body for an IdP user.
pub fn create_user_body(profile: &Profile, u: &User) -> Option<Body> {
    let mut body = NewUser::new(user_name_for(profile, u)?);
    fn sent<'u>(profile: &Profile, attribute: &str, value: &'u Option<String>) -> Option<&'u str> {
        value.as_deref().filter(|_| profile.sends_on_create(attribute))
    }
    let sends = |attribute, value| sent(profile, attribute, value);
    body.external_id = sends("externalId", &u.external_id);
    let name = Name {
        family_name: sends("name.familyName", &u.family_name),
        formatted: formatted(u).filter(|_| profile.users.formatted == Formatted::GivenFamily),
        given_name: sends("name.givenName", &u.given_name),
    };
    body.name = (!name.is_empty()).then_some(name);
    body.display_name = sends("displayName", &u.display_name);
    body.emails = sends("email", &u.email).map(|v| primary_email(profile, shaped(profile, "email", v)));
    body.title = sends("title", &u.title);
    body.phone_numbers = sends("phone", &u.phone).map(|v| {
        [Phone {
            kind: "work",
            value: v.to_string(),
        }]
    });
    body.timezone = sends("timezone", &u.timezone);
    Some(Body::of(&body))
}

/// The PATCH operation(s) that set one drifted attribute to the IdP's value.
fn attribute_ops<'a>(profile: &'a Profile, attribute: &str, value: &str, idp_user: Option<&User>) -> Vec<PatchOp<'a>> {
    let v = shaped(profile, attribute, value);
    match attribute {
        "email" => vec![PatchOp::replace("emails", PatchValue::Emails(primary_email(profile, v)))],
        "phone" => vec![PatchOp::replace(
            "phoneNumbers",
            PatchValue::Phones([Phone { kind: "work", value: v }]),
        )],
        "name.givenName" | "name.familyName" => {
            let mut ops = vec![PatchOp::replace(attribute, PatchValue::Text(v))];
            if let (true, Some(f)) = (profile.users.formatted == Formatted::GivenFamily, idp_user.and_then(formatted)) {
                ops.push(PatchOp::replace("name.formatted", PatchValue::Text(f)));
            }
            ops
        }
        _ => vec![PatchOp::replace(attribute, PatchValue::Text(v))],
    }
}

/// The PATCH operation that sets a mapped attribute to `value` (a manager: the reference to
/// the account, or its removal when the manager is out of the app's scope).
fn mapped_op(m: &Mapping, value: Option<&str>) -> Option<PatchOp<'static>> {
    match (&m.kind, value) {
        (TargetKind::Manager, None) => Some(PatchOp::remove(&m.target)),
        (TargetKind::Manager, Some(v)) => {
            let to = match crate::attributes::reference(v) {
                Some(idp_id) => serde_json::json!({ crate::attributes::IDP_USER_REF: idp_id }),
                None => serde_json::Value::String(v.to_string()),
            };
            Some(PatchOp::replace(
                &m.target,
                PatchValue::Reference(serde_json::json!({ "value": to })),
            ))
        }
        (_, Some(v)) => Some(PatchOp::replace(&m.target, PatchValue::Text(v.to_string()))),
        (_, None) => None,
    }
}

/// A POST /Users body with the mapped attributes set: a core attribute replaced, a path or an
/// extension attribute added (its schema listed in `schemas`), a manager as `{"value": id}`.
fn with_mapped(body: Body, mappings: &[Mapping], values: &[(String, String)]) -> Body {
    let mut v = body.value();
    let mut ops = Vec::new();
    for (target, value) in values {
        let Some(m) = mappings.iter().find(|m| &m.target == target) else {
            continue;
        };
        let value = match m.kind {
            TargetKind::Manager => serde_json::json!({ "value": value }),
            _ => serde_json::Value::String(value.clone()),
        };
        ops.push(serde_json::to_value(crate::scim::patch::Operation::replace(target, value)).expect("an operation serialises"));
    }
    if crate::scim::patch::apply(&mut v, &ops).is_err() {
        return body;
    }
    Body::of(&v)
}

/// Plan the operations for one app's findings. `next_seq` numbers them across apps.
///
/// The steps list their operations in this order, which is kept within a phase: released
/// emails, new accounts, reactivations, attribute and role updates, groups, deactivations, group
/// deletions. When the app's groups are changed by PATCH, their changes (which read no store)
/// are planned on a thread of their own while this one plans the rest.
pub fn plan_app(store: &Store, app: &AppPlanning, findings: &[&Finding], next_seq: &mut i64) -> Result<AppOperations> {
    let found = ByKind::new(findings);
    let steps = Steps { store, app, found: &found };
    let groups = steps.groups();
    let mut out = AppOperations::default();
    let member_values = MemberValues {
        links: app.member_links,
        missing: found.of(FindingKind::UserMissing).filter_map(|f| f.idp_id.as_deref()).collect(),
    };
    let parts = if app.profile.patches_groups() {
        let member_values = &member_values;
        let ((users, created, removals), changed) = crate::threads::join(
            || {
                let users = steps.user_operations(member_values, &mut out.warnings);
                (users, groups.create_groups(member_values), steps.removals())
            },
            move || groups.change_by_patch(member_values),
        );
        let (early, updates) = users?;
        Parts {
            early,
            created,
            changed,
            updates,
            removals,
        }
    } else {
        let (early, updates) = steps.user_operations(&member_values, &mut out.warnings)?;
        Parts {
            early,
            created: groups.create_groups(&member_values),
            changed: steps.change_by_put(&member_values)?,
            updates,
            removals: steps.removals(),
        }
    };
    finish(app, parts, &mut out.warnings, next_seq, &mut out.operations);
    Ok(out)
}

/// One app's operations as its steps planned them, each part in finding order and the parts in
/// phase order.
struct Parts {
    /// Released emails, new accounts, reactivations.
    early: Vec<Operation>,
    /// New groups.
    created: Vec<Operation>,
    /// Renames and member changes of groups.
    changed: Vec<Operation>,
    /// Attribute and role updates of accounts.
    updates: Vec<Operation>,
    /// Deactivations or deletions of accounts, then deletions of groups.
    removals: Vec<Operation>,
}

/// The app's findings by kind, each kind's in finding order: a step reads its own kinds only
/// (each step used to pass over all of them: eleven passes over 274k findings at 1M users).
struct ByKind<'a>(Vec<Vec<&'a Finding>>);

impl<'a> ByKind<'a> {
    fn new(findings: &[&'a Finding]) -> ByKind<'a> {
        let mut by_kind = vec![Vec::new(); FindingKind::ALL.len()];
        for f in findings {
            by_kind[f.kind as usize].push(*f);
        }
        ByKind(by_kind)
    }

    /// The findings of one kind, in finding order.
    fn of(&self, kind: FindingKind) -> impl Iterator<Item = &'a Finding> + '_ {
        self.0[kind as usize].iter().copied()
    }
}

/// An operation of `app` correcting `f` (numbered later).
fn operation(app: &AppPlanning, phase: u8, action: Action, method: Method, path: String, body: Option<Body>, f: &Finding) -> Operation {
    Operation {
        seq: 0,
        app: app.config.name.clone(),
        phase,
        action,
        method,
        path,
        body,
        finding: f.kind,
        subject: f.subject.clone(),
        idp_id: f.idp_id.clone(),
        sp_id: f.sp_id.clone(),
    }
}

/// What every step of planning one app reads.
struct Steps<'a> {
    store: &'a Store,
    app: &'a AppPlanning<'a>,
    found: &'a ByKind<'a>,
}

/// What the group steps read: no store, so that they can run on a thread of their own.
#[derive(Clone, Copy)]
struct GroupSteps<'a> {
    app: &'a AppPlanning<'a>,
    found: &'a ByKind<'a>,
}

impl<'a> Steps<'a> {
    /// The app's findings of one kind, in finding order.
    fn of(&self, kind: FindingKind) -> impl Iterator<Item = &'a Finding> + '_ {
        self.found.of(kind)
    }

    /// The steps of the groups, which read no store.
    fn groups(&self) -> GroupSteps<'a> {
        GroupSteps {
            app: self.app,
            found: self.found,
        }
    }

    /// The users' operations: released emails, new accounts and reactivations; then, apart
    /// (a later phase than the groups'), attribute and role updates.
    fn user_operations(&self, member_values: &MemberValues, warnings: &mut Vec<String>) -> Result<(Vec<Operation>, Vec<Operation>)> {
        let t = std::time::Instant::now();
        let mut ops = Vec::new();
        self.release_emails(&member_values.missing, &mut ops, warnings)?;
        self.create_users(&mut ops, warnings);
        self.reactivate_users(&mut ops);
        let mut updates = Vec::new();
        self.update_users(&mut updates, warnings);
        let (app, seconds) = (&self.app.config.name, t.elapsed().as_secs_f64());
        tracing::debug!(%app, seconds, operations = ops.len() + updates.len(), "planner: user operations");
        Ok((ops, updates))
    }

    /// The groups' renames and member changes for an app without PATCH: a PUT per changed
    /// group with its whole member list.
    fn change_by_put(&self, member_values: &MemberValues) -> Result<Vec<Operation>> {
        let mut ops = Vec::new();
        let changes = group_changes(self.of(FindingKind::GroupRenamed).chain(self.of(FindingKind::GroupMembers)));
        if !changes.is_empty() {
            self.change_groups_by_put(&changes, member_values, &mut ops)?;
        }
        Ok(ops)
    }

    /// Deactivations or deletions of accounts, then deletions of groups.
    fn removals(&self) -> Vec<Operation> {
        let mut ops = Vec::new();
        self.remove_users(&mut ops);
        self.delete_groups(&mut ops);
        ops
    }

    /// An operation correcting `f` (numbered later).
    fn op(&self, phase: u8, action: Action, method: Method, path: String, body: Option<Body>, f: &Finding) -> Operation {
        operation(self.app, phase, action, method, path, body, f)
    }

    /// Quip (`email_reuse = "rename_disabled"`): a disabled account holding a new user's email
    /// gives it up first; an active one holding it is a warning.
    fn release_emails(&self, missing: &HashSet<&str>, ops: &mut Vec<Operation>, warnings: &mut Vec<String>) -> Result<()> {
        let (profile, idp_users) = (self.app.profile, self.app.idp_users);
        if profile.users.email_reuse != EmailReuse::RenameDisabled {
            return Ok(());
        }
        let emails: HashSet<String> = missing
            .iter()
            .filter_map(|id| idp_users.get(*id)?.email.as_ref())
            .map(|e| e.trim().to_lowercase())
            .collect();
        if emails.is_empty() {
            return Ok(());
        }
        let holders = self.store.accounts_by_email(&self.app.config.source_name(), &emails)?;
        let mut released: HashSet<String> = HashSet::new();
        for f in self.of(FindingKind::UserMissing) {
            let Some(email) = f.idp_id.as_deref().and_then(|id| idp_users.get(id)?.email.as_ref()) else {
                continue;
            };
            for (holder, active, user_name) in holders.get(&email.trim().to_lowercase()).into_iter().flatten() {
                if *active {
                    warnings.push(format!(
                        "{}: the active account {} already holds {email}; creating it will fail until that is resolved",
                        f.subject.clone().unwrap_or_default(),
                        user_name.clone().unwrap_or_else(|| holder.clone())
                    ));
                } else if released.insert(holder.clone()) {
                    let harmless = format!(
                        "released-{}@scimsync.invalid",
                        holder.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                    );
                    let mut o = self.op(
                        phase::RELEASE,
                        Action::UserReleaseEmail,
                        Method::Patch,
                        user_path(holder),
                        Some(patch(vec![PatchOp::replace(
                            "emails",
                            PatchValue::Emails(primary_email(profile, harmless)),
                        )])),
                        f,
                    );
                    o.finding = FindingKind::UserConflict;
                    o.subject = user_name.clone().or(Some(holder.clone()));
                    o.idp_id = None;
                    o.sp_id = Some(holder.clone());
                    ops.push(o);
                }
            }
        }
        Ok(())
    }

    /// `user.missing` → POST /Users (a user without userName or email is a warning).
    fn create_users(&self, ops: &mut Vec<Operation>, warnings: &mut Vec<String>) {
        for f in self.of(FindingKind::UserMissing) {
            let body = f
                .idp_id
                .as_deref()
                .and_then(|id| self.app.idp_users.get(id))
                .and_then(|u| create_user_body(self.app.profile, u))
                .map(|b| match f.idp_id.as_deref().and_then(|id| self.app.mapped_creates.get(id)) {
                    Some(values) => with_mapped(b, self.app.mappings, values),
                    None => b,
                });
            match body {
                Some(b) => ops.push(self.op(phase::CREATE_USERS, Action::UserCreate, Method::Post, "Users".into(), Some(b), f)),
                None => warnings.push(format!(
                    "{}: the IdP user has neither userName nor email; not created",
                    f.subject.clone().unwrap_or_default()
                )),
            }
        }
    }

    /// `user.reactivate` → `active: true`.
    fn reactivate_users(&self, ops: &mut Vec<Operation>) {
        for f in self.of(FindingKind::UserReactivate) {
            let Some(sp) = &f.sp_id else { continue };
            ops.push(self.op(
                phase::REACTIVATE,
                Action::UserReactivate,
                Method::Patch,
                user_path(sp),
                Some(patch(vec![PatchOp::replace("active", PatchValue::Flag(true))])),
                f,
            ));
        }
    }

    /// `user.drift` and `user.role_mismatch` → one PATCH per account with every change (a role
    /// the app does not let SCIM set is a warning).
    fn update_users(&self, ops: &mut Vec<Operation>, warnings: &mut Vec<String>) {
        let (profile, idp_users) = (self.app.profile, self.app.idp_users);
        let mut updates: BTreeMap<&str, (Vec<PatchOp>, &Finding)> = BTreeMap::new();
        for f in self.of(FindingKind::UserDrift) {
            let (Some(sp), Some(attr)) = (f.sp_id.as_deref(), f.attribute.as_deref()) else {
                continue;
            };
            if let Some(m) = self.app.mappings.iter().find(|m| m.target == attr) {
                if let Some(o) = mapped_op(m, f.new_value.as_deref()) {
                    let idp_user = f.idp_id.as_deref().and_then(|id| idp_users.get(id));
                    let entry = updates.entry(sp).or_insert_with(|| (Vec::new(), f));
                    let ops = match (&m.kind, f.new_value.as_deref()) {
                        (TargetKind::Column(_), Some(value)) => attribute_ops(profile, attr, value, idp_user),
                        _ => vec![o],
                    };
                    for o in ops {
                        if !entry.0.contains(&o) {
                            entry.0.push(o);
                        }
                    }
                }
                continue;
            }
            let Some(value) = f.new_value.as_deref() else {
                continue;
            };
            if !profile.manages(attr) {
                continue;
            }
            let idp_user = f.idp_id.as_deref().and_then(|id| idp_users.get(id));
            let entry = updates.entry(sp).or_insert_with(|| (Vec::new(), f));
            for o in attribute_ops(profile, attr, value, idp_user) {
                if !entry.0.contains(&o) {
                    entry.0.push(o);
                }
            }
        }
        for f in self.of(FindingKind::UserRoleMismatch) {
            let (Some(sp), Some(role)) = (f.sp_id.as_deref(), f.new_value.as_deref()) else {
                continue;
            };
            let held_fixed = f.old_value.as_deref().is_some_and(|old| !profile.role_settable(old));
            if !profile.role_settable(role) || held_fixed {
                warnings.push(format!(
                    "{}: role {} → {role} is not settable over SCIM in this app; left as it is",
                    f.subject.clone().unwrap_or_default(),
                    f.old_value.as_deref().unwrap_or("∅")
                ));
                continue;
            }
            let entry = updates.entry(sp).or_insert_with(|| (Vec::new(), f));
            entry.0.push(PatchOp::replace(
                "roles",
                PatchValue::Roles([Role {
                    primary: true,
                    value: role,
                }]),
            ));
        }
        for (sp, (changes, f)) in updates {
            ops.push(self.op(
                phase::UPDATE_USERS,
                Action::UserUpdate,
                Method::Patch,
                user_path(sp),
                Some(patch(changes)),
                f,
            ));
        }
    }

    /// `user.orphaned` → deactivate, delete or nothing, as `on_unassign` says.
    fn remove_users(&self, ops: &mut Vec<Operation>) {
        for f in self.of(FindingKind::UserOrphaned) {
            let Some(sp) = &f.sp_id else { continue };
            match self.app.config.on_unassign {
                OnUnassign::Ignore => {}
                OnUnassign::Deactivate => ops.push(self.op(
                    phase::DEACTIVATE,
                    Action::UserDeactivate,
                    Method::Patch,
                    user_path(sp),
                    Some(patch(vec![PatchOp::replace("active", PatchValue::Flag(false))])),
                    f,
                )),
                OnUnassign::Delete => ops.push(self.op(phase::DEACTIVATE, Action::UserDelete, Method::Delete, user_path(sp), None, f)),
            }
        }
    }

    /// `group.orphaned` → DELETE.
    fn delete_groups(&self, ops: &mut Vec<Operation>) {
        for f in self.of(FindingKind::GroupOrphaned) {
            let Some(sp) = &f.sp_id else { continue };
            ops.push(self.op(phase::DELETE_GROUPS, Action::GroupDelete, Method::Delete, group_path(sp), None, f));
        }
    }
}

/// The last step: drop what cannot be addressed, turn PATCH into PUT for apps without PATCH,
/// order by phase and number the operations into `out`.
fn finish(app: &AppPlanning, mut parts: Parts, warnings: &mut Vec<String>, next_seq: &mut i64, out: &mut Vec<Operation>) {
    let name = &app.config.name;
    // An SP id that is a URL dot segment cannot be addressed: the request would go to another
    // resource (the collection, the base URL). The finding stays; no operation is planned. The
    // warnings in the order the steps list the operations.
    for part in [
        &mut parts.early,
        &mut parts.updates,
        &mut parts.created,
        &mut parts.changed,
        &mut parts.removals,
    ] {
        part.retain(|o| {
            let safe = crate::scim::path::safe_request_path(&o.path);
            if !safe {
                warnings.push(format!(
                    "app '{name}': {} {} ({}): the app's id cannot be addressed in a URL; not sent, fix it in the app",
                    o.method,
                    o.path,
                    o.subject.as_deref().unwrap_or_default()
                ));
            }
            safe
        });
    }
    let Parts {
        early,
        created,
        changed,
        updates,
        removals,
    } = parts;
    let mut ops = early;
    ops.reserve(created.len() + changed.len() + updates.len() + removals.len());
    for part in [created, changed, updates, removals] {
        ops.extend(part);
    }
    // An app without PATCH gets its accounts changed by PUT: the operation keeps its PATCH
    // operations as the plan of the change, and apply sends them applied to the account as
    // read just before (see `crate::scim::patch::put_body`).
    if !app.profile.patches_users() {
        for o in ops.iter_mut().filter(|o| o.method == Method::Patch && o.path.starts_with("Users/")) {
            o.method = Method::Put;
        }
    }
    // Stable, so finding order is kept within a phase; the parts are in phase order already, so
    // this moves nothing unless a step listed an operation out of its part's phase.
    ops.sort_by_key(|o| o.phase);
    for o in &mut ops {
        o.seq = *next_seq;
        *next_seq += 1;
    }
    *out = ops;
}

/// The fewest changed groups whose PATCHes are planned on two threads: below it a second thread
/// costs more than it saves.
const GROUPS_FOR_TWO_THREADS: usize = 1024;

/// PATCH operations for `changes` of `app`'s groups: a rename, then member additions and
/// removals in batches of `member_batch`.
fn patch_groups(app: &AppPlanning, changes: &[(&str, Change)], member_values: &MemberValues, ops: &mut Vec<Operation>) {
    let profile = app.profile;
    for (sp, c) in changes {
        if let Some((f, name)) = c.rename.and_then(|f| Some((f, f.new_value.clone()?))) {
            let body = patch(vec![PatchOp::replace("displayName", PatchValue::Text(name))]);
            ops.push(operation(
                app,
                phase::GROUPS,
                Action::GroupUpdate,
                Method::Patch,
                group_path(sp),
                Some(body),
                f,
            ));
        }
        let adds: Vec<(MemberValue, &Finding)> = c
            .add
            .iter()
            .filter_map(|f| Some((member_values.of(f.new_value.as_deref()?)?, *f)))
            .collect();
        for chunk in adds.chunks(profile.groups.member_batch) {
            let body = patch(vec![add_members(members(chunk.iter().map(|(v, _)| *v)))]);
            ops.push(operation(
                app,
                phase::GROUPS,
                Action::GroupMembers,
                Method::Patch,
                group_path(sp),
                Some(body),
                chunk[0].1,
            ));
        }
        let removes: Vec<&Finding> = c.remove.iter().filter(|f| f.old_value.is_some()).copied().collect();
        for chunk in removes.chunks(profile.groups.member_batch) {
            let list: Vec<PatchOp> = chunk
                .iter()
                .map(|f| PatchOp::remove_member(f.old_value.as_deref().expect("filtered")))
                .collect();
            ops.push(operation(
                app,
                phase::GROUPS,
                Action::GroupMembers,
                Method::Patch,
                group_path(sp),
                Some(patch(list)),
                chunk[0],
            ));
        }
    }
}

/// Each app group's changes in `findings` (renames and member changes), in the order of the
/// groups' ids; a group's additions and removals in the findings' order. Gathered by a hash
/// index, then sorted: a tree of the ids (85k groups, 211k findings at 1M users) took about
/// 0.1 s, on one thread while the other core waited.
fn group_changes<'f>(findings: impl Iterator<Item = &'f Finding>) -> Vec<(&'f str, Change<'f>)> {
    let mut changes: Vec<(&str, Change)> = Vec::new();
    let mut index: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
    for f in findings {
        let Some(sp) = f.sp_id.as_deref() else { continue };
        let at = *index.entry(sp).or_insert_with(|| {
            changes.push((sp, Change::default()));
            changes.len() - 1
        });
        let c = &mut changes[at].1;
        match (f.kind, f.attribute.as_deref()) {
            (FindingKind::GroupRenamed, _) => c.rename = Some(f),
            (_, Some("add")) => c.add.push(f),
            _ => c.remove.push(f),
        }
    }
    // Ids are unique here, so an unstable sort gives the one order.
    changes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    changes
}

/// One app group's changes: its new name, members to add and to remove.
#[derive(Default)]
struct Change<'f> {
    rename: Option<&'f Finding>,
    add: Vec<&'f Finding>,
    remove: Vec<&'f Finding>,
}

impl GroupSteps<'_> {
    /// The groups' renames and member changes for an app with PATCH: per changed group its
    /// rename and its member changes in batches.
    fn change_by_patch(self, member_values: &MemberValues) -> Vec<Operation> {
        let t = std::time::Instant::now();
        let mut ops = Vec::new();
        let changes = group_changes(
            self.found
                .of(FindingKind::GroupRenamed)
                .chain(self.found.of(FindingKind::GroupMembers)),
        );
        self.change_groups_by_patch(&changes, member_values, &mut ops);
        let (app, seconds) = (&self.app.config.name, t.elapsed().as_secs_f64());
        tracing::debug!(%app, seconds, operations = ops.len(), memory = %crate::memory::resident(), "planner: group changes");
        ops
    }

    /// `group.missing` → POST /Groups with the members the group has in the IdP.
    fn create_groups(&self, member_values: &MemberValues) -> Vec<Operation> {
        let (app, profile) = (self.app, self.app.profile);
        let mut ops = Vec::new();
        for f in self.found.of(FindingKind::GroupMissing) {
            let (Some(idp_gid), Some(name)) = (f.idp_id.as_deref(), f.new_value.as_deref()) else {
                continue;
            };
            let values = members(
                app.new_group_members
                    .get(idp_gid)
                    .into_iter()
                    .flatten()
                    .filter_map(|uid| member_values.of(uid)),
            );
            let body = NewGroup::new(name, profile.groups.external_id.then_some(idp_gid), values);
            ops.push(operation(
                app,
                phase::CREATE_GROUPS,
                Action::GroupCreate,
                Method::Post,
                "Groups".into(),
                Some(Body::of(&body)),
                f,
            ));
        }
        ops
    }

    /// PATCH: a rename, then member additions and removals in batches of `member_batch`. The
    /// groups are split in two halves planned on two threads (at 1M users 127k operations took
    /// 0.27 s on one), their operations appended in the groups' order; fewer than
    /// [`GROUPS_FOR_TWO_THREADS`] are planned on this thread.
    fn change_groups_by_patch(&self, changes: &[(&str, Change)], member_values: &MemberValues, ops: &mut Vec<Operation>) {
        if changes.len() < GROUPS_FOR_TWO_THREADS {
            return patch_groups(self.app, changes, member_values, ops);
        }
        let (first, second) = changes.split_at(changes.len() / 2);
        let app = self.app;
        let ((), second) = crate::threads::join(
            || patch_groups(app, first, member_values, ops),
            || {
                let mut ops = Vec::new();
                patch_groups(app, second, member_values, &mut ops);
                ops
            },
        );
        ops.extend(second);
    }
}

impl Steps<'_> {
    /// PUT: the full member list, built from the app's current members.
    fn change_groups_by_put(&self, changes: &[(&str, Change)], member_values: &MemberValues, ops: &mut Vec<Operation>) -> Result<()> {
        let (store, app_source) = (self.store, self.app.config.source_name());
        // PUT: the full member list, built from the app's current members.
        let ids: HashSet<&str> = changes.iter().map(|(sp, _)| *sp).collect();
        let current = store.members_of(&app_source, &ids)?;
        let names = store.group_names(&app_source)?;
        for (sp, c) in changes {
            let removed: HashSet<&str> = c.remove.iter().filter_map(|f| f.old_value.as_deref()).collect();
            let mut values: Vec<MemberValue> = current
                .get(*sp)
                .into_iter()
                .flatten()
                .filter(|m| !removed.contains(m.as_str()))
                .map(|m| MemberValue::Account(m))
                .collect();
            values.extend(c.add.iter().filter_map(|f| member_values.of(f.new_value.as_deref()?)));
            let name = c
                .rename
                .and_then(|f| f.new_value.clone())
                .or_else(|| names.get(*sp).cloned())
                .unwrap_or_default();
            let body = Body::of(&WholeGroup::new(sp, &name, members(values)));
            let first = c.rename.or(c.add.first().copied()).or(c.remove.first().copied()).expect("a change");
            let action = if c.rename.is_some() && c.add.is_empty() && c.remove.is_empty() {
                Action::GroupUpdate
            } else {
                Action::GroupMembers
            };
            ops.push(self.op(phase::GROUPS, action, Method::Put, group_path(sp), Some(body), first));
        }
        Ok(())
    }
}
