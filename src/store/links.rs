//! Links (IdP object ↔ app object), and the reads the planner and `apply`
//! make of the snapshots (members, email holders, group names).
use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// (IdP id, app id, IdP key, app key, linked_at) of a link missing a key.
type UnresolvedLink = (String, String, Option<i64>, Option<i64>, String);

/// An account holding an email: (id, active, userName).
pub type EmailHolder = (String, bool, Option<String>);

impl Store {
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

    /// The User attribute paths the app's `/Schemas` declared at its last pull (lower-cased),
    /// when it was read and answered.
    pub fn user_schema(&self, source: &str) -> Result<Option<std::collections::BTreeSet<String>>> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT user_schema FROM sources WHERE name = ?1", [source], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
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
}
