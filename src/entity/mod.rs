//! sea-orm entities. The schema itself belongs to the migrations crate; these
//! types only describe it for queries.

pub mod event;
pub mod node;
pub mod processing_step;
pub mod recording;
pub mod recording_job;
pub mod webhook_cursor;

pub use processing_step::StepStatus;
pub use recording::RecordingStatus;
pub use recording_job::JobStatus;

/// Serializes a column that holds JSON text as the JSON it holds (`[]` when
/// empty), so clients get a list, not a string.
pub(crate) fn json_text<S: serde::Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    let parsed = value
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    parsed.serialize(serializer)
}
