//! Apply throughput against the in-process emulator: N users to create and one group holding
//! them, applied at concurrency 1 and 16 (journal writes included). Prints ops/s.
//! Run: `cargo bench --bench apply` (APPLY_USERS to change N, default 5000).
use std::time::Instant;

use scimsync::apply::{apply, ApplyOptions};
use scimsync::config::Config;
use scimsync::source::ProgressSink;
use scimsync::store::Store;
use scimsync_emulator::{Directory, Emulator};

fn main() {
    let n: usize = std::env::var("APPLY_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    for concurrency in [1usize, 16] {
        let dir = tempfile::tempdir().unwrap();
        let company = scimsync_emulator::sample::Company::generate(n, 0, 1);
        std::fs::write(dir.path().join("directory.json"), company.to_file_json(0, 1)).unwrap();
        rt.block_on(async {
            let emulator = Emulator::start(Directory::default(), None).await.unwrap();
            let groups: Vec<String> = scimsync_emulator::sample::DEPARTMENTS.iter().map(|d| format!("\"{d}\"")).collect();
            let config_path = dir.path().join("scimsync.toml");
            std::fs::write(
                &config_path,
                format!(
                    "store = \"scimsync.db\"\n[idp.corp]\nkind = \"file\"\npath = \"directory.json\"\n\n[app.bench]\nidp = \"corp\"\nbase_url = \"{}\"\ngroups = [{}]\nconcurrency = {concurrency}\n",
                    emulator.base_url,
                    groups.join(", ")
                ),
            )
            .unwrap();
            let config = Config::load(&config_path).unwrap();
            let mut store = Store::open(&config.store).unwrap();
            let quiet = |_: &str| -> ProgressSink { Box::new(|_: &str, _, _| {}) };
            scimsync::pull::pull(&config, &mut store, None, &quiet).await.unwrap();
            let plan = scimsync::plan::plan(&config, &mut store, None).await.unwrap();
            let ops = plan.operations.len();
            let opts = ApplyOptions {
                app: None,
                concurrency: Some(concurrency),
                max_deactivations: None,
                force: true,
        stop: None,
            };
            let t = Instant::now();
            let report = apply(&config, Store::open(&config.store).unwrap(), plan.run_id, &opts).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(report.failed(), 0);
            println!(
                "apply/emulator concurrency {concurrency:>2}: {ops} operations in {secs:.2}s = {:.0} ops/s",
                ops as f64 / secs
            );
        });
    }
}
