//! sea-orm entities. The schema itself belongs to the migrations crate; these
//! types only describe it for queries.

pub mod processing_step;
pub mod recording;
pub mod recording_job;

pub use processing_step::StepStatus;
pub use recording::RecordingStatus;
pub use recording_job::JobStatus;
