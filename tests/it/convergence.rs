//! Convergence (proptest): random IdP and app states; pull → plan → apply → pull → plan must be
//! empty, and the app must hold exactly the state computed here from the IdP, independently of
//! the planner — for every profile's emulator and for scim2-server (generic profile).
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};

use scimsync_emulator::{Directory, Vendor};

use crate::support::*;

const BOUND: [&str; 2] = ["Eng", "Ops"];
const GROUPS: [&str; 3] = ["Eng", "Ops", "Sales"];

#[derive(Debug, Clone)]
struct IdpUser {
    active: bool,
    groups: Vec<bool>, // membership of GROUPS
    title: u8,
}

/// The app's account for IdP user i, if it has one: (active, title drifted).
#[derive(Debug, Clone)]
struct AppState {
    accounts: Vec<Option<(bool, bool)>>,
    unmanaged: usize,
    /// A pre-existing app group named like a bound IdP group (taken over), with these accounts.
    existing_group: Option<(bool, Vec<bool>)>,
}

fn scenario() -> impl Strategy<Value = (Vec<IdpUser>, AppState)> {
    prop::collection::vec(
        (any::<bool>(), any::<bool>(), prop::collection::vec(any::<bool>(), 3), 0u8..3).prop_map(|(a, b, groups, title)| IdpUser {
            active: a || b,
            groups,
            title,
        }),
        1..10,
    )
    .prop_flat_map(|users| {
        let n = users.len();
        let accounts = prop::collection::vec(prop::option::of((any::<bool>(), any::<bool>())), n);
        let group = prop::option::of((any::<bool>(), prop::collection::vec(any::<bool>(), n)));
        (Just(users), accounts, 0usize..3, group).prop_map(|(users, accounts, unmanaged, existing_group)| {
            (
                users,
                AppState {
                    accounts,
                    unmanaged,
                    existing_group,
                },
            )
        })
    })
}

fn email(i: usize) -> String {
    format!("User{i}@Corp.example")
}

fn directory(users: &[IdpUser]) -> Value {
    let us: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"id": format!("u{i}"), "username": email(i), "email": email(i), "firstname": format!("F{i}"), "lastname": "L",
                             "employeeIdentifier": format!("E{i}"), "active": u.active, "jobTitle": format!("T{}", u.title)})
        })
        .collect();
    let groups: Vec<Value> = GROUPS
        .iter()
        .enumerate()
        .map(|(g, name)| {
            let members: Vec<String> = users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.groups[g])
                .map(|(i, _)| format!("u{i}"))
                .collect();
            json!({"id": format!("g{g}"), "name": name, "members": members})
        })
        .collect();
    json!({"users": us, "groups": groups})
}

fn account_body(i: usize, active: bool, drifted: bool, lower: bool) -> Value {
    let e = if lower { email(i).to_lowercase() } else { email(i) };
    json!({"schemas": [scimsync::scim::USER_SCHEMA], "userName": e, "externalId": format!("E{i}"), "active": active,
           "title": if drifted { "Hand".to_string() } else { "T0".to_string() },
           "name": {"givenName": format!("F{i}"), "familyName": "L"}, "emails": [{"value": e, "type": "work", "primary": true}]})
}

fn unmanaged_body(k: usize) -> Value {
    json!({"schemas": [scimsync::scim::USER_SCHEMA], "userName": format!("ext{k}@partner.example"), "active": true,
           "emails": [{"value": format!("ext{k}@partner.example"), "type": "work"}]})
}

/// What the app must hold after one reconcile: lower-cased email → active, for every account;
/// bound group name → member emails.
type Expected = (BTreeMap<String, bool>, BTreeMap<String, BTreeSet<String>>);

fn expected(users: &[IdpUser], app: &AppState) -> Expected {
    let in_scope = |u: &IdpUser| u.active && (0..BOUND.len()).any(|g| u.groups[g]);
    let mut accounts = BTreeMap::new();
    for (i, u) in users.iter().enumerate() {
        let has = app.accounts[i].is_some();
        if in_scope(u) {
            accounts.insert(email(i).to_lowercase(), true);
        } else if has {
            accounts.insert(email(i).to_lowercase(), false);
        }
    }
    for k in 0..app.unmanaged {
        accounts.insert(format!("ext{k}@partner.example"), true);
    }
    let mut groups = BTreeMap::new();
    for (g, name) in BOUND.iter().enumerate() {
        let members: BTreeSet<String> = users
            .iter()
            .enumerate()
            .filter(|(_, u)| in_scope(u) && u.groups[g])
            .map(|(i, _)| email(i).to_lowercase())
            .collect();
        // A pre-existing group keeps its unmanaged members (here: none are put in it).
        let exists = g == 0 && app.existing_group.is_some();
        if !members.is_empty() || exists {
            groups.insert(name.to_string(), members);
        }
    }
    (accounts, groups)
}

/// The app's state read over SCIM: the same shape as [`expected`].
fn actual(base: &str) -> Expected {
    let (_, u) = http("GET", &format!("{base}/Users?startIndex=1&count=1000"), None);
    let mut by_id = BTreeMap::new();
    let mut accounts = BTreeMap::new();
    for r in u["Resources"].as_array().cloned().unwrap_or_default() {
        let e = r["emails"][0]["value"].as_str().unwrap_or_default().to_lowercase();
        by_id.insert(r["id"].as_str().unwrap().to_string(), e.clone());
        accounts.insert(e, r["active"].as_bool().unwrap_or(true));
    }
    let (_, g) = http("GET", &format!("{base}/Groups?startIndex=1&count=1000"), None);
    let groups = g["Resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| by_id.get(m["value"].as_str()?).cloned())
                .collect();
            (g["displayName"].as_str().unwrap().to_string(), members)
        })
        .collect();
    (accounts, groups)
}

/// Seed the app through its SCIM API (works for the emulators and scim2-server alike).
fn seed(base: &str, users: &[IdpUser], app: &AppState, lower: bool) {
    let mut ids = BTreeMap::new();
    for (i, a) in app.accounts.iter().enumerate() {
        if let Some((active, drifted)) = a {
            let (s, v) = http("POST", &format!("{base}/Users"), Some(&account_body(i, *active, *drifted, lower)));
            assert_eq!(s, 201, "{v}");
            ids.insert(i, v["id"].as_str().unwrap().to_string());
        }
    }
    for k in 0..app.unmanaged {
        assert_eq!(http("POST", &format!("{base}/Users"), Some(&unmanaged_body(k))).0, 201);
    }
    if let Some((lower_name, members)) = &app.existing_group {
        let m: Vec<Value> = members
            .iter()
            .enumerate()
            .filter_map(|(i, yes)| if *yes { ids.get(&i) } else { None })
            .map(|id| json!({"value": id}))
            .collect();
        let name = if *lower_name { "eng" } else { "Eng" };
        let body = json!({"schemas": [scimsync::scim::GROUP_SCHEMA], "displayName": name, "members": m});
        assert_eq!(http("POST", &format!("{base}/Groups"), Some(&body)).0, 201);
    }
    let _ = users;
}

fn converge(profile: &str, base: &str, users: &[IdpUser], app: &AppState) -> Result<(), TestCaseError> {
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.a]\nidp = \"corp\"\nprofile = \"{profile}\"\nbase_url = \"{base}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\", \"Ops\"]\n"
    ));
    std::fs::write(ws.path("directory.json"), directory(users).to_string()).unwrap();
    for step in [&["pull"][..], &["plan"], &["apply", "--yes"], &["pull"]] {
        let o = ws.cli(step);
        prop_assert!(o.status.success(), "{step:?}: {}\n{}", stdout(&o), stderr(&o));
    }
    let o = ws.cli(&["plan", "--format", "json", "--detailed-exitcode"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    prop_assert_eq!(o.status.code(), Some(0), "second plan not empty: {:#}", v);
    prop_assert_eq!(&v["operations"], &json!([]));
    let (want_accounts, want_groups) = expected(users, app);
    let (got_accounts, got_groups) = actual(base);
    prop_assert_eq!(got_accounts, want_accounts);
    for (name, members) in &want_groups {
        prop_assert_eq!(got_groups.get(name), Some(members), "group {}: {:?}", name, got_groups);
    }
    Ok(())
}

fn emulator_case(vendor: Vendor, users: &[IdpUser], app: &AppState) -> Result<(), TestCaseError> {
    let host = EmulatorHost::start_as(Directory::default(), vendor, false);
    seed(&host.emulator.base_url, users, app, vendor == Vendor::Whimsical);
    converge(vendor.name(), &host.emulator.base_url, users, app)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn converges_on_generic((users, app) in scenario()) { emulator_case(Vendor::Generic, &users, &app)?; }

    #[test]
    fn converges_on_whimsical((users, app) in scenario()) { emulator_case(Vendor::Whimsical, &users, &app)?; }

    #[test]
    fn converges_on_quip((users, app) in scenario()) { emulator_case(Vendor::Quip, &users, &app)?; }

    #[test]
    fn converges_on_blogin((users, app) in scenario()) { emulator_case(Vendor::BlogIn, &users, &app)?; }

    #[test]
    fn converges_on_workramp((users, app) in scenario()) { emulator_case(Vendor::WorkRamp, &users, &app)?; }
}

#[test]
fn converges_on_scim2_server() {
    let server = Scim2Server::start(&["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 6,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let tenant = std::cell::Cell::new(0usize);
    runner
        .run(&scenario(), |(users, app)| {
            let t = tenant.get();
            tenant.set(t + 1);
            prop_assume!(t < 8);
            let base = server.url(&format!("t{t}"));
            seed(&base, &users, &app, false);
            converge("generic", &base, &users, &app)
        })
        .unwrap();
}
