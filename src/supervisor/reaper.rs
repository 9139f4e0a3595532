//! Zombie reaping for PID 1 and child subreapers.
//!
//! As a container's entrypoint recorderd is PID 1, and every orphan in the
//! container (a recorder's grandchild whose parent died, say) becomes its
//! child; as a subreaper the same happens to orphans of its own
//! descendants. Someone must reap them or they linger as zombies. A blanket
//! `waitpid(-1)` would also take the exit statuses that tokio is waiting for
//! (a recorder's exit code lost, `ECHILD` in its watcher), so this reaper
//! lists its children and reaps only zombies whose PID no tokio waiter owns.

use std::collections::HashSet;
use std::time::Duration;

use procfs::process::{ProcState, Process};
use rustix::process::{Pid, WaitOptions, waitpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Supervisor, identity};

/// After a SIGCHLD, how long to let further ones gather before one scan:
/// a thousand recorders ending together cost a few scans, not a thousand.
const COALESCE: Duration = Duration::from_millis(100);

/// Reaps unowned zombie children after SIGCHLDs until shutdown.
pub async fn reap_orphans(supervisor: Supervisor, shutdown: CancellationToken) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGCHLD; orphaned processes will not be reaped");
            return;
        }
    };
    loop {
        let reaper = supervisor.clone();
        let reaped = match tokio::task::spawn_blocking(move || reap_zombies(&reaper)).await {
            Ok(reaped) => reaped,
            Err(e) => {
                warn!(error = %e, "orphan reaping failed");
                0
            }
        };
        if reaped > 0 {
            debug!(reaped, "reaped orphaned processes");
        }
        tokio::select! {
            received = sigchld.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(COALESCE) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Children of this process that no tokio waiter owns, listed under the
/// owned-PID lock: a child spawned later is not in the list, and one in the
/// list cannot become owned (only new children do), so the list stays
/// right after the lock is released.
fn unowned_children(owned: &HashSet<i32>) -> Vec<i32> {
    children_of_self()
        .into_iter()
        .filter(|pid| !owned.contains(pid))
        .collect()
}

/// Reaps the unowned children that are zombies. Each `waitpid` is made
/// under the owned-PID lock after checking once more that the PID is not
/// owned: a PID freed and handed to a new recorder since the list was made
/// is owned by then, and left alone.
fn reap_zombies(supervisor: &Supervisor) -> usize {
    let candidates = supervisor.with_owned_pids(unowned_children);
    let mut reaped = 0;
    for pid in candidates {
        let is_zombie = identity::read_stat(pid).is_ok_and(|s| s.state == ProcState::Zombie);
        if !is_zombie {
            continue;
        }
        let status = supervisor.with_owned_pids(|owned| {
            if owned.contains(&pid) {
                return None;
            }
            Pid::from_raw(pid)
                .and_then(|raw| waitpid(Some(raw), WaitOptions::NOHANG).ok().flatten())
        });
        if let Some((_, status)) = status {
            info!(pid, ?status, "reaped an orphaned process");
            reaped += 1;
        }
    }
    reaped
}

/// PIDs of this process's children, from `/proc/self/task/*/children`
/// (each thread lists the children it forked).
fn children_of_self() -> Vec<i32> {
    let Ok(tasks) = Process::myself().and_then(|me| me.tasks()) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|task| task.children().ok())
        .flatten()
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Makes orphaned descendants re-parent to this process instead of to
/// PID 1, so they are reaped here.
pub fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(Into::into)
}
