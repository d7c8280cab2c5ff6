//! SP profiles: how one kind of app is written to over SCIM, as data. The built-in profiles are
//! TOML files embedded in the binary (each rule cites the seed sentence it comes from); an app
//! can name its own file with `profile = "path/to/x.toml"`.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::config::BUILTIN_PROFILES;
use crate::mapping::Mapping;
use crate::scim::spc::ServiceProviderConfig;

/// The built-in profiles' rules, in the order of [`BUILTIN_PROFILES`] (the one list of their
/// names, which the config checks `profile` against); the array's length is that list's.
const BUILTIN_RULES: [&str; BUILTIN_PROFILES.len()] = [
    include_str!("generic.toml"),
    include_str!("whimsical.toml"),
    include_str!("quip.toml"),
    include_str!("blogin.toml"),
    include_str!("workramp.toml"),
];

/// A built-in profile's rules (TOML), by name.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN_PROFILES.iter().position(|n| *n == name).map(|i| BUILTIN_RULES[i])
}

/// The user attributes of the mapping (docs/architecture.md), by their SCIM names.
pub const ATTRIBUTES: &[&str] = &[
    "userName",
    "externalId",
    "name.givenName",
    "name.familyName",
    "displayName",
    "email",
    "title",
    "phone",
    "timezone",
];

/// A profile that cannot be read or is not valid; names it and the key.
#[derive(Debug, thiserror::Error)]
#[error("profile {origin}: {message}")]
pub struct ProfileError {
    /// `built-in 'quip'` or the file's path.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

/// An SP profile: what an app does with SCIM, as the vendor documents it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its name (a built-in's, or the file's `name`).
    pub name: String,
    /// Narrow the rules by what the SP's /ServiceProviderConfig says it supports.
    #[serde(default)]
    pub read_service_provider_config: bool,
    /// Users.
    pub users: UserRules,
    /// Groups.
    pub groups: GroupRules,
    /// Roles.
    pub roles: RoleRules,
    /// Paging.
    pub paging: PagingRules,
    /// Default attribute mappings (SCIM attribute path → SQL expression over the IdP user); an
    /// app's own `mappings` replace them target by target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<String, String>,
    /// The SP answers ETags (`meta.version`) and honours `If-Match` (its ServiceProviderConfig
    /// says so): a read-modify-write PUT sends the version it read. Not a profile key.
    #[serde(skip)]
    pub etag: bool,
}

/// How the app takes users.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserRules {
    /// Compared with the IdP and corrected after creation.
    pub manage: Vec<String>,
    /// Sent when the account is created, never changed afterwards.
    #[serde(default)]
    pub create_only: Vec<String>,
    /// Sent lower-case (and compared lower-case).
    #[serde(default)]
    pub lowercase: Vec<String>,
    /// Where the app's userName comes from: the IdP's `userName` or its `email`.
    #[serde(default)]
    pub user_name_from: UserNameFrom,
    /// The `type` of the email sent.
    #[serde(default = "work")]
    pub email_type: String,
    /// `given_family`: name.formatted is always "givenName familyName".
    #[serde(default)]
    pub formatted: Formatted,
    /// What DELETE /Users/{id} does in this app: `delete` or `deactivate`.
    #[serde(default)]
    pub delete: DeleteMeans,
    /// `rename_disabled`: before creating a user whose email a disabled account holds, give the
    /// disabled account a unique harmless email.
    #[serde(default)]
    pub email_reuse: EmailReuse,
    /// A created account may not be listed until its user first signs in; keep its link.
    #[serde(default)]
    pub created_pending: bool,
    /// How an account is changed: `patch` (RFC 7644 §3.5.2), or `put`: the whole resource,
    /// read just before, with only the managed attributes changed (§3.5.1).
    #[serde(default)]
    pub write: UserWrite,
}

/// How the app takes groups.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupRules {
    /// `patch`, `put` or `both` (PATCH is used).
    pub write: GroupWrite,
    /// GET /Groups accepts `filter`; otherwise groups are listed and matched by name here.
    pub filter: bool,
    /// GET /Groups accepts `sortBy`.
    #[serde(default)]
    pub sort: bool,
    /// Groups carry an `externalId`.
    #[serde(default)]
    pub external_id: bool,
    /// Member changes per PATCH request.
    #[serde(default = "batch")]
    pub member_batch: usize,
}

/// How the app conveys roles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleRules {
    /// `attribute` (SCIM `roles`), `groups` (role groups, managed as groups) or `none`.
    pub model: RoleModel,
    /// Roles scimsync may set; empty = any.
    #[serde(default)]
    pub settable: Vec<String>,
}

/// How the app pages lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagingRules {
    /// Every list call carries startIndex (from 1) and count.
    #[serde(default)]
    pub start_index_required: bool,
}

/// A profile rule's values, as a serde enum: an unknown value is refused with the key's name
/// (`key 'groups.write': unknown variant `post`, expected one of `patch`, `put`, `both``).
macro_rules! rule {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal $(($default:ident))?,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $(#[$default])? $variant,)*
        }

        impl $name {
            /// The value as the profile file writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

rule! {
    /// `users.user_name_from`.
    UserNameFrom {
        /// The IdP's userName.
        UserName = "userName" (default),
        /// The IdP's email.
        Email = "email",
    }
}

rule! {
    /// `users.formatted`.
    Formatted {
        /// Not sent.
        None = "none" (default),
        /// Always "givenName familyName".
        GivenFamily = "given_family",
    }
}

rule! {
    /// `users.delete`: what DELETE /Users/{id} does in the app.
    DeleteMeans {
        /// Removes the account.
        Delete = "delete" (default),
        /// Deactivates it.
        Deactivate = "deactivate",
    }
}

rule! {
    /// `users.email_reuse`.
    EmailReuse {
        /// Nothing special.
        None = "none" (default),
        /// A disabled account holding a new user's email gives it up first (Quip).
        RenameDisabled = "rename_disabled",
    }
}

rule! {
    /// `users.write`.
    UserWrite {
        /// PATCH (RFC 7644 §3.5.2).
        Patch = "patch" (default),
        /// Read-modify-write PUT (§3.5.1).
        Put = "put",
    }
}

rule! {
    /// `groups.write`.
    GroupWrite {
        /// PATCH.
        Patch = "patch" (default),
        /// PUT with the full member list.
        Put = "put",
        /// Both accepted; PATCH is used.
        Both = "both",
    }
}

rule! {
    /// `roles.model`.
    RoleModel {
        /// SCIM `roles`.
        Attribute = "attribute",
        /// Role groups, managed as groups.
        Groups = "groups",
        /// No roles.
        None = "none" (default),
    }
}

fn work() -> String {
    "work".into()
}
fn batch() -> usize {
    100
}

impl Profile {
    /// An app's profile: its `profile` setting, narrowed by the ServiceProviderConfig its last
    /// pull stored (`stored_spc`, the JSON text; unreadable text narrows nothing).
    pub fn of_app(profile: &str, stored_spc: Option<&str>) -> Result<Profile, ProfileError> {
        let spc = stored_spc.and_then(|s| ServiceProviderConfig::parse(s.as_bytes()).ok());
        Ok(Profile::load(profile)?.with_service_provider_config(spc.as_ref()))
    }

    /// A built-in profile by name, or a profile file (a name ending in `.toml`).
    pub fn load(name: &str) -> Result<Profile, ProfileError> {
        if let Some(text) = builtin(name) {
            return Profile::parse(&format!("built-in '{name}'"), text);
        }
        let path = Path::new(name);
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: format!("file '{}'", path.display()),
            message: format!("cannot read: {e}"),
        })?;
        Profile::parse(&format!("file '{}'", path.display()), &text)
    }

    /// A profile from its TOML text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Profile, ProfileError> {
        let err = |message: String| ProfileError {
            origin: origin.to_string(),
            message,
        };
        let de = toml::Deserializer::new(text);
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(format!("key '{path}': {}", e.inner().message()))
        })?;
        let check = |key: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(err(format!("key '{key}': '{value}' is not one of {}", allowed.join(", "))))
            }
        };
        for (key, list) in [
            ("users.manage", &p.users.manage),
            ("users.create_only", &p.users.create_only),
            ("users.lowercase", &p.users.lowercase),
        ] {
            for a in list {
                check(key, a, ATTRIBUTES)?;
            }
        }
        if p.groups.member_batch == 0 {
            return Err(err("key 'groups.member_batch': must be at least 1".into()));
        }
        Ok(p)
    }

    /// The profile as narrowed by the SP's ServiceProviderConfig (generic profile only).
    pub fn with_service_provider_config(mut self, spc: Option<&ServiceProviderConfig>) -> Profile {
        self.etag = spc.is_some_and(|s| s.etag.supported);
        if let (true, Some(spc)) = (self.read_service_provider_config, spc) {
            if !spc.patch.supported {
                self.groups.write = GroupWrite::Put;
                self.users.write = UserWrite::Put;
            }
            if !spc.filter.supported {
                self.groups.filter = false;
            }
            self.groups.sort = spc.sort.supported;
        }
        self
    }

    /// True when the app compares and corrects `attribute` after creation.
    pub fn manages(&self, attribute: &str) -> bool {
        self.users.manage.iter().any(|a| a == attribute)
    }

    /// The mappings an app of this profile uses: the profile's defaults, each replaced by the
    /// app's mapping of the same target, then the app's others. `custom` are the IdP's declared
    /// custom attributes.
    pub fn effective_mappings(&self, app: &[Mapping], custom: &[String]) -> Result<Vec<Mapping>, ProfileError> {
        let mut out: Vec<Mapping> = Vec::new();
        for (target, expression) in &self.mappings {
            let m = crate::mapping::parse(target, expression, custom).map_err(|e| ProfileError {
                origin: self.name.clone(),
                message: format!("key 'mappings': {e}"),
            })?;
            if !app.iter().any(|a| a.target == m.target) {
                out.push(m);
            }
        }
        out.extend(app.iter().cloned());
        Ok(out)
    }

    /// True when `attribute` is sent when creating an account.
    pub fn sends_on_create(&self, attribute: &str) -> bool {
        self.manages(attribute) || self.users.create_only.iter().any(|a| a == attribute) || attribute == "userName"
    }

    /// True when `attribute` is sent and compared lower-case.
    pub fn lowercases(&self, attribute: &str) -> bool {
        self.users.lowercase.iter().any(|a| a == attribute)
    }

    /// PATCH on /Groups (else PUT with the full member list).
    pub fn patches_groups(&self) -> bool {
        self.groups.write != GroupWrite::Put
    }

    /// PATCH on /Users (else a read-modify-write PUT of the whole account).
    pub fn patches_users(&self) -> bool {
        self.users.write == UserWrite::Patch
    }

    /// DELETE /Users/{id} removes the account (rather than deactivating it).
    pub fn delete_removes(&self) -> bool {
        self.users.delete == DeleteMeans::Delete
    }

    /// Whether scimsync may set `role` (and take it away).
    pub fn role_settable(&self, role: &str) -> bool {
        self.roles.model == RoleModel::Attribute
            && (self.roles.settable.is_empty() || self.roles.settable.iter().any(|r| r.eq_ignore_ascii_case(role)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in BUILTIN_PROFILES {
            let p = Profile::load(name).unwrap();
            assert_eq!(p.name, name);
        }
    }

    #[test]
    fn seed_rules_are_in_the_builtins() {
        let quip = Profile::load("quip").unwrap();
        assert!(!quip.patches_groups());
        assert!(!quip.groups.filter && !quip.groups.external_id);
        assert!(!quip.delete_removes());
        assert!(!quip.manages("userName"));
        assert_eq!(quip.users.email_reuse, EmailReuse::RenameDisabled);
        let workramp = Profile::load("workramp").unwrap();
        assert!(workramp.patches_groups() && workramp.paging.start_index_required);
        let whimsical = Profile::load("whimsical").unwrap();
        assert!(!whimsical.manages("name.givenName") && whimsical.sends_on_create("name.givenName"));
        assert!(whimsical.lowercases("email") && whimsical.users.created_pending);
        assert_eq!(whimsical.roles.model, RoleModel::Groups);
    }

    #[test]
    fn bad_profiles_name_the_key() {
        let text = include_str!("generic.toml").replace("write = \"patch\"\nfilter", "write = \"post\"\nfilter");
        let e = Profile::parse("file 'x.toml'", &text).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("groups.write") && e.contains("post"), "{e}");
        let text = include_str!("generic.toml").replace("[paging]", "[paging]\nbogus = 1");
        let e = Profile::parse("file 'x.toml'", &text).unwrap_err().to_string();
        assert!(e.contains("paging") && e.contains("bogus"), "{e}");
        let text = include_str!("generic.toml").replace("\"timezone\"]", "\"shoeSize\"]");
        let e = Profile::parse("file 'x.toml'", &text).unwrap_err().to_string();
        assert!(e.contains("users.manage") && e.contains("shoeSize"), "{e}");
    }

    #[test]
    fn service_provider_config_narrows_generic_only() {
        let spc = ServiceProviderConfig::parse(br#"{"patch":{"supported":false},"filter":{"supported":false}}"#).unwrap();
        let g = Profile::load("generic").unwrap().with_service_provider_config(Some(&spc));
        assert!(!g.patches_groups() && !g.groups.filter);
        assert!(!g.patches_users(), "an SP without PATCH gets its users by PUT too");
        assert!(Profile::load("generic").unwrap().patches_users());
        let w = Profile::load("workramp").unwrap().with_service_provider_config(Some(&spc));
        assert!(w.patches_groups());
    }

    #[test]
    fn profile_mappings_are_defaults_an_app_replaces_by_target() {
        let text = format!(
            "{}\n[mappings]\n\"title\" = \"upper(title)\"\n\"nickName\" = \"given_name\"\n",
            include_str!("generic.toml")
        );
        let p = Profile::parse("file 'p.toml'", &text).unwrap();
        let app = vec![crate::mapping::parse("title", "department", &[]).unwrap()];
        let got: Vec<(String, String)> = p
            .effective_mappings(&app, &[])
            .unwrap()
            .into_iter()
            .map(|m| (m.target, m.expression))
            .collect();
        assert_eq!(
            got,
            vec![("nickName".into(), "given_name".into()), ("title".into(), "department".into())]
        );
        let bad = text.replace("upper(title)", "upper(titel)");
        let e = Profile::parse("file 'p.toml'", &bad)
            .unwrap()
            .effective_mappings(&[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile generic") && e.contains("mappings") && e.contains("unknown attribute"),
            "{e}"
        );
    }
}
