//! Attributes beyond the fixed user columns: what each side keeps, and the names a mapping may
//! use.
//!
//! A user's `attributes` (a column of `users` and `user_versions`) is one JSON object of text
//! values with sorted keys:
//! - on an **IdP** user, the vendor's standard profile fields under the neutral names of
//!   [`IDP_STANDARD`] (JumpCloud's `costCenter`, Okta's `costCenter` and Entra's
//!   `companyName` all become `cost_center` / `company`), then its custom attributes under their
//!   own names (a custom attribute named like a standard field is kept as `custom.NAME`);
//! - on an **app** account, every attribute the app returned that no column holds, by its SCIM
//!   path: `nickName`, `name.middleName`, `urn:…:enterprise:2.0:User:department`; a reference
//!   (`manager`) by its `value`, the app's id of the manager's account.
//!
//! A mapping's expression reads an IdP user's [`IDP_COLUMNS`] and attributes as columns.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The key of a reference to the account a plan creates for an IdP user: `{"$idp_user": id}`,
/// in an operation's body and in a mapped manager's desired value; apply resolves it.
pub const IDP_USER_REF: &str = "$idp_user";

/// The IdP user id of a reference written as text (`{"$idp_user":"id"}`).
pub fn reference(value: &str) -> Option<String> {
    let v: serde_json::Map<String, Value> = serde_json::from_str(value).ok()?;
    match (v.len(), v.get(IDP_USER_REF)) {
        (1, Some(Value::String(id))) => Some(id.clone()),
        _ => None,
    }
}

/// The SCIM enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The IdP user's columns a mapping expression may read (all text but `active`).
pub const IDP_COLUMNS: &[&str] = &[
    "id",
    "user_name",
    "external_id",
    "given_name",
    "family_name",
    "formatted",
    "display_name",
    "email",
    "active",
    "title",
    "phone",
    "timezone",
];

/// The standard profile fields every IdP connector maps, under neutral names (see the README's
/// table for each vendor's field). `manager_id` is the IdP's id of the user's manager.
pub const IDP_STANDARD: &[&str] = &[
    "employee_number",
    "department",
    "cost_center",
    "organization",
    "division",
    "company",
    "employee_type",
    "location",
    "manager_id",
];

/// The key a custom attribute is kept under: its own name unless a column or a standard field
/// has it.
pub fn custom_key(name: &str) -> String {
    if IDP_STANDARD.contains(&name) || IDP_COLUMNS.contains(&name) {
        format!("custom.{name}")
    } else {
        name.to_string()
    }
}

/// Collects attributes; [`Attributes::into_json`] gives the stored text.
#[derive(Debug, Default)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// Keep `value` under `key` when it is not blank.
    pub fn put(&mut self, key: impl Into<String>, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            self.0.insert(key.into(), v.to_string());
        }
    }

    /// Keep a JSON scalar (text, number or boolean) as text; anything else is skipped.
    pub fn put_scalar(&mut self, key: impl Into<String>, value: &Value) {
        match value {
            Value::String(s) => self.put(key, Some(s)),
            Value::Number(n) => self.put(key, Some(&n.to_string())),
            Value::Bool(b) => self.put(key, Some(if *b { "true" } else { "false" })),
            _ => {}
        }
    }

    /// The JSON object (sorted keys), or `None` when empty.
    pub fn into_json(self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(&self.0).expect("a map of strings serialises"))
    }
}

/// The attributes of a stored `attributes` text (empty when absent or not an object of text).
pub fn parse(text: Option<&str>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// The enterprise extension's attributes and the IdP names they carry.
const ENTERPRISE_AS_IDP: &[(&str, &str)] = &[
    ("employeeNumber", "employee_number"),
    ("costCenter", "cost_center"),
    ("organization", "organization"),
    ("division", "division"),
    ("department", "department"),
    ("manager", "manager_id"),
];

/// A SCIM IdP's user attributes (as [`of_scim_user`] keeps them) under the names every other
/// IdP connector uses: the enterprise extension's `department`, `costCenter`, `manager`, …
/// become `department`, `cost_center`, `manager_id`, …, so one mapping reads any IdP. Other
/// attributes keep their SCIM paths (a custom name that is a standard one gets `custom.`).
pub fn scim_idp_names(text: Option<&str>) -> Option<String> {
    let mut out = Attributes::default();
    for (key, value) in parse(text) {
        let renamed = key
            .strip_prefix(ENTERPRISE_USER)
            .and_then(|a| a.strip_prefix(':'))
            .and_then(|a| ENTERPRISE_AS_IDP.iter().find(|(scim, _)| scim.eq_ignore_ascii_case(a)))
            .map(|(_, idp)| idp.to_string());
        out.put(renamed.unwrap_or_else(|| custom_key(&key)), Some(&value));
    }
    out.into_json()
}

/// Call `f` with each (name, value) of a stored `attributes` text, without copying what needs
/// no unescaping (the engine reads millions of them). Text that is not an object of strings
/// yields nothing.
pub fn for_each(text: &str, mut f: impl FnMut(&str, &str)) {
    let mut de = serde_json::Deserializer::from_str(text);
    let pairs: Result<BorrowedPairs<'_>, _> = serde::Deserialize::deserialize(&mut de);
    if let Ok(BorrowedPairs(pairs)) = pairs {
        for (k, v) in &pairs {
            f(k, v);
        }
    }
}

/// A JSON object of strings as borrowed pairs, in order.
struct BorrowedPairs<'a>(Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>);

impl<'de> serde::Deserialize<'de> for BorrowedPairs<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = BorrowedPairs<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                #[derive(serde::Deserialize)]
                struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Text(k), Text(v))) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    out.push((k, v));
                }
                Ok(BorrowedPairs(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Core User attributes that columns hold (or that are not attributes of the account).
const SCIM_COLUMNS: &[&str] = &[
    "id",
    "meta",
    "schemas",
    "userName",
    "externalId",
    "displayName",
    "active",
    "title",
    "timezone",
    "emails",
    "phoneNumbers",
    "roles",
    "groups",
    "password",
];

/// A SCIM User's attributes beyond the columns, by path (see the module's words).
pub fn of_scim_user(obj: &Map<String, Value>) -> Option<String> {
    let mut out = Attributes::default();
    for (key, value) in obj {
        if SCIM_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(key)) {
            continue;
        }
        if key.len() > 4 && key[..4].eq_ignore_ascii_case("urn:") {
            if let Value::Object(ext) = value {
                flatten(&mut out, key, ':', ext);
            }
            continue;
        }
        match value {
            Value::Object(inner) if key.eq_ignore_ascii_case("name") => {
                for (sub, v) in inner {
                    if !["givenName", "familyName", "formatted"].iter().any(|c| c.eq_ignore_ascii_case(sub)) {
                        out.put_scalar(format!("name.{sub}"), v);
                    }
                }
            }
            Value::Object(inner) => flatten(&mut out, key, '.', inner),
            v => out.put_scalar(key.clone(), v),
        }
    }
    out.into_json()
}

/// `prefix{sep}attr` for each scalar; a complex attribute by its `value` when it has one
/// (a reference such as `manager`), else `prefix{sep}attr.sub` for each scalar sub-attribute.
fn flatten(out: &mut Attributes, prefix: &str, sep: char, obj: &Map<String, Value>) {
    for (attr, v) in obj {
        let path = format!("{prefix}{sep}{attr}");
        match v {
            Value::Object(inner) => match inner.get("value") {
                Some(value) => out.put_scalar(path, value),
                None => inner.iter().for_each(|(sub, v)| out.put_scalar(format!("{path}.{sub}"), v)),
            },
            v => out.put_scalar(path, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_app_account_keeps_every_attribute_no_column_holds_by_its_path() {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
            "id": "1", "userName": "ann", "title": "Eng", "nickName": "Annie", "active": true,
            "name": {"givenName": "Ann", "middleName": "Q"},
            "emails": [{"value": "a@x", "primary": true}],
            ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-9", "displayName": "Bo"}, "employeeNumber": 7},
            "meta": {"resourceType": "User"}
        });
        let got = of_scim_user(user.as_object().unwrap()).unwrap();
        let want = json!({
            "name.middleName": "Q", "nickName": "Annie",
            format!("{ENTERPRISE_USER}:department"): "R&D",
            format!("{ENTERPRISE_USER}:employeeNumber"): "7",
            format!("{ENTERPRISE_USER}:manager"): "m-9",
        });
        assert_eq!(serde_json::from_str::<Value>(&got).unwrap(), want);
        assert_eq!(of_scim_user(json!({"id": "1", "userName": "a"}).as_object().unwrap()), None);
    }

    #[test]
    fn blank_values_are_not_kept_and_custom_names_never_shadow_standard_ones() {
        let mut a = Attributes::default();
        a.put("department", Some(" "));
        a.put(custom_key("department"), Some("x"));
        a.put(custom_key("badge"), Some("gold"));
        assert_eq!(a.into_json().as_deref(), Some(r#"{"badge":"gold","custom.department":"x"}"#));
    }

    #[test]
    fn a_scim_idp_names_the_enterprise_extension_as_the_other_idps_do() {
        let stored =
            format!(r#"{{"{ENTERPRISE_USER}:department":"Sales","{ENTERPRISE_USER}:manager":"u9","nickName":"Al","department":"x"}}"#);
        assert_eq!(
            scim_idp_names(Some(&stored)).as_deref(),
            Some(r#"{"custom.department":"x","department":"Sales","manager_id":"u9","nickName":"Al"}"#)
        );
        assert_eq!(scim_idp_names(None), None);
    }

    #[test]
    fn for_each_reads_pairs_borrowed_or_unescaped() {
        let mut got = Vec::new();
        for_each(r#"{"a":"1","b\"q":"x\ny"}"#, |k, v| got.push((k.to_string(), v.to_string())));
        assert_eq!(got, vec![("a".into(), "1".into()), ("b\"q".into(), "x\ny".into())]);
        let mut none = 0;
        for_each("[1]", |_, _| none += 1);
        for_each(r#"{"a":1}"#, |_, _| none += 1);
        assert_eq!(none, 0);
    }
}
