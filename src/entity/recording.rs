//! A recording: what a client asked to record and what became of the file.

use sea_orm::FromJsonQueryResult;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a recording is in its life. `Recording` until its recorder ends,
/// `Processing` while post-processing runs, then `Ready` or `Failed`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
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
    /// The name clients see, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// What the `analyze` step measured. Every measure is optional: a file
/// may lack what it needs (no audio, no duration in its container).
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, FromJsonQueryResult, utoipa::ToSchema,
)]
pub struct Analysis {
    pub duration_seconds: Option<f64>,
    /// The container, as ffprobe names it (`matroska,webm`, `mpegts`, …).
    pub format: Option<String>,
    pub size_bytes: u64,
    pub bit_rate: Option<f64>,
    /// Codec of the first audio stream (`null` without audio).
    pub codec: Option<String>,
    pub sample_rate: Option<f64>,
    pub channels: Option<i64>,
    /// EBU R128 integrated loudness.
    pub integrated_loudness_lufs: Option<f64>,
    pub true_peak_dbfs: Option<f64>,
    /// Time quieter than `silence_threshold_db` for at least half a second
    /// (`null` without audio).
    pub silence_seconds: Option<f64>,
    /// `silence_seconds` over the duration, when the duration is known.
    pub silence_ratio: Option<f64>,
    pub silence_threshold_db: i32,
    /// How many streams the file holds.
    pub streams: usize,
    /// The first video stream, for recordings with one.
    #[serde(default)]
    pub video: Option<VideoInfo>,
}

/// What the first video stream of a recording is, and what the `analyze`
/// step saw in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VideoInfo {
    /// As ffprobe names it (`h264`, `vp9`, …).
    pub codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Frames per second (its average).
    pub frame_rate: Option<f64>,
    /// Stretches of black picture (`blackdetect`: at least 0.5 s).
    #[serde(default)]
    pub black: Vec<TimeSpan>,
    /// Stretches of frozen picture (`freezedetect`: at least 2 s).
    #[serde(default)]
    pub frozen: Vec<TimeSpan>,
}

/// A stretch of a recording, in seconds from its start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeSpan {
    pub start: f64,
    /// `null` when it lasts to the end of the file.
    pub end: Option<f64>,
}

/// Files a restarted recorder wrote after the first (`output_path`), in
/// order (stored as JSON); joined into `output_path` before processing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct Segments(pub Vec<String>);

/// A recording, as the API shows it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "recordings")]
#[schema(as = Recording)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub title: String,
    /// Shown with its password, query values and stream key as `***`
    /// (everywhere: API answers, events, webhooks); stored whole, for the
    /// recorder.
    #[serde(serialize_with = "crate::redact::serialize_url")]
    pub source: String,
    pub profile: String,
    pub status: RecordingStatus,
    pub output_path: String,
    pub error: Option<String>,
    /// What the `analyze` step measured; shown by the recording's detail.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    #[serde(skip)]
    pub analysis: Option<Analysis>,
    /// Text written by a step whose output is the transcript.
    pub transcript: Option<String>,
    /// Files of restarted runs still to be joined into `output_path`.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    #[serde(skip)]
    pub segments: Option<Segments>,
    /// For a segment of a continuous recording: the recording of its job.
    pub parent_id: Option<i32>,
    /// For a segment: its place among its parent's segments, from 1.
    pub segment_index: Option<i32>,
    /// For a segment: where it starts, in milliseconds from its job's
    /// start (waits between restarted runs included).
    pub segment_start_ms: Option<i64>,
    /// For a segment: how long it lasts, as its recorder listed it.
    pub segment_duration_ms: Option<i64>,
    /// The node running (or that ran) its processing, when storage is
    /// shared and any node may; `null` otherwise (its recording node).
    pub processing_node: Option<String>,
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
