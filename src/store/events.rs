//! Provisioning events (`events`): one per operation end, written with the journal
//! (`crate::plan::journal`), read by `scimsync events` and the auditors.
use rusqlite::params;

use super::{Result, Store};

/// One provisioning event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// When.
    pub at: String,
    /// The JumpCloud Directory Insights name (`user_create_provision`, …).
    pub name: String,
    /// The app.
    pub app: String,
    /// Whom or what.
    pub subject: Option<String>,
    /// `success`, `failure` or `skipped`.
    pub outcome: String,
    /// The app's answer.
    pub http_status: Option<i64>,
    /// What happened, in words (redacted).
    pub message: Option<String>,
    /// The plan.
    pub plan_id: Option<i64>,
    /// The operation.
    pub seq: Option<i64>,
}

impl Store {
    /// Events, oldest first, optionally since a time and for one app.
    pub fn events(&self, since: Option<&str>, app: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, name, app, subject, outcome, http_status, message, plan_id, seq FROM (
                     SELECT * FROM events WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR app = ?2) ORDER BY id DESC LIMIT ?3
                 ) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let limit = if limit == 0 { i64::MAX } else { limit as i64 };
        let rows = stmt
            .query_map(params![since, app, limit], |r| {
                Ok(Event {
                    at: r.get(0)?,
                    name: r.get(1)?,
                    app: r.get(2)?,
                    subject: r.get(3)?,
                    outcome: r.get(4)?,
                    http_status: r.get(5)?,
                    message: r.get(6)?,
                    plan_id: r.get(7)?,
                    seq: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}
