//! What can go wrong in a job operation, said in terms of the job. The HTTP
//! layer maps each variant to a status and an error code in one place
//! (`http::error`).

use sea_orm::DbErr;

use crate::entity::JobStatus;
use crate::profile::ReachRule;
use crate::supervisor::SpawnError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown profile `{name}` (available: {available})")]
    UnknownProfile { name: String, available: String },
    #[error("invalid source: {reason}")]
    InvalidSource { reason: String },
    /// What the source would reach is refused by one of the profile's rules.
    #[error("source refused by rule `{rule}`: {reason}", rule = rule.as_str())]
    SourceRefused { rule: ReachRule, reason: String },
    #[error(
        "this node already runs its maximum of {limit} recorders (--max-jobs); stop one, or try again later"
    )]
    AtCapacity { limit: usize },
    #[error("invalid `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("job {id} not found")]
    JobNotFound { id: i32 },
    #[error("recording {id} not found")]
    RecordingNotFound { id: i32 },
    #[error("job {id} has already ended ({status})", status = status.as_str())]
    JobAlreadyEnded { id: i32, status: JobStatus },
    #[error("job {job_id} failed: {source}")]
    Spawn { job_id: i32, source: SpawnError },
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error(
        "the recordings' disk has {free} bytes free, below the {floor} bytes kept free (--min-free-bytes)"
    )]
    InsufficientStorage { free: u64, floor: u64 },
    #[error(transparent)]
    Database(#[from] DbErr),
}
