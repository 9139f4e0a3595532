//! One entry of the event log: a job, recording or schedule transition.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// What happened: a job or a recording reached a state; or, for
/// `events.gap`, events were pruned before a reader got them (see
/// `events::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum EventKind {
    #[sea_orm(string_value = "job.started")]
    #[serde(rename = "job.started")]
    JobStarted,
    #[sea_orm(string_value = "job.stopping")]
    #[serde(rename = "job.stopping")]
    JobStopping,
    /// The recorder ended unasked and waits to be started again.
    #[sea_orm(string_value = "job.restarting")]
    #[serde(rename = "job.restarting")]
    JobRestarting,
    /// The recorder's next run started.
    #[sea_orm(string_value = "job.restarted")]
    #[serde(rename = "job.restarted")]
    JobRestarted,
    #[sea_orm(string_value = "job.completed")]
    #[serde(rename = "job.completed")]
    JobCompleted,
    #[sea_orm(string_value = "job.failed")]
    #[serde(rename = "job.failed")]
    JobFailed,
    #[sea_orm(string_value = "recording.processing")]
    #[serde(rename = "recording.processing")]
    RecordingProcessing,
    #[sea_orm(string_value = "recording.ready")]
    #[serde(rename = "recording.ready")]
    RecordingReady,
    #[sea_orm(string_value = "recording.failed")]
    #[serde(rename = "recording.failed")]
    RecordingFailed,
    /// A recording deleted by retention or to keep the disk's free space
    /// (payload: the recording and `deleted_because`).
    #[sea_orm(string_value = "recording.deleted")]
    #[serde(rename = "recording.deleted")]
    RecordingDeleted,
    /// A schedule was created (payload: the schedule).
    #[sea_orm(string_value = "schedule.created")]
    #[serde(rename = "schedule.created")]
    ScheduleCreated,
    /// A schedule's slot was claimed and its start tried (payload: the
    /// firing, `started` with its `job_id` or `failed` with its `error`).
    #[sea_orm(string_value = "schedule.fired")]
    #[serde(rename = "schedule.fired")]
    ScheduleFired,
    /// A schedule's slot passed unfired, beyond the grace (payload: the
    /// firing).
    #[sea_orm(string_value = "schedule.missed")]
    #[serde(rename = "schedule.missed")]
    ScheduleMissed,
    /// Never published: pruning writes it in place of the events it
    /// removes before some reader got them.
    #[sea_orm(string_value = "events.gap")]
    #[serde(rename = "events.gap")]
    EventsGap,
}

impl EventKind {
    /// The event's name on the stream and in webhooks (`job.completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobStarted => "job.started",
            Self::JobStopping => "job.stopping",
            Self::JobRestarting => "job.restarting",
            Self::JobRestarted => "job.restarted",
            Self::JobCompleted => "job.completed",
            Self::JobFailed => "job.failed",
            Self::RecordingProcessing => "recording.processing",
            Self::RecordingReady => "recording.ready",
            Self::RecordingFailed => "recording.failed",
            Self::RecordingDeleted => "recording.deleted",
            Self::ScheduleCreated => "schedule.created",
            Self::ScheduleFired => "schedule.fired",
            Self::ScheduleMissed => "schedule.missed",
            Self::EventsGap => "events.gap",
        }
    }

    /// The event of a job reaching `status`.
    pub fn of_job(status: super::JobStatus) -> Self {
        use super::JobStatus as S;
        match status {
            // A placed job is announced when its node starts it.
            S::Pending | S::Running => Self::JobStarted,
            S::Stopping => Self::JobStopping,
            S::Completed => Self::JobCompleted,
            S::Failed => Self::JobFailed,
        }
    }

    /// The event of a recording reaching `status`; `None` for `recording`,
    /// which the job's start already announces.
    pub fn of_recording(status: super::RecordingStatus) -> Option<Self> {
        use super::RecordingStatus as S;
        match status {
            S::Recording => None,
            S::Processing => Some(Self::RecordingProcessing),
            S::Ready => Some(Self::RecordingReady),
            S::Failed => Some(Self::RecordingFailed),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub kind: EventKind,
    /// The job or recording as JSON, as it was after the transition.
    pub payload: String,
    pub created_at: TimeDateTimeWithTimeZone,
    /// The node whose transition this is.
    pub node: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
