//! The JumpCloud, Okta and Entra ID connectors against the project's fakes of those APIs
//! (`scimsync_emulator::IdpFake`): exact pulls of 5,000 users and 200 groups with the app's
//! bound groups, retried 429/503 mid-scan, a persisting failure that keeps the previous
//! snapshot, incremental pulls that fetch only the changes, Graph's 410 resync, JumpCloud rows
//! moving mid-scan, and Okta's rate-limit headers.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::http::Method;
use scimsync_emulator::{Directory, Fault, IdpDirectory, IdpFake, IdpVendor};

use crate::support::*;

struct FakeHost {
    fake: IdpFake,
    _rt: tokio::runtime::Runtime,
}

fn start(vendor: IdpVendor, dir: IdpDirectory) -> FakeHost {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = (vendor == IdpVendor::Entra).then_some("client-1");
    let fake = rt.block_on(IdpFake::start(vendor, dir, TOKEN, client)).unwrap();
    FakeHost { fake, _rt: rt }
}

fn directory(users: usize, groups: usize) -> IdpDirectory {
    let mut d = IdpDirectory::generate(users, groups);
    d.bind("app-1", "g00000");
    d.bind("app-1", "g00001");
    d
}

fn config(vendor: IdpVendor, fake: &IdpFake, app_url: &str, concurrency: usize) -> String {
    let idp = match vendor {
        IdpVendor::JumpCloud => format!("kind = \"jumpcloud\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n", fake.base_url),
        IdpVendor::Okta => format!("kind = \"okta\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n", fake.base_url),
        IdpVendor::Entra => format!(
            "kind = \"entra\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\nclient_id = \"client-1\"\ntoken_url = \"{}\"\n",
            fake.base_url, fake.token_url
        ),
    };
    format!(
        "[idp.corp]\n{idp}concurrency = {concurrency}\n\n[app.tool]\nidp = \"corp\"\nbase_url = \"{app_url}\"\ntoken_env = \"IT_TOKEN\"\nidp_app_id = \"app-1\"\n"
    )
}

/// id, login, email, active, externalId, attributes (the store's `attributes` object).
type Users = BTreeSet<(String, String, String, bool, String, BTreeMap<String, String>)>;
type Pairs = BTreeSet<(String, String)>;
/// Users, groups, memberships and bound group ids of one directory.
type Mirror = (Users, Pairs, Pairs, BTreeSet<String>);

/// What the store holds for idp.corp: users, groups, memberships, bindings.
fn stored(ws: &Workspace) -> Mirror {
    let db = ws.db();
    let users = rows(
        &db,
        "SELECT id, user_name, email, active, coalesce(external_id, ''), coalesce(attributes, '{}') FROM users WHERE source = 'idp.corp'",
    )
    .into_iter()
    .map(|r| {
        let attributes: BTreeMap<String, String> = serde_json::from_str(&r[5]).expect("attributes is a JSON object of strings");
        (r[0].clone(), r[1].clone(), r[2].clone(), r[3] == "1", r[4].clone(), attributes)
    })
    .collect();
    let groups = rows(&db, "SELECT id, display_name FROM groups WHERE source = 'idp.corp'")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let members = rows(&db, "SELECT group_id, user_id FROM memberships WHERE source = 'idp.corp'")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let bindings = rows(&db, "SELECT idp_group_id FROM bindings WHERE app = 'tool'")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    (users, groups, members, bindings)
}

/// The attributes a connector keeps of a fake's user, under scimsync's names: what each vendor's
/// API carries (Graph has no cost center outside `employeeOrgData`, and numbers its custom
/// attributes `extensionAttribute1…15`).
fn attributes_of(vendor: IdpVendor, u: &scimsync_emulator::IdpUser) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v.clone());
        }
    };
    put("employee_number", &u.employee_id);
    put("department", &u.department);
    put("manager_id", &u.manager);
    if vendor != IdpVendor::Entra {
        put("cost_center", &u.cost_center);
    }
    for (n, (name, value)) in u.custom.iter().enumerate() {
        let name = if vendor == IdpVendor::Entra {
            format!("extensionAttribute{}", n + 1)
        } else {
            name.clone()
        };
        out.insert(name, value.clone());
    }
    out
}

/// The same, from the fake.
fn truth(fake: &IdpFake) -> Mirror {
    let vendor = fake.vendor();
    fake.with_directory(|d| {
        (
            d.users
                .values()
                .map(|u| {
                    (
                        u.id.clone(),
                        u.login.clone(),
                        u.email.clone(),
                        u.active,
                        u.employee_id.clone().unwrap_or_default(),
                        attributes_of(vendor, u),
                    )
                })
                .collect(),
            d.groups.values().map(|g| (g.id.clone(), g.name.clone())).collect(),
            d.memberships(),
            d.apps.get("app-1").cloned().unwrap_or_default().into_iter().collect(),
        )
    })
}

fn assert_mirrors(ws: &Workspace, fake: &IdpFake) {
    let (su, sg, sm, sb) = stored(ws);
    let (tu, tg, tm, tb) = truth(fake);
    assert_eq!(su.len(), tu.len(), "user count");
    assert!(
        su == tu,
        "users differ: {:?}",
        su.symmetric_difference(&tu).take(5).collect::<Vec<_>>()
    );
    assert_eq!(sg, tg, "groups");
    assert!(
        sm == tm,
        "memberships differ: {:?}",
        sm.symmetric_difference(&tm).take(5).collect::<Vec<_>>()
    );
    assert_eq!(sb, tb, "bound groups");
}

/// The users path and a query marker of a page after the first, per vendor.
fn users_page(vendor: IdpVendor) -> (&'static str, &'static str, u64) {
    match vendor {
        IdpVendor::JumpCloud => ("/api/systemusers", "skip=200", 50),
        IdpVendor::Okta => ("/api/v1/users", "after=", 25),
        IdpVendor::Entra => ("/v1.0/users/delta", "skiptoken", 50),
    }
}

fn pull_exact_with_transient_and_persistent_faults(vendor: IdpVendor) {
    let host = start(vendor, directory(5000, 200));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(vendor, &host.fake, &app.emulator.base_url, 4));
    let (path, marker, pages) = users_page(vendor);
    // One 503 and one 429 (Retry-After: 0) on pages after the first: both retried.
    for (status, retry_after) in [(503, None), (429, Some("0".to_string()))] {
        host.fake.add_fault(Fault {
            path_suffix: Some(path.into()),
            method: Some(Method::GET),
            query_contains: Some(marker.into()),
            status,
            retry_after,
            times: Some(1),
            ..Default::default()
        });
    }
    let t = Instant::now();
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    eprintln!(
        "{vendor:?}: 5,000 users + 200 groups pulled in {:.2} s (debug build)",
        t.elapsed().as_secs_f64()
    );
    assert_mirrors(&ws, &host.fake);
    let served = host.fake.requests_by_path()[path];
    assert_eq!(served, pages + 2, "{vendor:?}: {pages} pages plus the two retried requests");
    let (users, ..) = stored(&ws);
    assert!(
        users.iter().any(|u| !u.3),
        "inactive users are mirrored too (Okta hides DEPROVISIONED without a filter)"
    );

    // A change, then a page that keeps failing: the pull fails naming the source and the
    // request, and the previous snapshot stays as it was.
    let before = rows(&ws.db(), "SELECT id, user_name, active, raw, valid_from FROM users ORDER BY uid");
    host.fake
        .with_directory(|d| d.update_user("u0000003", |u| u.login = "renamed@example.com".into()));
    host.fake.add_fault(Fault {
        path_suffix: Some(path.into()),
        method: Some(Method::GET),
        query_contains: Some(marker.into()),
        status: 502,
        ..Default::default()
    });
    let out = ws.cli(&["pull", "--full"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("idp.corp") && err.contains(path) && err.contains("HTTP 502"), "{err}");
    assert_eq!(
        rows(&ws.db(), "SELECT id, user_name, active, raw, valid_from FROM users ORDER BY uid"),
        before
    );
    assert!(!String::from_utf8_lossy(&std::fs::read(ws.store()).unwrap()).contains(TOKEN));
}

#[test]
fn jumpcloud_pull_is_exact_and_survives_faults() {
    pull_exact_with_transient_and_persistent_faults(IdpVendor::JumpCloud);
}

#[test]
fn okta_pull_is_exact_and_survives_faults() {
    pull_exact_with_transient_and_persistent_faults(IdpVendor::Okta);
}

#[test]
fn entra_pull_is_exact_and_survives_faults() {
    pull_exact_with_transient_and_persistent_faults(IdpVendor::Entra);
}

/// Changes every incremental mechanism must carry: an attribute, a deactivation, a new user in
/// a group, a member removed, a group renamed.
fn change(d: &mut IdpDirectory) {
    d.update_user("u0000003", |u| {
        u.title = Some("Director".into());
        u.department = Some("Legal".into());
        u.manager = None;
        u.custom.insert("badge".into(), "B3".into());
    });
    d.update_user("u0000004", |u| u.active = false);
    d.put_user(scimsync_emulator::IdpUser {
        id: "u9999999".into(),
        login: "new.hire@example.com".into(),
        email: "new.hire@example.com".into(),
        first: "New".into(),
        last: "Hire".into(),
        active: true,
        ..Default::default()
    });
    d.add_member("g00001", "u9999999");
    d.remove_member("g00000", "u0000000");
    d.put_group("g00002", "Group 2 renamed");
}

fn incremental(vendor: IdpVendor, max_requests: u64) {
    let host = start(vendor, directory(5000, 200));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(vendor, &host.fake, &app.emulator.base_url, 4));
    assert_ok(&ws.cli(&["pull"]));
    let full = host.fake.requests();
    host.fake.with_directory(change);
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    let served = host.fake.requests() - full;
    assert!(
        served <= max_requests,
        "{vendor:?}: an incremental pull made {served} requests (full: {full})"
    );
    assert_mirrors(&ws, &host.fake);
    let db = ws.db();
    let counts = rows(&db, "SELECT counts FROM runs WHERE source = 'idp.corp' ORDER BY id DESC LIMIT 1");
    assert!(counts[0][0].contains("\"incremental\":true"), "{}", counts[0][0]);
    eprintln!("{vendor:?}: full pull {full} requests, incremental {served}");
    // Unchanged users were not rewritten: only the changed ones got new versions.
    assert_eq!(count(&db, "SELECT count(*) FROM user_versions WHERE source = 'idp.corp'"), 2);
    // `pull --full` reads everything again and agrees.
    assert_ok(&ws.cli(&["pull", "--full"]));
    assert_mirrors(&ws, &host.fake);
    assert_eq!(count(&ws.db(), "SELECT count(*) FROM user_versions WHERE source = 'idp.corp'"), 2);
}

#[test]
fn okta_incremental_pull_fetches_only_changes() {
    // users since the mark (1 page), the group list (1), members of the groups that changed
    // (g00000, g00001, and the newest-mark group re-read at the boundary), the app's groups (1).
    incremental(IdpVendor::Okta, 8);
}

#[test]
fn entra_incremental_pull_fetches_only_changes() {
    // token, users delta (1 page), groups delta (1 page), app role assignments.
    incremental(IdpVendor::Entra, 5);
}

#[test]
fn entra_deletions_and_an_expired_delta_token() {
    let host = start(IdpVendor::Entra, directory(300, 10));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::Entra, &host.fake, &app.emulator.base_url, 2));
    assert_ok(&ws.cli(&["pull"]));
    host.fake.with_directory(|d| {
        d.delete_user("u0000010");
        d.delete_group("g00009");
    });
    assert_ok(&ws.cli(&["pull"]));
    assert_mirrors(&ws, &host.fake);

    // Graph forgets the tokens: 410 Gone, and the pull reads everything again.
    host.fake.expire_delta_tokens();
    host.fake.with_directory(|d| d.update_user("u0000011", |u| u.active = false));
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("410") && stderr(&out).contains("reading everything"),
        "{}",
        stderr(&out)
    );
    assert_mirrors(&ws, &host.fake);
}

#[test]
fn entra_wrong_client_secret_is_named_without_the_secret() {
    let host = start(IdpVendor::Entra, directory(10, 2));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::Entra, &host.fake, &app.emulator.base_url, 2).replace("IT_TOKEN", "WRONG_SECRET"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .arg("pull")
        .current_dir(ws.dir.path())
        .env("WRONG_SECRET", "not-the-secret-123")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("idp.corp") && err.contains("token request refused") && err.contains("AADSTS7000215"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-123"));
}

#[test]
fn jumpcloud_rows_moving_mid_scan_are_read_again() {
    let host = start(IdpVendor::JumpCloud, directory(1000, 5));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::JumpCloud, &host.fake, &app.emulator.base_url, 1));
    // A user is deleted while the users are being paged (after the 3rd request): skip-based
    // paging would now miss one user on a later page.
    host.fake.mutate_at(3, |d| d.delete_user("u0000001"));
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("reading the list again"), "{}", stderr(&out));
    assert_mirrors(&ws, &host.fake);
}

#[test]
fn okta_waits_for_the_rate_limit_window_instead_of_hitting_429() {
    let host = start(IdpVendor::Okta, directory(600, 6));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::Okta, &host.fake, &app.emulator.base_url, 1));
    host.fake.set_rate_limit(Some(3));
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    assert_mirrors(&ws, &host.fake);
    assert_eq!(
        host.fake.throttled(),
        0,
        "the connector waits for X-Rate-Limit-Reset when Remaining is 0"
    );
}

/// App accounts: two that match IdP users, a contractor the IdP does not know, an account with
/// a userName only, and an inactive one.
fn app_with_strangers() -> Directory {
    let mut d = Directory::default();
    for (user_name, email, given, active) in [
        ("user1@example.com", Some("user1@example.com"), Some("First1"), true),
        ("user2@example.com", Some("user2@example.com"), Some("First2"), true),
        ("contractor@example.com", Some("contractor@example.com"), Some("Casey"), true),
        ("nomail", None, None, true),
        ("old.timer@example.com", Some("old.timer@example.com"), Some("Olive"), false),
    ] {
        let mut u = serde_json::json!({"userName": user_name, "active": active});
        if let Some(e) = email {
            u["emails"] = serde_json::json!([{"value": e, "type": "work", "primary": true}]);
        }
        if let Some(g) = given {
            u["name"] = serde_json::json!({"givenName": g, "familyName": "Example"});
        }
        d.add_user(u);
    }
    d
}

fn import_lists_and_creates(vendor: IdpVendor) {
    let host = start(vendor, directory(50, 3));
    let app = EmulatorHost::start(app_with_strangers());
    let ws = Workspace::new(&config(vendor, &host.fake, &app.emulator.base_url, 2));
    assert_ok(&ws.cli(&["pull"]));

    let out = ws.cli(&["import", "--app", "tool"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("3 new, 2 imported"), "{text}");
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(line("contractor@example.com").contains("New"), "{text}");
    assert!(
        line("user1@example.com").contains("Imported") && line("user1@example.com").contains("userName"),
        "{text}"
    );

    // A dry run creates nothing.
    let before = host.fake.with_directory(|d| d.users.len());
    let out = ws.cli(&["import", "--app", "tool", "--create"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("would create 2 user(s)") && stdout(&out).contains("1 inactive new account"),
        "{}",
        stdout(&out)
    );
    assert_eq!(host.fake.with_directory(|d| d.users.len()), before);

    // For real: the contractor is created; the userName-only account only where the IdP needs
    // nothing more (Entra).
    let out = ws.cli(&["import", "--app", "tool", "--create", "--yes"]);
    let created = host.fake.with_directory(|d| {
        d.users
            .values()
            .filter(|u| u.id.starts_with("u9"))
            .map(|u| (u.login.clone(), u.active, u.staged))
            .collect::<Vec<_>>()
    });
    match vendor {
        IdpVendor::Entra => {
            assert_ok(&out);
            assert_eq!(created.len(), 2, "{created:?}");
        }
        _ => {
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(stdout(&out).contains("account 'nomail' has no email"), "{}", stdout(&out));
            assert_eq!(created.len(), 1, "{created:?}");
        }
    }
    let contractor = created
        .iter()
        .find(|c| c.0 == "contractor@example.com")
        .expect("contractor created");
    assert_eq!(
        contractor.2,
        vendor == IdpVendor::Okta,
        "Okta creates STAGED users, the others active ones"
    );
    assert!(
        stdout(&out).contains("only once they are members of a group bound to it: Group 0, Group 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        count(
            &ws.db(),
            "SELECT count(*) FROM events WHERE name = 'user_import' AND outcome = 'success' AND subject = 'contractor@example.com'"
        ),
        1
    );

    // Pulled again, the contractor's account is Imported (linked by userName).
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["import", "--app", "tool", "--format", "json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let c = v["list"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user_name"] == "contractor@example.com")
        .unwrap()
        .clone();
    assert_eq!(c["status"], "imported", "{c}");
}

#[test]
fn jumpcloud_import_lists_and_creates() {
    import_lists_and_creates(IdpVendor::JumpCloud);
}

#[test]
fn okta_import_lists_and_creates_staged_users() {
    import_lists_and_creates(IdpVendor::Okta);
}

#[test]
fn entra_import_lists_and_creates() {
    import_lists_and_creates(IdpVendor::Entra);
}

#[test]
fn entra_fetches_a_new_token_when_graph_refuses_the_old_one_mid_pull() {
    let host = start(IdpVendor::Entra, directory(1000, 10));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::Entra, &host.fake, &app.emulator.base_url, 2));
    // The token expires after the 4th request: users pages are being read.
    host.fake.expire_access_tokens_at(4);
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    assert_eq!(host.fake.tokens_granted(), 2, "one refresh");
    assert_mirrors(&ws, &host.fake);
}

#[test]
fn okta_single_user_and_group_reconcile_read_only_what_they_need() {
    let host = start(IdpVendor::Okta, directory(2000, 20));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(IdpVendor::Okta, &host.fake, &app.emulator.base_url, 2));
    assert_ok(&ws.cli(&["pull"]));
    let full = host.fake.requests();
    // user20 is in bound group g00000 (20 mod 20 = 0) and has no account yet.
    let before = host.fake.requests();
    let out = ws.cli(&["reconcile", "--app", "tool", "--user", "USER20@example.com"]);
    assert_ok(&out);
    let served = host.fake.requests() - before;
    assert!(
        served <= 3,
        "a single-user reconcile made {served} requests to Okta (a full pull: {full})"
    );
    assert!(
        app.emulator.with_directory(|d| d.user_by_name("user20@example.com").is_some()),
        "{}",
        stdout(&out)
    );

    let before = host.fake.requests();
    let out = ws.cli(&["reconcile", "--app", "tool", "--group", "group 1"]);
    assert_ok(&out);
    let served = host.fake.requests() - before;
    assert!(
        served <= 6,
        "a single-group reconcile made {served} requests to Okta (a full pull: {full})"
    );
    assert!(
        app.emulator
            .with_directory(|d| d.groups.values().any(|g| g["displayName"] == "Group 1")),
        "{}",
        stdout(&out)
    );
}

fn single_user_reconcile_reads_one_user(vendor: IdpVendor, max_requests: u64) {
    let host = start(vendor, directory(2000, 20));
    let app = EmulatorHost::start(Directory::default());
    let ws = Workspace::new(&config(vendor, &host.fake, &app.emulator.base_url, 2));
    assert_ok(&ws.cli(&["pull"]));
    let full = host.fake.requests();
    // A change since the pull: the single-user read carries the attributes (Graph's manager
    // included, which a list read gets only by `$expand`).
    host.fake
        .with_directory(|d| d.update_user("u0000021", |u| u.department = Some("Legal".into())));
    let before = host.fake.requests();
    let out = ws.cli(&["reconcile", "--app", "tool", "--user", "user21@example.com"]);
    assert_ok(&out);
    let served = host.fake.requests() - before;
    assert!(
        served <= max_requests,
        "{vendor:?}: a single-user reconcile made {served} requests (a full pull: {full})"
    );
    assert!(
        app.emulator.with_directory(|d| d.user_by_name("user21@example.com").is_some()),
        "{}",
        stdout(&out)
    );
    let stored = rows(
        &ws.db(),
        "SELECT attributes FROM users WHERE source = 'idp.corp' AND id = 'u0000021'",
    );
    let attributes: BTreeMap<String, String> = serde_json::from_str(&stored[0][0]).unwrap();
    let expected = host.fake.with_directory(|d| attributes_of(vendor, &d.users["u0000021"]));
    assert_eq!(attributes, expected, "{vendor:?}");
    assert_eq!(attributes["department"], "Legal");
    assert_eq!(attributes["manager_id"], "u0000020");
}

#[test]
fn jumpcloud_single_user_reconcile_reads_one_user() {
    single_user_reconcile_reads_one_user(IdpVendor::JumpCloud, 2);
}

#[test]
fn entra_single_user_reconcile_reads_one_user() {
    // the token, then the filtered read
    single_user_reconcile_reads_one_user(IdpVendor::Entra, 2);
}
