//! The SCIM payloads the planner writes, as types that serialise straight to JSON text. Their
//! fields are declared in sorted order, the order `serde_json` prints a map in, so a body reads
//! the same as one built as a `serde_json::Value`.
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::plan::IDP_USER_REF;
use crate::scim::{GROUP_SCHEMA, USER_SCHEMA};

/// A group member's value: the app id of a linked account, or a reference to the account a
/// create in the same plan makes for an IdP user (`{"$idp_user": id}`, resolved by apply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemberValue<'a> {
    /// A linked (or just created) account's app id.
    Account(&'a str),
    /// The IdP user whose account this plan creates.
    ToCreate(&'a str),
}

impl Serialize for MemberValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemberValue::Account(id) => s.serialize_str(id),
            MemberValue::ToCreate(idp_id) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(IDP_USER_REF, idp_id)?;
                map.end()
            }
        }
    }
}

/// One `members` entry.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, PartialEq, Serialize)]
pub struct Member<'a> {
    pub value: MemberValue<'a>,
}

/// `members` entries for these values.
pub fn members<'a>(values: impl IntoIterator<Item = MemberValue<'a>>) -> Vec<Member<'a>> {
    values.into_iter().map(|value| Member { value }).collect()
}

/// One `emails` entry.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, PartialEq, Serialize)]
pub struct Email<'a> {
    pub primary: bool,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub value: String,
}

/// One `phoneNumbers` entry.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, PartialEq, Serialize)]
pub struct Phone {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

/// One `roles` entry.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, PartialEq, Serialize)]
pub struct Role<'a> {
    pub primary: bool,
    pub value: &'a str,
}

/// The value a PATCH operation sets or adds.
#[derive(Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PatchValue<'a> {
    /// A string attribute.
    Text(String),
    /// `active`.
    Flag(bool),
    /// The primary email.
    Emails([Email<'a>; 1]),
    /// The work phone.
    Phones([Phone; 1]),
    /// The primary role.
    Roles([Role<'a>; 1]),
    /// Members to add.
    Members(Vec<Member<'a>>),
    /// A reference to another account (`manager`): `{"value": id}`, or `{"value":
    /// {"$idp_user": id}}` for an account this plan creates.
    Reference(serde_json::Value),
}

/// A PATCH operation as the planner writes it (`crate::scim::patch`'s model, with typed values).
pub type PatchOp<'a> = crate::scim::patch::Operation<PatchValue<'a>>;

/// A PATCH request's body.
pub type Patch<'a> = crate::scim::patch::Request<PatchValue<'a>>;

/// §3.5.2.1: add members (appended; re-adding an existing member changes nothing).
pub fn add_members(values: Vec<Member<'_>>) -> PatchOp<'_> {
    PatchOp::add("members", PatchValue::Members(values))
}

/// POST /Groups.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGroup<'a> {
    pub display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    pub members: Vec<Member<'a>>,
    pub schemas: [&'static str; 1],
}

impl<'a> NewGroup<'a> {
    /// A new group with these members (`externalId` when the profile sends it).
    pub fn new(display_name: &'a str, external_id: Option<&'a str>, members: Vec<Member<'a>>) -> NewGroup<'a> {
        NewGroup {
            display_name,
            external_id,
            members,
            schemas: [GROUP_SCHEMA],
        }
    }
}

/// PUT /Groups/{id}: the whole group.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WholeGroup<'a> {
    pub display_name: &'a str,
    pub id: &'a str,
    pub members: Vec<Member<'a>>,
    pub schemas: [&'static str; 1],
}

impl<'a> WholeGroup<'a> {
    /// The group `id` as it should be.
    pub fn new(id: &'a str, display_name: &'a str, members: Vec<Member<'a>>) -> WholeGroup<'a> {
        WholeGroup {
            display_name,
            id,
            members,
            schemas: [GROUP_SCHEMA],
        }
    }
}

/// The `name` complex attribute.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Name<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
}

impl Name<'_> {
    /// No part of the name is set.
    pub fn is_empty(&self) -> bool {
        self.family_name.is_none() && self.formatted.is_none() && self.given_name.is_none()
    }
}

/// POST /Users.
#[allow(missing_docs)] // the fields are the SCIM attributes they serialise as
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser<'a> {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<[Email<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Name<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<[Phone; 1]>,
    pub schemas: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    pub user_name: String,
}

impl<'a> NewUser<'a> {
    /// An active user with only its userName; the planner fills the rest.
    pub fn new(user_name: String) -> NewUser<'a> {
        NewUser {
            active: true,
            display_name: None,
            emails: None,
            external_id: None,
            name: None,
            phone_numbers: None,
            schemas: [USER_SCHEMA],
            timezone: None,
            title: None,
            user_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scim::PATCH_SCHEMA;

    /// Each payload prints its keys in the order a `serde_json::Value` of it would.
    fn same_text_as_value<T: Serialize>(payload: &T) -> Value {
        let text = serde_json::to_string(payload).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, value.to_string(), "keys out of order");
        value
    }

    #[test]
    fn payloads_print_as_sorted_json() {
        let patch = Patch::new(vec![
            add_members(members([MemberValue::Account("sp1"), MemberValue::ToCreate("u2")])),
            PatchOp::remove_member("sp\"3"),
            PatchOp::replace(
                "emails",
                PatchValue::Emails([Email {
                    primary: true,
                    kind: "work",
                    value: "a@x".into(),
                }]),
            ),
            PatchOp::replace("active", PatchValue::Flag(false)),
            PatchOp::replace(
                "phoneNumbers",
                PatchValue::Phones([Phone {
                    kind: "work",
                    value: "1".into(),
                }]),
            ),
            PatchOp::replace(
                "roles",
                PatchValue::Roles([Role {
                    primary: true,
                    value: "admin",
                }]),
            ),
        ]);
        assert_eq!(
            same_text_as_value(&patch),
            json!({"schemas": [PATCH_SCHEMA], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "sp1"}, {"value": {"$idp_user": "u2"}}]},
                {"op": "remove", "path": "members[value eq \"sp\\\"3\"]"},
                {"op": "replace", "path": "emails", "value": [{"value": "a@x", "type": "work", "primary": true}]},
                {"op": "replace", "path": "active", "value": false},
                {"op": "replace", "path": "phoneNumbers", "value": [{"value": "1", "type": "work"}]},
                {"op": "replace", "path": "roles", "value": [{"value": "admin", "primary": true}]},
            ]})
        );
        let group = NewGroup::new("Eng", Some("g1"), members([MemberValue::Account("a")]));
        assert_eq!(
            same_text_as_value(&group),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng", "externalId": "g1", "members": [{"value": "a"}]})
        );
        let whole = WholeGroup::new("sp-g", "Eng", Vec::new());
        assert_eq!(
            same_text_as_value(&whole),
            json!({"schemas": [GROUP_SCHEMA], "id": "sp-g", "displayName": "Eng", "members": []})
        );
        let mut user = NewUser::new("ann".into());
        user.display_name = Some("Ann");
        user.external_id = Some("e1");
        user.name = Some(Name {
            family_name: Some("Lee"),
            formatted: Some("Ann Lee".into()),
            given_name: Some("Ann"),
        });
        user.timezone = Some("UTC");
        user.title = Some("Eng");
        user.phone_numbers = Some([Phone {
            kind: "work",
            value: "1".into(),
        }]);
        user.emails = Some([Email {
            primary: true,
            kind: "work",
            value: "ann@x".into(),
        }]);
        let value = same_text_as_value(&user);
        assert_eq!(value["name"]["formatted"], "Ann Lee");
        assert_eq!(value["active"], true);
        assert_eq!(value.as_object().unwrap().len(), 10);
        assert_eq!(
            same_text_as_value(&NewUser::new("bo".into())),
            json!({"schemas": [USER_SCHEMA], "userName": "bo", "active": true})
        );
    }
}
