//! Ingest: a parsed snapshot written into a fresh store (cold) and written again unchanged.
//! `cargo bench --bench ingest`. For the 1,000,000-user end-to-end number use
//! `benches/ingest-1m.sh`, which times the real `scimsync pull` of a `file` source.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scimsync::source::file::parse_document;
use scimsync::store::{SourceInfo, Store};
use scimsync_emulator::sample::Company;

fn info() -> SourceInfo {
    SourceInfo {
        name: "idp.bench".into(),
        role: "idp",
        kind: "file".into(),
        profile: None,
        base_url: None,
    }
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    for users in [10_000usize, 100_000] {
        let doc = Company::generate(users, users / 100, 1).to_file_json(20, 1);
        let snap = parse_document(&doc).unwrap();
        group.throughput(Throughput::Elements(users as u64));
        group.bench_with_input(BenchmarkId::new("parse_file", users), &doc, |b, doc| {
            b.iter(|| parse_document(doc).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("cold", users), &snap, |b, snap| {
            b.iter_with_setup(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let store = Store::open(&dir.path().join("s.db")).unwrap();
                    (dir, store)
                },
                |(dir, mut store)| {
                    let run = store.start_run("pull", Some("idp.bench")).unwrap();
                    store.write_snapshot(&info(), run, snap).unwrap();
                    drop(store);
                    drop(dir);
                },
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let run = store.start_run("pull", Some("idp.bench")).unwrap();
        store.write_snapshot(&info(), run, &snap).unwrap();
        group.bench_with_input(BenchmarkId::new("unchanged", users), &snap, |b, snap| {
            b.iter(|| {
                let run = store.start_run("pull", Some("idp.bench")).unwrap();
                store.write_snapshot(&info(), run, snap).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
