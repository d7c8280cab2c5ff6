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
