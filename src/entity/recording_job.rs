//! A recording job: one run of a recorder process for a recording.

use sea_orm::FromJsonQueryResult;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A job's state. `Running` and `Stopping` are live; `Completed` and `Failed`
/// are final and never change again (every transition is a compare-and-set
/// on this column). `Pending` is a start placed on another node, for the
/// moment until that node starts its recorder.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Placed on another node (this one was full, draining, or lacked a
    /// label its profile requires), which has not started it yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "stopping")]
    Stopping,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl JobStatus {
    pub const LIVE: [JobStatus; 2] = [JobStatus::Running, JobStatus::Stopping];
    /// What a node's capacity counts, and what its loss ends: its live
    /// jobs and those placed on it.
    pub const HELD: [JobStatus; 3] = [JobStatus::Pending, JobStatus::Running, JobStatus::Stopping];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    /// The name clients see, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// Why a stop was asked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A client called stop.
    #[sea_orm(string_value = "requested")]
    Requested,
    /// The job's `duration_seconds` elapsed.
    #[sea_orm(string_value = "duration")]
    Duration,
    /// The recorder's output stopped growing.
    #[sea_orm(string_value = "stalled")]
    Stalled,
    /// The supervisor is shutting down with the `stop` policy.
    #[sea_orm(string_value = "shutdown")]
    Shutdown,
    /// Nobody asked: the recorder ended by itself (its source ended,
    /// dropped, or could not be reached), restarts included.
    #[sea_orm(string_value = "source_ended")]
    SourceEnded,
}

/// How a job came to its end: what was observed, not whether it went well
/// (that is `status` and `error`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// The recorder's own exit was seen, with its exit status.
    #[sea_orm(string_value = "exited")]
    Exited,
    /// The recorder ended while no parent could read its status (adopted
    /// after a restart of the supervisor).
    #[sea_orm(string_value = "vanished")]
    Vanished,
    /// A reconciliation found its process gone, or its PID reused.
    #[sea_orm(string_value = "process_gone")]
    ProcessGone,
    /// The recorder could not be started.
    #[sea_orm(string_value = "spawn_failed")]
    SpawnFailed,
    /// The node supervising it lost its lease (it died, or its connection
    /// to the database was cut); another node ended it.
    #[sea_orm(string_value = "node_lost")]
    NodeLost,
    /// A start placed on another node was stopped before that node
    /// started its recorder.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// How one earlier run of a restarted recorder ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastRun {
    /// Which run it was (from 1).
    pub attempt: i32,
    pub process_id: Option<i32>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    /// When that run's recorder ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<TimeDateTimeWithTimeZone>,
    /// The wait before the next run was started.
    pub restarted_after_ms: u64,
    /// How long that run lasted, from its start to its end (`null` for
    /// runs recorded before this was).
    #[serde(default)]
    pub lasted_ms: Option<u64>,
}

/// The earlier runs of a job, oldest first (stored as JSON).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    FromJsonQueryResult,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct PastRuns(pub Vec<PastRun>);

/// What a running recorder reported last, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LiveProgress {
    /// Bytes the current run has written to its output.
    pub bytes_written: u64,
    /// Average bitrate of the current run's output, in kbit/s; `null`
    /// until the recorder can tell.
    pub bitrate_kbps: Option<f64>,
    /// Seconds of media the current run has written.
    pub media_seconds: f64,
    /// When the output last grew (bytes or media time): a source that
    /// stops sending leaves this behind while the recorder lives on.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_data_at: Option<TimeDateTimeWithTimeZone>,
    /// When the recorder last reported.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: TimeDateTimeWithTimeZone,
}

// The figures are parsed from finite decimal numbers (never NaN), so
// equality is total; the job model that carries them derives `Eq`.
impl Eq for LiveProgress {}

/// One run of a recorder for a recording, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "recording_jobs")]
#[schema(as = Job)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub recording_id: i32,
    pub status: JobStatus,
    pub process_id: Option<i32>,
    /// `starttime` of the process (field 22 of `/proc/<pid>/stat`, clock
    /// ticks since boot): with the PID, the process's identity. A PID alone
    /// can be reused by an unrelated process once the recorder is gone.
    pub process_start_time: Option<i64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub duration_seconds: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: TimeDateTimeWithTimeZone,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stop_requested_at: Option<TimeDateTimeWithTimeZone>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<TimeDateTimeWithTimeZone>,
    pub error: Option<String>,
    pub log_path: String,
    /// Why a stop was asked for.
    pub stop_reason: Option<StopReason>,
    /// The last signal of the stop sequence sent before the recorder ended.
    pub stop_signal: Option<i32>,
    /// From the first stop signal to the recorder's end.
    pub stop_duration_ms: Option<i64>,
    /// Which run of the recorder this is (restarts after crashes count up).
    pub attempt: i32,
    /// How the earlier runs ended (`[]` when this is the first).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    #[serde(serialize_with = "super::none_as_default")]
    #[schema(value_type = Vec<PastRun>)]
    pub attempts: Option<PastRuns>,
    /// The recorderd node that supervises the recorder (`--node-id`);
    /// `null` for jobs from before nodes were recorded.
    pub node: Option<String>,
    /// How the job came to its end; `null` while it is live (and for jobs
    /// ended before this was recorded).
    pub end_cause: Option<EndCause>,
    /// While the recorder waits to be started again after a crash: when
    /// its next run starts (`process_id` is `null` meanwhile).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub restart_at: Option<TimeDateTimeWithTimeZone>,
    /// The generation of its node's lease it runs under: only the node
    /// holding that lease acts on it (`null` for jobs from before leases).
    pub lease_generation: Option<i64>,
    /// What the recorder reported last, while it runs on the node that
    /// answers (`null` otherwise, and for recorders that report nothing):
    /// live figures, never stored.
    #[sea_orm(ignore)]
    pub progress: Option<LiveProgress>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::recording::Entity",
        from = "Column::RecordingId",
        to = "super::recording::Column::Id"
    )]
    Recording,
}

impl Related<super::recording::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Recording.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
