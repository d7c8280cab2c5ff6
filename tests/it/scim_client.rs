//! The SCIM client's CRUD and filters against scim2-server, with hostile values.
use scimsync::http::{Auth, Http, HttpSettings};
use scimsync::scim::filter;
use scimsync::scim::patch::Operation;
use scimsync::scim::resource::{parse_group, parse_user};
use scimsync::secret::Secret;
use scimsync::sp::ScimClient;
use serde_json::json;

use crate::support::*;

#[test]
fn crud_and_filters_round_trip_hostile_values() {
    let server = Scim2Server::start(&["sp"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = ScimClient::new(
            &server.url("sp"),
            Http::new(HttpSettings::new("app.it", Auth::Bearer(Secret::new(TOKEN)))).unwrap(),
        );
        let spc = client.service_provider_config().await.unwrap();
        assert!(spc.patch.supported && spc.filter.supported);

        let hostile = [
            r#"o"brien\x@example.com"#,
            "zoë and or not@exämple.com",
            "a) or (userName pr",
            &"long".repeat(300),
        ];
        for name in hostile {
            let created = client
                .create(
                    "Users",
                    &json!({"schemas": [scimsync::scim::USER_SCHEMA], "userName": name, "active": true}),
                )
                .await
                .unwrap();
            let id = created["id"].as_str().unwrap().to_string();
            let found = client.search("Users", &filter::eq("userName", name), 10).await.unwrap();
            assert_eq!(found.len(), 1, "filter for {name:?} must find exactly that user");
            assert_eq!(parse_user(found[0].get()).unwrap().id, id);

            client
                .patch("Users", &id, &[Operation::replace("active", json!(false))], None)
                .await
                .unwrap();
            assert!(!parse_user(&client.get("Users", &id).await.unwrap().to_string()).unwrap().active);
        }

        // Groups: create with a member, add and remove members by PATCH, replace, delete.
        let a = client
            .create("Users", &json!({"schemas": [scimsync::scim::USER_SCHEMA], "userName": "a"}))
            .await
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = client
            .create("Users", &json!({"schemas": [scimsync::scim::USER_SCHEMA], "userName": "b"}))
            .await
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let group_name = r#"R&D "core" \ ops"#;
        let g = client
            .create(
                "Groups",
                &json!({"schemas": [scimsync::scim::GROUP_SCHEMA], "displayName": group_name, "members": [{"value": a}]}),
            )
            .await
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let found = client.search("Groups", &filter::eq("displayName", group_name), 10).await.unwrap();
        assert_eq!(found.len(), 1);
        client
            .patch(
                "Groups",
                &g,
                &[Operation::add_members([b.as_str()]), Operation::remove_member(&a)],
                None,
            )
            .await
            .unwrap();
        let (_, members) = parse_group(&client.get("Groups", &g).await.unwrap().to_string()).unwrap();
        assert_eq!(members, vec![b.clone()]);
        client
            .replace(
                "Groups",
                &g,
                &json!({"schemas": [scimsync::scim::GROUP_SCHEMA], "displayName": "Renamed", "members": [{"value": a}, {"value": b}]}),
                None,
            )
            .await
            .unwrap();
        let (group, members) = parse_group(&client.get("Groups", &g).await.unwrap().to_string()).unwrap();
        assert_eq!((group.display_name.as_str(), members.len()), ("Renamed", 2));
        client.delete("Groups", &g, None).await.unwrap();
        let gone = client.get("Groups", &g).await.unwrap_err();
        assert_eq!(gone.status(), Some(404), "{gone}");
    });
}
