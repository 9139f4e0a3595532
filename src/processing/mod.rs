//! Post-processing: the pipeline a recording goes through once its recorder
//! has ended. Each step is a command (or the built-in `analyze`) with a
//! timeout and retries with backoff; its state is a row of its own
//! (`processing_steps`), so progress is visible and a restart resumes the
//! steps not yet succeeded. The recording becomes `ready` when every step
//! succeeded, `failed` with the failing step's error otherwise.
//!
//! Processing is at-least-once: a step interrupted by a crash or shutdown
//! runs again, from its start, at the next start, so steps must tolerate
//! being repeated (overwrite their outputs rather than append).
//!
//! Steps are CPU-heavy (transcription), so at most `concurrency` run at a
//! time across all recordings.

pub mod analyze;
pub mod join;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::entity::{Analysis, EventKind, RecordingStatus, StepStatus};
use crate::events::EventLog;
use crate::metrics::{Metrics, StepOutcome};
use crate::profile::{BuiltinStep, Profiles, StepConfig, StepOutput};
use crate::store::{self, Step, steps};
use crate::supervisor::Supervisor;
use crate::template::render_argv;

/// Most of a step's standard output kept as its result.
const MAX_STDOUT: u64 = 1024 * 1024;

/// Where processing keeps its files.
#[derive(Debug, Clone)]
pub struct ProcessingDirs {
    /// One log per recording's processing.
    pub logs: PathBuf,
    /// One scratch directory per recording (`{workdir}`).
    pub work: PathBuf,
}

/// Launches and tracks pipeline runs. Cheap to clone.
#[derive(Clone)]
pub struct Processing {
    db: DatabaseConnection,
    supervisor: Supervisor,
    profiles: Arc<Profiles>,
    dirs: ProcessingDirs,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Recordings whose processing runs now: a second launch for the same
    /// recording (start-up resume racing a reconciliation, say) is a no-op.
    in_flight: Arc<Mutex<HashSet<i32>>>,
    events: Option<EventLog>,
    metrics: Arc<Metrics>,
}

/// How one attempt of a step went.
struct Attempt {
    exit_code: Option<i32>,
    /// Standard output of a command, or the built-in step's JSON.
    result: Option<String>,
    /// What the built-in `analyze` step measured.
    analysis: Option<Analysis>,
}

impl Processing {
    pub fn new(
        db: DatabaseConnection,
        supervisor: Supervisor,
        profiles: Arc<Profiles>,
        dirs: ProcessingDirs,
        concurrency: usize,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            supervisor,
            profiles,
            dirs,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            tracker,
            shutdown,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            events: None,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Records step durations and failures in these metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Publishes `recording.ready` / `recording.failed` on this log.
    pub fn with_events(mut self, events: EventLog) -> Self {
        self.events = Some(events);
        self
    }

    /// `processing` → `ready` or `failed`, published as an event.
    async fn conclude(
        &self,
        recording_id: i32,
        status: RecordingStatus,
        error: Option<String>,
    ) -> Result<bool, DbErr> {
        let done =
            store::recordings::finish_processing(&self.db, recording_id, status, error).await?;
        if done
            && let Some(events) = &self.events
            && let Some(kind) = EventKind::of_recording(status)
            && let Some(recording) =
                store::recordings::find_recording(&self.db, recording_id).await?
        {
            events.publish(kind, &recording);
        }
        Ok(done)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        // Single inserts and removals: a poisoned lock holds a valid set.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the recording's pipeline is running in this process.
    pub fn is_running(&self, recording_id: i32) -> bool {
        self.in_flight().contains(&recording_id)
    }

    /// The recording's scratch directory (`{workdir}`).
    pub fn workdir(&self, recording_id: i32) -> PathBuf {
        self.dirs.work.join(format!("recording-{recording_id}"))
    }

    /// The recording's processing log.
    pub fn log_path(&self, recording_id: i32) -> PathBuf {
        self.dirs
            .logs
            .join(format!("recording-{recording_id}-processing.log"))
    }

    /// Runs the recording's pipeline in the background.
    pub fn launch(&self, recording_id: i32) {
        if !self.in_flight().insert(recording_id) {
            return;
        }
        let this = self.clone();
        let span = info_span!("processing", recording_id);
        self.tracker.spawn(
            async move {
                // A database error leaves steps as they were written; the
                // run is tried again (done steps are skipped) a few times
                // before waiting for the next start.
                let mut delay = Duration::from_secs(1);
                for attempt in 1..=5 {
                    match this.run(recording_id).await {
                        Ok(()) => break,
                        Err(e) => {
                            error!(error = %e, attempt, "processing could not record its progress");
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = this.shutdown.cancelled() => break,
                            }
                            delay *= 2;
                        }
                    }
                }
                this.in_flight().remove(&recording_id);
            }
            .instrument(span),
        );
    }

    /// Launches every recording left in `processing` by a previous run.
    ///
    /// Only the recordings of `node`'s jobs: with several nodes on one
    /// database, each recording's file is on the node that recorded it.
    pub async fn resume_unfinished(&self, node: &str) -> Result<usize, DbErr> {
        let mut pending =
            store::recordings::recordings_with_status(&self.db, RecordingStatus::Processing)
                .await?;
        let ids: Vec<i32> = pending.iter().map(|r| r.id).collect();
        let elsewhere = store::recordings::recorded_by_other_nodes(&self.db, &ids, node).await?;
        pending.retain(|r| !elsewhere.contains(&r.id));
        for recording in &pending {
            info!(recording_id = recording.id, "resuming processing");
            self.launch(recording.id);
        }
        Ok(pending.len())
    }

    async fn run(&self, recording_id: i32) -> Result<(), DbErr> {
        let Some(recording) = store::recordings::find_recording(&self.db, recording_id).await?
        else {
            return Ok(());
        };
        if recording.status != RecordingStatus::Processing {
            return Ok(());
        }
        let Some((_, profile)) = self.profiles.get(Some(&recording.profile)) else {
            let reason = format!(
                "profile `{}` is no longer configured; cannot process",
                recording.profile
            );
            self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
                .await?;
            return Ok(());
        };
        let pipeline = profile.pipeline();
        if pipeline.is_empty() && recording.segments.is_none() {
            // Nothing to run: ready at once, without touching the disk.
            self.conclude(recording_id, RecordingStatus::Ready, None)
                .await?;
            return Ok(());
        }
        let names: Vec<String> = pipeline.iter().map(|s| s.name.clone()).collect();
        let rows = steps::ensure(&self.db, recording_id, &names).await?;
        let workdir = self.workdir(recording_id);
        if let Err(e) = tokio::fs::create_dir_all(&workdir).await {
            let reason = format!("cannot create {}: {e}", workdir.display());
            self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
                .await?;
            return Ok(());
        }
        info!(steps = pipeline.len(), "processing started");
        let input = PathBuf::from(&recording.output_path);
        if let Some(segments) = &recording.segments {
            let segments: Vec<PathBuf> = segments.0.iter().map(PathBuf::from).collect();
            if !segments.is_empty() {
                if let Err(reason) =
                    join::join_segments(&self.supervisor, &input, &segments, &workdir).await
                {
                    let reason = format!(
                        "joining the {} recorder runs failed: {reason}",
                        segments.len() + 1
                    );
                    warn!(%reason, "processing failed");
                    self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
                        .await?;
                    return Ok(());
                }
                store::recordings::clear_segments(&self.db, recording_id).await?;
                join::remove_segments(&segments, &workdir).await;
                info!(segments = segments.len() + 1, "recorder runs joined");
            }
        }
        for config in &pipeline {
            let Some(row) = rows.iter().find(|r| r.name == config.name) else {
                continue;
            };
            if row.status == StepStatus::Succeeded {
                continue;
            }
            let span = info_span!("step", name = %config.name);
            let outcome = self
                .run_step(recording_id, row, config, &input, &workdir)
                .instrument(span)
                .await?;
            match outcome {
                StepEnd::Succeeded => {}
                StepEnd::Interrupted => return Ok(()),
                StepEnd::Failed(reason) => {
                    let reason = format!("step `{}` failed: {reason}", config.name);
                    warn!(%reason, "processing failed");
                    self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
                        .await?;
                    return Ok(());
                }
            }
        }
        if self
            .conclude(recording_id, RecordingStatus::Ready, None)
            .await?
        {
            info!("recording ready");
        }
        Ok(())
    }

    /// Runs one step with its retries; each attempt is written down.
    async fn run_step(
        &self,
        recording_id: i32,
        row: &Step,
        config: &StepConfig,
        input: &Path,
        workdir: &Path,
    ) -> Result<StepEnd, DbErr> {
        let mut attempt = row.attempt;
        let mut backoff = config.retry_backoff();
        for try_number in 0..=config.retries {
            if try_number > 0 {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = self.shutdown.cancelled() => return Ok(StepEnd::Interrupted),
                }
                backoff = backoff.saturating_mul(2);
            }
            let permit = tokio::select! {
                permit = self.permits.acquire() => permit,
                () = self.shutdown.cancelled() => return Ok(StepEnd::Interrupted),
            };
            attempt += 1;
            steps::started(&self.db, row.id, attempt).await?;
            info!(attempt, "step started");
            let began = std::time::Instant::now();
            let result = tokio::select! {
                result = tokio::time::timeout(
                    config.timeout(),
                    self.attempt(recording_id, config, input, workdir),
                ) => result.unwrap_or_else(|_| Err((
                    None,
                    format!("timed out after {:.0} s", config.timeout().as_secs_f64()),
                ))),
                () = self.shutdown.cancelled() => {
                    warn!("shutdown interrupted the step; it runs again at next start");
                    return Ok(StepEnd::Interrupted);
                }
            };
            drop(permit);
            let outcome = if result.is_ok() {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed
            };
            self.metrics
                .step_finished(&config.name, outcome, began.elapsed());
            match result {
                Ok(done) => {
                    self.store_output(recording_id, config, &done).await?;
                    steps::finished(
                        &self.db,
                        row.id,
                        StepStatus::Succeeded,
                        done.exit_code,
                        None,
                        done.result,
                    )
                    .await?;
                    info!(attempt, "step succeeded");
                    return Ok(StepEnd::Succeeded);
                }
                Err((exit_code, reason)) => {
                    let last = try_number == config.retries;
                    let status = if last {
                        StepStatus::Failed
                    } else {
                        StepStatus::Pending
                    };
                    warn!(attempt, %reason, retrying = !last, "step attempt failed");
                    steps::finished(
                        &self.db,
                        row.id,
                        status,
                        exit_code,
                        Some(reason.clone()),
                        None,
                    )
                    .await?;
                    if last {
                        return Ok(StepEnd::Failed(reason));
                    }
                }
            }
        }
        Ok(StepEnd::Failed("no attempt was made".to_owned()))
    }

    /// One attempt: the built-in step or the command.
    async fn attempt(
        &self,
        recording_id: i32,
        config: &StepConfig,
        input: &Path,
        workdir: &Path,
    ) -> Result<Attempt, (Option<i32>, String)> {
        match config.builtin {
            Some(BuiltinStep::Analyze) => analyze::analyze(&self.supervisor, input)
                .await
                .map(|analysis| Attempt {
                    exit_code: None,
                    result: serde_json::to_string(&analysis).ok(),
                    analysis: Some(analysis),
                })
                .map_err(|e| (None, e)),
            None => {
                let id = recording_id.to_string();
                let argv = render_argv(
                    &config.command,
                    &[
                        ("input", &input.display().to_string()),
                        ("workdir", &workdir.display().to_string()),
                        ("recording_id", &id),
                    ],
                );
                run_command(&self.supervisor, &argv, &self.log_path(recording_id)).await
            }
        }
    }

    /// Puts what a step produced where clients read it.
    async fn store_output(
        &self,
        recording_id: i32,
        config: &StepConfig,
        done: &Attempt,
    ) -> Result<(), DbErr> {
        match (config.builtin, config.stdout) {
            (Some(BuiltinStep::Analyze), _) => {
                store::recordings::set_analysis(&self.db, recording_id, done.analysis.clone()).await
            }
            (None, Some(StepOutput::Transcript)) => {
                let transcript = done.result.as_deref().map(|r| r.trim().to_owned());
                store::recordings::set_transcript(&self.db, recording_id, transcript).await
            }
            (None, None) => Ok(()),
        }
    }
}

enum StepEnd {
    Succeeded,
    Failed(String),
    /// Shutdown: the step stays as it is and runs again at next start.
    Interrupted,
}

/// Runs one command: stdout kept (bounded) as its result, stderr appended
/// to the processing log. The child is killed if this future is dropped
/// (timeout or shutdown).
async fn run_command(
    supervisor: &Supervisor,
    argv: &[String],
    log_path: &Path,
) -> Result<Attempt, (Option<i32>, String)> {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| (None, format!("cannot open {}: {e}", log_path.display())))?;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    let (mut child, _owned) = supervisor
        .spawn_step(&mut command)
        .map_err(|e| (None, format!("`{}` could not be started: {e}", argv[0])))?;
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = (&mut out).take(MAX_STDOUT).read_to_end(&mut stdout).await;
        // Drained past the limit so the step never blocks on a full pipe.
        let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let status = child
        .wait()
        .await
        .map_err(|e| (None, format!("`{}` could not be awaited: {e}", argv[0])))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(Attempt {
            exit_code: Some(0),
            result: Some(stdout),
            analysis: None,
        }),
        (Some(code), _) => Err((Some(code), format!("`{}` exited with code {code}", argv[0]))),
        (None, Some(signal)) => Err((None, format!("`{}` was killed by signal {signal}", argv[0]))),
        (None, None) => Err((None, format!("`{}` ended with status {status}", argv[0]))),
    }
}
