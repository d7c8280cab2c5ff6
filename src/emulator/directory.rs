//! The emulator's in-memory resources, in creation order (so paging is stable).
use std::collections::BTreeMap;

use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Directory {
    next: u64,
    pub users: BTreeMap<String, Value>,
    pub groups: BTreeMap<String, Value>,
}

fn schema(resource: &str) -> &'static str {
    if resource == "Users" {
        crate::scim::USER_SCHEMA
    } else {
        crate::scim::GROUP_SCHEMA
    }
}

impl Directory {
    pub fn collection(&self, resource: &str) -> &BTreeMap<String, Value> {
        if resource == "Users" {
            &self.users
        } else {
            &self.groups
        }
    }

    pub fn collection_mut(&mut self, resource: &str) -> &mut BTreeMap<String, Value> {
        if resource == "Users" {
            &mut self.users
        } else {
            &mut self.groups
        }
    }

    /// Store a new resource, assigning its id and meta; returns the stored resource.
    /// Ids sort in creation order, which keeps list pages stable.
    pub fn create(&mut self, resource: &str, mut body: Value) -> Value {
        self.next += 1;
        let id = format!("{:012}", self.next);
        let obj = body.as_object_mut().expect("caller checks for an object");
        obj.insert("id".into(), json!(id));
        obj.insert("schemas".into(), json!([schema(resource)]));
        obj.insert(
            "meta".into(),
            json!({"resourceType": if resource == "Users" { "User" } else { "Group" }, "version": "W/\"1\""}),
        );
        self.collection_mut(resource).insert(id, body.clone());
        body
    }

    /// Add a user (seeding helper); returns its id.
    pub fn add_user(&mut self, user: Value) -> String {
        self.create("Users", user)["id"].as_str().expect("id set by create").to_string()
    }

    /// Add a group with these member ids (seeding helper); returns its id.
    pub fn add_group(&mut self, name: &str, members: &[String]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        self.create("Groups", json!({"displayName": name, "members": members}))["id"]
            .as_str()
            .expect("id set by create")
            .to_string()
    }
}
