//! `kind = "file"`: a JSON directory export mirrored exactly; bad documents are named precisely.
use serde_json::json;

use crate::support::*;

fn document(users: usize) -> serde_json::Value {
    let us: Vec<_> = (0..users)
        .map(|i| json!({"id": format!("u{i}"), "username": format!("user{i}"), "email": format!("user{i}@ex.com"), "firstname": "F", "lastname": format!("L{i}"), "active": i % 9 != 0, "status": if i % 9 == 0 { "SUSPENDED" } else { "ACTIVATED" }, "employeeIdentifier": format!("E{i}")}))
        .collect();
    json!({"users": us, "groups": [{"id": "g1", "name": "Engineering", "members": ["u1", "u2", "u3"]}, {"id": "g2", "name": "Empty", "members": []}]})
}

const CONFIG: &str = "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n";

#[test]
fn file_snapshot_is_mirrored() {
    let ws = Workspace::new(CONFIG);
    std::fs::write(ws.path("directory.json"), document(1000).to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE source = 'idp.corp'"), 1000);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE NOT active"), 112);
    assert_eq!(
        rows(
            &db,
            "SELECT user_name, email, family_name, external_id, status_raw, active FROM users WHERE id = 'u9'"
        ),
        vec![vec![
            "user9".to_string(),
            "user9@ex.com".into(),
            "L9".into(),
            "E9".into(),
            "SUSPENDED".into(),
            "0".into()
        ]]
    );
    assert_eq!(
        rows(&db, "SELECT group_id, user_id FROM memberships ORDER BY user_id"),
        vec![
            vec!["g1".to_string(), "u1".into()],
            vec!["g1".into(), "u2".into()],
            vec!["g1".into(), "u3".into()]
        ]
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM groups"), 2);
}

#[test]
fn a_bad_document_names_index_id_and_field_and_keeps_the_snapshot() {
    let ws = Workspace::new(CONFIG);
    std::fs::write(ws.path("directory.json"), document(10).to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let mut doc = document(10);
    doc["users"][5]["active"] = json!("yes");
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    let out = ws.cli(&["pull"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("idp.corp: file") && err.contains("directory.json") && err.contains("users[5] (id \"u5\"): field 'active'"),
        "{err}"
    );
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM users"), 10);

    // A member that is not a user is refused too, naming the group and the member.
    let mut doc = document(10);
    doc["groups"][0]["members"] = json!(["u1", "ghost"]);
    std::fs::write(ws.path("directory.json"), doc.to_string()).unwrap();
    let out = ws.cli(&["pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("groups[0] (id \"g1\"): field 'members': 'ghost'"),
        "{}",
        stderr(&out)
    );
}

/// The demo's sample company (the emulator crate's) is a document the `file` IdP reads whole.
#[test]
fn the_sample_company_is_a_file_document() {
    use scimsync_emulator::sample::{Company, DEPARTMENTS};
    let text = Company::generate(300, 5, 7).to_file_json(20, 7);
    let snap = scimsync::source::file::parse_document(&text).unwrap();
    assert_eq!(snap.users.len(), 300);
    assert_eq!(snap.groups.len(), DEPARTMENTS.len() + 2 + 5);
    let dept_members = snap.memberships.iter().filter(|m| m.group_id.starts_with("g-dept-")).count();
    assert_eq!(dept_members, 300, "everyone is in exactly one department");
}
