//! Who a PID is. A PID alone proves nothing once its process is gone: the
//! kernel hands the number to the next process that asks, and `kill(pid, 0)`
//! also succeeds on a zombie. A process is "ours" only while its PID, its
//! `starttime` (field 22 of `/proc/<pid>/stat`) and its state agree.

use std::io;

use rustix::process::{Pid, test_kill_process};

/// The identity recorded for a job's process when it was spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub start_time: i64,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state (`R`, `S`, `Z`, …).
    pub state: char,
    pub start_time: i64,
}

/// The answer to "is this job's process still there?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The same process is alive.
    Alive,
    /// The PID answers but nothing was recorded to check its identity with:
    /// a row written by an older system. Believed alive, never signalled.
    Unverified,
    /// No process has that PID (or it is a zombie): the recorder has ended.
    Gone { reason: String },
    /// A different process now has that PID.
    Reused { found_start_time: i64 },
    /// The PID and start time match, but the process's environment says it
    /// is not this job's recorder.
    NotOurs { reason: String },
}

impl Liveness {
    pub fn is_alive(&self) -> bool {
        matches!(self, Self::Alive | Self::Unverified)
    }

    /// Why a job whose process is not alive is being ended.
    /// Why a job whose process is not alive is being ended. The PID is not
    /// repeated (the job carries it), so that jobs ended for the same reason
    /// share one message and can be ended together.
    pub fn describe(&self) -> String {
        match self {
            Self::Alive | Self::Unverified => "the recorder's process is alive".to_owned(),
            Self::Gone { reason } => reason.clone(),
            Self::Reused { .. } => {
                "the recorder's process is gone; its PID now belongs to an unrelated process"
                    .to_owned()
            }
            Self::NotOurs { reason } => {
                format!("the process with the recorder's PID is not this job's recorder: {reason}")
            }
        }
    }
}

/// Reads the state and start time of `pid` from `/proc/<pid>/stat`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat format"),
        )
    })
}

/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the *last* `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `state` is field 3; `starttime` is field 22, i.e. 19 fields further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// The seed's `is_process_running`, made safe against PID reuse: alive only
/// if `kill(pid, 0)` succeeds, the process is not a zombie, and its start
/// time is the one recorded at spawn.
pub fn check(pid: Option<i32>, expected_start_time: Option<i64>) -> Liveness {
    let Some(pid) = pid.filter(|p| *p > 0) else {
        return Liveness::Gone {
            reason: "no process id was recorded for this job".to_owned(),
        };
    };
    let Some(raw) = Pid::from_raw(pid) else {
        return Liveness::Gone {
            reason: "the recorded process id is invalid".to_owned(),
        };
    };
    match test_kill_process(raw) {
        Ok(()) => {}
        // EPERM: a process exists but belongs to someone else; /proc decides.
        Err(e) if e == rustix::io::Errno::PERM => {}
        Err(_) => {
            return Liveness::Gone {
                reason: "the recorder's process no longer exists".to_owned(),
            };
        }
    }
    let stat = match read_stat(pid) {
        Ok(stat) => stat,
        Err(_) => {
            return Liveness::Gone {
                reason: "the recorder's process no longer exists".to_owned(),
            };
        }
    };
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return Liveness::Gone {
            reason: "the recorder's process has exited (zombie)".to_owned(),
        };
    }
    match expected_start_time {
        Some(expected) if expected == stat.start_time => Liveness::Alive,
        Some(_) => Liveness::Reused {
            found_start_time: stat.start_time,
        },
        None => Liveness::Unverified,
    }
}

/// [`check`], plus the third proof of identity: the job marker that every
/// recorder carries in its environment. Where `/proc/<pid>/environ` cannot
/// be read (another user's process), PID and start time decide alone.
pub fn check_job(job_id: i32, pid: Option<i32>, expected_start_time: Option<i64>) -> Liveness {
    let liveness = check(pid, expected_start_time);
    let (Liveness::Alive, Some(pid)) = (&liveness, pid) else {
        return liveness;
    };
    match job_marker(pid) {
        Ok(Some(marker)) if marker == job_id.to_string() => liveness,
        Ok(Some(marker)) => Liveness::NotOurs {
            reason: format!("it carries {}={marker}", super::JOB_ENV_MARKER),
        },
        Ok(None) => Liveness::NotOurs {
            reason: format!("it carries no {}", super::JOB_ENV_MARKER),
        },
        Err(_) => liveness,
    }
}

/// The value of the job marker in a process's environment, if any.
fn job_marker(pid: i32) -> io::Result<Option<String>> {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let prefix = format!("{}=", super::JOB_ENV_MARKER);
    Ok(environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (we) ird (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_reuse() {
        let pid = std::process::id() as i32;
        let me = read_stat(pid).unwrap();
        assert_eq!(check(Some(pid), Some(me.start_time)), Liveness::Alive);
        assert_eq!(
            check(Some(pid), Some(me.start_time + 1)),
            Liveness::Reused {
                found_start_time: me.start_time
            }
        );
        assert!(matches!(check(None, None), Liveness::Gone { .. }));
    }
}
