//! Writing one source's snapshot: a single transaction that brings the current tables to the
//! new state and closes the versions that changed or disappeared. Objects are compared by a
//! content hash, so a pull with no changes writes almost nothing.
use std::borrow::Cow;
use std::hash::BuildHasher;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use super::rows::{insert_rows, int};
use super::{Result, Store, StoreError};
use crate::model::{Binding, Group, Ids, Memberships, PackedUser, Snapshot, User};

/// The `sources` row of a connection.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// `idp.NAME` or `app.NAME`.
    pub name: String,
    /// `idp` or `app`.
    pub role: &'static str,
    /// The IdP kind, or `scim` for an app.
    pub kind: String,
    /// An app's profile.
    pub profile: Option<String>,
    /// Where it is read from.
    pub base_url: Option<String>,
}

/// The integer keys the store gave a snapshot's objects: `users[i]` and `groups[i]` of the
/// snapshot have `user_keys[i]` and `group_keys[i]`; `membership_keys` are the distinct
/// (gid, uid) pairs stored. Used to write the columnar copy without reading the store back.
#[derive(Debug, Clone, Default)]
pub struct SnapshotKeys {
    /// `users.uid` of each user, in snapshot order.
    pub user_keys: Vec<i64>,
    /// `groups.gid` of each group, in snapshot order.
    pub group_keys: Vec<i64>,
    /// The distinct (gid, uid) memberships.
    pub membership_keys: Vec<(i64, i64)>,
}

/// What a snapshot write did, per object kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Users in the snapshot.
    pub users: u64,
    /// Groups in the snapshot.
    pub groups: u64,
    /// Memberships in the snapshot.
    pub memberships: u64,
    /// Objects new since the last snapshot.
    pub added: u64,
    /// Objects changed.
    pub changed: u64,
    /// Objects gone.
    pub removed: u64,
    /// Group members that name no user of the pull (an SP that kept a deleted user's id in a
    /// group): skipped, since there is no one to be a member.
    pub dangling_members: u64,
    /// The source's changes applied to the previous snapshot, rather than a full read.
    pub incremental: bool,
    /// HTTP requests the pull made.
    pub requests: u64,
}

const USER_COLS: &str = "uid, source, id, user_name, external_id, given_name, family_name, formatted, display_name, email, active, title, phone, timezone, role, status_raw, attributes, raw, hash, valid_from, run_id";
/// Close a membership's current version into `membership_versions` (?1 gid, ?2 uid, ?3 valid_to,
/// ?4 run). Reads the ids through the `memberships` view, so the group and the user must still
/// be stored: removed users and groups are deleted after their memberships are closed.
const CLOSE_MEMBERSHIP: &str = "INSERT INTO membership_versions (source, group_id, user_id, valid_from, run_id, valid_to, ended_by_run)
     SELECT source, group_id, user_id, valid_from, run_id, ?3, ?4 FROM memberships WHERE gid = ?1 AND uid = ?2";
const INSERT_MEMBERSHIP: &str = "INSERT INTO member_keys (gid, uid, run_id) VALUES (?1, ?2, ?3)";
const DELETE_MEMBERSHIP: &str = "DELETE FROM member_keys WHERE gid = ?1 AND uid = ?2";
const GROUP_COLS: &str = "gid, source, id, display_name, external_id, raw, hash, valid_from, run_id";

impl SnapshotCounts {
    fn tally(&mut self, change: Change) {
        match change {
            Change::Same => {}
            Change::Changed => self.changed += 1,
            Change::Added => self.added += 1,
        }
    }
}

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
                "INSERT INTO users ({USER_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
            ))?,
            update: tx.prepare_cached(
                "UPDATE users SET user_name = ?2, external_id = ?3, given_name = ?4, family_name = ?5, formatted = ?6, display_name = ?7, email = ?8, active = ?9,
                 title = ?10, phone = ?11, timezone = ?12, role = ?13, status_raw = ?14, attributes = ?15, raw = ?16, hash = ?17, valid_from = ?18, run_id = ?19 WHERE uid = ?1",
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
        u: &PackedUser,
        prior: Option<(i64, i64)>,
        now: &str,
        run_id: i64,
    ) -> rusqlite::Result<(i64, Change)> {
        use crate::model::UserField::*;
        use rusqlite::{params_from_iter, ToSql};
        let hash = user_hash(u);
        if let Some((uid, _)) = prior.filter(|&(_, h)| h == hash) {
            return Ok((uid, Change::Same));
        }
        // What an update and an insert both write, in the statements' order.
        let row: [&dyn ToSql; 18] = [
            &u.get(UserName),
            &u.get(ExternalId),
            &u.get(GivenName),
            &u.get(FamilyName),
            &u.get(Formatted),
            &u.get(DisplayName),
            &u.get(Email),
            &u.active(),
            &u.get(Title),
            &u.get(Phone),
            &u.get(Timezone),
            &u.get(Role),
            &u.get(StatusRaw),
            &u.get(Attributes),
            &u.raw(),
            &hash,
            &now,
            &run_id,
        ];
        match prior {
            Some((uid, _)) => {
                self.close.execute(params![uid, now, run_id])?;
                self.update
                    .execute(params_from_iter(std::iter::once(&uid as &dyn ToSql).chain(row)))?;
                Ok((uid, Change::Changed))
            }
            None => {
                self.insert
                    .execute(params_from_iter([&source as &dyn ToSql, &u.id()].into_iter().chain(row)))?;
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

fn user_hash(u: &PackedUser) -> i64 {
    // The raw object carries every attribute; the status word is added because some sources
    // (file) derive it outside the raw object.
    let mut h = u.raw_hash();
    if let Some(s) = u.get(crate::model::UserField::StatusRaw) {
        h ^= xxh3_64(s.as_bytes()).rotate_left(1);
    }
    // The attributes are derived from the raw object by the connector; hashing them too means a
    // store written before they were derived takes them at its next pull.
    if let Some(a) = u.get(crate::model::UserField::Attributes) {
        h ^= xxh3_64(a.as_bytes()).rotate_left(2);
    }
    h as i64
}

/// A stored object's key (uid or gid) and content hash.
type Stored = (i64, i64);

/// The stored (key, hash) of each of a snapshot's `len` objects of `table` (their ids by
/// position from `id`), by position (`None`: new), and the keys of the source's stored objects
/// it no longer has. The snapshot's ids are sorted once (four bytes an object) and searched for
/// each stored id as SQLite reads it: a map of the stored ids, each a string of its own, took
/// 0.18 GiB for 1M users beside the snapshot, at a pull's peak.
fn stored_by_position<'a>(
    tx: &Transaction,
    table: &str,
    key: &str,
    source: &str,
    len: usize,
    id: impl Fn(usize) -> &'a str,
) -> rusqlite::Result<(Vec<Option<Stored>>, Vec<i64>)> {
    let id = |p: u32| id(p as usize);
    let mut order: Vec<u32> = (0..len as u32).collect();
    // Equal ids (an id listed twice, which fails the write) keep the snapshot's order.
    order.sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
    let mut prior = vec![None; len];
    let mut removed = Vec::new();
    let mut stmt = tx.prepare(&format!("SELECT {key}, id, hash FROM {table} WHERE source = ?1"))?;
    let mut rows = stmt.query([source])?;
    while let Some(r) = rows.next()? {
        let stored_id = r
            .get_ref(1)?
            .as_str()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?;
        // The first of the snapshot's objects with that id.
        let at = order.partition_point(|&p| id(p) < stored_id);
        match order.get(at) {
            Some(&p) if id(p) == stored_id => prior[p as usize] = Some((r.get(0)?, r.get(2)?)),
            _ => removed.push(r.get(0)?),
        }
    }
    Ok((prior, removed))
}

impl Store {
    /// Replace `info.name`'s snapshot with `snap` as pull run `run_id`, and mark the run ok.
    /// Either all of it is written or none (the previous snapshot stays as it was).
    pub fn write_snapshot(&mut self, info: &SourceInfo, run_id: i64, snap: &Snapshot) -> Result<SnapshotCounts> {
        self.write_snapshot_keyed(info, run_id, snap, Cow::Borrowed(&snap.memberships), |_| ())
            .map(|(counts, _)| counts)
    }

    /// [`Store::write_snapshot`], returning the integer keys the store gave the snapshot's rows.
    /// `alongside_commit` gets those keys on another thread while the transaction commits (the
    /// columnar copy is written there); it must not assume the commit succeeds.
    ///
    /// `memberships` are the snapshot's (`snap.memberships` is not read): given owned, they are
    /// let go as soon as they are resolved to positions, before the users are written (a 1M-user
    /// pull held its 5M memberships' ids, about 100 MB, to the end of the write, its peak).
    pub fn write_snapshot_keyed(
        &mut self,
        info: &SourceInfo,
        run_id: i64,
        snap: &Snapshot,
        memberships: Cow<'_, Memberships>,
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
        let (counts, keys) = write(&tx, info, run_id, &now, snap, memberships).map_err(|e| match e {
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
            "INSERT INTO sources (name, role, kind, profile, base_url, last_pull_run, service_provider_config, sync_cursor, user_schema)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(name) DO UPDATE SET role = excluded.role, kind = excluded.kind, profile = excluded.profile,
                 base_url = excluded.base_url, last_pull_run = excluded.last_pull_run,
                 service_provider_config = excluded.service_provider_config, sync_cursor = excluded.sync_cursor,
                 user_schema = excluded.user_schema",
            params![
                info.name,
                info.role,
                info.kind,
                info.profile,
                info.base_url,
                run_id,
                snap.service_provider_config,
                snap.cursor,
                snap.user_schema
            ],
        )
        .map_err(sql_err)?;
        tx.execute(
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3, snapshot_at = ?4 WHERE id = ?1",
            params![run_id, crate::time::now(), counts_json, now],
        )
        .map_err(sql_err)?;
        let t = std::time::Instant::now();
        let committed = std::thread::scope(|s| {
            s.spawn(|| alongside_commit(&keys));
            tx.commit()
        });
        committed.map_err(sql_err)?;
        tracing::debug!(source = %info.name, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "committed");
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
    memberships: Cow<'_, Memberships>,
) -> std::result::Result<(SnapshotCounts, SnapshotKeys), WriteError> {
    let source = info.name.as_str();
    let mut counts = SnapshotCounts {
        users: snap.users.len() as u64,
        groups: snap.groups.len() as u64,
        incremental: snap.incremental,
        requests: snap.requests,
        ..Default::default()
    };
    let mut keys = SnapshotKeys::default();
    // The second core checks the ids and resolves every membership to positions in the
    // snapshot while this one writes the users and groups.
    std::thread::scope(|s| {
        let index = s.spawn(move || {
            let index = MemberIndex::of(snap, &memberships);
            drop(memberships);
            index
        });

        let t = std::time::Instant::now();
        let (prior, removed_users) = stored_by_position(tx, "users", "uid", source, snap.users.len(), |i| snap.users[i].id())?;
        tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "loaded existing users");
        {
            let mut writer = UserWriter::new(tx)?;
            keys.user_keys.reserve(snap.users.len());
            for (u, prior) in snap.users.iter().zip(prior) {
                let (uid, change) = writer.write(tx, source, u, prior, now, run_id)?;
                counts.tally(change);
                keys.user_keys.push(uid);
            }
        }
        tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "users written");

        let t = std::time::Instant::now();
        let (prior, removed_groups) = stored_by_position(tx, "groups", "gid", source, snap.groups.len(), |i| snap.groups[i].id.as_str())?;
        {
            let mut writer = GroupWriter::new(tx)?;
            keys.group_keys.reserve(snap.groups.len());
            for (g, prior) in snap.groups.iter().zip(prior) {
                let (gid, change) = writer.write(tx, source, g, prior, now, run_id)?;
                counts.tally(change);
                keys.group_keys.push(gid);
            }
        }
        tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "groups written");

        // An id listed twice was written twice above; the error rolls the transaction back.
        let index = index.join().expect("the membership index does not panic")?;
        counts.dangling_members = index.dangling;
        let t = std::time::Instant::now();
        // Converted from the end a slice at a time, each slice's room handed back as it goes
        // (they are sorted next): the positions and the keys were both held whole, 40 MB more at
        // 5M memberships, at the pull's peak.
        let mut positions = index.pairs;
        let mut pairs = Vec::with_capacity(positions.len());
        while !positions.is_empty() {
            let from = positions.len().saturating_sub(1 << 20);
            pairs.extend(
                positions
                    .drain(from..)
                    .map(|(g, u)| (keys.group_keys[g as usize], keys.user_keys[u as usize])),
            );
            positions.shrink_to_fit();
        }
        keys.membership_keys = write_memberships(tx, run_id, now, source, pairs, &mut counts, MERGE_CHUNK)?;
        tracing::debug!(source, seconds = t.elapsed().as_secs_f64(), memory = %crate::memory::resident(), "memberships written");

        // Their memberships are closed: now the removed users and groups themselves.
        let mut writer = UserWriter::new(tx)?;
        let mut delete = tx.prepare_cached("DELETE FROM users WHERE uid = ?1")?;
        for uid in removed_users {
            writer.close.execute(params![uid, now, run_id])?;
            delete.execute([uid])?;
            counts.removed += 1;
        }
        let mut writer = GroupWriter::new(tx)?;
        let mut delete = tx.prepare_cached("DELETE FROM groups WHERE gid = ?1")?;
        for gid in removed_groups {
            writer.close.execute(params![gid, now, run_id])?;
            delete.execute([gid])?;
            counts.removed += 1;
        }
        Ok::<_, WriteError>(())
    })?;
    write_bindings(tx, source, run_id, now, &snap.bindings)?;
    Ok((counts, keys))
}

/// Each id's position in `ids`: the table holds positions only (4 bytes a slot, where a map
/// keyed by the ids themselves took 24: 40 MB more for 1M users at a pull's peak).
struct Positions<'a> {
    ids: &'a Ids,
    table: hashbrown::HashTable<u32>,
    hasher: rustc_hash::FxBuildHasher,
}

impl<'a> Positions<'a> {
    /// The positions of `ids` (of `kind`'s objects): an id twice is an error.
    fn of(kind: &str, ids: &'a Ids) -> std::result::Result<Self, WriteError> {
        let mut at = Positions {
            ids,
            table: hashbrown::HashTable::with_capacity(ids.len()),
            hasher: Default::default(),
        };
        for (i, id) in ids.iter().enumerate() {
            let hash = at.hasher.hash_one(id);
            let hash_at = |&p: &u32| at.hasher.hash_one(ids.get(p as usize));
            match at.table.entry(hash, |&p| ids.get(p as usize) == id, hash_at) {
                hashbrown::hash_table::Entry::Occupied(_) => {
                    return Err(WriteError::Invalid {
                        object: format!("{kind} {id}"),
                        message: "the same id appears twice in one pull".into(),
                    })
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i as u32);
                }
            }
        }
        Ok(at)
    }

    fn get(&self, id: &str) -> Option<&u32> {
        self.table.find(self.hasher.hash_one(id), |&p| self.ids.get(p as usize) == id)
    }
}

/// A snapshot's memberships as (group, user) positions in its `groups` and `users`, with its
/// ids checked: an id twice in one pull, or a membership naming a group not in it, is an error.
struct MemberIndex {
    pairs: Vec<(u32, u32)>,
    /// Members naming no user of the pull.
    dangling: u64,
}

impl MemberIndex {
    fn of(snap: &Snapshot, memberships: &Memberships) -> std::result::Result<MemberIndex, WriteError> {
        let t = std::time::Instant::now();
        // The ids are copied together first: looked up millions of times, keys scattered over
        // the heap (one small allocation per user) made every lookup a cache miss more.
        let user_ids: Ids = snap.users.iter().map(|u| u.id()).collect();
        let group_ids: Ids = snap.groups.iter().map(|g| g.id.as_str()).collect();
        let users = Positions::of("User", &user_ids)?;
        let groups = Positions::of("Group", &group_ids)?;
        let mut out = MemberIndex {
            pairs: Vec::with_capacity(memberships.len()),
            dangling: 0,
        };
        let mut last: Option<(&str, u32)> = None; // members come group by group
        for m in memberships {
            let g = match last {
                Some((id, g)) if id == m.group_id => g,
                _ => *groups.get(m.group_id).ok_or_else(|| WriteError::Invalid {
                    object: format!("Group {}", m.group_id),
                    message: format!("membership of user {} names a group not in the pull", m.user_id),
                })?,
            };
            last = Some((m.group_id, g));
            match users.get(m.user_id) {
                Some(&u) => out.pairs.push((g, u)),
                None => out.dangling += 1,
            }
        }
        tracing::debug!(seconds = t.elapsed().as_secs_f64(), "ids checked, memberships resolved");
        Ok(out)
    }
}

/// A refresh's lookups of one object by id: (source, id) is indexed (schema 11).
pub(super) const USER_BY_ID: &str = "SELECT uid, hash FROM users WHERE source = ?1 AND id = ?2";
pub(super) const GROUP_BY_ID: &str = "SELECT gid, hash FROM groups WHERE source = ?1 AND id = ?2";
/// A refreshed group's members, each looked up by id.
pub(super) const UID_BY_ID: &str = "SELECT uid FROM users WHERE source = ?1 AND id = ?2";

/// The stored (gid, uid) memberships of `source`'s groups whose gid is in ?2..=?3 (through the
/// `groups_source` index, whose entries are in gid order).
const STORED_MEMBERSHIPS_IN: &str = "SELECT k.gid, k.uid FROM groups g JOIN member_keys k ON k.gid = g.gid
     WHERE g.source = ?1 AND g.gid BETWEEN ?2 AND ?3";
/// About how many of the new memberships are compared with the stored ones at a time.
const MERGE_CHUNK: usize = 1 << 16;

/// Bring the source's stored memberships to `pairs` (gid, uid): new ones inserted, gone ones
/// closed into their history. Returns the distinct pairs, in key order.
fn write_memberships(
    tx: &Transaction,
    run_id: i64,
    now: &str,
    source: &str,
    mut pairs: Vec<(i64, i64)>,
    counts: &mut SnapshotCounts,
    chunk: usize,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    // In key order (a member listed twice is one membership): the stored pairs are read in the
    // same order, a range of groups at a time, so the two are compared by a merge and new rows
    // append to the B-tree. Read whole, the stored pairs were a second copy of every
    // membership (80 MB at 5M) at the pull's peak.
    pairs.sort_unstable();
    pairs.dedup();
    counts.memberships = pairs.len() as u64;
    let mut merge = MembershipMerge {
        added: Vec::new(),
        close: tx.prepare_cached(CLOSE_MEMBERSHIP)?,
        delete: tx.prepare_cached(DELETE_MEMBERSHIP)?,
        run_id,
        now,
        counts,
    };
    let mut stored_in = tx.prepare_cached(STORED_MEMBERSHIPS_IN)?;
    let (mut at, mut lo) = (0, i64::MIN);
    loop {
        // The groups lo..=hi: the next `chunk` new pairs and the rest of the last group's.
        // Each range's stored pairs are read whole before any of them is changed.
        let hi = pairs.get(at + chunk).map_or(i64::MAX, |p| p.0);
        let end = at + pairs[at..].partition_point(|p| p.0 <= hi);
        let mut stored = stored_in
            .query_map(params![source, lo, hi], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        stored.sort_unstable();
        merge.run(&pairs[at..end], &stored)?;
        // The range's new memberships, many to a statement.
        let head = "INSERT INTO member_keys (gid, uid, run_id)";
        insert_rows(tx, head, 3, merge.added.drain(..), |&(gid, uid)| {
            vec![int(Some(gid)), int(Some(uid)), int(Some(run_id))]
        })?;
        if hi == i64::MAX {
            break;
        }
        (at, lo) = (end, hi + 1);
    }
    Ok(pairs)
}

/// Brings stored memberships to new ones, both in key order.
struct MembershipMerge<'a, 'c> {
    /// New memberships of the range merged, to be inserted.
    added: Vec<(i64, i64)>,
    close: rusqlite::CachedStatement<'c>,
    delete: rusqlite::CachedStatement<'c>,
    run_id: i64,
    now: &'a str,
    counts: &'a mut SnapshotCounts,
}

impl MembershipMerge<'_, '_> {
    fn run(&mut self, new: &[(i64, i64)], stored: &[(i64, i64)]) -> rusqlite::Result<()> {
        let (mut new, mut old) = (new.iter().peekable(), stored.iter().peekable());
        loop {
            match (new.peek(), old.peek()) {
                (Some(n), Some(o)) if n == o => {
                    new.next();
                    old.next();
                }
                (Some(&&(gid, uid)), o) if o.is_none_or(|o| (gid, uid) < **o) => {
                    self.added.push((gid, uid));
                    self.counts.added += 1;
                    new.next();
                }
                (_, Some(&&(gid, uid))) => {
                    self.close.execute(params![gid, uid, self.now, self.run_id])?;
                    self.delete.execute(params![gid, uid])?;
                    self.counts.removed += 1;
                    old.next();
                }
                (_, None) => return Ok(()),
            }
        }
    }
}

/// The stored (gid, uid) memberships of `source`'s groups, in key order.
pub(super) fn stored_memberships(conn: &rusqlite::Connection, source: &str) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare("SELECT k.gid, k.uid FROM groups g JOIN member_keys k ON k.gid = g.gid WHERE g.source = ?1")?;
    let rows = stmt.query_map([source], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
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
            .query_row(USER_BY_ID, params![source, u.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(&err)?;
        let changed = UserWriter::new(&tx)
            .and_then(|mut w| w.write(&tx, source, &PackedUser::from(u), prior, &now, run_id))
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
            "UPDATE runs SET status = 'ok', finished_at = ?2, counts = ?3, snapshot_at = ?4 WHERE id = ?1",
            params![
                run_id,
                crate::time::now(),
                serde_json::json!({"group": g.id, "changed": out.changed, "members_added": out.members_added, "members_removed": out.members_removed}).to_string(),
                now
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
    /// The group itself changed.
    pub changed: bool,
    /// Members added.
    pub members_added: u64,
    /// Members removed.
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
        .query_row(GROUP_BY_ID, params![source, g.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (gid, change) = GroupWriter::new(tx)?.write(tx, source, g, prior, now, run_id)?;
    let mut out = GroupRefresh {
        changed: change != Change::Same,
        ..Default::default()
    };
    let mut old: HashSet<i64> = {
        let mut stmt = tx.prepare("SELECT uid FROM member_keys WHERE gid = ?1")?;
        let rows = stmt.query_map([gid], |r| r.get::<_, i64>(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut uid_of = tx.prepare_cached(UID_BY_ID)?;
    let mut insert = tx.prepare_cached(INSERT_MEMBERSHIP)?;
    let mut seen: HashSet<i64> = HashSet::default();
    for id in member_ids {
        let Some(uid) = uid_of.query_row(params![source, id], |r| r.get::<_, i64>(0)).optional()? else {
            out.unknown_members.push(id.clone());
            continue;
        };
        if seen.insert(uid) && !old.remove(&uid) {
            insert.execute(params![gid, uid, run_id])?;
            out.members_added += 1;
        }
    }
    let mut close = tx.prepare_cached(CLOSE_MEMBERSHIP)?;
    let mut delete = tx.prepare_cached(DELETE_MEMBERSHIP)?;
    for uid in old {
        close.execute(params![gid, uid, now, run_id])?;
        delete.execute(params![gid, uid])?;
        out.members_removed += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Membership;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            user_name: Some(format!("{id}@example.com")),
            active: true,
            raw: format!(r#"{{"id":"{id}"}}"#),
            ..Default::default()
        }
    }

    fn group(id: &str) -> Group {
        Group {
            id: id.into(),
            display_name: id.to_uppercase(),
            raw: format!(r#"{{"id":"{id}"}}"#),
            ..Default::default()
        }
    }

    fn snapshot(users: &[&str], groups: &[&str], members: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            users: users.iter().map(|u| user(u).into()).collect(),
            groups: groups.iter().map(|g| group(g)).collect(),
            memberships: members
                .iter()
                .map(|(g, u)| Membership {
                    group_id: g.to_string(),
                    user_id: u.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn info() -> SourceInfo {
        SourceInfo {
            name: "idp.corp".into(),
            role: "idp",
            kind: "file".into(),
            profile: None,
            base_url: None,
        }
    }

    fn rows(store: &Store, sql: &str) -> Vec<String> {
        let mut stmt = store.connection().prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_string(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    v => v.as_str().unwrap().to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// `members_of`: each asked group's member ids, inactive members too (a PUT keeps them), and
    /// no entry for a group without members or one not asked for.
    #[test]
    fn members_of_gives_each_asked_groups_member_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let users: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
        let ids: Vec<&str> = users.iter().map(String::as_str).collect();
        let mut members = vec![("small", "u03"), ("small", "u07")];
        members.extend(ids.iter().take(12).map(|u| ("big", *u)));
        let mut snap = snapshot(&ids, &["small", "big", "empty"], &members);
        let mut gone = user("u07");
        gone.active = false;
        gone.raw.push(' ');
        snap.users[7] = gone.into();
        pull(&mut store, &snap);
        let sorted = |m: Option<&Vec<String>>| {
            let mut v = m.cloned().unwrap_or_default();
            v.sort();
            v
        };
        let small = store
            .members_of("idp.corp", &std::collections::HashSet::from(["small", "empty"]))
            .unwrap();
        assert_eq!(sorted(small.get("small")), ["u03", "u07"]);
        assert!(!small.contains_key("empty"));
        assert!(!small.contains_key("big"));
        let all = store
            .members_of("idp.corp", &std::collections::HashSet::from(["small", "big"]))
            .unwrap();
        let big: Vec<String> = ids[..12].iter().map(|u| u.to_string()).collect();
        assert_eq!(sorted(all.get("big")), big);
        assert_eq!(sorted(all.get("small")), ["u03", "u07"]);
    }

    /// Memberships given owned (taken out of the snapshot, as a pull gives them, so that the
    /// write lets them go once resolved) are written as the same memberships given borrowed.
    #[test]
    fn memberships_given_owned_are_written_as_given_borrowed() {
        let members = [("g1", "u1"), ("g1", "u2"), ("g2", "u3"), ("g2", "nobody")];
        let mut written = Vec::new();
        for owned in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(&dir.path().join("s.db")).unwrap();
            let mut snap = snapshot(&["u1", "u2", "u3"], &["g1", "g2"], &members);
            let memberships = if owned {
                Cow::Owned(std::mem::take(&mut snap.memberships))
            } else {
                Cow::Borrowed(&snap.memberships)
            };
            let run = store.start_run("pull", Some("idp.corp")).unwrap();
            let (counts, keys) = store.write_snapshot_keyed(&info(), run, &snap, memberships, |_| ()).unwrap();
            let stored = rows(
                &store,
                "SELECT g.id || ' ' || u.id FROM member_keys k JOIN groups g ON g.gid = k.gid JOIN users u ON u.uid = k.uid ORDER BY 1",
            );
            written.push((counts, keys.membership_keys.len(), stored));
        }
        assert_eq!(written[0], written[1]);
        let (counts, keys, stored) = &written[1];
        assert_eq!((counts.dangling_members, *keys), (1, 3));
        assert_eq!(stored, &["g1 u1", "g1 u2", "g2 u3"]);
    }

    fn pull(store: &mut Store, snap: &Snapshot) -> (SnapshotCounts, String) {
        let run = store.start_run("pull", Some("idp.corp")).unwrap();
        let counts = store.write_snapshot(&info(), run, snap).unwrap();
        let at: String = store
            .connection()
            .query_row("SELECT snapshot_at FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .unwrap();
        (counts, at)
    }

    #[test]
    fn memberships_keep_their_ids_and_history_when_users_and_groups_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let (first, t1) = pull(
            &mut store,
            &snapshot(
                &["alice", "bob"],
                &["eng", "ops"],
                &[("eng", "alice"), ("eng", "bob"), ("ops", "bob"), ("eng", "bob")],
            ),
        );
        assert_eq!((first.memberships, first.added), (3, 7), "a member listed twice is one membership");
        assert_eq!(
            rows(&store, "SELECT source, group_id, user_id, valid_from = (SELECT snapshot_at FROM runs WHERE id = run_id) FROM memberships ORDER BY group_id, user_id"),
            ["idp.corp eng alice 1", "idp.corp eng bob 1", "idp.corp ops bob 1"]
        );

        // bob and ops are gone; carol joins eng.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (second, t2) = pull(
            &mut store,
            &snapshot(&["alice", "carol"], &["eng"], &[("eng", "alice"), ("eng", "carol")]),
        );
        assert_eq!(
            (second.added, second.removed),
            (2, 4),
            "carol and her membership; bob, ops and bob's two memberships"
        );
        assert_eq!(
            rows(&store, "SELECT group_id, user_id FROM memberships ORDER BY user_id"),
            ["eng alice", "eng carol"]
        );
        assert_eq!(
            rows(
                &store,
                "SELECT source, group_id, user_id, valid_to = ended_by_run FROM membership_versions ORDER BY group_id"
            ),
            ["idp.corp eng bob 0", "idp.corp ops bob 0"]
        );
        let closed = rows(&store, "SELECT valid_from, valid_to FROM membership_versions");
        assert!(closed.iter().all(|r| r == &format!("{t1} {t2}")), "{closed:?}");
        // As of the first pull, the history shows the first state again.
        assert_eq!(
            rows(
                &store,
                &format!(
                    "SELECT group_id, user_id FROM membership_history WHERE valid_from <= '{t1}' AND (valid_to IS NULL OR valid_to > '{t1}') ORDER BY group_id, user_id"
                )
            ),
            ["eng alice", "eng bob", "ops bob"]
        );

        // Unchanged: nothing written; a refresh of one group closes and adds like a pull.
        let (third, _) = pull(
            &mut store,
            &snapshot(&["alice", "carol"], &["eng"], &[("eng", "carol"), ("eng", "alice")]),
        );
        assert_eq!((third.added, third.removed, third.changed), (0, 0, 0));
        let out = store
            .refresh_group("idp.corp", &group("eng"), &["carol".into(), "nobody".into()])
            .unwrap();
        assert_eq!(
            (out.members_added, out.members_removed, out.unknown_members),
            (0, 1, vec!["nobody".to_string()])
        );
        assert_eq!(rows(&store, "SELECT group_id, user_id FROM memberships"), ["eng carol"]);
        assert_eq!(
            rows(&store, "SELECT count(*) FROM membership_versions WHERE user_id = 'alice'"),
            ["1"]
        );
    }

    proptest::proptest! {
        /// Compared a range of groups at a time, whatever the ranges, the stored memberships
        /// become the new ones: the rest inserted or closed, another source's left alone (its
        /// groups' keys lie between this source's).
        #[test]
        fn memberships_merged_by_ranges_of_groups_become_the_new_ones(
            stored in proptest::collection::btree_set((0usize..6, 0usize..5), 0..30),
            new in proptest::collection::vec((0usize..6, 0usize..5), 0..30),
            chunk in 1usize..8,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(&dir.path().join("s.db")).unwrap();
            let (users, groups) = (["u0", "u1", "u2", "u3", "u4"], ["g0", "g1", "g2", "g3", "g4", "g5"]);
            let members = |pairs: &[(usize, usize)]| pairs.iter().map(|&(g, u)| (groups[g], users[u])).collect::<Vec<_>>();
            let stored: Vec<(usize, usize)> = stored.into_iter().collect();
            // g0–g2 first, then the app's groups (every member), then g3–g5: keys interleaved.
            let early: Vec<_> = stored.iter().copied().filter(|&(g, _)| g < 3).collect();
            pull(&mut store, &snapshot(&users, &groups[..3], &members(&early)));
            let app = SourceInfo { name: "app.x".into(), role: "app", ..info() };
            let run = store.start_run("pull", Some("app.x")).unwrap();
            let every: Vec<_> = (0..6).flat_map(|g| (0..5).map(move |u| (g, u))).collect();
            store.write_snapshot(&app, run, &snapshot(&users, &groups, &members(&every))).unwrap();
            pull(&mut store, &snapshot(&users, &groups, &members(&stored)));

            let key = |table: &str, id: &str| -> i64 {
                let key = if table == "users" { "uid" } else { "gid" };
                store.connection().query_row(&format!("SELECT {key} FROM {table} WHERE source = 'idp.corp' AND id = ?1"), [id], |r| r.get(0)).unwrap()
            };
            let pairs: Vec<(i64, i64)> = new.iter().map(|&(g, u)| (key("groups", groups[g]), key("users", users[u]))).collect();
            let tx = store.conn.transaction().unwrap();
            let mut counts = SnapshotCounts::default();
            let written = write_memberships(&tx, 99, "later", "idp.corp", pairs, &mut counts, chunk).unwrap();
            tx.commit().unwrap();

            let wanted: std::collections::BTreeSet<(usize, usize)> = new.iter().copied().collect();
            let held: std::collections::BTreeSet<(usize, usize)> = rows(&store, "SELECT group_id, user_id FROM memberships WHERE source = 'idp.corp'")
                .iter()
                .map(|r| {
                    let (g, u) = r.split_once(' ').unwrap();
                    (groups.iter().position(|x| *x == g).unwrap(), users.iter().position(|x| *x == u).unwrap())
                })
                .collect();
            proptest::prop_assert_eq!(&held, &wanted);
            proptest::prop_assert_eq!(written.len(), wanted.len());
            let stored: std::collections::BTreeSet<(usize, usize)> = stored.into_iter().collect();
            proptest::prop_assert_eq!(counts.added as usize, wanted.difference(&stored).count());
            proptest::prop_assert_eq!(counts.removed as usize, stored.difference(&wanted).count());
            let closed = rows(&store, "SELECT count(*) FROM membership_versions WHERE source = 'idp.corp' AND ended_by_run = 99");
            proptest::prop_assert_eq!(closed, [stored.difference(&wanted).count().to_string()]);
            proptest::prop_assert_eq!(rows(&store, "SELECT count(*) FROM memberships WHERE source = 'app.x'"), ["30"]);
        }
    }

    #[test]
    fn an_id_twice_or_an_unknown_group_fails_the_write_and_keeps_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        pull(&mut store, &snapshot(&["alice"], &["eng"], &[("eng", "alice")]));
        for (bad, wanted) in [
            (
                snapshot(&["alice"], &["eng"], &[("ops", "alice")]),
                ["Group ops", "names a group not in the pull"],
            ),
            (snapshot(&["alice", "bob", "bob"], &["eng"], &[]), ["User bob", "appears twice"]),
            (snapshot(&["alice"], &["eng", "eng"], &[]), ["Group eng", "appears twice"]),
        ] {
            let run = store.start_run("pull", Some("idp.corp")).unwrap();
            let err = store.write_snapshot(&info(), run, &bad).unwrap_err().to_string();
            assert!(wanted.iter().all(|w| err.contains(w)), "{err}");
            assert_eq!(rows(&store, "SELECT group_id, user_id FROM memberships"), ["eng alice"]);
            assert_eq!(rows(&store, "SELECT count(*) FROM users"), ["1"]);
        }
    }
}
