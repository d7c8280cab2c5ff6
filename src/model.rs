//! The vendor-neutral directory model every connector produces and the store writes.

/// A user as mirrored from any source, with the SCIM attribute names of DESIGN.md's mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub id: String,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub formatted: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub role: Option<String>,
    /// The source's own status word where it has one (`SUSPENDED`, `DEPROVISIONED`, …); `active`
    /// is the lossy mapping of it.
    pub status_raw: Option<String>,
    /// The object as the source returned it (JSON).
    pub raw: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub raw: String,
}

/// A direct membership edge: user `user_id` is a member of group `group_id`. Owned as built by
/// connectors; [`Memberships::iter`] lends `Membership<&str>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Membership<S = String> {
    pub group_id: S,
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
    pub fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th id.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    pub fn last(&self) -> Option<&str> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

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

    pub fn len(&self) -> usize {
        self.users.len()
    }

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
    pub app: String,
    pub group_name: String,
    /// `None` when the configured group name matched no IdP group: the app's scope is then
    /// unknown, and nothing may be deactivated on its strength.
    pub idp_group_id: Option<String>,
}

/// One consistent, complete pull of a source.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub memberships: Memberships,
    /// Only for IdP snapshots: the bindings of the apps this IdP provisions.
    pub bindings: Vec<Binding>,
    /// Requests made and other facts for the pull summary.
    pub requests: u64,
    /// Apps: the SP's /ServiceProviderConfig as read at this pull (JSON).
    pub service_provider_config: Option<String>,
    /// IdPs with change APIs: where the next incremental pull starts (opaque to the store).
    pub cursor: Option<String>,
    /// True when this snapshot is the previous one with the source's changes applied.
    pub incremental: bool,
}

/// Where an incremental pull starts: the last complete snapshot of the source and the cursor
/// its connector left.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub snapshot: Snapshot,
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
}
