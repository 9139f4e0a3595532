//! Queries and compare-and-set updates of recordings.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;

use super::search::Filters;
use super::{IN_LIST_CHUNK, Job, Recording};
use crate::entity::{
    Analysis, RecordingStatus, Segments, processing_step, recording, recording_job,
};

pub async fn find_recording(
    db: &impl ConnectionTrait,
    id: i32,
) -> Result<Option<Recording>, DbErr> {
    recording::Entity::find_by_id(id).one(db).await
}

/// One page of recordings, newest first, and the total matching.
pub async fn list_recordings(
    db: &DatabaseConnection,
    filters: Filters<'_>,
    page: u64,
    page_size: u64,
) -> Result<(Vec<Recording>, u64), DbErr> {
    let mut query = recording::Entity::find().order_by_desc(recording::Column::Id);
    if let Some(status) = filters.status {
        query = query.filter(recording::Column::Status.eq(status));
    }
    if let Some(profile) = filters.profile {
        query = query.filter(recording::Column::Profile.eq(profile));
    }
    let paginator = query.paginate(db, page_size);
    super::page_and_total(&paginator, page).await
}

pub async fn recordings_with_status(
    db: &DatabaseConnection,
    status: RecordingStatus,
) -> Result<Vec<Recording>, DbErr> {
    recording::Entity::find()
        .filter(recording::Column::Status.eq(status))
        .order_by_asc(recording::Column::Id)
        .all(db)
        .await
}

/// The `ready` recordings of a profile, oldest first: the order in which
/// retention deletes them.
pub async fn ready_of_profile(
    db: &DatabaseConnection,
    profile: &str,
) -> Result<Vec<Recording>, DbErr> {
    recording::Entity::find()
        .filter(recording::Column::Status.eq(RecordingStatus::Ready))
        .filter(recording::Column::Profile.eq(profile))
        .order_by_asc(recording::Column::CreatedAt)
        .order_by_asc(recording::Column::Id)
        .all(db)
        .await
}

/// Recordings by id, in chunks that keep `IN (…)` lists short.
pub async fn recordings_by_ids(
    db: &DatabaseConnection,
    ids: &[i32],
) -> Result<Vec<Recording>, DbErr> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST_CHUNK) {
        found.extend(
            recording::Entity::find()
                .filter(recording::Column::Id.is_in(chunk.iter().copied()))
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// Every job of these recordings, oldest first.
pub async fn jobs_of_recordings(
    db: &DatabaseConnection,
    recording_ids: &[i32],
) -> Result<Vec<Job>, DbErr> {
    let mut found = Vec::new();
    for chunk in recording_ids.chunks(IN_LIST_CHUNK) {
        found.extend(
            recording_job::Entity::find()
                .filter(recording_job::Column::RecordingId.is_in(chunk.iter().copied()))
                .order_by_asc(recording_job::Column::Id)
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// The node of a recording's latest job, if recorded.
pub async fn latest_job_node(
    db: &DatabaseConnection,
    recording_id: i32,
) -> Result<Option<String>, DbErr> {
    Ok(recording_job::Entity::find()
        .filter(recording_job::Column::RecordingId.eq(recording_id))
        .order_by_desc(recording_job::Column::Id)
        .one(db)
        .await?
        .and_then(|job| job.node))
}

/// Of `recording_ids`, those recorded by a node other than `node`.
pub async fn recorded_by_other_nodes(
    db: &DatabaseConnection,
    recording_ids: &[i32],
    node: &str,
) -> Result<std::collections::HashSet<i32>, DbErr> {
    let mut found = std::collections::HashSet::new();
    // Chunked: bound parameters per statement are limited.
    for chunk in recording_ids.chunks(1000) {
        let rows: Vec<i32> = recording_job::Entity::find()
            .select_only()
            .column(recording_job::Column::RecordingId)
            .filter(recording_job::Column::RecordingId.is_in(chunk.iter().copied()))
            .filter(recording_job::Column::Node.is_not_null())
            .filter(recording_job::Column::Node.ne(node))
            .into_tuple::<i32>()
            .all(db)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Releases what a lost node was processing, so that another node with
/// the same storage claims it; in one transaction that first takes the
/// node's lock when `lock` is given. Returns how many recordings.
pub async fn release_processing(
    db: &DatabaseConnection,
    node: &str,
    lock: Option<i64>,
) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    if let Some(key) = lock
        && !super::nodes::lock_in_transaction(&txn, key).await?
    {
        txn.rollback().await?;
        return Ok(0);
    }
    let released = recording::Entity::update_many()
        .col_expr(
            recording::Column::ProcessingNode,
            Expr::value(Option::<String>::None),
        )
        .filter(recording::Column::ProcessingNode.eq(node))
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(released.rows_affected)
}

/// Claims the oldest recording waiting in `processing` that no node
/// processes and whose files are on shared storage (recorded by a node
/// that shares it), for `node`. Rows another claimer holds are skipped
/// (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite writes one at a time).
pub async fn claim_for_processing(
    db: &DatabaseConnection,
    node: &str,
) -> Result<Option<i32>, DbErr> {
    use sea_orm::sea_query::{LockBehavior, LockType, Query};
    let txn = db.begin().await?;
    let shared_nodes = Query::select()
        .column(crate::entity::node::Column::Id)
        .from(crate::entity::node::Entity)
        .and_where(crate::entity::node::Column::SharedStorage.eq(true))
        .to_owned();
    let recorded_on_shared = Query::select()
        .column(recording_job::Column::RecordingId)
        .from(recording_job::Entity)
        .and_where(recording_job::Column::Node.in_subquery(shared_nodes))
        .to_owned();
    let mut oldest = recording::Entity::find()
        .select_only()
        .column(recording::Column::Id)
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .filter(recording::Column::ProcessingNode.is_null())
        .filter(recording::Column::Id.in_subquery(recorded_on_shared))
        .order_by_asc(recording::Column::Id)
        .limit(1);
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        oldest = oldest.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let Some(id) = oldest.into_tuple::<i32>().one(&txn).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let claimed = recording::Entity::update_many()
        .col_expr(recording::Column::ProcessingNode, Expr::value(node))
        .filter(recording::Column::Id.eq(id))
        .filter(recording::Column::ProcessingNode.is_null())
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok((claimed.rows_affected == 1).then_some(id))
}

/// The node processing a recording now, if any.
pub async fn processing_node(
    db: &DatabaseConnection,
    recording_id: i32,
) -> Result<Option<String>, DbErr> {
    Ok(recording::Entity::find_by_id(recording_id)
        .select_only()
        .column(recording::Column::ProcessingNode)
        .into_tuple::<Option<String>>()
        .one(db)
        .await?
        .flatten())
}

/// Recordings `node` claimed that are still `processing`.
pub async fn claimed_by(db: &DatabaseConnection, node: &str) -> Result<Vec<i32>, DbErr> {
    recording::Entity::find()
        .select_only()
        .column(recording::Column::Id)
        .filter(recording::Column::ProcessingNode.eq(node))
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .into_tuple::<i32>()
        .all(db)
        .await
}

/// `processing` → `ready` or `failed`. False when the recording was not
/// processing (someone else finished it).
pub async fn finish_processing(
    db: &DatabaseConnection,
    recording_id: i32,
    status: RecordingStatus,
    error: Option<String>,
) -> Result<bool, DbErr> {
    let result = recording::Entity::update_many()
        .col_expr(recording::Column::Status, Expr::value(status))
        .col_expr(recording::Column::Error, Expr::value(error))
        .col_expr(
            recording::Column::UpdatedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(recording::Column::Id.eq(recording_id))
        .filter(recording::Column::Status.eq(RecordingStatus::Processing))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes a `ready` or `failed` recording (its jobs and steps go with it,
/// by foreign key). False when it was in another state.
pub async fn delete_settled_recording(
    db: &DatabaseConnection,
    recording_id: i32,
) -> Result<bool, DbErr> {
    let result = recording::Entity::delete_many()
        .filter(recording::Column::Id.eq(recording_id))
        .filter(recording::Column::Status.is_in([RecordingStatus::Ready, RecordingStatus::Failed]))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores what the `analyze` step measured.
pub async fn set_analysis(
    db: &DatabaseConnection,
    recording_id: i32,
    analysis: Option<Analysis>,
) -> Result<(), DbErr> {
    set(db, recording_id, recording::Column::Analysis, analysis).await
}

/// Forgets the segments of restarted runs once they are joined.
pub async fn clear_segments(db: &DatabaseConnection, recording_id: i32) -> Result<(), DbErr> {
    set(
        db,
        recording_id,
        recording::Column::Segments,
        Option::<Segments>::None,
    )
    .await
}

async fn set(
    db: &DatabaseConnection,
    recording_id: i32,
    column: recording::Column,
    value: impl Into<sea_orm::Value>,
) -> Result<(), DbErr> {
    recording::Entity::update_many()
        .col_expr(column, Expr::value(value))
        .filter(recording::Column::Id.eq(recording_id))
        .exec(db)
        .await?;
    Ok(())
}

/// `ready`/`failed` → `processing` with every step and what the steps
/// produced (analysis, transcript) forgotten, so the whole pipeline runs
/// again. False when the recording was in another state.
pub async fn reset_for_reprocessing(
    db: &DatabaseConnection,
    recording_id: i32,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let result = recording::Entity::update_many()
        .col_expr(
            recording::Column::Status,
            Expr::value(RecordingStatus::Processing),
        )
        .col_expr(
            recording::Column::Error,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recording::Column::Analysis,
            Expr::value(Option::<Analysis>::None),
        )
        .col_expr(
            recording::Column::Transcript,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recording::Column::ProcessingNode,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recording::Column::UpdatedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(recording::Column::Id.eq(recording_id))
        .filter(recording::Column::Status.is_in([RecordingStatus::Ready, RecordingStatus::Failed]))
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    processing_step::Entity::delete_many()
        .filter(processing_step::Column::RecordingId.eq(recording_id))
        .exec(&txn)
        .await?;
    super::transcripts::delete_of(&txn, recording_id).await?;
    txn.commit().await?;
    Ok(true)
}

/// How many recordings are in each status (for metrics).
pub async fn count_by_status(
    db: &DatabaseConnection,
) -> Result<Vec<(RecordingStatus, i64)>, DbErr> {
    use sea_orm::sea_query::Func;
    recording::Entity::find()
        .select_only()
        .column(recording::Column::Status)
        .column_as(
            Expr::from(Func::count(Expr::col(recording::Column::Id))),
            "n",
        )
        .group_by(recording::Column::Status)
        .into_tuple::<(RecordingStatus, i64)>()
        .all(db)
        .await
}
