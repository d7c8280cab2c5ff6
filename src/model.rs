//! The vendor-neutral directory model every connector produces and the store writes.

/// A user as mirrored from any source, with the SCIM attribute names of the mapping in
/// docs/architecture.md.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    /// Its id in its source.
    pub id: String,
    /// `userName` (the login).
    pub user_name: Option<String>,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
    /// `name.formatted`.
    pub formatted: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The primary email.
    pub email: Option<String>,
    /// Active in its source.
    pub active: bool,
    /// `title`.
    pub title: Option<String>,
    /// The work phone.
    pub phone: Option<String>,
    /// `timezone`.
    pub timezone: Option<String>,
    /// The role (apps with a role attribute).
    pub role: Option<String>,
    /// The source's own status word where it has one (`SUSPENDED`, `DEPROVISIONED`, …); `active`
    /// is the lossy mapping of it.
    pub status_raw: Option<String>,
    /// The attributes beyond these columns, as one JSON object of text values with sorted keys
    /// (see [`crate::attributes`]): an IdP's standard and custom profile fields, an app's every
    /// attribute by its SCIM path. `None` when there are none.
    pub attributes: Option<String>,
    /// The object as the source returned it (JSON).
    pub raw: String,
}

// By path, so that the fuzz crate, which compiles this file from its own, finds it too.
#[path = "model/raw_codec.rs"]
mod raw_codec;

/// A [`User`] in one allocation, as a snapshot holds it: a pull holds a million users per
/// source, and as a `User` (fourteen strings, each its own allocation) one took ≈ 1.05 KB for
/// ≈ 390 bytes of JSON; packed, ≈ 0.55 KB, and ≈ 0.3 KB with the raw object compressed (see
/// `raw_codec`: a SCIM user's 377 bytes held in ≈ 94).
/// [`PackedUser::unpack`] gives the `User` back.
#[derive(Clone, PartialEq, Eq)]
pub struct PackedUser {
    /// The id, then every optional field present, back to back (UTF-8); then the raw object,
    /// compressed when [`RAW_COMPRESSED`] is set in `present`.
    bytes: Box<[u8]>,
    /// End of the id and of each optional field in `bytes` (an absent field is empty).
    ends: [u32; 1 + OPTIONAL_FIELDS],
    /// Bit `i`: optional field `i` is present; and [`RAW_COMPRESSED`].
    present: u16,
    active: bool,
    /// The raw object's length and hash (XXH3-64 of its bytes), so that comparing a pulled
    /// user with the stored one does not decompress it.
    raw_len: u32,
    raw_hash: u64,
}

const OPTIONAL_FIELDS: usize = 13;

/// In `present`: the raw object is compressed.
const RAW_COMPRESSED: u16 = 1 << 15;

/// The optional text fields of a [`User`], as [`PackedUser::get`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// `userName`.
    UserName,
    /// `externalId`.
    ExternalId,
    /// `name.givenName`.
    GivenName,
    /// `name.familyName`.
    FamilyName,
    /// `name.formatted`.
    Formatted,
    /// `displayName`.
    DisplayName,
    /// The primary email.
    Email,
    /// `title`.
    Title,
    /// The work phone.
    Phone,
    /// `timezone`.
    Timezone,
    /// The role.
    Role,
    /// The source's own status word.
    StatusRaw,
    /// The attributes beyond the columns (a JSON object).
    Attributes,
}

/// In [`UserField`]'s order.
fn optional_fields(u: &User) -> [&Option<String>; OPTIONAL_FIELDS] {
    [
        &u.user_name,
        &u.external_id,
        &u.given_name,
        &u.family_name,
        &u.formatted,
        &u.display_name,
        &u.email,
        &u.title,
        &u.phone,
        &u.timezone,
        &u.role,
        &u.status_raw,
        &u.attributes,
    ]
}

impl From<&User> for PackedUser {
    fn from(u: &User) -> Self {
        let fields = optional_fields(u).map(|f| f.as_deref());
        let raw_len = u32::try_from(u.raw.len()).expect("a user's raw object is under 4 GiB");
        let raw_hash = xxhash_rust::xxh3::xxh3_64(u.raw.as_bytes());
        raw_codec::compressed(&u.raw, |compressed| {
            let held = HeldRaw {
                bytes: compressed.unwrap_or(u.raw.as_bytes()),
                compressed: compressed.is_some(),
                len: raw_len,
                hash: raw_hash,
            };
            PackedUser::pack(&u.id, fields, held, u.active)
        })
    }
}

/// A raw object as a [`PackedUser`] holds it.
struct HeldRaw<'a> {
    bytes: &'a [u8],
    compressed: bool,
    len: u32,
    hash: u64,
}

impl From<User> for PackedUser {
    fn from(u: User) -> Self {
        PackedUser::from(&u)
    }
}

impl PackedUser {
    fn pack(id: &str, fields: [Option<&str>; OPTIONAL_FIELDS], raw: HeldRaw<'_>, active: bool) -> PackedUser {
        let len = id.len() + fields.iter().flatten().map(|f| f.len()).sum::<usize>() + raw.bytes.len();
        let mut bytes = Vec::with_capacity(len);
        let end = |bytes: &Vec<u8>| u32::try_from(bytes.len()).expect("a user's fields are under 4 GiB");
        let mut ends = [0; 1 + OPTIONAL_FIELDS];
        let mut present = 0;
        bytes.extend_from_slice(id.as_bytes());
        ends[0] = end(&bytes);
        for (i, f) in fields.iter().enumerate() {
            if let Some(v) = f {
                bytes.extend_from_slice(v.as_bytes());
                present |= 1 << i;
            }
            ends[i + 1] = end(&bytes);
        }
        bytes.extend_from_slice(raw.bytes);
        if raw.compressed {
            present |= RAW_COMPRESSED;
        }
        PackedUser {
            bytes: bytes.into_boxed_slice(),
            ends,
            present,
            active,
            raw_len: raw.len,
            raw_hash: raw.hash,
        }
    }

    /// The same user with other `attributes`; its raw object is kept as it is held (not
    /// decompressed and compressed again).
    pub fn with_attributes(&self, attributes: Option<&str>) -> PackedUser {
        let mut fields: [Option<&str>; OPTIONAL_FIELDS] = std::array::from_fn(|i| self.field(i));
        fields[UserField::Attributes as usize] = attributes;
        let raw = HeldRaw {
            bytes: &self.bytes[self.ends[OPTIONAL_FIELDS] as usize..],
            compressed: self.present & RAW_COMPRESSED != 0,
            len: self.raw_len,
            hash: self.raw_hash,
        };
        PackedUser::pack(self.id(), fields, raw, self.active)
    }

    /// Optional field `i` (in [`UserField`]'s order).
    fn field(&self, i: usize) -> Option<&str> {
        (self.present & (1 << i) != 0).then(|| self.text(self.ends[i], self.ends[i + 1]))
    }

    /// Text of `bytes[start..end]`: the id and the fields were copied from `&str`s.
    fn text(&self, start: u32, end: u32) -> &str {
        std::str::from_utf8(&self.bytes[start as usize..end as usize]).expect("a user's fields are text")
    }

    /// Its id.
    pub fn id(&self) -> &str {
        self.text(0, self.ends[0])
    }

    /// Active in its source.
    pub fn active(&self) -> bool {
        self.active
    }

    /// One optional field.
    pub fn get(&self, field: UserField) -> Option<&str> {
        self.field(field as usize)
    }

    /// The object as the source returned it (JSON), decompressed when it is held compressed.
    pub fn raw(&self) -> std::borrow::Cow<'_, str> {
        let start = self.ends[OPTIONAL_FIELDS];
        if self.present & RAW_COMPRESSED == 0 {
            return std::borrow::Cow::Borrowed(self.text(start, self.bytes.len() as u32));
        }
        std::borrow::Cow::Owned(raw_codec::decompress(&self.bytes[start as usize..], self.raw_len as usize))
    }

    /// XXH3-64 of the raw object's bytes (without decompressing it).
    pub fn raw_hash(&self) -> u64 {
        self.raw_hash
    }

    /// The whole user.
    pub fn unpack(&self) -> User {
        use UserField::*;
        let f = |field| self.get(field).map(str::to_string);
        User {
            id: self.id().to_string(),
            user_name: f(UserName),
            external_id: f(ExternalId),
            given_name: f(GivenName),
            family_name: f(FamilyName),
            formatted: f(Formatted),
            display_name: f(DisplayName),
            email: f(Email),
            title: f(Title),
            phone: f(Phone),
            timezone: f(Timezone),
            role: f(Role),
            status_raw: f(StatusRaw),
            attributes: f(Attributes),
            active: self.active,
            raw: self.raw().into_owned(),
        }
    }
}

impl std::fmt::Debug for PackedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.unpack().fmt(f)
    }
}

/// A group as mirrored from any source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Its id in its source.
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// The object as the source gave it (JSON).
    pub raw: String,
}

/// A direct membership edge: user `user_id` is a member of group `group_id`. Owned as built by
/// connectors; [`Memberships::iter`] lends `Membership<&str>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Membership<S = String> {
    /// The group.
    pub group_id: S,
    /// The member.
    pub user_id: S,
}

/// Strings kept back to back in one buffer: millions of ids without an allocation each (and
/// close together in memory, for lookups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    text: String,
    /// End of each id in `text`.
    ends: Vec<usize>,
}

impl Ids {
    /// Room for `ids` ids of `bytes` in all.
    pub fn with_capacity(ids: usize, bytes: usize) -> Self {
        Ids {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(ids),
        }
    }

    /// Add an id at the end.
    pub fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No ids.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th id.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// The last id added.
    pub fn last(&self) -> Option<&str> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The ids, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Move `other`'s ids to the end of these.
    pub fn append(&mut self, other: Ids) {
        let bytes = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|e| e + bytes));
    }
}

impl<'a> FromIterator<&'a str> for Ids {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut out = Ids::default();
        iter.into_iter().for_each(|id| out.push(id));
        out
    }
}

/// A snapshot's memberships, kept compact: a 1M-user directory has millions, and as two owned
/// strings each (≈ 110 bytes) they were the largest part of a pull's memory. Here a membership
/// is its user id's bytes plus 12 bytes; a group's id is kept once per run of its members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    /// One id per run of consecutive memberships of the same group.
    groups: Ids,
    /// Per membership: its group run, and its user id.
    group_of: Vec<u32>,
    users: Ids,
}

impl Memberships {
    /// Room for `members` memberships whose user ids take `user_id_bytes` in all.
    pub fn with_capacity(members: usize, user_id_bytes: usize) -> Self {
        Memberships {
            groups: Ids::default(),
            group_of: Vec::with_capacity(members),
            users: Ids::with_capacity(members, user_id_bytes),
        }
    }

    /// Add a membership (grouped by group as connectors list them).
    pub fn push(&mut self, group_id: &str, user_id: &str) {
        if self.groups.last() != Some(group_id) {
            self.groups.push(group_id);
        }
        self.group_of
            .push(u32::try_from(self.groups.len() - 1).expect("fewer than 2^32 membership runs"));
        self.users.push(user_id);
    }

    /// Move `other`'s memberships to the end of these.
    pub fn append(&mut self, other: Memberships) {
        let runs = self.groups.len() as u32;
        self.groups.append(other.groups);
        self.group_of.extend(other.group_of.iter().map(|r| r + runs));
        self.users.append(other.users);
    }

    /// Memberships held.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No memberships.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The `i`th membership.
    pub fn get(&self, i: usize) -> Membership<&str> {
        Membership {
            group_id: self.groups.get(self.group_of[i] as usize),
            user_id: self.users.get(i),
        }
    }

    /// The memberships, in order.
    pub fn iter(&self) -> MembershipIter<'_> {
        MembershipIter { of: self, next: 0 }
    }
}

/// The memberships of a [`Memberships`], in the order they were pushed.
pub struct MembershipIter<'a> {
    of: &'a Memberships,
    next: usize,
}

impl<'a> Iterator for MembershipIter<'a> {
    type Item = Membership<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.next < self.of.len()).then(|| {
            self.next += 1;
            self.of.get(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.of.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for MembershipIter<'_> {}

impl<'a> IntoIterator for &'a Memberships {
    type Item = Membership<&'a str>;
    type IntoIter = MembershipIter<'a>;

    fn into_iter(self) -> MembershipIter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> Extend<Membership<S>> for Memberships {
    fn extend<I: IntoIterator<Item = Membership<S>>>(&mut self, iter: I) {
        for m in iter {
            self.push(m.group_id.as_ref(), m.user_id.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<Membership<S>> for Memberships {
    fn from_iter<I: IntoIterator<Item = Membership<S>>>(iter: I) -> Self {
        let mut out = Memberships::default();
        out.extend(iter);
        out
    }
}

/// The groups bound to an app, as resolved from the IdP at pull time.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The app.
    pub app: String,
    /// The group name its `groups` lists.
    pub group_name: String,
    /// `None` when the configured group name matched no IdP group: the app's scope is then
    /// unknown, and nothing may be deactivated on its strength.
    pub idp_group_id: Option<String>,
}

/// One consistent, complete pull of a source.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Its users, packed.
    pub users: Vec<PackedUser>,
    /// Its groups.
    pub groups: Vec<Group>,
    /// Its direct memberships.
    pub memberships: Memberships,
    /// Only for IdP snapshots: the bindings of the apps this IdP provisions.
    pub bindings: Vec<Binding>,
    /// Requests made and other facts for the pull summary.
    pub requests: u64,
    /// Apps: the SP's /ServiceProviderConfig as read at this pull (JSON).
    pub service_provider_config: Option<String>,
    /// Apps with mappings: the User attribute paths its `/Schemas` declares (a JSON array,
    /// lower-cased), when it answered.
    pub user_schema: Option<String>,
    /// IdPs with change APIs: where the next incremental pull starts (opaque to the store).
    pub cursor: Option<String>,
    /// True when this snapshot is the previous one with the source's changes applied.
    pub incremental: bool,
}

/// Where an incremental pull starts: the last complete snapshot of the source and the cursor
/// its connector left.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The last complete snapshot.
    pub snapshot: Snapshot,
    /// The connector's cursor.
    pub cursor: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_give_back_what_was_pushed_in_order() {
        let pushed = [("g1", "u1"), ("g1", "u2"), ("g2", "u1"), ("g1", "u3"), ("", "u4"), ("g3", "")];
        let m: Memberships = pushed.iter().map(|&(group_id, user_id)| Membership { group_id, user_id }).collect();
        assert_eq!(m.len(), pushed.len());
        let back: Vec<(&str, &str)> = m.iter().map(|m| (m.group_id, m.user_id)).collect();
        assert_eq!(back, pushed);
        assert_eq!(m.groups.len(), 5, "a group's id is kept once per run of its members");
        assert!(Memberships::default().is_empty());

        let (head, tail) = pushed.split_at(2);
        let mut joined: Memberships = head.iter().map(|&(group_id, user_id)| Membership { group_id, user_id }).collect();
        joined.append(tail.iter().map(|&(group_id, user_id)| Membership { group_id, user_id }).collect());
        assert_eq!(joined.iter().map(|m| (m.group_id, m.user_id)).collect::<Vec<_>>(), pushed);
        joined.append(Memberships::default());
        assert_eq!(joined.len(), pushed.len());
    }

    fn text() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        proptest::option::of(".{0,12}")
    }

    /// Any text, or a SCIM user whose raw object is held compressed.
    fn raw_object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        (".{0,40}", proptest::bool::ANY).prop_map(|(text, scim)| {
            if scim {
                let text = serde_json::to_string(&text).unwrap();
                format!(
                    r#"{{"active":true,"displayName":{text},"id":"a1","meta":{{"resourceType":"User"}},"name":{{"familyName":{text}}},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":{text}}}"#
                )
            } else {
                text
            }
        })
    }

    #[test]
    fn a_scim_users_raw_object_is_held_compressed() {
        let raw = r#"{"active":true,"displayName":"User 1001","emails":[{"primary":true,"value":"user1001@example.com"}],"externalId":"E1001","id":"a1001","meta":{"resourceType":"User","version":"W/\"1\""},"name":{"familyName":"Family1001","givenName":"Given4"},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"timezone":"Europe/Paris","title":"Engineer","userName":"user1001@example.com"}"#;
        let u = User {
            id: "a1001".into(),
            user_name: Some("user1001@example.com".into()),
            raw: raw.into(),
            ..User::default()
        };
        let packed = PackedUser::from(&u);
        assert_ne!(packed.present & RAW_COMPRESSED, 0);
        let held = packed.bytes.len();
        assert!(held < 150, "{held} bytes held for {} of raw object and 25 of fields", raw.len());
        assert_eq!(packed.raw(), raw);
        assert_eq!(packed.unpack(), u);
    }

    proptest::proptest! {
        /// Every field comes back as it went in: absent stays absent, empty stays empty,
        /// multi-byte text is cut at the right places.
        #[test]
        fn a_packed_user_unpacks_to_the_same_user(
            id in ".{0,8}",
            a in proptest::collection::vec(text(), OPTIONAL_FIELDS),
            active: bool,
            raw in raw_object(),
        ) {
            let u = User {
                id,
                user_name: a[0].clone(),
                external_id: a[1].clone(),
                given_name: a[2].clone(),
                family_name: a[3].clone(),
                formatted: a[4].clone(),
                display_name: a[5].clone(),
                email: a[6].clone(),
                title: a[7].clone(),
                phone: a[8].clone(),
                timezone: a[9].clone(),
                role: a[10].clone(),
                status_raw: a[11].clone(),
                attributes: a[12].clone(),
                active,
                raw,
            };
            let packed = PackedUser::from(&u);
            proptest::prop_assert_eq!(packed.unpack(), u.clone());
            proptest::prop_assert_eq!(packed.id(), u.id.as_str());
            proptest::prop_assert_eq!(packed.raw(), u.raw.as_str());
            proptest::prop_assert_eq!(packed.raw_hash(), xxhash_rust::xxh3::xxh3_64(u.raw.as_bytes()));
            proptest::prop_assert_eq!(packed.active(), u.active);
            proptest::prop_assert_eq!(packed.get(UserField::Email), u.email.as_deref());
            proptest::prop_assert_eq!(packed.get(UserField::StatusRaw), u.status_raw.as_deref());
            proptest::prop_assert_eq!(packed.get(UserField::Attributes), u.attributes.as_deref());
            // Given other attributes, the rest is kept, the raw object as it was held.
            let renamed = packed.with_attributes(Some(r#"{"department":"Sales"}"#));
            let mut expected = u.clone();
            expected.attributes = Some(r#"{"department":"Sales"}"#.to_string());
            proptest::prop_assert_eq!(renamed.unpack(), expected);
            proptest::prop_assert_eq!(renamed.raw_hash(), packed.raw_hash());
            proptest::prop_assert_eq!(packed.with_attributes(u.attributes.as_deref()), packed.clone());
        }
    }
}
