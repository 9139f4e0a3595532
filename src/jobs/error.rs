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
    #[error(
        "no node can take another recorder: {here}, and no other live node has a free slot; \
         stop one, or try again later"
    )]
    AtCapacity { here: NoRoomHere },
    #[error(
        "no live node offers the labels this profile requires ({labels}) with a free slot; \
         start a node with them (--labels), or try again later"
    )]
    NoNodeWithLabels { labels: String },
    #[error("node `{node}`, where this start was placed, {reason}; try again")]
    NotPlaced { node: String, reason: String },
    #[error("job {job_id} failed on node `{node}`: {reason}")]
    PlacedSpawn {
        job_id: i32,
        node: String,
        reason: String,
    },
    #[error(
        "this node lost its lease on the database (its session was cut or does not answer) and \
         does not act on jobs until it holds it again; try again, or use another node"
    )]
    LeaseLost,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Why the node a start was sent to could not run it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoRoomHere {
    #[error("this one runs its maximum of {limit} (--max-jobs)")]
    Full { limit: usize },
    #[error("this one is draining")]
    Draining,
    #[error("this one is shutting down")]
    Leaving,
    #[error("this one does not hold its lease on the database")]
    NoLease,
}
