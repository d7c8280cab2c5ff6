//! `scimsync import`: app accounts that exist in the app but not in the IdP (JumpCloud's
//! "Importing Users": each account is **New** — no IdP counterpart — or **Imported** — linked
//! to an IdP user), and, on request, those new accounts created in the IdP.
//!
//! The list comes from a fresh plan of the app (correlation by link, then the app's `match`
//! keys), so it reflects the last pulls. Only active new accounts are created. As the seed
//! warns, an imported user is managed in the app only once it is a member of a group bound to
//! it: creating it in the IdP changes nothing in the app by itself.
use serde::Serialize;

use crate::config::Config;
use crate::model::User;
use crate::source::{self, Created};
use crate::store::Store;

/// Whether an app account already has an IdP user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    /// No IdP user matches the account.
    New,
    /// The account is linked to an IdP user.
    Imported,
}

/// One app account.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// New or imported.
    pub status: ImportStatus,
    /// Its userName.
    pub user_name: Option<String>,
    /// Its email.
    pub email: Option<String>,
    /// Its displayName.
    pub display_name: Option<String>,
    /// Active in the app.
    pub active: bool,
    /// The IdP user it is linked to.
    pub idp_user: Option<String>,
    /// How it was matched (`externalId`, `userName`, `email`).
    pub matched_by: Option<String>,
    /// The account as the app has it (for creation).
    #[serde(skip)]
    pub account: User,
}

/// An app's accounts as import candidates.
#[derive(Debug, Serialize)]
pub struct ImportList {
    /// The app.
    pub app: String,
    /// Its IdP's source name.
    pub idp: String,
    /// The plan run whose correlation this list reflects.
    pub plan_run: i64,
    /// The IdP groups the app is bound to.
    pub bound_groups: Vec<String>,
    /// Every account.
    pub accounts: Vec<Candidate>,
}

impl ImportList {
    /// The accounts `--create` would create: new and active.
    pub fn to_create(&self) -> impl Iterator<Item = &Candidate> {
        self.accounts.iter().filter(|c| c.status == ImportStatus::New && c.active)
    }
}

/// The outcome of creating one account in the IdP.
#[derive(Debug, Serialize)]
pub struct CreateOutcome {
    /// The account's userName.
    pub user_name: Option<String>,
    /// The IdP user created.
    pub idp_id: Option<String>,
    /// What the admin should know (Okta: STAGED).
    pub note: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Why import candidates could not be listed or created.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The app is not in the config.
    #[error(transparent)]
    UnknownApp(#[from] crate::config::UnknownApp),
    /// The plan could not plan the app (no complete pull of both sides, …).
    #[error("app '{app}': cannot list import candidates: {why}")]
    NotPlanned {
        /// The app.
        app: String,
        /// Why, as the plan says it.
        why: String,
    },
    /// Reading or writing the store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The IdP.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Planning.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

/// The app's config section, or the error naming it and the config.
fn app_config<'c>(config: &'c Config, app: &str) -> Result<&'c crate::config::AppConfig, ImportError> {
    Ok(config.require_app(app)?)
}

/// Plan `app` and list its accounts as New or Imported.
pub async fn list(config: &Config, store: &mut Store, app: &str) -> Result<ImportList, ImportError> {
    let app_config = app_config(config, app)?;
    let idp = config.idp_of(app_config);
    let outcome = crate::plan::plan(config, store, Some(app)).await?;
    if let Some(info) = outcome.apps.iter().find(|i| i.app == app) {
        if let Some(why) = &info.skipped {
            return Err(ImportError::NotPlanned {
                app: app.to_string(),
                why: why.clone(),
            });
        }
    }
    let accounts = store
        .app_accounts(app, &idp.source_name())?
        .into_iter()
        .map(|a| Candidate {
            status: if a.matched_by.is_some() {
                ImportStatus::Imported
            } else {
                ImportStatus::New
            },
            user_name: a.account.user_name.clone(),
            email: a.account.email.clone(),
            display_name: a.account.display_name.clone().or_else(|| {
                let parts: Vec<&str> = [&a.account.given_name, &a.account.family_name]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            }),
            active: a.account.active,
            idp_user: a.idp_login,
            matched_by: a.matched_by,
            account: a.account,
        })
        .collect();
    Ok(ImportList {
        app: app.to_string(),
        idp: idp.source_name(),
        plan_run: outcome.run_id,
        bound_groups: store.bound_group_names(app)?,
        accounts,
    })
}

/// Create the list's new active accounts in the IdP, one by one, each recorded as a
/// `user_import` event. A failure is reported and the others still go ahead.
pub async fn create(config: &Config, store: &Store, list: &ImportList) -> Result<Vec<CreateOutcome>, ImportError> {
    let idp = config.idp_of(app_config(config, &list.app)?);
    let source = source::idp_source(idp)?;
    let mut out = Vec::new();
    for c in list.to_create() {
        let subject = c.user_name.clone().or(c.email.clone()).unwrap_or_else(|| c.account.id.clone());
        let result = source.create_user(&c.account).await;
        match &result {
            Ok(Created { id, note }) => {
                let message = format!(
                    "created in {} as {id}{}",
                    list.idp,
                    note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
                );
                store.import_event(&list.app, &subject, true, &message)?;
            }
            Err(e) => store.import_event(&list.app, &subject, false, &e.to_string())?,
        }
        out.push(match result {
            Ok(created) => CreateOutcome {
                user_name: c.user_name.clone(),
                idp_id: Some(created.id),
                note: created.note,
                error: None,
            },
            Err(e) => CreateOutcome {
                user_name: c.user_name.clone(),
                idp_id: None,
                note: None,
                error: Some(e.to_string()),
            },
        });
    }
    Ok(out)
}
