//! The last complete snapshot of an IdP, read back with its sync cursor, for an incremental
//! pull: the connector applies the source's changes to it and the result is written like any
//! full snapshot (unchanged objects hash the same and write nothing).
use rusqlite::OptionalExtension;
use rustc_hash::FxHashMap as HashMap;

use super::{Result, Store, StoreError};
use crate::model::{Baseline, Group, Snapshot, User};

impl Store {
    /// The stored snapshot of `source` and its cursor, when its last pull left one.
    pub fn baseline(&self, source: &str) -> Result<Option<Baseline>> {
        let err = |source| StoreError::Sqlite {
            path: self.path().into(),
            source,
        };
        let conn = self.connection();
        let cursor: Option<String> = conn
            .query_row("SELECT sync_cursor FROM sources WHERE name = ?1", [source], |r| r.get(0))
            .optional()
            .map_err(err)?
            .flatten();
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        let mut snapshot = Snapshot::default();
        let mut stmt = conn
            .prepare(
                "SELECT id, user_name, external_id, given_name, family_name, formatted, display_name, email, active, title,
                        phone, timezone, role, status_raw, raw, uid, attributes FROM users WHERE source = ?1 ORDER BY uid",
            )
            .map_err(err)?;
        let mut uids: Vec<i64> = Vec::new();
        snapshot.users = stmt
            .query_map([source], |r| {
                uids.push(r.get(15)?);
                Ok(User {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    external_id: r.get(2)?,
                    given_name: r.get(3)?,
                    family_name: r.get(4)?,
                    formatted: r.get(5)?,
                    display_name: r.get(6)?,
                    email: r.get(7)?,
                    active: r.get(8)?,
                    title: r.get(9)?,
                    phone: r.get(10)?,
                    timezone: r.get(11)?,
                    role: r.get(12)?,
                    status_raw: r.get(13)?,
                    raw: r.get(14)?,
                    attributes: r.get(16)?,
                }
                .into())
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        let mut stmt = conn
            .prepare("SELECT id, display_name, external_id, raw, gid FROM groups WHERE source = ?1 ORDER BY gid")
            .map_err(err)?;
        let mut gids: Vec<i64> = Vec::new();
        snapshot.groups = stmt
            .query_map([source], |r| {
                gids.push(r.get(4)?);
                Ok(Group {
                    id: r.get(0)?,
                    display_name: r.get(1)?,
                    external_id: r.get(2)?,
                    raw: r.get(3)?,
                })
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        // The ids come from the users and groups just read: the `memberships` view would seek
        // into users once per membership.
        let user_at: HashMap<i64, usize> = uids.iter().enumerate().map(|(i, &uid)| (uid, i)).collect();
        let group_at: HashMap<i64, usize> = gids.iter().enumerate().map(|(i, &gid)| (gid, i)).collect();
        for (gid, uid) in super::snapshot::stored_memberships(conn, source).map_err(err)? {
            if let (Some(&g), Some(&u)) = (group_at.get(&gid), user_at.get(&uid)) {
                snapshot.memberships.push(&snapshot.groups[g].id, snapshot.users[u].id());
            }
        }
        Ok(Some(Baseline { snapshot, cursor }))
    }
}
