//! What other nodes sharing the database ask of this one: stops requested
//! through them for this node's jobs (heard the moment they are written,
//! and looked for now and then in case a message was missed), starts
//! placed here, recordings to process, files to remove; and this node's
//! jobs they took over while it did not hold its lease (cut off from the
//! database, or down): their recorders are stopped, what they recorded is
//! processed here.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{JobError, JobService};
use crate::nodes::lease::LeaseState;
use crate::nodes::{Message, heartbeat_interval};
use crate::store::jobs::Fence;
use crate::store::{self, Job};
use crate::supervisor::identity::{self, Liveness};
use crate::supervisor::{ForeignProcess, ProcessIdentity, StopPlan};

/// How often a node looks for stops requested through other nodes, placed
/// starts and files to remove, in case it missed the message that told it:
/// a safety net, not the way they usually arrive.
const SAFETY_NET_EVERY: Duration = Duration::from_secs(5);
/// How far back a node looks for its jobs others declared lost.
const LOST_LOOKBACK: time::Duration = time::Duration::days(7);
/// How long an orphaned recorder of a lost job gets after SIGTERM.
const LOST_RECORDER_GRACE: Duration = Duration::from_secs(10);

impl JobService {
    /// Looks for what other nodes asked of this one and missed being told
    /// (every few seconds), deals with this node's jobs that others took
    /// over (every heartbeat interval, and whenever this node takes its
    /// lease again), until `closed`.
    pub async fn watch_peers(self, timeout: Duration, closed: CancellationToken) {
        let mut net = tokio::time::interval(SAFETY_NET_EVERY);
        net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lost = tokio::time::interval(heartbeat_interval(timeout));
        lost.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut states = self.inner.lease.subscribe();
        let mut forwarded = HashSet::new();
        let mut handled = HashSet::new();
        loop {
            tokio::select! {
                _ = net.tick() => {
                    self.look_for_requests(&mut forwarded).await;
                }
                _ = lost.tick() => {
                    if let Err(e) = self.recover_lost_jobs(&mut handled).await {
                        warn!(error = %e, "cannot look for this node's jobs taken over");
                    }
                }
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let held = states.borrow_and_update().held().is_some();
                    if held {
                        // Back under a lease: what was taken over meanwhile
                        // is given up at once, what waited is done.
                        if let Err(e) = self.recover_lost_jobs(&mut handled).await {
                            warn!(error = %e, "cannot look for this node's jobs taken over");
                        }
                        self.look_for_requests(&mut forwarded).await;
                    }
                }
                () = closed.cancelled() => return,
            }
        }
    }

    /// Everything another node may have asked without this one hearing.
    async fn look_for_requests(&self, forwarded: &mut HashSet<i32>) {
        if let Err(e) = self.carry_out_remote_stops(forwarded).await {
            warn!(error = %e, "cannot look for stops requested through other nodes");
        }
        if let Err(e) = self.claim_placed().await {
            warn!(error = %e, "cannot look for starts placed on this node");
        }
        if let Err(e) = self.inner.recordings.remove_queued_files().await {
            warn!(error = %e, "cannot look for files to remove");
        }
    }

    /// Acts on one message from another node (or this one).
    pub async fn on_message(&self, message: Message) {
        match message {
            Message::Stop { job_id } => self.carry_out_stop(job_id).await,
            Message::Placed => {
                if let Err(e) = self.claim_placed().await {
                    warn!(error = %e, "cannot start the jobs placed on this node");
                }
            }
            Message::Started { job_id } => self.placed_started(job_id),
            Message::Process { recording_id } => {
                if let Err(e) = self.inner.recordings.process_for_peer(recording_id).await {
                    warn!(recording_id, error = %e, "cannot process a recording asked for elsewhere");
                }
            }
            Message::RemoveFiles => {
                if let Err(e) = self.inner.recordings.remove_queued_files().await {
                    warn!(error = %e, "cannot remove files queued for this node");
                }
            }
            Message::Processing => self.inner.processing.claim_shared().await,
            Message::Drain => info!("this node's drain was changed"),
        }
    }

    /// Begins the stop sequence of one of this node's jobs that another
    /// node marked `stopping`, the moment it hears of it.
    async fn carry_out_stop(&self, job_id: i32) {
        // Its row changed elsewhere: read from the database until the
        // registry holds it again.
        self.inner.registry.remove(job_id);
        if self.inner.restarts.wake(job_id) {
            // It waited to be restarted: the wait ends the job.
            return;
        }
        if !self.inner.supervisor.owns(job_id) {
            return;
        }
        let known = self.inner.stop_plans.get(job_id);
        let plan = match known {
            Some(plan) => Ok(plan),
            None => self.stop_plan(job_id).await,
        };
        match plan {
            Ok(plan) => {
                if self.inner.supervisor.stop(job_id, plan) {
                    debug!(job_id, "stop sequence begun for a stop requested elsewhere");
                }
            }
            Err(e) => warn!(job_id, error = %e, "cannot stop a job as asked elsewhere"),
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
                self.inner.registry.remove(job_id);
                forwarded.insert(job_id);
            }
        }
        Ok(())
    }

    /// This node's jobs that another node took over. A recorder of
    /// theirs still running here is stopped: nothing records its end any
    /// more. Once it is gone, its recording, failed as lost, is processed
    /// here, where its file is. Also stops any recorder this process owns
    /// whose job has ended or was deleted meanwhile. `handled` remembers
    /// the recordings already dealt with.
    async fn recover_lost_jobs(&self, handled: &mut HashSet<i32>) -> Result<(), JobError> {
        self.stop_owned_without_a_live_job().await?;
        // Their recordings are processed here only under a lease.
        if self.fence_now().is_none() {
            return Ok(());
        }
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

    /// Stops owned recorders whose job is no longer this node's under the
    /// lease it holds (or last held): ended or taken over by another node,
    /// moved under a later lease of this node id, or deleted with its
    /// recording. Nothing would record their end.
    async fn stop_owned_without_a_live_job(&self) -> Result<(), JobError> {
        let owned = self.inner.supervisor.owned_jobs();
        if owned.is_empty() {
            return Ok(());
        }
        let mut states = self.inner.lease.subscribe();
        let state = *states.borrow_and_update();
        if matches!(state, LeaseState::Regaining { .. }) {
            return Ok(());
        }
        let fence = Fence::Lease {
            node: self.inner.settings.node_id.clone(),
            generation: state.last(),
        };
        let live: HashSet<i32> = store::jobs::held_job_ids_among(&self.inner.db, &owned, &fence)
            .await?
            .into_iter()
            .collect();
        // The lease changed while the rows were read (taken back: its jobs
        // moved under the next generation): the rows say nothing about the
        // generation read before. Judged again at the next round.
        if states.has_changed().unwrap_or(true) {
            return Ok(());
        }
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
                    "the job of this recorder was ended, taken over or deleted elsewhere; \
                     stopping it"
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
