//! Writing one source's snapshot: a single transaction that brings the current tables to the
//! new state and closes the versions that changed or disappeared. Objects are compared by a
//! content hash, so a pull with no changes writes almost nothing.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use super::{Result, Store, StoreError};
use crate::model::{Binding, Group, Snapshot, User};

/// The `sources` row of a connection.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub name: String,
    pub role: &'static str,
    pub kind: String,
    pub profile: Option<String>,
    pub base_url: Option<String>,
}

/// The integer keys the store gave a snapshot's objects: `users[i]` and `groups[i]` of the
/// snapshot have `user_keys[i]` and `group_keys[i]`; `membership_keys` are the distinct
/// (gid, uid) pairs stored. Used to write the columnar copy without reading the store back.
#[derive(Debug, Clone, Default)]
pub struct SnapshotKeys {
    pub user_keys: Vec<i64>,
    pub group_keys: Vec<i64>,
    pub membership_keys: Vec<(i64, i64)>,
}

/// What a snapshot write did, per object kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub users: u64,
    pub groups: u64,
    pub memberships: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    /// Group members that name no user of the pull (an SP that kept a deleted user's id in a
    /// group): skipped, since there is no one to be a member.
    pub dangling_members: u64,
    /// The source's changes applied to the previous snapshot, rather than a full read.
    pub incremental: bool,
    /// HTTP requests the pull made.
    pub requests: u64,
}

const USER_COLS: &str = "uid, source, id, user_name, external_id, given_name, family_name, formatted, display_name, email, active, title, phone, timezone, role, status_raw, raw, hash, valid_from, run_id";
/// Close a membership's current version into `membership_versions` (?1 rowid, ?2 valid_to, ?3 run).
const CLOSE_MEMBERSHIP: &str = "INSERT INTO membership_versions (source, group_id, user_id, valid_from, run_id, valid_to, ended_by_run)
     SELECT source, group_id, user_id, valid_from, run_id, ?2, ?3 FROM memberships WHERE rowid = ?1";
const GROUP_COLS: &str = "gid, source, id, display_name, external_id, raw, hash, valid_from, run_id";

/// What writing one object did to its stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Same,
    Changed,
    Added,
}

/// The statements that write users, prepared once per transaction. Shared by a whole pull and
/// a single-object refresh, so both keep history the same way.
struct UserWriter<'t> {
    insert: rusqlite::CachedStatement<'t>,
    update: rusqlite::CachedStatement<'t>,
    /// Close a user's current version into `user_versions` (?1 uid, ?2 valid_to, ?3 run).
    close: rusqlite::CachedStatement<'t>,
}

impl<'t> UserWriter<'t> {
    fn new(tx: &'t Transaction) -> rusqlite::Result<Self> {
        Ok(UserWriter {
            insert: tx.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ))?,
            update: tx.prepare_cached(
                "UPDATE users SET user_name = ?2, external_id = ?3, given_name = ?4, family_name = ?5, formatted = ?6, display_name = ?7, email = ?8, active = ?9,
                 title = ?10, phone = ?11, timezone = ?12, role = ?13, status_raw = ?14, raw = ?15, hash = ?16, valid_from = ?17, run_id = ?18 WHERE uid = ?1",
            )?,
            close: tx.prepare_cached(&format!(
                "INSERT INTO user_versions ({USER_COLS}, valid_to, ended_by_run) SELECT {USER_COLS}, ?2, ?3 FROM users WHERE uid = ?1"
            ))?,
        })
    }

    /// Write one user of `source` given its stored (uid, hash), if any: unchanged → nothing;
    /// changed → the old version closed and the row updated in place (same uid); new → inserted.
    fn write(
        &mut self,
        tx: &Transaction,
        source: &str,
        u: &User,
        prior: Option<(i64, i64)>,
        now: &str,
        run_id: i64,
    ) -> rusqlite::Result<(i64, Change)> {
        let hash = user_hash(u);
        match prior {
            Some((uid, h)) if h == hash => Ok((uid, Change::Same)),
            Some((uid, _)) => {
                self.close.execute(params![uid, now, run_id])?;
                self.update.execute(params![
                    uid,
                    u.user_name,
                    u.external_id,
                    u.given_name,
                    u.family_name,
                    u.formatted,
                    u.display_name,
                    u.email,
                    u.active,
                    u.title,
                    u.phone,
                    u.timezone,
                    u.role,
                    u.status_raw,
                    u.raw,
                    hash,
                    now,
                    run_id
                ])?;
                Ok((uid, Change::Changed))
            }
            None => {
                self.insert.execute(params![
                    source,
                    u.id,
                    u.user_name,
                    u.external_id,
                    u.given_name,
                    u.family_name,
                    u.formatted,
                    u.display_name,
                    u.email,
                    u.active,
                    u.title,
                    u.phone,
                    u.timezone,
                    u.role,
                    u.status_raw,
                    u.raw,
                    hash,
                    now,
                    run_id
                ])?;
                Ok((tx.last_insert_rowid(), Change::Added))
            }
        }
    }
}

/// The statements that write groups (their own attributes; members are memberships), prepared
/// once per transaction, for a pull and a single-group refresh alike.
struct GroupWriter<'t> {
    insert: rusqlite::CachedStatement<'t>,
    update: rusqlite::CachedStatement<'t>,
    /// Close a group's current version into `group_versions` (?1 gid, ?2 valid_to, ?3 run).
    close: rusqlite::CachedStatement<'t>,
}

impl<'t> GroupWriter<'t> {
    fn new(tx: &'t Transaction) -> rusqlite::Result<Self> {
        Ok(GroupWriter {
            insert: tx.prepare_cached(&format!(
                "INSERT INTO groups ({GROUP_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?,
            close: tx.prepare_cached(&format!(
                "INSERT INTO group_versions ({GROUP_COLS}, valid_to, ended_by_run) SELECT {GROUP_COLS}, ?2, ?3 FROM groups WHERE gid = ?1"
            ))?,
            update: tx.prepare_cached(
                "UPDATE groups SET display_name = ?2, external_id = ?3, raw = ?4, hash = ?5, valid_from = ?6, run_id = ?7 WHERE gid = ?1",
            )?,
        })
    }

    /// Write `g` given its stored (gid, hash), if any: unchanged → nothing; changed → the old
    /// version is closed and the row updated; new → inserted.
    fn write(
        &mut self,
        tx: &Transaction,
        source: &str,
        g: &Group,
        prior: Option<(i64, i64)>,
        now: &str,
        run_id: i64,
    ) -> rusqlite::Result<(i64, Change)> {
        // Connectors keep members out of a group's raw object (they are memberships), so
        // this hash covers the group's own attributes.
        let hash = xxh3_64(g.raw.as_bytes()) as i64;
        match prior {
            Some((gid, h)) if h == hash => Ok((gid, Change::Same)),
            Some((gid, _)) => {
                self.close.execute(params![gid, now, run_id])?;
                self.update
                    .execute(params![gid, g.display_name, g.external_id, g.raw, hash, now, run_id])?;
                Ok((gid, Change::Changed))
            }
            None => {
                self.insert
                    .execute(params![source, g.id, g.display_name, g.external_id, g.raw, hash, now, run_id])?;
                Ok((tx.last_insert_rowid(), Change::Added))
            }
        }
    }
}

fn user_hash(u: &User) -> i64 {
    // The raw object carries every attribute; the status word is added because some sources
    // (file) derive it outside the raw object.
    let mut h = xxh3_64(u.raw.as_bytes());
    if let Some(s) = &u.status_raw {
        h ^= xxh3_64(s.as_bytes()).rotate_left(1);
    }
    h as i64
}

/// The ids present in the store for one source: id → (integer key, content hash).
fn existing(tx: &Transaction, table: &str, key: &str, source: &str) -> rusqlite::Result<HashMap<String, (i64, i64)>> {
    let mut stmt = tx.prepare(&format!("SELECT {key}, id, hash FROM {table} WHERE source = ?1"))?;
    let rows = stmt.query_map([source], |r| {
        Ok((r.get::<_, String>(1)?, (r.get::<_, i64>(0)?, r.get::<_, i64>(2)?)))
    })?;
    rows.collect()
}

impl Store {
    /// Replace `info.name`'s snapshot with `snap` as pull run `run_id`, and mark the run ok.
    /// Either all of it is written or none (the previous snapshot stays as it was).
    pub fn write_snapshot(&mut self, info: &SourceInfo, run_id: i64, snap: &Snapshot) -> Result<SnapshotCounts> {
        self.write_snapshot_keyed(info, run_id, snap, |_| ()).map(|(counts, _)| counts)
    }

    /// [`Store::write_snapshot`], also returning the integer keys of the written objects.
    /// [`Store::write_snapshot`], returning the integer keys the store gave the snapshot's rows.
    /// `alongside_commit` gets those keys on another thread while the transaction commits (the
    /// columnar copy is written there); it must not assume the commit succeeds.
    pub fn write_snapshot_keyed(
        &mut self,
        info: &SourceInfo,
        run_id: i64,
        snap: &Snapshot,
        alongside_commit: impl FnOnce(&SnapshotKeys) + Send,
    ) -> Result<(SnapshotCounts, SnapshotKeys)> {
        let path = self.path.clone();
        let now = crate::time::now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let (counts, keys) = write(&tx, info, run_id, &now, snap).map_err(|e| match e {
            WriteError::Sqlite(source) => StoreError::Sqlite {
                path: path.clone(),
                source,
            },
            WriteError::Invalid { object, message } => StoreError::Snapshot {
                path: path.clone(),
                source_name: info.name.clone(),
                object,
                message,
            },
        })?;
        let counts_json = serde_json::to_string(&counts).expect("counts serialise");
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        tx.execute(
            "INSERT INTO sources (name, role, kind, profile, base_url, last_pull_run, service_provider_config, sync_cursor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(name) DO UPDATE SET role = excluded.role, kind = excluded.kind, profile = excluded.profile,
                 base_url = excluded.base_url, last_pull_run = excluded.last_pull_run,
                 service_provider_config = excluded.service_provider_config, sync_cursor = excluded.sync_cursor",
            params![
                info.name,
                info.role,
                info.kind,
                info.profile,
                info.base_url,
                run_id,
                snap.service_provider_config,
                snap.cursor
            ],
        )
        .map_err(sql_err)?;
        tx.execute(
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3 WHERE id = ?1",
            params![run_id, crate::time::now(), counts_json],
        )
        .map_err(sql_err)?;
        let t = std::time::Instant::now();
        let committed = std::thread::scope(|s| {
            s.spawn(|| alongside_commit(&keys));
            tx.commit()
        });
        committed.map_err(sql_err)?;
        tracing::debug!(source = %info.name, seconds = t.elapsed().as_secs_f64(), "committed");
        Ok((counts, keys))
    }
}

enum WriteError {
    Sqlite(rusqlite::Error),
    Invalid { object: String, message: String },
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sqlite(e)
    }
}

fn write(
    tx: &Transaction,
    info: &SourceInfo,
    run_id: i64,
    now: &str,
    snap: &Snapshot,
) -> std::result::Result<(SnapshotCounts, SnapshotKeys), WriteError> {
    let source = info.name.as_str();
    let mut counts = SnapshotCounts {
        users: snap.users.len() as u64,
        groups: snap.groups.len() as u64,
        memberships: snap.memberships.len() as u64,
        incremental: snap.incremental,
        requests: snap.requests,
        ..Default::default()
    };

    let mut keys = SnapshotKeys::default();

    // Users.
    let t = std::time::Instant::now();
    let mut old = existing(tx, "users", "uid", source)?;
    tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), "loaded existing users");
    let mut uids: HashMap<&str, i64> = HashMap::with_capacity_and_hasher(snap.users.len(), Default::default());
    {
        let mut writer = UserWriter::new(tx)?;
        for u in &snap.users {
            let prior = old.remove(u.id.as_str());
            if prior.is_none() && uids.contains_key(u.id.as_str()) {
                return Err(WriteError::Invalid {
                    object: format!("User {}", u.id),
                    message: "the same id appears twice in one pull".into(),
                });
            }
            let (uid, change) = writer.write(tx, source, u, prior, now, run_id)?;
            match change {
                Change::Same => {}
                Change::Changed => counts.changed += 1,
                Change::Added => counts.added += 1,
            }
            uids.insert(u.id.as_str(), uid);
            keys.user_keys.push(uid);
        }
        let mut delete = tx.prepare_cached("DELETE FROM users WHERE uid = ?1")?;
        for (_, (uid, _)) in old.drain() {
            writer.close.execute(params![uid, now, run_id])?;
            delete.execute([uid])?;
            counts.removed += 1;
        }
    }

    tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), "users written");
    // Groups.
    let t = std::time::Instant::now();
    let mut old = existing(tx, "groups", "gid", source)?;
    let mut gids: HashMap<&str, i64> = HashMap::with_capacity_and_hasher(snap.groups.len(), Default::default());
    {
        let mut writer = GroupWriter::new(tx)?;
        for g in &snap.groups {
            let prior = old.remove(g.id.as_str());
            if prior.is_none() && gids.contains_key(g.id.as_str()) {
                return Err(WriteError::Invalid {
                    object: format!("Group {}", g.id),
                    message: "the same id appears twice in one pull".into(),
                });
            }
            let (gid, change) = writer.write(tx, source, g, prior, now, run_id)?;
            match change {
                Change::Same => {}
                Change::Changed => counts.changed += 1,
                Change::Added => counts.added += 1,
            }
            gids.insert(g.id.as_str(), gid);
            keys.group_keys.push(gid);
        }
        let mut delete = tx.prepare_cached("DELETE FROM groups WHERE gid = ?1")?;
        for (_, (gid, _)) in old.drain() {
            writer.close.execute(params![gid, now, run_id])?;
            delete.execute([gid])?;
            counts.removed += 1;
        }
    }

    tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), "groups written");
    let t = std::time::Instant::now();
    keys.membership_keys = write_memberships(tx, source, run_id, now, snap, &uids, &gids, &mut counts)?;
    tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), "memberships written");
    write_bindings(tx, source, run_id, now, &snap.bindings)?;
    Ok((counts, keys))
}

#[allow(clippy::too_many_arguments)]
fn write_memberships(
    tx: &Transaction,
    source: &str,
    run_id: i64,
    now: &str,
    snap: &Snapshot,
    uids: &HashMap<&str, i64>,
    gids: &HashMap<&str, i64>,
    counts: &mut SnapshotCounts,
) -> std::result::Result<Vec<(i64, i64)>, WriteError> {
    let mut old: HashMap<(i64, i64), i64> = HashMap::default();
    {
        let mut stmt = tx.prepare("SELECT rowid, gid, uid FROM memberships WHERE source = ?1")?;
        let rows = stmt.query_map([source], |r| Ok(((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?), r.get::<_, i64>(0)?)))?;
        for row in rows {
            let (k, v) = row?;
            old.insert(k, v);
        }
    }
    let mut seen: HashSet<(i64, i64)> = HashSet::with_capacity_and_hasher(snap.memberships.len(), Default::default());
    let mut insert = tx.prepare_cached(
        "INSERT INTO memberships (source, group_id, user_id, gid, uid, valid_from, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for m in &snap.memberships {
        let gid = *gids.get(m.group_id.as_str()).ok_or_else(|| WriteError::Invalid {
            object: format!("Group {}", m.group_id),
            message: format!("membership of user {} names a group not in the pull", m.user_id),
        })?;
        let Some(&uid) = uids.get(m.user_id.as_str()) else {
            counts.dangling_members += 1;
            continue;
        };
        if !seen.insert((gid, uid)) {
            continue; // a member listed twice is one membership
        }
        if old.remove(&(gid, uid)).is_none() {
            insert.execute(params![source, m.group_id, m.user_id, gid, uid, now, run_id])?;
            counts.added += 1;
        }
    }
    counts.memberships = seen.len() as u64;
    let mut close = tx.prepare_cached(CLOSE_MEMBERSHIP)?;
    let mut delete = tx.prepare_cached("DELETE FROM memberships WHERE rowid = ?1")?;
    for (_, rowid) in old.drain() {
        close.execute(params![rowid, now, run_id])?;
        delete.execute([rowid])?;
        counts.removed += 1;
    }
    Ok(seen.into_iter().collect())
}

/// Bindings belong to the IdP's pull: the apps' bound groups as this IdP resolves them.
fn write_bindings(tx: &Transaction, idp: &str, run_id: i64, now: &str, bindings: &[Binding]) -> rusqlite::Result<()> {
    let mut old: HashMap<(String, String, Option<String>), i64> = HashMap::default();
    {
        let mut stmt = tx.prepare("SELECT rowid, app, group_name, idp_group_id FROM bindings WHERE idp = ?1")?;
        let rows = stmt.query_map([idp], |r| Ok(((r.get(1)?, r.get(2)?, r.get(3)?), r.get(0)?)))?;
        for row in rows {
            let (k, v) = row?;
            old.insert(k, v);
        }
    }
    let mut insert =
        tx.prepare_cached("INSERT INTO bindings (app, idp, group_name, idp_group_id, valid_from, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for b in bindings {
        let key = (b.app.clone(), b.group_name.clone(), b.idp_group_id.clone());
        if old.remove(&key).is_none() {
            insert.execute(params![b.app, idp, b.group_name, b.idp_group_id, now, run_id])?;
        }
    }
    let mut close = tx.prepare_cached(
        "INSERT INTO binding_versions (app, idp, group_name, idp_group_id, valid_from, run_id, valid_to, ended_by_run)
         SELECT app, idp, group_name, idp_group_id, valid_from, run_id, ?2, ?3 FROM bindings WHERE rowid = ?1",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM bindings WHERE rowid = ?1")?;
    for (_, rowid) in old.drain() {
        close.execute(params![rowid, now, run_id])?;
        delete.execute([rowid])?;
    }
    Ok(())
}

impl Store {
    /// Single-object refresh: write one user of `source` as just read (changed → the old version
    /// is closed, as a pull would), under a run of kind `refresh`. The source's last pull is
    /// not changed. Returns true when the stored user changed.
    pub fn refresh_user(&mut self, source: &str, u: &User) -> Result<bool> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let run_id = self.start_run("refresh", Some(source))?;
        let now = crate::time::now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let prior: Option<(i64, i64)> = tx
            .query_row(
                "SELECT uid, hash FROM users WHERE source = ?1 AND id = ?2",
                params![source, u.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&err)?;
        let changed = UserWriter::new(&tx)
            .and_then(|mut w| w.write(&tx, source, u, prior, &now, run_id))
            .map_err(&err)?
            .1
            != Change::Same;
        tx.execute(
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3 WHERE id = ?1",
            params![
                run_id,
                crate::time::now(),
                serde_json::json!({"user": u.id, "changed": changed}).to_string()
            ],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(changed)
    }

    /// Single-object refresh of one group of `source`: its own attributes and its direct
    /// members (`member_ids`, the source's user ids), as a pull would write them, under a run
    /// of kind `refresh`. Members that name no stored user of the source are not written.
    /// Returns what changed.
    pub fn refresh_group(&mut self, source: &str, g: &Group, member_ids: &[String]) -> Result<GroupRefresh> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let run_id = self.start_run("refresh", Some(source))?;
        let now = crate::time::now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&err)?;
        let out = refresh_group_in(&tx, source, g, member_ids, &now, run_id).map_err(&err)?;
        tx.execute(
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3 WHERE id = ?1",
            params![
                run_id,
                crate::time::now(),
                serde_json::json!({"group": g.id, "changed": out.changed, "members_added": out.members_added, "members_removed": out.members_removed}).to_string()
            ],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(out)
    }
}

/// What [`Store::refresh_group`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRefresh {
    pub changed: bool,
    pub members_added: u64,
    pub members_removed: u64,
    /// Member ids with no stored user of the source.
    pub unknown_members: Vec<String>,
}

fn refresh_group_in(
    tx: &Transaction,
    source: &str,
    g: &Group,
    member_ids: &[String],
    now: &str,
    run_id: i64,
) -> rusqlite::Result<GroupRefresh> {
    let prior: Option<(i64, i64)> = tx
        .query_row(
            "SELECT gid, hash FROM groups WHERE source = ?1 AND id = ?2",
            params![source, g.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (gid, change) = GroupWriter::new(tx)?.write(tx, source, g, prior, now, run_id)?;
    let mut out = GroupRefresh {
        changed: change != Change::Same,
        ..Default::default()
    };
    let mut old: HashMap<i64, i64> = HashMap::default();
    {
        let mut stmt = tx.prepare("SELECT rowid, uid FROM memberships WHERE source = ?1 AND gid = ?2")?;
        for row in stmt.query_map(params![source, gid], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(0)?)))? {
            let (uid, rowid) = row?;
            old.insert(uid, rowid);
        }
    }
    let mut uid_of = tx.prepare_cached("SELECT uid FROM users WHERE source = ?1 AND id = ?2")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO memberships (source, group_id, user_id, gid, uid, valid_from, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut seen: HashSet<i64> = HashSet::default();
    for id in member_ids {
        let Some(uid) = uid_of.query_row(params![source, id], |r| r.get::<_, i64>(0)).optional()? else {
            out.unknown_members.push(id.clone());
            continue;
        };
        if seen.insert(uid) && old.remove(&uid).is_none() {
            insert.execute(params![source, g.id, id, gid, uid, now, run_id])?;
            out.members_added += 1;
        }
    }
    let mut close = tx.prepare_cached(CLOSE_MEMBERSHIP)?;
    let mut delete = tx.prepare_cached("DELETE FROM memberships WHERE rowid = ?1")?;
    for (_, rowid) in old.drain() {
        close.execute(params![rowid, now, run_id])?;
        delete.execute([rowid])?;
        out.members_removed += 1;
    }
    Ok(out)
}
