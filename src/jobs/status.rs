//! The job state machine, free of I/O: given how a recorder ended and what
//! state its job was in, which final state is right and why.

use std::time::Duration;

use time::OffsetDateTime;

use crate::entity::{EndCause, JobStatus, StopReason};
use crate::store::jobs::Verdict;
use crate::supervisor::ExitOutcome;

/// How far short of its duration limit a recorder may end by itself and
/// still count as having recorded what was asked (a recorder's own limit,
/// ffmpeg's `-t`, ends it a moment before the supervisor's would).
pub const LIMIT_TOLERANCE: Duration = Duration::from_secs(1);

/// Why a job is being ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The recorder process ended (owned child or adopted process) at
    /// `ended_at`, after this stop signal if a stop sequence had begun, that
    /// long after the sequence's first signal.
    Process {
        outcome: ExitOutcome,
        stop_signal: Option<i32>,
        stop_duration: Option<Duration>,
        ended_at: OffsetDateTime,
    },
    /// A stop (or the duration limit, or shutdown) came while the recorder
    /// waited to be restarted: no process runs, the last one ended at
    /// `ended_at`.
    StoppedBetweenRuns { ended_at: OffsetDateTime },
    /// Reconciliation found the process gone or its PID reused.
    ProcessGone(String),
    /// The recorder could not be started at all.
    SpawnFailed(String),
    /// Another node's recorder, whose node lost its lease: nothing here can
    /// know how it went, nor read what it wrote.
    NodeLost(String),
    /// A start placed on another node, stopped before that node started
    /// its recorder.
    Cancelled,
}

impl Ending {
    /// When the recorder ended, when that is known (the job's
    /// `completed_at`); otherwise the commit's time stands for it.
    pub fn ended_at(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Process { ended_at, .. } | Self::StoppedBetweenRuns { ended_at } => {
                Some(*ended_at)
            }
            _ => None,
        }
    }
}

/// What is known of the job when it ends, besides how its process went.
#[derive(Debug, Clone, Copy)]
pub struct JobContext<'a> {
    pub status: JobStatus,
    pub stop_reason: Option<StopReason>,
    /// Whether any of its runs recorded data.
    pub output_has_data: bool,
    /// Whether the last run recorded data (a restarted run that could not
    /// reach its source writes nothing).
    pub last_run_had_data: bool,
    /// Which run this is (from 1).
    pub attempt: i32,
    /// The job's `duration_seconds`.
    pub duration_limit: Option<Duration>,
    /// How long its runs recorded, waits between them left out; `None`
    /// when its end time is unknown.
    pub recorded: Option<Duration>,
    /// Exit codes of the profile that mean "stopped cleanly".
    pub clean_exit_codes: &'a [i32],
}

/// Decides how a live job ends.
///
/// - A job someone asked to stop ends `Completed` however its recorder
///   went: it was told to go. If the recorder did not stop cleanly (an exit
///   code the profile does not call clean, or the SIGKILL at the end of the
///   sequence) the job says so in `error`, since its output may lack a
///   trailer. A job stopped because it stalled ends `Failed` (`stalled`).
/// - A recorder that ended by itself before its duration limit ended
///   early: `Failed`, `source_ended`, with the seconds recorded and asked.
/// - Otherwise exit code 0 is `Completed` (`source_ended`, or `duration`
///   when it ran its limit); a non-zero exit or a signal nobody asked for
///   is `Failed`. A source that ended and never came back through the
///   restarts (the last run recorded nothing) is judged by what the first
///   runs recorded, not by the last run's failure to connect.
/// - When the exit status is unknown (the process ended while nobody could
///   wait for it), the output decides: data means `Completed`.
/// - A failed spawn is `Failed`.
pub fn verdict(job: JobContext<'_>, ending: &Ending) -> Verdict {
    let stop_requested = stop_requested(job.status, ending);
    let (status, error, stop_reason) = if stop_requested {
        requested_end(&job, ending)
    } else {
        unrequested_end(&job, ending)
    };
    let recorded = Recorded::of(ending);
    Verdict {
        status,
        error,
        exit_code: recorded.exit_code,
        exit_signal: recorded.exit_signal,
        stop_signal: recorded.stop_signal,
        stop_duration_ms: recorded.stop_duration_ms,
        end_cause: end_cause(ending),
        stop_reason,
    }
}

/// A status, why (if anything is worth saying), and the stop reason to
/// record when the job had none.
type Decided = (JobStatus, Option<String>, Option<StopReason>);

/// Whether the job ended because it was asked to. With a known exit
/// status, the stop counts only if a stop signal had actually been sent: a
/// recorder that crashed just before a stop request landed still failed.
/// Without one, the job's state is all there is.
fn stop_requested(current: JobStatus, ending: &Ending) -> bool {
    match ending {
        Ending::Process {
            outcome: ExitOutcome::Exited(_) | ExitOutcome::Signalled(_),
            stop_signal,
            ..
        } => stop_signal.is_some() || (current == JobStatus::Stopping && is_clean(ending)),
        Ending::StoppedBetweenRuns { .. } => true,
        _ => current == JobStatus::Stopping,
    }
}

/// The end of a job someone (or its limit, or shutdown) asked to stop.
fn requested_end(job: &JobContext<'_>, ending: &Ending) -> Decided {
    match ending {
        Ending::Cancelled => cancelled(),
        Ending::SpawnFailed(reason) | Ending::NodeLost(reason) => {
            (JobStatus::Failed, Some(reason.clone()), None)
        }
        _ if job.stop_reason == Some(StopReason::Stalled) => (
            JobStatus::Failed,
            Some(
                "stalled: the recorder was alive but its output stopped growing, so it was stopped"
                    .to_owned(),
            ),
            None,
        ),
        _ => (
            JobStatus::Completed,
            unknown_status_note(ending).or_else(|| unclean_stop_note(ending, job.clean_exit_codes)),
            None,
        ),
    }
}

/// The end of a job nobody asked to stop.
fn unrequested_end(job: &JobContext<'_>, ending: &Ending) -> Decided {
    let exited = match ending {
        Ending::SpawnFailed(reason) | Ending::NodeLost(reason) => {
            return (JobStatus::Failed, Some(reason.clone()), None);
        }
        Ending::Cancelled => return cancelled(),
        Ending::Process {
            outcome: ExitOutcome::Vanished(reason),
            ..
        }
        | Ending::ProcessGone(reason) => return judged_by_output(job, reason),
        Ending::StoppedBetweenRuns { .. } => return (JobStatus::Completed, None, None),
        Ending::Process { outcome, .. } => outcome,
    };
    let failure = match exited {
        ExitOutcome::Exited(0) => None,
        ExitOutcome::Exited(code) => Some(format!("recorder exited with code {code}")),
        ExitOutcome::Signalled(signal) => Some(format!(
            "recorder was killed by signal {signal} ({}) that nobody requested",
            signal_name(*signal)
        )),
        ExitOutcome::Vanished(_) => None,
    };
    if let (Some(limit), Some(recorded)) = (job.duration_limit, job.recorded)
        && recorded + LIMIT_TOLERANCE < limit
    {
        let early = format!(
            "ended early: the source ended after {:.1} s of the {} s asked for",
            recorded.as_secs_f64(),
            limit.as_secs()
        );
        let error = match failure {
            Some(failure) => format!("{early}; {failure}"),
            None => early,
        };
        return (
            JobStatus::Failed,
            Some(error),
            Some(StopReason::SourceEnded),
        );
    }
    let reason = match job.duration_limit {
        Some(_) => StopReason::Duration,
        None => StopReason::SourceEnded,
    };
    if job.attempt > 1 && !job.last_run_had_data && job.output_has_data {
        // The source went away and the restarts found nothing to record.
        let note = format!(
            "the source did not come back after {} restart(s){}",
            job.attempt - 1,
            failure.map(|f| format!(" ({f})")).unwrap_or_default()
        );
        return (JobStatus::Completed, Some(note), Some(reason));
    }
    match (exited, failure) {
        (_, None) => (JobStatus::Completed, None, Some(reason)),
        (ExitOutcome::Signalled(_), failure) => (JobStatus::Failed, failure, None),
        (_, failure) => (JobStatus::Failed, failure, Some(StopReason::SourceEnded)),
    }
}

/// A placed job stopped before its recorder started: it did what was
/// asked (nothing), and says so.
fn cancelled() -> Decided {
    (
        JobStatus::Completed,
        Some("stopped before any node started its recorder".to_owned()),
        Some(StopReason::Requested),
    )
}

/// A job whose exit status is unknown: what it left decides.
fn judged_by_output(job: &JobContext<'_>, reason: &str) -> Decided {
    if job.output_has_data {
        (JobStatus::Completed, Some(reason.to_owned()), None)
    } else {
        (
            JobStatus::Failed,
            Some(format!("{reason}; no output was recorded")),
            None,
        )
    }
}

/// What an ending tells of the process, as recorded on the job.
#[derive(Default)]
struct Recorded {
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    stop_signal: Option<i32>,
    stop_duration_ms: Option<i64>,
}

impl Recorded {
    fn of(ending: &Ending) -> Self {
        let Ending::Process {
            outcome,
            stop_signal,
            stop_duration,
            ..
        } = ending
        else {
            return Self::default();
        };
        let (exit_code, exit_signal) = match outcome {
            ExitOutcome::Exited(code) => (Some(*code), None),
            ExitOutcome::Signalled(signal) => (None, Some(*signal)),
            ExitOutcome::Vanished(_) => (None, None),
        };
        Self {
            exit_code,
            exit_signal,
            stop_signal: *stop_signal,
            stop_duration_ms: stop_duration.map(|d| d.as_millis() as i64),
        }
    }
}

/// What was observed of the job's end, whatever its verdict.
fn end_cause(ending: &Ending) -> EndCause {
    match ending {
        Ending::Process {
            outcome: ExitOutcome::Vanished(_),
            ..
        } => EndCause::Vanished,
        Ending::Process { .. } | Ending::StoppedBetweenRuns { .. } => EndCause::Exited,
        Ending::ProcessGone(_) => EndCause::ProcessGone,
        Ending::SpawnFailed(_) => EndCause::SpawnFailed,
        Ending::NodeLost(_) => EndCause::NodeLost,
        Ending::Cancelled => EndCause::Cancelled,
    }
}

/// Says why a stopped recorder's end was not clean, if it was not.
fn unclean_stop_note(ending: &Ending, clean_exit_codes: &[i32]) -> Option<String> {
    match ending {
        Ending::Process {
            outcome: ExitOutcome::Exited(code),
            ..
        } if !clean_exit_codes.contains(code) => Some(format!(
            "unclean stop: the recorder exited with code {code}, not a clean-stop code ({clean_exit_codes:?}); its output may lack a trailer"
        )),
        Ending::Process {
            outcome: ExitOutcome::Signalled(signal),
            stop_duration,
            ..
        } => Some(format!(
            "unclean stop: the recorder was ended by {}{}; its output may lack a trailer",
            signal_name(*signal),
            stop_duration
                .map(|d| format!(" {:.1} s after the first stop signal", d.as_secs_f64()))
                .unwrap_or_default()
        )),
        _ => None,
    }
}

/// Exit code 0: a clean end, whoever asked for it.
fn is_clean(ending: &Ending) -> bool {
    matches!(
        ending,
        Ending::Process {
            outcome: ExitOutcome::Exited(0),
            ..
        }
    )
}

fn unknown_status_note(ending: &Ending) -> Option<String> {
    match ending {
        Ending::Process {
            outcome: ExitOutcome::Vanished(reason),
            ..
        }
        | Ending::ProcessGone(reason) => Some(reason.clone()),
        _ => None,
    }
}

/// Conventional name of a signal number, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExitOutcome::*;

    fn ctx(status: JobStatus, data: bool) -> JobContext<'static> {
        JobContext {
            status,
            stop_reason: None,
            output_has_data: data,
            last_run_had_data: data,
            attempt: 1,
            duration_limit: None,
            recorded: Some(Duration::from_secs(5)),
            clean_exit_codes: &[0, 255],
        }
    }

    fn ended(current: JobStatus, ending: Ending, data: bool) -> JobStatus {
        verdict(ctx(current, data), &ending).status
    }

    fn exit(outcome: ExitOutcome) -> Ending {
        Ending::Process {
            outcome,
            stop_signal: None,
            stop_duration: None,
            ended_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn stopped(outcome: ExitOutcome) -> Ending {
        Ending::Process {
            outcome,
            stop_signal: Some(2),
            stop_duration: Some(Duration::from_millis(1500)),
            ended_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn exits_of_running_jobs() {
        let r = JobStatus::Running;
        assert_eq!(ended(r, exit(Exited(0)), false), JobStatus::Completed);
        assert_eq!(ended(r, exit(Exited(3)), true), JobStatus::Failed);
        assert_eq!(ended(r, exit(Signalled(9)), true), JobStatus::Failed);
        let gone = || Ending::ProcessGone("x".into());
        assert_eq!(ended(r, gone(), true), JobStatus::Completed);
        assert_eq!(ended(r, gone(), false), JobStatus::Failed);
    }

    #[test]
    fn a_requested_stop_completes_whatever_the_exit() {
        let s = JobStatus::Stopping;
        assert_eq!(ended(s, stopped(Signalled(9)), false), JobStatus::Completed);
        assert_eq!(ended(s, stopped(Exited(255)), true), JobStatus::Completed);
        assert_eq!(ended(s, exit(Exited(0)), true), JobStatus::Completed);
        assert_eq!(
            ended(s, exit(Vanished("gone".into())), true),
            JobStatus::Completed
        );
        assert_eq!(
            ended(s, Ending::SpawnFailed("x".into()), false),
            JobStatus::Failed
        );
        let v = verdict(ctx(s, true), &stopped(Signalled(9)));
        assert_eq!((v.exit_code, v.exit_signal), (None, Some(9)));
        assert_eq!((v.stop_signal, v.stop_duration_ms), (Some(2), Some(1500)));
    }

    #[test]
    fn unclean_stops_say_so_and_clean_ones_do_not() {
        let s = JobStatus::Stopping;
        assert_eq!(verdict(ctx(s, true), &stopped(Exited(255))).error, None);
        let hard = verdict(ctx(s, true), &stopped(Exited(123)));
        assert!(hard.error.unwrap_or_default().contains("code 123"));
        let killed = verdict(ctx(s, true), &stopped(Signalled(9)));
        assert!(killed.error.unwrap_or_default().contains("SIGKILL"));
    }

    #[test]
    fn a_stall_fails_the_job() {
        let job = JobContext {
            stop_reason: Some(StopReason::Stalled),
            ..ctx(JobStatus::Stopping, true)
        };
        let v = verdict(job, &stopped(Exited(255)));
        assert_eq!(v.status, JobStatus::Failed);
        assert!(v.error.unwrap_or_default().starts_with("stalled"));
    }

    #[test]
    fn a_crash_just_before_a_stop_request_is_still_a_failure() {
        let s = JobStatus::Stopping;
        assert_eq!(ended(s, exit(Exited(3)), true), JobStatus::Failed);
        assert_eq!(ended(s, exit(Signalled(11)), true), JobStatus::Failed);
    }

    fn limited(seconds: u64, recorded: f64) -> JobContext<'static> {
        JobContext {
            duration_limit: Some(Duration::from_secs(seconds)),
            recorded: Some(Duration::from_secs_f64(recorded)),
            ..ctx(JobStatus::Running, true)
        }
    }

    #[test]
    fn a_recorder_that_ends_before_its_limit_ended_early() {
        let v = verdict(limited(30, 10.2), &exit(Exited(0)));
        assert_eq!(v.status, JobStatus::Failed);
        assert_eq!(v.stop_reason, Some(StopReason::SourceEnded));
        assert_eq!(
            v.error.as_deref(),
            Some("ended early: the source ended after 10.2 s of the 30 s asked for")
        );
        let crashed = verdict(limited(30, 4.0), &exit(Exited(1)));
        assert!(
            crashed
                .error
                .unwrap_or_default()
                .ends_with("; recorder exited with code 1")
        );
    }

    #[test]
    fn a_recorder_that_ends_at_its_own_limit_completed() {
        let v = verdict(limited(30, 29.5), &exit(Exited(0)));
        assert_eq!(v.status, JobStatus::Completed);
        assert_eq!(v.stop_reason, Some(StopReason::Duration));
        assert_eq!(v.error, None);
    }

    #[test]
    fn an_unlimited_job_whose_source_ended_completed_and_says_why() {
        let v = verdict(ctx(JobStatus::Running, true), &exit(Exited(0)));
        assert_eq!(v.status, JobStatus::Completed);
        assert_eq!(v.stop_reason, Some(StopReason::SourceEnded));
        let crashed = verdict(ctx(JobStatus::Running, true), &exit(Signalled(11)));
        assert_eq!(crashed.status, JobStatus::Failed);
        assert_eq!(crashed.stop_reason, None, "a crash is not its source");
    }

    #[test]
    fn a_source_that_never_came_back_is_judged_by_what_was_recorded() {
        let gone = JobContext {
            attempt: 4,
            last_run_had_data: false,
            ..ctx(JobStatus::Running, true)
        };
        let v = verdict(gone, &exit(Exited(1)));
        assert_eq!(v.status, JobStatus::Completed);
        assert_eq!(v.stop_reason, Some(StopReason::SourceEnded));
        assert_eq!(
            v.error.as_deref(),
            Some("the source did not come back after 3 restart(s) (recorder exited with code 1)")
        );
        // Every run recorded and crashed: a crashing recorder, not a source.
        let crashing = JobContext {
            attempt: 3,
            ..ctx(JobStatus::Running, true)
        };
        assert_eq!(
            verdict(crashing, &exit(Exited(3))).status,
            JobStatus::Failed
        );
    }

    #[test]
    fn a_stop_between_runs_completes_at_the_last_runs_end() {
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(42);
        let ending = Ending::StoppedBetweenRuns { ended_at: at };
        let v = verdict(
            JobContext {
                stop_reason: Some(StopReason::Requested),
                ..ctx(JobStatus::Stopping, true)
            },
            &ending,
        );
        assert_eq!(v.status, JobStatus::Completed);
        assert_eq!(v.error, None);
        assert_eq!(ending.ended_at(), Some(at));
    }
}
