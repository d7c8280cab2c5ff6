//! The SP side: every app is a SCIM 2.0 service provider, read with its Users and Groups.
use crate::config::{AppConfig, HttpSettings as ConnSettings};
use crate::http::{Auth, Http, HttpSettings, RetryPolicy};
use crate::model::{Membership, Snapshot};
use crate::scim::resource::{parse_group, parse_user};
use crate::scim::ScimClient;

use super::{Progress, SourceError};

/// Open a SCIM client for a connection's settings, reading its token now.
pub fn scim_client(source_name: &str, conn: &ConnSettings) -> Result<ScimClient, SourceError> {
    scim_client_with(source_name, conn, RetryPolicy::default())
}

/// [`scim_client`] with its own retry policy (apply waits out longer storms than a pull).
pub fn scim_client_with(source_name: &str, conn: &ConnSettings, retry: RetryPolicy) -> Result<ScimClient, SourceError> {
    let auth = match conn.token.resolve(source_name)? {
        Some(t) => Auth::Bearer(t),
        None => Auth::None,
    };
    let mut settings = HttpSettings::new(source_name, auth);
    settings.concurrency = conn.concurrency;
    settings.retry = retry;
    let http = Http::new(settings).map_err(|message| SourceError::Unsupported {
        source_name: source_name.to_string(),
        message,
    })?;
    Ok(ScimClient::new(&conn.base_url, http))
}

/// Pull Users and Groups (with members) from a SCIM endpoint.
pub async fn pull_scim(client: &ScimClient, page_size: u32, concurrency: usize, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
    let spc = client.service_provider_config().await?;
    let page_size = spc.page_size(page_size);
    let name = client.source_name().to_string();
    let resource_error = |url: String, error| SourceError::Resource {
        source_name: name.clone(),
        url,
        error: Box::new(error),
    };

    let users_raw = client
        .list_all("Users", page_size, concurrency, &|done, total| progress("users", done, total))
        .await?;
    let mut snap = Snapshot {
        service_provider_config: serde_json::to_string(&spc).ok(),
        ..Snapshot::default()
    };
    snap.users.reserve(users_raw.len());
    for raw in &users_raw {
        snap.users
            .push(parse_user(raw.get()).map_err(|e| resource_error(client.url("Users"), e))?);
    }
    drop(users_raw);

    let groups_raw = client
        .list_all("Groups", page_size, concurrency, &|done, total| progress("groups", done, total))
        .await?;
    for raw in &groups_raw {
        let (group, members) = parse_group(raw.get()).map_err(|e| resource_error(client.url("Groups"), e))?;
        snap.memberships.extend(members.into_iter().map(|user_id| Membership {
            group_id: group.id.clone(),
            user_id,
        }));
        snap.groups.push(group);
    }
    Ok(snap)
}

/// Pull one app.
pub async fn pull_app(app: &AppConfig, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
    let client = scim_client(&app.source_name(), &app.http)?;
    pull_scim(&client, app.http.page_size, app.http.concurrency, progress).await
}

/// One user of a SCIM endpoint by login: `userName eq`, else `emails.value eq`.
pub async fn fetch_user(client: &ScimClient, login: &str) -> Result<Option<crate::model::User>, SourceError> {
    for attr in ["userName", "emails.value"] {
        let found = client.search("Users", &crate::scim::filter::eq(attr, login), 10).await?;
        let mut users = Vec::new();
        for raw in &found {
            users.push(parse_user(raw.get()).map_err(|e| SourceError::Resource {
                source_name: client.source_name().to_string(),
                url: client.url("Users"),
                error: Box::new(e),
            })?);
        }
        if let Some(u) = super::find_user(users, login) {
            return Ok(Some(u));
        }
    }
    Ok(None)
}

/// One user of a SCIM endpoint by id (None when it is gone).
pub async fn fetch_user_by_id(client: &ScimClient, id: &str) -> Result<Option<crate::model::User>, SourceError> {
    match client.get("Users", id).await {
        Ok(v) => parse_user(&v.to_string()).map(Some).map_err(|e| SourceError::Resource {
            source_name: client.source_name().to_string(),
            url: client.url("Users"),
            error: Box::new(e),
        }),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
