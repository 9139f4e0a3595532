//! Small registries of jobs in between states, each guarding an ordering
//! the API promises or saving a read where every millisecond counts.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Jobs whose start (or restart) is not yet announced. A recorder can end
/// before its start is published; its end waits here, so that a client
/// always sees `job.started` before the job's end.
#[derive(Default)]
pub(super) struct Announcements {
    pending: Mutex<HashSet<i32>>,
    announced: Notify,
}

/// Held while a job's start is being announced; dropping it lets the
/// job's end through.
pub(super) struct Announcing<'a> {
    announcements: &'a Announcements,
    job_id: i32,
}

impl Drop for Announcing<'_> {
    fn drop(&mut self) {
        self.announcements.lock().remove(&self.job_id);
        self.announcements.announced.notify_waiters();
    }
}

impl Announcements {
    fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        // Single inserts and removals: a poisoned set is still valid.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's start is being announced until the guard is dropped.
    pub(super) fn begin(&self, job_id: i32) -> Announcing<'_> {
        self.lock().insert(job_id);
        Announcing {
            announcements: self,
            job_id,
        }
    }

    /// Waits until the job's start, if it is being announced, has been.
    pub(super) async fn wait(&self, job_id: i32) {
        loop {
            let notified = self.announced.notified();
            tokio::pin!(notified);
            // Registered before looking, so a drop in between still wakes
            // this wait.
            notified.as_mut().enable();
            if !self.lock().contains(&job_id) {
                return;
            }
            notified.await;
        }
    }
}

/// Jobs whose recorder waits to be started again, each with the token that
/// cuts the wait short (a stop, the duration limit, a shutdown).
#[derive(Default)]
pub(super) struct Restarts {
    waiting: Mutex<HashMap<i32, CancellationToken>>,
}

impl Restarts {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, CancellationToken>> {
        // Single inserts and removals: a poisoned map is still valid.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn register(&self, job_id: i32, wake: CancellationToken) {
        self.lock().insert(job_id, wake);
    }

    pub(super) fn remove(&self, job_id: i32) {
        self.lock().remove(&job_id);
    }

    /// Cuts the job's wait short; false when it is not waiting.
    pub(super) fn wake(&self, job_id: i32) -> bool {
        match self.lock().get(&job_id) {
            Some(wake) => {
                wake.cancel();
                true
            }
            None => false,
        }
    }
}

/// The stop sequence of each recorder this node runs, known from its
/// profile when it was started: a stop another node asks for is carried
/// out without reading the job first.
#[derive(Default)]
pub(super) struct StopPlans {
    plans: Mutex<HashMap<i32, crate::supervisor::StopPlan>>,
}

impl StopPlans {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, crate::supervisor::StopPlan>> {
        // Single inserts and removals: a poisoned map is still valid.
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(&self, job_id: i32, plan: crate::supervisor::StopPlan) {
        self.lock().insert(job_id, plan);
    }

    pub(super) fn remove(&self, job_id: i32) {
        self.lock().remove(&job_id);
    }

    pub(super) fn get(&self, job_id: i32) -> Option<crate::supervisor::StopPlan> {
        self.lock().get(&job_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_end_waits_for_its_start_to_be_announced() {
        let announcements = Arc::new(Announcements::default());
        let announcing = announcements.begin(7);
        let waiter = {
            let announcements = announcements.clone();
            tokio::spawn(async move { announcements.wait(7).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the end went ahead of its start");
        // Another job is not held up.
        tokio::time::timeout(Duration::from_secs(1), announcements.wait(8))
            .await
            .expect("job 8 has nothing to wait for");
        drop(announcing);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the end goes once the start is announced")
            .expect("the waiter did not panic");
    }

    #[test]
    fn a_wait_is_cut_short_only_while_registered() {
        let restarts = Restarts::default();
        let wake = CancellationToken::new();
        assert!(!restarts.wake(3));
        restarts.register(3, wake.clone());
        assert!(restarts.wake(3));
        assert!(wake.is_cancelled());
        restarts.remove(3);
        assert!(!restarts.wake(3));
    }
}
