//! What other nodes sharing the database ask of this one: stops requested
//! through them for this node's jobs, and this node's jobs they declared
//! lost while it was silent (paused, cut off from the database, or down).

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{JobError, JobService};
use crate::nodes::heartbeat_interval;
use crate::store::{self, Job};
use crate::supervisor::identity::{self, Liveness};
use crate::supervisor::{ForeignProcess, ProcessIdentity, StopPlan};

/// How often a node looks for stops requested through other nodes.
const STOP_WATCH_EVERY: Duration = Duration::from_secs(1);
/// How far back a node looks for its jobs others declared lost.
const LOST_LOOKBACK: time::Duration = time::Duration::days(7);
/// How long an orphaned recorder of a lost job gets after SIGTERM.
const LOST_RECORDER_GRACE: Duration = Duration::from_secs(10);

impl JobService {
    /// Carries out stops requested through other nodes (every second) and
    /// deals with this node's jobs that others declared lost (every
    /// heartbeat interval), until `closed`.
    pub async fn watch_peers(self, timeout: Duration, closed: CancellationToken) {
        let mut stops = tokio::time::interval(STOP_WATCH_EVERY);
        stops.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lost = tokio::time::interval(heartbeat_interval(timeout));
        lost.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut forwarded = HashSet::new();
        let mut handled = HashSet::new();
        loop {
            tokio::select! {
                _ = stops.tick() => {
                    if let Err(e) = self.carry_out_remote_stops(&mut forwarded).await {
                        warn!(error = %e, "cannot look for stops requested through other nodes");
                    }
                }
                _ = lost.tick() => {
                    if let Err(e) = self.recover_lost_jobs(&mut handled).await {
                        warn!(error = %e, "cannot look for this node's jobs declared lost");
                    }
                }
                () = closed.cancelled() => return,
            }
        }
    }

    /// Begins the stop sequence of this node's owned jobs that another node
    /// marked `stopping` (a stop request that reached it). `forwarded`
    /// remembers those already begun, so each costs one lookup.
    async fn carry_out_remote_stops(&self, forwarded: &mut HashSet<i32>) -> Result<(), JobError> {
        if self.inner.supervisor.is_empty() {
            forwarded.clear();
            return Ok(());
        }
        let stopping =
            store::jobs::stopping_job_ids_of_node(&self.inner.db, &self.inner.settings.node_id)
                .await?;
        forwarded.retain(|id| stopping.contains(id));
        for job_id in stopping {
            if forwarded.contains(&job_id) || !self.inner.supervisor.owns(job_id) {
                continue;
            }
            let plan = self.stop_plan(job_id).await?;
            if self.inner.supervisor.stop(job_id, plan) {
                debug!(job_id, "stop sequence begun for a job marked stopping");
                forwarded.insert(job_id);
            }
        }
        Ok(())
    }

    /// This node's jobs that another node declared lost. A recorder of
    /// theirs still running here is stopped: nothing records its end any
    /// more. Once it is gone, its recording, failed as lost, is processed
    /// here, where its file is. Also stops any recorder this process owns
    /// whose job has ended or was deleted meanwhile. `handled` remembers
    /// the recordings already dealt with.
    async fn recover_lost_jobs(&self, handled: &mut HashSet<i32>) -> Result<(), JobError> {
        self.stop_owned_without_a_live_job().await?;
        let since = OffsetDateTime::now_utc() - LOST_LOOKBACK;
        let node = &self.inner.settings.node_id;
        let jobs = store::jobs::jobs_lost_by_node(&self.inner.db, node, since).await?;
        for job in jobs {
            if handled.contains(&job.recording_id) || self.inner.supervisor.owns(job.id) {
                // Owned: being stopped (above); processed once it is gone.
                continue;
            }
            handled.insert(job.recording_id);
            let process = still_running(&job).await;
            // Each in its own task: a stubborn recorder takes up to its
            // grace period, and stops requested meanwhile must not wait.
            let recordings = self.inner.recordings.clone();
            let (job_id, recording_id) = (job.id, job.recording_id);
            self.inner.tracker.spawn(async move {
                if let Some(process) = process {
                    let pid = process.identity().pid;
                    warn!(
                        job_id,
                        pid, "a recorder of a job declared lost still runs; ending it"
                    );
                    if let Err(e) = process.terminate(LOST_RECORDER_GRACE).await {
                        warn!(job_id, error = %e, "cannot end the recorder of a job declared lost");
                        return;
                    }
                }
                match recordings.reprocess_if_lost(recording_id).await {
                    Ok(true) => info!(
                        recording_id,
                        "processing a recording its node was declared lost for"
                    ),
                    Ok(false) => {}
                    Err(e) => warn!(
                        recording_id,
                        error = %e,
                        "cannot process a recording its node was declared lost for"
                    ),
                }
            });
        }
        Ok(())
    }

    /// Stops owned recorders whose job is no longer live in the database
    /// (ended by another node, or deleted with its recording): nothing
    /// would record their end.
    async fn stop_owned_without_a_live_job(&self) -> Result<(), JobError> {
        let owned = self.inner.supervisor.owned_jobs();
        if owned.is_empty() {
            return Ok(());
        }
        let live: HashSet<i32> = store::jobs::live_job_ids_among(&self.inner.db, &owned)
            .await?
            .into_iter()
            .collect();
        for job_id in owned {
            if live.contains(&job_id) {
                continue;
            }
            // An exit being committed right now also looks like this for a
            // moment; a stop sent to a recorder that has exited is ignored.
            let plan = self.stop_plan(job_id).await.unwrap_or(StopPlan {
                first_signal: rustix::process::Signal::TERM,
                grace: LOST_RECORDER_GRACE,
            });
            if self.inner.supervisor.stop(job_id, plan) {
                warn!(
                    job_id,
                    "the job of this recorder was ended or deleted elsewhere; stopping it"
                );
            }
        }
        Ok(())
    }
}

/// A handle on the job's recorder if it still runs here, verified to be it.
async fn still_running(job: &Job) -> Option<ForeignProcess> {
    let (job_id, pid, start) = (job.id, job.process_id, job.process_start_time);
    let alive = tokio::task::spawn_blocking(move || {
        matches!(identity::check_job(job_id, pid, start), Liveness::Alive)
    })
    .await
    .unwrap_or(false);
    if !alive {
        return None;
    }
    let identity = ProcessIdentity {
        pid: pid.unwrap_or_default(),
        start_time: start.unwrap_or_default(),
    };
    ForeignProcess::open(job_id, identity).ok().flatten()
}
