//! sea-orm entities. The schema itself belongs to the migrations crate; these
//! types only describe it for queries.

pub mod recording;
pub mod recording_job;

pub use recording::RecordingStatus;
pub use recording_job::JobStatus;
