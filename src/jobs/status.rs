//! The job state machine, free of I/O: given how a recorder ended and what
//! state its job was in, which final state is right and why.

use crate::entity::JobStatus;
use crate::supervisor::ExitOutcome;

/// Why a job is being ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The recorder process ended (owned child or adopted process), after
    /// this stop signal if a stop sequence had begun.
    Process {
        outcome: ExitOutcome,
        stop_signal: Option<i32>,
    },
    /// Reconciliation found the process gone or its PID reused.
    ProcessGone(String),
    /// The recorder could not be started at all.
    SpawnFailed(String),
}

/// The job's final state and the error to record with it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: JobStatus,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

/// Decides how a live job ends.
///
/// - A job someone asked to stop (`Stopping`) ends `Completed` however its
///   recorder went: it was told to go. Only a failed spawn is a failure.
/// - Otherwise exit code 0 is `Completed`; a non-zero exit or a signal
///   nobody asked for is `Failed`.
/// - When the exit status is unknown (the process ended while nobody could
///   wait for it), the output decides: data means `Completed`.
pub fn verdict(current: JobStatus, ending: &Ending, output_has_data: bool) -> Verdict {
    // With a known exit status, the stop counts only if a stop signal had
    // actually been sent: a recorder that crashed just before a stop request
    // landed still failed. Without one, the job's state is all there is.
    let stop_requested = match ending {
        Ending::Process {
            outcome: ExitOutcome::Exited(_) | ExitOutcome::Signalled(_),
            stop_signal,
        } => stop_signal.is_some() || (current == JobStatus::Stopping && is_clean(ending)),
        _ => current == JobStatus::Stopping,
    };
    let (exit_code, exit_signal) = match ending {
        Ending::Process {
            outcome: ExitOutcome::Exited(code),
            ..
        } => (Some(*code), None),
        Ending::Process {
            outcome: ExitOutcome::Signalled(signal),
            ..
        } => (None, Some(*signal)),
        _ => (None, None),
    };
    let (status, error) = match ending {
        Ending::SpawnFailed(reason) => (JobStatus::Failed, Some(reason.clone())),
        _ if stop_requested => (JobStatus::Completed, unknown_status_note(ending)),
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
            if output_has_data {
                (JobStatus::Completed, Some(reason.clone()))
            } else {
                (
                    JobStatus::Failed,
                    Some(format!("{reason}; no output was recorded")),
                )
            }
        }
    };
    Verdict {
        status,
        error,
        exit_code,
        exit_signal,
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

    fn ended(current: JobStatus, ending: Ending, data: bool) -> JobStatus {
        verdict(current, &ending, data).status
    }

    fn exit(outcome: ExitOutcome) -> Ending {
        Ending::Process {
            outcome,
            stop_signal: None,
        }
    }

    fn stopped(outcome: ExitOutcome) -> Ending {
        Ending::Process {
            outcome,
            stop_signal: Some(2),
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
        let v = verdict(s, &stopped(Signalled(9)), true);
        assert_eq!((v.exit_code, v.exit_signal), (None, Some(9)));
    }

    #[test]
    fn a_crash_just_before_a_stop_request_is_still_a_failure() {
        let s = JobStatus::Stopping;
        assert_eq!(ended(s, exit(Exited(3)), true), JobStatus::Failed);
        assert_eq!(ended(s, exit(Signalled(11)), true), JobStatus::Failed);
    }
}
