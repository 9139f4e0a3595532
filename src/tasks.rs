//! Tasks whose death would silently stop supervision (the exit handling):
//! if one panics, the process says so and exits non-zero, so that its
//! container or unit restarts it and the next start adopts the recorders
//! that kept running. A supervisor that lives on without them would show
//! jobs "running" whose recorders have ended: the failure recorderd exists
//! to prevent.

use std::future::Future;

use tokio_util::task::TaskTracker;
use tracing::error;

/// The exit code when a critical task died: internal software error
/// (`EX_SOFTWARE` in sysexits.h).
pub const CRITICAL_TASK_DIED: i32 = 70;

/// Spawns `task` on `tracker`, and a watcher that ends the process if the
/// task panics. A task that returns is fine: that is how they end at
/// shutdown.
pub fn spawn_critical(
    tracker: &TaskTracker,
    name: &'static str,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let handle = tokio::spawn(task);
    tracker.spawn(async move {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            error!(
                task = name,
                "a task that handles recorders' exits died; exiting so that a restart takes over"
            );
            std::process::exit(CRITICAL_TASK_DIED);
        }
    });
}
