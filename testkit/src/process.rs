//! Processes as `/proc` shows them, and signals to them.
//!
//! A zombie has ended even though `kill(pid, 0)` still succeeds on it, and
//! a PID can be reused by another process: liveness here is "not a zombie",
//! and identity is the PID together with its start time.

use procfs::process::{ProcState, Process};
pub use rustix::process::Signal;

/// State and start time (clock ticks after boot, field 22 of
/// `/proc/<pid>/stat`) of `pid`.
pub fn state_and_start_time(pid: i32) -> Option<(ProcState, i64)> {
    let stat = Process::new(pid).and_then(|p| p.stat()).ok()?;
    Some((stat.state().ok()?, i64::try_from(stat.starttime).ok()?))
}

/// Start time of `pid` (see [`state_and_start_time`]).
pub fn start_time(pid: i32) -> Option<i64> {
    state_and_start_time(pid).map(|(_, start)| start)
}

/// Whether `pid` is a process that has not ended.
pub fn is_alive(pid: i32) -> bool {
    state_and_start_time(pid).is_some_and(|(state, _)| !has_ended(state))
}

/// Whether `pid` is still the process that started at `start_time` and
/// has not ended.
pub fn is_alive_as(pid: i32, start_time: i64) -> bool {
    state_and_start_time(pid).is_some_and(|(state, start)| start == start_time && !has_ended(state))
}

fn has_ended(state: ProcState) -> bool {
    matches!(state, ProcState::Zombie | ProcState::Dead)
}

/// Sends `signal` to the process `pid`; false if it could not be sent
/// (no such process, or not a valid PID).
pub fn signal(pid: i32, signal: Signal) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|pid| rustix::process::kill_process(pid, signal).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_has_ended_and_this_process_has_not() {
        let me = std::process::id() as i32;
        let start = start_time(me).expect("own start time");
        assert!(is_alive(me));
        assert!(is_alive_as(me, start));
        assert!(
            !is_alive_as(me, start + 1),
            "another start time, another process"
        );

        // `true` exits at once and stays a zombie until it is waited for.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(state_and_start_time(pid), Some((ProcState::Zombie, _))) {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!is_alive(pid), "a zombie counts as ended");
        child.wait().expect("wait for true");
    }
}
