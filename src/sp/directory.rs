//! "Find this object in the app": the reads of one service provider's Users and Groups that
//! `apply`'s lookups (after a 409 or an interrupted create), single-object reconcile and the SCIM
//! IdP connector share. Each caller then decides what it accepts of the answer (`apply` only an
//! account that carries the key asked for; reconcile the user a login names).
use serde_json::value::RawValue;
use serde_json::Value;

use super::ScimClient;
use crate::http::HttpError;
use crate::scim::filter;

/// How groups are found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSearch {
    /// `displayName eq` (RFC 7644 §3.4.2.2); an app that refuses the filter (400, 403, 501, as
    /// some vendors document) is scanned instead.
    Filter,
    /// A scan of /Groups (apps whose profile says they cannot filter groups).
    Scan,
}

/// One SP's directory, read through its client.
pub struct Directory<'a> {
    client: &'a ScimClient,
}

impl<'a> Directory<'a> {
    /// The directory behind `client`.
    pub fn new(client: &'a ScimClient) -> Directory<'a> {
        Directory { client }
    }

    /// The users whose `attr` equals `value` as the app's filter answers them (at most 10: one
    /// is expected; more says the app ignores the filter).
    pub async fn users_where(&self, attr: &str, value: &str) -> Result<Vec<Box<RawValue>>, HttpError> {
        self.client.search("Users", &filter::eq(attr, value), 10).await
    }

    /// The groups named `name`, as `how` finds them (a scan, `page_size` groups a page, answers
    /// every group; the caller picks by name).
    pub async fn groups_named(&self, name: &str, how: GroupSearch, page_size: u32) -> Result<Vec<Box<RawValue>>, HttpError> {
        if how == GroupSearch::Filter {
            match self.client.search("Groups", &filter::eq("displayName", name), 10).await {
                Ok(found) => return Ok(found),
                Err(e) if matches!(e.status(), Some(400 | 403 | 501)) => {}
                Err(e) => return Err(e),
            }
        }
        self.client.list_sequential("Groups", page_size, &|_, _| {}).await
    }

    /// `resource` `id` as the app has it now; `None` when it is gone (404).
    pub async fn get(&self, resource: &str, id: &str) -> Result<Option<Value>, HttpError> {
        match self.client.get(resource, id).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
