//! Who a PID is. A PID alone proves nothing once its process is gone: the
//! kernel hands the number to the next process that asks, and `kill(pid, 0)`
//! also succeeds on a zombie. A process is "ours" only while its PID, its
//! `starttime` (field 22 of `/proc/<pid>/stat`) and its state agree.
//! `/proc` is read through `procfs`, which also parses a command name that
//! holds spaces and parentheses.

use std::ffi::OsStr;
use std::io;

use procfs::process::{ProcState, Process};
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
    pub state: ProcState,
    pub start_time: i64,
}

impl ProcStat {
    /// A zombie or dead process has ended: `kill(pid, 0)` still succeeds on
    /// it, but it will never record again.
    pub fn has_ended(&self) -> bool {
        matches!(self.state, ProcState::Zombie | ProcState::Dead)
    }
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
    let stat = Process::new(pid)
        .and_then(|process| process.stat())
        .map_err(io::Error::other)?;
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: {what}"),
        )
    };
    let state = stat.state().map_err(|_| invalid("unknown state"))?;
    let start_time =
        i64::try_from(stat.starttime).map_err(|_| invalid("start time out of range"))?;
    Ok(ProcStat { state, start_time })
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
    if stat.has_ended() {
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
fn job_marker(pid: i32) -> procfs::ProcResult<Option<String>> {
    let environ = Process::new(pid)?.environ()?;
    Ok(environ
        .get(OsStr::new(super::JOB_ENV_MARKER))
        .map(|value| value.to_string_lossy().into_owned()))
}

/// A recorder found by its markers: its job, and who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    pub job_id: i32,
    pub identity: ProcessIdentity,
}

/// Every live recorder this node spawned, found by the markers in its
/// environment, whoever knows of it. Only process group leaders count: a
/// recorder leads its own group, and what it starts inherits its markers.
/// Processes that cannot be read (another user's, or gone meanwhile) are
/// passed over.
pub fn find_marked(node_marker: &str) -> io::Result<Vec<Marked>> {
    let mut found = Vec::new();
    for process in procfs::process::all_processes().map_err(io::Error::other)? {
        let Ok(process) = process else { continue };
        let Ok(stat) = process.stat() else { continue };
        if stat.pgrp != stat.pid
            || stat
                .state()
                .is_ok_and(|s| matches!(s, ProcState::Zombie | ProcState::Dead))
        {
            continue;
        }
        let Ok(environ) = process.environ() else {
            continue;
        };
        let marked_here = environ
            .get(OsStr::new(super::NODE_ENV_MARKER))
            .is_some_and(|node| node == OsStr::new(node_marker));
        let job_id = environ
            .get(OsStr::new(super::JOB_ENV_MARKER))
            .and_then(|id| id.to_str()?.parse::<i32>().ok());
        if let (true, Some(job_id), Ok(start_time)) =
            (marked_here, job_id, i64::try_from(stat.starttime))
        {
            found.push(Marked {
                job_id,
                identity: ProcessIdentity {
                    pid: stat.pid,
                    start_time,
                },
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// Polls `pid`'s stat until `done` holds, for at most five seconds.
    fn wait_for_stat(pid: i32, done: impl Fn(&ProcStat) -> bool) -> ProcStat {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = read_stat(pid).expect("the child's stat is readable");
            if done(&stat) {
                return stat;
            }
            assert!(Instant::now() < deadline, "last stat of {pid}: {stat:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sleep_program() -> std::path::PathBuf {
        let path = std::env::var_os("PATH").expect("PATH is set");
        std::env::split_paths(&path)
            .map(|dir| dir.join("sleep"))
            .find(|candidate| candidate.is_file())
            .expect("sleep is on PATH")
    }

    fn kill(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The command name is the program's file name, and the kernel writes
    /// it into `stat` unescaped: a name holding `) ` would shift every
    /// field for a parser that stops at the first parenthesis (here it
    /// would read state `R` and a wrong start time).
    #[test]
    fn a_command_name_with_parentheses_and_spaces_is_read_right() {
        let me = read_stat(std::process::id() as i32).expect("own stat");
        let dir = std::env::temp_dir().join(format!("recorderd-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let name = "x) R 1 2 (y";
        let program = dir.join(name);
        let _ = std::fs::remove_file(&program);
        std::os::unix::fs::symlink(sleep_program(), &program).expect("symlink to sleep");
        let child = Command::new(&program)
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep under its odd name");
        let pid = child.id() as i32;
        let stat = wait_for_stat(pid, |s| s.state == ProcState::Sleeping);
        let comm = Process::new(pid).and_then(|p| p.stat()).map(|s| s.comm);
        kill(child);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(comm.expect("child's stat"), name);
        assert!(
            stat.start_time >= me.start_time,
            "child started at {} before this test process ({})",
            stat.start_time,
            me.start_time
        );
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_reuse() {
        let pid = std::process::id() as i32;
        let me = read_stat(pid).expect("own stat");
        assert_eq!(check(Some(pid), Some(me.start_time)), Liveness::Alive);
        assert_eq!(
            check(Some(pid), Some(me.start_time + 1)),
            Liveness::Reused {
                found_start_time: me.start_time
            }
        );
        assert!(matches!(check(None, None), Liveness::Gone { .. }));
    }

    /// `kill(pid, 0)` succeeds on a zombie; its state must say it is gone.
    #[test]
    fn an_unreaped_child_is_gone_though_its_pid_answers() {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        let stat = wait_for_stat(pid, ProcStat::has_ended);
        let liveness = check(Some(pid), Some(stat.start_time));
        let _ = child.wait();
        assert!(
            matches!(liveness, Liveness::Gone { .. }),
            "a zombie was {liveness:?}"
        );
    }

    #[test]
    fn a_recorder_is_told_by_its_job_marker() {
        let child = Command::new("sleep")
            .arg("30")
            .env(crate::supervisor::JOB_ENV_MARKER, "7")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let stat = wait_for_stat(pid, |s| s.state == ProcState::Sleeping);
        let ours = check_job(7, Some(pid), Some(stat.start_time));
        let other = check_job(8, Some(pid), Some(stat.start_time));
        kill(child);
        assert_eq!(ours, Liveness::Alive);
        assert!(matches!(other, Liveness::NotOurs { .. }), "{other:?}");
    }
}
