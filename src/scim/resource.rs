//! SCIM User and Group resources (RFC 7643 §4) read into the normalized model.
//!
//! Liberal in: attribute names are matched case-insensitively (RFC 7643 §2.1), `active` may be
//! a JSON boolean or the strings "True"/"False" some IdPs send, and a missing `active` means
//! active. Strict about what a mirror cannot do without: a resource with no `id` is an error
//! naming the field.
use serde_json::{Map, Value};

use crate::model::{Group, User};

/// What is wrong with one resource; the caller adds the source and page.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{object}: field '{field}': {message}")]
pub struct ResourceError {
    /// The resource: its id, else its position.
    pub object: String,
    /// The field, as a path (`emails[0].value`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn string(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match get(obj, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value of the multi-valued attribute `key` to mirror: the primary one, else the one of
/// type `work`, else the first.
fn preferred(obj: &Map<String, Value>, key: &str) -> Option<String> {
    let items = get(obj, key)?.as_array()?;
    let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    let pick = objects
        .iter()
        .find(|o| matches!(get(o, "primary"), Some(Value::Bool(true))))
        .or_else(|| {
            objects
                .iter()
                .find(|o| string(o, "type").is_some_and(|t| t.eq_ignore_ascii_case("work")))
        })
        .or_else(|| objects.first())?;
    string(pick, "value")
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn object(raw: &str, kind: &str) -> Result<(Map<String, Value>, String), ResourceError> {
    let v: Value = serde_json::from_str(raw).map_err(|e| ResourceError {
        object: kind.into(),
        field: "(body)".into(),
        message: format!("not JSON: {e}"),
    })?;
    let Value::Object(obj) = v else {
        return Err(ResourceError {
            object: kind.into(),
            field: "(body)".into(),
            message: "not a JSON object".into(),
        });
    };
    let id = string(&obj, "id").filter(|s| !s.is_empty()).ok_or_else(|| ResourceError {
        object: kind.into(),
        field: "id".into(),
        message: "missing or empty".into(),
    })?;
    Ok((obj, id))
}

/// A SCIM User resource (its JSON text) as the model's user.
pub fn parse_user(raw: &str) -> Result<User, ResourceError> {
    let mut user = user_fields(raw)?;
    user.raw = raw.to_string();
    Ok(user)
}

/// [`parse_user`] keeping the resource's own text as `raw` (no copy of it).
pub fn parse_user_owned(raw: Box<serde_json::value::RawValue>) -> Result<User, ResourceError> {
    let text: Box<str> = raw.into();
    let mut user = user_fields(&text)?;
    user.raw = text.into();
    Ok(user)
}

/// A User's fields, all but `raw`.
fn user_fields(raw: &str) -> Result<User, ResourceError> {
    let (obj, id) = object(raw, "User")?;
    let name = get(&obj, "name").and_then(Value::as_object);
    let active = match get(&obj, "active") {
        None | Some(Value::Null) => true,
        Some(v) => boolean(v).ok_or_else(|| ResourceError {
            object: format!("User {id}"),
            field: "active".into(),
            message: format!("expected a boolean, found {v}"),
        })?,
    };
    Ok(User {
        user_name: string(&obj, "userName"),
        external_id: string(&obj, "externalId"),
        given_name: name.and_then(|n| string(n, "givenName")),
        family_name: name.and_then(|n| string(n, "familyName")),
        formatted: name.and_then(|n| string(n, "formatted")),
        display_name: string(&obj, "displayName"),
        email: preferred(&obj, "emails"),
        active,
        title: string(&obj, "title"),
        phone: preferred(&obj, "phoneNumbers"),
        timezone: string(&obj, "timezone"),
        role: preferred(&obj, "roles"),
        status_raw: None,
        attributes: crate::attributes::of_scim_user(&obj),
        raw: String::new(),
        id,
    })
}

/// A group and the ids of its direct User members. Members of `type` "Group" (nested groups)
/// are not user memberships and are skipped. The group's `raw` is the object without its
/// `members`, which are mirrored as memberships (and would make a large group's row huge).
pub fn parse_group(raw: &str) -> Result<(Group, Vec<String>), ResourceError> {
    let (mut obj, id) = object(raw, "Group")?;
    let display_name = string(&obj, "displayName").ok_or_else(|| ResourceError {
        object: format!("Group {id}"),
        field: "displayName".into(),
        message: "missing".into(),
    })?;
    let mut members = Vec::new();
    if let Some(list) = get(&obj, "members").and_then(Value::as_array) {
        for m in list.iter().filter_map(Value::as_object) {
            if string(m, "type").is_some_and(|t| t.eq_ignore_ascii_case("group")) {
                continue;
            }
            let value = string(m, "value").ok_or_else(|| ResourceError {
                object: format!("Group {id}"),
                field: "members.value".into(),
                message: "a member has no value".into(),
            })?;
            members.push(value);
        }
    }
    let external_id = string(&obj, "externalId");
    let members_key = obj.keys().find(|k| k.eq_ignore_ascii_case("members")).cloned();
    if let Some(k) = members_key {
        obj.remove(&k);
    }
    let raw = Value::Object(obj).to_string();
    Ok((
        Group {
            external_id,
            display_name,
            raw,
            id,
        },
        members,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7643_8_2_full_user() {
        let u = parse_user(include_str!("../../tests/fixtures/scim/rfc7643-8.2-full-user.json")).unwrap();
        assert_eq!(u.id, "2819c223-7f76-453a-919d-413861904646");
        assert_eq!(u.user_name.as_deref(), Some("bjensen@example.com"));
        assert_eq!(u.external_id.as_deref(), Some("701984"));
        assert_eq!(u.given_name.as_deref(), Some("Barbara"));
        assert_eq!(u.family_name.as_deref(), Some("Jensen"));
        assert_eq!(u.formatted.as_deref(), Some("Ms. Barbara J Jensen, III"));
        assert_eq!(u.email.as_deref(), Some("bjensen@example.com"));
        assert_eq!(u.phone.as_deref(), Some("555-555-5555"));
        assert_eq!(u.title.as_deref(), Some("Tour Guide"));
        assert_eq!(u.timezone.as_deref(), Some("America/Los_Angeles"));
        assert!(u.active);
        assert_eq!(u.role, None);
    }

    #[test]
    fn rfc7643_8_4_group() {
        let (g, members) = parse_group(include_str!("../../tests/fixtures/scim/rfc7643-8.4-group.json")).unwrap();
        assert_eq!(g.display_name, "Tour Guides");
        assert_eq!(
            members,
            vec!["2819c223-7f76-453a-919d-413861904646", "902c246b-6245-4190-8e05-00816be7344a"]
        );
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_active_may_be_a_string() {
        let u = parse_user(
            r#"{"ID":"1","USERNAME":"a","Active":"False","Emails":[{"Value":"x@y","Type":"home"},{"value":"w@y","type":"Work"}]}"#,
        )
        .unwrap();
        assert_eq!(u.user_name.as_deref(), Some("a"));
        assert!(!u.active);
        assert_eq!(u.email.as_deref(), Some("w@y"));
    }

    #[test]
    fn missing_active_means_active() {
        assert!(parse_user(r#"{"id":"1","userName":"a"}"#).unwrap().active);
    }

    #[test]
    fn errors_name_the_object_and_field() {
        assert_eq!(
            parse_user(r#"{"userName":"a"}"#).unwrap_err().to_string(),
            "User: field 'id': missing or empty"
        );
        assert_eq!(
            parse_user(r#"{"id":"7","active":3}"#).unwrap_err().to_string(),
            "User 7: field 'active': expected a boolean, found 3"
        );
        assert_eq!(
            parse_group(r#"{"id":"g"}"#).unwrap_err().to_string(),
            "Group g: field 'displayName': missing"
        );
    }

    #[test]
    fn nested_group_members_are_skipped() {
        let (_, m) = parse_group(r#"{"id":"g","displayName":"G","members":[{"value":"u1"},{"value":"g2","type":"Group"}]}"#).unwrap();
        assert_eq!(m, vec!["u1"]);
    }
}
