//! What the lake holds of a store: each table's columns (a fixed, versioned list, not whatever
//! the store's schema has), the day each row belongs to, and how a table changes between exports.
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The lake's format: the layout, the manifest and the columns below. Raised when any of them
/// changes in a way a reader of an older lake would notice.
pub const FORMAT: u32 = 1;

/// How a table's partitions follow the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The store's current state: every day is compared on each export, a changed day rewritten,
    /// a day the store no longer has removed.
    Mirror,
    /// Rows that never change once written (closed versions, runs, events, plans, findings):
    /// only the days from the previous export's day on are read again; older days are never
    /// touched, so the lake keeps what the store's retention later prunes (and a day read again
    /// of which the store holds fewer rows than the lake keeps the lake's copy).
    Log,
    /// History whose rows change after they are written (an operation's status, set by `apply`):
    /// every day is compared, a changed day rewritten, but a day the store holds fewer rows of
    /// than the lake (pruned by retention) keeps the lake's copy, and no day is removed.
    Kept,
}

/// One exported table.
#[derive(Debug)]
pub struct LakeTable {
    /// The table's name in the lake (its directory) and in the store.
    pub name: &'static str,
    /// How its partitions follow the store.
    pub kind: Kind,
    /// (column, is an integer); every other column is text. See [`LakeTable::columns`].
    columns: &'static [(&'static str, bool)],
    /// Closed versions: the columns above, then [`CLOSING`].
    closed: bool,
    /// The timestamp whose date (its first ten characters, `YYYY-MM-DD`) is the row's day, as
    /// the export's SQL names it (`t` is the table); None for a table with no days.
    pub day: Option<&'static str>,
    /// A table joined as `d` to give the rows their day (a finding's run, an operation's plan).
    pub day_from: Option<&'static str>,
}

const I: bool = true;
const T: bool = false;

/// What a closed version has beyond the row it was: when and by which run it ended.
const CLOSING: &[(&str, bool)] = &[("valid_to", T), ("ended_by_run", I)];

const USER_COLUMNS: &[(&str, bool)] = &[
    ("uid", I),
    ("source", T),
    ("id", T),
    ("user_name", T),
    ("external_id", T),
    ("given_name", T),
    ("family_name", T),
    ("formatted", T),
    ("display_name", T),
    ("email", T),
    ("active", I),
    ("title", T),
    ("phone", T),
    ("timezone", T),
    ("role", T),
    ("status_raw", T),
    ("raw", T),
    ("attributes", T),
    ("valid_from", T),
    ("run_id", I),
];

const GROUP_COLUMNS: &[(&str, bool)] = &[
    ("gid", I),
    ("source", T),
    ("id", T),
    ("display_name", T),
    ("external_id", T),
    ("raw", T),
    ("valid_from", T),
    ("run_id", I),
];

const BINDING_COLUMNS: &[(&str, bool)] = &[
    ("app", T),
    ("idp", T),
    ("group_name", T),
    ("idp_group_id", T),
    ("valid_from", T),
    ("run_id", I),
];

/// The memberships table: the store's `memberships` view (direct memberships by id).
pub const MEMBERSHIPS: &str = "memberships";

/// Every table the lake holds, in the order an export writes them.
pub const TABLES: &[LakeTable] = &[
    LakeTable {
        name: "users",
        kind: Kind::Mirror,
        columns: USER_COLUMNS,
        closed: false,
        day: Some("t.valid_from"),
        day_from: None,
    },
    LakeTable {
        name: "user_versions",
        kind: Kind::Log,
        columns: USER_COLUMNS,
        closed: true,
        day: Some("t.valid_to"),
        day_from: None,
    },
    LakeTable {
        name: "groups",
        kind: Kind::Mirror,
        columns: GROUP_COLUMNS,
        closed: false,
        day: Some("t.valid_from"),
        day_from: None,
    },
    LakeTable {
        name: "group_versions",
        kind: Kind::Log,
        columns: GROUP_COLUMNS,
        closed: true,
        day: Some("t.valid_to"),
        day_from: None,
    },
    LakeTable {
        name: MEMBERSHIPS,
        kind: Kind::Mirror,
        columns: &[
            ("source", T),
            ("group_id", T),
            ("user_id", T),
            ("gid", I),
            ("uid", I),
            ("valid_from", T),
            ("run_id", I),
        ],
        closed: false,
        day: Some("t.valid_from"),
        day_from: None,
    },
    LakeTable {
        name: "membership_versions",
        kind: Kind::Log,
        columns: &[("source", T), ("group_id", T), ("user_id", T), ("valid_from", T), ("run_id", I)],
        closed: true,
        day: Some("t.valid_to"),
        day_from: None,
    },
    LakeTable {
        name: "bindings",
        kind: Kind::Mirror,
        columns: BINDING_COLUMNS,
        closed: false,
        day: Some("t.valid_from"),
        day_from: None,
    },
    LakeTable {
        name: "binding_versions",
        kind: Kind::Log,
        columns: BINDING_COLUMNS,
        closed: true,
        day: Some("t.valid_to"),
        day_from: None,
    },
    LakeTable {
        name: "links",
        kind: Kind::Mirror,
        columns: &[
            ("app", T),
            ("idp_user_id", T),
            ("sp_user_id", T),
            ("matched_by", T),
            ("linked_at", T),
            ("idp_uid", I),
            ("sp_uid", I),
        ],
        closed: false,
        day: Some("t.linked_at"),
        day_from: None,
    },
    LakeTable {
        name: "group_links",
        kind: Kind::Mirror,
        columns: &[
            ("app", T),
            ("idp_group_id", T),
            ("sp_group_id", T),
            ("matched_by", T),
            ("linked_at", T),
            ("idp_gid", I),
            ("sp_gid", I),
        ],
        closed: false,
        day: Some("t.linked_at"),
        day_from: None,
    },
    LakeTable {
        name: "sources",
        kind: Kind::Mirror,
        columns: &[
            ("name", T),
            ("role", T),
            ("kind", T),
            ("profile", T),
            ("base_url", T),
            ("last_pull_run", I),
        ],
        closed: false,
        day: None,
        day_from: None,
    },
    LakeTable {
        name: "runs",
        kind: Kind::Log,
        columns: &[
            ("id", I),
            ("kind", T),
            ("source", T),
            ("started_at", T),
            ("finished_at", T),
            ("status", T),
            ("counts", T),
            ("error", T),
            ("snapshot_at", T),
            ("findings_of", I),
        ],
        closed: false,
        day: Some("t.started_at"),
        day_from: None,
    },
    LakeTable {
        name: "events",
        kind: Kind::Log,
        columns: &[
            ("id", I),
            ("at", T),
            ("name", T),
            ("app", T),
            ("subject", T),
            ("outcome", T),
            ("http_status", I),
            ("message", T),
            ("plan_id", I),
            ("seq", I),
        ],
        closed: false,
        day: Some("t.at"),
        day_from: None,
    },
    LakeTable {
        name: "plans",
        kind: Kind::Log,
        columns: &[("plan_id", I), ("created_at", T), ("snapshots", T), ("operations_of", I)],
        closed: false,
        day: Some("t.created_at"),
        day_from: None,
    },
    LakeTable {
        name: "finding_rows",
        kind: Kind::Log,
        columns: &[
            ("run_id", I),
            ("app", T),
            ("kind", T),
            ("subject", T),
            ("detail", T),
            ("idp_id", T),
            ("sp_id", T),
            ("attribute", T),
            ("old_value", T),
            ("new_value", T),
        ],
        closed: false,
        day: Some("d.started_at"),
        day_from: Some("LEFT JOIN runs d ON d.id = t.run_id"),
    },
    LakeTable {
        name: "operation_rows",
        kind: Kind::Kept,
        columns: &[
            ("plan_id", I),
            ("seq", I),
            ("app", T),
            ("phase", T),
            ("action", T),
            ("method", T),
            ("path", T),
            ("body", T),
            ("finding", T),
            ("subject", T),
            ("idp_id", T),
            ("sp_id", T),
            ("status", T),
            ("http_status", I),
            ("attempts", I),
            ("error", T),
            ("result_id", T),
            ("started_at", T),
            ("finished_at", T),
        ],
        closed: false,
        day: Some("d.created_at"),
        day_from: Some("LEFT JOIN plans d ON d.plan_id = t.plan_id"),
    },
];

impl LakeTable {
    /// The table's columns, in order: (name, is an integer).
    pub fn columns(&self) -> impl Iterator<Item = (&'static str, bool)> + '_ {
        let closing = if self.closed { CLOSING } else { &[] };
        self.columns.iter().chain(closing).copied()
    }

    /// The Arrow schema of the table's files (the partition columns are in the path, not here).
    pub fn schema(&self) -> SchemaRef {
        std::sync::Arc::new(Schema::new(
            self.columns()
                .map(|(c, int)| Field::new(c, if int { DataType::Int64 } else { DataType::Utf8 }, true))
                .collect::<Vec<_>>(),
        ))
    }

    /// The query (the auditor's SQL over the store) reading the table's columns and then its
    /// `day`, keeping the days from `since` (`YYYY-MM-DD`) on when given. Comparing the whole
    /// timestamp with the date keeps the same rows as comparing its date (ISO 8601 text), and a
    /// column compared with a literal is filtered by SQLite as it reads.
    pub fn read_sql(&self, since: Option<&str>) -> String {
        let columns = self.columns().map(|(c, _)| format!("t.\"{c}\"")).collect::<Vec<_>>().join(", ");
        let day = self
            .day
            .map(|d| format!("substr({d}, 1, 10)"))
            .unwrap_or_else(|| "CAST(NULL AS VARCHAR)".into());
        let join = self.day_from.map(|j| format!(" {j}")).unwrap_or_default();
        let mut sql = format!("SELECT {columns}, {day} AS day FROM \"{}\" t{join}", self.name);
        if let (Some(since), Some(d)) = (since, self.day) {
            sql.push_str(&format!(" WHERE {d} >= '{}'", since.replace('\'', "")));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_named_once_and_log_tables_have_days() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        assert!(TABLES.iter().filter(|t| t.kind != Kind::Mirror).all(|t| t.day.is_some()));
    }

    #[test]
    fn a_log_table_reads_only_the_days_since_the_last_export() {
        let events = TABLES.iter().find(|t| t.name == "events").unwrap();
        let sql = events.read_sql(Some("2026-12-05"));
        assert!(sql.ends_with("FROM \"events\" t WHERE t.at >= '2026-12-05'"), "{sql}");
        assert!(!events.read_sql(None).contains("WHERE"));
    }
}
