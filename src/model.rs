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

/// A direct membership edge: user `user_id` is a member of group `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Membership {
    pub group_id: String,
    pub user_id: String,
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
    pub memberships: Vec<Membership>,
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
