//! The drift engine (scan + correlation + every drift query) over stores made by `scimsync gen`
//! at 10k and 100k users (5 memberships a user, 1 group per 10 users, 1% drift of each kind).
//! `cargo bench --bench drift`. The 1M-user number comes from `benches/plan-1m.sh`.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scimsync::config::Config;
use scimsync::engine::{self, AppInput};
use scimsync::gen::{self, GenSpec};

fn drift(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("drift");
    group.sample_size(10);
    for users in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let spec = GenSpec {
            users,
            groups: users / 10,
            memberships: users * 5,
            drift: 0.01,
            seed: 1,
            mapped: false,
        };
        let (store, _) = gen::write(&spec, dir.path()).unwrap();
        let config = Config::load(&dir.path().join("scimsync.toml")).unwrap();
        let profile = scimsync::profile::Profile::load("generic").unwrap();
        let apps = vec![AppInput {
            config: &config.apps[0],
            idp_source: "idp.corp".into(),
            scope_complete: true,
            profile: &profile,
            mappings: Vec::new(),
        }];
        group.throughput(Throughput::Elements(users as u64));
        group.bench_with_input(BenchmarkId::new("plan", users), &store, |b, store| {
            b.iter(|| rt.block_on(engine::drift(store, &apps)).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, drift);
criterion_main!(benches);
