//! `kind = "entra"`: Microsoft Entra ID through Microsoft Graph v1.0.
//!
//! - Token: with `client_id`, the client-credentials grant at `token_url` (by default
//!   login.microsoftonline.com for `tenant_id`), the client secret being the configured token;
//!   without it, the token is used as a ready bearer token.
//! - Users and groups are read with delta queries: the first round (`/users/delta?$select=…`,
//!   `/groups/delta?$select=displayName,members`) is a complete listing that ends with an
//!   `@odata.deltaLink`; the next pull follows the stored links and gets only changes, with
//!   `@removed` objects and members. Pages are followed through `@odata.nextLink` verbatim; an
//!   object seen twice (Graph replays) is merged. `410 Gone`, or a token Graph no longer knows,
//!   means a full round again.
//! - `$select` is required: Graph does not return `accountEnabled` or `employeeId` by default;
//!   a user without `accountEnabled` is an error rather than a guess.
//! - Bound groups: `/servicePrincipals/{idp_app_id}/appRoleAssignedTo`, principals of type
//!   Group. An assignment grants the group's direct members only (nested groups are not
//!   followed, as Entra documents), which is how scimsync scopes every IdP. Users assigned to
//!   the app directly, not through a group, are reported and left out of scope.
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::attributes::{custom_key, Attributes};
use crate::config::{AppConfig, ClientCredentials, HttpSettings as ConnSettings};
use crate::http::{detail_of, Auth, Http, HttpSettings};
use crate::model::{Baseline, Binding, Group, Membership, PackedUser, Snapshot, User};
use crate::secret::Secret;

use super::web::Api;
use super::{required, Created, IdpSource, Progress, SourceError};

/// The user properties read, in delta rounds and single-user reads alike. `manager` is a
/// navigation property: a delta round's `$select` adds it and Graph answers `manager@delta`; a
/// list read (`/users?$filter`) asks `$expand=manager` instead.
const USER_FIELDS: &str =
    "id,userPrincipalName,mail,givenName,surname,displayName,accountEnabled,employeeId,jobTitle,mobilePhone,businessPhones,\
department,companyName,officeLocation,employeeType,onPremisesExtensionAttributes";

/// The Microsoft Entra ID connector (Graph: users and groups by delta rounds, app role assignments).
pub struct Entra {
    name: String,
    base: String,
    concurrency: usize,
    max_objects: u64,
    credential: Credential,
    /// The Graph client, made at first use (client credentials need a token request first) and
    /// made again with a new token when Graph refuses the old one.
    api: tokio::sync::RwLock<Option<Arc<Api>>>,
    /// Requests made by clients replaced after a token refresh.
    earlier_requests: std::sync::atomic::AtomicU64,
}

enum Credential {
    /// A ready access token.
    Token(Secret),
    /// The client-credentials grant with this client's secret.
    Client {
        client_id: String,
        token_url: String,
        secret: Secret,
    },
}

/// The delta links of the last round.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    users: String,
    groups: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Box<RawValue>>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta: Option<String>,
}

#[derive(Deserialize)]
struct Removed {
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    id: String,
    user_principal_name: Option<String>,
    mail: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    display_name: Option<String>,
    /// Missing (not `$select`ed) and `null` (Graph's schema allows it) are told apart.
    #[serde(default, deserialize_with = "present")]
    account_enabled: Option<Option<bool>>,
    employee_id: Option<String>,
    job_title: Option<String>,
    mobile_phone: Option<String>,
    #[serde(default)]
    business_phones: Option<Vec<String>>,
    department: Option<String>,
    company_name: Option<String>,
    office_location: Option<String>,
    employee_type: Option<String>,
    /// `extensionAttribute1` … `extensionAttribute15`.
    on_premises_extension_attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// `$expand=manager`.
    manager: Option<IdField>,
    /// A delta round's manager (the last entry not `@removed`).
    #[serde(rename = "manager@delta", default)]
    manager_delta: Vec<MemberDelta>,
}

#[derive(Deserialize)]
struct GraphGroup {
    id: String,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "members@delta", default)]
    members: Vec<MemberDelta>,
}

#[derive(Deserialize)]
struct MemberDelta {
    id: String,
    #[serde(rename = "@odata.type")]
    kind: Option<String>,
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    /// Nullable in Graph's schema: such an assignment names no principal to bind.
    principal_id: Option<String>,
    principal_type: Option<String>,
    principal_display_name: Option<String>,
}

/// A field that is there (maybe `null`) as `Some(value)`; with `#[serde(default)]`, a missing
/// one as `None`.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

impl Entra {
    /// A connector for `name` (`idp.NAME`) over `conn`; with `client_credentials`, its token
    /// is the client secret of that grant.
    pub fn new(name: String, conn: &ConnSettings, client_credentials: Option<&ClientCredentials>) -> Result<Entra, SourceError> {
        let secret = conn.token.resolve(&name)?.ok_or_else(|| SourceError::Unsupported {
            source_name: name.clone(),
            message: "an entra IdP needs its client secret (with client_id) or an access token in `token_env` or `token_file`".into(),
        })?;
        let credential = match client_credentials {
            Some(c) => Credential::Client {
                client_id: c.client_id.clone(),
                token_url: c.token_url.clone(),
                secret,
            },
            None => Credential::Token(secret),
        };
        Ok(Entra {
            name,
            base: conn.base_url.trim_end_matches('/').to_string(),
            concurrency: conn.concurrency,
            max_objects: conn.max_objects,
            credential,
            api: tokio::sync::RwLock::new(None),
            earlier_requests: Default::default(),
        })
    }

    /// The Graph client, with an access token (fetched once per pull when client credentials
    /// are configured).
    async fn api(&self) -> Result<Arc<Api>, SourceError> {
        if let Some(api) = self.api.read().await.as_ref() {
            return Ok(api.clone());
        }
        let mut slot = self.api.write().await;
        if let Some(api) = slot.as_ref() {
            return Ok(api.clone());
        }
        let api = Arc::new(self.connect().await?);
        *slot = Some(api.clone());
        Ok(api)
    }

    async fn connect(&self) -> Result<Api, SourceError> {
        let token = match &self.credential {
            Credential::Token(t) => t.clone(),
            Credential::Client {
                client_id,
                token_url,
                secret,
            } => {
                let scope = format!("{}/.default", super::web::origin_of(&self.base).unwrap_or_default());
                client_credentials_token(&self.name, token_url, client_id, secret, &scope).await?
            }
        };
        let mut settings = HttpSettings::new(&self.name, Auth::Bearer(token));
        settings.concurrency = self.concurrency;
        settings.max_objects = self.max_objects;
        Api::with_settings(settings, &self.base)
    }

    /// GET a Graph URL. A 401 with client credentials (the access token expired during a long
    /// pull) fetches a new token and tries once more.
    async fn get(&self, url: &str) -> Result<crate::http::Response, SourceError> {
        let api = self.api().await?;
        match api.get(url, &[]).await {
            Err(SourceError::Http(e)) if e.status() == Some(401) && matches!(self.credential, Credential::Client { .. }) => {
                tracing::info!(source = %self.name, "Graph refused the access token (expired?); fetching a new one");
                let fresh = Arc::new(self.connect().await?);
                {
                    let mut slot = self.api.write().await;
                    if let Some(old) = slot.replace(fresh.clone()) {
                        self.earlier_requests
                            .fetch_add(old.requests(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
                fresh.get(url, &[]).await
            }
            other => other,
        }
    }

    /// Requests made so far, over every client this source has had.
    async fn requests(&self) -> u64 {
        let current = self.api.read().await.as_ref().map_or(0, |a| a.requests());
        self.earlier_requests.load(std::sync::atomic::Ordering::Relaxed) + current
    }
}

/// The client-credentials grant: the access token for `scope`, fetched with the client secret.
pub async fn client_credentials_token(
    source_name: &str,
    token_url: &str,
    client_id: &str,
    secret: &Secret,
    scope: &str,
) -> Result<Secret, SourceError> {
    let http = Http::new(HttpSettings::new(source_name, Auth::None)).map_err(|message| SourceError::Unsupported {
        source_name: source_name.to_string(),
        message,
    })?;
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret.expose())
        .append_pair("scope", scope)
        .append_pair("grant_type", "client_credentials")
        .finish();
    let headers = [(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded".to_string())];
    let resp = http.send(Method::POST, token_url, &headers, Some(form.into_bytes().into())).await?;
    let fail = |message: String| SourceError::Response {
        source_name: source_name.to_string(),
        url: token_url.to_string(),
        message,
    };
    if !resp.is_success() {
        #[derive(Deserialize)]
        struct OAuthError {
            error: Option<String>,
            error_description: Option<String>,
        }
        let detail = match serde_json::from_slice::<OAuthError>(&resp.body) {
            Ok(OAuthError {
                error: Some(e),
                error_description,
            }) => format!("{e}: {}", error_description.unwrap_or_default()),
            _ => detail_of(&resp.body),
        };
        return Err(fail(format!("token request refused (HTTP {}): {detail}", resp.status)));
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
    }
    let t: TokenResponse = serde_json::from_slice(&resp.body).map_err(|e| fail(format!("token response: {e}")))?;
    Ok(Secret::new(t.access_token))
}

fn resync(source_name: &str, message: String) -> SourceError {
    SourceError::Resync {
        source_name: source_name.to_string(),
        message,
    }
}

impl Entra {
    /// One delta round from `start`: every page until the delta link. `Err(Resync)` when Graph
    /// no longer knows the token.
    async fn round(&self, api: &Api, start: &str) -> Result<(Vec<Box<RawValue>>, String), SourceError> {
        let mut items = Vec::new();
        // A delta round may send one object on several pages (a group with the next slice of
        // its members), so repeats are allowed; a next link followed twice, or more than
        // max_objects, stops the round.
        let mut guard = api.http.page_guard().allowing_repeats();
        let mut url = start.to_string();
        loop {
            guard.follow(&url).map_err(|m| api.bad(&url, m))?;
            let resp = match self.get(&url).await {
                Err(SourceError::Http(e)) if e.status() == Some(410) => {
                    return Err(resync(&api.source_name, "Graph answered 410 Gone for the stored delta link".into()))
                }
                Err(SourceError::Http(e)) if matches!(&e.kind, crate::http::HttpErrorKind::Status { detail, .. } if detail.contains("syncStateNotFound") || detail.contains("resyncRequired")) => {
                    return Err(resync(
                        &api.source_name,
                        format!("Graph no longer knows the stored delta token ({e})"),
                    ))
                }
                other => other?,
            };
            let page: Page = api.parse(&url, &resp.body)?;
            guard.raw_page(&page.value).map_err(|m| api.bad(&url, m))?;
            items.extend(page.value);
            match (page.next, page.delta) {
                (Some(next), _) => {
                    guard.progressing().map_err(|m| api.bad(&url, m))?;
                    url = next
                }
                (None, Some(delta)) => return Ok((items, delta)),
                (None, None) => return Err(api.bad(&url, "a delta page with neither @odata.nextLink nor @odata.deltaLink".into())),
            }
        }
    }

    fn user(&self, api: &Api, url: &str, raw: &RawValue) -> Result<User, SourceError> {
        map_user(raw).map_err(|m| api.bad(url, m))
    }

    /// Apply one delta round to `snap` (empty for a first round).
    async fn apply_round(
        &self,
        api: &Api,
        snap: &mut Snapshot,
        cursor: Option<&Cursor>,
        progress: Progress<'_>,
    ) -> Result<Cursor, SourceError> {
        let users_start = cursor
            .map(|c| c.users.clone())
            .unwrap_or_else(|| format!("{}/users/delta?$select={USER_FIELDS},manager", self.base));
        let (raws, users_link) = self.round(api, &users_start).await?;
        progress("users", raws.len() as u64, raws.len() as u64);
        let mut index: HashMap<String, usize> = snap.users.iter().enumerate().map(|(i, u)| (u.id().to_string(), i)).collect();
        let mut gone = std::collections::HashSet::new();
        // Each response object is let go once parsed.
        for raw in raws {
            let r: Removed = api.parse(&users_start, raw.get().as_bytes())?;
            if r.removed.is_some() {
                let id: IdField = api.parse(&users_start, raw.get().as_bytes())?;
                gone.insert(id.id);
                continue;
            }
            let u = self.user(api, &users_start, &raw)?;
            gone.remove(&u.id);
            match index.get(&u.id) {
                Some(&i) => snap.users[i] = u.into(),
                None => {
                    index.insert(u.id.clone(), snap.users.len());
                    snap.users.push(u.into());
                }
            }
        }
        snap.users.retain(|u| !gone.contains(u.id()));

        let groups_start = cursor
            .map(|c| c.groups.clone())
            .unwrap_or_else(|| format!("{}/groups/delta?$select=displayName,members", self.base));
        let (raws, groups_link) = self.round(api, &groups_start).await?;
        progress("groups", raws.len() as u64, raws.len() as u64);
        let mut groups: HashMap<String, Group> = snap.groups.drain(..).map(|g| (g.id.clone(), g)).collect();
        let mut order: Vec<String> = Vec::new();
        let mut members: std::collections::BTreeSet<(String, String)> = std::mem::take(&mut snap.memberships)
            .iter()
            .map(|m| (m.group_id.to_string(), m.user_id.to_string()))
            .collect();
        for raw in &raws {
            let r: Removed = api.parse(&groups_start, raw.get().as_bytes())?;
            if r.removed.is_some() {
                let id: IdField = api.parse(&groups_start, raw.get().as_bytes())?;
                groups.remove(&id.id);
                members.retain(|(g, _)| *g != id.id);
                continue;
            }
            let g: GraphGroup = api
                .parse(&groups_start, raw.get().as_bytes())
                .map_err(|e| api.bad(&groups_start, format!("group: {e}")))?;
            let entry = groups.entry(g.id.clone()).or_insert_with(|| {
                order.push(g.id.clone());
                Group {
                    id: g.id.clone(),
                    display_name: String::new(),
                    external_id: None,
                    raw: String::new(),
                }
            });
            if let Some(name) = &g.display_name {
                entry.display_name = name.clone();
                entry.raw = serde_json::json!({"id": g.id, "displayName": name}).to_string();
            }
            for m in g.members {
                if m.kind.as_deref().is_some_and(|k| k != "#microsoft.graph.user") {
                    continue; // nested groups, devices, service principals: not users
                }
                if m.removed.is_some() {
                    members.remove(&(g.id.clone(), m.id));
                } else {
                    members.insert((g.id.clone(), m.id));
                }
            }
        }
        if let Some(g) = groups.values().find(|g| g.display_name.is_empty()) {
            return Err(api.bad(&groups_start, format!("group '{}' arrived without a displayName", g.id)));
        }
        let mut kept: Vec<Group> = groups.into_values().collect();
        kept.sort_by(|a, b| a.id.cmp(&b.id));
        snap.groups = kept;
        snap.memberships = members
            .into_iter()
            .filter(|(_, u)| index.contains_key(u) && !gone.contains(u))
            .map(|(group_id, user_id)| Membership { group_id, user_id })
            .collect();
        Ok(Cursor {
            users: users_link,
            groups: groups_link,
        })
    }
}

/// A Graph user as the model's user; `accountEnabled` must be there.
fn map_user(raw: &RawValue) -> Result<User, String> {
    let u: GraphUser = serde_json::from_str(raw.get()).map_err(|e| format!("unexpected user object: {e}"))?;
    let enabled = match u.account_enabled {
        Some(Some(enabled)) => enabled,
        // Whether the account may sign in is unknown: guessing either way could provision or
        // deactivate the wrong person, so the pull stops and says which user and why.
        Some(None) => {
            return Err(format!(
                "user '{}': field 'accountEnabled' is null, so whether the account is enabled is unknown; set it in Entra ID",
                u.id
            ))
        }
        None => {
            return Err(format!(
                "user '{}': field 'accountEnabled' missing (Graph returns it only when $select names it)",
                u.id
            ))
        }
    };
    let mut attributes = Attributes::default();
    for (key, value) in u.on_premises_extension_attributes.iter().flatten() {
        attributes.put_scalar(custom_key(key), value);
    }
    attributes.put("employee_number", u.employee_id.as_deref());
    attributes.put("department", u.department.as_deref());
    attributes.put("company", u.company_name.as_deref());
    attributes.put("location", u.office_location.as_deref());
    attributes.put("employee_type", u.employee_type.as_deref());
    let manager = u.manager_delta.iter().rev().find(|m| m.removed.is_none()).map(|m| m.id.as_str());
    attributes.put("manager_id", manager.or(u.manager.as_ref().map(|m| m.id.as_str())));
    Ok(User {
        attributes: attributes.into_json(),
        id: u.id,
        user_name: u.user_principal_name,
        external_id: u.employee_id,
        given_name: u.given_name,
        family_name: u.surname,
        formatted: None,
        display_name: u.display_name,
        email: u.mail,
        active: enabled,
        title: u.job_title,
        phone: u.mobile_phone.or_else(|| u.business_phones.and_then(|p| p.into_iter().next())),
        timezone: None,
        role: None,
        status_raw: Some(if enabled { "enabled" } else { "disabled" }.into()),
        raw: raw.get().to_string(),
    })
}

#[derive(Deserialize)]
struct IdField {
    id: String,
}

#[async_trait]
impl IdpSource for Entra {
    fn name(&self) -> &str {
        &self.name
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        let api = self.api().await?;
        let mut snap = Snapshot::default();
        let cursor = self.apply_round(&api, &mut snap, None, progress).await?;
        snap.cursor = Some(serde_json::to_string(&cursor).expect("cursor serialises"));
        snap.requests = self.requests().await;
        Ok(snap)
    }

    async fn pull_changes(&self, base: Baseline, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        let Ok(cursor) = serde_json::from_str::<Cursor>(&base.cursor) else {
            return Err(resync(&self.name, "the stored sync cursor is not a Graph delta one".into()));
        };
        let api = self.api().await?;
        let mut snap = base.snapshot;
        let next = self.apply_round(&api, &mut snap, Some(&cursor), progress).await?;
        snap.cursor = Some(serde_json::to_string(&next).expect("cursor serialises"));
        snap.requests = self.requests().await;
        snap.incremental = true;
        Ok(snap)
    }

    /// `/users?$filter=userPrincipalName eq '…'`, then `mail eq '…'`, with the same properties as
    /// the delta rounds; a full round only when neither finds the user.
    async fn fetch_user(&self, login: &str) -> Result<Option<User>, SourceError> {
        let api = self.api().await?;
        let quoted = login.trim().replace('\'', "''");
        for field in ["userPrincipalName", "mail"] {
            let filter = format!("{field} eq '{quoted}'");
            let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            let url = format!(
                "{}/users?$filter={encoded}&$select={USER_FIELDS}&$expand=manager($select=id)",
                self.base
            );
            let resp = self.get(&url).await?;
            let page: Page = api.parse(&url, &resp.body)?;
            let mut users = Vec::new();
            for raw in &page.value {
                users.push(self.user(&api, &url, raw)?);
            }
            if let Some(u) = super::find_user(users, login) {
                return Ok(Some(u));
            }
        }
        let snap = self.pull(&|_, _, _| {}).await?;
        Ok(super::find_user(&snap.users, login).map(PackedUser::unpack))
    }

    /// `POST /users`: an enabled user whose random password must be changed at first sign-in
    /// (nobody is told it: an admin resets it or the user signs in through SSO).
    async fn create_user(&self, user: &User) -> Result<Created, SourceError> {
        let upn = required(&self.name, user, "userName", user.user_name.as_ref())?;
        let nickname: String = upn
            .split('@')
            .next()
            .unwrap_or(upn)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let password: String = {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            (0..24)
                .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
                .collect::<String>()
                + "!aA1"
        };
        let mut body = serde_json::json!({
            "accountEnabled": true,
            "displayName": user.display_name.clone().unwrap_or_else(|| upn.to_string()),
            "mailNickname": nickname,
            "userPrincipalName": upn,
            "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": password},
        });
        for (k, v) in [
            ("givenName", &user.given_name),
            ("surname", &user.family_name),
            ("mail", &user.email),
            ("employeeId", &user.external_id),
            ("jobTitle", &user.title),
        ] {
            if let Some(v) = v {
                body[k] = serde_json::json!(v);
            }
        }
        let api = self.api().await?;
        let url = format!("{}/users", self.base);
        let created = api.post_json(&url, &body).await?;
        let id = created
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| api.bad(&url, "created user has no 'id'".into()))?;
        Ok(Created {
            id: id.to_string(),
            note: None,
        })
    }

    async fn bindings(&self, app: &AppConfig, snapshot: &Snapshot) -> Result<Vec<Binding>, SourceError> {
        let Some(sp) = &app.idp_app_id else {
            return Ok(super::bindings_by_name(app, &snapshot.groups));
        };
        let api = self.api().await?;
        let seg = crate::scim::path::segment(sp).map_err(|m| SourceError::Unsupported {
            source_name: self.name.clone(),
            message: format!("app '{}': idp_app_id: {m}", app.name),
        })?;
        let mut url = format!("{}/servicePrincipals/{seg}/appRoleAssignedTo", self.base);
        let mut out = Vec::new();
        let mut direct_users = Vec::new();
        let mut guard = api.http.page_guard();
        loop {
            guard.follow(&url).map_err(|m| api.bad(&url, m))?;
            let resp = self.get(&url).await?;
            let page: Page = api.parse(&url, &resp.body)?;
            guard.raw_page(&page.value).map_err(|m| api.bad(&url, m))?;
            if page.next.is_some() {
                guard.progressing().map_err(|m| api.bad(&url, m))?;
            }
            for raw in &page.value {
                let a: Assignment = api.parse(&url, raw.get().as_bytes())?;
                let (Some(principal_id), Some(principal_type)) = (a.principal_id, a.principal_type) else {
                    tracing::warn!(
                        source = %self.name,
                        "app '{}': an app role assignment names no principal (principalId or principalType is null); skipped",
                        app.name
                    );
                    continue;
                };
                match principal_type.as_str() {
                    "Group" => {
                        let name = snapshot
                            .groups
                            .iter()
                            .find(|g| g.id == principal_id)
                            .map(|g| g.display_name.clone())
                            .or(a.principal_display_name)
                            .unwrap_or_else(|| principal_id.clone());
                        out.push(Binding {
                            app: app.name.clone(),
                            group_name: name,
                            idp_group_id: Some(principal_id),
                        });
                    }
                    "User" => direct_users.push(a.principal_display_name.unwrap_or(principal_id)),
                    _ => {}
                }
            }
            match page.next {
                Some(n) => url = n,
                None => break,
            }
        }
        if !direct_users.is_empty() {
            tracing::warn!(
                "app '{}': {} user(s) are assigned to the enterprise app directly, not through a group, and are not in scope (e.g. {})",
                app.name,
                direct_users.len(),
                direct_users.first().cloned().unwrap_or_default()
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_fixtures_map() {
        let page: Page = serde_json::from_str(include_str!("../../tests/fixtures/idp/graph_users_delta.json")).unwrap();
        assert!(page.next.is_none() && page.delta.as_deref().is_some_and(|d| d.contains("$deltatoken=")));
        let admin = map_user(&page.value[0]).unwrap();
        assert_eq!(admin.user_name.as_deref(), Some("admin@contoso.com"));
        assert_eq!(admin.phone.as_deref(), Some("425-555-0101"));
        assert!(admin.active && admin.email.is_none());
        let removed: Removed = serde_json::from_str(page.value[1].get()).unwrap();
        assert!(removed.removed.is_some());
        let missing: Box<RawValue> = serde_json::from_str(r#"{"id":"u1","userPrincipalName":"a@b"}"#).unwrap();
        assert!(map_user(&missing).unwrap_err().contains("accountEnabled"));
        // Graph's schema lets an assignment's principal be null: it parses (and is skipped).
        let a: Assignment =
            serde_json::from_str(r#"{"id":"x","principalId":null,"principalType":null,"principalDisplayName":null}"#).unwrap();
        assert!(a.principal_id.is_none() && a.principal_type.is_none());
        let null = RawValue::from_string(r#"{"id":"u-null","accountEnabled":null}"#.to_string()).unwrap();
        let e = map_user(&null).unwrap_err();
        assert!(e.contains("'u-null'") && e.contains("is null") && !e.contains("$select"), "{e}");

        let page: Page = serde_json::from_str(include_str!("../../tests/fixtures/idp/graph_groups_delta.json")).unwrap();
        assert!(page.next.is_some() && page.delta.is_none());
        let g: GraphGroup = serde_json::from_str(page.value[0].get()).unwrap();
        assert_eq!(g.display_name.as_deref(), Some("Golf Assist"));
        assert_eq!(g.members.len(), 3);
        assert_eq!(g.members[1].kind.as_deref(), Some("#microsoft.graph.group"));
        assert!(g.members[2].removed.is_some());
    }
}
