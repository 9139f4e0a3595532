//! Starting a recorder again after it ended unasked, when its profile says
//! so: a live source often comes back. Between one run's end and the next
//! run's start the job is `running` with no process and `restart_at` set
//! (announced as `job.restarting`); a stop, its duration limit or a shutdown
//! during that wait ends the job at once, at the last run's end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::crash_loop::{
    FAST_FAILURES_TO_GIVE_UP, exit_fields, repeated_fast_failures, restart_streak, run_started_at,
};
use super::start::{Run, RunError};
use super::status::{Ending, LIMIT_TOLERANCE};
use super::{JobError, JobService};
use crate::entity::{EventKind, JobStatus, PastRun, StopReason};
use crate::profile::Profile;
use crate::recordings::output::segment_path;
use crate::store::{self, Job, Recording};
use crate::supervisor::ExitEvent;

/// What became of an exit the profile might restart.
pub(super) enum Restart {
    /// A new run is owned under the same job id.
    Started,
    /// A stop came during the wait: the job was ended here.
    Ended,
    /// No restart: the exit is the job's end, to commit as usual.
    No,
}

/// A next run claimed, not started yet.
struct Claimed {
    /// The job as claimed: its next attempt, no process, `restart_at` set.
    job: Job,
    recording: Recording,
    profile: Profile,
    /// Where the next run writes.
    segment: PathBuf,
    backoff: Duration,
}

impl JobService {
    /// Starts the job's recorder again when its profile allows it, after
    /// the profile's backoff, unless a stop comes first.
    pub(super) async fn restart(&self, exit: &ExitEvent) -> Result<Restart, JobError> {
        let wake = CancellationToken::new();
        // While the database is away the claim is tried again: a recorder
        // that crashes during an outage starts again once it is back, as
        // its profile says, instead of its job ending because the restart
        // could not be written.
        let claimed = self
            .through_outage("restart the recorder", || self.claim_restart(exit, &wake))
            .await?;
        let Some(claimed) = claimed else {
            return Ok(Restart::No);
        };
        let Claimed {
            job,
            recording,
            profile,
            segment,
            backoff,
        } = claimed;
        self.inner.events.publish(EventKind::JobRestarting, &job);
        warn!(
            attempt = job.attempt - 1,
            outcome = ?exit.outcome,
            ?backoff,
            "recorder ended unasked; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = wake.cancelled() => {}
            () = self.inner.shutdown.cancelled() => {}
        }
        self.inner.restarts.remove(job.id);
        self.run_next(job.id, &recording, &profile, segment, exit.ended_at)
            .await
    }

    /// Decides whether the job's recorder is started again and, if so,
    /// claims its next run (a compare-and-set on the attempt, so trying
    /// again never claims twice). `None` when it is not.
    async fn claim_restart(
        &self,
        exit: &ExitEvent,
        wake: &CancellationToken,
    ) -> Result<Option<Claimed>, JobError> {
        let job = self.job(exit.job_id).await?;
        if job.status != JobStatus::Running || reached_its_limit(&job, exit.ended_at) {
            return Ok(None);
        }
        let (recording, profile) = self.recording_and_profile(&job).await?;
        if !super::start::restarts_left(&profile, &job) {
            return Ok(None);
        }
        let fast = repeated_fast_failures(&job, &exit.outcome, exit.ended_at);
        // Under `always` a crash loop only makes the waits grow (see
        // `restart_streak`): a 24/7 source that refuses for a while is
        // still wanted when it comes back.
        if fast >= FAST_FAILURES_TO_GIVE_UP && !profile.restarts_forever() {
            warn!(
                runs = fast,
                outcome = ?exit.outcome,
                "the recorder failed the same way within 2 s of each start; not restarting it"
            );
            return Ok(None);
        }
        if let Err(e) = self.check_free_space().await {
            warn!(error = %e, "not restarting the recorder");
            return Ok(None);
        }
        let step = if profile.restarts_forever() {
            restart_streak(&job, exit.ended_at, profile.healthy_run())
        } else {
            u32::try_from(job.attempt).unwrap_or(1).max(1)
        };
        let backoff = profile.restart_backoff(step);
        // Registered before the claim: a stop that sees the claimed job
        // always finds the wait to cut short.
        self.inner.restarts.register(job.id, wake.clone());
        match self.claim_next_run(&job, &recording, exit, backoff).await {
            Ok(Some((job, segment))) => Ok(Some(Claimed {
                job,
                recording,
                profile,
                segment,
                backoff,
            })),
            Ok(None) => {
                self.inner.restarts.remove(job.id);
                Ok(None)
            }
            Err(e) => {
                self.inner.restarts.remove(job.id);
                Err(e)
            }
        }
    }

    /// After the wait: the next run, or the job's end at the last run's
    /// end if it was stopped meanwhile.
    async fn run_next(
        &self,
        job_id: i32,
        recording: &Recording,
        profile: &Profile,
        segment: PathBuf,
        last_ended_at: OffsetDateTime,
    ) -> Result<Restart, JobError> {
        let gate = self.inner.start_gate.read().await;
        let job = self.job(job_id).await?;
        let stopped = job.status != JobStatus::Running || self.inner.shutdown.is_cancelled();
        if stopped {
            drop(gate);
            if job.status == JobStatus::Running
                && let Some(stopping) =
                    store::jobs::mark_stopping(&self.inner.db, job_id, StopReason::Shutdown).await?
            {
                self.inner.registry.put(&stopping);
            }
            let ending = Ending::StoppedBetweenRuns {
                ended_at: last_ended_at,
            };
            self.finish(job_id, ending).await?;
            return Ok(Restart::Ended);
        }
        let announcing = self.inner.announcements.begin(job_id);
        let run = Run {
            job: &job,
            recording,
            profile,
            output: segment,
        };
        match self.launch_run(&run).await {
            Ok((identity, stored)) => {
                drop(gate);
                let job = stored.unwrap_or(job);
                self.inner.events.publish(EventKind::JobRestarted, &job);
                drop(announcing);
                info!(
                    attempt = job.attempt,
                    pid = identity.pid,
                    "recorder restarted"
                );
                Ok(Restart::Started)
            }
            // The job ends with the exit that asked for the restart.
            Err(RunError::Spawn(e)) => {
                warn!(error = %e, "the recorder could not be restarted");
                Ok(Restart::No)
            }
            // The new run was killed; its own exit ends the job.
            Err(RunError::Identity(_) | RunError::Taken) => Ok(Restart::Started),
            // Nothing started: the exit that asked for it ends the job,
            // once it can be written.
            Err(RunError::NoLease) => Ok(Restart::No),
        }
    }

    /// Claims the job's next attempt and its segment before the new run
    /// exists: whatever becomes of that run (an instant exit, a crash, a
    /// stop) is then handled as the next attempt's, never confused with
    /// this one. Claimed only if the job is still running this attempt;
    /// returns the job as claimed and where the next run writes.
    async fn claim_next_run(
        &self,
        job: &Job,
        recording: &Recording,
        exit: &ExitEvent,
        backoff: Duration,
    ) -> Result<Option<(Job, PathBuf)>, JobError> {
        let next = job.attempt + 1;
        let segment = segment_path(Path::new(&recording.output_path), next);
        let (exit_code, exit_signal) = exit_fields(&exit.outcome);
        let lasted = Duration::try_from(exit.ended_at - run_started_at(job)).unwrap_or_default();
        let restart_at = OffsetDateTime::now_utc() + backoff;
        // From the run's end, not from now: a claim made late (after a
        // database outage) counts the time nothing recorded.
        let waited = Duration::try_from(restart_at - exit.ended_at).unwrap_or(backoff);
        let mut history = job.attempts.clone().unwrap_or_default();
        history.0.push(PastRun {
            attempt: job.attempt,
            process_id: job.process_id,
            exit_code,
            exit_signal,
            ended_at: Some(exit.ended_at),
            restarted_after_ms: waited.as_millis() as u64,
            lasted_ms: Some(lasted.as_millis() as u64),
        });
        let mut segments = recording.segments.clone().unwrap_or_default();
        segments.0.push(segment.display().to_string());
        let fence = self.own_fence().await?;
        let claimed =
            store::jobs::claim_restart(&self.inner.db, job, history, segments, restart_at, &fence)
                .await?;
        if let Some(claimed) = &claimed {
            self.inner.registry.put(claimed);
        }
        Ok(claimed.map(|job| (job, segment)))
    }

    /// Starts the run a job was waiting for when the previous supervisor
    /// went away during its restart wait: the attempt and its segment were
    /// claimed, no process exists. False when it could not be started (the
    /// caller then ends the job).
    pub(super) async fn resume_restart(&self, job: &Job) -> Result<bool, JobError> {
        let (recording, profile) = self.recording_and_profile(job).await?;
        let segment = segment_path(Path::new(&recording.output_path), job.attempt);
        let announcing = self.inner.announcements.begin(job.id);
        let run = Run {
            job,
            recording: &recording,
            profile: &profile,
            output: segment,
        };
        match self.launch_run(&run).await {
            Ok((identity, stored)) => {
                let job = stored.unwrap_or_else(|| job.clone());
                self.inner.events.publish(EventKind::JobRestarted, &job);
                drop(announcing);
                info!(
                    job_id = job.id,
                    attempt = job.attempt,
                    pid = identity.pid,
                    "restart resumed after a supervisor restart"
                );
                Ok(true)
            }
            Err(RunError::Spawn(e)) => {
                warn!(job_id = job.id, error = %e, "the recorder could not be restarted");
                Ok(false)
            }
            Err(RunError::Identity(_) | RunError::Taken) => Ok(true),
            Err(RunError::NoLease) => Ok(false),
        }
    }
}

/// Whether a recorder with a duration limit ended by itself at its limit
/// (its own `-t`, say): it recorded what was asked, nothing to restart.
fn reached_its_limit(job: &Job, ended_at: OffsetDateTime) -> bool {
    let Some(limit) = job.duration_seconds else {
        return false;
    };
    let elapsed = Duration::try_from(ended_at - job.started_at).unwrap_or(Duration::ZERO);
    elapsed + LIMIT_TOLERANCE >= Duration::from_secs(u64::try_from(limit).unwrap_or(0))
}
