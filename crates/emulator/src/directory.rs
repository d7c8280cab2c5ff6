//! The emulator's in-memory resources, in creation order (so paging is stable), with the
//! indexes a large directory needs (userName and email look-ups).
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Directory {
    next: u64,
    pub users: BTreeMap<String, Value>,
    pub groups: BTreeMap<String, Value>,
    /// Lower-cased userName → id.
    user_names: HashMap<String, String>,
    /// Lower-cased email → ids of the accounts holding it.
    emails: HashMap<String, Vec<String>>,
    /// Ids in order, for pages by position (a list of a million users would otherwise walk
    /// the map from its start for every page); rebuilt when a resource comes or goes.
    user_order: Vec<String>,
    group_order: Vec<String>,
}

fn schema(resource: &str) -> &'static str {
    if resource == "Users" {
        crate::scim::USER_SCHEMA
    } else {
        crate::scim::GROUP_SCHEMA
    }
}

/// The lower-cased email values of a user.
pub fn emails_of(user: &Value) -> Vec<String> {
    user.get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("value").and_then(Value::as_str))
        .map(|e| e.trim().to_lowercase())
        .collect()
}

fn user_name_of(user: &Value) -> Option<String> {
    user.get("userName").and_then(Value::as_str).map(|s| s.trim().to_lowercase())
}

impl Directory {
    pub fn collection(&self, resource: &str) -> &BTreeMap<String, Value> {
        if resource == "Users" {
            &self.users
        } else {
            &self.groups
        }
    }

    fn index(&mut self, id: &str, user: &Value) {
        if let Some(n) = user_name_of(user) {
            self.user_names.insert(n, id.to_string());
        }
        for e in emails_of(user) {
            self.emails.entry(e).or_default().push(id.to_string());
        }
    }

    fn unindex(&mut self, id: &str, user: &Value) {
        if let Some(n) = user_name_of(user) {
            if self.user_names.get(&n).is_some_and(|i| i == id) {
                self.user_names.remove(&n);
            }
        }
        for e in emails_of(user) {
            if let Some(ids) = self.emails.get_mut(&e) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.emails.remove(&e);
                }
            }
        }
    }

    /// Resources `start`.. (1-based) of `resource`, at most `count`, in id order; and how
    /// many there are.
    pub fn page(&mut self, resource: &str, start: usize, count: usize) -> (usize, Vec<&Value>) {
        let (map, order) = if resource == "Users" {
            (&self.users, &mut self.user_order)
        } else {
            (&self.groups, &mut self.group_order)
        };
        if order.len() != map.len() {
            *order = map.keys().cloned().collect();
        }
        let ids = order.get(start.saturating_sub(1)..).unwrap_or_default();
        (map.len(), ids.iter().take(count).filter_map(|id| map.get(id)).collect())
    }

    fn reorder(&mut self, resource: &str) {
        if resource == "Users" {
            self.user_order.clear();
        } else {
            self.group_order.clear();
        }
    }

    /// The id of the user with this userName (case-insensitive).
    pub fn user_by_name(&self, user_name: &str) -> Option<&str> {
        self.user_names.get(&user_name.trim().to_lowercase()).map(String::as_str)
    }

    /// Ids of the users holding this email (case-insensitive), active or not.
    pub fn users_by_email(&self, email: &str) -> &[String] {
        self.emails.get(&email.trim().to_lowercase()).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Store a new resource, assigning its id and meta; returns the stored resource.
    /// Ids sort in creation order, which keeps list pages stable.
    pub fn create(&mut self, resource: &str, body: Value) -> Value {
        self.next += 1;
        let id = format!("{:012}", self.next);
        self.insert(resource, &id, body);
        self.collection(resource)[&id].clone()
    }

    /// Store a resource under a given id (seeding from a snapshot); ids need not be of
    /// [`Directory::create`]'s form, and later creates do not collide with them.
    pub fn insert(&mut self, resource: &str, id: &str, mut body: Value) {
        let obj = body.as_object_mut().expect("caller passes an object");
        obj.insert("id".into(), json!(id));
        obj.insert("schemas".into(), json!([schema(resource)]));
        obj.insert(
            "meta".into(),
            json!({"resourceType": if resource == "Users" { "User" } else { "Group" }, "version": "W/\"1\""}),
        );
        self.reorder(resource);
        if resource == "Users" {
            self.index(id, &body);
            self.users.insert(id.to_string(), body);
        } else {
            self.groups.insert(id.to_string(), body);
        }
    }

    /// Replace a stored resource by `new` (id, schemas and meta kept, version bumped).
    pub fn put(&mut self, resource: &str, id: &str, mut new: Value) -> Option<Value> {
        let old = self.collection(resource).get(id)?.clone();
        let version = old
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse::<u64>().ok())
            .unwrap_or(1);
        new["id"] = json!(id);
        new["schemas"] = old["schemas"].clone();
        new["meta"] = old["meta"].clone();
        new["meta"]["version"] = json!(format!("W/\"{}\"", version + 1));
        if resource == "Users" {
            self.unindex(id, &old);
            self.index(id, &new);
            self.users.insert(id.to_string(), new.clone());
        } else {
            self.groups.insert(id.to_string(), new.clone());
        }
        Some(new)
    }

    pub fn remove(&mut self, resource: &str, id: &str) -> Option<Value> {
        self.reorder(resource);
        if resource == "Users" {
            let old = self.users.remove(id)?;
            self.unindex(id, &old);
            for g in self.groups.values_mut() {
                if let Some(Value::Array(m)) = g.get_mut("members") {
                    m.retain(|x| x.get("value").and_then(Value::as_str) != Some(id));
                }
            }
            Some(old)
        } else {
            self.groups.remove(id)
        }
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

    /// Resources matching `attr eq value` (case-insensitive, as RFC 7643 §2.2 has for
    /// userName; the emulator uses it for every attribute it filters on).
    pub fn filter(&self, resource: &str, attr: &str, value: &str) -> Vec<&Value> {
        let attr = attr.to_ascii_lowercase();
        if resource == "Users" {
            match attr.as_str() {
                "username" => return self.user_by_name(value).and_then(|id| self.users.get(id)).into_iter().collect(),
                "emails" | "emails.value" => return self.users_by_email(value).iter().filter_map(|id| self.users.get(id)).collect(),
                _ => {}
            }
        }
        let want = value.to_lowercase();
        self.collection(resource)
            .values()
            .filter(|r| {
                let v = match attr.as_str() {
                    "externalid" => r.get("externalId"),
                    "displayname" => r.get("displayName"),
                    "id" => r.get("id"),
                    _ => None,
                };
                v.and_then(Value::as_str).is_some_and(|s| s.to_lowercase() == want)
            })
            .collect()
    }
}

/// Parse `attr eq "value"` (the only filter the emulator answers); None for anything else.
pub fn parse_eq_filter(filter: &str) -> Option<(String, String)> {
    let filter = filter.trim();
    let (attr, rest) = filter.split_once(' ')?;
    let rest = rest.trim_start();
    let (op, value) = rest.split_once(' ')?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value: String = serde_json::from_str(value.trim()).ok()?;
    Some((attr.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(page: (usize, Vec<&Value>)) -> (usize, Vec<String>) {
        (page.0, page.1.iter().map(|u| u["userName"].as_str().unwrap().to_string()).collect())
    }

    #[test]
    fn pages_by_position_follow_creates_inserts_and_removals() {
        let mut d = Directory::default();
        let ids: Vec<String> = (0..5).map(|i| d.add_user(json!({"userName": format!("u{i}")}))).collect();
        assert_eq!(names(d.page("Users", 2, 2)), (5, vec!["u1".into(), "u2".into()]));
        d.remove("Users", &ids[1]);
        assert_eq!(names(d.page("Users", 2, 2)), (4, vec!["u2".into(), "u3".into()]));
        d.insert("Users", "zz", json!({"userName": "last"}));
        d.add_user(json!({"userName": "u5"}));
        assert_eq!(names(d.page("Users", 5, 10)), (6, vec!["u5".into(), "last".into()]));
        assert_eq!(names(d.page("Users", 7, 10)), (6, vec![]));
        assert_eq!(
            names(d.page("Users", 0, 1)),
            (6, vec!["u0".into()]),
            "startIndex below 1 counts as 1"
        );
        assert_eq!(d.page("Groups", 1, 10).0, 0);
    }
}
