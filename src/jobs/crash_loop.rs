//! A recorder that fails the same way within moments of every start has
//! a cause no restart fixes (a refused option, a stream its container
//! cannot hold, a source that answers 404): restarting it again only fills
//! the log. Pure functions over a job's runs, shared by the restart
//! decision and the job's final error.

use std::time::Duration;

use time::OffsetDateTime;

use crate::store::Job;
use crate::supervisor::ExitOutcome;

/// A run that ends within this of its start failed "at once". ffmpeg
/// refusing a source takes a few hundred milliseconds on a busy machine;
/// a run that reached its source records for longer.
pub const FAST_FAILURE: Duration = Duration::from_secs(2);

/// Runs in a row that failed at once, the same way, after which the
/// recorder is not started again: the first start and two restarts.
pub const FAST_FAILURES_TO_GIVE_UP: usize = 3;

/// When the job's current run started: its first start, or the end of the
/// run before plus the wait before this one.
pub fn run_started_at(job: &Job) -> OffsetDateTime {
    let last = job.attempts.as_ref().and_then(|runs| runs.0.last());
    match last {
        Some(run) => {
            let wait = Duration::from_millis(run.restarted_after_ms);
            run.ended_at.unwrap_or(job.started_at) + wait
        }
        None => job.started_at,
    }
}

/// How the current run's exit is recorded in a job's history.
pub fn exit_fields(outcome: &ExitOutcome) -> (Option<i32>, Option<i32>) {
    match outcome {
        ExitOutcome::Exited(code) => (Some(*code), None),
        ExitOutcome::Signalled(signal) => (None, Some(*signal)),
        ExitOutcome::Vanished(_) => (None, None),
    }
}

/// How many runs in a row, ending with the current one (which ended with
/// `outcome` at `ended_at`), ended within [`FAST_FAILURE`] of their start
/// with the same exit status. 0 when the current run lasted longer.
pub fn repeated_fast_failures(job: &Job, outcome: &ExitOutcome, ended_at: OffsetDateTime) -> usize {
    if matches!(outcome, ExitOutcome::Vanished(_)) {
        return 0;
    }
    let lasted = ended_at - run_started_at(job);
    if lasted >= FAST_FAILURE {
        return 0;
    }
    let status = exit_fields(outcome);
    let earlier = job
        .attempts
        .as_ref()
        .map(|runs| {
            runs.0
                .iter()
                .rev()
                .take_while(|run| {
                    run.lasted_ms
                        .is_some_and(|ms| u128::from(ms) < FAST_FAILURE.as_millis())
                        && (run.exit_code, run.exit_signal) == status
                })
                .count()
        })
        .unwrap_or(0);
    1 + earlier
}

/// Which step of the backoff the restart after the current run (which
/// ended at `ended_at`) waits: 1 plus the runs before it that, like it,
/// lasted less than `healthy`, in a row. A healthy run starts over at 1,
/// so a source that drops once a day is not made to wait a minute.
pub fn restart_streak(job: &Job, ended_at: OffsetDateTime, healthy: Duration) -> u32 {
    if ended_at - run_started_at(job) >= healthy {
        return 1;
    }
    let earlier = job
        .attempts
        .iter()
        .flat_map(|runs| runs.0.iter())
        .rev()
        .take_while(|run| {
            run.lasted_ms
                .is_some_and(|ms| u128::from(ms) < healthy.as_millis())
        })
        .count();
    u32::try_from(earlier).unwrap_or(u32::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{JobStatus, PastRun, PastRuns};
    use crate::jobs::fixtures;

    fn job(runs: Vec<PastRun>) -> Job {
        Job {
            process_id: None,
            process_start_time: None,
            attempt: runs.len() as i32 + 1,
            attempts: Some(PastRuns(runs)),
            ..fixtures::job(1, JobStatus::Running)
        }
    }

    fn run(attempt: i32, ended_at_ms: i64, lasted_ms: u64, code: i32) -> PastRun {
        PastRun {
            attempt,
            process_id: None,
            exit_code: Some(code),
            exit_signal: None,
            ended_at: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ended_at_ms)),
            restarted_after_ms: 1000,
            lasted_ms: Some(lasted_ms),
        }
    }

    #[test]
    fn runs_that_fail_the_same_way_at_once_are_counted_in_a_row() {
        let at = |ms| OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
        let first = job(vec![]);
        assert_eq!(
            repeated_fast_failures(&first, &ExitOutcome::Exited(1), at(300)),
            1
        );
        assert_eq!(
            repeated_fast_failures(&first, &ExitOutcome::Exited(1), at(2500)),
            0
        );

        // Two earlier runs failed at once with code 1; this one too.
        let two = job(vec![run(1, 200, 200, 1), run(2, 1500, 300, 1)]);
        assert_eq!(run_started_at(&two), at(2500));
        assert_eq!(
            repeated_fast_failures(&two, &ExitOutcome::Exited(1), at(2900)),
            3
        );
        // Another way of failing breaks the series.
        assert_eq!(
            repeated_fast_failures(&two, &ExitOutcome::Exited(8), at(2900)),
            1
        );
        // A run that recorded for a while breaks it too.
        let long = job(vec![run(1, 200, 200, 1), run(2, 60_000, 57_000, 1)]);
        assert_eq!(
            repeated_fast_failures(&long, &ExitOutcome::Exited(1), at(61_100)),
            1
        );
    }

    #[test]
    fn the_backoff_grows_with_short_runs_and_starts_over_after_a_healthy_one() {
        let at = |ms| OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
        let healthy = Duration::from_secs(30);
        // The first run: its length alone decides.
        assert_eq!(restart_streak(&job(vec![]), at(300), healthy), 1);
        assert_eq!(restart_streak(&job(vec![]), at(40_000), healthy), 1);
        // Two short runs before a short one: the third step.
        let short = job(vec![run(1, 200, 200, 1), run(2, 1500, 300, 1)]);
        assert_eq!(restart_streak(&short, at(2900), healthy), 3);
        // A healthy run before: counted from after it.
        let mixed = job(vec![
            run(1, 200, 200, 1),
            run(2, 60_000, 58_800, 1),
            run(3, 61_300, 300, 1),
        ]);
        assert_eq!(run_started_at(&mixed), at(62_300));
        assert_eq!(restart_streak(&mixed, at(62_600), healthy), 2);
        // The current run was healthy: back to the first step.
        assert_eq!(restart_streak(&short, at(40_000), healthy), 1);
    }
}
