//! The config file as TOML gives it, before any check: unknown keys are refused here.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{IdpKind, MatchKey, OktaAuth, OnUnassign};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) store: Option<PathBuf>,
    /// How long one request may wait between retries in all (a duration like "10m").
    pub(super) max_retry_wait: Option<String>,
    /// How long one run (a command, or one reconcile cycle) may wait between retries in all.
    pub(super) max_retry_wait_per_run: Option<String>,
    /// The memory the process should stay within ("1GiB").
    pub(super) memory_limit: Option<String>,
    /// This store's name in a lake that several stores export into.
    pub(super) store_id: Option<String>,
    #[serde(default)]
    pub(super) idp: BTreeMap<String, RawIdp>,
    #[serde(default)]
    pub(super) app: BTreeMap<String, RawApp>,
    #[serde(default)]
    pub(super) retention: RawRetention,
}

/// `[retention]`: how long `prune` keeps what (durations, or "forever").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) plans: Option<String>,
    pub(super) keep_plans: Option<u32>,
    pub(super) history: Option<String>,
    pub(super) events: Option<String>,
    pub(super) runs: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdp {
    pub(super) kind: IdpKind,
    pub(super) base_url: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    /// `file` kind: the JSON snapshot to read.
    pub(super) path: Option<PathBuf>,
    /// JumpCloud multi-tenant admins: the `x-org-id` header.
    pub(super) org_id: Option<String>,
    /// Okta: `ssws` (API token, the default) or `bearer` (OAuth access token).
    pub(super) auth: Option<OktaAuth>,
    /// Entra ID: the directory (tenant) id, for the token endpoint.
    pub(super) tenant_id: Option<String>,
    /// Entra ID: the app registration's client id; the token is then its client secret.
    pub(super) client_id: Option<String>,
    /// Entra ID: the token endpoint, if not login.microsoftonline.com's for `tenant_id`.
    pub(super) token_url: Option<String>,
    pub(super) page_size: Option<u32>,
    pub(super) concurrency: Option<usize>,
    /// Objects one listing may hold; a server that claims or sends more is refused.
    pub(super) max_objects: Option<u64>,
    /// The IdP's custom attributes that mappings may read.
    #[serde(default)]
    pub(super) attributes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) idp: String,
    #[serde(default = "default_profile")]
    pub(super) profile: String,
    pub(super) base_url: String,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) idp_app_id: Option<String>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default = "yes")]
    pub(super) manage_groups: bool,
    #[serde(rename = "match")]
    pub(super) match_keys: Option<Vec<MatchKey>>,
    #[serde(default)]
    pub(super) on_unassign: OnUnassign,
    pub(super) max_deactivations: Option<toml::Value>,
    #[serde(default)]
    pub(super) roles: BTreeMap<String, String>,
    /// Link (and reactivate) an inactive account that matches a new IdP user only by email.
    #[serde(default)]
    pub(super) reactivate_by_email: bool,
    /// SCIM attribute path → SQL expression over the IdP user.
    #[serde(default)]
    pub(super) mappings: BTreeMap<String, String>,
    pub(super) page_size: Option<u32>,
    pub(super) concurrency: Option<usize>,
    /// Objects one listing may hold; a server that claims or sends more is refused.
    pub(super) max_objects: Option<u64>,
}

pub(super) fn default_profile() -> String {
    "generic".into()
}
pub(super) fn yes() -> bool {
    true
}
