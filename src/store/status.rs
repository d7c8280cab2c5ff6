//! Read-side summaries of the store for `scimsync status` and the pull report.
use super::{Result, Store};

/// One source as `scimsync status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    /// The source.
    pub name: String,
    /// `idp` or `app`.
    pub role: String,
    /// Its kind.
    pub kind: String,
    /// An app's profile.
    pub profile: Option<String>,
    /// Its last successful pull.
    pub last_success: Option<String>,
    /// Its last run's status.
    pub last_run_status: Option<String>,
    /// Its last run's error.
    pub last_run_error: Option<String>,
    /// Users now.
    pub users: i64,
    /// Active users now.
    pub active_users: i64,
    /// Groups now.
    pub groups: i64,
    /// Memberships now.
    pub memberships: i64,
}

impl Store {
    /// Every source that has ever been pulled (successfully or not), by name.
    pub fn source_statuses(&self) -> Result<Vec<SourceStatus>> {
        let sql = "
            WITH names AS (SELECT name FROM sources UNION SELECT DISTINCT source FROM runs WHERE kind = 'pull' AND source IS NOT NULL),
                 last AS (SELECT source, MAX(id) AS id FROM runs WHERE kind = 'pull' GROUP BY source)
            SELECT n.name, s.role, s.kind, s.profile,
                   (SELECT finished_at FROM runs WHERE id = s.last_pull_run),
                   r.status, r.error,
                   (SELECT COUNT(*) FROM users u WHERE u.source = n.name),
                   (SELECT COUNT(*) FROM users u WHERE u.source = n.name AND u.active),
                   (SELECT COUNT(*) FROM groups g WHERE g.source = n.name),
                   (SELECT COUNT(*) FROM groups g JOIN member_keys k ON k.gid = g.gid WHERE g.source = n.name)
            FROM names n
            LEFT JOIN sources s ON s.name = n.name
            LEFT JOIN last l ON l.source = n.name
            LEFT JOIN runs r ON r.id = l.id
            ORDER BY n.name";
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SourceStatus {
                    name: r.get(0)?,
                    role: r.get::<_, Option<String>>(1)?.unwrap_or_else(|| "?".into()),
                    kind: r.get::<_, Option<String>>(2)?.unwrap_or_else(|| "?".into()),
                    profile: r.get(3)?,
                    last_success: r.get(4)?,
                    last_run_status: r.get(5)?,
                    last_run_error: r.get(6)?,
                    users: r.get(7)?,
                    active_users: r.get(8)?,
                    groups: r.get(9)?,
                    memberships: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}
