//! The queries that run while recorders run (`active` and reconciliation,
//! the job list's first page, a node's own jobs, the jobs a node lost, the
//! claim of jobs from before nodes) must not read the history of ended
//! jobs: each is planned by the database (`EXPLAIN QUERY PLAN` on SQLite,
//! `EXPLAIN` on PostgreSQL) and must search `recording_jobs` through an
//! index bound by the columns that keep it small, never scan the table.

use std::time::Duration;

use recorderd::entity::JobStatus;
use recorderd::store;
use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, QuerySelect, QueryTrait, Statement,
    TransactionTrait,
};
use time::OffsetDateTime;

use crate::helpers::{Backend, test_dir};
use crate::on_both_databases;

on_both_databases!(queries_of_the_present_never_scan_the_history_of_jobs);

/// One query and what its plan must show.
struct Check {
    what: &'static str,
    statement: Statement,
    /// Columns the index search must be bound by (in SQLite's `SEARCH …
    /// (col=? AND …)`, in PostgreSQL's `Index Cond`).
    bound_by: &'static [&'static str],
    /// The rows must come in index order, with no sort of all matches: a
    /// first page then stops after its rows.
    in_index_order: bool,
}

fn checks(backend: DatabaseBackend) -> Vec<Check> {
    let since = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let page = |status, recording_id| {
        store::jobs::list_jobs_query(status, recording_id)
            .limit(50)
            .offset(0)
            .build(backend)
    };
    vec![
        Check {
            what: "live jobs (active, reconciliation)",
            statement: store::live::live_jobs_query().build(backend),
            bound_by: &["status"],
            in_index_order: false,
        },
        Check {
            what: "live jobs' marks (every active)",
            statement: store::live::live_marks_query(backend).build(backend),
            bound_by: &["status"],
            in_index_order: false,
        },
        Check {
            what: "job list, first page",
            statement: page(None, None),
            bound_by: &[],
            in_index_order: true,
        },
        Check {
            what: "job list by status, first page",
            statement: page(Some(JobStatus::Completed), None),
            bound_by: &["status"],
            in_index_order: true,
        },
        Check {
            what: "job list by status, its count",
            statement: backend.build(&count_of(
                store::jobs::list_jobs_query(Some(JobStatus::Running), None).into_query(),
            )),
            bound_by: &["status"],
            in_index_order: false,
        },
        Check {
            what: "job list of a recording, first page",
            statement: page(None, Some(7)),
            bound_by: &["recording_id"],
            in_index_order: false,
        },
        Check {
            what: "a node's stopping jobs",
            statement: store::jobs::stopping_of_node_query("a").build(backend),
            bound_by: &["node", "status"],
            in_index_order: false,
        },
        Check {
            what: "a node's held jobs (--max-jobs)",
            statement: store::placement::held_by_node_query("a").build(backend),
            // The (node, status, …) index: PostgreSQL, planning on an
            // empty table, bounds it by the node and filters the statuses
            // within; with a history to weigh it bounds both.
            bound_by: &["node"],
            in_index_order: false,
        },
        Check {
            what: "jobs a node lost while silent",
            statement: store::jobs::lost_by_node_query("a", since).build(backend),
            bound_by: &["node", "end_cause"],
            in_index_order: false,
        },
        Check {
            what: "nodes with work (lease checks, several a second)",
            statement: backend.build(&store::nodes::nodes_with_work_query("a")),
            bound_by: &["status", "node"],
            in_index_order: false,
        },
        Check {
            what: "jobs from before nodes, claimed at start-up",
            statement: store::nodes::claim_unassigned_query("a").build(backend),
            bound_by: &["node"],
            in_index_order: false,
        },
    ]
}

/// The count a page of the job list comes with, built as sea-orm's
/// paginator builds it: `COUNT(*)` over the query without its order.
fn count_of(mut query: SelectStatement) -> SelectStatement {
    query.clear_order_by();
    Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(query, "sub_query")
        .to_owned()
}

/// The plan's lines, as the database prints them.
async fn plan(db: &DatabaseConnection, statement: &Statement) -> Vec<String> {
    let backend = db.get_database_backend();
    // The values are written into the SQL: the plan is the one of these
    // values, and EXPLAIN needs no parameter types.
    let sql = statement.to_string();
    match backend {
        DatabaseBackend::Sqlite => {
            let rows = db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("EXPLAIN QUERY PLAN {sql}"),
                ))
                .await
                .expect("EXPLAIN QUERY PLAN");
            rows.iter()
                .map(|row| {
                    row.try_get::<String>("", "detail")
                        .expect("a plan's detail")
                })
                .collect()
        }
        _ => {
            // An empty table is cheapest to scan whatever its indexes:
            // with scans priced out, a scan left in the plan means that no
            // index can serve the query.
            let txn = db.begin().await.expect("begin");
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .expect("SET LOCAL enable_seqscan");
            let rows = txn
                .query_all_raw(Statement::from_string(backend, format!("EXPLAIN {sql}")))
                .await
                .expect("EXPLAIN");
            txn.rollback().await.expect("rollback");
            rows.iter()
                .map(|row| {
                    row.try_get::<String>("", "QUERY PLAN")
                        .expect("a plan line")
                })
                .collect()
        }
    }
}

/// What is wrong with `plan` for `check`, if anything.
fn judge(backend: DatabaseBackend, check: &Check, plan: &[String]) -> Option<String> {
    let table = |line: &&String| line.contains("recording_jobs");
    let (scans, sorts, bounds): (Vec<&String>, bool, String) = match backend {
        DatabaseBackend::Sqlite => {
            let scans = plan
                .iter()
                .filter(table)
                .filter(|l| l.starts_with("SCAN"))
                // Walking the primary key backwards for a first page stops
                // after the page's rows.
                .filter(|l| !(check.in_index_order && l.as_str() == "SCAN recording_jobs"))
                .collect();
            let sorts = plan.iter().any(|l| l.contains("TEMP B-TREE FOR ORDER BY"));
            let bounds = plan
                .iter()
                .filter(table)
                .filter(|l| l.starts_with("SEARCH"))
                .filter_map(|l| l.split_once(" (").map(|(_, b)| b.to_owned()))
                .collect::<Vec<_>>()
                .join(" ");
            (scans, sorts, bounds)
        }
        _ => {
            let scans = plan
                .iter()
                .filter(|l| l.contains("Seq Scan on recording_jobs"))
                .collect();
            let sorts = plan.iter().any(|l| l.contains("Sort"));
            let bounds = plan
                .iter()
                .filter(|l| l.contains("Index Cond") || l.contains("Recheck Cond"))
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            (scans, sorts, bounds)
        }
    };
    if !scans.is_empty() {
        return Some(format!("scans recording_jobs: {scans:?}"));
    }
    if check.in_index_order && sorts {
        return Some("sorts every matching row instead of reading them in index order".into());
    }
    let unbound: Vec<&&str> = check
        .bound_by
        .iter()
        .filter(|column| !bounds.contains(**column))
        .collect();
    if !unbound.is_empty() {
        return Some(format!(
            "its index search is not bound by {unbound:?} (bounds: `{bounds}`)"
        ));
    }
    None
}

async fn queries_of_the_present_never_scan_the_history_of_jobs(backend: Backend) {
    let name = format!("indexes_{}", testkit::unique_name());
    let dir = test_dir(&name);
    let url = backend.fresh_database(&dir, &name).await;
    let db = recorderd::db::connect(&url, Duration::from_secs(10))
        .await
        .expect("connect to the test database");
    recorderd::db::migrate(&db).await.expect("migrate");
    let kind = db.get_database_backend();
    let mut failures = Vec::new();
    for check in checks(kind) {
        let plan = plan(&db, &check.statement).await;
        if let Some(wrong) = judge(kind, &check, &plan) {
            failures.push(format!(
                "{}: {wrong}\n  query: {}\n  plan:\n    {}",
                check.what,
                check.statement,
                plan.join("\n    ")
            ));
        }
    }
    db.close().await.expect("close");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&dir);
    if let Backend::Postgres(admin) = &backend {
        testkit::postgres::drop_database_when_unused(admin, &Backend::database_name(&name));
    }
}
