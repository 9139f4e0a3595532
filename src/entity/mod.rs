//! sea-orm entities. The schema itself belongs to the migrations crate; these
//! types only describe it for queries.

pub mod event;
pub mod file_removal;
pub mod node;
pub mod processing_step;
pub mod recording;
pub mod recording_job;
pub mod schedule;
pub mod schedule_firing;
pub mod transcript_segment;
pub mod webhook_cursor;

pub use event::EventKind;
pub use processing_step::StepStatus;
pub use recording::{Analysis, RecordingStatus, Segments, TimeSpan, VideoInfo};
pub use recording_job::{EndCause, JobStatus, LiveProgress, PastRun, PastRuns, StopReason};
pub use schedule::ScheduleKind;
pub use schedule_firing::FiringOutcome;

/// Serializes an absent value as its type's default (an empty list for a
/// JSON list column), so clients always get the same shape.
pub(crate) fn none_as_default<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: serde::Serialize + Default,
    S: serde::Serializer,
{
    match value {
        Some(value) => value.serialize(serializer),
        None => T::default().serialize(serializer),
    }
}
