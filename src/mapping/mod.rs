//! Attribute mappings: a SCIM attribute of an app's accounts ← a SQL scalar expression over the
//! IdP user (its columns and attributes, see [`crate::attributes`]). The drift engine evaluates
//! the expressions with DataFusion; here they are checked when the config loads, by planning
//! them against the IdP user's columns, so an unknown attribute or function is refused naming
//! the target and the position.
use crate::attributes::ENTERPRISE_USER;

#[cfg(not(fuzzing))]
mod expression;
/// Fuzz builds compile the config parser without DataFusion (`fuzz/src/lib.rs`): there an
/// expression is only required to be non-empty; target classification is the real one.
#[cfg(fuzzing)]
mod expression {
    pub fn check(expression: &str, _custom: &[String]) -> Result<Vec<String>, String> {
        if expression.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        Ok(Vec::new())
    }
}

/// Where a mapped value goes in the app's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A core attribute a column holds (the app's value is read from `users.<column>`); the
    /// mapping replaces the profile's own source for it.
    Column(&'static str),
    /// Any other attribute, read from the app account's `attributes` by its path.
    Path,
    /// `manager` of the enterprise extension: the expression gives the IdP id of the manager,
    /// the app gets the id of the manager's account (through the links).
    Manager,
}

/// One checked mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The SCIM attribute path, in its canonical spelling.
    pub target: String,
    /// How the target is read and written.
    pub kind: TargetKind,
    /// The SQL expression, as written.
    pub expression: String,
    /// The IdP attributes (not columns) it reads, which the engine loads.
    pub reads: Vec<String>,
}

/// A mapping that cannot be used: names the target, and the position in the expression when
/// there is one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("mapping '{target}': {message}")]
pub struct MappingError {
    /// The target as written.
    pub target: String,
    /// What is wrong (with `at column N` of the expression where known).
    pub message: String,
}

/// Core attributes a column holds: (SCIM path, column).
const COLUMN_TARGETS: &[(&str, &str)] = &[
    ("displayName", "display_name"),
    ("title", "title"),
    ("externalId", "external_id"),
    ("timezone", "timezone"),
    ("name.givenName", "given_name"),
    ("name.familyName", "family_name"),
];

/// Other core User attributes a mapping may set (RFC 7643 §4.1.1).
const CORE_PATHS: &[&str] = &[
    "nickName",
    "profileUrl",
    "userType",
    "preferredLanguage",
    "locale",
    "name.middleName",
    "name.honorificPrefix",
    "name.honorificSuffix",
];

/// The enterprise extension's attributes (RFC 7643 §4.3).
const ENTERPRISE_ATTRIBUTES: &[&str] = &["employeeNumber", "costCenter", "organization", "division", "department", "manager"];

/// The target's canonical path and kind.
pub fn target(path: &str) -> Result<(String, TargetKind), String> {
    let p = path.trim();
    if let Some(&(canonical, column)) = COLUMN_TARGETS.iter().find(|(t, _)| t.eq_ignore_ascii_case(p)) {
        return Ok((canonical.to_string(), TargetKind::Column(column)));
    }
    if let Some(canonical) = CORE_PATHS.iter().find(|t| t.eq_ignore_ascii_case(p)) {
        return Ok((canonical.to_string(), TargetKind::Path));
    }
    if p.len() > ENTERPRISE_USER.len() && p[..ENTERPRISE_USER.len()].eq_ignore_ascii_case(ENTERPRISE_USER) {
        let attr = p[ENTERPRISE_USER.len()..].trim_start_matches(':');
        return match ENTERPRISE_ATTRIBUTES.iter().find(|a| a.eq_ignore_ascii_case(attr)) {
            Some(&"manager") => Ok((format!("{ENTERPRISE_USER}:manager"), TargetKind::Manager)),
            Some(a) => Ok((format!("{ENTERPRISE_USER}:{a}"), TargetKind::Path)),
            None => Err(format!(
                "the enterprise extension has no attribute '{attr}' (it has {})",
                ENTERPRISE_ATTRIBUTES.join(", ")
            )),
        };
    }
    if p.get(..4).is_some_and(|u| u.eq_ignore_ascii_case("urn:")) {
        return match p.rsplit_once(':') {
            Some((schema, attr)) if schema.len() > 4 && !attr.is_empty() && !attr.contains(' ') => Ok((p.to_string(), TargetKind::Path)),
            _ => Err("an extension attribute is written SCHEMA_URN:attribute".into()),
        };
    }
    let why = match p.to_ascii_lowercase().as_str() {
        "username" => "userName comes from the profile (user_name_from) and is the correlation key; it is not mapped",
        "email" | "emails" | "phone" | "phonenumbers" => {
            "emails and phone numbers are multi-valued; the profile sends the IdP's primary email and work phone"
        }
        "active" => "active follows the IdP user's status and the app's scope",
        "roles" => "roles come from role groups (`roles` in the app's section)",
        "name.formatted" => "name.formatted is built by the profile (Quip: \"given family\")",
        _ => "",
    };
    if why.is_empty() {
        Err(format!(
            "unknown target: not a User attribute scimsync can set ({}, {}, {ENTERPRISE_USER}:ATTRIBUTE or another extension's URN:ATTRIBUTE)",
            COLUMN_TARGETS.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", "),
            CORE_PATHS.join(", ")
        ))
    } else {
        Err(why.into())
    }
}

/// Check one mapping: its target, and its expression planned over the IdP user's columns.
/// `custom` are the IdP's declared custom attributes.
pub fn parse(target_path: &str, expression: &str, custom: &[String]) -> Result<Mapping, MappingError> {
    let err = |message: String| MappingError {
        target: target_path.to_string(),
        message,
    };
    let (canonical, kind) = target(target_path).map_err(err)?;
    let reads = expression::check(expression, custom).map_err(err)?;
    Ok(Mapping {
        target: canonical,
        kind,
        expression: expression.trim().to_string(),
        reads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_classified_and_spelled_canonically() {
        assert_eq!(target("Title").unwrap(), ("title".into(), TargetKind::Column("title")));
        assert_eq!(target("nickname").unwrap(), ("nickName".into(), TargetKind::Path));
        let dept = format!("{ENTERPRISE_USER}:department");
        assert_eq!(target(&dept.to_lowercase()).unwrap(), (dept, TargetKind::Path));
        assert_eq!(target(&format!("{ENTERPRISE_USER}:manager")).unwrap().1, TargetKind::Manager);
        assert_eq!(target("urn:acme:params:scim:User:badge").unwrap().1, TargetKind::Path);
        assert!(target(&format!("{ENTERPRISE_USER}:deparment"))
            .unwrap_err()
            .contains("no attribute 'deparment'"));
        assert!(target("userName").unwrap_err().contains("correlation key"));
        assert!(target("shoeSize").unwrap_err().contains("unknown target"));
    }

    #[test]
    fn an_expression_is_planned_and_its_attributes_listed() {
        let m = parse(
            "title",
            "CASE WHEN department IS NULL THEN title ELSE upper(department) || ' / ' || coalesce(title, '') END",
            &[],
        )
        .unwrap();
        assert_eq!(m.reads, vec!["department".to_string()]);
        let custom = parse("nickName", "lower(\"badgeName\")", &["badgeName".into()]).unwrap();
        assert_eq!(custom.reads, vec!["badgeName".to_string()]);
    }

    #[test]
    fn unknown_attributes_and_functions_are_refused_with_their_position() {
        let e = parse("title", "upper(departmnt)", &[]).unwrap_err();
        assert_eq!(e.target, "title");
        assert!(e.message.contains("unknown attribute at column 7"), "{}", e.message);
        let e = parse("title", "lowr(department)", &[]).unwrap_err();
        assert!(e.message.contains("unknown function at column 1"), "{}", e.message);
        let e = parse("title", "department department", &[]).unwrap_err();
        assert!(e.message.contains("one scalar expression"), "{}", e.message);
        let e = parse("title", "max(department)", &[]).unwrap_err();
        assert!(e.message.contains("aggregate"), "{}", e.message);
        assert!(parse("title", "(", &[]).is_err());
    }
}
