//! Where new jobs are written: a start's recording and job inserted in
//! one transaction under the cluster's admission (one decision at a time,
//! so two starts never take the same free slot), and jobs placed on a node
//! claimed by it or withdrawn when nobody started them.

use std::path::Path;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, TransactionTrait,
};
use time::OffsetDateTime;

use super::{Job, Recording};
use crate::entity::{JobStatus, RecordingStatus, recording, recording_job};

/// What a new recording needs before its ids exist.
pub struct NewRecording<'a> {
    pub title: &'a str,
    pub source: &'a str,
    pub profile: &'a str,
    pub output_extension: &'a str,
    pub recordings_dir: &'a Path,
    pub logs_dir: &'a Path,
    pub duration_seconds: Option<i64>,
}

/// Where a new job goes: the node that runs it, as what.
#[derive(Debug, Clone)]
pub struct Placed {
    pub node: String,
    /// `Running` on the node deciding (it spawns the recorder now), or
    /// `Pending` for another node to start.
    pub status: JobStatus,
    /// The lease generation of the node deciding, when it runs the job.
    pub lease_generation: Option<i64>,
}

/// How starts are told apart when deciding where a job runs: one at a
/// time in the whole cluster, so that two never count the same free slot.
pub enum Admission {
    /// PostgreSQL: `pg_advisory_xact_lock` on this key first.
    Advisory(i64),
    /// SQLite: a write first (on this node's row), which takes the
    /// database's one write lock before anything is read.
    WriteFirst { node: String },
}

/// Decides where a new job runs from the nodes' rows and what each holds,
/// and inserts the recording and its job there, in one transaction under
/// `admission`. `decide` returns `None` when no node can take it: nothing
/// is written then.
pub async fn admit<D>(
    db: &DatabaseConnection,
    admission: &Admission,
    decide: D,
    new: NewRecording<'_>,
) -> Result<Option<(Recording, Job)>, DbErr>
where
    D: AsyncFnOnce(&DatabaseTransaction) -> Result<Option<Placed>, DbErr>,
{
    let txn = db.begin().await?;
    match admission {
        Admission::Advisory(key) => {
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [(*key).into()],
            ))
            .await?;
        }
        Admission::WriteFirst { node } => {
            crate::entity::node::Entity::update_many()
                .col_expr(
                    crate::entity::node::Column::MaxJobs,
                    Expr::col(crate::entity::node::Column::MaxJobs),
                )
                .filter(crate::entity::node::Column::Id.eq(node.as_str()))
                .exec(&txn)
                .await?;
        }
    }
    let Some(placed) = decide(&txn).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let inserted = insert_in(&txn, new, placed).await?;
    txn.commit().await?;
    Ok(Some(inserted))
}

/// How many jobs `node` holds (placed, running, stopping).
pub async fn held_by_node(db: &impl ConnectionTrait, node: &str) -> Result<u64, DbErr> {
    held_by_node_query(node).count(db).await
}

/// The query of [`held_by_node`]: run at every start, so an index keeps it
/// from reading ended jobs (checked against the query plan in the
/// integration tests).
pub fn held_by_node_query(node: &str) -> Select<recording_job::Entity> {
    recording_job::Entity::find()
        .filter(recording_job::Column::Node.eq(node))
        .filter(recording_job::Column::Status.is_in(JobStatus::HELD))
}

/// Inserts a recording and its first job in `txn`, naming the output and
/// log files after their ids.
async fn insert_in(
    txn: &DatabaseTransaction,
    new: NewRecording<'_>,
    placed: Placed,
) -> Result<(Recording, Job), DbErr> {
    let now = OffsetDateTime::now_utc();
    let inserted = recording::Entity::insert(recording::ActiveModel {
        title: Set(new.title.to_owned()),
        source: Set(new.source.to_owned()),
        profile: Set(new.profile.to_owned()),
        status: Set(RecordingStatus::Recording),
        output_path: Set(String::new()),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    let recording_id = inserted.last_insert_id;
    let output_path = new
        .recordings_dir
        .join(format!("recording-{recording_id}.{}", new.output_extension));
    // UPDATE … RETURNING hands back the row: no SELECT after it.
    let recording = recording::Entity::update_many()
        .col_expr(
            recording::Column::OutputPath,
            Expr::value(output_path.display().to_string()),
        )
        .filter(recording::Column::Id.eq(recording_id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DbErr::RecordNotFound(format!("recording {recording_id}")))?;

    let inserted = recording_job::Entity::insert(recording_job::ActiveModel {
        recording_id: Set(recording_id),
        status: Set(placed.status),
        duration_seconds: Set(new.duration_seconds),
        node: Set(Some(placed.node)),
        lease_generation: Set(placed.lease_generation),
        started_at: Set(now),
        log_path: Set(String::new()),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    let job_id = inserted.last_insert_id;
    let log_path = new.logs_dir.join(format!("job-{job_id}.log"));
    let job = recording_job::Entity::update_many()
        .col_expr(
            recording_job::Column::LogPath,
            Expr::value(log_path.display().to_string()),
        )
        .filter(recording_job::Column::Id.eq(job_id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DbErr::RecordNotFound(format!("job {job_id}")))?;
    Ok((recording, job))
}

/// Claims the oldest job placed on `node` (`pending` → `running`, under
/// lease `generation`, its start time now). Rows another claimer holds are
/// skipped (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite writes one at a
/// time). `None` when nothing waits.
pub async fn claim_placed(
    db: &DatabaseConnection,
    node: &str,
    generation: i64,
) -> Result<Option<Job>, DbErr> {
    let txn = db.begin().await?;
    let mut oldest = recording_job::Entity::find()
        .filter(recording_job::Column::Node.eq(node))
        .filter(recording_job::Column::Status.eq(JobStatus::Pending))
        .order_by_asc(recording_job::Column::Id)
        .limit(1);
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        oldest = oldest.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        );
    }
    let Some(job) = oldest.one(&txn).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let claimed = recording_job::Entity::update_many()
        .col_expr(
            recording_job::Column::Status,
            Expr::value(JobStatus::Running),
        )
        .col_expr(
            recording_job::Column::LeaseGeneration,
            Expr::value(Some(generation)),
        )
        .col_expr(
            recording_job::Column::StartedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(recording_job::Column::Id.eq(job.id))
        .filter(recording_job::Column::Status.eq(JobStatus::Pending))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next();
    txn.commit().await?;
    Ok(claimed)
}

/// Withdraws a placed job nobody started: the job and its recording are
/// deleted, as if the start had never been accepted. False when it was
/// started (or ended) meanwhile.
pub async fn withdraw_placed(db: &DatabaseConnection, job: &Job) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let deleted = recording_job::Entity::delete_many()
        .filter(recording_job::Column::Id.eq(job.id))
        .filter(recording_job::Column::Status.eq(JobStatus::Pending))
        .exec(&txn)
        .await?;
    if deleted.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    recording::Entity::delete_by_id(job.recording_id)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
}
