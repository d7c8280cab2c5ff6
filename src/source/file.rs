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
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::attributes::{custom_key, Attributes, IDP_STANDARD};
use crate::model::{Group, Memberships, PackedUser, Snapshot, User};

use super::{IdpSource, Progress, SourceError};

/// The `file` IdP: a JSON document, parsed as it is read.
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
    parse_from(&mut serde_json::Deserializer::from_str(text))
}

/// [`parse_document`] of a document read as it is parsed: its users are parsed a batch at a
/// time, so its text is never held whole (361 MB for 1M users, which a pull held beside the
/// snapshot parsed from it: 1.14 GiB at its peak).
pub fn parse_reader(reader: impl std::io::Read) -> Result<Snapshot, String> {
    parse_from(&mut serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
        1 << 20,
        reader,
    )))
}

/// Users parsed at a time while the document is read.
const USER_BATCH: usize = 1 << 16;

fn parse_from<'de, R: serde_json::de::Read<'de>>(de: &mut serde_json::Deserializer<R>) -> Result<Snapshot, String> {
    let mut item_error = None;
    let parsed = DocumentSeed {
        item_error: &mut item_error,
    }
    .deserialize(&mut *de)
    .and_then(|doc| de.end().map(|()| doc));
    let (users, groups) = match (parsed, item_error) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(format!("not a scimsync directory document: {e}")),
        (Ok(doc), None) => doc,
    };
    let mut snap = Snapshot {
        users,
        ..Snapshot::default()
    };
    let user_ids: rustc_hash::FxHashSet<&str> = snap.users.iter().map(|u| u.id()).collect();
    let groups: Vec<&RawValue> = groups.iter().map(|g| &**g).collect();
    for (groups, memberships) in in_parts(&groups, |first, part| {
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

/// The document: `{"users": [...], "groups": [...]}`, either may be missing. Users are parsed as
/// they are read; groups are kept as text until every user is known (their members are checked
/// against the users). An item's own error (its index, id and field) goes to `item_error`.
struct DocumentSeed<'e> {
    item_error: &'e mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = (Vec<PackedUser>, Vec<Box<RawValue>>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = (Vec<PackedUser>, Vec<Box<RawValue>>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with `users` and `groups`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut users, mut groups) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "users" if users.is_some() => return Err(de::Error::duplicate_field("users")),
                "groups" if groups.is_some() => return Err(de::Error::duplicate_field("groups")),
                "users" => {
                    users = Some(map.next_value_seed(UsersSeed {
                        item_error: &mut *self.item_error,
                    })?)
                }
                "groups" => groups = Some(map.next_value::<Vec<Box<RawValue>>>()?),
                other => return Err(de::Error::unknown_field(other, &["users", "groups"])),
            }
        }
        Ok((users.unwrap_or_default(), groups.unwrap_or_default()))
    }
}

/// The `users` array, parsed [`USER_BATCH`] items at a time on the machine's cores.
struct UsersSeed<'e> {
    item_error: &'e mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for UsersSeed<'_> {
    type Value = Vec<PackedUser>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = Vec<PackedUser>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut users: Vec<PackedUser> = Vec::new();
        let mut batch: Vec<Box<RawValue>> = Vec::with_capacity(USER_BATCH);
        loop {
            let next = seq.next_element::<Box<RawValue>>()?;
            let done = next.is_none();
            batch.extend(next);
            if batch.len() == USER_BATCH || (done && !batch.is_empty()) {
                let raws: Vec<&RawValue> = batch.iter().map(|b| &**b).collect();
                let base = users.len();
                let parsed = in_parts(&raws, |first, part| {
                    let mut users = Vec::with_capacity(part.len());
                    for (i, raw) in (base + first..).zip(part) {
                        users.push(PackedUser::from(parse_user(raw, i)?));
                    }
                    Ok(users)
                });
                match parsed {
                    Ok(parts) => users.extend(parts.into_iter().flatten()),
                    Err(e) => {
                        *self.item_error = Some(e);
                        return Err(de::Error::custom("a user is not valid"));
                    }
                }
                batch.clear();
            }
            if done {
                return Ok(users);
            }
        }
    }
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
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read: {e}"))?;
            let snap = parse_reader(file);
            // The batches' text, freed between the users parsed from it, goes back to the system.
            crate::memory::release_freed();
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

    /// A file is parsed as it is read, [`USER_BATCH`] users at a time: the same snapshot as the
    /// text parsed whole, in order, and an error names its index in the whole array, past the
    /// first batch too. (Read whole, a 1M-user file's 361 MB were held beside the users parsed
    /// from it: the pull peaked at 1.14 GiB, now 0.85 GiB while it reads.)
    #[test]
    fn a_file_read_as_it_is_parsed_gives_the_document_parsed_whole() {
        let n = USER_BATCH + 1_000;
        let doc = |bad_user: Option<usize>| {
            let users: Vec<String> = (0..n)
                .map(|i| match bad_user {
                    Some(b) if b == i => format!(r#"{{"id":"u{i}","active":"no"}}"#),
                    _ => format!(
                        r#"{{"id":"u{i}","username":"user{i}@x.com","attributes":{{"department":"D{}"}}}}"#,
                        i % 7
                    ),
                })
                .collect();
            // Groups first: their members are checked once every user is known.
            format!(
                r#"{{"groups":[{{"id":"g1","name":"All","members":["u0","u{}"]}}],"users":[{}]}}"#,
                n - 1,
                users.join(",")
            )
        };
        let text = doc(None);
        let whole = parse_document(&text).unwrap();
        let read = parse_reader(text.as_bytes()).unwrap();
        assert_eq!(read.users.len(), n);
        for (a, b) in whole.users.iter().zip(&read.users) {
            assert_eq!(a.unpack(), b.unpack());
        }
        assert_eq!(read.groups[0].display_name, "All");
        assert_eq!(read.memberships.len(), 2);
        assert!(read.memberships.iter().all(|m| m.group_id == "g1"));

        let bad = USER_BATCH + 17;
        let e = parse_reader(doc(Some(bad)).as_bytes()).unwrap_err();
        assert!(e.starts_with(&format!("users[{bad}] (id \"u{bad}\"): field 'active'")), "{e}");
        for (text, want) in [
            (r#"{"users":[],"people":[]}"#, "unknown field `people`"),
            (r#"{"users":[],"users":[]}"#, "duplicate field `users`"),
            (r#"{"users":[{"id":"u1"}]} x"#, "trailing characters"),
            (r#"{"users":[{"id":"u1"}"#, "EOF"),
        ] {
            for e in [parse_reader(text.as_bytes()).unwrap_err(), parse_document(text).unwrap_err()] {
                assert!(
                    e.starts_with("not a scimsync directory document: ") && e.contains(want),
                    "{text}: {e}"
                );
            }
        }
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
