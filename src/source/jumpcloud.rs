//! `kind = "jumpcloud"`: JumpCloud's directory API, v1 for users (`/api/systemusers`, with
//! `totalCount`) and v2 for groups, direct members and the groups bound to an application
//! (`/api/v2/applications/{idp_app_id}/associations?targets=user_group`).
//!
//! Paging is `limit=100&skip=…` (v1 with `sort=_id`, as JumpCloud's best practices ask). JumpCloud
//! has no cursor, so a directory written to during the scan can shift rows between pages: a
//! scan whose pages disagree (a changing `totalCount`, a repeated id, a count that does not add
//! up) is read again, up to three times, and then fails rather than return a partial list.
//! JumpCloud keeps no updated timestamp, so every pull is full; the store's content hash makes
//! an unchanged user cost nothing to write.
//!
//! Status: `state` "" or `ACTIVATED` is active unless `suspended` or `account_locked`; the raw
//! status keeps the state and those flags (`ACTIVATED,account_locked`).
use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::attributes::{custom_key, Attributes};
use crate::config::{AppConfig, HttpSettings as ConnSettings};
use crate::http::Auth;
use crate::model::{Binding, Group, Membership, PackedUser, Snapshot, User};

use super::web::{bounded, Api};
use super::{required, Created, IdpSource, Progress, SourceError};

/// JumpCloud's page cap (v2 documents "Limited to 100").
const LIMIT: usize = 100;
const SCAN_ATTEMPTS: usize = 3;

/// The JumpCloud connector (v1 systemusers, v2 groups, members and app associations).
pub struct JumpCloud {
    api: Api,
    v1: String,
    v2: String,
    concurrency: usize,
}

impl JumpCloud {
    /// A connector for `name` (`idp.NAME`) over `conn`, for the tenant `org_id` if given.
    pub fn new(name: String, conn: &ConnSettings, org_id: Option<&str>) -> Result<JumpCloud, SourceError> {
        let mut extra = Vec::new();
        if let Some(org) = org_id {
            extra.push(("x-org-id".to_string(), org.to_string()));
        }
        let mut missing = false;
        let api = Api::new(
            &name,
            conn,
            |token| match token {
                Some(token) => Auth::Header { name: "x-api-key", token },
                None => {
                    missing = true;
                    Auth::None
                }
            },
            extra,
        )?;
        if missing {
            return Err(SourceError::Unsupported {
                source_name: name,
                message: "a jumpcloud IdP needs its API key in `token_env` or `token_file`".into(),
            });
        }
        let base = conn.base_url.trim_end_matches('/').trim_end_matches("/api").to_string();
        Ok(JumpCloud {
            api,
            v1: format!("{base}/api"),
            v2: format!("{base}/api/v2"),
            concurrency: conn.concurrency,
        })
    }

    /// Every item of a `limit`/`skip` list. `v1` lists answer `{totalCount, results}`; v2 lists
    /// answer a bare array (with `x-total-count` on some routes).
    async fn list(&self, url: &str, v1: bool) -> Result<Vec<Box<RawValue>>, SourceError> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let page_url = |skip: usize| format!("{url}{sep}limit={LIMIT}&skip={skip}");
        let mut last_problem = String::new();
        for attempt in 1..=SCAN_ATTEMPTS {
            // A server's total is checked against max_objects before anything is sized from it,
            // and every page's ids are checked as it arrives: a server that ignores `skip` (the
            // same page again and again) stops the scan at once, not after a listing that never
            // ends.
            let mut guard = self.api.http.page_guard();
            let (first, total) = self.page(&page_url(0), v1).await?;
            if let Some(t) = total {
                guard.claimed_total(t as u64).map_err(|m| self.api.bad(url, m))?;
            }
            guard.raw_page(&first).map_err(|m| self.api.bad(url, m))?;
            let mut items = first;
            match total {
                // The total is known: the other pages are fetched concurrently.
                Some(total) if items.len() == LIMIT && total > LIMIT => {
                    let skips: Vec<usize> = (LIMIT..total).step_by(LIMIT).collect();
                    let pages = bounded(skips, self.concurrency, |skip| {
                        let u = page_url(skip);
                        async move { self.page(&u, v1).await }
                    })
                    .await?;
                    for (page, page_total) in pages {
                        if page_total.is_some_and(|t| t != total) {
                            last_problem = format!("the total changed from {total} to {} during the scan", page_total.unwrap_or(0));
                        }
                        if let Err(m) = guard.raw_page(&page) {
                            last_problem = format!("{m} (rows moved between pages?)");
                            break;
                        }
                        items.extend(page);
                    }
                    if items.len() != total && last_problem.is_empty() {
                        last_problem = format!("{} item(s) read where the total said {total}", items.len());
                    }
                }
                Some(total) if items.len() < LIMIT && items.len() != total => {
                    last_problem = format!("{} item(s) read where the total said {total}", items.len());
                }
                Some(_) => {}
                None => {
                    let mut last = items.len();
                    while last == LIMIT {
                        let next = page_url(items.len());
                        let (page, _) = self.page(&next, v1).await?;
                        // No total to check against: a page that repeats what was read (a
                        // server ignoring `skip`) is an error at once; retrying would loop again.
                        guard.raw_page(&page).map_err(|m| self.api.bad(&next, m))?;
                        last = page.len();
                        items.extend(page);
                    }
                }
            }
            if last_problem.is_empty() {
                return Ok(items);
            }
            tracing::warn!(source = %self.api.source_name, url, attempt, "{last_problem}; reading the list again");
            if attempt < SCAN_ATTEMPTS {
                last_problem.clear();
            }
        }
        Err(self
            .api
            .bad(url, format!("the list kept changing while it was read: {last_problem}")))
    }

    async fn page(&self, url: &str, v1: bool) -> Result<(Vec<Box<RawValue>>, Option<usize>), SourceError> {
        #[derive(Deserialize)]
        struct V1Page {
            #[serde(rename = "totalCount")]
            total_count: usize,
            results: Vec<Box<RawValue>>,
        }
        if v1 {
            let (p, _): (V1Page, _) = self.api.get_json(url, &[]).await?;
            Ok((p.results, Some(p.total_count)))
        } else {
            let (items, resp): (Vec<Box<RawValue>>, _) = self.api.get_json(url, &[]).await?;
            let total = resp
                .headers
                .get(HeaderName::from_static("x-total-count"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            Ok((items, total))
        }
    }

    fn parse_user(&self, url: &str, raw: &RawValue) -> Result<User, SourceError> {
        let u: JcUser = self
            .api
            .parse(url, raw.get().as_bytes())
            .map_err(|e| self.api.bad(url, format!("systemuser {}: {e}", id_hint(raw))))?;
        Ok(u.into_user(raw.get()))
    }
}

fn id_hint(raw: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(rename = "_id", alias = "id")]
        id: Option<String>,
    }
    match serde_json::from_str::<Ids>(raw.get()).ok().and_then(|i| i.id) {
        Some(id) => format!("'{id}'"),
        None => "(no id)".into(),
    }
}

#[derive(Deserialize)]
struct JcUser {
    #[serde(rename = "_id")]
    id: String,
    username: Option<String>,
    email: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    displayname: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    account_locked: bool,
    #[serde(rename = "employeeIdentifier")]
    employee_identifier: Option<String>,
    #[serde(rename = "jobTitle")]
    job_title: Option<String>,
    #[serde(rename = "phoneNumbers", default)]
    phone_numbers: Option<Vec<Phone>>,
    department: Option<String>,
    #[serde(rename = "costCenter")]
    cost_center: Option<String>,
    company: Option<String>,
    #[serde(rename = "employeeType")]
    employee_type: Option<String>,
    location: Option<String>,
    /// Another systemuser's id.
    manager: Option<String>,
    /// Custom attributes.
    #[serde(default)]
    attributes: Option<Vec<CustomAttribute>>,
}

#[derive(Deserialize)]
struct CustomAttribute {
    name: Option<String>,
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Phone {
    #[serde(rename = "type")]
    kind: Option<String>,
    number: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl JcUser {
    fn into_user(self, raw: &str) -> User {
        let state = self.state.unwrap_or_default();
        let active = (state.is_empty() || state == "ACTIVATED") && !self.suspended && !self.account_locked;
        let mut status = vec![if state.is_empty() { "ACTIVATED".to_string() } else { state }];
        if self.suspended {
            status.push("suspended".into());
        }
        if self.account_locked {
            status.push("account_locked".into());
        }
        let phones = self.phone_numbers.unwrap_or_default();
        let phone = phones
            .iter()
            .find(|p| p.kind.as_deref() == Some("work"))
            .or(phones.first())
            .and_then(|p| p.number.clone());
        let mut attributes = Attributes::default();
        for a in self.attributes.unwrap_or_default() {
            if let (Some(name), Some(value)) = (a.name, a.value) {
                attributes.put_scalar(custom_key(&name), &value);
            }
        }
        attributes.put("employee_number", self.employee_identifier.as_deref());
        attributes.put("department", self.department.as_deref());
        attributes.put("cost_center", self.cost_center.as_deref());
        attributes.put("company", self.company.as_deref());
        attributes.put("employee_type", self.employee_type.as_deref());
        attributes.put("location", self.location.as_deref());
        attributes.put("manager_id", self.manager.as_deref());
        User {
            id: self.id,
            attributes: attributes.into_json(),
            user_name: non_empty(self.username),
            external_id: non_empty(self.employee_identifier),
            given_name: non_empty(self.firstname),
            family_name: non_empty(self.lastname),
            formatted: None,
            display_name: non_empty(self.displayname),
            email: non_empty(self.email),
            active,
            title: non_empty(self.job_title),
            phone: non_empty(phone),
            timezone: None,
            role: None,
            status_raw: Some(status.join(",")),
            raw: raw.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct JcGroup {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Connection {
    to: Target,
}

#[derive(Deserialize)]
struct Target {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[async_trait]
impl IdpSource for JumpCloud {
    fn name(&self) -> &str {
        &self.api.source_name
    }

    async fn pull(&self, progress: Progress<'_>) -> Result<Snapshot, SourceError> {
        let users_url = format!("{}/systemusers?sort=_id", self.v1);
        let raws = self.list(&users_url, true).await?;
        progress("users", raws.len() as u64, raws.len() as u64);
        let mut snap = Snapshot::default();
        snap.users.reserve(raws.len());
        // Each response object is let go once parsed.
        for raw in raws {
            snap.users.push(self.parse_user(&users_url, &raw)?.into());
        }

        let groups_url = format!("{}/usergroups", self.v2);
        for raw in self.list(&groups_url, false).await? {
            let g: JcGroup = self
                .api
                .parse(&groups_url, raw.get().as_bytes())
                .map_err(|e| self.api.bad(&groups_url, format!("usergroup {}: {e}", id_hint(&raw))))?;
            snap.groups.push(Group {
                id: g.id,
                display_name: g.name,
                external_id: None,
                raw: raw.get().to_string(),
            });
        }
        let total = snap.groups.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let ids: Vec<String> = snap.groups.iter().map(|g| g.id.clone()).collect();
        let members = bounded(ids, self.concurrency, |gid| {
            let done = &done;
            async move {
                let seg = crate::scim::path::segment(&gid).map_err(|m| self.api.bad(&self.v2, format!("user group: {m}")))?;
                let url = format!("{}/usergroups/{seg}/members", self.v2);
                let mut out = Vec::new();
                for raw in self.list(&url, false).await? {
                    let c: Connection = self.api.parse(&url, raw.get().as_bytes())?;
                    if c.to.kind == "user" {
                        out.push(Membership {
                            group_id: gid.clone(),
                            user_id: c.to.id,
                        });
                    }
                }
                progress("members", done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
                Ok(out)
            }
        })
        .await?;
        snap.memberships = members.into_iter().flatten().collect();
        snap.requests = self.api.requests();
        Ok(snap)
    }

    /// `filter=username:$eq:…`, then `email:$eq:…` (JumpCloud filters are case-sensitive, so
    /// the login is tried as given and lower-cased); a full read only when none finds the user.
    async fn fetch_user(&self, login: &str) -> Result<Option<User>, SourceError> {
        let login = login.trim();
        let mut tried = Vec::new();
        for field in ["username", "email"] {
            for value in [login.to_string(), login.to_lowercase()] {
                if tried.contains(&(field, value.clone())) {
                    continue;
                }
                tried.push((field, value.clone()));
                let filter = format!("{field}:$eq:{value}");
                let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
                let url = format!("{}/systemusers?filter={encoded}&limit={LIMIT}", self.v1);
                let (raws, _) = self.page(&url, true).await?;
                let mut users = Vec::new();
                for raw in &raws {
                    users.push(self.parse_user(&url, raw)?);
                }
                if let Some(u) = super::find_user(users, login) {
                    return Ok(Some(u));
                }
            }
        }
        let snap = self.pull(&|_, _, _| {}).await?;
        Ok(super::find_user(&snap.users, login).map(PackedUser::unpack))
    }

    /// `POST /api/systemusers` (username and email are required): an ACTIVATED user, as
    /// JumpCloud's own import creates them.
    async fn create_user(&self, user: &User) -> Result<Created, SourceError> {
        let name = &self.api.source_name;
        let username = required(name, user, "userName", user.user_name.as_ref())?;
        let email = required(name, user, "email", user.email.as_ref())?;
        let mut body = serde_json::json!({"username": username, "email": email, "state": "ACTIVATED"});
        for (k, v) in [
            ("firstname", &user.given_name),
            ("lastname", &user.family_name),
            ("displayname", &user.display_name),
            ("employeeIdentifier", &user.external_id),
            ("jobTitle", &user.title),
        ] {
            if let Some(v) = v {
                body[k] = serde_json::json!(v);
            }
        }
        let url = format!("{}/systemusers", self.v1);
        let created = self.api.post_json(&url, &body).await?;
        let id = created
            .get("_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| self.api.bad(&url, "created user has no '_id'".into()))?;
        Ok(Created {
            id: id.to_string(),
            note: None,
        })
    }

    async fn bindings(&self, app: &AppConfig, snapshot: &Snapshot) -> Result<Vec<Binding>, SourceError> {
        let Some(app_id) = &app.idp_app_id else {
            return Ok(super::bindings_by_name(app, &snapshot.groups));
        };
        let seg = crate::scim::path::segment(app_id).map_err(|m| self.api.bad(&self.v2, format!("app '{}': idp_app_id: {m}", app.name)))?;
        let url = format!("{}/applications/{seg}/associations?targets=user_group", self.v2);
        let mut out = Vec::new();
        for raw in self.list(&url, false).await? {
            let c: Connection = self.api.parse(&url, raw.get().as_bytes())?;
            if c.to.kind != "user_group" {
                continue;
            }
            let name = snapshot
                .groups
                .iter()
                .find(|g| g.id == c.to.id)
                .map(|g| g.display_name.clone())
                .unwrap_or_else(|| c.to.id.clone());
            out.push(Binding {
                app: app.name.clone(),
                group_name: name,
                idp_group_id: Some(c.to.id),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> User {
        let u: JcUser = serde_json::from_str(json).unwrap();
        u.into_user(json)
    }

    #[test]
    fn status_follows_state_suspended_and_locked() {
        let a = user(r#"{"_id":"1","state":"ACTIVATED"}"#);
        assert!(a.active);
        assert_eq!(a.status_raw.as_deref(), Some("ACTIVATED"));
        assert!(user(r#"{"_id":"1","state":""}"#).active);
        assert!(user(r#"{"_id":"1"}"#).active);
        assert!(!user(r#"{"_id":"1","state":"STAGED"}"#).active);
        assert!(!user(r#"{"_id":"1","state":"SUSPENDED"}"#).active);
        let locked = user(r#"{"_id":"1","state":"ACTIVATED","account_locked":true}"#);
        assert!(!locked.active);
        assert_eq!(locked.status_raw.as_deref(), Some("ACTIVATED,account_locked"));
        assert!(!user(r#"{"_id":"1","state":"ACTIVATED","suspended":true}"#).active);
    }

    #[test]
    fn golden_fixtures_map() {
        #[derive(Deserialize)]
        struct V1 {
            #[serde(rename = "totalCount")]
            total_count: usize,
            results: Vec<Box<RawValue>>,
        }
        let page: V1 = serde_json::from_str(include_str!("../../tests/fixtures/idp/jumpcloud_systemusers.json")).unwrap();
        assert_eq!(page.total_count, 2);
        let users: Vec<User> = page
            .results
            .iter()
            .map(|r| serde_json::from_str::<JcUser>(r.get()).unwrap().into_user(r.get()))
            .collect();
        assert_eq!(users[0].user_name.as_deref(), Some("alice"));
        assert_eq!(users[0].phone.as_deref(), Some("+1 555 0100"));
        assert!(users[0].active);
        assert!(!users[1].active);
        assert_eq!(users[1].status_raw.as_deref(), Some("ACTIVATED,account_locked"));
        assert_eq!(users[1].display_name, None, "empty strings are no value");
        assert_eq!(users[1].title, None);
        let groups: Vec<JcGroup> = serde_json::from_str(include_str!("../../tests/fixtures/idp/jumpcloud_usergroups.json")).unwrap();
        assert_eq!(groups[1].name, "Sales");
        let members: Vec<Connection> = serde_json::from_str(include_str!("../../tests/fixtures/idp/jumpcloud_members.json")).unwrap();
        assert_eq!(members.iter().filter(|c| c.to.kind == "user").count(), 1);
    }

    #[test]
    fn maps_the_design_attributes() {
        let u = user(
            r#"{"_id":"5f1b01","username":"alice","email":"alice@ex.com","firstname":"Alice","lastname":"Smith","displayname":"Alice Smith",
                "employeeIdentifier":"E123","jobTitle":"Engineer","phoneNumbers":[{"type":"mobile","number":"+1 1"},{"type":"work","number":"+1 2"}]}"#,
        );
        assert_eq!(u.user_name.as_deref(), Some("alice"));
        assert_eq!(u.external_id.as_deref(), Some("E123"));
        assert_eq!(u.phone.as_deref(), Some("+1 2"));
        assert_eq!(u.title.as_deref(), Some("Engineer"));
        assert_eq!(u.display_name.as_deref(), Some("Alice Smith"));
    }
}
