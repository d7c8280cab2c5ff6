//! scimsync against servers that misbehave on purpose (issue "safe against a hostile or broken
//! server"): each test is one way a careful attacker, a broken proxy or an unlucky operator
//! harms a run, with the behaviour the run must keep. The hostile server ([`super::hostile`])
//! forwards what it does not answer itself to the project's fakes and emulator.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use scimsync_emulator::{Directory, IdpDirectory, IdpFake, IdpVendor};
use serde_json::{json, Value};

use crate::hostile::{Answer, Hostile, When};
use crate::support::*;

/// A file IdP with `n` users in group "Eng" (the app's bound group) and an app at `app_url`.
fn workspace(app_url: &str, n: usize, app_extra: &str) -> Workspace {
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"), "firstname": "F", "lastname": format!("L{i}"), "active": true, "employeeIdentifier": format!("E{i}")}))
        .collect();
    let members: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{app_url}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n{app_extra}"
    ));
    std::fs::write(
        ws.path("directory.json"),
        json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]}).to_string(),
    )
    .unwrap();
    ws
}

fn fails(o: &std::process::Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

struct Fake {
    fake: IdpFake,
    _rt: tokio::runtime::Runtime,
}

fn fake(vendor: IdpVendor, users: usize, groups: usize) -> Fake {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut dir = IdpDirectory::generate(users, groups);
    dir.bind("app-1", "g00000");
    let client = (vendor == IdpVendor::Entra).then_some("client-1");
    let fake = rt.block_on(IdpFake::start(vendor, dir, TOKEN, client)).unwrap();
    Fake { fake, _rt: rt }
}

fn origin(url: &str) -> String {
    url::Url::parse(url).unwrap().origin().ascii_serialization()
}

fn path_of(url: &str) -> String {
    url::Url::parse(url).unwrap().path().trim_end_matches('/').to_string()
}

// 1. Redirects.

#[test]
fn a_redirect_to_another_origin_gets_neither_the_jumpcloud_key_nor_a_request() {
    let elsewhere = Hostile::start();
    let front = Hostile::start();
    front.on(
        When::default(),
        Answer::redirect(302, &format!("{}/api/systemusers", elsewhere.base_url)),
    );
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"jumpcloud\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:9/scim\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        front.base_url
    ));
    let err = fails(&ws.cli(&["pull"]));
    assert!(
        err.contains(&front.base_url) && err.contains(&elsewhere.base_url),
        "names both URLs: {err}"
    );
    assert!(err.contains("another origin"), "{err}");
    assert!(
        elsewhere.seen().is_empty(),
        "the other origin was sent {} request(s)",
        elsewhere.seen().len()
    );
}

#[test]
fn the_entra_token_request_is_not_replayed_to_where_a_307_points() {
    let elsewhere = Hostile::start();
    let front = Hostile::start();
    front.on(
        When {
            method: Some(Method::POST),
            ..When::path("/token")
        },
        Answer::redirect(307, &format!("{}/token", elsewhere.base_url)),
    );
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"entra\"\nbase_url = \"{0}/v1.0\"\ntoken_env = \"ENTRA_SECRET\"\nclient_id = \"client-1\"\ntoken_url = \"{0}/token\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:9/scim\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\n",
        front.base_url
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["pull"])
        .current_dir(ws.dir.path())
        .env("ENTRA_SECRET", "client-secret-77f0a1")
        .env("IT_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(
        err.contains(&elsewhere.base_url) && err.contains("another origin") && err.contains("not followed"),
        "{err}"
    );
    assert!(elsewhere.seen().is_empty(), "the client secret went to another origin");
    assert_eq!(front.seen().len(), 1, "the POST was sent once");
    assert!(front.seen()[0].carries("client-secret-77f0a1"), "to the configured token endpoint");
    assert!(!err.contains("client-secret-77f0a1"));
}

#[test]
fn a_scim_app_redirected_elsewhere_is_not_mirrored_from_there() {
    let real = EmulatorHost::start(Directory::default());
    let mut other = Directory::default();
    other.add_user(json!({"userName": "impostor@evil.example", "active": true}));
    let impostor = EmulatorHost::start(other);
    let front = Hostile::in_front_of(Some(&origin(&real.emulator.base_url)));
    front.on(
        When::path("/Users"),
        Answer::redirect(302, &format!("{}/Users", impostor.emulator.base_url)),
    );
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&real.emulator.base_url)), 3, "");
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains(&impostor.emulator.base_url), "{err}");
    assert_eq!(impostor.emulator.requests(), 0, "the other origin was asked");
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM users WHERE source = 'app.wiki'"), 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE source = 'app.wiki' AND status = 'failed'"),
        1
    );
}

#[test]
fn same_origin_redirects_are_followed_a_bounded_number_of_times_and_a_post_never() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    // Every GET under /old moves (307) to the same path without /old: followed.
    front.on(
        When {
            method: Some(Method::GET),
            path_prefix: Some("/old".into()),
            ..Default::default()
        },
        Answer::redirect(307, "{self}{rest}"),
    );
    // A POST that is redirected is not sent again.
    front.on(
        When {
            method: Some(Method::POST),
            path_prefix: Some("/old".into()),
            ..Default::default()
        },
        Answer::redirect(307, "{self}{rest}"),
    );
    // A redirect loop.
    front.on(
        When {
            path_prefix: Some("/loop".into()),
            ..Default::default()
        },
        Answer::redirect(302, "{self}/loop/again"),
    );
    let ws = workspace(
        &format!("{}/old{}", front.base_url, path_of(&app.emulator.base_url)),
        3,
        "manage_groups = false\n",
    );
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let out = ws.cli(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("a POST is never sent again to a new URL"), "{}", stderr(&out));
    assert!(app.emulator.creates().is_empty(), "nothing was created through the redirect");
    let posts = front.seen().iter().filter(|s| s.method == Method::POST).count();
    assert_eq!(posts, 3, "each create was sent once: {posts}");

    let ws = workspace(&format!("{}/loop", front.base_url), 1, "");
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("more than 5 redirects"), "{err}");
}

// 2. Echoed secrets.

#[test]
fn a_token_the_server_echoes_is_never_printed_logged_or_stored() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    let echo = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","detail":"bad request from Bearer {TOKEN}"}}"#
    );
    front.on(
        When {
            method: Some(Method::POST),
            ..When::path("/Users")
        },
        Answer::json(400, echo),
    );
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&app.emulator.base_url)), 2, "");
    let mut outputs = vec![ws.cli(&["-vvv", "pull"]), ws.cli(&["-vvv", "plan"])];
    outputs.push(ws.cli(&["-vvv", "apply", "--yes"]));
    outputs.push(ws.cli(&["-vvv", "--log-format", "json", "apply", "--yes"]));
    // A failing pull whose text body echoes the token: runs.error.
    front.on(
        When::path("/Groups"),
        Answer {
            status: 500,
            headers: vec![],
            body: format!("internal error; your token {TOKEN} was refused"),
        },
    );
    outputs.push(ws.cli(&["-vvv", "pull"]));
    outputs.push(ws.cli(&["events"]));
    outputs.push(ws.cli(&[
        "sql",
        "SELECT error FROM operations UNION ALL SELECT error FROM runs",
        "--format",
        "csv",
    ]));
    outputs.push(ws.cli(&["sql", "SELECT message FROM events", "--format", "json"]));
    outputs.push(ws.cli(&["status"]));
    assert!(
        outputs.iter().any(|o| stderr(o).contains("bad request from Bearer ***")),
        "the echoed detail is shown, redacted"
    );
    let db = ws.db();
    assert!(count(&db, "SELECT COUNT(*) FROM operations WHERE error LIKE '%***%'") > 0);
    assert!(count(&db, "SELECT COUNT(*) FROM runs WHERE error LIKE '%***%'") > 0);
    drop(db);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        files.push((format!("run {i} stdout"), o.stdout.clone()));
        files.push((format!("run {i} stderr"), o.stderr.clone()));
    }
    for f in ["scimsync.db", "scimsync.db-wal"] {
        files.push((f.into(), std::fs::read(ws.path(f)).unwrap_or_default()));
    }
    for (name, bytes) in &files {
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token is in {name}");
    }
}

// 4. A token file others can read.

#[cfg(unix)]
#[test]
fn a_token_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 1, "");
    let config = std::fs::read_to_string(ws.path("scimsync.toml")).unwrap();
    std::fs::write(
        ws.path("scimsync.toml"),
        config.replace("token_env = \"IT_TOKEN\"", "token_file = \"token\""),
    )
    .unwrap();
    std::fs::write(ws.path("token"), TOKEN).unwrap();
    std::fs::set_permissions(ws.path("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws.cli(&["pull"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("mode 0644") && stderr(&out).contains("token"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(ws.path("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ws.cli(&["pull"]);
    assert!(!stderr(&out).contains("mode 0"), "{}", stderr(&out));
}

// 5–7. Paging that lies.

fn scim_list(total: u64, users: &[(&str, &str)]) -> String {
    let resources: Vec<Value> = users
        .iter()
        .map(|(id, name)| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": name, "active": true}))
        .collect();
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": total, "startIndex": 1,
           "itemsPerPage": users.len(), "Resources": resources})
    .to_string()
}

#[test]
fn a_total_of_ten_to_the_twelve_fails_the_pull_cleanly() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(
        When::path("/Users"),
        Answer::json(200, scim_list(1_000_000_000_000, &[("a1", "a@x.com")])),
    );
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&app.emulator.base_url)), 1, "");
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("app.wiki") && err.contains("claims 1000000000000"), "{err}");
    let db = ws.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'running'"), 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM runs WHERE source = 'app.wiki' AND status = 'failed'"),
        1
    );
}

#[test]
fn a_scim_server_that_ignores_start_index_stops_the_listing_at_once() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(
        When::path("/Users"),
        Answer::json(200, scim_list(4, &[("a1", "a@x.com"), ("a2", "b@x.com")])),
    );
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&app.emulator.base_url)), 1, "");
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("'a1' came back on a later page"), "{err}");
    let listed = front.seen().iter().filter(|s| s.uri.contains("/Users")).count();
    assert!(listed <= 3, "stopped at once, after {listed} page(s)");
}

#[test]
fn a_listing_over_max_objects_fails_clearly() {
    let mut dir = Directory::default();
    for i in 0..30 {
        dir.add_user(json!({"userName": format!("s{i}@x.com"), "active": true}));
    }
    let app = EmulatorHost::start(dir);
    let ws = workspace(&app.emulator.base_url, 1, "page_size = 10\nmax_objects = 25\n");
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("max_objects (25)"), "{err}");
}

fn okta_user(id: &str) -> Value {
    json!({"id": id, "status": "ACTIVE", "created": "2022-04-04T15:56:05.000Z", "lastUpdated": "2022-05-05T18:15:44.000Z",
           "profile": {"firstName": "C", "lastName": "Y", "login": format!("{id}@x.com"), "email": format!("{id}@x.com")}})
}

#[test]
fn okta_next_links_in_a_cycle_stop_the_pull() {
    let okta = fake(IdpVendor::Okta, 450, 3);
    let front = Hostile::in_front_of(Some(&okta.fake.base_url));
    let page = |id: &str, next: &str| {
        Answer::json(200, json!([okta_user(id)]).to_string())
            .with_header("link", &format!("<{{self}}/api/v1/users?after={next}&limit=200>; rel=\"next\""))
    };
    // The second page (after=…) leads to B, B to C, C back to B.
    front.on(
        When {
            query_contains: Some("after=cycB".into()),
            ..When::path("/api/v1/users")
        },
        page("00cycB", "cycC"),
    );
    front.on(
        When {
            query_contains: Some("after=cycC".into()),
            ..When::path("/api/v1/users")
        },
        page("00cycC", "cycB"),
    );
    front.on(
        When {
            query_contains: Some("after=".into()),
            ..When::path("/api/v1/users")
        },
        page("00cycA", "cycB"),
    );
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"okta\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:9/scim\"\ntoken_env = \"IT_TOKEN\"\nidp_app_id = \"app-1\"\n",
        front.base_url
    ));
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("after=cycB") && err.contains("cycle"), "{err}");
}

#[test]
fn a_graph_next_link_to_the_same_page_stops_the_pull() {
    let entra = fake(IdpVendor::Entra, 20, 2);
    let front = Hostile::in_front_of(Some(&origin(&entra.fake.base_url)));
    let user = json!({"id": "u-loop", "userPrincipalName": "loop@x.com", "accountEnabled": true});
    front.on(
        When::path("/users/delta"),
        Answer::json(
            200,
            json!({"value": [user], "@odata.nextLink": "{self}/v1.0/users/delta?$skiptoken=again"}).to_string(),
        ),
    );
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"entra\"\nbase_url = \"{}/v1.0\"\ntoken_env = \"IT_TOKEN\"\nclient_id = \"client-1\"\ntoken_url = \"{}\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:9/scim\"\ntoken_env = \"IT_TOKEN\"\nidp_app_id = \"app-1\"\n",
        front.base_url, entra.fake.token_url
    ));
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("skiptoken=again") && err.contains("cycle"), "{err}");
}

#[test]
fn jumpcloud_v2_ignoring_skip_stops_the_pull_at_once() {
    let jc = fake(IdpVendor::JumpCloud, 20, 150);
    let front = Hostile::in_front_of(Some(&jc.fake.base_url));
    let groups: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("g{i:05}"), "name": format!("Group {i}"), "type": "user_group"}))
        .collect();
    front.on(When::path("/api/v2/usergroups"), Answer::json(200, Value::from(groups).to_string()));
    let ws = Workspace::new(&format!(
        "[idp.corp]\nkind = \"jumpcloud\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:9/scim\"\ntoken_env = \"IT_TOKEN\"\nidp_app_id = \"app-1\"\n",
        front.base_url
    ));
    let started = Instant::now();
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("'g00000' came back on a later page"), "{err}");
    let pages = front.seen().iter().filter(|s| s.uri.contains("/api/v2/usergroups?")).count();
    assert_eq!(pages, 2, "stopped on the first repeated page");
    assert!(started.elapsed() < Duration::from_secs(30));
}

// 8. The retry budget.

#[test]
fn a_server_that_throttles_forever_spends_the_retry_budget_not_hours() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(When::path("/Users"), Answer::json(429, "{}").with_header("retry-after", "1"));
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&app.emulator.base_url)), 1, "");
    let started = Instant::now();
    let err = fails(&ws.cli(&["--max-retry-wait", "3s", "pull"]));
    assert!(err.contains("retry budget of 3s per request"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let err = fails(&ws.cli(&["--max-retry-wait-per-run", "2s", "pull"]));
    assert!(err.contains("run's retry budget of 2s"), "{err}");
    // The config sets it too.
    let config = std::fs::read_to_string(ws.path("scimsync.toml")).unwrap();
    std::fs::write(ws.path("scimsync.toml"), format!("max_retry_wait = \"2s\"\n{config}")).unwrap();
    let err = fails(&ws.cli(&["pull"]));
    assert!(err.contains("retry budget of 2s per request"), "{err}");
}

// 9. Two writers.

#[test]
fn a_second_writer_is_refused_or_waits_and_nothing_is_sent_twice() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 40, "concurrency = 2\n");
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    app.emulator.set_write_latency(Some(Duration::from_millis(30)));
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(extra)
            .args(["apply", "--yes"])
            .current_dir(ws.dir.path())
            .env("IT_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&ws.db(), "SELECT COUNT(*) FROM operations WHERE status <> 'planned'") == 0 {
        assert!(Instant::now() < deadline, "the first apply made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = spawn(&[]).wait_with_output().unwrap();
    let waiting = spawn(&["--wait"]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(stderr(&second).contains("in use by another scimsync (pid"), "{}", stderr(&second));
    assert_ok(&first.wait_with_output().unwrap());
    let waited = waiting.wait_with_output().unwrap();
    assert_ok(&waited);
    assert!(stdout(&waited).contains("nothing to apply"), "{}", stdout(&waited));
    let twice: Vec<_> = app.emulator.creates().into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "created twice: {twice:?}");
    assert_eq!(app.emulator.creates().len(), 40);
}

#[test]
fn duplicate_app_groups_are_a_finding() {
    let mut dir = Directory::default();
    dir.add_group("Eng", &[]);
    dir.add_group("eng", &[]);
    let app = EmulatorHost::start(dir);
    let ws = workspace(&app.emulator.base_url, 2, "");
    assert_ok(&ws.cli(&["pull"]));
    let out = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let dups = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "group.duplicate")
        .count();
    assert_eq!(dups, 2, "{}", stdout(&out));
    let table = ws.cli(&["plan"]);
    assert!(stdout(&table).contains("group.duplicate (2)"), "{}", stdout(&table));
}

// 10. Lookups verify what they find.

#[test]
fn an_app_that_ignores_the_lookup_filter_does_not_get_its_stranger_linked_or_rewritten() {
    let mut dir = Directory::default();
    let stranger = dir.add_user(json!({"userName": "stranger@x.com", "active": true, "name": {"givenName": "Stra", "familyName": "Nger"}}));
    let app = EmulatorHost::start(dir);
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(
        When {
            method: Some(Method::POST),
            ..When::path("/Users")
        },
        Answer::json(
            409,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness"}"#,
        ),
    );
    // Any filtered search answers the stranger, whatever it asked for.
    let stranger_list = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
        "Resources": [{"id": stranger, "userName": "stranger@x.com", "active": true}]});
    front.on(
        When {
            query_contains: Some("filter=".into()),
            ..When::path("/Users")
        },
        Answer::json(200, stranger_list.to_string()),
    );
    let ws = workspace(
        &format!("{}{}", front.base_url, path_of(&app.emulator.base_url)),
        1,
        "manage_groups = false\n",
    );
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    let out = ws.cli(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("user.conflict"), "{}", stderr(&out));
    let writes: Vec<String> = front
        .seen()
        .iter()
        .filter(|s| matches!(s.method, Method::PATCH | Method::PUT | Method::DELETE))
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert!(writes.is_empty(), "the stranger was written: {writes:?}");
    assert_eq!(
        count(&ws.db(), &format!("SELECT COUNT(*) FROM links WHERE sp_user_id = '{stranger}'")),
        0
    );
    // RFC 3986 on the wire: a filter's spaces are %20, never +.
    let searches: Vec<String> = front
        .seen()
        .iter()
        .filter(|s| s.uri.contains("filter="))
        .map(|s| s.uri.clone())
        .collect();
    assert!(
        !searches.is_empty() && searches.iter().all(|u| u.contains("%20") && !u.contains('+')),
        "{searches:?}"
    );
}

/// A group create answered 409 is looked up by name; an app that refuses the `displayName`
/// filter (400, as some vendors document) is scanned instead of failing the operation (one
/// directory read, `sp::Directory`, for apply's lookups and reconcile's reads).
#[test]
fn a_conflicting_group_is_found_by_a_scan_when_the_app_refuses_the_filter() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(
        When {
            method: Some(Method::POST),
            ..When::path("/Groups")
        },
        Answer::json(
            409,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness"}"#,
        ),
    );
    front.on(
        When {
            query_contains: Some("filter=".into()),
            ..When::path("/Groups")
        },
        Answer::json(
            400,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter"}"#,
        ),
    );
    let ws = workspace(&format!("{}{}", front.base_url, path_of(&app.emulator.base_url)), 1, "");
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan"]));
    // Someone made the group in the app after the pull: the POST meets it.
    let made = app.emulator.with_directory(|d| d.add_group("Eng", &[]));
    assert_ok(&ws.cli(&["apply", "--yes"]));
    assert_eq!(
        count(&ws.db(), &format!("SELECT COUNT(*) FROM group_links WHERE sp_group_id = '{made}'")),
        1,
        "the group the app already had is linked"
    );
    assert!(
        front
            .seen()
            .iter()
            .any(|s| s.method == Method::GET && s.uri.ends_with("/Groups") || s.uri.contains("/Groups?startIndex")),
        "the groups were scanned: {:?}",
        front.seen().iter().map(|s| s.uri.clone()).collect::<Vec<_>>()
    );
}

// 11. Output files.

#[test]
fn output_files_never_replace_the_store_and_need_force_to_replace_anything() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 2, "");
    assert_ok(&ws.cli(&["pull"]));
    let before = std::fs::metadata(ws.store()).unwrap().len();
    for args in [
        vec!["sql", "SELECT 1 AS x", "-o", "scimsync.db", "--force"],
        vec!["sql", "SELECT 1 AS x", "-o", "scimsync.db-wal"],
        vec!["report", "access_review", "-o", "scimsync.toml", "--force"],
        vec!["plan", "--out", "scimsync.db", "--force"],
    ] {
        let err = fails(&ws.cli(&args));
        assert!(err.contains("refusing to write over it"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::metadata(ws.store()).unwrap().len(), before);
    assert_ok(&ws.cli(&["status"]));
    assert_ok(&ws.cli(&["sql", "SELECT 1 AS x", "-o", "out.csv"]));
    let err = fails(&ws.cli(&["sql", "SELECT 2 AS x", "-o", "out.csv"]));
    assert!(err.contains("exists; use --force"), "{err}");
    assert_eq!(std::fs::read_to_string(ws.path("out.csv")).unwrap(), "x\n1\n");
    assert_ok(&ws.cli(&["sql", "SELECT 2 AS x", "-o", "out.csv", "--force"]));
    assert_eq!(std::fs::read_to_string(ws.path("out.csv")).unwrap(), "x\n2\n");
    // A symlink planted at the old temporary name is not written through.
    std::fs::write(ws.path("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(ws.path("victim"), ws.path("new.csv.tmp")).unwrap();
    assert_ok(&ws.cli(&["sql", "SELECT 3 AS x", "-o", "new.csv"]));
    assert_eq!(std::fs::read_to_string(ws.path("victim")).unwrap(), "keep");
    assert_ok(&ws.cli(&["plan", "--out", "plan.json"]));
    let err = fails(&ws.cli(&["plan", "--out", "plan.json"]));
    assert!(err.contains("--force"), "{err}");
}

// 12. A store from a newer scimsync.

#[test]
fn a_newer_store_is_refused_before_anything_in_it_changes() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 2, "");
    assert_ok(&ws.cli(&["pull"]));
    {
        let db = rusqlite::Connection::open(ws.store()).unwrap();
        db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA user_version = 99; DROP VIEW app_access; CREATE VIEW app_access AS SELECT 'from the future' AS x;")
            .unwrap();
    }
    let schema = |ws: &Workspace| rows(&ws.db(), "SELECT type, name, sql FROM sqlite_master ORDER BY name");
    let before = schema(&ws);
    for args in [vec!["plan"], vec!["pull"], vec!["status"], vec!["sql", "SELECT 1"]] {
        let err = fails(&ws.cli(&args));
        assert!(err.contains("schema version 99 is newer"), "{args:?}: {err}");
    }
    assert_eq!(schema(&ws), before, "views were dropped or recreated");
    assert_eq!(count(&ws.db(), "PRAGMA user_version"), 99);
}

// 13. Ids that are URL dot segments.

#[test]
fn an_app_id_that_is_a_dot_segment_is_never_a_request() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    front.on(
        When {
            method: Some(Method::GET),
            query_lacks: Some("filter=".into()),
            ..When::path("/Users")
        },
        Answer::json(
            200,
            scim_list(3, &[("..", "gone1@x.com"), (".", "gone2@x.com"), ("ok-id_1", "gone3@x.com")]),
        ),
    );
    let ws = workspace(
        &format!("{}{}", front.base_url, path_of(&app.emulator.base_url)),
        0,
        "manage_groups = false\n",
    );
    // Three people left (inactive in the IdP); their accounts are matched by userName and
    // are to be deactivated.
    let users: Vec<Value> = (1..=3)
        .map(|i| json!({"id": format!("u{i}"), "username": format!("gone{i}@x.com"), "email": format!("gone{i}@x.com"), "active": false}))
        .collect();
    std::fs::write(
        ws.path("directory.json"),
        json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": ["u1", "u2", "u3"]}]}).to_string(),
    )
    .unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let plan = ws.cli(&["plan"]);
    assert_ok(&plan);
    assert!(stderr(&plan).contains("cannot be addressed in a URL"), "{}", stderr(&plan));
    let _ = ws.cli(&["apply", "--yes"]);
    let writes: Vec<String> = front
        .seen()
        .iter()
        .filter(|s| s.method != Method::GET)
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    // Only the addressable account is deactivated, at its own URL; `-` is not encoded.
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].ends_with("/Users/ok-id_1"), "{writes:?}");
}

/// A hand-edited plan file whose operation names a method that is no SCIM write (it was sent as
/// POST before the vocabulary was typed) is refused whole, naming the field; nothing is sent.
#[test]
fn a_plan_file_with_an_unknown_method_is_refused_naming_the_field() {
    let app = EmulatorHost::start(Directory::default());
    let front = Hostile::in_front_of(Some(&origin(&app.emulator.base_url)));
    let ws = workspace(
        &format!("{}{}", front.base_url, path_of(&app.emulator.base_url)),
        0,
        "manage_groups = false\n",
    );
    std::fs::write(
        ws.path("directory.json"),
        json!({"users": [{"id": "u1", "username": "new@x.com", "email": "new@x.com", "active": true}],
               "groups": [{"id": "g1", "name": "Eng", "members": ["u1"]}]})
        .to_string(),
    )
    .unwrap();
    assert_ok(&ws.cli(&["pull"]));
    assert_ok(&ws.cli(&["plan", "--out", "plan.json"]));
    let mut plan: Value = serde_json::from_str(&std::fs::read_to_string(ws.path("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["operations"][0]["method"], "POST", "{plan}");
    plan["operations"][0]["method"] = json!("GET");
    std::fs::write(ws.path("edited.json"), plan.to_string()).unwrap();
    let before = front.seen().len();
    let out = ws.cli(&["apply", "--yes", "--plan", "edited.json"]);
    let err = fails(&out);
    assert!(
        err.contains("operations[0].method") && err.contains("unknown method 'GET'"),
        "{err}"
    );
    assert_eq!(front.seen().len(), before, "nothing may be sent for a refused plan file");
}

// 14. Runs a killed process left running.

#[test]
fn runs_left_running_by_a_killed_process_are_marked_abandoned_by_the_next_writer() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 1, "");
    assert_ok(&ws.cli(&["pull"]));
    {
        let db = rusqlite::Connection::open(ws.store()).unwrap();
        db.execute(
            "INSERT INTO runs (kind, source, started_at, status) VALUES ('apply', NULL, '2026-01-01T00:00:00.000000Z', 'running')",
            [],
        )
        .unwrap();
    }
    assert_ok(&ws.cli(&["status"]));
    assert_eq!(
        count(&ws.db(), "SELECT COUNT(*) FROM runs WHERE status = 'running'"),
        1,
        "a reader changes nothing"
    );
    assert_ok(&ws.cli(&["plan"]));
    assert_eq!(count(&ws.db(), "SELECT COUNT(*) FROM runs WHERE status = 'running'"), 0);
    assert_eq!(
        count(
            &ws.db(),
            "SELECT COUNT(*) FROM runs WHERE status = 'abandoned' AND error LIKE '%ended without finishing%'"
        ),
        1
    );
}

// 15. Output hygiene.

#[test]
fn escapes_in_directory_data_do_not_reach_the_terminal_and_formulas_do_not_reach_a_spreadsheet() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 0, "");
    let evil = json!({"users": [{"id": "u1", "username": "eve\u{1b}[2J\u{1b}]0;pwned\u{7}@x.com", "email": "eve@x.com",
        "firstname": "=HYPERLINK(\"http://evil\")", "lastname": "E", "active": true}],
        "groups": [{"id": "g1", "name": "Eng", "members": ["u1"]}]});
    std::fs::write(ws.path("directory.json"), evil.to_string()).unwrap();
    assert_ok(&ws.cli(&["pull"]));
    let plan = ws.cli(&["plan"]);
    assert_ok(&plan);
    assert!(stdout(&plan).contains("eve\\u{1b}[2J"), "{}", stdout(&plan));
    let table = ws.cli(&["sql", "SELECT user_name, given_name FROM users", "--format", "table"]);
    assert_ok(&table);
    let csv = ws.cli(&[
        "sql",
        "SELECT given_name FROM users WHERE given_name IS NOT NULL",
        "--format",
        "csv",
    ]);
    let raw = ws.cli(&[
        "sql",
        "SELECT given_name FROM users WHERE given_name IS NOT NULL",
        "--format",
        "csv",
        "--keep-formulas",
    ]);
    let json = ws.cli(&["sql", "SELECT user_name FROM users", "--format", "json"]);
    for o in [&plan, &table] {
        assert!(
            !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
            "raw escape in: {}",
            stdout(o)
        );
    }
    assert!(stdout(&csv).contains("'=HYPERLINK"), "{}", stdout(&csv));
    assert!(
        stdout(&raw).lines().nth(1).unwrap().starts_with("\"=HYPERLINK") || stdout(&raw).contains("\n=HYPERLINK"),
        "{}",
        stdout(&raw)
    );
    assert!(stdout(&json).contains("\\u001b[2J"), "JSON keeps the data: {}", stdout(&json));
}

// 16. A closed stdout and a query that asks for gigabytes.

#[test]
fn a_closed_stdout_is_success_and_a_huge_value_is_a_query_error() {
    let app = EmulatorHost::start(Directory::default());
    let ws = workspace(&app.emulator.base_url, 50, "");
    assert_ok(&ws.cli(&["pull"]));
    for args in [
        vec!["status"],
        vec!["sql", "SELECT * FROM users", "--format", "table"],
        vec!["events"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(&args)
            .current_dir(ws.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| head -0`: the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let out = ws.cli(&["sql", "SELECT length(repeat('x', 2000000000)) AS n"]);
    let err = fails(&out);
    assert!(err.contains("repeat") && err.contains("at most 64 MiB"), "{err}");
    let out = ws.cli(&["sql", "SELECT length(lpad('x', 2000000000)) AS n"]);
    assert!(fails(&out).contains("lpad"));
    assert_ok(&ws.cli(&["sql", "SELECT repeat('ab', 3) AS n"]));
}
