//! Segmented recording, on the job's side: where each run of a segmented
//! recorder writes (its own segments and list, so restarted runs are never
//! joined), what tells whether its runs recorded anything, and what
//! becomes of each segment the supervisor reports closed: a recording of
//! its own, linked to the job's (its parent), processed at once while the
//! stream goes on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{Instrument, error, info, info_span};

use super::crash_loop::run_started_at;
use super::request::profile_named;
use super::{JobError, JobService};
use crate::recordings::output;
use crate::store::{self, Job, Recording};
use crate::supervisor::{ClosedSegment, SegmentList, SpawnError};

/// Where one run of a segmented recorder writes.
pub(super) struct SegmentRun {
    /// Its `{output}`: a file name pattern (`run1-%05d.mkv`).
    pub(super) pattern: PathBuf,
    /// Its `{segment_list}`, followed by the supervisor.
    pub(super) list: SegmentList,
}

/// Creates the directory of the job's segments and says where this run
/// writes them.
pub(super) async fn prepare_run(
    recording: &Recording,
    job: &Job,
) -> Result<SegmentRun, SpawnError> {
    let output = Path::new(&recording.output_path);
    let dir = output::segments_dir(output);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|source| SpawnError::Output { path: dir, source })?;
    Ok(SegmentRun {
        pattern: output::segment_pattern(output, job.attempt),
        list: current_list(recording, job),
    })
}

/// The list of the job's current run.
pub(super) fn current_list(recording: &Recording, job: &Job) -> SegmentList {
    let offset = Duration::try_from(run_started_at(job) - job.started_at).unwrap_or_default();
    SegmentList {
        path: output::segment_list(Path::new(&recording.output_path), job.attempt),
        offset,
    }
}

/// The lists of every run of the job, each with where its run started:
/// the first at the job's start, each later one when the run before it
/// ended plus the wait before it.
fn all_lists(recording: &Recording, job: &Job) -> Vec<SegmentList> {
    let output = Path::new(&recording.output_path);
    let runs = job.attempts.iter().flat_map(|runs| runs.0.iter());
    let later = runs.map(|run| {
        let ended = run.ended_at.unwrap_or(job.started_at);
        ended + Duration::from_millis(run.restarted_after_ms)
    });
    std::iter::once(job.started_at)
        .chain(later)
        .zip(1..=job.attempt.max(1))
        .map(|(started, attempt)| SegmentList {
            path: output::segment_list(output, attempt),
            offset: Duration::try_from(started - job.started_at).unwrap_or_default(),
        })
        .collect()
}

impl JobService {
    /// Whether the recording's profile records segments.
    pub(super) fn is_segmented(&self, recording: &Recording) -> bool {
        profile_named(&self.inner.settings.profiles, &recording.profile)
            .is_some_and(|profile| profile.segment_seconds.is_some())
    }

    /// The files whose state tells what the job's runs recorded: their
    /// outputs, or for a segmented recording the lists of their closed
    /// segments (a line each).
    pub(super) fn recorded_files(&self, job: &Job, recording: &Recording) -> Vec<PathBuf> {
        if self.is_segmented(recording) {
            output::segment_lists(recording, job.attempt)
        } else {
            output::recorded_files(recording)
        }
    }

    /// Has every run's list read again once a segmented job ended: the
    /// segments nobody followed are found (see
    /// [`crate::supervisor::Supervisor::sweep_segments`]).
    pub(super) fn sweep_segments(&self, job: &Job, recording: &Recording) {
        if self.is_segmented(recording) {
            let lists = all_lists(recording, job);
            self.inner.supervisor.sweep_segments(job.id, lists);
        }
    }

    /// Makes each reported segment a recording, in the order reported
    /// (which numbers them), until the service closes.
    pub(super) async fn record_segments(self, mut closed: mpsc::UnboundedReceiver<ClosedSegment>) {
        while let Some(segment) = closed.recv().await {
            let span = info_span!("job", job_id = segment.job_id);
            let add = || self.record_segment(&segment);
            let recorded = self
                .through_outage("record a closed segment", add)
                .instrument(span.clone())
                .await;
            if let Err(e) = recorded {
                error!(parent: &span, error = %e, path = %segment.path.display(), "could not record a closed segment");
            }
        }
    }

    /// Adds one closed segment as a recording of its own and launches its
    /// processing; a segment already known is left alone.
    async fn record_segment(&self, segment: &ClosedSegment) -> Result<(), JobError> {
        let db = &self.inner.db;
        let job = self.job(segment.job_id).await?;
        let Some(parent) = store::recordings::find_recording(db, job.recording_id).await? else {
            return Ok(());
        };
        let path = segment.path.display().to_string();
        let new = store::segments::NewSegment {
            path: &path,
            start_ms: millis(segment.start),
            duration_ms: millis(segment.duration),
        };
        if let Some(added) = store::segments::add_segment(db, &parent, new).await? {
            info!(
                recording_id = added.id,
                parent = parent.id,
                index = added.segment_index,
                "segment closed; processing it"
            );
            self.inner.processing.launch(added.id);
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::entity::{JobStatus, PastRun, PastRuns};
    use crate::jobs::fixtures;

    #[test]
    fn each_runs_list_is_placed_where_its_run_started() {
        let at = |ms| OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
        let past = |attempt, ended_ms, wait_ms| PastRun {
            attempt,
            process_id: None,
            exit_code: Some(1),
            exit_signal: None,
            ended_at: Some(at(ended_ms)),
            restarted_after_ms: wait_ms,
            lasted_ms: None,
        };
        let job = Job {
            recording_id: 7,
            process_id: None,
            process_start_time: None,
            started_at: at(0),
            attempt: 3,
            attempts: Some(PastRuns(vec![past(1, 10_000, 2000), past(2, 30_000, 500)])),
            ..fixtures::job(3, JobStatus::Running)
        };
        let recording = Recording {
            source: "udp://127.0.0.1:9".to_owned(),
            profile: "radio".to_owned(),
            output_path: "/r/recording-7.mkv".to_owned(),
            created_at: at(0),
            updated_at: at(0),
            ..fixtures::recording(7)
        };
        let lists: Vec<(String, u128)> = all_lists(&recording, &job)
            .into_iter()
            .map(|l| (l.path.display().to_string(), l.offset.as_millis()))
            .collect();
        let dir = "/r/recording-7.segments";
        assert_eq!(
            lists,
            [
                (format!("{dir}/run1.csv"), 0),
                (format!("{dir}/run2.csv"), 12_000),
                (format!("{dir}/run3.csv"), 30_500),
            ]
        );
        assert_eq!(current_list(&recording, &job).offset.as_millis(), 30_500);
    }
}
