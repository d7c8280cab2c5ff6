//! The README's JumpCloud + Quip walkthrough, run as written: its config block (with only the
//! two URLs pointed at the project's JumpCloud fake and Quip emulator) and every command of its
//! commands block, in order.
use scimsync_emulator::{Directory, IdpDirectory, IdpFake, IdpVendor, Vendor};
use serde_json::json;

use crate::support::*;

/// The fenced block after `<!-- walkthrough:NAME -->`.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- walkthrough:{name} -->");
    let after = &readme[readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}")) + marker.len()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

/// Quip before scimsync: accounts for most of the people in Quip's groups (users 0–29 of the
/// fake company whose group i mod 4 or 3i mod 4 is bound), one of them deactivated by hand
/// (user1), the account of someone JumpCloud suspended (user24), and a contractor nobody put in
/// JumpCloud.
fn quip_accounts() -> Directory {
    let mut d = Directory::default();
    let in_scope = |i: usize| i % 4 != 2;
    for i in (0..30).filter(|&i| in_scope(i)) {
        let user_name = format!("user{i}@example.com");
        d.add_user(
            json!({"userName": user_name, "active": i != 1, "name": {"givenName": format!("First{i}"), "familyName": format!("Last{i}")},
                          "emails": [{"value": user_name, "type": "work", "primary": true}]}),
        );
    }
    d.add_user(
        json!({"userName": "contractor@example.com", "active": true, "name": {"givenName": "Casey", "familyName": "Contractor"},
                      "emails": [{"value": "contractor@example.com", "type": "work", "primary": true}]}),
    );
    d
}

#[test]
fn the_jumpcloud_and_quip_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let config = block(&readme, "config");
    let commands = block(&readme, "commands");
    let app_id = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("idp_app_id = \""))
        .and_then(|r| r.split('"').next())
        .expect("the walkthrough config names idp_app_id")
        .to_string();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut company = IdpDirectory::generate(60, 4);
    company.bind(&app_id, "g00000");
    company.bind(&app_id, "g00001");
    let jumpcloud = rt.block_on(IdpFake::start(IdpVendor::JumpCloud, company, TOKEN, None)).unwrap();
    let quip = EmulatorHost::start_as(quip_accounts(), Vendor::Quip, false);

    let config = config
        .replace("https://console.jumpcloud.com", &jumpcloud.base_url)
        .replace("https://acme.quip.com/business/admin/scim", &quip.emulator.base_url);
    assert!(
        config.contains(&jumpcloud.base_url) && config.contains(&quip.emulator.base_url),
        "the URLs were replaced"
    );
    let ws = Workspace::new(&config);

    let mut ran = 0;
    for line in commands.lines() {
        let command = line.split(" # ").next().unwrap().trim();
        if command.is_empty() {
            continue;
        }
        let args = words(command);
        assert_eq!(args[0], "scimsync", "every walkthrough line is a scimsync command: {line}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(&args[1..])
            .current_dir(ws.dir.path())
            .env("JC_API_KEY", TOKEN)
            .env("QUIP_SCIM_TOKEN", TOKEN)
            .env("SCIMSYNC_RETRY_BASE_MS", "5")
            .env_remove("SCIMSYNC_LOG")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "`{command}` failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        if command == "scimsync plan" {
            assert!(
                text.contains("user.missing") && text.contains("user.reactivate") && text.contains("user.orphaned"),
                "{text}"
            );
        }
        if command.starts_with("scimsync import") {
            assert!(
                text.lines().any(|l| l.contains("New") && l.contains("contractor@example.com")),
                "{text}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 8, "ran {ran} commands");
    // Quip ends with exactly the in-scope JumpCloud users active (and the contractor untouched).
    let in_scope = jumpcloud.with_directory(|d| {
        let bound = &d.apps[&app_id];
        d.users
            .values()
            .filter(|u| u.active && bound.iter().any(|g| d.groups[g].members.contains(&u.id)))
            .count()
    });
    let active_quip = quip.emulator.with_directory(|d| {
        d.users
            .values()
            .filter(|u| u["active"] == json!(true) && u["userName"] != json!("contractor@example.com"))
            .count()
    });
    assert_eq!(active_quip, in_scope);

    // The Auditor SQL section's commands, on this store.
    std::fs::write(
        ws.path("quarterly.sql"),
        "SELECT app, COUNT(*) AS accounts FROM app_access GROUP BY app",
    )
    .unwrap();
    let auditor = block(&readme, "auditor");
    let mut ran = 0;
    for line in auditor.lines() {
        let command = line.split(" # ").next().unwrap().trim();
        if command.is_empty() {
            continue;
        }
        let args = words(command);
        assert_eq!(args[0], "scimsync", "{line}");
        let out = ws.cli(&args[1..].iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            out.status.code(),
            Some(0),
            "`{command}` failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        ran += 1;
    }
    assert!(ran >= 7, "ran {ran} auditor commands");
    assert!(std::fs::read_to_string(ws.path("q3.csv")).unwrap().contains("quip"));
    assert!(std::fs::read_to_string(ws.path("audit.html")).unwrap().contains("<svg"));

    // The other-tools block's sqlite3 query, through SQLite itself: the contractor is unlinked.
    let sqlite_line = block(&readme, "other-tools")
        .lines()
        .find(|l| l.starts_with("sqlite3 scimsync.db"))
        .unwrap()
        .to_string();
    let query = sqlite_line.split('"').nth(1).unwrap();
    let found = rows(&ws.db(), query);
    assert_eq!(
        found,
        vec![vec!["quip".to_string(), "contractor@example.com".to_string(), "NULL".to_string()]]
    );
}

/// Split a command line into words, keeping "double-quoted" words whole (what the README uses).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
