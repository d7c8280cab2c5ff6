//! Connectors: each produces a complete [`Snapshot`] of one source or fails. They never write
//! SQL; the store does. IdPs implement [`IdpSource`] (one module per kind); every app is read
//! by the one SCIM connector in [`app`].
pub mod app;
pub mod entra;
pub mod file;
pub mod jumpcloud;
pub mod okta;
pub mod scim;
mod web;

use std::collections::HashMap;

use async_trait::async_trait;

use crate::config::{AppConfig, ConfigError, IdpConfig, IdpSettings};
use crate::http::HttpError;
use crate::model::{Baseline, Binding, Group, Snapshot};
use crate::scim::resource::ResourceError;

/// Why a source could not be read (or written, on import); names the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The transport or an answer's status.
    #[error(transparent)]
    Http(Box<HttpError>),
    /// A resource that does not parse.
    #[error("{source_name}: {url}: {error}")]
    Resource {
        /// The source.
        source_name: String,
        /// Where it was read.
        url: String,
        /// What is wrong.
        error: Box<ResourceError>,
    },
    /// A `file` IdP's document.
    #[error("{source_name}: file '{path}': {message}")]
    File {
        /// The source.
        source_name: String,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The config (a token that cannot be read).
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// Something this source cannot do, or a client that cannot be built.
    #[error("{source_name}: {message}")]
    Unsupported {
        /// The source.
        source_name: String,
        /// What.
        message: String,
    },
    /// The source refused the incremental cursor (expired, unknown): a full pull is needed.
    #[error("{source_name}: {message}")]
    Resync {
        /// The source.
        source_name: String,
        /// Its words.
        message: String,
    },
    /// A response that is not what the API promises; names the URL, the object and the field.
    #[error("{source_name}: {url}: {message}")]
    Response {
        /// The source.
        source_name: String,
        /// The request.
        url: String,
        /// The object, the field and what is wrong.
        message: String,
    },
}

impl From<HttpError> for SourceError {
    fn from(e: HttpError) -> Self {
        SourceError::Http(Box::new(e))
    }
}

impl From<ConfigError> for SourceError {
    fn from(e: ConfigError) -> Self {
        SourceError::Config(Box::new(e))
    }
}

/// Reports progress of a long pull: (what, done, total).
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// A progress sink owned by one source's pull.
pub type ProgressSink = Box<dyn Fn(&str, u64, u64) + Sync + Send>;

/// An identity provider: the users, groups and memberships it holds, and which of its groups
/// each app is bound to.
#[async_trait]
pub trait IdpSource: Send + Sync {
    /// The `source` name of its rows, like `idp.corp`.
    fn name(&self) -> &str;

    /// A complete snapshot, or an error: never a partial one.
    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError>;

    /// Whether [`IdpSource::pull_changes`] reads only what changed since a cursor.
    fn incremental(&self) -> bool {
        false
    }

    /// The previous snapshot with the changes since its cursor applied: again complete, or an
    /// error ([`SourceError::Resync`] when the source refuses the cursor).
    async fn pull_changes(&self, base: Baseline, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        drop(base);
        self.pull(progress).await
    }

    /// One user by login (userName, else email; case-insensitive), for single-object
    /// reconcile. The default pulls everything and picks the user; sources with a search
    /// API override it.
    async fn fetch_user(&self, login: &str) -> Result<Option<crate::model::User>, SourceError> {
        let snap = self.pull(&|_, _, _| {}).await?;
        Ok(find_user(&snap.users, login).map(crate::model::PackedUser::unpack))
    }

    /// One group by display name (exact, else case-insensitive) with its direct member ids,
    /// for single-object reconcile. The default pulls everything; sources with a filter API
    /// override it.
    async fn fetch_group(&self, name: &str) -> Result<Option<(Group, Vec<String>)>, SourceError> {
        let snap = self.pull(&|_, _, _| {}).await?;
        Ok(find_group(snap.groups, name).map(|g| {
            let members = snap
                .memberships
                .iter()
                .filter(|m| m.group_id == g.id)
                .map(|m| m.user_id.to_string())
                .collect();
            (g, members)
        }))
    }

    /// Users by id (those that exist), for members a single-group reconcile has not stored yet.
    async fn fetch_users_by_id(&self, ids: &[String]) -> Result<Vec<crate::model::User>, SourceError> {
        let snap = self.pull(&|_, _, _| {}).await?;
        Ok(snap
            .users
            .iter()
            .filter(|u| ids.iter().any(|id| id == u.id()))
            .map(crate::model::PackedUser::unpack)
            .collect())
    }

    /// Create `user` (an app account being imported) in the IdP; returns the new IdP id and a
    /// note on the state it was created in. IdPs without a create API refuse.
    async fn create_user(&self, user: &crate::model::User) -> Result<Created, SourceError> {
        Err(SourceError::Unsupported {
            source_name: self.name().to_string(),
            message: format!(
                "this IdP kind cannot create users (account '{}')",
                user.user_name.as_deref().unwrap_or(&user.id)
            ),
        })
    }

    /// The groups bound to `app`. By default the app's `groups = [...]` names, matched to the
    /// IdP's group names exactly; IdPs with app assignment APIs override this for `idp_app_id`.
    async fn bindings(&self, app: &AppConfig, snapshot: &Snapshot) -> Result<Vec<Binding>, SourceError> {
        if app.idp_app_id.is_some() {
            return Err(SourceError::Unsupported {
                source_name: self.name().to_string(),
                message: format!(
                    "app '{}' sets idp_app_id, but this IdP kind has no app assignments; list the bound groups in `groups`",
                    app.name
                ),
            });
        }
        Ok(bindings_by_name(app, &snapshot.groups))
    }
}

/// A user an IdP created on import.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// Its id in the IdP.
    pub id: String,
    /// The state it was created in, when that needs the admin's attention (Okta: STAGED).
    pub note: Option<String>,
}

/// The field an IdP needs to create a user, or an error naming the account and the field.
pub fn required<'a>(
    source_name: &str,
    user: &'a crate::model::User,
    field: &str,
    value: Option<&'a String>,
) -> Result<&'a str, SourceError> {
    value
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SourceError::Unsupported {
            source_name: source_name.to_string(),
            message: format!(
                "account '{}' has no {field}, which this IdP requires to create a user",
                user.user_name.as_deref().or(user.email.as_deref()).unwrap_or(&user.id)
            ),
        })
}

/// Bind the app's configured group names to IdP groups of that exact display name.
pub fn bindings_by_name(app: &AppConfig, groups: &[Group]) -> Vec<Binding> {
    // By name once: an app may bind tens of thousands of an IdP's hundreds of thousands of groups.
    let mut by_name: HashMap<&str, Vec<&Group>> = HashMap::new();
    for g in groups {
        by_name.entry(g.display_name.as_str()).or_default().push(g);
    }
    app.groups
        .iter()
        .flat_map(|name| {
            let matches: Vec<&Group> = by_name.get(name.as_str()).cloned().unwrap_or_default();
            if matches.is_empty() {
                vec![Binding {
                    app: app.name.clone(),
                    group_name: name.clone(),
                    idp_group_id: None,
                }]
            } else {
                matches
                    .into_iter()
                    .map(|g| Binding {
                        app: app.name.clone(),
                        group_name: name.clone(),
                        idp_group_id: Some(g.id.clone()),
                    })
                    .collect()
            }
        })
        .collect()
}

/// What [`find_user`] reads of a user: a whole one (a search API's answer) or a snapshot's
/// packed one (the full-pull fallback, which so unpacks only the user found).
pub trait Login {
    /// Its userName (or login).
    fn user_name(&self) -> Option<&str>;
    /// Its email.
    fn email(&self) -> Option<&str>;
}

impl Login for crate::model::User {
    fn user_name(&self) -> Option<&str> {
        self.user_name.as_deref()
    }
    fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl Login for &crate::model::PackedUser {
    fn user_name(&self) -> Option<&str> {
        self.get(crate::model::UserField::UserName)
    }
    fn email(&self) -> Option<&str> {
        self.get(crate::model::UserField::Email)
    }
}

/// The user whose userName (else email) is `login`, case-insensitively.
pub fn find_user<U: Login>(users: impl IntoIterator<Item = U>, login: &str) -> Option<U> {
    let want = login.trim().to_lowercase();
    let is = |v: Option<&str>| v.is_some_and(|v| v.trim().to_lowercase() == want);
    let (mut by_name, mut by_email) = (None, None);
    for u in users {
        if is(u.user_name()) {
            by_name = Some(u);
        } else if by_email.is_none() && is(u.email()) {
            by_email = Some(u);
        }
    }
    by_name.or(by_email)
}

/// The group whose display name is `name`: exactly, else case-insensitively.
pub fn find_group(groups: Vec<Group>, name: &str) -> Option<Group> {
    let want = name.trim().to_lowercase();
    let mut folded = None;
    for g in groups {
        if g.display_name == name {
            return Some(g);
        }
        if folded.is_none() && g.display_name.trim().to_lowercase() == want {
            folded = Some(g);
        }
    }
    folded
}

/// The connector an IdP section names, with exactly its kind's settings.
pub fn idp_source(idp: &IdpConfig) -> Result<Box<dyn IdpSource>, SourceError> {
    let name = idp.source_name();
    match &idp.settings {
        IdpSettings::Scim { http } => Ok(Box::new(scim::ScimIdp::new(name, http)?)),
        IdpSettings::File { path } => Ok(Box::new(file::FileIdp::new(name, path.clone()))),
        IdpSettings::Jumpcloud { http, org_id } => Ok(Box::new(jumpcloud::JumpCloud::new(name, http, org_id.as_deref())?)),
        IdpSettings::Okta { http, auth } => Ok(Box::new(okta::Okta::new(name, http, *auth)?)),
        IdpSettings::Entra { http, client_credentials } => Ok(Box::new(entra::Entra::new(name, http, client_credentials.as_ref())?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_by_name_bind_every_group_of_a_name_and_keep_unmatched_names() {
        let config = crate::config::Config::parse(
            std::path::Path::new("scimsync.toml"),
            "[idp.corp]\nkind = \"file\"\npath = \"d.json\"\n[app.wiki]\nidp = \"corp\"\nbase_url = \"https://wiki.example.com/scim/v2\"\ngroups = [\"Eng\", \"Ghost\", \"Ops\"]\n",
        )
        .unwrap();
        let group = |id: &str, name: &str| Group {
            id: id.into(),
            display_name: name.into(),
            ..Default::default()
        };
        let groups = [group("g1", "Eng"), group("g2", "Ops"), group("g3", "Eng"), group("g4", "eng")];
        let got: Vec<(String, Option<String>)> = bindings_by_name(config.app("wiki").unwrap(), &groups)
            .into_iter()
            .map(|b| (b.group_name, b.idp_group_id))
            .collect();
        let want = [("Eng", Some("g1")), ("Eng", Some("g3")), ("Ghost", None), ("Ops", Some("g2"))];
        assert_eq!(got, want.map(|(n, g)| (n.to_string(), g.map(str::to_string))));
    }

    /// A login is a userName first (case and spaces aside), else an email; packed users are
    /// searched without unpacking and give the same answer as whole ones.
    #[test]
    fn find_user_prefers_the_user_name_and_reads_packed_users_too() {
        use crate::model::{PackedUser, User};
        let user = |id: &str, name: &str, email: &str| User {
            id: id.into(),
            user_name: Some(name.into()),
            email: Some(email.into()),
            raw: format!("{{\"id\":\"{id}\"}}"),
            ..Default::default()
        };
        let users = vec![
            user("1", "ann@x.com", "ann@x.com"),
            user("2", "bob", "Ann.Other@x.com"),
            user("3", "Ann.Other@X.com ", "third@x.com"),
        ];
        let packed: Vec<PackedUser> = users.iter().map(PackedUser::from).collect();
        for (login, want) in [
            ("ann.other@x.com", Some("3")),
            ("THIRD@x.com", Some("3")),
            ("bob", Some("2")),
            ("nobody", None),
        ] {
            let whole = find_user(users.clone(), login).map(|u| u.id);
            let from_packed = find_user(&packed, login).map(|u| u.id().to_string());
            assert_eq!(whole.as_deref(), want, "{login}");
            assert_eq!(from_packed.as_deref(), want, "{login}");
        }
    }
}
