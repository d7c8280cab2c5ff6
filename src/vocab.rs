//! The domain's words as types: finding kinds, operation actions and methods, journal statuses.
//! A leaf module (serde and rusqlite only), used by the engine, the planner, the journal and `apply`.
//!
//! Each is an `enum` whose serialised name (JSON, the store's text columns, `plan --out` files,
//! the queries' `kind` column) is the contract name, e.g. `user.missing`. Parsing an unknown name
//! is an error that says which vocabulary it is not in. Values order by their names, so sorting
//! by a kind gives the same order as sorting by its text.
#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A name that is not in a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{name}' (known: {known})")]
pub struct UnknownName {
    /// Which vocabulary: `finding kind`, `action`, …
    pub what: &'static str,
    /// The name as given.
    pub name: String,
    /// The names the vocabulary has, comma-separated.
    pub known: String,
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The contract name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownName {
                        what: $what,
                        name: s.to_string(),
                        known: [$($text),*].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        /// By name, as the text was ordered before it was a type.
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: UnknownName| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

vocabulary! {
    /// What a drift query found (the `kind` of a finding; one query per kind under
    /// `queries/drift/`).
    FindingKind, "finding kind" {
        /// An IdP user in the app's scope has no account.
        UserMissing = "user.missing",
        /// A linked account's managed attribute differs from the IdP's.
        UserDrift = "user.drift",
        /// An active account whose IdP user left the scope or is inactive.
        UserOrphaned = "user.orphaned",
        /// A deactivated account whose IdP user is back in scope.
        UserReactivate = "user.reactivate",
        /// A linked account's role differs from the one its groups give.
        UserRoleMismatch = "user.role_mismatch",
        /// An account no IdP user is linked to (for a person to look at).
        UserUnmanaged = "user.unmanaged",
        /// An account matching an IdP user by a key another link holds (for a person).
        UserConflict = "user.conflict",
        /// A bound IdP group has no app group.
        GroupMissing = "group.missing",
        /// A linked app group's name differs from the IdP group's.
        GroupRenamed = "group.renamed",
        /// A linked group's members differ (attribute `add` or `remove`).
        GroupMembers = "group.members",
        /// An app group whose IdP group is gone or no longer bound.
        GroupOrphaned = "group.orphaned",
        /// An app group of the same name not made by scimsync (for a person).
        GroupTakeover = "group.takeover",
        /// App groups sharing a name or an externalId (for a person).
        GroupDuplicate = "group.duplicate",
    }
}

impl FindingKind {
    /// Whether the finding is about a group (else about a user).
    pub fn is_group(self) -> bool {
        self.as_str().starts_with("group.")
    }

    /// Whether the finding calls for a change in an app (the rest are for people to look at).
    pub fn is_actionable(self) -> bool {
        !matches!(
            self,
            FindingKind::UserUnmanaged | FindingKind::UserConflict | FindingKind::GroupTakeover | FindingKind::GroupDuplicate
        )
    }
}

vocabulary! {
    /// What an operation does (an operation's `action`).
    Action, "action" {
        /// POST a new account.
        UserCreate = "user.create",
        /// Change a linked account's attributes or role.
        UserUpdate = "user.update",
        /// Set a deactivated account active again.
        UserReactivate = "user.reactivate",
        /// Set an account inactive.
        UserDeactivate = "user.deactivate",
        /// DELETE an account (profiles whose `on_unassign` is `delete`).
        UserDelete = "user.delete",
        /// Give a disabled account's email away before a new account takes it (Quip).
        UserReleaseEmail = "user.release_email",
        /// POST a new group.
        GroupCreate = "group.create",
        /// Rename a group.
        GroupUpdate = "group.update",
        /// Add or remove a group's members.
        GroupMembers = "group.members",
        /// DELETE a group.
        GroupDelete = "group.delete",
    }
}

impl Action {
    /// Whether the action is about a group (else about a user).
    pub fn is_group(self) -> bool {
        self.as_str().starts_with("group.")
    }
}

vocabulary! {
    /// The HTTP method an operation is sent with.
    Method, "method" {
        /// Create.
        Post = "POST",
        /// Replace (read-modify-write on apps without PATCH).
        Put = "PUT",
        /// Modify (RFC 7644 §3.5.2).
        Patch = "PATCH",
        /// Delete.
        Delete = "DELETE",
    }
}

vocabulary! {
    /// Where an operation stands in the journal (`operations.status`).
    OpStatus, "operation status" {
        /// Stored by `plan`, not yet tried.
        Planned = "planned",
        /// Claimed by an apply, before the request is sent; left so by a crash.
        InFlight = "in_flight",
        /// The app has it.
        Done = "done",
        /// The app refused it or could not be reached; `apply` tries it again.
        Failed = "failed",
        /// Not sent, and not to be (e.g. the guard stopped it).
        Skipped = "skipped",
        /// Not sent by this apply (stopped, or another apply claimed it); never stored.
        NotStarted = "not_started",
    }
}

impl OpStatus {
    /// Whether `apply` (re)tries an operation in this state.
    pub fn is_pending(self) -> bool {
        matches!(self, OpStatus::Planned | OpStatus::InFlight | OpStatus::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in FindingKind::ALL {
            assert_eq!(k.as_str().parse::<FindingKind>(), Ok(*k));
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        for a in Action::ALL {
            assert_eq!(serde_json::from_str::<Action>(&format!("\"{a}\"")).unwrap(), *a);
        }
        let e = "user.gone".parse::<FindingKind>().unwrap_err();
        assert!(
            e.to_string().starts_with("unknown finding kind 'user.gone' (known: user.missing,"),
            "{e}"
        );
        assert!(serde_json::from_str::<Method>("\"GET\"")
            .unwrap_err()
            .to_string()
            .contains("unknown method 'GET'"));
    }

    #[test]
    fn values_order_by_name() {
        let mut kinds = FindingKind::ALL.to_vec();
        kinds.sort();
        let mut names: Vec<_> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(), names);
    }

    #[test]
    fn store_columns_round_trip() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let back: OpStatus = conn.query_row("SELECT ?1", [OpStatus::InFlight], |r| r.get(0)).unwrap();
        assert_eq!(back, OpStatus::InFlight);
        let bad = conn.query_row("SELECT 'half_done'", [], |r| r.get::<_, OpStatus>(0)).unwrap_err();
        assert!(bad.to_string().contains("unknown operation status 'half_done'"), "{bad}");
    }
}
