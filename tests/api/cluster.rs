//! Three real nodes on loopback sharing one database, as one service: a
//! node that dies is taken over within two seconds (its jobs ended once),
//! a paused one keeps its jobs, one cut off is fenced out when it returns,
//! clocks minutes apart change nothing (`leases`); a stop sent to the wrong
//! node takes effect within milliseconds and files are read through any
//! node (`routing`); starts beyond a node's capacity are placed on the
//! others and processing is shared over shared storage (`placement`).
//! Figures are printed (`-- --nocapture`), for BENCHMARKS.md.

mod leases;
mod placement;
mod routing;

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{AppOptions, Backend, TestApp};

/// A node named `name` of a cluster, with more flags (its database is
/// given by [`three_nodes`]).
fn node(name: &str, extra: &[&str]) -> AppOptions {
    let mut extra_args = vec!["--node-id".to_owned(), name.to_owned()];
    extra_args.extend(extra.iter().map(|a| (*a).to_owned()));
    AppOptions {
        extra_args,
        ..Default::default()
    }
}

/// Three nodes, `node-a`, `node-b`, `node-c`, each with `options(name)`,
/// on one database (the first node's).
async fn three_nodes(backend: Backend, options: impl Fn(&str) -> AppOptions) -> [TestApp; 3] {
    let a = TestApp::spawn_with(backend.clone(), options("node-a")).await;
    let shared = |name: &str| {
        let mut o = options(name);
        o.database_url = Some(a.database_url.clone());
        o
    };
    let b = TestApp::spawn_with(backend.clone(), shared("node-b")).await;
    let c = TestApp::spawn_with(backend, shared("node-c")).await;
    [a, b, c]
}

/// The recorder PID of a job.
async fn pid_of(app: &TestApp, job_id: i64) -> i32 {
    app.job(job_id).await["process_id"]
        .as_i64()
        .expect("process id") as i32
}

/// The `p`-th percentile (0–100) of `sorted`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

/// One number from the test database.
async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = app.db().await;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

/// How many `kind` events the database holds for job `job_id`, whichever
/// node wrote them (`node`: only that node's).
async fn events_of_job(app: &TestApp, kind: &str, job_id: i64, node: Option<&str>) -> i64 {
    let by = node
        .map(|n| format!(" AND node = '{n}'"))
        .unwrap_or_default();
    count(
        app,
        &format!(
            "SELECT COUNT(*) FROM events WHERE kind = '{kind}' \
             AND payload LIKE '{{\"id\":{job_id},%'{by}"
        ),
    )
    .await
}
