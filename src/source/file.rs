//! `kind = "file"`: a JSON snapshot exported from any directory. The format (documented in
//! the README) uses JumpCloud's attribute names (docs/architecture.md, "The attribute mapping"):
//!
//! ```json
//! {"users":  [{"id": "u1", "username": "alice@example.com", "email": "alice@example.com",
//!              "firstname": "Alice", "lastname": "Smith", "displayName": "Alice Smith",
//!              "employeeIdentifier": "E1001", "active": true, "status": "ACTIVATED",
//!              "jobTitle": "Engineer", "phone": "+1 555 0100", "timezone": "Europe/Paris"}],
//!  "groups": [{"id": "g1", "name": "Engineering", "members": ["u1"]}]}
//! ```
//!
//! Only `id` (users, groups) and `name` (groups) are required; `active` defaults to true.
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::attributes::{custom_key, Attributes, IDP_STANDARD};
use crate::model::{Group, Memberships, Snapshot, User};

use super::{IdpSource, Progress, SourceError};

/// The `file` IdP: a JSON document read whole.
pub struct FileIdp {
    name: String,
    path: PathBuf,
}

impl FileIdp {
    /// A connector for `name` (`idp.NAME`) reading `path`.
    pub fn new(name: String, path: PathBuf) -> FileIdp {
        FileIdp { name, path }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document<'a> {
    #[serde(borrow, default)]
    users: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    groups: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    id: String,
    username: Option<String>,
    email: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "employeeIdentifier")]
    employee_identifier: Option<String>,
    active: Option<bool>,
    status: Option<String>,
    #[serde(rename = "jobTitle")]
    job_title: Option<String>,
    phone: Option<String>,
    timezone: Option<String>,
    role: Option<String>,
    /// Standard fields by their neutral names (`department`, `manager_id`, …) and custom
    /// attributes, each a text, number or boolean.
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    id: String,
    name: String,
    #[serde(rename = "employeeIdentifier", alias = "externalId")]
    external_id: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

/// Parse a snapshot document; errors name the array index, the object id and the field.
pub fn parse_document(text: &str) -> Result<Snapshot, String> {
    let doc: Document = serde_json::from_str(text).map_err(|e| format!("not a scimsync directory document: {e}"))?;
    let users = in_parts(&doc.users, |first, part| {
        let mut users = Vec::with_capacity(part.len());
        for (i, raw) in (first..).zip(part) {
            users.push(parse_user(raw, i)?.into());
        }
        Ok(users)
    })?;
    let mut snap = Snapshot {
        users: users.into_iter().flatten().collect(),
        ..Snapshot::default()
    };
    let user_ids: rustc_hash::FxHashSet<&str> = snap.users.iter().map(|u| u.id()).collect();
    for (groups, memberships) in in_parts(&doc.groups, |first, part| {
        let mut groups = Vec::with_capacity(part.len());
        let mut memberships = Memberships::default();
        for (i, raw) in (first..).zip(part) {
            groups.push(parse_group(raw, i, &user_ids, &mut memberships)?);
        }
        Ok((groups, memberships))
    })? {
        snap.groups.extend(groups);
        snap.memberships.append(memberships);
    }
    Ok(snap)
}

/// `parse` over consecutive parts of `items` on the machine's cores (the first error in array
/// order wins); `parse` gets each part's first index.
fn in_parts<'a, T: Send>(
    items: &'a [&'a RawValue],
    parse: impl Fn(usize, &'a [&'a RawValue]) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = items.len().div_ceil(cores).max(10_000);
    let parse = &parse;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(size)
            .enumerate()
            .map(|(k, part)| s.spawn(move || parse(k * size, part)))
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().expect("a parser thread does not panic"))
            .collect()
    })
}

fn parse_user(raw: &RawValue, i: usize) -> Result<User, String> {
    let u: FileUser = parse_item(raw.get(), "users", i)?;
    if u.id.is_empty() {
        return Err(format!("users[{i}]: field 'id': empty"));
    }
    let mut attributes = Attributes::default();
    for (key, value) in &u.attributes {
        if value.is_object() || value.is_array() {
            return Err(format!(
                "users[{i}] (id '{}'): field 'attributes.{key}': expected a text, number or boolean",
                u.id
            ));
        }
        let key = if IDP_STANDARD.contains(&key.as_str()) {
            key.clone()
        } else {
            custom_key(key)
        };
        attributes.put_scalar(key, value);
    }
    Ok(User {
        attributes: attributes.into_json(),
        id: u.id,
        user_name: u.username,
        external_id: u.employee_identifier,
        given_name: u.firstname,
        family_name: u.lastname,
        formatted: None,
        display_name: u.display_name,
        email: u.email,
        active: u.active.unwrap_or(true),
        title: u.job_title,
        phone: u.phone,
        timezone: u.timezone,
        role: u.role,
        status_raw: u.status,
        raw: raw.get().to_string(),
    })
}

/// One group; its members go to `memberships`, each checked to be a user of the file.
fn parse_group(raw: &RawValue, i: usize, user_ids: &rustc_hash::FxHashSet<&str>, memberships: &mut Memberships) -> Result<Group, String> {
    let g: FileGroup = parse_item(raw.get(), "groups", i)?;
    if g.id.is_empty() {
        return Err(format!("groups[{i}]: field 'id': empty"));
    }
    if let Some(ghost) = g.members.iter().find(|m| !user_ids.contains(m.as_str())) {
        return Err(format!(
            "groups[{i}] (id \"{}\"): field 'members': '{ghost}' is not the id of a user in this file",
            g.id
        ));
    }
    let raw = serde_json::json!({"id": g.id, "name": g.name, "externalId": g.external_id}).to_string();
    for user_id in &g.members {
        memberships.push(&g.id, user_id);
    }
    Ok(Group {
        id: g.id,
        display_name: g.name,
        external_id: g.external_id,
        raw,
    })
}

/// Parse one array item. The fast path is plain serde; only when it fails is the item parsed
/// again with `serde_path_to_error`, for a message naming the field.
fn parse_item<T: serde::de::DeserializeOwned>(raw: &str, array: &str, i: usize) -> Result<T, String> {
    serde_json::from_str(raw).or_else(|_| {
        let de = &mut serde_json::Deserializer::from_str(raw);
        serde_path_to_error::deserialize(de).map_err(|e| format!("{array}[{i}]{}: field '{}': {}", id_hint(raw), e.path(), e.inner()))
    })
}

/// ` (id "u7")` when the object has a readable id, for error messages.
fn id_hint(raw: &str) -> String {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<IdOnly>(raw).ok().and_then(|o| o.id) {
        Some(serde_json::Value::String(s)) => format!(" (id \"{s}\")"),
        _ => String::new(),
    }
}

#[async_trait]
impl IdpSource for FileIdp {
    fn name(&self) -> &str {
        &self.name
    }

    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        let path = self.path.clone();
        let err = |message: String| SourceError::File {
            source_name: self.name.clone(),
            path: self.path.display().to_string(),
            message,
        };
        let parsed = tokio::task::spawn_blocking(move || -> Result<Snapshot, String> {
            let t = std::time::Instant::now();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"))?;
            let snap = parse_document(&text);
            tracing::debug!(seconds = t.elapsed().as_secs_f64(), "file read and parsed");
            snap
        })
        .await
        .map_err(|e| err(format!("reader task failed: {e}")))?
        .map_err(err)?;
        progress("users", parsed.users.len() as u64, parsed.users.len() as u64);
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_groups_and_members() {
        let s = parse_document(r#"{"users":[{"id":"u1","username":"a","active":false,"status":"SUSPENDED"},{"id":"u2"}],"groups":[{"id":"g1","name":"Eng","members":["u1","u2"]}]}"#).unwrap();
        assert_eq!(s.users.len(), 2);
        assert!(!s.users[0].active() && s.users[1].active());
        assert_eq!(s.users[0].unpack().status_raw.as_deref(), Some("SUSPENDED"));
        assert_eq!(s.memberships.len(), 2);
        assert_eq!(s.groups[0].display_name, "Eng");
    }

    #[test]
    fn errors_name_index_id_and_field() {
        let e = parse_document(r#"{"users":[{"id":"u1"},{"id":"u7","active":"yes"}]}"#).unwrap_err();
        assert!(
            e.starts_with("users[1] (id \"u7\"): field 'active': invalid type: string \"yes\", expected a boolean"),
            "{e}"
        );
        let e = parse_document(r#"{"users":[],"groups":[{"id":"g1"}]}"#).unwrap_err();
        assert!(e.contains("groups[0]") && e.contains("name"), "{e}");
        let e = parse_document(r#"{"users":[{"id":"u1","frist":"x"}]}"#).unwrap_err();
        assert!(e.contains("users[0]") && e.contains("frist"), "{e}");
    }

    /// Large arrays are parsed in parts on several threads: the result is in file order and an
    /// error names its index in the whole array.
    #[test]
    fn large_files_parse_in_order_and_errors_keep_their_index() {
        let n = 25_000;
        let doc = |bad_user: Option<usize>, ghost_group: Option<usize>| {
            let users: Vec<String> = (0..n)
                .map(|i| match bad_user {
                    Some(b) if b == i => format!(r#"{{"id":"u{i}","active":"no"}}"#),
                    _ => format!(r#"{{"id":"u{i}"}}"#),
                })
                .collect();
            let groups: Vec<String> = (0..n)
                .map(|i| {
                    let member = if ghost_group == Some(i) {
                        "nobody".to_string()
                    } else {
                        format!("u{i}")
                    };
                    format!(r#"{{"id":"g{i}","name":"G{i}","members":["{member}","u0"]}}"#)
                })
                .collect();
            format!(r#"{{"users":[{}],"groups":[{}]}}"#, users.join(","), groups.join(","))
        };
        let s = parse_document(&doc(None, None)).unwrap();
        assert!(s.users.iter().enumerate().all(|(i, u)| u.id() == format!("u{i}")));
        assert!(s.groups.iter().enumerate().all(|(i, g)| g.id == format!("g{i}")));
        assert_eq!(s.memberships.len(), 2 * n);
        assert!(
            s.memberships
                .iter()
                .enumerate()
                .all(|(k, m)| m.group_id == format!("g{}", k / 2)
                    && m.user_id == if k % 2 == 0 { format!("u{}", k / 2) } else { "u0".into() })
        );

        let e = parse_document(&doc(Some(23_456), None)).unwrap_err();
        assert!(e.starts_with("users[23456] (id \"u23456\"): field 'active'"), "{e}");
        let e = parse_document(&doc(Some(17_000), Some(3))).unwrap_err();
        assert!(e.starts_with("users[17000]"), "users come before groups: {e}");
        let e = parse_document(&doc(None, Some(24_999))).unwrap_err();
        assert!(e.starts_with("groups[24999] (id \"g24999\"): field 'members': 'nobody'"), "{e}");
    }
}
