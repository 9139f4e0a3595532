//! How a job ended, decided from what is known: the verdict of the pure
//! state machine (`status::verdict`) told with what explains a failure (a
//! full disk, the cause its log names, a crash loop), and what becomes of
//! its recording. No write happens here: `finish.rs` commits what this
//! decides.

use std::time::Duration;

use super::request::profile_named;
use super::status::{Ending, JobContext, verdict};
use super::{JobService, crash_loop};
use crate::entity::{JobStatus, RecordingStatus};
use crate::recordings::output::{self, OutputState, Outputs};
use crate::redact;
use crate::store::jobs::{RecordingOutcome, Verdict};
use crate::store::{Job, Recording};
use crate::supervisor::ExitOutcome;

impl JobService {
    /// What explains a recorder that failed by itself: a full disk, or the
    /// cause its log names, and whether it failed at once again and again
    /// (read off the disk only for such failures).
    pub(super) async fn failure_context(
        &self,
        job: &Job,
        recording: &Recording,
        ending: &Ending,
    ) -> FailureContext {
        let Ending::Process {
            outcome: outcome @ (ExitOutcome::Exited(_) | ExitOutcome::Signalled(_)),
            stop_signal: None,
            ended_at,
            ..
        } = ending
        else {
            return FailureContext::default();
        };
        if *outcome == ExitOutcome::Exited(0) {
            return FailureContext::default();
        }
        let fast_failures = crash_loop::repeated_fast_failures(job, outcome, *ended_at);
        let recordings = self.inner.settings.recordings_dir();
        let log = std::path::PathBuf::from(&job.log_path);
        let source = recording.source.clone();
        let read = tokio::task::spawn_blocking(move || {
            let disk_full = output::disk_full(&recordings, &log);
            // Recorders print the URL they open: its secrets stay out.
            let log_cause = output::log_cause(&log).map(|c| redact::scrub(&c, &source));
            (disk_full, log_cause)
        });
        let (disk_full, log_cause) = read.await.unwrap_or_default();
        FailureContext {
            disk_full,
            log_cause,
            fast_failures,
        }
    }

    /// The job's verdict and its recording's fate, from what is known.
    pub(super) fn decide(
        &self,
        job: &Job,
        recording: &Recording,
        ending: &Ending,
        outputs: &Outputs,
        context: FailureContext,
    ) -> (Verdict, RecordingOutcome) {
        let output = &outputs.state;
        let profile = profile_named(&self.inner.settings.profiles, &recording.profile);
        let clean_exit_codes: &[i32] = profile.map_or(&[0], |p| &p.clean_exit_codes);
        let mut verdict = verdict(
            JobContext {
                status: job.status,
                stop_reason: job.stop_reason,
                output_has_data: output.has_data(),
                last_run_had_data: outputs.last_run_had_data,
                attempt: job.attempt,
                duration_limit: job
                    .duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map(Duration::from_secs),
                recorded: recorded(job, ending),
                clean_exit_codes,
            },
            ending,
        );
        if verdict.status == JobStatus::Failed {
            verdict.error = context.explain(verdict.error.take());
        }
        // With no step to run and no segments to join, the recording is
        // ready as soon as its job ends: no processing round for nothing.
        // A segmented recording's segments are processed one by one, each
        // a recording of its own: nothing is left for it.
        let nothing_to_process = profile.is_some_and(|p| {
            p.segment_seconds.is_some() || (p.pipeline().is_empty() && recording.segments.is_none())
        });
        let outcome = recording_outcome(ending, output, &verdict, nothing_to_process);
        (verdict, outcome)
    }
}

/// How long the job's runs recorded: from its start to its end, the waits
/// between runs left out. `None` when its end time is unknown.
fn recorded(job: &Job, ending: &Ending) -> Option<Duration> {
    let ended_at = ending.ended_at()?;
    let waited: u64 = job
        .attempts
        .iter()
        .flat_map(|runs| runs.0.iter())
        .map(|run| run.restarted_after_ms)
        .sum();
    let wall = Duration::try_from(ended_at - job.started_at).ok()?;
    Some(wall.saturating_sub(Duration::from_millis(waited)))
}

/// A recording's fate when its job ends.
fn recording_outcome(
    ending: &Ending,
    output: &OutputState,
    verdict: &Verdict,
    nothing_to_process: bool,
) -> RecordingOutcome {
    match output {
        // The file is on the lost node, not here: judged there when the
        // node returns.
        _ if matches!(ending, Ending::NodeLost(_)) => RecordingOutcome {
            status: RecordingStatus::Failed,
            error: verdict.error.clone(),
        },
        OutputState::HasData if nothing_to_process => RecordingOutcome {
            status: RecordingStatus::Ready,
            error: None,
        },
        OutputState::HasData => RecordingOutcome {
            status: RecordingStatus::Processing,
            error: None,
        },
        other => RecordingOutcome {
            status: RecordingStatus::Failed,
            error: Some(match &verdict.error {
                Some(job_error) => format!("{}; {job_error}", other.describe()),
                None => other.describe(),
            }),
        },
    }
}

/// What is known about why a recorder failed by itself, beside its exit
/// status.
#[derive(Debug, Default)]
pub(super) struct FailureContext {
    /// The recordings' disk is full.
    disk_full: Option<String>,
    /// The line of the recorder's log that says why.
    log_cause: Option<String>,
    /// Runs in a row that failed this way within a second of their start.
    fast_failures: usize,
}

impl FailureContext {
    /// The job's error, told with what explains it.
    pub(super) fn explain(self, error: Option<String>) -> Option<String> {
        let mut error = match (self.disk_full, error) {
            (Some(full), Some(error)) => Some(format!("{full} ({error})")),
            (Some(full), None) => Some(full),
            (None, Some(error)) => Some(match self.log_cause {
                Some(cause) => format!("{error}: {cause}"),
                None => error,
            }),
            (None, None) => None,
        };
        if self.fast_failures >= crash_loop::FAST_FAILURES_TO_GIVE_UP
            && let Some(error) = error.as_mut()
        {
            error.push_str(&format!(
                " (it failed this way within 2 s of starting {} times in a row, so it was not started again)",
                self.fast_failures
            ));
        }
        error
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::entity::EndCause;

    /// A verdict as the state machine gives it, for tests.
    pub(in crate::jobs) fn verdict(status: JobStatus, error: Option<&str>) -> Verdict {
        Verdict {
            status,
            error: error.map(str::to_owned),
            exit_code: Some(0),
            exit_signal: None,
            stop_signal: None,
            stop_duration_ms: None,
            end_cause: EndCause::Exited,
            stop_reason: None,
        }
    }

    #[test]
    fn a_recording_is_processed_only_when_there_is_data_and_a_pipeline() {
        let ended = Ending::ProcessGone("gone".to_owned());
        let ok = verdict(JobStatus::Completed, None);
        let data = OutputState::HasData;
        assert_eq!(
            recording_outcome(&ended, &data, &ok, false).status,
            RecordingStatus::Processing
        );
        assert_eq!(
            recording_outcome(&ended, &data, &ok, true).status,
            RecordingStatus::Ready
        );
        let failed = verdict(JobStatus::Failed, Some("recorder exited with code 3"));
        let missing = recording_outcome(&ended, &OutputState::Missing, &failed, false);
        assert_eq!(missing.status, RecordingStatus::Failed);
        assert_eq!(
            missing.error.as_deref(),
            Some("the recorder produced no output file; recorder exited with code 3")
        );
    }

    #[test]
    fn a_lost_nodes_recording_fails_whatever_is_on_this_disk() {
        let lost = Ending::NodeLost("node lost: node `a` is unknown".to_owned());
        let failed = verdict(JobStatus::Failed, Some("node lost: node `a` is unknown"));
        let outcome = recording_outcome(&lost, &OutputState::HasData, &failed, false);
        assert_eq!(outcome.status, RecordingStatus::Failed);
        assert_eq!(outcome.error, failed.error);
    }
}
