//! Tables the drift queries read that come from the config rather than the store: the apps
//! with their rules, match precedence, role mapping and managed attributes.
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::config::{AppConfig, MatchKey, OnUnassign};
use crate::profile::Profile;

/// What the planner knows of one app beyond its config: whether its scope can be trusted.
#[derive(Debug, Clone)]
pub struct AppInput<'a> {
    /// Its config section.
    pub config: &'a AppConfig,
    /// Its IdP's source name.
    pub idp_source: String,
    /// False when a bound group name matched no IdP group or no bindings were pulled: nothing
    /// may then be deactivated or deleted on the strength of "out of scope".
    pub scope_complete: bool,
    /// The app's SP profile (managed attributes, role model, what DELETE means).
    pub profile: &'a Profile,
    /// Its attribute mappings (the profile's, then the app's): a core attribute mapped here is
    /// compared by the mapped query, not by `user.drift.sql`.
    pub mappings: Vec<crate::mapping::Mapping>,
}

fn strings(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn batch(fields: &[(&str, DataType)], cols: Vec<ArrayRef>) -> RecordBatch {
    let schema = Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>());
    RecordBatch::try_new(Arc::new(schema), cols).expect("columns match the schema")
}

/// `apps(app, idp_source, app_source, manage_groups, on_unassign, scope_complete, delete_removes)`
pub fn apps(apps: &[AppInput]) -> RecordBatch {
    batch(
        &[
            ("app", DataType::Utf8),
            ("idp_source", DataType::Utf8),
            ("app_source", DataType::Utf8),
            ("manage_groups", DataType::Boolean),
            ("on_unassign", DataType::Utf8),
            ("scope_complete", DataType::Boolean),
            ("delete_removes", DataType::Boolean),
        ],
        vec![
            strings(apps.iter().map(|a| a.config.name.clone()).collect()),
            strings(apps.iter().map(|a| a.idp_source.clone()).collect()),
            strings(apps.iter().map(|a| a.config.source_name()).collect()),
            Arc::new(BooleanArray::from(apps.iter().map(|a| a.config.manage_groups).collect::<Vec<_>>())),
            strings(
                apps.iter()
                    .map(|a| match a.config.on_unassign {
                        OnUnassign::Deactivate => "deactivate",
                        OnUnassign::Delete => "delete",
                        OnUnassign::Ignore => "ignore",
                    })
                    .map(String::from)
                    .collect(),
            ),
            Arc::new(BooleanArray::from(apps.iter().map(|a| a.scope_complete).collect::<Vec<_>>())),
            Arc::new(BooleanArray::from(
                apps.iter().map(|a| a.profile.delete_removes()).collect::<Vec<_>>(),
            )),
        ],
    )
}

/// `app_email_reuse(app, policy)`: what an inactive account that matches a new IdP user only by
/// email is. `conflict` (default): a conflict, never linked; `release` (profiles with
/// `email_reuse = "rename_disabled"`, Quip): not a candidate, the old account gives the email
/// up and a new one is created; `reactivate` (`reactivate_by_email = true`): linked and
/// reactivated, as a rehire.
pub fn app_email_reuse(apps: &[AppInput]) -> RecordBatch {
    let policy = |a: &AppInput| {
        if a.config.reactivate_by_email {
            "reactivate"
        } else if a.profile.users.email_reuse == crate::profile::EmailReuse::RenameDisabled {
            "release"
        } else {
            "conflict"
        }
    };
    batch(
        &[("app", DataType::Utf8), ("policy", DataType::Utf8)],
        vec![
            strings(apps.iter().map(|a| a.config.name.clone()).collect()),
            strings(apps.iter().map(|a| policy(a).to_string()).collect()),
        ],
    )
}

/// `app_match(app, key, rank)`: the correlation keys in precedence order (rank 1 first).
pub fn app_match(apps: &[AppInput]) -> RecordBatch {
    let (mut app, mut key, mut rank) = (Vec::new(), Vec::new(), Vec::new());
    for a in apps {
        for (i, k) in a.config.match_keys.iter().enumerate() {
            app.push(a.config.name.clone());
            key.push(
                match k {
                    MatchKey::ExternalId => "externalId",
                    MatchKey::UserName => "userName",
                    MatchKey::Email => "email",
                }
                .to_string(),
            );
            rank.push(i as i64 + 1);
        }
    }
    batch(
        &[("app", DataType::Utf8), ("key", DataType::Utf8), ("rank", DataType::Int64)],
        vec![strings(app), strings(key), Arc::new(Int64Array::from(rank))],
    )
}

/// Role precedence when a user is in several role groups: earlier wins. Roles not listed
/// rank after these, in name order.
const ROLE_ORDER: &[&str] = &["owner", "admin", "editor", "member", "contributor", "viewer", "guest"];

/// `app_roles(app, role, group_name, rank)`: only for apps whose profile conveys roles as an
/// attribute (role groups of a `groups` profile are managed as groups).
pub fn app_roles(apps: &[AppInput]) -> RecordBatch {
    let (mut app, mut role, mut group, mut rank) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for a in apps
        .iter()
        .filter(|a| a.profile.roles.model == crate::profile::RoleModel::Attribute)
    {
        let mut roles: Vec<(&String, &String)> = a.config.roles.iter().collect();
        roles.sort_by_key(|(r, _)| {
            (
                ROLE_ORDER
                    .iter()
                    .position(|k| k.eq_ignore_ascii_case(r))
                    .unwrap_or(ROLE_ORDER.len()),
                r.to_lowercase(),
            )
        });
        for (i, (r, g)) in roles.into_iter().enumerate() {
            app.push(a.config.name.clone());
            role.push(r.clone());
            group.push(g.clone());
            rank.push(i as i64 + 1);
        }
    }
    batch(
        &[
            ("app", DataType::Utf8),
            ("role", DataType::Utf8),
            ("group_name", DataType::Utf8),
            ("rank", DataType::Int64),
        ],
        vec![strings(app), strings(role), strings(group), Arc::new(Int64Array::from(rank))],
    )
}

/// `app_attributes(app, attribute, lower)`: what `user.drift` compares for each app (the
/// profile's managed attributes), and whether the app holds it lower-case.
pub fn app_attributes(apps: &[AppInput]) -> RecordBatch {
    let (mut app, mut attr, mut lower) = (Vec::new(), Vec::new(), Vec::new());
    for a in apps {
        for at in &a.profile.users.manage {
            if a.mappings.iter().any(|m| &m.target == at) {
                continue;
            }
            app.push(a.config.name.clone());
            attr.push(at.clone());
            lower.push(a.profile.lowercases(at));
        }
    }
    batch(
        &[("app", DataType::Utf8), ("attribute", DataType::Utf8), ("lower", DataType::Boolean)],
        vec![strings(app), strings(attr), Arc::new(BooleanArray::from(lower))],
    )
}
