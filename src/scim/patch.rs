//! RFC 7644 §3.5.2 PatchOp bodies, the one PATCH model: [`Operation`] over any value type (the
//! planner's typed, borrowed values; JSON values elsewhere) and [`Request`], the body. Strict
//! out: lower-case `op` names, JSON booleans. Also applying a PATCH to a resource (the
//! emulators, the read-modify-write PUT).
use serde::Serialize;
use serde_json::{json, Value};

use super::filter::json_string;
use super::PATCH_SCHEMA;

/// A PATCH operation's `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// §3.5.2.1.
    Add,
    /// §3.5.2.2.
    Remove,
    /// §3.5.2.3.
    Replace,
}

/// One PATCH operation; `V` is what its value is made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation<V = Value> {
    /// What it does.
    pub op: Op,
    /// Where (an attribute path; absent: the resource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value it adds or sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<V>,
}

impl<V> Operation<V> {
    /// §3.5.2.3: replace the value at `path`.
    pub fn replace(path: &str, value: V) -> Self {
        Operation {
            op: Op::Replace,
            path: Some(path.to_string()),
            value: Some(value),
        }
    }

    /// §3.5.2.1: add `value` at `path`.
    pub fn add(path: &str, value: V) -> Self {
        Operation {
            op: Op::Add,
            path: Some(path.to_string()),
            value: Some(value),
        }
    }

    /// §3.5.2.2: remove the attribute at `path`.
    pub fn remove(path: &str) -> Self {
        Operation {
            op: Op::Remove,
            path: Some(path.to_string()),
            value: None,
        }
    }

    /// §3.5.2.2: remove one member by a value filter on `members`.
    pub fn remove_member(id: &str) -> Self {
        Operation {
            op: Op::Remove,
            path: Some(format!("members[value eq {}]", json_string(id))),
            value: None,
        }
    }
}

/// A PatchOp request body (§3.5.2): its operations, in order.
#[derive(Debug, Serialize)]
pub struct Request<V> {
    /// The operations, in order.
    #[serde(rename = "Operations")]
    pub operations: Vec<Operation<V>>,
    /// `urn:ietf:params:scim:api:messages:2.0:PatchOp`.
    pub schemas: [&'static str; 1],
}

impl<V> Request<V> {
    /// The body for `operations`.
    pub fn new(operations: Vec<Operation<V>>) -> Request<V> {
        Request {
            operations,
            schemas: [PATCH_SCHEMA],
        }
    }
}

impl Operation {
    /// §3.5.2.1: add members (appended; re-adding an existing member changes nothing).
    pub fn add_members<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let members: Vec<Value> = ids.into_iter().map(|id| json!({"value": id})).collect();
        Operation {
            op: Op::Add,
            path: Some("members".into()),
            value: Some(Value::Array(members)),
        }
    }
}

/// The PatchOp request body for `ops`.
pub fn body(ops: &[Operation]) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

/// Parse `attr[value eq "x"]` (the member-removal path); returns (attr, x).
fn value_filter(path: &str) -> Option<(&str, String)> {
    let (attr, rest) = path.split_once('[')?;
    let inner = rest.strip_suffix(']')?.trim();
    let (lhs, rhs) = inner.split_once(' ')?;
    let rhs = rhs.trim_start().strip_prefix("eq")?.trim();
    if !lhs.eq_ignore_ascii_case("value") {
        return None;
    }
    let v: String = serde_json::from_str(rhs).ok()?;
    Some((attr, v))
}

fn key_of(obj: &serde_json::Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// An attribute path with its schema URN split off (RFC 7644 §3.10: `urn:…:User:department`
/// is the `department` attribute of the extension `urn:…:User`); a core path has none.
pub fn split_urn(path: &str) -> (Option<&str>, &str) {
    if path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        if let Some((schema, attr)) = path.rsplit_once(':') {
            return (Some(schema), attr);
        }
    }
    (None, path)
}

/// Set an attribute, an extension's included: its schema is added to `schemas` when missing.
fn set(resource: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    match split_urn(path) {
        (Some(schema), attr) => {
            let obj = resource.as_object_mut().ok_or("the resource is not an object")?;
            let schemas = obj.entry("schemas").or_insert_with(|| json!([]));
            if let Some(list) = schemas.as_array_mut() {
                if !list.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(schema))) {
                    list.push(json!(schema));
                }
            }
            let k = key_of(obj, schema);
            let ext = obj.entry(k).or_insert_with(|| json!({}));
            if !ext.is_object() {
                *ext = json!({});
            }
            set_in(ext, attr, value, add)
        }
        (None, attr) => set_in(resource, attr, value, add),
    }
}

fn set_in(resource: &mut Value, path: &str, value: Value, add: bool) -> Result<(), String> {
    let obj = resource.as_object_mut().ok_or("the resource is not an object")?;
    match path.split_once('.') {
        Some((parent, child)) => {
            let k = key_of(obj, parent);
            let entry = obj.entry(k).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            set_in(entry, child, value, add)
        }
        None => {
            let k = key_of(obj, path);
            match (add, obj.get_mut(&k), value) {
                // §3.5.2.1: add to a multi-valued attribute appends (no duplicates).
                (true, Some(Value::Array(existing)), Value::Array(new)) => {
                    for item in new {
                        if !existing.contains(&item) {
                            existing.push(item);
                        }
                    }
                }
                (_, _, value) => {
                    obj.insert(k, value);
                }
            }
            Ok(())
        }
    }
}

/// Apply a PatchOp's `Operations` to a resource (RFC 7644 §3.5.2): add/replace with a simple or
/// dotted path, add/replace without a path (merge), remove by path or by `attr[value eq "x"]`.
/// Used by the emulators, and by apply for apps that take PUT only.
pub fn apply(resource: &mut Value, operations: &[Value]) -> Result<(), String> {
    for (i, o) in operations.iter().enumerate() {
        let op = o
            .get("op")
            .and_then(Value::as_str)
            .ok_or(format!("Operations[{i}]: no op"))?
            .to_ascii_lowercase();
        let path = o.get("path").and_then(Value::as_str);
        let value = o.get("value").cloned();
        match (op.as_str(), path, value) {
            ("add" | "replace", Some(p), Some(v)) => set(resource, p, v, op == "add")?,
            ("add" | "replace", None, Some(Value::Object(m))) => {
                for (k, v) in m {
                    set(resource, &k, v, op == "add")?;
                }
            }
            ("remove", Some(p), _) => {
                let (schema, p) = split_urn(p);
                let mut obj = resource.as_object_mut().ok_or("the resource is not an object")?;
                if let Some(schema) = schema {
                    let k = key_of(obj, schema);
                    match obj.get_mut(&k).and_then(Value::as_object_mut) {
                        Some(ext) => obj = ext,
                        None => continue,
                    }
                }
                if let Some((attr, wanted)) = value_filter(p) {
                    let k = key_of(obj, attr);
                    if let Some(Value::Array(items)) = obj.get_mut(&k) {
                        items.retain(|m| m.get("value").and_then(Value::as_str) != Some(wanted.as_str()));
                    }
                } else if let Some((parent, child)) = p.split_once('.') {
                    let k = key_of(obj, parent);
                    if let Some(Value::Object(inner)) = obj.get_mut(&k) {
                        let ck = key_of(inner, child);
                        inner.remove(&ck);
                    }
                } else {
                    let k = key_of(obj, p);
                    obj.remove(&k);
                }
            }
            (op, _, _) => return Err(format!("Operations[{i}]: unsupported op '{op}' or missing value")),
        }
    }
    Ok(())
}

/// The body of a read-modify-write PUT (RFC 7644 §3.5.1 replaces the whole resource, and a
/// server may clear what the body leaves out): the resource as the SP just returned it, with
/// only what scimsync manages changed, so extension schemas, phone numbers and anything the app
/// added go back unchanged. `planned` is either a PatchOp body (its operations are applied) or
/// a whole resource as planned (a group's `displayName` and `members`: each attribute it names
/// replaces the current one; `schemas` and `id` are the server's). `meta` is read-only
/// (RFC 7643 §3.1) and is not sent back.
pub fn put_body(current: &Value, planned: &Value) -> Result<Value, String> {
    let mut resource = current.clone();
    if !resource.is_object() {
        return Err("the current resource is not a JSON object".into());
    }
    match planned.get("Operations").and_then(Value::as_array) {
        Some(ops) => apply(&mut resource, ops)?,
        None => {
            let planned = planned.as_object().ok_or("the planned body is not a JSON object")?;
            let obj = resource.as_object_mut().expect("checked above");
            for (k, v) in planned {
                if k == "schemas" || k == "id" {
                    continue;
                }
                let key = key_of(obj, k);
                obj.insert(key, v.clone());
            }
        }
    }
    if let Some(obj) = resource.as_object_mut() {
        let meta = key_of(obj, "meta");
        obj.remove(&meta);
    }
    Ok(resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_body_changes_only_what_is_managed() {
        let current = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "u1", "userName": "ann", "active": true, "externalId": "E1",
            "name": {"givenName": "Ann", "familyName": "Old", "middleName": "Q"},
            "phoneNumbers": [{"value": "555", "type": "mobile"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
            "meta": {"resourceType": "User", "version": "W/\"3\""}
        });
        let planned = body(&[
            Operation::replace("name.familyName", json!("New")),
            Operation::replace("active", json!(false)),
        ]);
        let put = put_body(&current, &planned).unwrap();
        let mut want = current.clone();
        want["name"]["familyName"] = json!("New");
        want["active"] = json!(false);
        want.as_object_mut().unwrap().remove("meta");
        assert_eq!(put, want);

        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "Old",
                           "externalId": "idp-g1", "members": [{"value": "a"}], "meta": {"version": "1"}});
        let whole = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "New", "members": [{"value": "b"}]});
        let put = put_body(&group, &whole).unwrap();
        assert_eq!(
            put,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "New",
                   "externalId": "idp-g1", "members": [{"value": "b"}]})
        );
    }

    #[test]
    fn extension_paths_set_and_remove_the_extension_attribute() {
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let mut u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a"});
        apply(
            &mut u,
            &[
                json!({"op": "replace", "path": format!("{ent}:department"), "value": "R&D"}),
                json!({"op": "replace", "path": format!("{ent}:manager"), "value": {"value": "m1"}}),
            ],
        )
        .unwrap();
        assert_eq!(
            u,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent], "userName": "a",
                   ent: {"department": "R&D", "manager": {"value": "m1"}}})
        );
        apply(&mut u, &[json!({"op": "remove", "path": format!("{ent}:manager")})]).unwrap();
        assert_eq!(u[ent], json!({"department": "R&D"}));
        assert_eq!(split_urn("name.givenName"), (None, "name.givenName"));
    }

    #[test]
    fn apply_handles_the_forms_scimsync_sends() {
        let mut g = json!({"displayName": "a", "members": [{"value": "1"}, {"value": "x\"y"}]});
        apply(
            &mut g,
            &[
                json!({"op": "replace", "path": "displayName", "value": "b"}),
                json!({"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]}),
                serde_json::to_value(Operation::<Value>::remove_member("x\"y")).unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(g, json!({"displayName": "b", "members": [{"value": "1"}, {"value": "2"}]}));
        let mut u = json!({"userName": "a", "name": {"givenName": "A"}, "active": true});
        apply(
            &mut u,
            &[
                json!({"op": "replace", "path": "name.familyName", "value": "B"}),
                json!({"op": "replace", "value": {"active": false}}),
            ],
        )
        .unwrap();
        assert_eq!(
            u,
            json!({"userName": "a", "name": {"givenName": "A", "familyName": "B"}, "active": false})
        );
    }

    #[test]
    fn deactivate_is_a_lowercase_replace_with_a_json_boolean() {
        let b = body(&[Operation::replace("active", json!(false))]);
        assert_eq!(
            b,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": false}]})
        );
    }

    #[test]
    fn member_removal_escapes_the_id() {
        let op = Operation::<Value>::remove_member(r#"a"b\c"#);
        assert_eq!(op.path.as_deref(), Some(r#"members[value eq "a\"b\\c"]"#));
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"op": "remove", "path": "members[value eq \"a\\\"b\\\\c\"]"})
        );
    }

    #[test]
    fn member_add_lists_values() {
        let op = Operation::add_members(["1", "2"]);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            json!({"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]})
        );
    }
}
