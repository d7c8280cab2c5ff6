//! RFC 7644 §4 `/Schemas`: which User attributes an SP declares, so that a mapping to one it
//! does not have is a warning at plan time instead of a write the SP refuses on every cycle.
use std::collections::BTreeSet;

use serde::Deserialize;

use super::schemas::{GROUP_SCHEMA, USER_SCHEMA};

#[derive(Deserialize)]
struct Attribute {
    name: String,
    #[serde(default, rename = "subAttributes")]
    sub_attributes: Vec<Attribute>,
}

#[derive(Deserialize)]
struct SchemaResource {
    id: String,
    #[serde(default)]
    attributes: Vec<Attribute>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SchemasAnswer {
    List {
        #[serde(rename = "Resources", default)]
        resources: Vec<SchemaResource>,
    },
    Bare(Vec<SchemaResource>),
}

/// The User attribute paths a `/Schemas` answer declares, lower-cased: the core User schema's
/// attributes and their sub-attributes (`title`, `name.givenname`), and every other schema's
/// (an extension's) as `urn:…:attribute` (`urn:…:enterprise:2.0:user:department`). None when
/// the answer declares no core User schema: then nothing can be concluded from it.
pub fn user_attributes(body: &[u8]) -> Result<Option<BTreeSet<String>>, String> {
    let answer: SchemasAnswer = serde_json::from_slice(body).map_err(|e| format!("not a /Schemas answer: {e}"))?;
    let resources = match answer {
        SchemasAnswer::List { resources } => resources,
        SchemasAnswer::Bare(resources) => resources,
    };
    if !resources.iter().any(|r| r.id.eq_ignore_ascii_case(USER_SCHEMA)) {
        return Ok(None);
    }
    let mut out = BTreeSet::new();
    for r in &resources {
        if r.id.eq_ignore_ascii_case(GROUP_SCHEMA) || r.id.to_ascii_lowercase().starts_with("urn:ietf:params:scim:api:") {
            continue;
        }
        let prefix = if r.id.eq_ignore_ascii_case(USER_SCHEMA) {
            String::new()
        } else {
            format!("{}:", r.id)
        };
        for a in &r.attributes {
            out.insert(format!("{prefix}{}", a.name).to_ascii_lowercase());
            for s in &a.sub_attributes {
                out.insert(format!("{prefix}{}.{}", a.name, s.name).to_ascii_lowercase());
            }
        }
    }
    Ok(Some(out))
}

/// True when `path` (a mapping's target) is among the declared `attributes`.
pub fn declares(attributes: &BTreeSet<String>, path: &str) -> bool {
    attributes.contains(&path.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_extension_attributes_are_listed() {
        let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":3,"Resources":[
            {"id":"urn:ietf:params:scim:schemas:core:2.0:User","attributes":[{"name":"userName"},{"name":"title"},
             {"name":"name","subAttributes":[{"name":"givenName"},{"name":"middleName"}]}]},
            {"id":"urn:ietf:params:scim:schemas:core:2.0:Group","attributes":[{"name":"displayName"}]},
            {"id":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","attributes":[{"name":"department"},
             {"name":"manager","subAttributes":[{"name":"value"}]}]}]}"#;
        let a = user_attributes(body).unwrap().unwrap();
        assert!(declares(&a, "title") && declares(&a, "name.middleName"));
        assert!(declares(
            &a,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        ));
        assert!(declares(&a, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"));
        assert!(!declares(&a, "nickName"));
        assert!(!declares(&a, "displayName"), "the Group schema's attributes are not the User's");
        assert!(!declares(
            &a,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"
        ));
        assert_eq!(user_attributes(br#"{"Resources":[]}"#).unwrap(), None);
        assert!(user_attributes(b"<html>").is_err());
    }
}
