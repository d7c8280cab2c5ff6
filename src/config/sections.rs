//! One `[idp.NAME]` or `[app.NAME]` section from its raw form to its checked one; every error
//! names the file, the section and the key.
use std::path::{Path, PathBuf};

use super::checks::*;
use super::raw::{RawApp, RawIdp};
use super::*;
use crate::attributes::{IDP_COLUMNS, IDP_STANDARD};

/// What every section's checks need: the config file (for errors and relative paths).
pub(super) struct Sections<'a> {
    pub(super) path: &'a Path,
    pub(super) base_dir: &'a Path,
}

impl Sections<'_> {
    /// The error for `key` of `section`.
    fn invalid(&self, section: &str, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            section: section.to_string(),
            key: key.to_string(),
            message,
        }
    }

    /// A path from the file, relative to the file's directory.
    fn relative(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    /// One `[idp.NAME]` section: its kind with exactly that kind's settings.
    pub(super) fn idp(&self, name: String, r: RawIdp) -> Result<IdpConfig, ConfigError> {
        let invalid = |section: &str, key: &str, message: String| self.invalid(section, key, message);
        let relative = |p: PathBuf| self.relative(p);
        let section = format!("idp.{name}");
        check_name(&name).map_err(|m| invalid(&section, "(name)", m))?;
        let token = token_source(r.token_env, r.token_file.map(relative)).map_err(|m| invalid(&section, "token_env", m))?;
        let (kind, base_url) = (r.kind, r.base_url.clone());
        let connection = || -> Result<HttpSettings, ConfigError> {
            let base_url = base_url.ok_or_else(|| invalid(&section, "base_url", format!("a `{}` IdP needs `base_url`", kind.as_str())))?;
            check_url(&base_url).map_err(|m| invalid(&section, "base_url", m))?;
            Ok(HttpSettings {
                base_url: base_url.trim_end_matches('/').to_string(),
                token,
                page_size: check_page_size(r.page_size).map_err(|m| invalid(&section, "page_size", m))?,
                concurrency: check_concurrency(r.concurrency).map_err(|m| invalid(&section, "concurrency", m))?,
                max_objects: check_max_objects(r.max_objects).map_err(|m| invalid(&section, "max_objects", m))?,
            })
        };
        let only = |key: &str, set: bool, kind: IdpKind| -> Result<(), ConfigError> {
            if set && r.kind != kind {
                return Err(invalid(&section, key, format!("applies only to kind = \"{}\"", kind.as_str())));
            }
            Ok(())
        };
        only("org_id", r.org_id.is_some(), IdpKind::Jumpcloud)?;
        only("auth", r.auth.is_some(), IdpKind::Okta)?;
        only("tenant_id", r.tenant_id.is_some(), IdpKind::Entra)?;
        only("client_id", r.client_id.is_some(), IdpKind::Entra)?;
        only("token_url", r.token_url.is_some(), IdpKind::Entra)?;
        let client_credentials = match r.client_id {
            None => None,
            Some(client_id) => {
                let token_url = match (r.token_url, r.tenant_id) {
                    (Some(url), _) => {
                        check_url(&url).map_err(|m| invalid(&section, "token_url", m))?;
                        url
                    }
                    (None, Some(tenant)) => format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
                    (None, None) => {
                        return Err(invalid(
                            &section,
                            "tenant_id",
                            "client_id needs `tenant_id` (or `token_url`) to find the token endpoint".into(),
                        ))
                    }
                };
                Some(ClientCredentials { client_id, token_url })
            }
        };
        let settings = match kind {
            IdpKind::File => IdpSettings::File {
                path: relative(
                    r.path
                        .ok_or_else(|| invalid(&section, "path", "a `file` IdP needs `path`, the JSON snapshot to read".into()))?,
                ),
            },
            IdpKind::Jumpcloud => IdpSettings::Jumpcloud {
                http: connection()?,
                org_id: r.org_id,
            },
            IdpKind::Okta => IdpSettings::Okta {
                http: connection()?,
                auth: r.auth.unwrap_or_default(),
            },
            IdpKind::Entra => IdpSettings::Entra {
                http: connection()?,
                client_credentials,
            },
            IdpKind::Scim => IdpSettings::Scim { http: connection()? },
        };
        for a in &r.attributes {
            if a.trim().is_empty() || IDP_COLUMNS.contains(&a.as_str()) || IDP_STANDARD.contains(&a.as_str()) {
                return Err(invalid(
                    &section,
                    "attributes",
                    format!("'{a}' is empty or already a column or standard attribute (those need no declaration)"),
                ));
            }
        }
        Ok(IdpConfig {
            name,
            settings,
            custom_attributes: r.attributes,
        })
    }

    /// One `[app.NAME]` section, checked against the IdPs read before it.
    pub(super) fn app(&self, name: String, r: RawApp, idps: &[IdpConfig]) -> Result<AppConfig, ConfigError> {
        let invalid = |section: &str, key: &str, message: String| self.invalid(section, key, message);
        let relative = |p: PathBuf| self.relative(p);
        let section = format!("app.{name}");
        check_name(&name).map_err(|m| invalid(&section, "(name)", m))?;
        if !idps.iter().any(|i| i.name == r.idp) {
            let known: Vec<_> = idps.iter().map(|i| i.name.as_str()).collect();
            return Err(invalid(
                &section,
                "idp",
                format!("no [idp.{}] section (known: {})", r.idp, list_or_none(&known)),
            ));
        }
        check_url(&r.base_url).map_err(|m| invalid(&section, "base_url", m))?;
        if !BUILTIN_PROFILES.contains(&r.profile.as_str()) && !r.profile.ends_with(".toml") {
            return Err(invalid(
                &section,
                "profile",
                format!(
                    "'{}' is neither a built-in profile ({}) nor a path to a .toml file",
                    r.profile,
                    BUILTIN_PROFILES.join(", ")
                ),
            ));
        }
        let max_deactivations = match r.max_deactivations {
            None => None,
            Some(toml::Value::Integer(n)) if n >= 0 => Some(DeactivationLimit::Count(n as u64)),
            Some(toml::Value::String(s)) => Some(DeactivationLimit::parse(&s).map_err(|m| invalid(&section, "max_deactivations", m))?),
            Some(other) => {
                return Err(invalid(
                    &section,
                    "max_deactivations",
                    format!("expected a count or a percentage string like \"10%\", found {other}"),
                ))
            }
        };
        let match_keys = r
            .match_keys
            .unwrap_or_else(|| vec![MatchKey::ExternalId, MatchKey::UserName, MatchKey::Email]);
        if match_keys.is_empty() {
            return Err(invalid(
                &section,
                "match",
                "needs at least one of externalId, userName, email".into(),
            ));
        }
        if r.idp_app_id.is_none() && r.groups.is_empty() {
            return Err(invalid(
                &section,
                "groups",
                "no bound groups: set `groups = [\"…\"]` or `idp_app_id`, or no IdP user is in scope and every account would be orphaned"
                    .into(),
            ));
        }
        let profile = if r.profile.ends_with(".toml") {
            relative(PathBuf::from(&r.profile)).display().to_string()
        } else {
            r.profile
        };
        let mappings = {
            let custom = &idps.iter().find(|i| i.name == r.idp).expect("checked above").custom_attributes;
            let mut mappings = Vec::new();
            for (target, expression) in &r.mappings {
                let m = crate::mapping::parse(target, expression, custom)
                    .map_err(|e| invalid(&section, &format!("mappings.\"{target}\""), e.message))?;
                if mappings.iter().any(|o: &crate::mapping::Mapping| o.target == m.target) {
                    return Err(invalid(
                        &section,
                        &format!("mappings.\"{target}\""),
                        format!("{} is mapped twice", m.target),
                    ));
                }
                mappings.push(m);
            }
            mappings
        };
        Ok(AppConfig {
            http: HttpSettings {
                base_url: r.base_url.trim_end_matches('/').to_string(),
                token: token_source(r.token_env, r.token_file.map(relative)).map_err(|m| invalid(&section, "token_env", m))?,
                page_size: check_page_size(r.page_size).map_err(|m| invalid(&section, "page_size", m))?,
                concurrency: check_concurrency(r.concurrency).map_err(|m| invalid(&section, "concurrency", m))?,
                max_objects: check_max_objects(r.max_objects).map_err(|m| invalid(&section, "max_objects", m))?,
            },
            name,
            idp: r.idp,
            profile,
            idp_app_id: r.idp_app_id,
            groups: r.groups,
            manage_groups: r.manage_groups,
            match_keys,
            on_unassign: r.on_unassign,
            max_deactivations,
            roles: r.roles,
            reactivate_by_email: r.reactivate_by_email,
            mappings,
        })
    }
}
