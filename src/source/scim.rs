//! `kind = "scim"`: an IdP or directory that exposes SCIM 2.0. Users, groups and direct
//! members come from /Users and /Groups; bound groups from the apps' `groups = [...]`.
//! Nested groups (members of `type` "Group") are not expanded: scope follows direct members.
use async_trait::async_trait;

use crate::config::IdpConfig;
use crate::model::Snapshot;
use crate::scim::ScimClient;

use super::app::{pull_scim, scim_client};
use super::{IdpSource, Progress, SourceError};

pub struct ScimIdp {
    name: String,
    client: ScimClient,
    page_size: u32,
    concurrency: usize,
}

impl ScimIdp {
    pub fn new(idp: &IdpConfig) -> Result<ScimIdp, SourceError> {
        let name = idp.source_name();
        let conn = idp.http.as_ref().expect("config validation gives every scim IdP http settings");
        Ok(ScimIdp {
            client: scim_client(&name, conn)?,
            page_size: conn.page_size,
            concurrency: conn.concurrency,
            name,
        })
    }
}

#[async_trait]
impl IdpSource for ScimIdp {
    fn name(&self) -> &str {
        &self.name
    }

    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        pull_scim(&self.client, self.page_size, self.concurrency, progress).await
    }

    async fn fetch_user(&self, login: &str) -> Result<Option<crate::model::User>, SourceError> {
        super::app::fetch_user(&self.client, login).await
    }

    async fn fetch_group(&self, name: &str) -> Result<Option<(crate::model::Group, Vec<String>)>, SourceError> {
        super::app::fetch_group(&self.client, name, self.page_size).await
    }

    async fn fetch_users_by_id(&self, ids: &[String]) -> Result<Vec<crate::model::User>, SourceError> {
        let mut users = Vec::new();
        for id in ids {
            users.extend(super::app::fetch_user_by_id(&self.client, id).await?);
        }
        Ok(users)
    }
}
