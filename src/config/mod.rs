//! `scimsync.toml`: the connections (one IdP or more, and the apps they provision) and the store.
//!
//! Keys are the README's ("Configuration"). Unknown keys are refused, so a typo is an
//! error naming the file and the key rather than a silently ignored setting. Tokens are never
//! written inline: `token_env` names an environment variable, `token_file` a file.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod checks;
pub use checks::parse_size;
mod raw;
mod sections;
mod token;

use raw::RawConfig;
use sections::Sections;
pub use token::{group_or_world_readable, TokenSource};

/// Why a config cannot be used; names the file, the section and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Not TOML, or a key no section has.
    #[error("config file '{path}': {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's words (with the line).
        message: String,
    },
    /// A key with a value that cannot be used.
    #[error("config file '{path}': [{section}] key '{key}': {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `idp.NAME`, `app.NAME` or `(top level)`.
        section: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A token that cannot be read (its variable or file; never its value).
    #[error("{source_name}: token: {message}")]
    Token {
        /// The source.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// The kinds of identity provider a `[idp.NAME]` section can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpKind {
    /// JumpCloud.
    Jumpcloud,
    /// Okta.
    Okta,
    /// Microsoft Entra ID.
    Entra,
    /// A SCIM 2.0 service.
    Scim,
    /// A JSON document.
    File,
}

impl IdpKind {
    /// The `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpKind::Jumpcloud => "jumpcloud",
            IdpKind::Okta => "okta",
            IdpKind::Entra => "entra",
            IdpKind::Scim => "scim",
            IdpKind::File => "file",
        }
    }

    /// Whether its connector can read only what changed since the last pull.
    pub fn incremental(self) -> bool {
        matches!(self, IdpKind::Okta | IdpKind::Entra)
    }
}

/// How Okta takes its token: an API token (`SSWS`) or an OAuth access token (`Bearer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    #[default]
    Ssws,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// Entra ID's OAuth client-credentials grant: the token is the client secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCredentials {
    /// The app registration's client id.
    pub client_id: String,
    /// The token endpoint.
    pub token_url: String,
}

/// What happens to an app account whose IdP user left the app's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnUnassign {
    /// Set the account inactive.
    #[default]
    Deactivate,
    /// Delete the account.
    Delete,
    /// Leave it as it is.
    Ignore,
}

/// A correlation key, tried in the order the app lists them once no link exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MatchKey {
    /// `externalId`.
    #[serde(rename = "externalId")]
    ExternalId,
    /// `userName`.
    #[serde(rename = "userName")]
    UserName,
    /// The primary email.
    #[serde(rename = "email")]
    Email,
}

/// The accidental-deletion guard: an absolute count or a percentage of the app's accounts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeactivationLimit {
    /// At most this many accounts.
    Count(u64),
    /// At most this share of the active accounts, in percent.
    Percent(f64),
}

impl DeactivationLimit {
    /// `10`, `"10"` or `"10%"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("'{s}' is not a percentage like \"10%\""))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("'{s}' must be between 0% and 100%"));
            }
            Ok(DeactivationLimit::Percent(v))
        } else {
            s.parse()
                .map(DeactivationLimit::Count)
                .map_err(|_| format!("'{s}' is neither a count like \"25\" nor a percentage like \"10%\""))
        }
    }

    /// The largest number of deactivations allowed among `accounts` app accounts.
    pub fn allowed(&self, accounts: u64) -> u64 {
        match *self {
            DeactivationLimit::Count(n) => n,
            DeactivationLimit::Percent(p) => ((accounts as f64) * p / 100.0).floor() as u64,
        }
    }
}

/// Connection settings shared by every HTTP source.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The base URL, without a trailing slash.
    pub base_url: String,
    /// Where its token comes from.
    pub token: TokenSource,
    /// Objects per page asked for.
    pub page_size: u32,
    /// Requests at once.
    pub concurrency: usize,
    /// Objects one listing of this source may hold (users, groups, members of a group).
    pub max_objects: u64,
}

/// One `[idp.NAME]` section, validated.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// The section's name (`corp` in `[idp.corp]`).
    pub name: String,
    /// Its kind, with exactly the settings that kind takes.
    pub settings: IdpSettings,
    /// Its custom attributes that mappings may read (`attributes = [...]`).
    pub custom_attributes: Vec<String>,
}

/// An IdP's settings, one variant per kind: a connector receives exactly what its kind has.
#[derive(Debug, Clone)]
pub enum IdpSettings {
    /// JumpCloud (v1 systemusers, v2 groups).
    Jumpcloud {
        /// Connection.
        http: HttpSettings,
        /// Multi-tenant admins: the `x-org-id` header.
        org_id: Option<String>,
    },
    /// Okta (management API).
    Okta {
        /// Connection.
        http: HttpSettings,
        /// API token (`SSWS`) or OAuth access token.
        auth: OktaAuth,
    },
    /// Microsoft Entra ID (Graph).
    Entra {
        /// Connection.
        http: HttpSettings,
        /// With a client id: the token is fetched with the client credentials grant.
        client_credentials: Option<ClientCredentials>,
    },
    /// Any SCIM 2.0 service used as the IdP.
    Scim {
        /// Connection.
        http: HttpSettings,
    },
    /// A JSON snapshot file.
    File {
        /// The file (relative paths are resolved against the config file).
        path: PathBuf,
    },
}

impl IdpConfig {
    /// The `source` value of this IdP's rows in the store.
    pub fn source_name(&self) -> String {
        format!("idp.{}", self.name)
    }

    /// Its kind.
    pub fn kind(&self) -> IdpKind {
        match self.settings {
            IdpSettings::Jumpcloud { .. } => IdpKind::Jumpcloud,
            IdpSettings::Okta { .. } => IdpKind::Okta,
            IdpSettings::Entra { .. } => IdpKind::Entra,
            IdpSettings::Scim { .. } => IdpKind::Scim,
            IdpSettings::File { .. } => IdpKind::File,
        }
    }

    /// Its connection, for the kinds read over HTTP.
    pub fn http(&self) -> Option<&HttpSettings> {
        match &self.settings {
            IdpSettings::Jumpcloud { http, .. }
            | IdpSettings::Okta { http, .. }
            | IdpSettings::Entra { http, .. }
            | IdpSettings::Scim { http } => Some(http),
            IdpSettings::File { .. } => None,
        }
    }

    /// Where it is read from: the base URL, or the file.
    pub fn location(&self) -> String {
        match &self.settings {
            IdpSettings::File { path } => path.display().to_string(),
            _ => self.http().map(|h| h.base_url.clone()).unwrap_or_default(),
        }
    }
}

/// One `[app.NAME]` section, validated.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The section's name.
    pub name: String,
    /// The `[idp.NAME]` it is provisioned from.
    pub idp: String,
    /// Its profile: a built-in's name, or a profile file's path.
    pub profile: String,
    /// Its SCIM connection.
    pub http: HttpSettings,
    /// The IdP's app whose assignments scope it (instead of `groups`).
    pub idp_app_id: Option<String>,
    /// The IdP groups bound to it, by name.
    pub groups: Vec<String>,
    /// Whether its groups are created and kept in line.
    pub manage_groups: bool,
    /// The correlation keys, in order.
    pub match_keys: Vec<MatchKey>,
    /// What happens to an account whose user left the scope.
    pub on_unassign: OnUnassign,
    /// The deactivation guard's limit.
    pub max_deactivations: Option<DeactivationLimit>,
    /// IdP group name → the role its members get.
    pub roles: BTreeMap<String, String>,
    /// An inactive account matching a new IdP user only by email is linked and reactivated
    /// (a rehire whose other keys changed) instead of being a conflict. Off by default: it is
    /// usually a departed person's account whose address was given to someone new.
    pub reactivate_by_email: bool,
    /// `[app.NAME.mappings]`: SCIM attributes set from expressions over the IdP user, checked.
    pub mappings: Vec<crate::mapping::Mapping>,
}

impl AppConfig {
    /// The `source` value of its rows in the store.
    pub fn source_name(&self) -> String {
        format!("app.{}", self.name)
    }
}

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// The store (relative to the file).
    pub store: PathBuf,
    /// The retry budget of one request (`max_retry_wait`, default 10m).
    pub max_retry_wait: Duration,
    /// The retry budget of one run (`max_retry_wait_per_run`, default 1h).
    pub max_retry_wait_per_run: Duration,
    /// The IdPs.
    pub idps: Vec<IdpConfig>,
    /// The apps.
    pub apps: Vec<AppConfig>,
    /// What `prune` (and `reconcile` after each cycle) keeps.
    pub retention: Retention,
    /// `memory_limit`: the memory the process should stay within, in bytes (None: the default).
    pub memory_limit: Option<u64>,
    /// `store_id`: this store's name in a lake (`export --lake`), checked as a path name.
    pub store_id: Option<String>,
}

/// What a store id may be: it names the store's directories in a lake.
pub const STORE_ID_RULE: &str = "use letters, digits, '-', '_' or '.' (at most 64, not starting with '.' or '_')";

/// Whether `id` can be a store id (see [`STORE_ID_RULE`]).
pub fn valid_store_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '_'])
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `[retention]`: how long `scimsync prune` keeps each kind of row. `None`: forever. Whatever
/// is still needed is kept whatever its age (the current state, the latest plan, plans `apply`
/// could still run, operations in flight, links, the runs the current state comes from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Plans with their findings and operations (default 30 days).
    pub plans: Option<Duration>,
    /// The latest N plans are kept whatever their age (default 10; the latest is always kept).
    pub keep_plans: u32,
    /// Closed versions of users, groups, memberships and bindings: how far back `--at` and
    /// `diff` can go (default 365 days).
    pub history: Option<Duration>,
    /// Provisioning events (default 365 days).
    pub events: Option<Duration>,
    /// Run records no longer referenced (default 365 days).
    pub runs: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            plans: Some(Duration::from_secs(30 * DAY)),
            keep_plans: 10,
            history: Some(Duration::from_secs(365 * DAY)),
            events: Some(Duration::from_secs(365 * DAY)),
            runs: Some(Duration::from_secs(365 * DAY)),
        }
    }
}

const DEFAULT_PAGE_SIZE: u32 = 1000;
/// The retry budget of one request when the config sets none (also the transport's until a
/// config is loaded).
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(10 * 60);
/// The retry budget of one run when the config sets none.
pub const DEFAULT_MAX_RETRY_WAIT_PER_RUN: Duration = Duration::from_secs(60 * 60);

const DEFAULT_CONCURRENCY: usize = 4;
/// The built-in profiles' names: the one list (`profile` holds their rules in this order).
pub const BUILTIN_PROFILES: [&str; 5] = ["generic", "whimsical", "quip", "blogin", "workramp"];

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate `text` as the file at `path` (relative paths are the file's).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let invalid = |section: &str, key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            section: section.to_string(),
            key: key.to_string(),
            message,
        };
        let relative = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };

        let sections = Sections { path, base_dir: &base_dir };
        let mut idps = Vec::new();
        for (name, r) in raw.idp {
            idps.push(sections.idp(name, r)?);
        }
        let mut apps = Vec::new();
        for (name, r) in raw.app {
            apps.push(sections.app(name, r, &idps)?);
        }

        let store = raw.store.map(relative).unwrap_or_else(|| base_dir.join("scimsync.db"));
        let duration = |key: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(text) => crate::time::parse_duration(&text).map_err(|m| invalid("(top level)", key, m)),
        };
        let retention = {
            let d = Retention::default();
            let r = raw.retention;
            let keep = |key: &str, v: Option<String>, default: Option<Duration>| match v.as_deref().map(str::trim) {
                None => Ok(default),
                Some("forever") => Ok(None),
                Some(text) => crate::time::parse_duration(text)
                    .map(Some)
                    .map_err(|m| invalid("retention", key, format!("{m}, or \"forever\""))),
            };
            Retention {
                plans: keep("plans", r.plans, d.plans)?,
                keep_plans: r.keep_plans.unwrap_or(d.keep_plans).max(1),
                history: keep("history", r.history, d.history)?,
                events: keep("events", r.events, d.events)?,
                runs: keep("runs", r.runs, d.runs)?,
            }
        };
        let memory_limit = raw
            .memory_limit
            .map(|v| parse_size(&v).map_err(|m| invalid("(top level)", "memory_limit", m)))
            .transpose()?;
        let store_id = raw
            .store_id
            .map(|id| match valid_store_id(&id) {
                true => Ok(id),
                false => Err(invalid("(top level)", "store_id", format!("'{id}': {STORE_ID_RULE}"))),
            })
            .transpose()?;
        Ok(Config {
            path: path.to_path_buf(),
            store,
            retention,
            memory_limit,
            store_id,
            max_retry_wait: duration("max_retry_wait", raw.max_retry_wait, DEFAULT_MAX_RETRY_WAIT)?,
            max_retry_wait_per_run: duration("max_retry_wait_per_run", raw.max_retry_wait_per_run, DEFAULT_MAX_RETRY_WAIT_PER_RUN)?,
            idps,
            apps,
        })
    }

    /// The IdP called `name`.
    pub fn idp(&self, name: &str) -> Option<&IdpConfig> {
        self.idps.iter().find(|i| i.name == name)
    }

    /// The IdP an app of this config names (validation refused an app naming no IdP).
    pub fn idp_of(&self, app: &AppConfig) -> &IdpConfig {
        self.idp(&app.idp).expect("config validation checks that every app names an IdP")
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The app `--app NAME` names, or the one error every command gives for a name the config
    /// does not have (naming the config and the apps it has).
    pub fn require_app(&self, name: &str) -> Result<&AppConfig, UnknownApp> {
        self.app(name).ok_or_else(|| UnknownApp {
            app: name.to_string(),
            config: self.path.display().to_string(),
            known: if self.apps.is_empty() {
                "none".into()
            } else {
                self.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            },
        })
    }
}

/// `--app` names no app of the config.
#[derive(Debug, thiserror::Error)]
#[error("no app '{app}' in {config} (known: {known})")]
pub struct UnknownApp {
    /// The name asked for.
    pub app: String,
    /// The config file.
    pub config: String,
    /// The apps it has, comma-separated (or "none").
    pub known: String,
}

/// The commented example `scimsync init` writes.
pub const EXAMPLE: &str = include_str!("example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/scimsync/scimsync.toml"), text)
    }

    #[test]
    fn example_parses() {
        let c = parse(EXAMPLE).expect("the init example must parse");
        assert!(!c.idps.is_empty() && !c.apps.is_empty());
    }

    #[test]
    fn example_commented_sections_parse_when_uncommented() {
        // Every `# [section]` block of the example, with its `# key = value` lines uncommented.
        let mut in_block = false;
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| {
                let rest = l.strip_prefix("# ");
                in_block = match rest {
                    Some(r) if r.starts_with('[') => true,
                    Some(r) => in_block && r.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')),
                    None => false,
                };
                if in_block {
                    rest.unwrap_or(l)
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse(&uncommented).expect("the uncommented example must parse");
        let kinds: Vec<&str> = c.idps.iter().map(|i| i.kind().as_str()).collect();
        for k in ["scim", "file", "jumpcloud", "okta", "entra"] {
            assert!(kinds.contains(&k), "the example shows kind = {k}: {kinds:?}");
        }
        let entra = c.idps.iter().find(|i| i.kind() == IdpKind::Entra).unwrap();
        let IdpSettings::Entra { client_credentials, .. } = &entra.settings else {
            panic!("an entra section has entra settings")
        };
        assert!(client_credentials
            .as_ref()
            .unwrap()
            .token_url
            .starts_with("https://login.microsoftonline.com/"));
        let quip = c.apps.iter().find(|a| a.name == "quip").unwrap();
        assert_eq!(quip.mappings.len(), 4, "the example's mappings parse and are checked");
    }

    #[test]
    fn vendor_keys_belong_to_their_kind() {
        let e = parse("[idp.corp]\nkind = \"okta\"\nbase_url = \"https://a.okta.com\"\ntenant_id = \"t\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[idp.corp]") && e.contains("tenant_id") && e.contains("entra"), "{e}");
        let e = parse("[idp.corp]\nkind = \"entra\"\nbase_url = \"https://graph.microsoft.com/v1.0\"\nclient_id = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant_id"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("[idp.corp]\nkind = \"scim\"\nbase_url = \"http://x\"\ntoken_envv = \"X\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/scimsync/scimsync.toml"), "{e}");
        assert!(e.contains("token_envv"), "{e}");
    }

    #[test]
    fn app_with_unknown_idp_is_refused() {
        let e = parse("[idp.corp]\nkind=\"file\"\npath=\"d.json\"\n[app.q]\nidp=\"nope\"\nbase_url=\"http://x\"\ngroups=[\"g\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[app.q] key 'idp'") && e.contains("nope"), "{e}");
    }

    #[test]
    fn deactivation_limits() {
        assert_eq!(DeactivationLimit::parse("10%").unwrap().allowed(250), 25);
        assert_eq!(DeactivationLimit::parse("7").unwrap().allowed(1000), 7);
        assert!(DeactivationLimit::parse("ten").is_err());
        assert!(DeactivationLimit::parse("120%").is_err());
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let c = parse("store = \"s.db\"\n[idp.corp]\nkind=\"file\"\npath=\"d.json\"\n").unwrap();
        assert_eq!(c.store, PathBuf::from("/etc/scimsync/s.db"));
        assert_eq!(c.idps[0].location(), "/etc/scimsync/d.json");
    }

    #[test]
    fn credentials_in_a_base_url_are_refused_without_repeating_them() {
        let e = parse("[idp.corp]\nkind = \"scim\"\nbase_url = \"https://admin:hunter2-pass@idp.example.com/scim/v2\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[idp.corp] key 'base_url'") && e.contains("credentials"), "{e}");
        assert!(!e.contains("hunter2-pass") && !e.contains("admin:"), "{e}");
        let e = parse("[idp.corp]\nkind=\"file\"\npath=\"d.json\"\n[app.q]\nidp=\"corp\"\nbase_url=\"https://tok@q.example.com/scim\"\ngroups=[\"g\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[app.q] key 'base_url'") && !e.contains("tok@"), "{e}");
    }

    #[test]
    fn retry_budgets_and_max_objects_are_read() {
        let c = parse("max_retry_wait = \"90s\"\nmax_retry_wait_per_run = \"2h\"\n[idp.corp]\nkind=\"scim\"\nbase_url=\"http://x\"\nmax_objects = 500\n").unwrap();
        assert_eq!(c.max_retry_wait, Duration::from_secs(90));
        assert_eq!(c.max_retry_wait_per_run, Duration::from_secs(7200));
        assert_eq!(c.idps[0].http().unwrap().max_objects, 500);
        let e = parse("max_retry_wait = \"soon\"\n").unwrap_err().to_string();
        assert!(e.contains("max_retry_wait"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_readable_by_others_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "tok-abcdef").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(group_or_world_readable(&f), Some(0o644));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(group_or_world_readable(&f), None);
    }

    #[test]
    fn missing_token_env_is_reported_without_value() {
        let t = TokenSource::Env("SCIMSYNC_TEST_SURELY_UNSET_VAR".into());
        let e = t.resolve("app.quip").unwrap_err().to_string();
        assert_eq!(
            e,
            "app.quip: token: environment variable SCIMSYNC_TEST_SURELY_UNSET_VAR (token_env) is not set"
        );
    }
}
