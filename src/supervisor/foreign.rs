//! Recorders this process did not spawn: those left running by a previous
//! supervisor. Their exit is noticed through a pidfd, which turns readable
//! the moment the process ends, child or not; their exit status cannot be
//! read (only a parent can), so the job service judges them by their output.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::StopPlan;
use super::identity::{self, Liveness, ProcessIdentity};

/// How often identity is re-checked where the kernel offers no pidfd.
const POLL_WITHOUT_PIDFD: Duration = Duration::from_secs(1);

/// A live process that was verified to be a job's recorder when opened.
pub struct ForeignProcess {
    identity: ProcessIdentity,
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl ForeignProcess {
    /// Opens a handle on the process, or `None` when the PID no longer is
    /// that process. The pidfd is opened first and identity checked after:
    /// once the fd exists it refers to one process for good, so a check that
    /// passes then cannot be fooled by a later PID reuse.
    pub fn open(job_id: i32, identity: ProcessIdentity) -> io::Result<Option<Self>> {
        let Some(pid) = Pid::from_raw(identity.pid) else {
            return Ok(None);
        };
        let pidfd = match pidfd_open(pid, PidfdFlags::NONBLOCK) {
            Ok(fd) => {
                // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns
                // it until dropped; nothing else closes or replaces it.
                let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
                Some(registered.map_err(|e| e.into_parts().1)?)
            }
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            // ENOSYS (kernel < 5.3) or a seccomp filter: fall back to polling.
            Err(_) => None,
        };
        let liveness = identity::check_job(job_id, Some(identity.pid), Some(identity.start_time));
        if liveness != Liveness::Alive {
            return Ok(None);
        }
        Ok(Some(Self { identity, pidfd }))
    }

    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// Whether the process has ended (without waiting).
    pub fn has_exited(&self) -> bool {
        match &self.pidfd {
            Some(fd) => {
                // A zero-timeout poll(2) asks the kernel directly rather than
                // the reactor, which may not have dispatched the event yet.
                let mut fds = [PollFd::new(fd.get_ref(), PollFlags::IN)];
                matches!(poll(&mut fds, Some(&Timespec::default())), Ok(n) if n > 0)
            }
            None => {
                !identity::check(Some(self.identity.pid), Some(self.identity.start_time)).is_alive()
            }
        }
    }

    /// Resolves when the process has ended.
    pub async fn exited(&self) {
        match &self.pidfd {
            Some(fd) => {
                // Readable means exited; an error means the fd is unusable,
                // in which case fall through to polling.
                if fd.readable().await.is_ok() {
                    return;
                }
                self.poll_until_gone().await
            }
            None => self.poll_until_gone().await,
        }
    }

    async fn poll_until_gone(&self) {
        while identity::check(Some(self.identity.pid), Some(self.identity.start_time))
            == Liveness::Alive
        {
            tokio::time::sleep(POLL_WITHOUT_PIDFD).await;
        }
    }

    /// Ends a recorder nothing supervises any more: SIGTERM to its group,
    /// then SIGKILL if it has not exited after `grace`.
    pub async fn terminate(self, grace: Duration) -> io::Result<()> {
        self.stop(StopPlan {
            first_signal: Signal::TERM,
            grace,
        })
        .await
    }

    /// Carries out a stop sequence and waits for the end: each signal in
    /// turn, each given the plan's grace.
    pub async fn stop(self, plan: StopPlan) -> io::Result<()> {
        for signal in plan.signals() {
            self.signal_group(signal)?;
            if tokio::time::timeout(plan.grace, self.exited())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Signals the recorder's process group, unless the recorder has ended:
    /// a live recorder holds its PID, and as group leader its group id, so
    /// neither can name another process while this check holds.
    pub fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if self.has_exited() {
            return Ok(());
        }
        match Pid::from_raw(self.identity.pid) {
            Some(pid) => kill_process_group(pid, signal).map_err(io::Error::from),
            None => Ok(()),
        }
    }
}
