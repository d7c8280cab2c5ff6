//! Lake queries on an Apache DataFusion Ballista cluster: the same plans, run by a scheduler
//! and its executors instead of this process (feature `cluster`). The executors read the lake's
//! files at the paths the plans name, so they must see the lake at the same path (a shared mount).
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;

fn external(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(e.to_string().into())
}

/// `state` as a cluster plans with it: Ballista's settings, and two of them changed.
///
/// - Without DataFusion's dynamic filters, which a hash join hands to the scan feeding it while
///   both run: on a cluster they are in different stages.
/// - With Ballista's static planner, not its adaptive one (`ballista.planner.adaptive.enabled`,
///   on by default in Ballista 55): the adaptive planner puts an empty plan where a stage produced
///   no rows, and for the outer side of a join it then stages that empty plan again and again, so
///   the query never ends (`report admins` over a store with no admin group, whose aggregated
///   admin memberships are empty: stage ids past 1500 in the scheduler's log within a minute).
///   Its own switch for that rule (`ballista.planner.propagate_empty.enabled`) is not read.
#[cfg(feature = "cluster")]
pub fn for_cluster(state: SessionState) -> Result<SessionState, DataFusionError> {
    use ballista_core::extension::SessionConfigExt;
    let config = state.config().clone().upgrade_for_ballista();
    let mut state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    let options = state.config_mut().options_mut();
    options.set("datafusion.optimizer.enable_dynamic_filter_pushdown", "false")?;
    options.set("ballista.planner.adaptive.enabled", "false")?;
    Ok(state)
}

/// A session whose queries the Ballista scheduler at `url` (`df://host:port`) plans and runs,
/// with `state`'s functions and settings.
#[cfg(feature = "cluster")]
pub async fn remote(url: &str, state: SessionState) -> Result<SessionContext, DataFusionError> {
    use ballista::prelude::SessionContextExt;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    // Ballista connects when the first query runs; a scheduler that is not there is said so
    // now, by its URL, rather than by the address of a failed query.
    let grpc = match url.strip_prefix("df://") {
        Some(address) => format!("http://{address}"),
        None => return Err(external(format!("--cluster {url}: a scheduler's URL is df://host:port"))),
    };
    SchedulerGrpcClient::connect(grpc)
        .await
        .map_err(|e| external(format!("the Ballista cluster at {url} does not answer: {e}")))?;
    SessionContext::remote_with_state(url, for_cluster(state)?)
        .await
        .map_err(|e| external(format!("the Ballista cluster at {url}: {e}")))
}

/// Without the `cluster` feature there is no cluster to run on.
#[cfg(not(feature = "cluster"))]
pub async fn remote(url: &str, _state: SessionState) -> Result<SessionContext, DataFusionError> {
    Err(external(format!(
        "--cluster {url}: this scimsync was built without the `cluster` feature (Ballista); build it with default features"
    )))
}

/// Start a Ballista scheduler and `executors` executors in this process, on loopback ports the
/// system chooses (Ballista's standalone mode), each with `state`'s functions; returns the
/// scheduler's URL. They run until the process ends.
#[cfg(feature = "cluster")]
pub async fn start_standalone(state: &SessionState, executors: usize) -> Result<String, DataFusionError> {
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let state = &for_cluster(state.clone())?;
    let addr = ballista_scheduler::standalone::new_standalone_scheduler_from_state(state)
        .await
        .map_err(external)?;
    let grpc = format!("http://localhost:{}", addr.port());
    for _ in 0..executors {
        let mut tries = 0;
        let scheduler = loop {
            match SchedulerGrpcClient::connect(grpc.clone()).await {
                Ok(s) => break s,
                Err(e) if tries >= 50 => return Err(external(format!("the scheduler at {grpc} did not answer: {e}"))),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        ballista_executor::new_standalone_executor_from_state(scheduler, 1, state)
            .await
            .map_err(external)?;
    }
    Ok(format!("df://localhost:{}", addr.port()))
}

/// Without the `cluster` feature there is no cluster to start.
#[cfg(not(feature = "cluster"))]
pub async fn start_standalone(_state: &SessionState, _executors: usize) -> Result<String, DataFusionError> {
    Err(external(
        "this scimsync was built without the `cluster` feature (Ballista); build it with default features",
    ))
}

#[cfg(all(test, feature = "cluster"))]
mod tests {
    use std::time::Duration;

    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    use super::*;

    /// `accounts` (20,000 rows, every 1,000th an admin by role) and `memberships` (none of them
    /// in a group named like an admin) as Parquet files under `dir`.
    async fn write_tables(dir: &std::path::Path) {
        let local = SessionContext::new();
        let tables = [
            ("accounts", "SELECT 'app.wiki' AS source, CAST(value AS VARCHAR) AS id, CASE WHEN value % 1000 = 0 THEN 'admin' END AS role FROM generate_series(1, 20000)"),
            ("sources", "SELECT 'app.wiki' AS name, 'app' AS role UNION ALL SELECT 'idp.corp', 'idp'"),
            ("memberships", "SELECT 'app.wiki' AS source, CAST(value AS VARCHAR) AS user_id, 'Staff' AS group_name FROM generate_series(1, 20000)"),
        ];
        for (name, sql) in tables {
            let path = dir.join(name).join("part.parquet");
            let df = local.sql(sql).await.unwrap();
            df.write_parquet(
                path.to_str().unwrap(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .unwrap();
        }
    }

    /// The shape of `report admins` over a store without admin groups: accounts left-joined to
    /// an aggregate with no rows, kept by an OR over both sides.
    const ADMINS: &str = "WITH admin_members AS (
            SELECT source, user_id, count(*) AS n FROM memberships WHERE group_name LIKE '%admin%' GROUP BY source, user_id)
        SELECT a.id, a.role, m.n FROM accounts a JOIN sources s ON s.name = a.source AND s.role = 'app'
        LEFT JOIN admin_members m ON m.source = a.source AND m.user_id = a.id
        WHERE a.role = 'admin' OR m.user_id IS NOT NULL ORDER BY a.id";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outer_join_to_an_empty_aggregate_finishes_on_a_cluster_of_two_executors() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let state = SessionContext::new().state();
        let url = start_standalone(&state, 2).await.unwrap();
        let ctx = remote(&url, state).await.unwrap();
        for name in ["accounts", "sources", "memberships"] {
            let path = dir.path().join(name);
            ctx.register_parquet(name, path.to_str().unwrap(), ParquetReadOptions::default())
                .await
                .unwrap();
        }
        // Ballista 55's adaptive planner never finished this (its empty stage planned again and
        // again); the static planner answers in well under a second.
        let rows = tokio::time::timeout(Duration::from_secs(60), async { ctx.sql(ADMINS).await?.collect().await })
            .await
            .expect("the query on the cluster did not finish in 60 s")
            .unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 20);
    }
}
