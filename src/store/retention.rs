//! Retention (`scimsync prune`): what the config's `[retention]` lets go, removed in small
//! committed batches, and the space handed back. What is still needed is never removed,
//! whatever its age: the current state (it is not history), links, the latest plan, any plan
//! `apply` could still run (every source it was made from is still at that pull), plans with an
//! operation in flight, the latest N plans, and the runs the current state and the kept plans
//! refer to.
//!
//! History is cut at an instant, the horizon: closed versions that ended before it are removed,
//! so the state at any instant from the horizon on is whole. The horizon is kept in
//! `store_meta`, and `--at`/`diff` before it are refused (see [`history_horizon`]).
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store};
use crate::config::Retention;

/// How a prune runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The instant retention counts back from.
    pub now: DateTime<Utc>,
    /// Count what would go, remove nothing (done in a transaction that is rolled back).
    pub dry_run: bool,
    /// Stop between batches after this long (what is left goes at the next prune).
    pub budget: Option<Duration>,
    /// How much free space to hand back to the file system.
    pub vacuum: Vacuum,
}

/// Handing free pages back (the store is created with `auto_vacuum = INCREMENTAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vacuum {
    /// Every free page.
    All,
    /// Only when free pages are more than a quarter of the file, and at most this many pages
    /// (a reconcile cycle: freed pages are reused by the next plan anyway).
    Bounded(u32),
    /// A store made before incremental vacuum: rewrite it once (`VACUUM`) with incremental
    /// vacuum turned on. Needs free disk space the size of the store.
    Rewrite,
}

/// What a prune removed (or would remove).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    /// Rows removed per table, in the order they were pruned.
    pub removed: Vec<(String, u64)>,
    /// Pages freed inside the file, in bytes (reused by later writes).
    pub freed_bytes: u64,
    /// Bytes handed back to the file system (the file got this much smaller).
    pub returned_bytes: u64,
    /// Free bytes still in the file after the prune.
    pub free_bytes: u64,
    /// The earliest instant `--at` and `diff` answer after this prune.
    pub history_horizon: Option<String>,
    /// Plans kept only because they are still needed: (plan id, why).
    pub plans_needed: Vec<(i64, String)>,
    /// False: the time budget ran out; the next prune goes on.
    pub complete: bool,
    /// Nothing was removed: counts of what a prune would remove.
    pub dry_run: bool,
    /// The store has no incremental vacuum: freed pages are reused, not handed back.
    pub needs_rewrite: bool,
}

impl PruneReport {
    /// Rows removed in all.
    pub fn rows(&self) -> u64 {
        self.removed.iter().map(|(_, n)| n).sum()
    }
}

const BATCH: u64 = 20_000;

/// The tables of closed versions.
const HISTORY: [&str; 4] = ["user_versions", "group_versions", "membership_versions", "binding_versions"];

/// The earliest instant `--at` and `diff` can answer (None: the store has all its history).
pub fn history_horizon(conn: &Connection) -> rusqlite::Result<Option<String>> {
    meta(conn, "history_horizon")
}

pub(super) fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    conn.query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

pub(super) fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn cutoff(now: DateTime<Utc>, keep: Option<Duration>) -> Option<String> {
    let keep = chrono::Duration::from_std(keep?).ok()?;
    Some(crate::time::format(now.checked_sub_signed(keep)?))
}

fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
        .map(|v| v.max(0) as u64)
}

/// `PRAGMA incremental_vacuum(pages)` (0: every free page), stepped to its end: each step
/// frees one page.
fn incremental_vacuum(conn: &Connection, pages: u32) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// The work of one prune: batches, each committed on its own (or all rolled back for a dry run).
struct Pruner<'a> {
    conn: &'a Connection,
    started: Instant,
    budget: Option<Duration>,
    /// Rows removed per table, in the order the tables were first pruned.
    removed: Vec<(&'static str, u64)>,
    out_of_time: bool,
}

impl Pruner<'_> {
    fn out_of_time(&mut self) -> bool {
        if self.budget.is_some_and(|b| self.started.elapsed() >= b) {
            self.out_of_time = true;
        }
        self.out_of_time
    }

    fn count(&mut self, table: &'static str, n: u64) {
        match self.removed.iter_mut().find(|(t, _)| *t == table) {
            Some((_, total)) => *total += n,
            None => self.removed.push((table, n)),
        }
    }

    /// Run `work` as one batch: a savepoint, committed when it is the outermost transaction.
    fn batch<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        self.conn.execute_batch("SAVEPOINT prune_batch")?;
        match work(self.conn) {
            Ok(v) => {
                self.conn.execute_batch("RELEASE prune_batch")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO prune_batch; RELEASE prune_batch");
                Err(e)
            }
        }
    }

    /// Delete `table`'s rows matching `condition` (on `?1`) in batches of [`BATCH`].
    fn delete_where(&mut self, table: &'static str, condition: &str, bound: &str) -> rusqlite::Result<()> {
        let sql = format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {condition} LIMIT {BATCH})");
        loop {
            if self.out_of_time() {
                return Ok(());
            }
            let n = self.batch(|c| c.execute(&sql, [bound]))? as u64;
            self.count(table, n);
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// One kept plan's row: (id, created_at, snapshots, an operation in flight).
type PlanRow = (i64, String, String, bool);

impl Store {
    /// Apply `policy` to the store; see the module's doc for what is always kept.
    pub fn prune(&mut self, policy: &Retention, opts: &PruneOptions) -> Result<PruneReport> {
        let conn = &self.conn;
        let page_size = pragma(conn, "page_size").map_err(|e| self.err(e))?;
        let free_before = pragma(conn, "freelist_count").map_err(|e| self.err(e))?;
        if opts.dry_run {
            conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        }
        let mut p = Pruner {
            conn,
            started: Instant::now(),
            budget: opts.budget,
            removed: Vec::new(),
            out_of_time: false,
        };
        let outcome = prune_rows(&mut p, policy, opts.now);
        let free_after = pragma(conn, "freelist_count");
        let horizon = history_horizon(conn);
        if opts.dry_run {
            conn.execute_batch("ROLLBACK").map_err(|e| self.err(e))?;
        }
        let plans_needed = outcome.map_err(|e| self.err(e))?;
        let free_after = free_after.map_err(|e| self.err(e))?;
        let mut report = PruneReport {
            removed: p.removed.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            freed_bytes: free_after.saturating_sub(free_before) * page_size,
            history_horizon: horizon.map_err(|e| self.err(e))?,
            plans_needed,
            complete: !p.out_of_time,
            dry_run: opts.dry_run,
            ..PruneReport::default()
        };
        if !opts.dry_run {
            set_meta(conn, "last_prune_at", &crate::time::format(opts.now)).map_err(|e| self.err(e))?;
            report.returned_bytes = self.hand_back(opts.vacuum, page_size, &mut report.needs_rewrite)?;
        }
        report.free_bytes = pragma(&self.conn, "freelist_count").map_err(|e| self.err(e))? * page_size;
        Ok(report)
    }

    /// Hand free pages back to the file system; returns the bytes handed back.
    fn hand_back(&self, vacuum: Vacuum, page_size: u64, needs_rewrite: &mut bool) -> Result<u64> {
        let conn = &self.conn;
        let pages_before = pragma(conn, "page_count").map_err(|e| self.err(e))?;
        let incremental = pragma(conn, "auto_vacuum").map_err(|e| self.err(e))? == 2;
        match vacuum {
            Vacuum::Rewrite => {
                conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
                    .map_err(|e| self.err(e))?;
            }
            _ if !incremental => {
                *needs_rewrite = true;
                return Ok(0);
            }
            Vacuum::All => incremental_vacuum(conn, 0).map_err(|e| self.err(e))?,
            Vacuum::Bounded(pages) => {
                let free = pragma(conn, "freelist_count").map_err(|e| self.err(e))?;
                if free * 4 > pages_before {
                    incremental_vacuum(conn, pages).map_err(|e| self.err(e))?;
                }
            }
        }
        // The file shrinks when the WAL is checkpointed; a passive one never waits for readers.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))?;
        let pages_after = pragma(conn, "page_count").map_err(|e| self.err(e))?;
        Ok(pages_before.saturating_sub(pages_after) * page_size)
    }
}

/// Remove what retention lets go; returns the plans kept only because they are needed.
fn prune_rows(p: &mut Pruner, policy: &Retention, now: DateTime<Utc>) -> rusqlite::Result<Vec<(i64, String)>> {
    let needed = prune_plans(p, policy, now)?;
    if let Some(cut) = cutoff(now, policy.history) {
        prune_history(p, &cut)?;
    }
    if let Some(cut) = cutoff(now, policy.events) {
        p.delete_where("events", "at < ?1", &cut)?;
    }
    if let Some(cut) = cutoff(now, policy.runs) {
        prune_runs(p, &cut)?;
    }
    Ok(needed)
}

/// Plans (with their findings and operations) older than the policy's age, beyond the latest
/// `keep_plans`, and not needed.
fn prune_plans(p: &mut Pruner, policy: &Retention, now: DateTime<Utc>) -> rusqlite::Result<Vec<(i64, String)>> {
    let Some(cut) = cutoff(now, policy.plans) else {
        return Ok(Vec::new());
    };
    let pulls = last_pulls(p.conn)?;
    let plans: Vec<PlanRow> = p
        .conn
        .prepare(
            "SELECT p.plan_id, p.created_at, p.snapshots,
                    EXISTS (SELECT 1 FROM operations o WHERE o.plan_id = p.plan_id AND o.status = 'in_flight')
             FROM plans p ORDER BY p.plan_id DESC",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut needed = Vec::new();
    let mut doomed = Vec::new();
    for (i, (id, created_at, snapshots, in_flight)) in plans.into_iter().enumerate() {
        if i < policy.keep_plans.max(1) as usize || created_at >= cut {
            continue;
        }
        let why = if in_flight {
            Some("an operation is in flight (apply looks it up before anything else)")
        } else if is_current(&snapshots, &pulls) {
            Some("apply could still run it (every source is still at the pull it was made from)")
        } else {
            None
        };
        match why {
            Some(why) => needed.push((id, why.to_string())),
            None => doomed.push(id),
        }
    }
    for id in doomed {
        if p.out_of_time() {
            break;
        }
        let (findings, operations) = p.batch(|c| {
            hand_on_shared_rows(c, id)?;
            let f = c.execute("DELETE FROM finding_rows WHERE run_id = ?1", [id])?;
            let o = c.execute("DELETE FROM operation_rows WHERE plan_id = ?1", [id])?;
            c.execute("DELETE FROM plans WHERE plan_id = ?1", [id])?;
            c.execute("DELETE FROM runs WHERE id = ?1", [id])?;
            Ok((f as u64, o as u64))
        })?;
        p.count("plans", 1);
        p.count("findings", findings);
        p.count("operations", operations);
        p.count("runs", 1);
    }
    Ok(needed)
}

/// Before plan `id` goes: rows of its that later plans share (schema 10) become the oldest
/// sharer's, and the other sharers share with that one. Per kind of row: the table of plans (or
/// runs) with its id and sharing columns, and the table of rows with its plan column.
fn hand_on_shared_rows(c: &Connection, id: i64) -> rusqlite::Result<()> {
    const SHARED: [(&str, &str, &str, &str, &str); 2] = [
        ("runs", "id", "findings_of", "finding_rows", "run_id"),
        ("plans", "plan_id", "operations_of", "operation_rows", "plan_id"),
    ];
    for (owners, key, of, rows, owner) in SHARED {
        let heir: Option<i64> = c.query_row(&format!("SELECT min({key}) FROM {owners} WHERE {of} = ?1"), [id], |r| r.get(0))?;
        if let Some(heir) = heir {
            c.execute(&format!("UPDATE {rows} SET {owner} = ?2 WHERE {owner} = ?1"), [id, heir])?;
            c.execute(&format!("UPDATE {owners} SET {of} = NULL WHERE {key} = ?1"), [heir])?;
            c.execute(&format!("UPDATE {owners} SET {of} = ?2 WHERE {of} = ?1"), [id, heir])?;
        }
    }
    Ok(())
}

/// Each source's latest successful pull (source → run id).
fn last_pulls(conn: &Connection) -> rusqlite::Result<BTreeMap<String, i64>> {
    conn.prepare("SELECT name, last_pull_run FROM sources WHERE last_pull_run IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// A plan's `snapshots` column (JSON: source → the pull it read), if it reads.
fn plan_snapshots(json: &str) -> Option<BTreeMap<String, i64>> {
    serde_json::from_str(json).ok()
}

/// Whether a plan's snapshots are every source's latest pull (the same test as `apply`'s
/// staleness check, which lives above the store).
fn is_current(snapshots: &str, pulls: &BTreeMap<String, i64>) -> bool {
    match plan_snapshots(snapshots) {
        Some(used) => !used.is_empty() && used.iter().all(|(source, run)| pulls.get(source) == Some(run)),
        // Unreadable: keep it rather than guess.
        None => true,
    }
}

/// Closed versions that ended before `cut`; the horizon moves to `cut` with the first removal.
fn prune_history(p: &mut Pruner, cut: &str) -> rusqlite::Result<()> {
    let any_older = HISTORY.iter().try_fold(false, |acc, t| -> rusqlite::Result<bool> {
        Ok(acc
            || p.conn
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE valid_to < ?1)"), [cut], |r| {
                    r.get(0)
                })?)
    })?;
    if !any_older {
        return Ok(());
    }
    // The horizon first: from here on, an instant before `cut` may be partly gone.
    let known = history_horizon(p.conn)?;
    if known.as_deref().is_none_or(|h| h < cut) {
        p.batch(|c| set_meta(c, "history_horizon", cut))?;
    }
    for table in HISTORY {
        p.delete_where(table, "valid_to < ?1", cut)?;
    }
    Ok(())
}

/// Runs that finished before `cut` that nothing kept refers to.
fn prune_runs(p: &mut Pruner, cut: &str) -> rusqlite::Result<()> {
    if p.out_of_time() {
        return Ok(());
    }
    let candidates: Vec<i64> = p
        .conn
        .prepare("SELECT id FROM runs WHERE status <> 'running' AND coalesce(finished_at, started_at) < ?1")?
        .query_map([cut], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if candidates.is_empty() {
        return Ok(());
    }
    let mut referenced: HashSet<i64> = HashSet::new();
    for sql in [
        "SELECT last_pull_run FROM sources WHERE last_pull_run IS NOT NULL",
        "SELECT plan_id FROM plans",
        "SELECT DISTINCT run_id FROM finding_rows",
        "SELECT DISTINCT run_id FROM users",
        "SELECT DISTINCT run_id FROM groups",
        "SELECT DISTINCT run_id FROM member_keys",
        "SELECT DISTINCT run_id FROM bindings",
    ] {
        let mut stmt = p.conn.prepare(sql)?;
        let ids = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        for id in ids {
            referenced.insert(id?);
        }
    }
    let mut stmt = p.conn.prepare("SELECT snapshots FROM plans")?;
    let snapshots = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for s in snapshots {
        if let Some(used) = plan_snapshots(&s?) {
            referenced.extend(used.into_values());
        }
    }
    drop(stmt);
    let doomed: Vec<i64> = candidates.into_iter().filter(|id| !referenced.contains(id)).collect();
    for chunk in doomed.chunks(BATCH as usize) {
        if p.out_of_time() {
            return Ok(());
        }
        let n = p.batch(|c| {
            let mut del = c.prepare_cached("DELETE FROM runs WHERE id = ?1")?;
            chunk.iter().try_fold(0u64, |n, id| Ok(n + del.execute([id])? as u64))
        })?;
        p.count("runs", n);
    }
    Ok(())
}

impl Store {
    /// Each source's latest successful pull (source → run id).
    pub fn last_pulls(&self) -> Result<BTreeMap<String, i64>> {
        last_pulls(&self.conn).map_err(|e| self.err(e))
    }

    /// The earliest instant `--at` and `diff` answer (None: all the store's history is kept).
    pub fn history_horizon(&self) -> Result<Option<String>> {
        history_horizon(&self.conn).map_err(|e| self.err(e))
    }

    /// When the store was last pruned.
    pub fn last_prune_at(&self) -> Result<Option<String>> {
        meta(&self.conn, "last_prune_at").map_err(|e| self.err(e))
    }

    /// Rows in each of the store's tables (for `status`).
    pub fn table_rows(&self) -> Result<Vec<(&'static str, i64)>> {
        const TABLES: [&str; 15] = [
            "users",
            "user_versions",
            "groups",
            "group_versions",
            "member_keys",
            "membership_versions",
            "bindings",
            "binding_versions",
            "links",
            "group_links",
            "runs",
            "plans",
            "findings",
            "operations",
            "events",
        ];
        TABLES
            .iter()
            .map(|t| {
                let n = self
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .map_err(|e| self.err(e))?;
                Ok((*t, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_plans(n: i64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        for id in 1..=n {
            store
                .conn
                .execute_batch(&format!(
                    "INSERT INTO runs (id, kind, started_at, finished_at, status) VALUES ({id}, 'plan', '2026-01-0{id}', '2026-01-0{id}', 'ok');
                     INSERT INTO plans (plan_id, created_at, snapshots) VALUES ({id}, '2026-01-0{id}', '{{\"idp.x\": 100}}');
                     INSERT INTO finding_rows (run_id, app, kind) VALUES ({id}, 'a', 'missing_user');"
                ))
                .unwrap();
        }
        (dir, store)
    }

    fn opts(budget: Option<Duration>) -> PruneOptions {
        PruneOptions {
            now: "2027-01-01T00:00:00Z".parse().unwrap(),
            dry_run: false,
            budget,
            vacuum: Vacuum::All,
        }
    }

    fn plans(store: &Store) -> Vec<i64> {
        let mut stmt = store.conn.prepare("SELECT plan_id FROM plans ORDER BY plan_id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn the_latest_n_plans_stay_whatever_their_age_and_stale_ones_go_with_their_rows() {
        let (_dir, mut store) = store_with_plans(6);
        let policy = Retention {
            keep_plans: 3,
            ..Retention::default()
        };
        let report = store.prune(&policy, &opts(None)).unwrap();
        assert_eq!(plans(&store), vec![4, 5, 6]);
        assert_eq!(
            report.removed[..3],
            [("plans".to_string(), 3), ("findings".to_string(), 3), ("operations".to_string(), 0)]
        );
        assert!(report.complete && report.plans_needed.is_empty());
        let findings: i64 = store.conn.query_row("SELECT count(*) FROM findings", [], |r| r.get(0)).unwrap();
        assert_eq!(findings, 3);
    }

    #[test]
    fn rows_later_plans_share_go_to_the_oldest_of_them_when_their_plan_is_pruned() {
        let (_dir, mut store) = store_with_plans(1);
        for id in 2..=6 {
            store
                .conn
                .execute_batch(&format!(
                    "INSERT INTO runs (id, kind, started_at, finished_at, status, findings_of) VALUES ({id}, 'plan', '2026-01-0{id}', '2026-01-0{id}', 'ok', 1);
                     INSERT INTO plans (plan_id, created_at, snapshots, operations_of) VALUES ({id}, '2026-01-0{id}', '{{\"idp.x\": 100}}', 1);"
                ))
                .unwrap();
        }
        store
            .conn
            .execute(
                "INSERT INTO operation_rows (plan_id, seq, app, phase, action, method, path, finding, status) VALUES (1, 1, 'a', 1, 'user.create', 'POST', 'Users', 'user.missing', 'planned')",
                [],
            )
            .unwrap();
        let policy = Retention {
            keep_plans: 3,
            ..Retention::default()
        };
        store.prune(&policy, &opts(None)).unwrap();
        assert_eq!(plans(&store), vec![4, 5, 6]);
        let count = |sql: &str| -> i64 { store.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        for id in 4..=6 {
            assert_eq!(count(&format!("SELECT count(*) FROM findings WHERE run_id = {id}")), 1, "run {id}");
            assert_eq!(
                count(&format!("SELECT count(*) FROM operations WHERE plan_id = {id}")),
                1,
                "plan {id}"
            );
        }
        assert_eq!(count("SELECT count(*) FROM finding_rows WHERE run_id = 4"), 1);
        assert_eq!(count("SELECT count(*) FROM operation_rows WHERE plan_id = 4"), 1);
        assert_eq!(count("SELECT count(*) FROM runs WHERE findings_of = 4"), 2);
        assert_eq!(count("SELECT count(*) FROM plans WHERE operations_of = 4"), 2);
        assert!(crate::store::integrity::check_file(store.path()).unwrap().is_empty());
    }

    #[test]
    fn a_spent_budget_removes_nothing_and_says_so_and_forever_keeps_all() {
        let (_dir, mut store) = store_with_plans(4);
        let policy = Retention {
            keep_plans: 1,
            ..Retention::default()
        };
        let report = store.prune(&policy, &opts(Some(Duration::ZERO))).unwrap();
        assert!(!report.complete);
        assert_eq!(plans(&store), vec![1, 2, 3, 4]);
        let forever = Retention {
            plans: None,
            keep_plans: 1,
            history: None,
            events: None,
            runs: None,
        };
        let report = store.prune(&forever, &opts(None)).unwrap();
        assert_eq!((report.rows(), report.history_horizon), (0, None));
        assert_eq!(plans(&store), vec![1, 2, 3, 4]);
    }
}
