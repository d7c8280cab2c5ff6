//! `kind = "scim"`: an IdP or directory that exposes SCIM 2.0. Users, groups and direct
//! members come from /Users and /Groups; bound groups from the apps' `groups = [...]`.
//! Nested groups (members of `type` "Group") are not expanded: scope follows direct members.
use async_trait::async_trait;

use crate::config::HttpSettings as ConnSettings;
use crate::model::{Snapshot, User, UserField};
use crate::sp::ScimClient;

use super::app::{pull_scim, scim_client};
use super::{IdpSource, Progress, SourceError};

/// A SCIM 2.0 service used as the IdP.
pub struct ScimIdp {
    name: String,
    client: ScimClient,
    page_size: u32,
    concurrency: usize,
}

impl ScimIdp {
    /// A connector for `name` (`idp.NAME`) over `conn`.
    pub fn new(name: String, conn: &ConnSettings) -> Result<ScimIdp, SourceError> {
        Ok(ScimIdp {
            client: scim_client(&name, conn)?,
            page_size: conn.page_size,
            concurrency: conn.concurrency,
            name,
        })
    }
}

/// A user as an IdP: its enterprise attributes under the IdP names (`department`, `manager_id`).
fn idp_user(mut user: User) -> User {
    user.attributes = crate::attributes::scim_idp_names(user.attributes.as_deref());
    user
}

#[async_trait]
impl IdpSource for ScimIdp {
    fn name(&self) -> &str {
        &self.name
    }

    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        let mut snap = pull_scim(&self.client, self.page_size, self.concurrency, progress).await?;
        for packed in &mut snap.users {
            if let Some(attributes) = packed.get(UserField::Attributes) {
                *packed = packed.with_attributes(crate::attributes::scim_idp_names(Some(attributes)).as_deref());
            }
        }
        Ok(snap)
    }

    async fn fetch_user(&self, login: &str) -> Result<Option<crate::model::User>, SourceError> {
        Ok(super::app::fetch_user(&self.client, login).await?.map(idp_user))
    }

    async fn fetch_group(&self, name: &str) -> Result<Option<(crate::model::Group, Vec<String>)>, SourceError> {
        super::app::fetch_group(&self.client, name, self.page_size).await
    }

    /// `POST /Users` with the mapped core attributes, active.
    async fn create_user(&self, user: &crate::model::User) -> Result<super::Created, SourceError> {
        let user_name = super::required(&self.name, user, "userName", user.user_name.as_ref())?;
        let mut body = serde_json::json!({"schemas": [crate::scim::USER_SCHEMA], "userName": user_name, "active": true});
        if user.given_name.is_some() || user.family_name.is_some() {
            body["name"] = serde_json::json!({"givenName": user.given_name, "familyName": user.family_name});
        }
        if let Some(e) = &user.email {
            body["emails"] = serde_json::json!([{"value": e, "type": "work", "primary": true}]);
        }
        for (k, v) in [
            ("displayName", &user.display_name),
            ("externalId", &user.external_id),
            ("title", &user.title),
        ] {
            if let Some(v) = v {
                body[k] = serde_json::json!(v);
            }
        }
        let created = self.client.create("Users", &body).await?;
        let id = created.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        Ok(super::Created { id, note: None })
    }

    async fn fetch_users_by_id(&self, ids: &[String]) -> Result<Vec<crate::model::User>, SourceError> {
        let mut users = Vec::new();
        for id in ids {
            users.extend(super::app::fetch_user_by_id(&self.client, id).await?.map(idp_user));
        }
        Ok(users)
    }
}
