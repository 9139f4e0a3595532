//! Where new jobs are written: each start's recording and job inserted
//! in a transaction under the cluster's admission (one decision at a time,
//! so two starts never take the same free slot; starts that arrive
//! together share one), and jobs placed on a node claimed by it or
//! withdrawn when nobody started them.

use std::path::Path;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Statement,
    TransactionTrait,
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

/// Begins an admission: a transaction holding the cluster's admission
/// (one decision at a time, so two starts never take the same free slot),
/// in which the caller reads what each node holds, decides, and inserts
/// each start's rows with [`insert`]. Starts that arrive together share
/// one: its lock (and, on SQLite, the one write) and its commit.
pub async fn begin_admission(
    db: &DatabaseConnection,
    admission: &Admission,
) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    take_admission(&txn, admission).await?;
    Ok(txn)
}

/// Takes the cluster's admission inside `txn`: until it ends, no other
/// start anywhere decides.
async fn take_admission(txn: &DatabaseTransaction, admission: &Admission) -> Result<(), DbErr> {
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
                .exec(txn)
                .await?;
        }
    }
    Ok(())
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
/// log files after their ids. Each id is taken inside the statement that
/// inserts its row, and the file name built there from it, so a start
/// costs one statement for both rows on PostgreSQL and one per row on
/// SQLite (instead of an INSERT and an UPDATE … RETURNING per row). The
/// rows are not read back: every column is written here, so the models
/// are what was written.
pub async fn insert(
    txn: &DatabaseTransaction,
    new: NewRecording<'_>,
    placed: Placed,
) -> Result<(Recording, Job), DbErr> {
    let now = OffsetDateTime::now_utc();
    // PostgreSQL keeps microseconds: the model says what a read would.
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now);
    // `Path::join` of the whole name would add the same separator.
    let output_prefix = new.recordings_dir.join("recording-").display().to_string();
    let output_suffix = format!(".{}", new.output_extension);
    let log_prefix = new.logs_dir.join("job-").display().to_string();
    let recording_values: [sea_orm::Value; 6] = [
        new.title.into(),
        new.source.into(),
        new.profile.into(),
        RecordingStatus::Recording.to_value().into(),
        output_prefix.as_str().into(),
        output_suffix.as_str().into(),
    ];
    let job_values: [sea_orm::Value; 5] = [
        placed.status.to_value().into(),
        new.duration_seconds.into(),
        Some(placed.node.clone()).into(),
        placed.lease_generation.into(),
        log_prefix.as_str().into(),
    ];
    let (recording_id, job_id) = match txn.get_database_backend() {
        DbBackend::Postgres => {
            let mut values = Vec::from(recording_values);
            values.push(now.into());
            values.extend(job_values);
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    INSERT_BOTH_POSTGRES,
                    values,
                ))
                .await?
                .ok_or_else(|| DbErr::RecordNotInserted)?;
            let r: i64 = row.try_get("", "r")?;
            let j: i64 = row.try_get("", "j")?;
            (to_id(r)?, to_id(j)?)
        }
        backend => {
            let mut values = Vec::from(recording_values);
            values.push(now.into());
            let recording_id = inserted_id(txn, backend, INSERT_RECORDING_SQLITE, values).await?;
            let mut values = vec![recording_id.into()];
            values.extend(job_values);
            values.push(now.into());
            let job_id = inserted_id(txn, backend, INSERT_JOB_SQLITE, values).await?;
            (recording_id, job_id)
        }
    };
    let recording = Recording {
        id: recording_id,
        title: new.title.to_owned(),
        source: new.source.to_owned(),
        profile: new.profile.to_owned(),
        status: RecordingStatus::Recording,
        output_path: format!("{output_prefix}{recording_id}{output_suffix}"),
        error: None,
        analysis: None,
        transcript: None,
        segments: None,
        processing_node: None,
        parent_id: None,
        segment_index: None,
        segment_start_ms: None,
        segment_duration_ms: None,
        created_at: now,
        updated_at: now,
    };
    let job = Job {
        id: job_id,
        recording_id,
        status: placed.status,
        process_id: None,
        process_start_time: None,
        exit_code: None,
        exit_signal: None,
        duration_seconds: new.duration_seconds,
        started_at: now,
        stop_requested_at: None,
        completed_at: None,
        error: None,
        log_path: format!("{log_prefix}{job_id}.log"),
        stop_reason: None,
        stop_signal: None,
        stop_duration_ms: None,
        attempt: 1,
        attempts: None,
        node: Some(placed.node),
        end_cause: None,
        restart_at: None,
        lease_generation: placed.lease_generation,
        progress: None,
    };
    Ok((recording, job))
}

/// Both rows in one statement: the ids drawn from their sequences first,
/// the file names built from them. `$7` is the time of the start.
const INSERT_BOTH_POSTGRES: &str = "\
WITH ids AS (\
  SELECT nextval(pg_get_serial_sequence('recordings', 'id')) AS r, \
         nextval(pg_get_serial_sequence('recording_jobs', 'id')) AS j\
), rec AS (\
  INSERT INTO recordings (id, title, source, profile, status, output_path, created_at, updated_at) \
  SELECT r, $1, $2, $3, $4, $5 || r || $6, $7, $7 FROM ids\
), job AS (\
  INSERT INTO recording_jobs \
    (id, recording_id, status, duration_seconds, node, lease_generation, started_at, log_path, attempt) \
  SELECT j, r, $8, $9, $10, $11, $7, $12 || j || '.log', 1 FROM ids\
) SELECT r, j FROM ids";

/// The recording, its id the next one (the statement holds the write lock
/// while it reads the highest id and the AUTOINCREMENT counter).
const INSERT_RECORDING_SQLITE: &str = "\
INSERT INTO recordings (id, title, source, profile, status, output_path, created_at, updated_at) \
SELECT n, ?1, ?2, ?3, ?4, ?5 || n || ?6, ?7, ?7 FROM (SELECT max(\
  coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'recordings'), 0), \
  coalesce((SELECT max(id) FROM recordings), 0)) + 1 AS n) \
RETURNING id";

/// The job, likewise.
const INSERT_JOB_SQLITE: &str = "\
INSERT INTO recording_jobs \
  (id, recording_id, status, duration_seconds, node, lease_generation, started_at, log_path, attempt) \
SELECT n, ?1, ?2, ?3, ?4, ?5, ?7, ?6 || n || '.log', 1 FROM (SELECT max(\
  coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'recording_jobs'), 0), \
  coalesce((SELECT max(id) FROM recording_jobs), 0)) + 1 AS n) \
RETURNING id";

/// Runs an `INSERT … RETURNING id`; returns the id.
async fn inserted_id(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<i32, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or(DbErr::RecordNotInserted)?;
    let id: i64 = row.try_get("", "id")?;
    to_id(id)
}

/// A row id as the entities hold it.
fn to_id(id: i64) -> Result<i32, DbErr> {
    i32::try_from(id).map_err(|_| DbErr::Custom(format!("row id {id} out of range")))
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
