//! Saved reports: `queries/reports/NAME.sql`, embedded at build time. Each opens with comment
//! lines: a title line, then what it shows and its columns. Every report has an `app` column,
//! which `--app` filters on (keeping the report's order).
/// A saved report.
pub struct Report {
    /// Its name (`report NAME`).
    pub name: &'static str,
    /// Its SQL over the public schema.
    pub sql: &'static str,
}

macro_rules! report {
    ($name:literal) => {
        Report {
            name: $name,
            sql: include_str!(concat!("../../queries/reports/", $name, ".sql")),
        }
    };
}

/// Every saved report.
pub const REPORTS: &[Report] = &[
    report!("access_review"),
    report!("deactivated_but_active"),
    report!("active_without_group"),
    report!("role_mismatches"),
    report!("attribute_differences"),
    report!("group_differences"),
    report!("unmatched_accounts"),
    report!("admins"),
    report!("changes_since_previous_pull"),
];

impl Report {
    /// The header's first line.
    pub fn title(&self) -> &'static str {
        self.header().next().unwrap_or(self.name)
    }

    /// The header's comment lines, without `-- `.
    pub fn header(&self) -> impl Iterator<Item = &'static str> {
        self.sql.lines().map_while(|l| l.strip_prefix("--")).map(str::trim)
    }
}

/// The report called `name`.
pub fn find(name: &str) -> Option<&'static Report> {
    let name = name.trim_end_matches(".sql");
    REPORTS.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members removed from a group carry no new value; their order was the scan's (which
    /// changed once a plan's findings could be another plan's rows, schema 10).
    #[tokio::test]
    async fn group_differences_are_in_one_order_whatever_the_order_the_store_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = crate::store::Store::open(&path).unwrap();
        store
            .connection()
            .execute_batch(
                "INSERT INTO sources (name, role, kind) VALUES ('app.wiki', 'app', 'scim');
                 INSERT INTO runs (id, kind, started_at, status) VALUES (1, 'plan', '2026-12-04', 'ok');
                 INSERT INTO finding_rows (run_id, app, kind, subject, attribute, old_value, new_value, detail) VALUES
                   (1, 'wiki', 'group.members', 'Eng', 'remove', 'u3', NULL, 'c@example.com'),
                   (1, 'wiki', 'group.members', 'Eng', 'remove', 'u1', NULL, 'a@example.com'),
                   (1, 'wiki', 'group.members', 'Eng', 'remove', 'u2', NULL, 'b@example.com');",
            )
            .unwrap();
        let auditor = crate::audit::Auditor::open(&path, None).unwrap();
        let rows = auditor.query(find("group_differences").unwrap().sql, "report").await.unwrap();
        let details: Vec<String> = crate::audit::html::cells(&rows)
            .unwrap()
            .into_iter()
            .map(|row| row[5].clone())
            .collect();
        assert_eq!(details, ["a@example.com", "b@example.com", "c@example.com"]);
    }
}
