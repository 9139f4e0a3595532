//! A recording job: one run of a recorder process for a recording.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// A job's state. `Running` and `Stopping` are live; `Completed` and `Failed`
/// are final and never change again (every transition is a compare-and-set
/// on this column).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
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

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "stopping" => Some(Self::Stopping),
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

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
    /// Why a stop was asked for: `requested`, `duration`, `stalled`, `shutdown`.
    pub stop_reason: Option<String>,
    /// The last signal of the stop sequence sent before the recorder ended.
    pub stop_signal: Option<i32>,
    /// From the first stop signal to the recorder's end.
    pub stop_duration_ms: Option<i64>,
    /// Which run of the recorder this is (restarts after crashes count up).
    pub attempt: i32,
    /// JSON history of the earlier runs: how each ended.
    #[serde(serialize_with = "super::json_text")]
    #[schema(value_type = Vec<Object>)]
    pub attempts: Option<String>,
    /// The recorderd node that supervises the recorder (`--node-id`);
    /// `null` for jobs from before nodes were recorded.
    pub node: Option<String>,
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
