//! Queries and compare-and-set updates of jobs. Every state change is an
//! `UPDATE … WHERE status = <expected>`, so that an exit, a stop and a
//! reconciliation racing each other produce exactly one transition, on
//! SQLite and PostgreSQL alike.

use sea_orm::sea_query::{CaseStatement, Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, TransactionTrait,
};
use time::OffsetDateTime;

use super::{IN_LIST_CHUNK, Job, Recording};
use crate::entity::{
    EndCause, JobStatus, PastRuns, RecordingStatus, Segments, StopReason, recording, recording_job,
};
use crate::supervisor::ProcessIdentity;

/// Whose write a job's end (or identity, or restart) must be: beyond its
/// status, the condition that keeps a node from writing jobs it no longer
/// holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fence {
    /// No condition beyond the job's status (a placed job cancelled by a
    /// stop sent to any node).
    Open,
    /// This node's own job, under the lease it holds now: a job another
    /// node took over, or moved under a later lease of this node id, is
    /// left alone.
    Lease { node: String, generation: i64 },
    /// Another node's job, ended because that node lost its lease; the
    /// transaction first takes the node's lock when `lock` is given (else
    /// the caller holds its lock file).
    Takeover { node: String, lock: Option<i64> },
}

impl Fence {
    /// The fence as a condition on `recording_jobs`.
    fn condition(&self) -> Option<sea_orm::sea_query::Condition> {
        use sea_orm::sea_query::Condition;
        match self {
            Self::Open => None,
            Self::Lease { node, generation } => Some(
                Condition::all()
                    .add(
                        Condition::any()
                            .add(recording_job::Column::Node.eq(node.as_str()))
                            // Jobs from before nodes were recorded are
                            // every node's own, as `JobService::is_mine`
                            // says (a sole node claims them at start).
                            .add(recording_job::Column::Node.is_null()),
                    )
                    .add(
                        Condition::any()
                            .add(recording_job::Column::LeaseGeneration.eq(*generation))
                            // Jobs from before leases, until the node's
                            // first lease moves them under it.
                            .add(recording_job::Column::LeaseGeneration.is_null()),
                    ),
            ),
            Self::Takeover { node, .. } => {
                Some(Condition::all().add(recording_job::Column::Node.eq(node.as_str())))
            }
        }
    }

    /// The lock the transaction must take first, if any.
    fn lock(&self) -> Option<i64> {
        match self {
            Self::Takeover { lock, .. } => *lock,
            _ => None,
        }
    }
}

/// Records the spawned process's identity (PID and start time); the job
/// no longer waits for a restart. `None` when the job is not live under
/// `fence` (another node took it over meanwhile): nothing is written.
pub async fn set_process_identity(
    db: &DatabaseConnection,
    job_id: i32,
    identity: ProcessIdentity,
    fence: &Fence,
) -> Result<Option<Job>, DbErr> {
    let mut update = recording_job::Entity::update_many();
    if let Some(condition) = fence.condition() {
        update = update
            .filter(condition)
            .filter(recording_job::Column::Status.is_in(JobStatus::LIVE));
    }
    Ok(update
        .col_expr(recording_job::Column::ProcessId, Expr::value(identity.pid))
        .col_expr(
            recording_job::Column::ProcessStartTime,
            Expr::value(identity.start_time),
        )
        .col_expr(
            recording_job::Column::RestartAt,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .filter(recording_job::Column::Id.eq(job_id))
        .exec_with_returning(db)
        .await?
        .into_iter()
        .next())
}

pub async fn find_job(db: &impl ConnectionTrait, id: i32) -> Result<Option<Job>, DbErr> {
    recording_job::Entity::find_by_id(id).one(db).await
}

/// Of `ids`, those of jobs that exist and are live.
pub async fn live_job_ids_among(db: &DatabaseConnection, ids: &[i32]) -> Result<Vec<i32>, DbErr> {
    let mut live = Vec::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<i32> = recording_job::Entity::find()
            .select_only()
            .column(recording_job::Column::Id)
            .filter(recording_job::Column::Id.is_in(chunk.iter().copied()))
            .filter(recording_job::Column::Status.is_in(JobStatus::LIVE))
            .into_tuple::<i32>()
            .all(db)
            .await?;
        live.extend(rows);
    }
    Ok(live)
}

/// Of `ids`, those of jobs that are live and held by `node` under lease
/// `generation`: a recorder whose job is not among them has nobody to
/// record its end here (its job ended, was deleted, or was taken over).
pub async fn held_job_ids_among(
    db: &DatabaseConnection,
    ids: &[i32],
    fence: &Fence,
) -> Result<Vec<i32>, DbErr> {
    let mut held = Vec::new();
    for chunk in ids.chunks(1000) {
        let mut query = recording_job::Entity::find()
            .select_only()
            .column(recording_job::Column::Id)
            .filter(recording_job::Column::Id.is_in(chunk.iter().copied()))
            .filter(recording_job::Column::Status.is_in(JobStatus::LIVE));
        if let Some(condition) = fence.condition() {
            query = query.filter(condition);
        }
        held.extend(query.into_tuple::<i32>().all(db).await?);
    }
    Ok(held)
}

/// A node's jobs that its loss ends: placed on it, running, stopping.
pub async fn held_jobs_of_node(db: &DatabaseConnection, node: &str) -> Result<Vec<Job>, DbErr> {
    recording_job::Entity::find()
        .filter(recording_job::Column::Node.eq(node))
        .filter(recording_job::Column::Status.is_in(JobStatus::HELD))
        .order_by_asc(recording_job::Column::Id)
        .all(db)
        .await
}

/// Ids of a node's jobs in `stopping`.
pub async fn stopping_job_ids_of_node(
    db: &DatabaseConnection,
    node: &str,
) -> Result<Vec<i32>, DbErr> {
    stopping_of_node_query(node)
        .into_tuple::<i32>()
        .all(db)
        .await
}

/// The query of [`stopping_job_ids_of_node`].
pub fn stopping_of_node_query(node: &str) -> Select<recording_job::Entity> {
    recording_job::Entity::find()
        .select_only()
        .column(recording_job::Column::Id)
        .filter(recording_job::Column::Node.eq(node))
        .filter(recording_job::Column::Status.eq(JobStatus::Stopping))
}

/// A node's jobs ended since `since` by another node because this one was
/// silent.
pub async fn jobs_lost_by_node(
    db: &DatabaseConnection,
    node: &str,
    since: OffsetDateTime,
) -> Result<Vec<Job>, DbErr> {
    lost_by_node_query(node, since).all(db).await
}

/// The query of [`jobs_lost_by_node`].
pub fn lost_by_node_query(node: &str, since: OffsetDateTime) -> Select<recording_job::Entity> {
    recording_job::Entity::find()
        .filter(recording_job::Column::Node.eq(node))
        .filter(recording_job::Column::Status.is_in([JobStatus::Completed, JobStatus::Failed]))
        .filter(recording_job::Column::EndCause.eq(EndCause::NodeLost))
        .filter(recording_job::Column::CompletedAt.gt(since))
}

/// One page of jobs, newest first, and the total matching.
pub async fn list_jobs(
    db: &DatabaseConnection,
    status: Option<JobStatus>,
    recording_id: Option<i32>,
    page: u64,
    page_size: u64,
) -> Result<(Vec<Job>, u64), DbErr> {
    let paginator = list_jobs_query(status, recording_id).paginate(db, page_size);
    super::page_and_total(&paginator, page).await
}

/// The query of [`list_jobs`], before its page's limit and offset.
pub fn list_jobs_query(
    status: Option<JobStatus>,
    recording_id: Option<i32>,
) -> Select<recording_job::Entity> {
    let mut query = recording_job::Entity::find().order_by_desc(recording_job::Column::Id);
    if let Some(status) = status {
        query = query.filter(recording_job::Column::Status.eq(status));
    }
    if let Some(recording_id) = recording_id {
        query = query.filter(recording_job::Column::RecordingId.eq(recording_id));
    }
    query
}

/// `running` → `stopping`, saying why; the job as marked, or `None` when
/// it was not running.
pub async fn mark_stopping(
    db: &DatabaseConnection,
    job_id: i32,
    reason: StopReason,
) -> Result<Option<Job>, DbErr> {
    let marked = recording_job::Entity::update_many()
        .col_expr(recording_job::Column::StopReason, Expr::value(reason))
        .col_expr(
            recording_job::Column::Status,
            Expr::value(JobStatus::Stopping),
        )
        .col_expr(
            recording_job::Column::StopRequestedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(recording_job::Column::Id.eq(job_id))
        .filter(recording_job::Column::Status.eq(JobStatus::Running))
        .exec_with_returning(db)
        .await?;
    Ok(marked.into_iter().next())
}

/// How the recording fares when its job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingOutcome {
    pub status: RecordingStatus,
    pub error: Option<String>,
}

/// A job's final state and what to record with it: the columns a job's end
/// writes. The job service's state machine decides them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub status: JobStatus,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub stop_signal: Option<i32>,
    pub stop_duration_ms: Option<i64>,
    pub end_cause: EndCause,
    /// Recorded when the job has no stop reason yet (a recorder that ended
    /// by itself).
    pub stop_reason: Option<StopReason>,
}

/// One job to end, and when its recorder ended (`None`: not known; the
/// commit's time stands for it).
pub type Ended = (i32, Option<OffsetDateTime>);

/// Ends the jobs among `jobs` still in `expected` state (and within
/// `fence`), with one verdict for all, and moves their recordings out of
/// `recording`, in one transaction. Returns the jobs ended: those another
/// path ended or changed first are left alone (their recordings too).
pub async fn finish_jobs(
    db: &DatabaseConnection,
    jobs: &[Ended],
    expected: JobStatus,
    verdict: &Verdict,
    recording_outcome: &RecordingOutcome,
    fence: &Fence,
) -> Result<Vec<Job>, DbErr> {
    let group = FinishGroup {
        from: expected,
        verdict: verdict.clone(),
        outcome: recording_outcome.clone(),
        jobs: jobs.to_vec(),
        fence: fence.clone(),
    };
    Ok(finish_job_groups(db, std::slice::from_ref(&group))
        .await?
        .into_iter()
        .map(|(job, _)| job)
        .collect())
}

/// The statements of [`finish_jobs`], inside the caller's transaction. Each
/// job's `completed_at` is when its recorder ended, however late this
/// commit comes (a database outage, a batch); a stop reason already
/// recorded is kept.
async fn end_in(
    txn: &DatabaseTransaction,
    jobs: &[Ended],
    group: &FinishGroup,
) -> Result<Vec<Job>, DbErr> {
    let (expected, verdict, recording_outcome) = (group.from, &group.verdict, &group.outcome);
    let now = OffsetDateTime::now_utc();
    let known: Vec<(i32, OffsetDateTime)> = jobs
        .iter()
        .filter_map(|(id, at)| at.map(|at| (*id, at)))
        .collect();
    // A CASE needs at least one WHEN: with no end time known, now it is.
    let completed_at: SimpleExpr = if known.is_empty() {
        Expr::value(now)
    } else {
        let mut case = CaseStatement::new();
        for (id, at) in known {
            case = case.case(recording_job::Column::Id.eq(id), Expr::value(at));
        }
        case.finally(Expr::value(now)).into()
    };
    let mut update = recording_job::Entity::update_many()
        .col_expr(recording_job::Column::Status, Expr::value(verdict.status))
        .col_expr(recording_job::Column::CompletedAt, completed_at)
        .col_expr(
            recording_job::Column::RestartAt,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .col_expr(
            recording_job::Column::EndCause,
            Expr::value(verdict.end_cause),
        )
        .col_expr(
            recording_job::Column::ExitCode,
            Expr::value(verdict.exit_code),
        )
        .col_expr(
            recording_job::Column::ExitSignal,
            Expr::value(verdict.exit_signal),
        )
        .col_expr(
            recording_job::Column::Error,
            Expr::value(verdict.error.clone()),
        )
        .col_expr(
            recording_job::Column::StopSignal,
            Expr::value(verdict.stop_signal),
        )
        .col_expr(
            recording_job::Column::StopDurationMs,
            Expr::value(verdict.stop_duration_ms),
        );
    if let Some(reason) = verdict.stop_reason {
        update = update.col_expr(
            recording_job::Column::StopReason,
            Func::coalesce([
                Expr::col(recording_job::Column::StopReason),
                Expr::value(reason),
            ])
            .into(),
        );
    }
    if let Some(condition) = group.fence.condition() {
        update = update.filter(condition);
    }
    let ended = update
        .filter(recording_job::Column::Id.is_in(jobs.iter().map(|(id, _)| *id)))
        .filter(recording_job::Column::Status.eq(expected))
        .exec_with_returning(txn)
        .await?;
    if ended.is_empty() {
        return Ok(ended);
    }
    recording::Entity::update_many()
        .col_expr(
            recording::Column::Status,
            Expr::value(recording_outcome.status),
        )
        .col_expr(
            recording::Column::Error,
            Expr::value(recording_outcome.error.clone()),
        )
        .col_expr(recording::Column::UpdatedAt, Expr::value(now))
        .filter(recording::Column::Id.is_in(ended.iter().map(|j| j.recording_id)))
        .filter(recording::Column::Status.eq(RecordingStatus::Recording))
        .exec(txn)
        .await?;
    Ok(ended)
}

/// Jobs that end the same way, from the same state, under one fence.
#[derive(Debug, Clone)]
pub struct FinishGroup {
    pub from: JobStatus,
    pub verdict: Verdict,
    pub outcome: RecordingOutcome,
    pub jobs: Vec<Ended>,
    pub fence: Fence,
}

/// [`finish_jobs`] for several groups in one transaction. Returns each
/// ended job with the index of its group; nothing when a takeover's lock
/// cannot be taken (the node holds its lease again).
pub async fn finish_job_groups(
    db: &DatabaseConnection,
    groups: &[FinishGroup],
) -> Result<Vec<(Job, usize)>, DbErr> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let txn = db.begin().await?;
    let mut locked = std::collections::HashSet::new();
    for key in groups.iter().filter_map(|g| g.fence.lock()) {
        if locked.insert(key) && !super::nodes::lock_in_transaction(&txn, key).await? {
            txn.rollback().await?;
            return Ok(Vec::new());
        }
    }
    let mut ended_all = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        for chunk in group.jobs.chunks(IN_LIST_CHUNK) {
            let ended = end_in(&txn, chunk, group).await?;
            ended_all.extend(ended.into_iter().map(|job| (job, index)));
        }
    }
    txn.commit().await?;
    Ok(ended_all)
}

/// Jobs (with their recordings) by id, in chunks.
pub async fn jobs_with_recordings(
    db: &DatabaseConnection,
    ids: &[i32],
) -> Result<Vec<(Job, Option<Recording>)>, DbErr> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST_CHUNK) {
        found.extend(
            recording_job::Entity::find()
                .filter(recording_job::Column::Id.is_in(chunk.iter().copied()))
                .find_also_related(recording::Entity)
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// A job and its recording in one query.
pub async fn find_job_with_recording(
    db: &DatabaseConnection,
    job_id: i32,
) -> Result<Option<(Job, Option<Recording>)>, DbErr> {
    recording_job::Entity::find_by_id(job_id)
        .find_also_related(recording::Entity)
        .one(db)
        .await
}

/// A recorder that ended unasked will be started again at `restart_at`:
/// the job (still `running` its attempt `job.attempt`) moves to the next
/// attempt with the history of the earlier ones and no process until the
/// next run's is stored, and the recording gains the new segment. `None`
/// when the job is no longer running that attempt (a stop came in):
/// nothing is written.
pub async fn claim_restart(
    db: &DatabaseConnection,
    job: &Job,
    attempts: PastRuns,
    segments: Segments,
    restart_at: OffsetDateTime,
    fence: &Fence,
) -> Result<Option<Job>, DbErr> {
    let txn = db.begin().await?;
    let mut claim = recording_job::Entity::update_many();
    if let Some(condition) = fence.condition() {
        claim = claim.filter(condition);
    }
    let claimed = claim
        .col_expr(recording_job::Column::Attempt, Expr::value(job.attempt + 1))
        .col_expr(recording_job::Column::Attempts, Expr::value(attempts))
        .col_expr(recording_job::Column::RestartAt, Expr::value(restart_at))
        // The previous run's identity goes with it: until the new run's is
        // stored, the job shows no process rather than a dead one.
        .col_expr(
            recording_job::Column::ProcessId,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(
            recording_job::Column::ProcessStartTime,
            Expr::value(Option::<i64>::None),
        )
        .filter(recording_job::Column::Id.eq(job.id))
        .filter(recording_job::Column::Status.eq(JobStatus::Running))
        .filter(recording_job::Column::Attempt.eq(job.attempt))
        .exec_with_returning(&txn)
        .await?;
    let Some(claimed) = claimed.into_iter().next() else {
        txn.rollback().await?;
        return Ok(None);
    };
    recording::Entity::update_many()
        .col_expr(recording::Column::Segments, Expr::value(segments))
        .col_expr(
            recording::Column::UpdatedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(recording::Column::Id.eq(job.recording_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(claimed))
}

/// How many jobs are in each status (for metrics).
pub async fn count_by_status(db: &DatabaseConnection) -> Result<Vec<(JobStatus, i64)>, DbErr> {
    use sea_orm::sea_query::Func;
    recording_job::Entity::find()
        .select_only()
        .column(recording_job::Column::Status)
        .column_as(
            Expr::from(Func::count(Expr::col(recording_job::Column::Id))),
            "n",
        )
        .group_by(recording_job::Column::Status)
        .into_tuple::<(JobStatus, i64)>()
        .all(db)
        .await
}
