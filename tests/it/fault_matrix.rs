//! The fault matrix: each fault injected into a pull and into an apply against the project's
//! emulator, with the outcome each must have. A pull either succeeds with exactly the source's
//! data or fails naming the source and keeps the previous snapshot — and a failed pull never
//! lets a plan deactivate anyone. An apply either completes or fails operations cleanly, and a
//! second apply finishes the job without creating anything twice; every operation is journaled
//! before and after. Run with `--nocapture` to print the matrix.
use axum::http::Method;
use scimsync_emulator::{Directory, Fault};
use serde_json::{json, Value};

use crate::support::*;

const USERS: usize = 1200;
const PAGE: usize = 500;
const REMOVED: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Ok,
    Fails,
}

struct Case {
    name: &'static str,
    fault: Fault,
    expect: Expect,
}

/// The response size cap the matrix's pulls run with (the default is 64 MiB): 8 MiB, so that
/// one case can exceed it without a huge body.
const MAX_BODY: &str = "8388608";

fn fault(status: u16) -> Fault {
    Fault {
        method: Some(Method::GET),
        path_suffix: Some("/Users".into()),
        start_index: Some(PAGE as u64 + 1),
        status,
        ..Default::default()
    }
}

fn once(mut f: Fault) -> Fault {
    f.times = Some(1);
    f
}

fn list_page(total: usize, resources: Value) -> String {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": total, "itemsPerPage": PAGE,
           "startIndex": PAGE + 1, "Resources": resources})
    .to_string()
}

fn pull_cases() -> Vec<Case> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let with = |status: u16, body: String| Fault {
        body: Some(body),
        ..fault(status)
    };
    vec![
        Case {
            name: "429, Retry-After seconds",
            fault: once(Fault {
                retry_after: Some("0".into()),
                ..fault(429)
            }),
            expect: Expect::Ok,
        },
        Case {
            name: "429, Retry-After HTTP date",
            fault: once(Fault {
                retry_after: Some(date),
                ..fault(429)
            }),
            expect: Expect::Ok,
        },
        Case {
            name: "500 once (not retried)",
            fault: once(fault(500)),
            expect: Expect::Fails,
        },
        Case {
            name: "502 once",
            fault: once(fault(502)),
            expect: Expect::Ok,
        },
        Case {
            name: "503 once",
            fault: once(fault(503)),
            expect: Expect::Ok,
        },
        Case {
            name: "504 once",
            fault: once(fault(504)),
            expect: Expect::Ok,
        },
        Case {
            name: "connection reset once",
            fault: once(Fault {
                drop_connection: true,
                ..fault(0)
            }),
            expect: Expect::Ok,
        },
        Case {
            name: "503 every time",
            fault: fault(503),
            expect: Expect::Fails,
        },
        Case {
            name: "timeout once (answer after 2.5 s)",
            fault: once(Fault {
                delay: Some(std::time::Duration::from_millis(2500)),
                ..fault(0)
            }),
            expect: Expect::Ok,
        },
        Case {
            name: "timeout every time",
            fault: Fault {
                delay: Some(std::time::Duration::from_millis(2500)),
                ..fault(0)
            },
            expect: Expect::Fails,
        },
        Case {
            name: "malformed JSON (200)",
            fault: with(200, "{\"Resources\": [".into()),
            expect: Expect::Fails,
        },
        Case {
            name: "empty 200 body",
            fault: with(200, String::new()),
            expect: Expect::Fails,
        },
        Case {
            name: "6 MB body of junk (200)",
            fault: with(200, " ".repeat(6 * 1024 * 1024) + "x"),
            expect: Expect::Fails,
        },
        Case {
            name: "10 MB body, over the 8 MiB cap",
            fault: with(200, list_page(USERS - REMOVED, json!([{"id": "x".repeat(10 * 1024 * 1024)}]))),
            expect: Expect::Fails,
        },
        Case {
            name: "a resource without id",
            fault: with(200, list_page(USERS - REMOVED, json!([{"userName": "ghost"}]))),
            expect: Expect::Fails,
        },
        Case {
            name: "totalResults changes mid-scan",
            fault: with(200, list_page(USERS - REMOVED + 100, json!([]))),
            expect: Expect::Fails,
        },
        Case {
            // Pages are parsed as they arrive; the rescan must start from nothing (a user of
            // the short page kept would make one user too many).
            name: "one uneven page (1 resource): rescanned page by page",
            fault: once(with(
                200,
                list_page(
                    USERS - REMOVED,
                    json!([{"id": "from-the-short-page", "userName": "short@example.com"}]),
                ),
            )),
            expect: Expect::Ok,
        },
        Case {
            name: "a page shorter than promised",
            fault: with(200, list_page(USERS - REMOVED, json!([]))),
            expect: Expect::Fails,
        },
    ]
}

fn idp_directory() -> Directory {
    let mut d = Directory::default();
    let ids: Vec<String> = (0..USERS)
        .map(|i| {
            d.add_user(
                json!({"userName": format!("u{i:04}@example.com"), "active": true, "externalId": format!("E{i}"),
                              "emails": [{"value": format!("u{i:04}@example.com"), "type": "work", "primary": true}]}),
            )
        })
        .collect();
    d.add_group("Staff", &ids);
    d
}

fn orphaned(ws: &Workspace) -> usize {
    let out = ws.cli(&["plan", "--format", "json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "user.orphaned")
        .count()
}

#[test]
fn pull_fault_matrix() {
    let mut table = vec![format!("{:<34} {:<8} outcome", "fault on page 2 of IdP /Users", "expected")];
    for case in pull_cases() {
        let idp = EmulatorHost::start(idp_directory());
        let app = EmulatorHost::start(Directory::default());
        let ws = Workspace::new(&format!(
            "[idp.corp]\nkind = \"scim\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\npage_size = {PAGE}\nconcurrency = 2\n\n\
             [app.tool]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Staff\"]\nmax_deactivations = \"100%\"\n",
            idp.emulator.base_url, app.emulator.base_url
        ));
        assert_ok(&ws.cli(&["pull"]));
        assert_ok(&ws.cli(&["plan"]));
        assert_ok(&ws.cli(&["apply", "--yes"]));
        assert_ok(&ws.cli(&["pull"]));
        assert_eq!(orphaned(&ws), 0, "{}: in sync before the fault", case.name);

        // 200 people leave: a pull that lost a page would look just like that.
        idp.emulator.with_directory(|d| {
            let gone: Vec<String> = d.users.keys().take(REMOVED).cloned().collect();
            for id in gone {
                d.remove("Users", &id);
            }
        });
        let before = rows(
            &ws.db(),
            "SELECT id, raw, valid_from FROM users WHERE source = 'idp.corp' ORDER BY uid",
        );
        idp.emulator.add_fault(case.fault);
        // A 2 s request timeout (the default is 60 s) so that the timeout cases stay short.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .arg("pull")
            .current_dir(ws.dir.path())
            .env("IT_TOKEN", TOKEN)
            .env("SCIMSYNC_RETRY_BASE_MS", "5")
            .env("SCIMSYNC_HTTP_TIMEOUT_MS", "2000")
            .env("SCIMSYNC_MAX_BODY_BYTES", MAX_BODY)
            .env_remove("SCIMSYNC_LOG")
            .output()
            .unwrap();
        let stored = count(&ws.db(), "SELECT count(*) FROM users WHERE source = 'idp.corp'") as usize;
        let outcome = match out.status.code() {
            Some(0) => {
                assert_eq!(
                    stored,
                    USERS - REMOVED,
                    "{}: a successful pull holds exactly the source's users",
                    case.name
                );
                assert_eq!(orphaned(&ws), REMOVED, "{}: the leavers are planned for deactivation", case.name);
                Expect::Ok
            }
            Some(1) => {
                let err = stderr(&out);
                assert!(err.contains("idp.corp") && err.contains("/Users"), "{}: {err}", case.name);
                assert_eq!(
                    rows(
                        &ws.db(),
                        "SELECT id, raw, valid_from FROM users WHERE source = 'idp.corp' ORDER BY uid"
                    ),
                    before,
                    "{}: the previous snapshot is kept",
                    case.name
                );
                assert_eq!(orphaned(&ws), 0, "{}: a failed pull never leads to deactivations", case.name);
                Expect::Fails
            }
            other => panic!("{}: exit {other:?}: {}", case.name, stderr(&out)),
        };
        assert_eq!(outcome, case.expect, "{}: {}", case.name, stderr(&out));
        let first_error = stderr(&out)
            .lines()
            .find(|l| l.contains("idp.corp"))
            .unwrap_or("")
            .chars()
            .take(110)
            .collect::<String>();
        table.push(format!(
            "{:<34} {:<8} {}",
            case.name,
            format!("{:?}", case.expect),
            if outcome == Expect::Ok {
                "ok, exact".to_string()
            } else {
                format!("failed cleanly: {first_error}")
            }
        ));
    }
    eprintln!("{}", table.join("\n"));
}

/// Apply: faults on writes. Every case ends, after at most one more `apply`, with the app in
/// the planned state, nothing created twice and every operation journaled.
#[test]
fn apply_fault_matrix() {
    let write = |method: Method, path: &str, status: u16| Fault {
        method: Some(method),
        path_suffix: Some(path.into()),
        status,
        times: Some(1),
        ..Default::default()
    };
    let cases: Vec<(&str, Fault, bool)> = vec![
        (
            "429 on a create, Retry-After 0",
            Fault {
                retry_after: Some("0".into()),
                ..write(Method::POST, "/Users", 429)
            },
            false,
        ),
        ("500 on a create", write(Method::POST, "/Users", 500), true),
        ("502 on a create", write(Method::POST, "/Users", 502), true),
        ("503 on a create", write(Method::POST, "/Users", 503), false),
        ("504 on a create", write(Method::POST, "/Users", 504), true),
        ("409 on a create (nothing there)", write(Method::POST, "/Users", 409), true),
        (
            "connection reset on a create",
            Fault {
                drop_connection: true,
                ..write(Method::POST, "/Users", 0)
            },
            false,
        ),
        (
            "malformed JSON answer to a create",
            Fault {
                body: Some("{\"id\": ".into()),
                ..write(Method::POST, "/Users", 201)
            },
            true,
        ),
        (
            "empty 201 answer to a create",
            Fault {
                body: Some(String::new()),
                ..write(Method::POST, "/Users", 201)
            },
            true,
        ),
        ("500 on a group create", write(Method::POST, "/Groups", 500), true),
    ];
    let mut table = vec![format!("{:<36} first apply / second apply", "fault")];
    for (name, f, may_fail) in cases {
        let host = EmulatorHost::start(Directory::default());
        let ws = Workspace::new(&format!(
            "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nconcurrency = 2\n",
            host.emulator.base_url
        ));
        let users: Vec<Value> = (0..30)
            .map(
                |i| json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"), "active": true}),
            )
            .collect();
        let members: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
        std::fs::write(
            ws.path("directory.json"),
            json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]}).to_string(),
        )
        .unwrap();
        assert_ok(&ws.cli(&["pull"]));
        assert_ok(&ws.cli(&["plan"]));
        host.emulator.add_fault(f);
        let first = ws.cli(&["apply", "--yes"]);
        let first_code = first.status.code();
        assert!(matches!(first_code, Some(0) | Some(1)), "{name}: {}", stderr(&first));
        if first_code == Some(1) {
            assert!(may_fail, "{name}: this fault must be absorbed by retries: {}", stderr(&first));
        }
        let second = ws.cli(&["apply", "--yes"]);
        assert_ok(&second);
        let db = ws.db();
        assert_eq!(
            count(&db, "SELECT count(*) FROM operations WHERE status != 'done'"),
            0,
            "{name}: every operation done"
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM operations WHERE started_at IS NULL OR finished_at IS NULL OR attempts < 1"
            ),
            0,
            "{name}: every operation journaled before and after"
        );
        let state = || {
            host.emulator.with_directory(|d| {
                let group = d.groups.values().next().cloned().unwrap_or(Value::Null);
                (d.users.len(), group["members"].as_array().map_or(0, |m| m.len()))
            })
        };
        let (accounts, in_group) = state();
        assert_eq!(accounts, 30, "{name}: every account exists after the second apply");
        // A group created while one of its members' creation had failed leaves that member out
        // (the journal says so); the next cycle adds it.
        let cycles = if in_group < 30 {
            assert_ok(&ws.cli(&["reconcile"]));
            "ok after one more cycle (a member left out of the group create)"
        } else {
            "ok"
        };
        assert_eq!(state(), (30, 30), "{name}: the app converges");
        assert!(
            host.emulator.creates().values().all(|&n| n <= 2),
            "{name}: {:?}",
            host.emulator.creates()
        );
        let names: std::collections::HashSet<String> = host
            .emulator
            .with_directory(|d| d.users.values().map(|u| u["userName"].as_str().unwrap().to_string()).collect());
        assert_eq!(names.len(), 30, "{name}: no account twice");
        table.push(format!(
            "{name:<36} {} / {cycles}",
            if first_code == Some(0) {
                "ok".to_string()
            } else {
                "failed cleanly (exit 1)".to_string()
            }
        ));
    }
    eprintln!("{}", table.join("\n"));
}

/// Apply faults on changes to existing accounts: 30 accounts in sync, then 5 leave (deactivation
/// PATCHes) and 5 change title (update PATCHes).
#[test]
fn apply_fault_matrix_on_updates_and_deactivations() {
    let patch = |status: u16| Fault {
        method: Some(Method::PATCH),
        path_suffix: None,
        status,
        times: Some(1),
        ..Default::default()
    };
    let cases: Vec<(&str, Fault)> = vec![
        ("412 on a PATCH (re-read, If-Match)", patch(412)),
        ("404 on a PATCH", patch(404)),
        ("500 on a PATCH", patch(500)),
        ("503 on a PATCH", patch(503)),
        (
            "connection reset on a PATCH",
            Fault {
                drop_connection: true,
                ..patch(0)
            },
        ),
    ];
    let mut table = vec![format!("{:<36} first apply / outcome", "fault")];
    for (name, f) in cases {
        let host = EmulatorHost::start(Directory::default());
        let ws = Workspace::new(&format!(
            "[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.wiki]\nidp = \"corp\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Eng\"]\nmax_deactivations = \"50%\"\n",
            host.emulator.base_url
        ));
        let write_dir = |changed: bool| {
            let users: Vec<Value> = (0..30)
                .map(|i| {
                    json!({"id": format!("u{i}"), "username": format!("user{i}@x.com"), "email": format!("user{i}@x.com"),
                           "active": !(changed && i < 5), "jobTitle": if changed && (5..10).contains(&i) { "Director" } else { "Engineer" }})
                })
                .collect();
            let members: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
            std::fs::write(
                ws.path("directory.json"),
                json!({"users": users, "groups": [{"id": "g1", "name": "Eng", "members": members}]}).to_string(),
            )
            .unwrap();
        };
        write_dir(false);
        for step in [&["pull"][..], &["plan"], &["apply", "--yes"], &["pull"]] {
            assert_ok(&ws.cli(step));
        }
        write_dir(true);
        assert_ok(&ws.cli(&["pull"]));
        assert_ok(&ws.cli(&["plan"]));
        host.emulator.add_fault(f);
        let first = ws.cli(&["apply", "--yes"]);
        assert!(matches!(first.status.code(), Some(0) | Some(1)), "{name}: {}", stderr(&first));
        let journaled = count(
            &ws.db(),
            "SELECT count(*) FROM operations WHERE started_at IS NULL OR finished_at IS NULL",
        );
        assert_eq!(journaled, 0, "{name}: every operation journaled before and after");
        // Whatever the first apply made of the fault, the cycle converges: reconcile until the
        // plan is empty (at most two more cycles).
        let mut cycles = 0;
        loop {
            assert_ok(&ws.cli(&["pull"]));
            let plan = ws.cli(&["plan", "--detailed-exitcode"]);
            if plan.status.code() == Some(0) {
                break;
            }
            assert_eq!(plan.status.code(), Some(2), "{name}: {}", stderr(&plan));
            cycles += 1;
            assert!(cycles <= 2, "{name}: no convergence");
            assert_ok(&ws.cli(&["reconcile"]));
        }
        let (inactive, directors) = host.emulator.with_directory(|d| {
            (
                d.users.values().filter(|u| u["active"] == json!(false)).count(),
                d.users.values().filter(|u| u["title"] == json!("Director")).count(),
            )
        });
        assert_eq!((inactive, directors), (5, 5), "{name}: the app converges");
        table.push(format!(
            "{name:<36} {} / {}",
            if first.status.code() == Some(0) {
                "ok"
            } else {
                "failed cleanly (exit 1)"
            },
            if cycles == 0 {
                "in sync".to_string()
            } else {
                format!("in sync after {cycles} more cycle(s)")
            }
        ));
    }
    eprintln!("{}", table.join("\n"));
}
