//! Stopping jobs: on request, at a duration limit, when stalled, and all of
//! them at shutdown. A stop marks the job `stopping` and begins the
//! profile's stop sequence; the recorder's exit ends the job.

use std::time::Duration;

use tracing::{Instrument, info, info_span, warn};

use super::{JobError, JobService};
use crate::entity::{EventKind, JobStatus, StopReason};
use crate::nodes::Message;
use crate::profile::Profile;
use crate::store::{self, Job, Recording};
use crate::supervisor::StopPlan;

/// A profile's stop sequence.
pub(super) fn plan_of(profile: &Profile) -> StopPlan {
    StopPlan {
        first_signal: profile.stop_signal(),
        grace: profile.stop_grace(),
    }
}

/// What a stop request did to the job's row.
#[derive(Debug, Clone)]
enum Marked {
    /// It is `stopping`: its recorder gets the stop sequence.
    Stopping(Job),
    /// It was placed and not started yet: it ended at once.
    Withdrawn(Job),
}

impl JobService {
    /// Marks the job `stopping` and begins the profile's stop sequence. Does
    /// not wait for the recorder to end. Stopping a job that is already
    /// stopping asks again (the sequence under way is not restarted).
    pub async fn stop(&self, job_id: i32) -> Result<Job, JobError> {
        self.stop_for(job_id, StopReason::Requested).await
    }

    /// [`JobService::stop`], recording why the stop was asked for.
    pub async fn stop_for(&self, job_id: i32, reason: StopReason) -> Result<Job, JobError> {
        // Worked out before the state changes, so that a failure here cannot
        // leave a job `stopping` with nothing sent.
        let (job, recording) = store::jobs::find_job_with_recording(&self.inner.db, job_id)
            .await?
            .ok_or(JobError::JobNotFound { id: job_id })?;
        let recording = recording.ok_or(JobError::RecordingNotFound {
            id: job.recording_id,
        })?;
        let plan = plan_of(&self.profile_or_builtin(&recording.profile));
        let stopping = match self.mark_stopping(job, &recording, reason).await? {
            Marked::Stopping(job) => job,
            Marked::Withdrawn(job) => return Ok(job),
        };
        if !self.is_mine(&stopping) {
            // Its node begins the stop sequence the moment it hears.
            if let Some(node) = &stopping.node {
                self.inner.bell.ring(node, Message::Stop { job_id }).await;
            }
            return Ok(stopping);
        }
        if self.inner.restarts.wake(job_id) {
            // It was waiting to be restarted: no process runs, and the
            // wait ends the job now, at its last run's end.
            return self.job(job_id).await;
        }
        if !self.inner.supervisor.stop(job_id, plan) {
            // Nobody here owns it: its process is gone (it is ended now) or
            // it is verifiably alive (adopted, and the adoption begins the
            // stop sequence of a `stopping` job).
            self.reconcile_one(job_id).await?;
        }
        self.job(job_id).await
    }

    /// `running` → `stopping`, published before any signal is sent so that
    /// the stream shows `stopping` before the job's end. A job already
    /// stopping is left as it is; an ended one is refused; one placed on a
    /// node that has not started it yet is withdrawn (ended at once).
    async fn mark_stopping(
        &self,
        mut job: Job,
        recording: &Recording,
        reason: StopReason,
    ) -> Result<Marked, JobError> {
        let db = &self.inner.db;
        loop {
            match job.status {
                JobStatus::Completed | JobStatus::Failed => {
                    return Err(JobError::JobAlreadyEnded {
                        id: job.id,
                        status: job.status,
                    });
                }
                JobStatus::Stopping => return Ok(Marked::Stopping(job)),
                JobStatus::Pending => {
                    let ending = super::status::Ending::Cancelled;
                    let fence = crate::store::jobs::Fence::Open;
                    if let Some(ended) = self.end_once(&job, recording, ending, &fence).await? {
                        info!(
                            job_id = job.id,
                            "a placed job was stopped before its node started it"
                        );
                        return Ok(Marked::Withdrawn(ended));
                    }
                    // Started (or ended) meanwhile; look again.
                }
                JobStatus::Running => {
                    if let Some(stopping) = store::jobs::mark_stopping(db, job.id, reason).await? {
                        if self.is_mine(&stopping) {
                            self.inner.registry.put(&stopping);
                        }
                        info!(job_id = job.id, ?reason, "stop requested");
                        self.inner.events.publish(EventKind::JobStopping, &stopping);
                        return Ok(Marked::Stopping(stopping));
                    }
                    // Its status changed meanwhile; look again.
                }
            }
            job = self.job(job.id).await?;
        }
    }

    /// The job's stop sequence, from its profile (one read: the job with
    /// its recording).
    pub(super) async fn stop_plan(&self, job_id: i32) -> Result<StopPlan, JobError> {
        let (job, recording) = store::jobs::find_job_with_recording(&self.inner.db, job_id)
            .await?
            .ok_or(JobError::JobNotFound { id: job_id })?;
        let recording = recording.ok_or(JobError::RecordingNotFound {
            id: job.recording_id,
        })?;
        Ok(plan_of(&self.profile_or_builtin(&recording.profile)))
    }

    /// Stops the job when its duration limit elapses (at once if it already
    /// has, as for a job adopted after a restart).
    pub(super) fn arm_duration_limit(&self, job_id: i32, after: Duration) {
        let this = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tracker.spawn(
            async move {
                tokio::select! {
                    () = tokio::time::sleep(after) => {}
                    () = shutdown.cancelled() => return,
                }
                // A limit reached while the database is away still stops
                // the recorder, once the stop can be recorded.
                let stop = || this.stop_for(job_id, StopReason::Duration);
                match this.through_outage("stop the job at its limit", stop).await {
                    Ok(_) => info!("duration limit reached; job stopping"),
                    // Ended already, or deleted with its recording since.
                    Err(JobError::JobAlreadyEnded { .. } | JobError::JobNotFound { .. }) => {}
                    Err(e) => warn!(error = %e, "could not stop the job at its duration limit"),
                }
            }
            .instrument(info_span!("job", job_id)),
        );
    }

    /// Begins the stop sequence of every owned recorder (graceful shutdown).
    pub async fn stop_all(&self) -> usize {
        // Waits out every start that got past its shutdown check, so each
        // recorder spawned is owned (and stopped) here.
        drop(self.inner.start_gate.write().await);
        let owned = self.inner.supervisor.owned_jobs();
        let mut stopped = 0;
        for job_id in owned {
            match self.stop_for(job_id, StopReason::Shutdown).await {
                Ok(_) => stopped += 1,
                Err(JobError::JobAlreadyEnded { .. }) => {}
                Err(e) => warn!(job_id, error = %e, "could not stop recorder at shutdown"),
            }
        }
        stopped
    }
}
