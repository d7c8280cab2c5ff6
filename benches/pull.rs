//! Pull throughput over HTTP from the in-process emulators: a SCIM IdP (the Rust SP emulator
//! serving Users and Groups) with 1 and 4 pages in flight, and the JumpCloud, Okta and
//! Microsoft Graph fakes. Prints users/s and the process's peak RSS (emulator included).
//! Run: `cargo bench --bench pull` (PULL_USERS to change N, default 100000; groups = N/100).
use std::time::Instant;

use scimsync::config::Config;
use scimsync::source::ProgressSink;
use scimsync::store::Store;
use scimsync_emulator::{Directory, Emulator, IdpDirectory, IdpFake, IdpVendor};

const TOKEN: &str = "bench-token";

fn peak_rss_mib() -> f64 {
    scimsync::memory::peak_mib()
}

async fn timed_pull(label: &str, idp_section: &str, users: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("scimsync.toml");
    std::fs::write(&config_path, format!("store = \"scimsync.db\"\n[idp.corp]\n{idp_section}")).unwrap();
    std::env::set_var("BENCH_TOKEN", TOKEN);
    let config = Config::load(&config_path).unwrap();
    let mut store = Store::open(&config.store).unwrap();
    let quiet = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
    let t = Instant::now();
    let outcomes = scimsync::pull::pull(&config, &mut store, None, &quiet).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let counts = outcomes[0].result.as_ref().expect("pull ok");
    assert_eq!(counts.users as usize, users);
    println!(
        "pull/{label:<28} {users} users, {} groups, {} memberships in {secs:.2}s = {:.0} users/s ({} requests counted; peak RSS so far {:.0} MiB)",
        counts.groups,
        counts.memberships,
        users as f64 / secs,
        counts.requests,
        peak_rss_mib()
    );
}

fn main() {
    let users: usize = std::env::var("PULL_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let groups = (users / 100).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The SCIM IdP: the project's SP emulator holding the company.
        let mut d = Directory::default();
        let ids: Vec<String> = (0..users)
            .map(|i| {
                d.add_user(serde_json::json!({"userName": format!("user{i}@example.com"), "active": i % 25 != 24,
                    "name": {"givenName": format!("First{i}"), "familyName": format!("Last{i}")},
                    "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}], "externalId": format!("E{i}")}))
            })
            .collect();
        for g in 0..groups {
            let members: Vec<String> = ids.iter().skip(g).step_by(groups).cloned().collect();
            d.add_group(&format!("Group {g}"), &members);
        }
        let emulator = Emulator::start(d, Some(TOKEN)).await.unwrap();
        for concurrency in [1, 4] {
            let section = format!(
                "kind = \"scim\"\nbase_url = \"{}\"\ntoken_env = \"BENCH_TOKEN\"\npage_size = 1000\nconcurrency = {concurrency}\n",
                emulator.base_url
            );
            timed_pull(&format!("scim emulator, {concurrency} in flight"), &section, users).await;
        }
        drop(emulator);

        for vendor in [IdpVendor::JumpCloud, IdpVendor::Okta, IdpVendor::Entra] {
            let client = (vendor == IdpVendor::Entra).then_some("client-1");
            let fake = IdpFake::start(vendor, IdpDirectory::generate(users, groups), TOKEN, client).await.unwrap();
            let section = match vendor {
                IdpVendor::JumpCloud => format!("kind = \"jumpcloud\"\nbase_url = \"{}\"\ntoken_env = \"BENCH_TOKEN\"\nconcurrency = 4\n", fake.base_url),
                IdpVendor::Okta => format!("kind = \"okta\"\nbase_url = \"{}\"\ntoken_env = \"BENCH_TOKEN\"\nconcurrency = 4\n", fake.base_url),
                IdpVendor::Entra => format!(
                    "kind = \"entra\"\nbase_url = \"{}\"\ntoken_env = \"BENCH_TOKEN\"\nclient_id = \"client-1\"\ntoken_url = \"{}\"\nconcurrency = 4\n",
                    fake.base_url, fake.token_url
                ),
            };
            timed_pull(&format!("{vendor:?} fake"), &section, users).await;
        }
    });
}
