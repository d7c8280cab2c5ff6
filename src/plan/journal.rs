//! What a plan run keeps in the store, and the journal `apply` keeps of it: a plan run's findings
//! and links, the plan and its operations (`plans`, `operations`), each operation's claim and
//! end, and the provisioning event of each end. These are `Store` methods defined here, beside
//! the types they store, so that the store itself knows nothing of plans.
use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use super::{Body, Operation, Plan};
use crate::engine::Correlated;
use crate::store::rows::{insert_rows, int, opt_text, text};
use crate::store::{Result, Store, StoreError};
use crate::vocab::OpStatus;

/// One journal row: the operation and what happened to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalEntry {
    /// The operation.
    pub op: Operation,
    /// Where it stands.
    pub status: OpStatus,
    /// The app's last answer.
    pub http_status: Option<i64>,
    /// How many times it was claimed.
    pub attempts: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The id the app gave what it created.
    pub result_id: Option<String>,
}

/// How an operation ended.
pub struct Finish<'a> {
    /// `done`, `failed` or `skipped`.
    pub status: OpStatus,
    /// The app's answer, when there was one.
    pub http_status: Option<u16>,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// The id of what it created.
    pub result_id: Option<&'a str>,
}

/// The rows every plan sharing with `?1`, or shared by it, needs as its own (the same statements
/// as the `operations_update` trigger of schema 10, for writes made through the view).
const OWN_ROWS_COPY: &str =
    "INSERT INTO operation_rows (plan_id, seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id,
                            status, http_status, attempts, error, result_id, started_at, finished_at)
     SELECT p.plan_id, o.seq, o.app, o.phase, o.action, o.method, o.path, o.body, o.finding, o.subject, o.idp_id,
            o.sp_id, o.status, o.http_status, o.attempts, o.error, o.result_id, o.started_at, o.finished_at
     FROM plans p JOIN operation_rows o ON o.plan_id = p.operations_of
     WHERE p.plan_id = ?1 OR p.operations_of = ?1";
const OWN_ROWS_UNSHARE: &str = "UPDATE plans SET operations_of = NULL WHERE plan_id = ?1 OR operations_of = ?1";

/// The previous plan or plan run of `id` (`previous`: its id, digest and the one it shares
/// rows with, for `id` as `?1`) as its digest and the owner of its rows (itself, or the one it
/// shares them with), when it has a digest.
fn previous_digest(tx: &rusqlite::Transaction, previous: &str, id: i64) -> rusqlite::Result<Option<(String, i64)>> {
    let row: Option<(i64, Option<String>, Option<i64>)> =
        tx.query_row(previous, [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
    Ok(match row {
        Some((prev, Some(digest), of)) => Some((digest, of.unwrap_or(prev))),
        _ => None,
    })
}

/// The plan whose rows hold those of `id` when the previous one (see [`previous_digest`]) has
/// the same `digest`: the owner of its rows.
fn same_as_previous(tx: &rusqlite::Transaction, previous: &str, id: i64, digest: &str) -> rusqlite::Result<Option<i64>> {
    Ok(previous_digest(tx, previous, id)?
        .filter(|(d, _)| d == digest)
        .map(|(_, owner)| owner))
}

/// The operations digest of the plan before `plan_id` and the owner of its rows, when it has a
/// digest and nothing has been applied from those rows (every one still as planned).
fn untouched_previous_plan(tx: &rusqlite::Transaction, plan_id: i64) -> rusqlite::Result<Option<(String, i64)>> {
    let previous = previous_digest(
        tx,
        "SELECT plan_id, operations_digest, operations_of FROM plans WHERE plan_id < ?1 ORDER BY plan_id DESC LIMIT 1",
        plan_id,
    )?;
    let Some((digest, owner)) = previous else {
        return Ok(None);
    };
    let touched: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM operation_rows WHERE plan_id = ?1 AND (status <> 'planned' OR attempts <> 0))",
        [owner],
        |r| r.get(0),
    )?;
    Ok((!touched).then_some((digest, owner)))
}

/// Drop the stored links whose app side is gone and add those correlation made.
fn store_links(tx: &rusqlite::Transaction, correlated: &Correlated) -> rusqlite::Result<()> {
    let now = crate::time::now();
    let mut drop_user = tx.prepare_cached("DELETE FROM links WHERE app = ?1 AND sp_user_id = ?2")?;
    let mut drop_group = tx.prepare_cached("DELETE FROM group_links WHERE app = ?1 AND sp_group_id = ?2")?;
    for (app, kind, sp_id) in &correlated.dropped {
        if kind == "group" {
            drop_group.execute(params![app, sp_id])?;
        } else {
            drop_user.execute(params![app, sp_id])?;
        }
    }
    for (table, cols, rows) in [
        (
            "links",
            "app, idp_user_id, sp_user_id, matched_by, linked_at, idp_uid, sp_uid",
            &correlated.links,
        ),
        (
            "group_links",
            "app, idp_group_id, sp_group_id, matched_by, linked_at, idp_gid, sp_gid",
            &correlated.group_links,
        ),
    ] {
        insert_rows(tx, &format!("INSERT OR REPLACE INTO {table} ({cols})"), 7, rows.iter(), |l| {
            vec![
                text(l.app),
                text(l.idp_id),
                text(l.sp_id),
                text(l.matched_by),
                text(&now),
                int(l.idp_key),
                int(l.sp_key),
            ]
        })?;
    }
    Ok(())
}

impl Store {
    /// Store a plan run's results in one transaction, in three steps: links whose app side is
    /// gone are dropped and the links correlation made are added as soon as `correlated` gives
    /// them (a plan's engine goes on finding drift meanwhile); the findings `findings` gives
    /// are recorded under `run_id` (while the engine reads the planner's inputs) — as rows, or,
    /// when they are exactly the previous plan run's, as `runs.findings_of` (the `findings`
    /// view shows them under `run_id` all the same); and the run is marked done and all of it
    /// committed once `finished` says the engine succeeded. When a step gives nothing (the
    /// engine failed), what was written is rolled back and false returned: no link or finding
    /// of a failed plan is kept.
    pub fn write_plan(
        &mut self,
        run_id: i64,
        correlated: impl FnOnce() -> Option<Correlated>,
        findings: impl FnOnce() -> Option<std::sync::Arc<Vec<crate::engine::Finding>>>,
        finished: impl FnOnce() -> bool,
    ) -> Result<bool> {
        let key = self.digest_key()?;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let Some(correlated) = correlated() else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        let tx = self.conn.transaction().map_err(err)?;
        store_links(&tx, &correlated).map_err(err)?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "links stored");
        let Some(found) = findings() else {
            return Ok(false); // the transaction rolls back as it is dropped
        };
        let started = std::time::Instant::now();
        let digest = super::digest::findings(key, &found);
        let findings_of = same_as_previous(
            &tx,
            "SELECT id, findings_digest, findings_of FROM runs WHERE kind = 'plan' AND status = 'ok' AND id < ?1 ORDER BY id DESC LIMIT 1",
            run_id,
            &digest,
        )
        .map_err(err)?
        .filter(|_| !found.is_empty());
        let head = "INSERT INTO finding_rows (run_id, app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value)";
        let rows = found.iter().filter(|_| findings_of.is_none());
        insert_rows(&tx, head, 10, rows, |f| {
            vec![
                int(Some(run_id)),
                text(&f.app),
                text(f.kind.as_str()),
                opt_text(f.subject.as_deref()),
                opt_text(f.detail.as_deref()),
                opt_text(f.idp_id.as_deref()),
                opt_text(f.sp_id.as_deref()),
                opt_text(f.attribute.as_deref()),
                opt_text(f.old_value.as_deref()),
                opt_text(f.new_value.as_deref()),
            ]
        })
        .map_err(err)?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "findings stored");
        let count = found.len();
        drop(found);
        if !finished() {
            return Ok(false);
        }
        let counts = serde_json::json!({"findings": count, "new_links": correlated.links.len(), "new_group_links": correlated.group_links.len(), "dropped_links": correlated.dropped.len()}).to_string();
        tx.execute(
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3, findings_digest = ?4, findings_of = ?5 WHERE id = ?1",
            params![run_id, crate::time::now(), counts, digest, findings_of],
        )
        .map_err(err)?;
        let t = std::time::Instant::now();
        tx.commit().map_err(err)?;
        tracing::debug!(
            seconds = t.elapsed().as_secs_f64(),
            shared_with = findings_of,
            "findings and links committed"
        );
        Ok(true)
    }

    /// Store a plan and its operations (status 'planned'); a plan already stored is left as it is
    /// (its journal rows keep their state). Operations exactly those of the previous plan, from
    /// which nothing has been applied, are not stored again: the plan shares that plan's rows
    /// (`plans.operations_of`) until its journal is first written ([`Store::own_operations`]).
    pub fn insert_plan(&mut self, plan: &Plan) -> Result<()> {
        let key = self.digest_key()?;
        let path = &self.path;
        let err = |source| StoreError::Sqlite {
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
            // The digest is taken while the previous plan's rows are read: whether nothing has
            // been applied from them (at 1M users each took 0.03-0.05 s, one after the other).
            let (previous, digest) = crate::threads::join(
                || untouched_previous_plan(&tx, plan.plan_id),
                || super::digest::operations(key, &plan.operations),
            );
            // Shared only with a plan nothing has been applied from (its rows are all as planned).
            let operations_of = match previous.map_err(&err)? {
                Some((previous, owner)) if previous == digest && !plan.operations.is_empty() => Some(owner),
                _ => None,
            };
            tx.execute(
                "INSERT INTO plans (plan_id, created_at, snapshots, operations_digest, operations_of) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    plan.plan_id,
                    plan.created_at,
                    serde_json::to_string(&plan.snapshots).expect("a map serialises"),
                    digest,
                    operations_of
                ],
            )
            .map_err(&err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO operation_rows (plan_id, seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'planned')",
                )
                .map_err(&err)?;
            for op in plan.operations.iter().filter(|_| operations_of.is_none()) {
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

    /// Before the journal of `plan_id` is written: the plan gets its own rows when it shares
    /// another plan's, and so does every plan that shares its rows (then each plan's journal says
    /// what happened under it alone). Copies 180k rows in well under a second at 1M; nothing
    /// when the plan already owns its rows and none shares them.
    pub fn own_operations(&mut self, plan_id: i64) -> Result<()> {
        let path = &self.path;
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        let copied = tx.execute(OWN_ROWS_COPY, [plan_id]).map_err(&err)?;
        tx.execute(OWN_ROWS_UNSHARE, [plan_id]).map_err(&err)?;
        tx.commit().map_err(&err)?;
        if copied > 0 {
            tracing::debug!(plan_id, copied, "shared operations copied before the journal is written");
        }
        Ok(())
    }

    /// Journal: claim the operation before anything is sent for it (status `in_flight`,
    /// attempts + 1), committed before the call. A compare-and-set on the status and attempts
    /// this apply read: `false` when another apply has claimed or finished it since, and then
    /// nothing may be sent.
    pub fn op_claim(&self, plan_id: i64, seq: i64, read_status: OpStatus, read_attempts: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE operation_rows SET status = 'in_flight', attempts = attempts + 1, started_at = ?3
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
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let now = crate::time::now();
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute(
            "UPDATE operation_rows SET status = ?3, http_status = ?4, error = ?5, result_id = COALESCE(?6, result_id), finished_at = ?7
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
        if let (Some(new_id), Some(idp_id), OpStatus::Done) = (finish.result_id, op.idp_id.as_deref(), finish.status) {
            let table = if op.action == crate::vocab::Action::UserCreate {
                "links"
            } else {
                "group_links"
            };
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
            OpStatus::Done => "success",
            OpStatus::Skipped => "skipped",
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
    pub fn skip_operations_except(&mut self, plan_id: i64, keep: &[i64], why: &str) -> Result<()> {
        self.own_operations(plan_id)?;
        let mut stmt = self
            .conn
            .prepare("UPDATE operation_rows SET status = 'skipped', error = ?3 WHERE plan_id = ?1 AND seq = ?2 AND status = 'planned'")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(seq: i64, body: Option<Body>) -> Operation {
        Operation {
            seq,
            app: "wiki".into(),
            phase: crate::plan::phase::GROUPS,
            action: crate::vocab::Action::GroupMembers,
            method: crate::vocab::Method::Patch,
            path: "Groups/g1".into(),
            body,
            finding: crate::vocab::FindingKind::GroupMembers,
            subject: Some("Eng".into()),
            idp_id: None,
            sp_id: Some("g1".into()),
        }
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A plan run as `plan` stores it: findings (one per subject), then the operations.
    fn plan_run(store: &mut Store, subjects: &[&str], ops: Vec<Operation>) -> i64 {
        let run_id = store.start_run("plan", None).unwrap();
        let findings = subjects
            .iter()
            .map(|s| crate::engine::Finding {
                app: "wiki".into(),
                kind: crate::vocab::FindingKind::GroupMembers,
                subject: Some(s.to_string()),
                idp_id: None,
                sp_id: Some("g1".into()),
                attribute: Some("add".into()),
                old_value: None,
                new_value: Some("u1".into()),
                detail: None,
            })
            .collect();
        let findings = std::sync::Arc::new(findings);
        store
            .write_plan(run_id, || Some(Correlated::default()), || Some(findings), || true)
            .unwrap();
        let plan = Plan {
            plan_id: run_id,
            created_at: crate::time::now(),
            snapshots: BTreeMap::new(),
            operations: ops,
        };
        store.insert_plan(&plan).unwrap();
        run_id
    }

    fn status(store: &Store, plan: i64, seq: i64) -> String {
        store
            .conn
            .query_row(
                &format!("SELECT status FROM operations WHERE plan_id = {plan} AND seq = {seq}"),
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn body() -> Option<Body> {
        Some(Body::of(
            &serde_json::json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]}),
        ))
    }

    fn correlated(sp_ids: &[&str]) -> Correlated {
        let rows: Vec<_> = sp_ids.iter().map(|id| ("wiki", "u1", *id, "userName", 1, 2)).collect();
        Correlated {
            links: crate::engine::NewLinks::from_rows(&rows),
            ..Correlated::default()
        }
    }

    #[test]
    fn links_and_findings_stored_before_the_engine_failed_are_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let run_id = store.start_run("plan", None).unwrap();
        let stored = store
            .write_plan(run_id, || Some(correlated(&["a1", "a2"])), || None, || true)
            .unwrap();
        assert!(!stored);
        assert_eq!(count(&store, "SELECT count(*) FROM links"), 0, "no link of a failed plan");
        assert_eq!(count(&store, "SELECT count(*) FROM runs WHERE status = 'ok'"), 0);
        // The findings came, then the engine failed reading the planner's inputs: neither its
        // links nor its findings are kept.
        let one = || {
            Some(std::sync::Arc::new(vec![crate::engine::Finding {
                app: "wiki".into(),
                kind: crate::vocab::FindingKind::UserMissing,
                subject: Some("u1".into()),
                idp_id: Some("u1".into()),
                sp_id: None,
                attribute: None,
                old_value: None,
                new_value: None,
                detail: None,
            }]))
        };
        let stored = store.write_plan(run_id, || Some(correlated(&["a1", "a2"])), one, || false).unwrap();
        assert!(!stored);
        assert_eq!(count(&store, "SELECT count(*) FROM links"), 0, "no link of a failed plan");
        assert_eq!(count(&store, "SELECT count(*) FROM finding_rows"), 0, "no finding of a failed plan");
        assert_eq!(count(&store, "SELECT count(*) FROM runs WHERE status = 'ok'"), 0);
        // Nothing from the engine at all: nothing written either.
        assert!(!store.write_plan(run_id, || None, || None, || true).unwrap());
        // Every part: stored in one go, under the run.
        assert!(store.write_plan(run_id, || Some(correlated(&["a1", "a2"])), one, || true).unwrap());
        assert_eq!(count(&store, "SELECT count(*) FROM finding_rows"), 1);
        assert_eq!(
            count(&store, "SELECT count(*) FROM links WHERE matched_by = 'userName' AND sp_uid = 2"),
            2
        );
        let counts: String = store
            .conn
            .query_row("SELECT counts FROM runs WHERE id = ?1 AND status = 'ok'", [run_id], |r| r.get(0))
            .unwrap();
        assert!(counts.contains(r#""new_links":2"#), "{counts}");
    }

    #[test]
    fn a_plan_that_finds_and_plans_what_the_previous_one_did_stores_no_rows_and_shows_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ops = || vec![operation(1, body()), operation(2, None)];
        let first = plan_run(&mut store, &["Eng", "Ops"], ops());
        let second = plan_run(&mut store, &["Eng", "Ops"], ops());
        let third = plan_run(&mut store, &["Eng", "Ops"], ops());
        assert_eq!(count(&store, "SELECT count(*) FROM finding_rows"), 2, "stored once");
        assert_eq!(count(&store, "SELECT count(*) FROM operation_rows"), 2, "stored once");
        for run in [second, third] {
            assert_eq!(
                count(&store, &format!("SELECT findings_of FROM runs WHERE id = {run}")),
                first,
                "the owner, not the plan between"
            );
            assert_eq!(
                count(&store, &format!("SELECT operations_of FROM plans WHERE plan_id = {run}")),
                first
            );
        }
        // What auditors and `apply` read is the same for every plan.
        for run in [first, second, third] {
            assert_eq!(
                count(
                    &store,
                    &format!("SELECT count(*) FROM findings WHERE run_id = {run} AND subject IN ('Eng', 'Ops')")
                ),
                2
            );
            let loaded = store.load_plan(run).unwrap().unwrap();
            assert_eq!(loaded.operations, ops(), "plan {run}");
        }

        // Anything different is stored: one finding more, one body changed.
        let fourth = plan_run(
            &mut store,
            &["Eng", "Ops", "Sales"],
            vec![operation(1, body()), operation(2, body())],
        );
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM finding_rows WHERE run_id = {fourth}")),
            3
        );
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM operation_rows WHERE plan_id = {fourth}")),
            2
        );
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM runs WHERE id = {fourth} AND findings_of IS NULL")
            ),
            1
        );
    }

    #[test]
    fn a_shared_plan_gets_its_own_journal_before_apply_writes_it_and_an_applied_plan_is_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ops = || vec![operation(1, body()), operation(2, None)];
        let first = plan_run(&mut store, &["Eng"], ops());
        let second = plan_run(&mut store, &["Eng"], ops());
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM operation_rows WHERE plan_id = {second}")),
            0
        );

        // Before a journal write the shared plan owns its rows, and the first plan keeps its own.
        assert!(
            !store.op_claim(second, 1, OpStatus::Planned, 0).unwrap(),
            "no row of its own to claim yet: nothing is sent"
        );
        store.own_operations(second).unwrap();
        assert!(store.op_claim(second, 1, OpStatus::Planned, 0).unwrap());
        assert_eq!(
            (status(&store, first, 1), status(&store, second, 1)),
            ("planned".to_string(), "in_flight".to_string())
        );
        assert_eq!(count(&store, "SELECT count(*) FROM plans WHERE operations_of IS NOT NULL"), 0);

        // The next identical plan may not share the second's rows: one has been claimed.
        let third = plan_run(&mut store, &["Eng"], ops());
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM operation_rows WHERE plan_id = {third}")),
            2
        );
        assert_eq!(status(&store, third, 1), "planned");

        // Writing the owner's journal first gives its sharers their own rows.
        let fourth = plan_run(&mut store, &["Eng"], ops());
        assert_eq!(
            count(&store, &format!("SELECT operations_of FROM plans WHERE plan_id = {fourth}")),
            third
        );
        store.own_operations(third).unwrap();
        store
            .op_finished(
                third,
                &operation(2, None),
                &Finish {
                    status: OpStatus::Skipped,
                    http_status: None,
                    error: Some("test"),
                    result_id: None,
                },
                None,
            )
            .unwrap();
        assert_eq!(
            (status(&store, third, 2), status(&store, fourth, 2)),
            ("skipped".to_string(), "planned".to_string())
        );

        // An UPDATE of the view by hand does the same (schema 10's trigger).
        let fifth = plan_run(&mut store, &["Eng"], ops());
        assert_eq!(
            count(&store, &format!("SELECT operations_of FROM plans WHERE plan_id = {fifth}")),
            fourth
        );
        store
            .conn
            .execute(
                &format!("UPDATE operations SET status = 'in_flight', attempts = 1 WHERE plan_id = {fifth} AND seq = 1"),
                [],
            )
            .unwrap();
        assert_eq!(
            (status(&store, fourth, 1), status(&store, fifth, 1)),
            ("planned".to_string(), "in_flight".to_string())
        );
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM operation_rows WHERE plan_id = {fifth}")),
            2
        );
        assert!(crate::store::integrity::check_file(store.path()).unwrap().is_empty());
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
            .execute("UPDATE operation_rows SET body = '{\"Operations\": [' WHERE seq = 2", [])
            .unwrap();
        let err = store.load_plan(plan_id).unwrap_err().to_string();
        assert!(err.contains(&format!("plan {plan_id}, seq 2: column body is not JSON")), "{err}");
    }
}
