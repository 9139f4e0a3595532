//! A recording: what a client asked to record and what became of the file.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// Where a recording is in its life. `Recording` until its recorder ends,
/// `Processing` while post-processing runs, then `Ready` or `Failed`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    #[sea_orm(string_value = "recording")]
    Recording,
    #[sea_orm(string_value = "processing")]
    Processing,
    #[sea_orm(string_value = "ready")]
    Ready,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// A recording, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "recordings")]
#[schema(as = Recording)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub title: String,
    pub source: String,
    pub profile: String,
    pub status: RecordingStatus,
    pub output_path: String,
    pub error: Option<String>,
    /// JSON written by the `analyze` step (duration, codec, loudness, …).
    #[serde(skip)]
    pub analysis: Option<String>,
    /// Text written by a step whose output is the transcript.
    pub transcript: Option<String>,
    /// JSON list of the files a restarted recorder wrote after the first
    /// (`output_path`); joined into `output_path` before processing.
    #[serde(skip)]
    pub segments: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: TimeDateTimeWithTimeZone,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::recording_job::Entity")]
    Jobs,
    #[sea_orm(has_many = "super::processing_step::Entity")]
    Steps,
}

impl Related<super::recording_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Jobs.def()
    }
}

impl Related<super::processing_step::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Steps.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
