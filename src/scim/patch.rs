//! RFC 7644 §3.5.2 PatchOp bodies. Strict out: lower-case `op` names, JSON booleans.
use serde::Serialize;
use serde_json::{json, Value};

use super::filter::json_string;
use super::PATCH_SCHEMA;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl Operation {
    pub fn replace(path: &str, value: Value) -> Self {
        Operation {
            op: Op::Replace,
            path: Some(path.to_string()),
            value: Some(value),
        }
    }

    /// §3.5.2.1: add members (appended; re-adding an existing member changes nothing).
    pub fn add_members<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let members: Vec<Value> = ids.into_iter().map(|id| json!({"value": id})).collect();
        Operation {
            op: Op::Add,
            path: Some("members".into()),
            value: Some(Value::Array(members)),
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

/// The PatchOp request body for `ops`.
pub fn body(ops: &[Operation]) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let op = Operation::remove_member(r#"a"b\c"#);
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
