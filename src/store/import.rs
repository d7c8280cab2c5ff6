//! What `scimsync import` reads and records: each app account with the IdP user it is linked
//! to (by the latest plan's correlation), and an event per user created in the IdP.
use rusqlite::params;

use super::{Result, Store};
use crate::model::User;

/// An app account and, when correlation linked it, its IdP user's login and how it matched.
#[derive(Debug, Clone)]
pub struct AppAccount {
    /// The account.
    pub account: User,
    /// The login of the IdP user it is linked to.
    pub idp_login: Option<String>,
    /// How it matched.
    pub matched_by: Option<String>,
}

impl Store {
    /// Every account of `app` (source `app.APP`) with its link to a user of `idp_source`.
    pub fn app_accounts(&self, app: &str, idp_source: &str) -> Result<Vec<AppAccount>> {
        let mut stmt = self
            .connection()
            .prepare(
                "SELECT s.id, s.user_name, s.external_id, s.given_name, s.family_name, s.display_name, s.email, s.active, s.title,
                        l.matched_by, i.user_name
                 FROM users s
                 LEFT JOIN links l ON l.app = ?1 AND l.sp_user_id = s.id
                 LEFT JOIN users i ON i.source = ?2 AND i.id = l.idp_user_id
                 WHERE s.source = 'app.' || ?1
                 ORDER BY lower(coalesce(s.user_name, s.email, s.id))",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![app, idp_source], |r| {
                Ok(AppAccount {
                    account: User {
                        id: r.get(0)?,
                        user_name: r.get(1)?,
                        external_id: r.get(2)?,
                        given_name: r.get(3)?,
                        family_name: r.get(4)?,
                        display_name: r.get(5)?,
                        email: r.get(6)?,
                        active: r.get(7)?,
                        title: r.get(8)?,
                        ..User::default()
                    },
                    matched_by: r.get(9)?,
                    idp_login: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The names of the IdP groups bound to `app`, as of the IdP's last pull.
    pub fn bound_group_names(&self, app: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .connection()
            .prepare("SELECT DISTINCT group_name FROM bindings WHERE app = ?1 ORDER BY group_name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([app], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Record a `user_import` event (outcome `success` or `failure`).
    pub fn import_event(&self, app: &str, subject: &str, ok: bool, message: &str) -> Result<()> {
        self.connection()
            .execute(
                "INSERT INTO events (at, name, app, subject, outcome, message) VALUES (?1, 'user_import', ?2, ?3, ?4, ?5)",
                params![
                    crate::time::now(),
                    app,
                    subject,
                    if ok { "success" } else { "failure" },
                    crate::secret::redact(message)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
