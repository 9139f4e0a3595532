//! Live jobs as `active` lists them, and the JSON of a job held in memory.
//! A job held by the registry is serialized once, when its transition
//! commits, and `active` copies those bytes into its answer instead of
//! serializing every live job on every call (with 1,000 live jobs that is
//! ~400 KB of JSON, dates formatted one by one). Only the live progress,
//! which changes between transitions without any commit, is written at
//! answer time: it is the model's last field, so the held bytes stop just
//! before its value.

use std::sync::Arc;

use crate::entity::LiveProgress;
use crate::store::Job;

/// What the held JSON of every job ends with: the progress field, always
/// `null` in the held copy (progress is never stored), and the object's
/// end.
const PROGRESS_TAIL: &str = "null}";

/// A job's JSON as serialized when its transition committed, up to (not
/// including) the value of its `progress` field. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldJson(Arc<str>);

impl HeldJson {
    /// Serializes `job` without its progress. `None` when the model's
    /// JSON does not end with its progress field (a field added after it):
    /// such a job is then not held, and is read from the database.
    pub(super) fn of(job: &Job) -> Option<Self> {
        let without_progress = Job {
            progress: None,
            ..job.clone()
        };
        let mut json = serde_json::to_string(&without_progress).ok()?;
        let head_len = json.strip_suffix(PROGRESS_TAIL)?.len();
        if !json[..head_len].ends_with("\"progress\":") {
            return None;
        }
        json.truncate(head_len);
        Some(Self(json.into()))
    }

    /// Appends the job's JSON with `progress` to `out`.
    fn write(
        &self,
        progress: Option<&LiveProgress>,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        out.extend_from_slice(self.0.as_bytes());
        match progress {
            Some(progress) => serde_json::to_writer(&mut *out, progress)?,
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(())
    }

    /// The length of the JSON without progress, for sizing an answer.
    fn len(&self) -> usize {
        self.0.len() + PROGRESS_TAIL.len()
    }
}

/// One live job of an `active` answer.
#[derive(Clone, Debug)]
pub enum LiveJob {
    /// Held in memory as the database has it: its JSON as serialized at
    /// its last transition, with the recorder's progress now.
    Held {
        id: i32,
        json: HeldJson,
        progress: Option<LiveProgress>,
    },
    /// Read from the database (not held, or not vouched for), with its
    /// progress: the rare case, boxed so that held ones stay small.
    Read(Box<Job>),
}

impl LiveJob {
    pub fn id(&self) -> i32 {
        match self {
            Self::Held { id, .. } => *id,
            Self::Read(job) => job.id,
        }
    }

    /// Appends the job's JSON, the same bytes `serde_json` gives for the
    /// job with its progress, to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Self::Held { json, progress, .. } => json.write(progress.as_ref(), out),
            Self::Read(job) => serde_json::to_writer(out, job),
        }
    }

    /// About how many bytes its JSON takes.
    pub fn json_len_hint(&self) -> usize {
        /// A job's JSON is ~400 bytes, its progress ~150.
        const TYPICAL: usize = 600;
        match self {
            Self::Held { json, .. } => json.len() + TYPICAL / 4,
            Self::Read(_) => TYPICAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::entity::{EndCause, JobStatus, PastRun, PastRuns, StopReason};
    use crate::jobs::fixtures;

    fn progress() -> LiveProgress {
        LiveProgress {
            bytes_written: 1 << 40,
            bitrate_kbps: Some(2_500.25),
            media_seconds: 12.5,
            last_data_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(7)),
            updated_at: OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(7_250),
        }
    }

    /// Rows with every kind of field set and unset, as each transition
    /// leaves them: started, waiting to restart, restarted, stopping.
    fn rows() -> Vec<Job> {
        let started = Job {
            node: Some("node-\"a\"\u{e9}".to_owned()),
            lease_generation: Some(3),
            log_path: "/var/log/rec \\ 1.log".to_owned(),
            duration_seconds: Some(60),
            ..fixtures::job(1, JobStatus::Running)
        };
        let waiting = Job {
            process_id: None,
            process_start_time: None,
            restart_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(90)),
            exit_code: Some(1),
            error: Some("exited with 1\nlast line".to_owned()),
            ..started.clone()
        };
        let restarted = Job {
            attempt: 2,
            attempts: Some(PastRuns(vec![PastRun {
                attempt: 1,
                process_id: Some(10),
                exit_code: Some(1),
                exit_signal: None,
                ended_at: Some(OffsetDateTime::UNIX_EPOCH),
                restarted_after_ms: 500,
                lasted_ms: Some(1_234),
            }])),
            restart_at: None,
            process_id: Some(11),
            ..waiting.clone()
        };
        let stopping = Job {
            status: JobStatus::Stopping,
            stop_requested_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(100)),
            stop_reason: Some(StopReason::Requested),
            stop_signal: Some(2),
            end_cause: Some(EndCause::Exited),
            ..restarted.clone()
        };
        vec![started, waiting, restarted, stopping]
    }

    fn held_bytes(job: &Job, progress: Option<LiveProgress>) -> Vec<u8> {
        let json = HeldJson::of(job).expect("the job's JSON ends with its progress");
        let mut out = Vec::new();
        LiveJob::Held {
            id: job.id,
            json,
            progress,
        }
        .write_json(&mut out)
        .expect("written");
        out
    }

    #[test]
    fn held_json_is_the_fresh_serialization_after_each_kind_of_transition() {
        for row in rows() {
            let fresh = serde_json::to_vec(&row).expect("serialized");
            assert_eq!(held_bytes(&row, None), fresh, "{row:?}");
            let with_progress = Job {
                progress: Some(progress()),
                ..row.clone()
            };
            let fresh = serde_json::to_vec(&with_progress).expect("serialized");
            assert_eq!(held_bytes(&row, Some(progress())), fresh, "{row:?}");
        }
    }

    #[test]
    fn progress_the_row_carries_is_not_held() {
        let row = Job {
            progress: Some(progress()),
            ..fixtures::job(1, JobStatus::Running)
        };
        let bare = Job {
            progress: None,
            ..row.clone()
        };
        assert_eq!(
            held_bytes(&row, None),
            serde_json::to_vec(&bare).expect("serialized")
        );
    }

    #[test]
    fn a_job_read_from_the_database_is_serialized_as_it_is() {
        for row in rows() {
            let mut out = Vec::new();
            LiveJob::Read(Box::new(row.clone()))
                .write_json(&mut out)
                .expect("written");
            assert_eq!(out, serde_json::to_vec(&row).expect("serialized"));
        }
    }
}
