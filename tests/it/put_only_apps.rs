//! Apps without PATCH (RFC 7644 §3.5.2 makes it optional): scim2-server announcing
//! `patch.supported: false` (and refusing PATCH), with ETags. Users and groups are written by a
//! read-modify-write PUT: a fresh GET, only the managed attributes changed, `If-Match` with the
//! version read. What scimsync does not manage (the enterprise extension, phone numbers, a
//! group's externalId) is compared attribute by attribute before and after.
use serde_json::{json, Value};

use crate::support::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn start() -> (Scim2Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let spc = dir.path().join("spc.json");
    std::fs::write(
        &spc,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
               "patch": {"supported": false}, "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
               "filter": {"supported": true, "maxResults": 1000}, "changePassword": {"supported": false},
               "sort": {"supported": false}, "etag": {"supported": true}})
        .to_string(),
    )
    .unwrap();
    let server = Scim2Server::start_with(&["idp", "app"], &["--service-provider-config", spc.to_str().unwrap()]);
    (server, dir)
}

fn user(name: &str, family: &str, active: bool) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": active,
           "name": {"givenName": name, "familyName": family},
           "emails": [{"value": format!("{name}@x.com"), "type": "work", "primary": true}]})
}

/// An app account with what scimsync does not manage: the enterprise extension and a phone.
fn rich(name: &str, family: &str) -> Value {
    let mut u = user(name, family, true);
    u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
    u["phoneNumbers"] = json!([{"value": "+1 555 0100", "type": "mobile"}]);
    u[ENTERPRISE] = json!({"employeeNumber": format!("N-{name}"), "department": "R&D", "costCenter": "42"});
    u
}

fn get(base: &str, path: &str) -> Value {
    let (status, v) = http("GET", &format!("{base}/{path}"), None);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// A resource without what a write changes by itself (`meta`) and the attributes named.
fn without(mut v: Value, attributes: &[&str]) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("meta");
    for a in attributes {
        match a.split_once('.') {
            Some((parent, child)) => {
                o.get_mut(parent).and_then(Value::as_object_mut).unwrap().remove(child);
            }
            None => {
                o.remove(*a);
            }
        }
    }
    v
}

#[test]
fn an_app_without_patch_is_written_by_put_and_keeps_what_scimsync_does_not_manage() {
    let (server, _dir) = start();
    let (idp, app) = (server.url("idp"), server.url("app"));
    // A plain PATCH is refused by this server: what an app without PATCH answers.
    let i = bulk_create(
        &idp,
        "/Users",
        &[user("ann", "New", true), user("ben", "Doe", true), user("cat", "Doe", false)],
    );
    bulk_create(
        &idp,
        "/Groups",
        &[
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
                  "members": i.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}),
        ],
    );
    let a = bulk_create(&app, "/Users", &[rich("ann", "Old"), rich("ben", "Doe"), rich("cat", "Doe")]);
    let g = bulk_create(
        &app,
        "/Groups",
        &[
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng", "externalId": "eng-from-elsewhere",
                  "members": [{"value": a[0]}]}),
        ],
    );
    let (status, _) = http(
        "PATCH",
        &format!("{app}/Users/{}", a[0]),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}),
        ),
    );
    assert!(status >= 400, "this server refuses PATCH ({status})");
    let before: Vec<Value> = a.iter().map(|id| get(&app, &format!("Users/{id}"))).collect();
    let group_before = get(&app, &format!("Groups/{}", g[0]));

    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"{idp}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{app}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n"
    ));
    assert_ok(&ws.cli(&["pull"]));
    let plan = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&plan);
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let methods: Vec<String> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{} {}", o["method"].as_str().unwrap(), o["action"].as_str().unwrap()))
        .collect();
    assert!(methods.iter().all(|m| !m.starts_with("PATCH")), "{methods:?}");
    for want in ["PUT user.update", "PUT user.deactivate", "PUT group.members"] {
        assert!(methods.iter().any(|m| m == want), "{want} in {methods:?}");
    }
    let applied = ws.cli(&["apply", "--yes"]);
    assert_ok(&applied);

    let after: Vec<Value> = a.iter().map(|id| get(&app, &format!("Users/{id}"))).collect();
    // ann: only her family name changed; cat: only deactivated; ben: untouched.
    assert_eq!(after[0]["name"]["familyName"], "New");
    assert_eq!(
        without(after[0].clone(), &["name.familyName"]),
        without(before[0].clone(), &["name.familyName"])
    );
    assert_eq!(after[1], before[1], "ben is not written at all");
    assert_eq!(after[2]["active"], false);
    assert_eq!(without(after[2].clone(), &["active"]), without(before[2].clone(), &["active"]));
    assert_eq!(after[0][ENTERPRISE]["costCenter"], "42", "the extension is kept");
    // The group: renamed to the IdP's name and given its members, its externalId kept.
    let group_after = get(&app, &format!("Groups/{}", g[0]));
    assert_eq!(group_after["displayName"], "Eng");
    assert_eq!(group_after["externalId"], group_before["externalId"]);
    let mut members: Vec<&str> = group_after["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort();
    let mut want = vec![a[0].as_str(), a[1].as_str()];
    want.sort();
    assert_eq!(members, want);

    // Converged: the next plan has nothing to do.
    assert_ok(&ws.cli(&["pull"]));
    let again = ws.cli(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn a_mapped_extension_attribute_is_written_by_put_and_the_rest_of_the_extension_kept() {
    let (server, _dir) = start();
    let (idp, app) = (server.url("idp"), server.url("app"));
    // The SCIM IdP's enterprise department is the IdP attribute `department`, as every
    // connector names it.
    let mut idp_ann = user("ann", "Doe", true);
    idp_ann["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
    idp_ann[ENTERPRISE] = json!({"department": "Legal"});
    let i = bulk_create(&idp, "/Users", &[idp_ann]);
    bulk_create(
        &idp,
        "/Groups",
        &[json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng", "members": [{"value": i[0]}]})],
    );
    let a = bulk_create(&app, "/Users", &[rich("ann", "Doe")]);
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"{idp}\"\ntoken_env = \"IT_TOKEN\"\n\n\
         [app.wiki]\nidp = \"corp\"\nbase_url = \"{app}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nmanage_groups = false\n\n\
         [app.wiki.mappings]\n\"{ENTERPRISE}:department\" = \"department || '-' || family_name\"\n"
    ));
    assert_ok(&ws.cli(&["pull"]));
    let plan = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&plan);
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let ops: Vec<&Value> = plan["operations"].as_array().unwrap().iter().collect();
    assert_eq!(ops.len(), 1, "{ops:#?}");
    assert_eq!(ops[0]["method"], "PUT");
    assert_ok(&ws.cli(&["apply", "--yes"]));
    let after = get(&app, &format!("Users/{}", a[0]));
    assert_eq!(after[ENTERPRISE]["department"], "Legal-Doe");
    assert_eq!(after[ENTERPRISE]["costCenter"], "42", "the rest of the extension is kept");
    assert_eq!(after[ENTERPRISE]["employeeNumber"], "N-ann");
    assert_eq!(after["phoneNumbers"][0]["value"], "+1 555 0100");
    assert_ok(&ws.cli(&["pull"]));
    let again = ws.cli(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
