//! Queries of nodes and of what they hold: the node rows, how many jobs
//! each holds (its capacity in use), which nodes have anything another
//! would have to take over, and files queued for a node to remove.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, SelectStatement, SimpleExpr, UnionType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use time::OffsetDateTime;

use crate::entity::node::{Departure, Labels};
use crate::entity::{JobStatus, RecordingStatus, file_removal, node, recording, recording_job};

pub type Node = node::Model;

pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<Node>, DbErr> {
    node::Entity::find()
        .order_by_asc(node::Column::Id)
        .all(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Node>, DbErr> {
    node::Entity::find_by_id(id.to_owned()).one(db).await
}

/// What a node writes about itself when it takes its lease.
pub struct NodeRow<'a> {
    pub id: &'a str,
    pub instance: String,
    pub timeout_ms: i64,
    pub url: Option<String>,
    pub max_jobs: i32,
    pub processing_slots: i32,
    pub labels: Vec<String>,
    pub version: &'a str,
    pub shared_storage: bool,
    pub storage_probe: Option<String>,
    pub now: OffsetDateTime,
    /// A fresh start (not a lease taken back by a running node): the node
    /// takes jobs again and has not left.
    pub fresh: bool,
}

/// Counts one more lease for the node, writes what it offers, and moves
/// its held jobs under the new generation, in one transaction (the caller
/// holds the lock: no other node is ending those jobs meanwhile). Returns
/// the generation.
pub async fn begin_lease(db: &DatabaseConnection, row: NodeRow<'_>) -> Result<i64, DbErr> {
    let txn = db.begin().await?;
    let labels = Some(Labels(row.labels.clone()));
    node::Entity::insert(node::ActiveModel {
        id: Set(row.id.to_owned()),
        instance: Set(row.instance.clone()),
        timeout_ms: Set(row.timeout_ms),
        started_at: Set(row.now),
        last_seen_at: Set(row.now),
        lease_generation: Set(0),
        lease_acquired_at: Set(Some(row.now)),
        url: Set(row.url.clone()),
        max_jobs: Set(row.max_jobs),
        processing_slots: Set(row.processing_slots),
        processing_busy: Set(0),
        labels: Set(labels.clone()),
        version: Set(row.version.to_owned()),
        shared_storage: Set(row.shared_storage),
        storage_probe: Set(row.storage_probe.clone()),
        draining: Set(false),
        departure: Set(None),
    })
    .on_conflict_do_nothing_on([node::Column::Id])
    .exec(&txn)
    .await?;
    let mut update = node::Entity::update_many()
        .col_expr(
            node::Column::LeaseGeneration,
            Expr::col(node::Column::LeaseGeneration).add(1),
        )
        .col_expr(node::Column::LeaseAcquiredAt, Expr::value(Some(row.now)))
        .col_expr(node::Column::LastSeenAt, Expr::value(row.now))
        .col_expr(node::Column::Instance, Expr::value(row.instance))
        .col_expr(node::Column::TimeoutMs, Expr::value(row.timeout_ms))
        .col_expr(node::Column::Url, Expr::value(row.url))
        .col_expr(node::Column::MaxJobs, Expr::value(row.max_jobs))
        .col_expr(
            node::Column::ProcessingSlots,
            Expr::value(row.processing_slots),
        )
        .col_expr(node::Column::Labels, Expr::value(labels))
        .col_expr(node::Column::Version, Expr::value(row.version))
        .col_expr(node::Column::SharedStorage, Expr::value(row.shared_storage))
        .col_expr(node::Column::StorageProbe, Expr::value(row.storage_probe));
    if row.fresh {
        update = update
            .col_expr(node::Column::StartedAt, Expr::value(row.now))
            .col_expr(node::Column::Draining, Expr::value(false))
            .col_expr(
                node::Column::Departure,
                Expr::value(Option::<Departure>::None),
            );
    }
    let generation = update
        .filter(node::Column::Id.eq(row.id))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .map(|n| n.lease_generation)
        .ok_or_else(|| DbErr::RecordNotFound(format!("node {}", row.id)))?;
    recording_job::Entity::update_many()
        .col_expr(
            recording_job::Column::LeaseGeneration,
            Expr::value(Some(generation)),
        )
        .filter(recording_job::Column::Node.eq(row.id))
        .filter(recording_job::Column::Status.is_in(JobStatus::HELD))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(generation)
}

/// Jobs from before nodes were recorded become `node`'s, when it is the
/// only node the database knows; returns how many.
pub async fn claim_unassigned_jobs(db: &DatabaseConnection, node_id: &str) -> Result<u64, DbErr> {
    let others = node::Entity::find()
        .filter(node::Column::Id.ne(node_id))
        .count(db)
        .await?;
    if others > 0 {
        return Ok(0);
    }
    let claimed = claim_unassigned_query(node_id).exec(db).await?;
    Ok(claimed.rows_affected)
}

/// The update of [`claim_unassigned_jobs`]: run at every start, so an
/// index keeps it from reading every job (checked against the query plan in
/// the integration tests).
pub fn claim_unassigned_query(node_id: &str) -> sea_orm::UpdateMany<recording_job::Entity> {
    recording_job::Entity::update_many()
        .col_expr(recording_job::Column::Node, Expr::value(node_id))
        .filter(recording_job::Column::Node.is_null())
}

/// The heartbeat, kept for people reading `nodes`: when the node last
/// wrote, by its clock, and how busy its processing is.
pub async fn heartbeat(
    db: &DatabaseConnection,
    node_id: &str,
    now: OffsetDateTime,
    processing_busy: i32,
) -> Result<(), DbErr> {
    node::Entity::update_many()
        .col_expr(node::Column::LastSeenAt, Expr::value(now))
        .col_expr(node::Column::ProcessingBusy, Expr::value(processing_busy))
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets or clears a node's drain. False when the node is unknown.
pub async fn set_draining(db: &DatabaseConnection, node_id: &str, on: bool) -> Result<bool, DbErr> {
    let result = node::Entity::update_many()
        .col_expr(node::Column::Draining, Expr::value(on))
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records how this node leaves (and that it takes nothing new meanwhile).
pub async fn set_departure(
    db: &DatabaseConnection,
    node_id: &str,
    departure: Departure,
) -> Result<(), DbErr> {
    node::Entity::update_many()
        .col_expr(node::Column::Departure, Expr::value(Some(departure)))
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets a node (its row only; its jobs keep naming it).
pub async fn forget(db: &DatabaseConnection, node_id: &str) -> Result<bool, DbErr> {
    let result = node::Entity::delete_by_id(node_id.to_owned())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// How many jobs each node holds (placed, running, stopping): the
/// capacity it uses.
pub async fn held_jobs_by_node(db: &impl ConnectionTrait) -> Result<HashMap<String, i64>, DbErr> {
    use sea_orm::sea_query::Func;
    let rows: Vec<(Option<String>, i64)> = recording_job::Entity::find()
        .select_only()
        .column(recording_job::Column::Node)
        .column_as(
            Expr::from(Func::count(Expr::col(recording_job::Column::Id))),
            "n",
        )
        .filter(recording_job::Column::Status.is_in(JobStatus::HELD))
        .group_by(recording_job::Column::Node)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(node, n)| Some((node?, n)))
        .collect())
}

/// Nodes other than `me` with something another node would have to take
/// over if they were gone: held jobs, or recordings they are processing.
/// One statement (a `UNION`): it runs several times a second on every
/// node.
pub async fn nodes_with_work(db: &DatabaseConnection, me: &str) -> Result<Vec<String>, DbErr> {
    let statement = db.get_database_backend().build(&nodes_with_work_query(me));
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "node"))
        .collect()
}

/// The statement of [`nodes_with_work`]. Other nodes' held jobs are asked
/// for as the nodes before `me` and those after it: each a range of the
/// `(status, node)` index that skips this node's own jobs, where `node <>
/// me` read every one of them (a node with 1,000 recorders read 5,000 rows
/// a second to find none).
pub fn nodes_with_work_query(me: &str) -> SelectStatement {
    use sea_orm::QueryTrait;
    let held_on = |side: SimpleExpr| {
        recording_job::Entity::find()
            .select_only()
            .column_as(recording_job::Column::Node, "node")
            .filter(recording_job::Column::Status.is_in(JobStatus::HELD))
            .filter(side)
            .into_query()
    };
    let processing = recording::Entity::find()
        .select_only()
        .column_as(recording::Column::ProcessingNode, "node")
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .filter(recording::Column::ProcessingNode.is_not_null())
        .filter(recording::Column::ProcessingNode.ne(me))
        .into_query();
    // A NULL node compares as neither: jobs from before nodes stay out.
    let mut query = held_on(recording_job::Column::Node.lt(me));
    query
        .union(
            UnionType::Distinct,
            held_on(recording_job::Column::Node.gt(me)),
        )
        .union(UnionType::Distinct, processing);
    query
}

/// Queues files for `node` to remove, with the processing files of
/// `recording_id` (whose paths that node knows).
pub async fn queue_removals(
    db: &DatabaseConnection,
    node_id: &str,
    paths: &[String],
    recording_id: Option<i32>,
) -> Result<(), DbErr> {
    let now = OffsetDateTime::now_utc();
    let row = |path: Option<String>, recording_id: Option<i32>| file_removal::ActiveModel {
        node: Set(node_id.to_owned()),
        path: Set(path),
        recording_id: Set(recording_id),
        created_at: Set(now),
        ..Default::default()
    };
    let mut rows: Vec<_> = paths.iter().map(|p| row(Some(p.clone()), None)).collect();
    if recording_id.is_some() {
        rows.push(row(None, recording_id));
    }
    if rows.is_empty() {
        return Ok(());
    }
    file_removal::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Whether any file waits to be removed by `node_id`.
pub async fn has_removals(db: &DatabaseConnection, node_id: &str) -> Result<bool, DbErr> {
    Ok(file_removal::Entity::find()
        .select_only()
        .column(file_removal::Column::Id)
        .filter(file_removal::Column::Node.eq(node_id))
        .into_tuple::<i32>()
        .one(db)
        .await?
        .is_some())
}

/// Takes the removals queued for `node` (they leave the queue: a removal
/// that fails is logged, not retried).
pub async fn take_removals(
    db: &DatabaseConnection,
    node_id: &str,
) -> Result<Vec<file_removal::Model>, DbErr> {
    let txn = db.begin().await?;
    let rows = file_removal::Entity::find()
        .filter(file_removal::Column::Node.eq(node_id))
        .limit(1000)
        .all(&txn)
        .await?;
    if rows.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    file_removal::Entity::delete_many()
        .filter(file_removal::Column::Id.is_in(rows.iter().map(|r| r.id)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

/// Takes `pg_try_advisory_xact_lock(key)` in `txn`: false when another
/// session holds the key (the node whose lease it is came back).
pub async fn lock_in_transaction(txn: &impl ConnectionTrait, key: i64) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS got",
            [key.into()],
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "got"),
        None => Ok(false),
    }
}
