//! Rows as the store would give them, for the job service's unit tests:
//! each test changes only the fields it is about (`Job { attempt: 3,
//! ..job(1, JobStatus::Running) }`).

use time::OffsetDateTime;

use crate::entity::{JobStatus, RecordingStatus};
use crate::store::{Job, Recording};

/// A job of this node's first run, started at the epoch, nothing ended.
pub(crate) fn job(id: i32, status: JobStatus) -> Job {
    Job {
        id,
        recording_id: id,
        status,
        process_id: Some(1000 + id),
        process_start_time: Some(1),
        exit_code: None,
        exit_signal: None,
        duration_seconds: None,
        started_at: OffsetDateTime::UNIX_EPOCH,
        stop_requested_at: None,
        completed_at: None,
        error: None,
        log_path: String::new(),
        stop_reason: None,
        stop_signal: None,
        stop_duration_ms: None,
        attempt: 1,
        attempts: None,
        node: None,
        end_cause: None,
        restart_at: None,
        lease_generation: None,
        progress: None,
    }
}

/// A recording still recording, created at the epoch.
pub(super) fn recording(id: i32) -> Recording {
    Recording {
        id,
        title: String::new(),
        source: "test://x".to_owned(),
        profile: "test".to_owned(),
        status: RecordingStatus::Recording,
        output_path: format!("/nowhere/recording-{id}.mkv"),
        error: None,
        analysis: None,
        transcript: None,
        segments: None,
        processing_node: None,
        parent_id: None,
        segment_index: None,
        segment_start_ms: None,
        segment_duration_ms: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }
}
