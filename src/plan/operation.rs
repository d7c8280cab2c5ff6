//! A plan's operations as data: what `scimsync plan` decides, `plan --out` writes, and
//! `scimsync apply` journals and executes. No I/O here.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::vocab::{Action, FindingKind, Method};

/// The order operations run in, phase by phase: create users → create groups → memberships →
/// updates → deactivations (docs/architecture.md, "The plan as data").
pub mod phase {
    /// Quip: give a disabled account's email away before a new account takes it.
    pub const RELEASE: u8 = 1;
    /// POST /Users.
    pub const CREATE_USERS: u8 = 2;
    /// Reactivations, before anything names the accounts.
    pub const REACTIVATE: u8 = 3;
    /// POST /Groups (with the members that exist by then).
    pub const CREATE_GROUPS: u8 = 4;
    /// Renames and member changes.
    pub const GROUPS: u8 = 5;
    /// Attribute and role changes.
    pub const UPDATE_USERS: u8 = 6;
    /// Deactivations and deletions of accounts.
    pub const DEACTIVATE: u8 = 7;
    /// Deletions of groups, last.
    pub const DELETE_GROUPS: u8 = 8;
}

/// The key that stands, in an operation's body, for the app id of the account linked to (or
/// created for) an IdP user: `{"$idp_user": "<IdP user id>"}`. A real SCIM value is never an
/// object with this key, so the two cannot be confused.
pub use crate::attributes::IDP_USER_REF;

/// One SCIM write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Its number in the plan, across apps: the order `apply` runs it in.
    pub seq: i64,
    /// The app it writes to.
    pub app: String,
    /// Its phase ([`phase`]).
    pub phase: u8,
    /// What it does.
    pub action: Action,
    /// How it is sent.
    pub method: Method,
    /// Relative to the app's base URL: `Users`, `Users/{id}`, `Groups/{id}`.
    pub path: String,
    /// What it sends; IdP users it names are `{"$idp_user": id}` until `apply` resolves them.
    pub body: Option<Body>,
    /// The finding kind this corrects.
    pub finding: FindingKind,
    /// Whom or what it is about, for people (a login, a group name).
    pub subject: Option<String>,
    /// The IdP object it is for.
    pub idp_id: Option<String>,
    /// The app object it writes, when it exists.
    pub sp_id: Option<String>,
}

impl Operation {
    /// The JumpCloud Directory Insights event name for this operation.
    pub fn event_name(&self) -> &'static str {
        match self.action {
            Action::UserCreate => "user_create_provision",
            Action::UserDeactivate => "user_deprovision",
            Action::UserDelete => "user_delete_provision",
            Action::GroupCreate => "group_create_provision",
            Action::GroupDelete => "group_delete_provision",
            a if a.is_group() => "group_update_provision",
            _ => "user_update_provision",
        }
    }

    /// Operations that take an account away (counted by the deactivation guard).
    pub fn is_deactivation(&self) -> bool {
        matches!(self.action, Action::UserDeactivate | Action::UserDelete)
    }

    /// Operations that create an object (and link it).
    pub fn creates(&self) -> bool {
        matches!(self.action, Action::UserCreate | Action::GroupCreate)
    }
}

/// An operation's body: JSON text, as the planner writes it and the journal stores it. Kept as
/// text, not as a `serde_json::Value` tree: a 1M-user plan has 180k bodies, and building the
/// trees and serialising them again took longer than writing the text once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Body(Box<RawValue>);

impl Body {
    /// The body of this SCIM payload.
    pub fn of<T: Serialize + ?Sized>(payload: &T) -> Body {
        Body(serde_json::value::to_raw_value(payload).expect("a SCIM payload serialises"))
    }

    /// A body from stored JSON text; an error if it is not JSON.
    pub fn from_text(text: String) -> serde_json::Result<Body> {
        RawValue::from_string(text).map(Body)
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The body as a JSON value, to read or change.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.text()).expect("a body is JSON")
    }
}

/// Bodies are equal when their JSON is, whatever its spacing and key order.
impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.text() == other.text() || self.value() == other.value()
    }
}

impl std::fmt::Display for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// A plan as a file (`plan --out`, `apply --plan`): the snapshots it was made from and its
/// operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan run it was made by.
    pub plan_id: i64,
    /// When.
    pub created_at: String,
    /// Source name → the pull run the plan read.
    pub snapshots: BTreeMap<String, i64>,
    /// Its operations, in the order they run.
    pub operations: Vec<Operation>,
}

/// Replace every `{"$idp_user": id}` in `body` by the app id `resolve` gives; an array element
/// (a member) whose reference cannot be resolved is dropped, and its IdP id returned.
pub fn resolve_refs(body: &mut Value, resolve: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut unresolved = Vec::new();
    resolve_in(body, resolve, &mut unresolved);
    unresolved
}

/// The IdP user ids referenced in `body` (added to `out`).
pub fn referenced_users(body: &Value, out: &mut std::collections::BTreeSet<String>) {
    match body {
        Value::Array(items) => items.iter().for_each(|v| referenced_users(v, out)),
        Value::Object(o) => match reference(body) {
            Some(id) => {
                out.insert(id.to_string());
            }
            None => o.values().for_each(|v| referenced_users(v, out)),
        },
        _ => {}
    }
}

fn reference(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    if o.len() == 1 {
        o.get(IDP_USER_REF)?.as_str()
    } else {
        None
    }
}

fn resolve_in(v: &mut Value, resolve: &dyn Fn(&str) -> Option<String>, unresolved: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            items.retain_mut(|item| {
                // A member object {"value": {"$idp_user": …}} or a bare reference.
                let is_member = matches!(item, Value::Object(o) if o.contains_key("value"));
                let id = reference(if is_member { &item["value"] } else { &*item }).map(str::to_string);
                if let Some(id) = id {
                    match resolve(&id) {
                        Some(sp) if is_member => item["value"] = Value::String(sp),
                        Some(sp) => *item = Value::String(sp),
                        None => {
                            unresolved.push(id);
                            return false;
                        }
                    }
                } else {
                    resolve_in(item, resolve, unresolved);
                }
                true
            });
        }
        Value::Object(o) => {
            for (_, child) in o.iter_mut() {
                if let Some(id) = reference(child).map(str::to_string) {
                    match resolve(&id) {
                        Some(sp) => *child = Value::String(sp),
                        None => unresolved.push(id),
                    }
                } else {
                    resolve_in(child, resolve, unresolved);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plan_file_keeps_its_bodies() {
        let body = Body::of(&json!({"members": [{"value": {"$idp_user": "u1"}}], "displayName": "Eng \"core\""}));
        let plan = Plan {
            plan_id: 7,
            created_at: "2026-11-23T00:00:00Z".into(),
            snapshots: BTreeMap::from([("idp.corp".to_string(), 3)]),
            operations: vec![Operation {
                seq: 1,
                app: "wiki".into(),
                phase: phase::CREATE_GROUPS,
                action: Action::GroupCreate,
                method: Method::Post,
                path: "Groups".into(),
                body: Some(body.clone()),
                finding: FindingKind::GroupMissing,
                subject: Some("Eng".into()),
                idp_id: Some("g1".into()),
                sp_id: None,
            }],
        };
        let file = serde_json::to_string_pretty(&plan).unwrap();
        let read: Plan = serde_json::from_str(&file).unwrap();
        assert_eq!(read, plan);
        assert_eq!(read.operations[0].body.as_ref().unwrap().text(), body.text());
        assert_eq!(
            read.operations[0].body.as_ref().unwrap().value()["members"][0]["value"]["$idp_user"],
            "u1"
        );
        // A body edited by hand (spaced, keys reordered) is the same body.
        let spaced = Body::from_text(r#"{ "displayName": "Eng \"core\"", "members": [ {"value": {"$idp_user": "u1"}} ] }"#.into()).unwrap();
        assert_eq!(spaced, body);
        assert!(Body::from_text("{\"members\": [".into()).is_err());
    }

    #[test]
    fn references_resolve_and_unknown_members_drop() {
        let mut body = json!({"members": [{"value": "sp1"}, {"value": {"$idp_user": "a"}}, {"value": {"$idp_user": "b"}}],
                              "Operations": [{"op": "add", "path": "members", "value": [{"value": {"$idp_user": "a"}}]}]});
        let missing = resolve_refs(&mut body, &|id| (id == "a").then(|| "sp-a".to_string()));
        assert_eq!(missing, vec!["b".to_string()]);
        assert_eq!(body["members"], json!([{"value": "sp1"}, {"value": "sp-a"}]));
        assert_eq!(body["Operations"][0]["value"], json!([{"value": "sp-a"}]));
    }

    #[test]
    fn a_value_that_only_looks_like_a_reference_is_kept() {
        let mut body = json!({"members": [{"value": "{\"$idp_user\": \"a\"}"}]});
        let before = body.clone();
        assert!(resolve_refs(&mut body, &|_| None).is_empty());
        assert_eq!(body, before);
    }
}
