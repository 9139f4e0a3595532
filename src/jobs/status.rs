//! The job state machine, free of I/O: given how a recorder ended and what
//! state its job was in, which final state is right and why.

use std::time::Duration;

use crate::entity::{EndCause, JobStatus, StopReason};
use crate::store::jobs::Verdict;
use crate::supervisor::ExitOutcome;

/// Why a job is being ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The recorder process ended (owned child or adopted process), after
    /// this stop signal if a stop sequence had begun, that long after the
    /// sequence's first signal.
    Process {
        outcome: ExitOutcome,
        stop_signal: Option<i32>,
        stop_duration: Option<Duration>,
    },
    /// Reconciliation found the process gone or its PID reused.
    ProcessGone(String),
    /// The recorder could not be started at all.
    SpawnFailed(String),
    /// Another node's recorder, whose node stopped sending heartbeats:
    /// nothing here can know how it went, nor read what it wrote.
    NodeLost(String),
}

/// What is known of the job when it ends, besides how its process went.
#[derive(Debug, Clone, Copy)]
pub struct JobContext<'a> {
    pub status: JobStatus,
    pub stop_reason: Option<StopReason>,
    pub output_has_data: bool,
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
/// - Otherwise exit code 0 is `Completed`; a non-zero exit or a signal
///   nobody asked for is `Failed`.
/// - When the exit status is unknown (the process ended while nobody could
///   wait for it), the output decides: data means `Completed`.
/// - A failed spawn is `Failed`.
pub fn verdict(job: JobContext<'_>, ending: &Ending) -> Verdict {
    let (status, error) = status_and_error(&job, ending);
    let recorded = Recorded::of(ending);
    Verdict {
        status,
        error,
        exit_code: recorded.exit_code,
        exit_signal: recorded.exit_signal,
        stop_signal: recorded.stop_signal,
        stop_duration_ms: recorded.stop_duration_ms,
        end_cause: end_cause(ending),
    }
}

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
        _ => current == JobStatus::Stopping,
    }
}

/// The final status and the error that explains it, if any.
fn status_and_error(job: &JobContext<'_>, ending: &Ending) -> (JobStatus, Option<String>) {
    let stop_requested = stop_requested(job.status, ending);
    let stalled = stop_requested && job.stop_reason == Some(StopReason::Stalled);
    match ending {
        Ending::SpawnFailed(reason) | Ending::NodeLost(reason) => {
            (JobStatus::Failed, Some(reason.clone()))
        }
        _ if stalled => (
            JobStatus::Failed,
            Some(
                "stalled: the recorder was alive but its output stopped growing, so it was stopped"
                    .to_owned(),
            ),
        ),
        _ if stop_requested => (
            JobStatus::Completed,
            unknown_status_note(ending).or_else(|| unclean_stop_note(ending, job.clean_exit_codes)),
        ),
        Ending::Process {
            outcome: ExitOutcome::Exited(0),
            ..
        } => (JobStatus::Completed, None),
        Ending::Process {
            outcome: ExitOutcome::Exited(code),
            ..
        } => (
            JobStatus::Failed,
            Some(format!("recorder exited with code {code}")),
        ),
        Ending::Process {
            outcome: ExitOutcome::Signalled(signal),
            ..
        } => (
            JobStatus::Failed,
            Some(format!(
                "recorder was killed by signal {signal} ({}) that nobody requested",
                signal_name(*signal)
            )),
        ),
        Ending::Process {
            outcome: ExitOutcome::Vanished(reason),
            ..
        }
        | Ending::ProcessGone(reason) => {
            if job.output_has_data {
                (JobStatus::Completed, Some(reason.clone()))
            } else {
                (
                    JobStatus::Failed,
                    Some(format!("{reason}; no output was recorded")),
                )
            }
        }
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
        Ending::Process { .. } => EndCause::Exited,
        Ending::ProcessGone(_) => EndCause::ProcessGone,
        Ending::SpawnFailed(_) => EndCause::SpawnFailed,
        Ending::NodeLost(_) => EndCause::NodeLost,
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
        }
    }

    fn stopped(outcome: ExitOutcome) -> Ending {
        Ending::Process {
            outcome,
            stop_signal: Some(2),
            stop_duration: Some(Duration::from_millis(1500)),
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
}
