//! Plans, the operations journal, provisioning events, and the links `apply` makes.
use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};
use crate::ops::{Body, Operation, Plan};

/// (IdP id, app id, IdP key, app key, linked_at) of a link missing a key.
type UnresolvedLink = (String, String, Option<i64>, Option<i64>, String);

/// An account holding an email: (id, active, userName).
pub type EmailHolder = (String, bool, Option<String>);

/// One journal row: the operation and what happened to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalEntry {
    pub op: Operation,
    pub status: String,
    pub http_status: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    pub result_id: Option<String>,
}

/// One provisioning event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub at: String,
    pub name: String,
    pub app: String,
    pub subject: Option<String>,
    pub outcome: String,
    pub http_status: Option<i64>,
    pub message: Option<String>,
    pub plan_id: Option<i64>,
    pub seq: Option<i64>,
}

/// How an operation ended.
pub struct Finish<'a> {
    pub status: &'a str,
    pub http_status: Option<u16>,
    pub error: Option<&'a str>,
    pub result_id: Option<&'a str>,
}

impl Store {
    /// Store a plan and its operations (status 'planned'); a plan already stored is left as it is
    /// (its journal rows keep their state).
    pub fn insert_plan(&mut self, plan: &Plan) -> Result<()> {
        let path = &self.path;
        let err = |source| super::StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM plans WHERE plan_id = ?1", [plan.plan_id], |_| Ok(true))
            .optional()
            .map_err(&err)?
            .unwrap_or(false);
        if !exists {
            tx.execute(
                "INSERT INTO plans (plan_id, created_at, snapshots) VALUES (?1, ?2, ?3)",
                params![
                    plan.plan_id,
                    plan.created_at,
                    serde_json::to_string(&plan.snapshots).expect("a map serialises")
                ],
            )
            .map_err(&err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO operations (plan_id, seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'planned')",
                )
                .map_err(&err)?;
            for op in &plan.operations {
                insert
                    .execute(params![
                        plan.plan_id,
                        op.seq,
                        op.app,
                        op.phase,
                        op.action,
                        op.method,
                        op.path,
                        op.body.as_ref().map(Body::text),
                        op.finding,
                        op.subject,
                        op.idp_id,
                        op.sp_id
                    ])
                    .map_err(&err)?;
            }
        }
        let t = std::time::Instant::now();
        tx.commit().map_err(&err)?;
        tracing::debug!(seconds = t.elapsed().as_secs_f64(), "operations committed");
        Ok(())
    }

    /// The newest stored plan's id.
    pub fn latest_plan_id(&self) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT MAX(plan_id) FROM plans", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// A stored plan's head and its journal. The operations are the entries' `op`s and are not
    /// repeated in the returned `Plan::operations` (a 1M-user plan's bodies are hundreds of MB);
    /// [`Store::load_plan`] gives the whole plan.
    pub fn load_journal(&self, plan_id: i64) -> Result<Option<(Plan, Vec<JournalEntry>)>> {
        let head: Option<(String, String)> = self
            .conn
            .query_row("SELECT created_at, snapshots FROM plans WHERE plan_id = ?1", [plan_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((created_at, snapshots)) = head else {
            return Ok(None);
        };
        let snapshots: BTreeMap<String, i64> = serde_json::from_str(&snapshots).unwrap_or_default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id, status, http_status, attempts, error, result_id
                 FROM operations WHERE plan_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([plan_id], |r| {
                let seq: i64 = r.get(0)?;
                let body = match r.get::<_, Option<String>>(6)? {
                    Some(text) => Some(Body::from_text(text).map_err(|e| {
                        let why = format!("table operations, plan {plan_id}, seq {seq}: column body is not JSON ({e})");
                        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, why.into())
                    })?),
                    None => None,
                };
                Ok(JournalEntry {
                    op: Operation {
                        seq,
                        app: r.get(1)?,
                        phase: r.get(2)?,
                        action: r.get(3)?,
                        method: r.get(4)?,
                        path: r.get(5)?,
                        body,
                        finding: r.get(7)?,
                        subject: r.get(8)?,
                        idp_id: r.get(9)?,
                        sp_id: r.get(10)?,
                    },
                    status: r.get(11)?,
                    http_status: r.get(12)?,
                    attempts: r.get(13)?,
                    error: r.get(14)?,
                    result_id: r.get(15)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let entries: Vec<JournalEntry> = rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?;
        let plan = Plan {
            plan_id,
            created_at,
            snapshots,
            operations: Vec::new(),
        };
        Ok(Some((plan, entries)))
    }

    /// A stored plan, whole (as `plan --out` writes it).
    pub fn load_plan(&self, plan_id: i64) -> Result<Option<Plan>> {
        Ok(self.load_journal(plan_id)?.map(|(mut plan, entries)| {
            plan.operations = entries.into_iter().map(|e| e.op).collect();
            plan
        }))
    }

    /// Journal: claim the operation before anything is sent for it (status `in_flight`,
    /// attempts + 1), committed before the call. A compare-and-set on the status and attempts
    /// this apply read: `false` when another apply has claimed or finished it since, and then
    /// nothing may be sent.
    pub fn op_claim(&self, plan_id: i64, seq: i64, read_status: &str, read_attempts: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE operations SET status = 'in_flight', attempts = attempts + 1, started_at = ?3
                 WHERE plan_id = ?1 AND seq = ?2 AND status = ?4 AND attempts = ?5",
                params![plan_id, seq, crate::time::now(), read_status, read_attempts],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Journal: how the operation ended, its event, and (for a create) the link to the new
    /// object, in one transaction.
    pub fn op_finished(&mut self, plan_id: i64, op: &Operation, finish: &Finish, message: Option<&str>) -> Result<()> {
        let path = &self.path;
        let err = |source| super::StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let now = crate::time::now();
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute(
            "UPDATE operations SET status = ?3, http_status = ?4, error = ?5, result_id = COALESCE(?6, result_id), finished_at = ?7
             WHERE plan_id = ?1 AND seq = ?2",
            params![
                plan_id,
                op.seq,
                finish.status,
                finish.http_status,
                finish.error.map(crate::secret::redact),
                finish.result_id,
                now
            ],
        )
        .map_err(&err)?;
        if let (Some(new_id), Some(idp_id), "done") = (finish.result_id, op.idp_id.as_deref(), finish.status) {
            let table = if op.action == "user.create" { "links" } else { "group_links" };
            let cols = if table == "links" {
                "app, idp_user_id, sp_user_id, matched_by, linked_at"
            } else {
                "app, idp_group_id, sp_group_id, matched_by, linked_at"
            };
            if op.creates() {
                tx.execute(
                    &format!("INSERT OR REPLACE INTO {table} ({cols}) VALUES (?1, ?2, ?3, 'created', ?4)"),
                    params![op.app, idp_id, new_id, now],
                )
                .map_err(&err)?;
            }
        }
        let outcome = match finish.status {
            "done" => "success",
            "skipped" => "skipped",
            _ => "failure",
        };
        tx.execute(
            "INSERT INTO events (at, name, app, subject, outcome, http_status, message, plan_id, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                now,
                op.event_name(),
                op.app,
                op.subject,
                outcome,
                finish.http_status,
                message.or(finish.error).map(crate::secret::redact),
                plan_id,
                op.seq
            ],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Mark every not-yet-done operation of a plan but `keep` as skipped, with `why`.
    pub fn skip_operations_except(&self, plan_id: i64, keep: &[i64], why: &str) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("UPDATE operations SET status = 'skipped', error = ?3 WHERE plan_id = ?1 AND seq = ?2 AND status = 'planned'")
            .map_err(|e| self.err(e))?;
        let seqs: Vec<i64> = {
            let mut q = self
                .conn
                .prepare("SELECT seq FROM operations WHERE plan_id = ?1")
                .map_err(|e| self.err(e))?;
            let rows = q.query_map([plan_id], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        for seq in seqs.into_iter().filter(|s| !keep.contains(s)) {
            stmt.execute(params![plan_id, seq, why]).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// A lookup that found nothing usable (`user_lookup_provision`).
    pub fn lookup_event(&self, op: &Operation, plan_id: i64, http_status: Option<u16>, message: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO events (at, name, app, subject, outcome, http_status, message, plan_id, seq) VALUES (?1, 'user_lookup_provision', ?2, ?3, 'failure', ?4, ?5, ?6, ?7)",
                params![crate::time::now(), op.app, op.subject, http_status, crate::secret::redact(message), plan_id, op.seq],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// IdP user id → app account id, for one app's links.
    pub fn user_links(&self, app: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT idp_user_id, sp_user_id FROM links WHERE app = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([app], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// [`Store::user_links`] for these IdP users only: one pass over the app's links that copies
    /// only the wanted rows (a 1M-user plan needs ~0.15M of 1M).
    pub fn user_links_of(&self, app: &str, idp_ids: &HashSet<&str>) -> Result<HashMap<String, String>> {
        let e = |e| self.err(e);
        let mut out = HashMap::with_capacity(idp_ids.len());
        if idp_ids.is_empty() {
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT idp_user_id, sp_user_id FROM links WHERE app = ?1")
            .map_err(e)?;
        let mut rows = stmt.query([app]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let idp = r.get_ref(0).map_err(e)?.as_str().map_err(|x| e(x.into()))?;
            if idp_ids.contains(idp) {
                out.insert(idp.to_string(), r.get(1).map_err(e)?);
            }
        }
        Ok(out)
    }

    /// IdP group id → app group id, for one app's group links.
    pub fn group_links(&self, app: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT idp_group_id, sp_group_id FROM group_links WHERE app = ?1 AND sp_group_id IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([app], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

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

    /// When a pull run started.
    pub fn run_started_at(&self, run_id: i64) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT started_at FROM runs WHERE id = ?1", [run_id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The last time an operation changed `app` after `since`, if one did.
    pub fn changed_by_apply_after(&self, app: &str, since: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT MAX(finished_at) FROM operations WHERE app = ?1 AND status = 'done' AND finished_at > ?2",
                params![app, since],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Active accounts in a source's current snapshot (the deactivation guard's base).
    pub fn active_accounts(&self, source: &str) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM users WHERE source = ?1 AND active", [source], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The stored ServiceProviderConfig of a source (JSON), if its last pull read one.
    pub fn service_provider_config(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT service_provider_config FROM sources WHERE name = ?1", [source], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()
            .map_err(|e| self.err(e))?
            .flatten())
    }

    /// Give links that `apply` made the integer keys of the objects a later pull brought in.
    /// A user link whose account is still not listed is kept when the app lists new accounts
    /// only after their first sign-in (`keep_pending`); otherwise, once the app has been pulled
    /// after the link was made, the account is gone and the link is dropped. Group links alike.
    pub fn resolve_links(
        &mut self,
        app: &str,
        idp_source: &str,
        app_source: &str,
        keep_pending: bool,
        sp_pulled_at: Option<&str>,
    ) -> Result<()> {
        let path = &self.path;
        let err = |source| super::StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        for (table, idp_col, sp_col, idp_key, sp_key, objects, key) in [
            ("links", "idp_user_id", "sp_user_id", "idp_uid", "sp_uid", "users", "uid"),
            ("group_links", "idp_group_id", "sp_group_id", "idp_gid", "sp_gid", "groups", "gid"),
        ] {
            let unresolved: Vec<UnresolvedLink> = {
                let mut stmt = tx
                    .prepare(&unresolved_links_sql(table, [idp_col, sp_col, idp_key, sp_key]))
                    .map_err(&err)?;
                let rows = stmt
                    .query_map([app], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .map_err(&err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(&err)?
            };
            if unresolved.is_empty() {
                continue;
            }
            let keys_of = |source: &str, wanted: HashSet<&str>| -> rusqlite::Result<HashMap<String, i64>> {
                let mut stmt = tx.prepare(&format!("SELECT id, {key} FROM {objects} WHERE source = ?1"))?;
                let mut rows = stmt.query([source])?;
                let mut out = HashMap::new();
                while let Some(r) = rows.next()? {
                    let id: String = r.get(0)?;
                    if wanted.contains(id.as_str()) {
                        out.insert(id, r.get(1)?);
                    }
                }
                Ok(out)
            };
            let idp_keys = keys_of(idp_source, unresolved.iter().map(|u| u.0.as_str()).collect()).map_err(&err)?;
            let sp_keys = keys_of(app_source, unresolved.iter().map(|u| u.1.as_str()).collect()).map_err(&err)?;
            let mut update = tx
                .prepare(&format!(
                    "UPDATE {table} SET {idp_key} = ?3, {sp_key} = ?4 WHERE app = ?1 AND {sp_col} = ?2"
                ))
                .map_err(&err)?;
            let mut delete = tx
                .prepare(&format!("DELETE FROM {table} WHERE app = ?1 AND {sp_col} = ?2"))
                .map_err(&err)?;
            for (idp_id, sp_id, idp_k, sp_k, linked_at) in &unresolved {
                let idp_k = idp_k.or_else(|| idp_keys.get(idp_id).copied());
                let sp_k = sp_k.or_else(|| sp_keys.get(sp_id).copied());
                let gone = sp_k.is_none() && !(keep_pending && table == "links") && sp_pulled_at.is_some_and(|p| p > linked_at.as_str());
                if gone {
                    delete.execute(params![app, sp_id]).map_err(&err)?;
                } else {
                    update.execute(params![app, sp_id, idp_k, sp_k]).map_err(&err)?;
                }
            }
        }
        tx.commit().map_err(&err)
    }

    /// Group id → ids of its member users, active or not (what a PUT of the group keeps), for
    /// these groups.
    pub fn members_of(&self, source: &str, group_ids: &HashSet<&str>) -> Result<HashMap<String, Vec<String>>> {
        let e = |e| self.err(e);
        let mut groups: Vec<(i64, String)> = Vec::new();
        {
            let mut stmt = self.conn.prepare("SELECT gid, id FROM groups WHERE source = ?1").map_err(e)?;
            let mut rows = stmt.query([source]).map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                let id = r.get_ref(1).map_err(e)?.as_str().map_err(|x| e(x.into()))?;
                if group_ids.contains(id) {
                    groups.push((r.get(0).map_err(e)?, id.to_string()));
                }
            }
        }
        // Each group's keys are one range of member_keys.
        let mut keys: Vec<(String, Vec<i64>)> = Vec::with_capacity(groups.len());
        let mut wanted: HashSet<i64> = HashSet::new();
        {
            let mut stmt = self.conn.prepare("SELECT uid FROM member_keys WHERE gid = ?1").map_err(e)?;
            for (gid, id) in groups {
                let uids: Vec<i64> = stmt
                    .query_map([gid], |r| r.get(0))
                    .map_err(e)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(e)?;
                wanted.extend(uids.iter().copied());
                keys.push((id, uids));
            }
        }
        // Not a join with users: at millions of memberships, one B-tree seek per membership
        // into users costs seconds (7.6 s at 5M); the source's users are read once, in order.
        let mut user_ids: HashMap<i64, String> = HashMap::with_capacity(wanted.len());
        {
            let mut stmt = self.conn.prepare("SELECT uid, id FROM users WHERE source = ?1").map_err(e)?;
            let mut rows = stmt.query([source]).map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                let uid: i64 = r.get(0).map_err(e)?;
                if wanted.contains(&uid) {
                    user_ids.insert(uid, r.get(1).map_err(e)?);
                }
            }
        }
        let mut out: HashMap<String, Vec<String>> = HashMap::with_capacity(keys.len());
        for (id, uids) in keys {
            let members: Vec<String> = uids.iter().filter_map(|uid| user_ids.get(uid).cloned()).collect();
            if !members.is_empty() {
                out.insert(id, members);
            }
        }
        Ok(out)
    }

    /// Accounts of `source` by lower-cased email: (id, active, userName), for these emails.
    pub fn accounts_by_email(&self, source: &str, emails: &HashSet<String>) -> Result<HashMap<String, Vec<EmailHolder>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, email, active, user_name FROM users WHERE source = ?1 AND email IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([source]).map_err(|e| self.err(e))?;
        let mut out: HashMap<String, Vec<EmailHolder>> = HashMap::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let email: String = r.get(1).map_err(|e| self.err(e))?;
            let key = email.trim().to_lowercase();
            if emails.contains(&key) {
                out.entry(key).or_default().push((
                    r.get(0).map_err(|e| self.err(e))?,
                    r.get(2).map_err(|e| self.err(e))?,
                    r.get(3).map_err(|e| self.err(e))?,
                ));
            }
        }
        Ok(out)
    }

    /// Group id → display name, for a source.
    pub fn group_names(&self, source: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, display_name FROM groups WHERE source = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}

/// The links of app ?1 with an integer key still to find (through the partial index
/// `{table}_unresolved`, schema_v7.sql). `columns`: the IdP id, app id, IdP key and app key.
fn unresolved_links_sql(table: &str, [idp_col, sp_col, idp_key, sp_key]: [&str; 4]) -> String {
    format!("SELECT {idp_col}, {sp_col}, {idp_key}, {sp_key}, linked_at FROM {table} WHERE app = ?1 AND ({idp_key} IS NULL OR {sp_key} IS NULL)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unresolved_links_are_found_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        for (table, columns) in [
            ("links", ["idp_user_id", "sp_user_id", "idp_uid", "sp_uid"]),
            ("group_links", ["idp_group_id", "sp_group_id", "idp_gid", "sp_gid"]),
        ] {
            let plan: String = store
                .conn
                .query_row(
                    &format!("EXPLAIN QUERY PLAN {}", unresolved_links_sql(table, columns)),
                    ["wiki"],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains(&format!("USING INDEX {table}_unresolved")), "{table}: {plan}");
        }
    }

    fn operation(seq: i64, body: Option<Body>) -> Operation {
        Operation {
            seq,
            app: "wiki".into(),
            phase: crate::ops::phase::GROUPS,
            action: "group.members".into(),
            method: "PATCH".into(),
            path: "Groups/g1".into(),
            body,
            finding: "group.members".into(),
            subject: Some("Eng".into()),
            idp_id: None,
            sp_id: Some("g1".into()),
        }
    }

    #[test]
    fn bodies_come_back_as_stored_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan_id = store.start_run("plan", None).unwrap();
        let body = Body::of(&serde_json::json!({"Operations": [{"op": "add", "value": [{"value": {"$idp_user": "u1"}}]}]}));
        let plan = Plan {
            plan_id,
            created_at: "2026-11-23T00:00:00Z".into(),
            snapshots: BTreeMap::new(),
            operations: vec![operation(1, Some(body.clone())), operation(2, None)],
        };
        store.insert_plan(&plan).unwrap();
        let loaded = store.load_plan(plan_id).unwrap().unwrap();
        assert_eq!(loaded.operations, plan.operations);
        assert_eq!(loaded.operations[0].body.as_ref().unwrap().text(), body.text());

        store
            .conn
            .execute("UPDATE operations SET body = '{\"Operations\": [' WHERE seq = 2", [])
            .unwrap();
        let err = store.load_plan(plan_id).unwrap_err().to_string();
        assert!(err.contains(&format!("plan {plan_id}, seq 2: column body is not JSON")), "{err}");
    }
}
