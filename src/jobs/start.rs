//! Starting a job, and starting its recorder again after a crash. Both go
//! through [`JobService::launch_run`]: render the profile's argv for this
//! run, spawn it, and store its identity, or kill it when the identity
//! cannot be stored (such a recorder could never be adopted after a crash
//! of the supervisor, nor told apart from a stranger).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::DbErr;
use time::OffsetDateTime;
use tracing::{Instrument, error, info, info_span, warn};

use super::status::Ending;
use super::{JobError, JobService, StartRequest, Started};
use crate::entity::{EventKind, JobStatus, PastRun};
use crate::profile::{Profile, protocol_whitelist};
use crate::recordings::output::segment_path;
use crate::redact;
use crate::store::{self, Job, Recording};
use crate::supervisor::{
    ExitEvent, ExitOutcome, ProcessIdentity, SpawnError, SpawnSpec, StallCheck,
};
use crate::template::render_argv;

/// One run of a job's recorder: what differs between a first start and a
/// restart is only where it writes.
struct Run<'a> {
    job: &'a Job,
    recording: &'a Recording,
    profile: &'a Profile,
    output: PathBuf,
}

/// Why a run did not start.
enum RunError {
    /// No process was created.
    Spawn(SpawnError),
    /// The process was created but its identity could not be stored: it has
    /// been killed, and its exit will be reported as usual.
    Identity(DbErr),
}

impl JobService {
    /// Creates a recording and its job and spawns the recorder. When the
    /// recorder cannot be spawned the job and recording end `failed` at once
    /// and the error names the program and the OS error.
    pub async fn start(&self, request: StartRequest) -> Result<Started, JobError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let settings = &self.inner.settings;
        let start = request.validate(&settings.profiles)?;
        self.check_reach(&start).await?;
        let gate = self.inner.start_gate.read().await;
        // Checked again under the gate: shutdown takes the gate exclusively
        // after cancelling, so no recorder starts once stop_all has run.
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let place = self.take_place().await?;
        let (recording, job) = store::jobs::insert_recording_and_job(
            &self.inner.db,
            store::jobs::NewRecording {
                title: &start.title,
                source: &start.source,
                profile: &start.profile_name,
                output_extension: &start.profile.output_extension,
                recordings_dir: &settings.recordings_dir(),
                logs_dir: &settings.logs_dir(),
                duration_seconds: start.duration_seconds.map(|d| d as i64),
                node: &settings.node_id,
            },
        )
        .await?;
        drop(place);
        let span = info_span!("job", job_id = job.id, recording_id = recording.id);
        let run = Run {
            job: &job,
            recording: &recording,
            profile: &start.profile,
            output: PathBuf::from(&recording.output_path),
        };
        // The gate stays held until the job's fate is written: its identity,
        // or its failure. A reconciliation meanwhile would take it for an
        // orphan without a process.
        let (identity, stored) = match self.launch_run(&run).instrument(span.clone()).await {
            Ok(launched) => launched,
            Err(RunError::Spawn(e)) => {
                warn!(parent: &span, error = %e, "recorder could not be spawned");
                self.inner.metrics.spawn_failed();
                self.finish(job.id, Ending::SpawnFailed(e.to_string()))
                    .await?;
                return Err(JobError::Spawn {
                    job_id: job.id,
                    source: e,
                });
            }
            Err(RunError::Identity(e)) => return Err(JobError::Database(e)),
        };
        // Ended already (the recorder exited at once): shown as it is.
        let job = stored.unwrap_or(job);
        drop(gate);
        self.inner.events.publish(EventKind::JobStarted, &job);
        info!(parent: &span, pid = identity.pid, source = %redact::url(&start.source), profile = %start.profile_name, "job started");
        if let Some(seconds) = start.duration_seconds {
            self.arm_duration_limit(job.id, Duration::from_secs(seconds));
        }
        Ok(Started { job, recording })
    }

    /// Starts a crashed recorder again when its profile allows it: the job
    /// stays `running` and moves to its next attempt, writing a new segment.
    /// True when a new run was started.
    pub(super) async fn restart(&self, event: &ExitEvent) -> Result<bool, JobError> {
        let job = self.job(event.job_id).await?;
        if job.status != JobStatus::Running {
            return Ok(false);
        }
        let (recording, profile) = self.recording_and_profile(&job).await?;
        let restarts_done = u32::try_from(job.attempt.saturating_sub(1)).unwrap_or(0);
        if restarts_done >= profile.restart_attempts {
            return Ok(false);
        }
        let backoff = profile.restart_backoff(restarts_done + 1);
        warn!(
            attempt = job.attempt,
            outcome = ?event.outcome,
            ?backoff,
            "recorder crashed; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = self.inner.shutdown.cancelled() => return Ok(false),
        }
        let _gate = self.inner.start_gate.read().await;
        // Read again: a stop may have come in during the backoff.
        let job = self.job(event.job_id).await?;
        if job.status != JobStatus::Running || self.inner.shutdown.is_cancelled() {
            return Ok(false);
        }
        let Some(segment) = self
            .claim_next_run(&job, &recording, event, backoff)
            .await?
        else {
            return Ok(false);
        };
        let run = Run {
            job: &job,
            recording: &recording,
            profile: &profile,
            output: segment,
        };
        match self.launch_run(&run).await {
            Ok((identity, _)) => {
                info!(
                    attempt = job.attempt + 1,
                    pid = identity.pid,
                    "recorder restarted"
                );
                Ok(true)
            }
            // The job ends with the crash that asked for the restart.
            Err(RunError::Spawn(e)) => {
                warn!(error = %e, "the recorder could not be restarted");
                Ok(false)
            }
            // The new run was killed; its own exit ends the job.
            Err(RunError::Identity(_)) => Ok(true),
        }
    }

    /// Claims the job's next attempt and its segment before the new run
    /// exists: whatever becomes of that run (an instant exit, a crash, a
    /// stop) is then handled as the next attempt's, never confused with
    /// this one. Claimed only if the job is still running this attempt;
    /// returns where the next run writes.
    async fn claim_next_run(
        &self,
        job: &Job,
        recording: &Recording,
        event: &ExitEvent,
        backoff: Duration,
    ) -> Result<Option<PathBuf>, JobError> {
        let next = job.attempt + 1;
        let segment = segment_path(Path::new(&recording.output_path), next);
        let (exit_code, exit_signal) = match event.outcome {
            ExitOutcome::Exited(code) => (Some(code), None),
            ExitOutcome::Signalled(signal) => (None, Some(signal)),
            ExitOutcome::Vanished(_) => (None, None),
        };
        let mut history = job.attempts.clone().unwrap_or_default();
        history.0.push(PastRun {
            attempt: job.attempt,
            process_id: job.process_id,
            exit_code,
            exit_signal,
            ended_at: Some(OffsetDateTime::now_utc()),
            restarted_after_ms: backoff.as_millis() as u64,
        });
        let mut segments = recording.segments.clone().unwrap_or_default();
        segments.0.push(segment.display().to_string());
        let claimed = store::jobs::claim_restart(&self.inner.db, job, history, segments).await?;
        Ok(claimed.then_some(segment))
    }

    /// Spawns one run of the job's recorder and stores its identity. On
    /// success returns the identity and the job as stored (`None` when it
    /// ended meanwhile: the recorder exited at once).
    async fn launch_run(&self, run: &Run<'_>) -> Result<(ProcessIdentity, Option<Job>), RunError> {
        let Run {
            job,
            recording,
            profile,
            output,
        } = run;
        let output_text = output.display().to_string();
        let argv = render_argv(
            &profile.command,
            &[
                ("source", &recording.source),
                ("output", &output_text),
                ("duration", &job.duration_seconds.unwrap_or(0).to_string()),
                ("job_id", &job.id.to_string()),
                ("recording_id", &recording.id.to_string()),
                ("protocols", &protocol_whitelist(&profile.allowed_schemes)),
            ],
        );
        let identity = self
            .inner
            .supervisor
            .spawn(SpawnSpec {
                job_id: job.id,
                argv,
                log_path: PathBuf::from(&job.log_path),
                stall: profile.stall_timeout().map(|timeout| StallCheck {
                    output: output.clone(),
                    timeout,
                }),
                env: profile.env.clone(),
            })
            .map_err(RunError::Spawn)?;
        match store::jobs::set_process_identity(&self.inner.db, job.id, identity).await {
            Ok(stored) => Ok((identity, stored)),
            Err(e) => {
                error!(error = %e, "could not record the recorder's identity; killing it");
                self.inner.supervisor.kill(job.id);
                Err(RunError::Identity(e))
            }
        }
    }
}
