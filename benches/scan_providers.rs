//! datafusion-table-providers' SQLite provider against the engine's own SQLite→Arrow scan, on
//! the same store and the same join (users × memberships, run in DataFusion):
//!   cargo bench --features dtp-eval --bench scan_providers -- STORE.db
//! Prints wall times of three runs of each (not criterion: each run reads the whole store).
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_table_providers_common::sql::db_connection_pool::Mode;
use datafusion_table_providers_sqlite::pool::SqliteConnectionPoolFactory;
use datafusion_table_providers_sqlite::SqliteTableFactory;

// `active` is Boolean in the engine's scan and Int64 as the provider infers it from SQLite: cast for both.
const NARROW: &str = "SELECT COUNT(*) FROM member_keys m JOIN users u ON u.uid = m.uid WHERE CAST(u.active AS BIGINT) <> 0";
/// The same join reading every user column the drift queries read (the engine's scan always does).
const WIDE: &str = "SELECT COUNT(*), SUM(length(concat(u.source, u.id, u.user_name, u.external_id, u.email, u.given_name, u.family_name, \
    u.formatted, u.display_name, u.title, u.phone, u.timezone, u.role))) FROM member_keys m JOIN users u ON u.uid = m.uid WHERE CAST(u.active AS BIGINT) <> 0";

async fn own(store: &str, query: &str) -> (f64, f64) {
    let t = Instant::now();
    let ctx = scimsync::engine::session();
    let conn = rusqlite::Connection::open(store).unwrap();
    let max_uid: i64 = conn.query_row("SELECT MAX(uid) FROM users", [], |r| r.get(0)).unwrap();
    let tables: Vec<_> = scimsync::engine::scan::drift_tables(max_uid, 0)
        .into_iter()
        .filter(|t| matches!(t.name, "users" | "memberships"))
        .collect();
    let batches = scimsync::engine::scan::scan_all(std::path::Path::new(store), &tables, 2).unwrap();
    let (mut users, mut members) = (Vec::new(), Vec::new());
    for (t, b) in tables.iter().zip(batches) {
        if t.name == "users" {
            users.extend(b)
        } else {
            members.extend(b)
        }
    }
    scimsync::engine::register(&ctx, "users", users).unwrap();
    scimsync::engine::register(&ctx, "memberships", members).unwrap();
    let scanned = t.elapsed().as_secs_f64();
    ctx.sql(query).await.unwrap().collect().await.unwrap();
    (scanned, t.elapsed().as_secs_f64())
}

async fn provider(store: &str, query: &str) -> f64 {
    let t = Instant::now();
    let pool = SqliteConnectionPoolFactory::new(store, Mode::File, Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let factory = SqliteTableFactory::new(Arc::new(pool));
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    for name in ["users", "memberships"] {
        ctx.register_table(name, factory.table_provider(name.into()).await.unwrap())
            .unwrap();
    }
    ctx.sql(query).await.unwrap().collect().await.unwrap();
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = std::env::args()
        .skip(1)
        .find(|a| a.ends_with(".db"))
        .expect("usage: scan_providers STORE.db");
    for (label, query) in [("narrow (uid, active)", NARROW), ("wide (every user column)", WIDE)] {
        for run in 1..=3 {
            let (scan, total) = own(&store, query).await;
            let dtp = provider(&store, query).await;
            println!("{label} run {run}: own scan {scan:.2} s, with the join {total:.2} s | datafusion-table-providers (scan during the join) {dtp:.2} s");
        }
    }
}
