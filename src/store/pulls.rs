//! What a plan reads before it runs: the state of each side's pulls, and the app bindings
//! (which IdP groups an app's `groups` resolved to).
use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// The pull a plan uses for one source, and whether a later pull failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullState {
    /// The source.
    pub source: String,
    /// Its last successful pull run.
    pub last_ok_run: Option<i64>,
    /// When that pull started.
    pub last_ok_at: Option<String>,
    /// The error of the latest pull when it failed (the plan then uses an older snapshot).
    pub latest_failed: Option<String>,
}

impl Store {
    /// The pull state of `source`.
    pub fn pull_state(&self, source: &str) -> Result<PullState> {
        let last_ok: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT id, finished_at FROM runs WHERE kind = 'pull' AND source = ?1 AND status = 'ok' ORDER BY id DESC LIMIT 1",
                [source],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let latest: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT status, error FROM runs WHERE kind = 'pull' AND source = ?1 ORDER BY id DESC LIMIT 1",
                [source],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let latest_failed = match latest {
            Some((s, e)) if s == "failed" => Some(e.unwrap_or_default()),
            _ => None,
        };
        Ok(PullState {
            source: source.into(),
            last_ok_run: last_ok.as_ref().map(|l| l.0),
            last_ok_at: last_ok.map(|l| l.1),
            latest_failed,
        })
    }

    /// What the last successful pull of `source` held (users, groups, memberships), from its
    /// run's counts; None before its first pull.
    pub fn last_pull_counts(&self, source: &str) -> Result<Option<super::SnapshotCounts>> {
        let counts: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT counts FROM runs WHERE kind = 'pull' AND source = ?1 AND status = 'ok' ORDER BY id DESC LIMIT 1",
                [source],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(counts.flatten().and_then(|json| {
            let v: serde_json::Value = serde_json::from_str(&json).ok()?;
            let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            Some(super::SnapshotCounts {
                users: n("users"),
                groups: n("groups"),
                memberships: n("memberships"),
                ..Default::default()
            })
        }))
    }

    /// The users, groups and memberships of `sources`' last successful pulls, summed (what a
    /// stage that holds their snapshots will hold); a source never pulled counts for nothing.
    pub fn last_pull_totals<'a>(&self, sources: impl IntoIterator<Item = &'a str>) -> Result<super::SnapshotCounts> {
        let mut total = super::SnapshotCounts::default();
        for source in sources {
            if let Some(c) = self.last_pull_counts(source)? {
                total.users += c.users;
                total.groups += c.groups;
                total.memberships += c.memberships;
            }
        }
        Ok(total)
    }

    /// (bindings of `app` resolved by `idp`, of which unresolved).
    pub fn binding_counts(&self, app: &str, idp: &str) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(idp_group_id IS NULL), 0) FROM bindings WHERE app = ?1 AND idp = ?2",
                params![app, idp],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// The bindings an IdP's last pull resolved to a group: (app, name in `groups`, IdP group
    /// id). A later pull follows a binding by this id when its name no longer matches (the IdP
    /// group was renamed).
    pub fn resolved_bindings(&self, idp: &str) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT app, group_name, idp_group_id FROM bindings WHERE idp = ?1 AND idp_group_id IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([idp], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Bind `group_name` of `app` to the IdP group `idp_group_id` (single-object reconcile of a
    /// group bound since the last full pull): the unresolved row of that name is resolved, or a
    /// row is added. Returns whether anything changed.
    pub fn bind_group(&self, app: &str, idp: &str, group_name: &str, idp_group_id: &str) -> Result<bool> {
        let exists: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM bindings WHERE app = ?1 AND idp = ?2 AND group_name = ?3 AND idp_group_id = ?4",
                params![app, idp, group_name, idp_group_id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if exists > 0 {
            return Ok(false);
        }
        let resolved = self
            .conn
            .execute(
                "UPDATE bindings SET idp_group_id = ?4 WHERE app = ?1 AND idp = ?2 AND group_name = ?3 AND idp_group_id IS NULL",
                params![app, idp, group_name, idp_group_id],
            )
            .map_err(|e| self.err(e))?;
        if resolved == 0 {
            let run: i64 = self
                .conn
                .query_row(
                    "SELECT COALESCE(MAX(id), 0) FROM runs WHERE kind IN ('pull', 'refresh') AND source = ?1 AND status = 'ok'",
                    [idp],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            self.conn
                .execute(
                    "INSERT INTO bindings (app, idp, group_name, idp_group_id, valid_from, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![app, idp, group_name, idp_group_id, crate::time::now(), run],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(true)
    }
}
