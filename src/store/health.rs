//! App health across reconcile cycles: consecutive failures and quarantine.
use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// How an app's reconcile cycles have gone.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppHealth {
    /// The app.
    pub app: String,
    /// Cycles failed in a row.
    pub consecutive_failures: i64,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// The last cycle that succeeded.
    pub last_success_at: Option<String>,
    /// Until when it sits cycles out.
    pub quarantined_until: Option<String>,
}

impl Store {
    /// The health of `app` (a new app's is empty).
    pub fn app_health(&self, app: &str) -> Result<AppHealth> {
        Ok(self
            .conn
            .query_row(
                "SELECT consecutive_failures, last_error, last_success_at, quarantined_until FROM app_health WHERE app = ?1",
                [app],
                |r| {
                    Ok(AppHealth {
                        app: app.to_string(),
                        consecutive_failures: r.get(0)?,
                        last_error: r.get(1)?,
                        last_success_at: r.get(2)?,
                        quarantined_until: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or_else(|| AppHealth {
                app: app.to_string(),
                ..AppHealth::default()
            }))
    }

    /// Every app with a health record.
    pub fn app_healths(&self) -> Result<Vec<AppHealth>> {
        let mut stmt = self
            .conn
            .prepare("SELECT app FROM app_health ORDER BY app")
            .map_err(|e| self.err(e))?;
        let apps: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        apps.iter().map(|a| self.app_health(a)).collect()
    }

    /// Record a successful cycle: failures and quarantine cleared.
    pub fn app_succeeded(&self, app: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO app_health (app, consecutive_failures, last_success_at) VALUES (?1, 0, ?2)
                 ON CONFLICT(app) DO UPDATE SET consecutive_failures = 0, last_error = NULL, last_success_at = ?2, quarantined_until = NULL",
                params![app, crate::time::now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record a failed cycle; `quarantined_until` is set by the caller's rule. Returns the new
    /// number of consecutive failures.
    pub fn app_failed(&self, app: &str, error: &str, quarantine: impl Fn(i64) -> Option<String>) -> Result<i64> {
        let n = self.app_health(app)?.consecutive_failures + 1;
        self.conn
            .execute(
                "INSERT INTO app_health (app, consecutive_failures, last_error, quarantined_until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(app) DO UPDATE SET consecutive_failures = ?2, last_error = ?3, quarantined_until = ?4",
                params![app, n, crate::secret::redact(error), quarantine(n)],
            )
            .map_err(|e| self.err(e))?;
        Ok(n)
    }
}
