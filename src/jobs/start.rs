//! Starting a job. Its first run and every restart (`restart.rs`) go
//! through [`JobService::launch_run`]: render the profile's argv for this
//! run, spawn it, and store its identity, or kill it when the identity
//! cannot be stored (such a recorder could never be adopted after a crash
//! of the supervisor, nor told apart from a stranger).

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::DbErr;
use tracing::{Instrument, error, info, info_span, warn};

use super::status::Ending;
use super::{JobError, JobService, StartRequest, Started};
use crate::entity::{EventKind, JobStatus};
use crate::faults;
use crate::profile::{Profile, input_options_for, protocol_whitelist};
use crate::recordings::output;
use crate::redact;
use crate::store::{self, Job, Recording};
use crate::supervisor::{ProcessIdentity, SpawnError, SpawnSpec, StallCheck};
use crate::template::render_argv_with_lists;

/// One run of a job's recorder: what differs between a first start and a
/// restart is only where it writes.
pub(super) struct Run<'a> {
    pub(super) job: &'a Job,
    pub(super) recording: &'a Recording,
    pub(super) profile: &'a Profile,
    pub(super) output: PathBuf,
}

/// Why a run did not start.
pub(super) enum RunError {
    /// No process was created.
    Spawn(SpawnError),
    /// The process was created but its identity could not be stored: it has
    /// been killed, and its exit will be reported as usual.
    Identity(DbErr),
    /// The process was created, but the job is no longer this node's (it
    /// lost its lease and another node took the job over): it has been
    /// killed.
    Taken,
    /// This node does not hold its lease: nothing was spawned.
    NoLease,
}

impl JobService {
    /// Creates a recording and its job and spawns the recorder, here or,
    /// when this node cannot take it, on the node placement chose (the
    /// answer waits until that node started it). When the recorder cannot
    /// be spawned the job and recording end `failed` at once and the error
    /// names the program and the OS error.
    pub async fn start(&self, request: StartRequest) -> Result<Started, JobError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let start = request.validate(&self.inner.settings.profiles)?;
        self.check_free_space().await?;
        self.check_reach(&start).await?;
        let gate = self.inner.start_gate.read().await;
        // Checked again under the gate: shutdown takes the gate exclusively
        // after cancelling, so no recorder starts once stop_all has run.
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let (recording, job) = self.admit(&start).await?;
        if job.status == JobStatus::Pending {
            drop(gate);
            return self.await_placed(job, recording).await;
        }
        self.launch_first(gate, job, recording, &start.profile)
            .await
    }

    /// Spawns the first run of a job stored `running` on this node, while
    /// `gate` is held (until the job's fate is written: its identity, or
    /// its failure; a reconciliation meanwhile would take it for an
    /// orphan without a process). Announces it and arms its limit.
    pub(super) async fn launch_first(
        &self,
        gate: tokio::sync::RwLockReadGuard<'_, ()>,
        job: Job,
        recording: Recording,
        profile: &Profile,
    ) -> Result<Started, JobError> {
        let span = info_span!("job", job_id = job.id, recording_id = recording.id);
        // The job's end (an instant exit) waits until its start is announced.
        let announcing = self.inner.announcements.begin(job.id);
        let run = Run {
            job: &job,
            recording: &recording,
            profile,
            output: PathBuf::from(&recording.output_path),
        };
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
            Err(RunError::Taken | RunError::NoLease) => return Err(JobError::LeaseLost),
        };
        // Ended already (the recorder exited at once): shown as it is.
        let job = stored.unwrap_or(job);
        drop(gate);
        self.inner.events.publish(EventKind::JobStarted, &job);
        drop(announcing);
        info!(parent: &span, pid = identity.pid, source = %redact::url(&recording.source), profile = %recording.profile, "job started");
        if let Some(seconds) = job.duration_seconds.and_then(|s| u64::try_from(s).ok()) {
            self.arm_duration_limit(job.id, Duration::from_secs(seconds));
        }
        Ok(Started { job, recording })
    }

    /// Refuses to start a recording the disk cannot take: below the floor
    /// kept free, a recorder would fail within moments, and fill what the
    /// others still need.
    pub(super) async fn check_free_space(&self) -> Result<(), JobError> {
        let floor = self.inner.settings.min_free_bytes;
        if floor == 0 {
            return Ok(());
        }
        let dir = self.inner.settings.recordings_dir();
        let free = self.free_bytes(&dir).await?;
        let free = match free {
            // Below the floor: the profiles that allow it give up their
            // oldest ready recordings first.
            Ok(free) if free < floor => {
                let profiles = &self.inner.settings.profiles;
                let deleted = self
                    .inner
                    .recordings
                    .reclaim_space(profiles, &dir, floor)
                    .await;
                if deleted > 0 {
                    self.free_bytes(&dir).await?
                } else {
                    Ok(free)
                }
            }
            other => other,
        };
        match free {
            Ok(free) if free < floor => Err(JobError::InsufficientStorage { free, floor }),
            Ok(_) => Ok(()),
            // Unknown: the recorder finds out for itself.
            Err(e) => {
                warn!(error = %e, "cannot read the free space of the recordings' disk");
                Ok(())
            }
        }
    }

    /// Free bytes of the recordings' disk, read off the runtime.
    async fn free_bytes(&self, dir: &std::path::Path) -> Result<std::io::Result<u64>, JobError> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || output::free_bytes(&dir))
            .await
            .map_err(|e| JobError::Database(sea_orm::DbErr::Custom(e.to_string())))
    }

    /// Spawns one run of the job's recorder and stores its identity. On
    /// success returns the identity and the job as stored (`None` when it
    /// ended meanwhile: the recorder exited at once).
    pub(super) async fn launch_run(
        &self,
        run: &Run<'_>,
    ) -> Result<(ProcessIdentity, Option<Job>), RunError> {
        let Run {
            job,
            recording,
            profile,
            output,
        } = run;
        // A node without its lease starts nothing.
        if self.own_fence().await.is_err() {
            return Err(RunError::NoLease);
        }
        let segments = match profile.segment_seconds {
            Some(_) => Some(
                super::segments::prepare_run(recording, job)
                    .await
                    .map_err(RunError::Spawn)?,
            ),
            None => None,
        };
        let output = segments.as_ref().map_or(output, |s| &s.pattern);
        let output_text = output.display().to_string();
        let list_text = segments
            .as_ref()
            .map(|s| s.list.path.display().to_string())
            .unwrap_or_default();
        let input_options = input_options_for(&profile.input_options, &recording.source);
        let argv = render_argv_with_lists(
            &profile.command,
            &[
                ("source", &recording.source),
                ("output", &output_text),
                ("duration", &job.duration_seconds.unwrap_or(0).to_string()),
                ("job_id", &job.id.to_string()),
                ("recording_id", &recording.id.to_string()),
                ("protocols", &protocol_whitelist(&profile.allowed_schemes)),
                ("segment_list", &list_text),
                (
                    "segment_seconds",
                    &profile.segment_seconds.unwrap_or(0).to_string(),
                ),
            ],
            &[("input_options", &input_options)],
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
                restartable: restarts_left(profile, job),
                env: profile.env.clone(),
                progress: profile.progress,
                log_max_bytes: self.inner.settings.job_log_max_bytes,
                segments: segments.map(|s| s.list),
            })
            .map_err(RunError::Spawn)?;
        self.inner
            .stop_plans
            .insert(job.id, super::stop::plan_of(profile));
        if faults::armed(faults::Point::ExitAfterSpawn) {
            error!(
                pid = identity.pid,
                "fault point: exiting before the recorder's identity is stored"
            );
            std::process::exit(86);
        }
        // What keeps a recorder from ever running unrecorded: its job row
        // is committed (live, no process) before the spawn, and the
        // recorder carries this node's marker and its job id in its
        // environment; a crash before the identity below is stored leaves
        // a live job without a process, which start-up finds by the marker
        // (`orphans`) and takes charge of. The start still waits for this
        // write: its answer promises the process is recorded, and a write
        // that fails kills the recorder before the client hears of it.
        // Writing it later would spare the client one round trip, not the
        // database one write.
        let stored = match self.own_fence().await {
            Ok(fence) => {
                store::jobs::set_process_identity(&self.inner.db, job.id, identity, &fence).await
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(Some(stored)) => {
                self.inner.registry.put(&stored);
                Ok((identity, Some(stored)))
            }
            Ok(None) => {
                error!("the job is no longer this node's (taken over); killing its recorder");
                self.inner.supervisor.kill(job.id);
                Err(RunError::Taken)
            }
            Err(e) => {
                error!(error = %e, "could not record the recorder's identity; killing it");
                self.inner.supervisor.kill(job.id);
                Err(RunError::Identity(e))
            }
        }
    }
}

/// Whether the profile would start the job's recorder again after this run.
pub(super) fn restarts_left(profile: &Profile, job: &Job) -> bool {
    let restarts_done = u32::try_from(job.attempt.saturating_sub(1)).unwrap_or(0);
    profile.restarts_forever() || restarts_done < profile.restart_attempts()
}
