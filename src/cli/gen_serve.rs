//! `scimsync gen --serve`: the generated IdP and app served over SCIM by two emulators.
use std::collections::HashMap;
use std::path::Path;

use scimsync::gen;
use scimsync::model::Snapshot;
use scimsync_emulator::{Directory, Emulator};
use serde_json::{json, Value};

/// A snapshot as SCIM resources with the same ids, for the emulator: pulling it back gives the
/// same users (every attribute the model keeps), groups and memberships.
fn directory_of(snap: &Snapshot) -> Directory {
    let mut members: HashMap<&str, Vec<Value>> = HashMap::new();
    for m in &snap.memberships {
        members.entry(m.group_id).or_default().push(json!({"value": m.user_id}));
    }
    let mut d = Directory::default();
    for u in snap.users.iter().map(scimsync::model::PackedUser::unpack) {
        let mut user = json!({"userName": u.user_name, "active": u.active});
        let obj = user.as_object_mut().expect("an object");
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                obj.insert(k.into(), json!(v));
            }
        };
        put("externalId", &u.external_id);
        put("displayName", &u.display_name);
        put("title", &u.title);
        put("timezone", &u.timezone);
        let mut name = serde_json::Map::new();
        for (k, v) in [
            ("givenName", &u.given_name),
            ("familyName", &u.family_name),
            ("formatted", &u.formatted),
        ] {
            if let Some(v) = v {
                name.insert(k.into(), json!(v));
            }
        }
        if !name.is_empty() {
            obj.insert("name".into(), Value::Object(name));
        }
        for (k, v) in [("emails", &u.email), ("phoneNumbers", &u.phone), ("roles", &u.role)] {
            if let Some(v) = v {
                obj.insert(k.into(), json!([{"value": v, "primary": true}]));
            }
        }
        d.insert("Users", &u.id, user);
    }
    for g in &snap.groups {
        let mut group = json!({"displayName": g.display_name, "members": members.remove(g.id.as_str()).unwrap_or_default()});
        if let Some(e) = &g.external_id {
            group["externalId"] = json!(e);
        }
        d.insert("Groups", &g.id, group);
    }
    d
}

/// The generated IdP and app served over SCIM by two emulators on loopback ports, with
/// `dir/scimsync.toml` pointing at them; runs until Ctrl-C. Returns the two base URLs once
/// both listen (through `ready`).
pub async fn serve(g: gen::Generated, dir: &Path, ready: impl FnOnce(&str, &str)) -> anyhow::Result<()> {
    let idp = Emulator::start(directory_of(&g.idp), None).await?;
    drop(g.idp);
    let app = Emulator::start(directory_of(&g.app), None).await?;
    drop(g.app);
    let config_path = dir.join("scimsync.toml");
    let config = std::fs::read_to_string(&config_path)?
        .replace(gen::PLACEHOLDER_IDP, &idp.base_url)
        .replace(gen::PLACEHOLDER_APP, &app.base_url)
        .replace(gen::PLACEHOLDER_NOTE, "the URLs are of `scimsync gen --serve`, while it runs");
    std::fs::write(&config_path, config)?;
    ready(&idp.base_url, &app.base_url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
