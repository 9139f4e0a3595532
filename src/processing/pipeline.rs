//! One run of a recording's pipeline: join the files of restarted recorder
//! runs, then each step not yet succeeded, in order, with its retries; each
//! attempt is written down as it starts and ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::BackoffBuilder;

use sea_orm::DbErr;
use tracing::{Instrument, info, info_span, warn};

use super::command::{Attempt, MAX_STDOUT, run_command};
use super::{Processing, analyze, join, recognized, transcribe};
use crate::backoff;
use crate::entity::{RecordingStatus, StepStatus};
use crate::metrics::StepOutcome;
use crate::profile::{BuiltinStep, StepConfig, StepOutput};
use crate::store::{self, Recording, Step, steps};
use crate::template::render_argv;

/// Longest wait between two attempts of a step.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// How a step ended.
enum StepEnd {
    Succeeded,
    Failed(String),
    /// Shutdown: the step stays as it is and runs again at next start.
    Interrupted,
}

/// What an attempt gave: its outcome, or `None` when shutdown interrupted it.
type Tried = Option<Result<Attempt, (Option<i32>, String)>>;

/// A recording ready to be processed, with its steps as stored.
struct Plan {
    recording: Recording,
    pipeline: Vec<StepConfig>,
    rows: Vec<Step>,
    workdir: PathBuf,
}

impl Processing {
    /// Runs what remains of the recording's pipeline, and concludes it.
    pub(super) async fn run(&self, recording_id: i32) -> Result<(), DbErr> {
        let Some(Plan {
            recording,
            pipeline,
            rows,
            workdir,
        }) = self.plan(recording_id).await?
        else {
            return Ok(());
        };
        info!(steps = pipeline.len(), "processing started");
        let input = PathBuf::from(&recording.output_path);
        if !self.join_runs(&recording, &input, &workdir).await? {
            return Ok(());
        }
        for config in &pipeline {
            let Some(row) = rows.iter().find(|r| r.name == config.name) else {
                continue;
            };
            if row.status == StepStatus::Succeeded {
                continue;
            }
            if !self.still_claimed(recording_id).await? {
                warn!("another node processes this recording now; stopping here");
                return Ok(());
            }
            let span = info_span!("step", name = %config.name);
            let outcome = self
                .run_step(recording_id, row, config, &input, &workdir)
                .instrument(span)
                .await?;
            match outcome {
                StepEnd::Succeeded => {}
                StepEnd::Interrupted => return Ok(()),
                StepEnd::Failed(reason) if config.optional => {
                    // Recorded on the step's row; the recording goes on.
                    warn!(%reason, "optional step failed; the pipeline goes on");
                }
                StepEnd::Failed(reason) => {
                    let reason = format!("step `{}` failed: {reason}", config.name);
                    return self.fail(recording_id, reason).await;
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

    /// The recording and its pipeline, when there is something to run;
    /// otherwise the recording is concluded here (ready when there is
    /// nothing to do, failed when it cannot be done) and `None` returned.
    async fn plan(&self, recording_id: i32) -> Result<Option<Plan>, DbErr> {
        let Some(recording) = store::recordings::find_recording(&self.db, recording_id).await?
        else {
            return Ok(None);
        };
        if recording.status != RecordingStatus::Processing {
            return Ok(None);
        }
        let Some((_, profile)) = self.profiles.get(Some(&recording.profile)) else {
            let reason = format!(
                "profile `{}` is no longer configured; cannot process",
                recording.profile
            );
            self.fail(recording_id, reason).await?;
            return Ok(None);
        };
        let pipeline = profile.pipeline();
        if pipeline.is_empty() && recording.segments.is_none() {
            // Nothing to run: ready at once, without touching the disk.
            self.conclude(recording_id, RecordingStatus::Ready, None)
                .await?;
            return Ok(None);
        }
        let names: Vec<String> = pipeline.iter().map(|s| s.name.clone()).collect();
        let rows = steps::ensure(&self.db, recording_id, &names).await?;
        let workdir = self.workdir(recording_id);
        if let Err(e) = tokio::fs::create_dir_all(&workdir).await {
            let reason = format!("cannot create {}: {e}", workdir.display());
            self.fail(recording_id, reason).await?;
            return Ok(None);
        }
        Ok(Some(Plan {
            recording,
            pipeline,
            rows,
            workdir,
        }))
    }

    /// Joins the files of a restarted recorder's runs into `input`. False
    /// when that failed (the recording is then concluded as failed).
    async fn join_runs(
        &self,
        recording: &Recording,
        input: &Path,
        workdir: &Path,
    ) -> Result<bool, DbErr> {
        let Some(segments) = &recording.segments else {
            return Ok(true);
        };
        let segments: Vec<PathBuf> = segments.0.iter().map(PathBuf::from).collect();
        if segments.is_empty() {
            return Ok(true);
        }
        if let Err(reason) = join::join_segments(&self.supervisor, input, &segments, workdir).await
        {
            let runs = segments.len() + 1;
            let reason = format!("joining the {runs} recorder runs failed: {reason}");
            self.fail(recording.id, reason).await?;
            return Ok(false);
        }
        store::recordings::clear_segments(&self.db, recording.id).await?;
        join::remove_segments(&segments, workdir).await;
        info!(segments = segments.len() + 1, "recorder runs joined");
        Ok(true)
    }

    /// Concludes the recording as failed, saying why.
    async fn fail(&self, recording_id: i32, reason: String) -> Result<(), DbErr> {
        warn!(%reason, "processing failed");
        self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
            .await
            .map(|_| ())
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
        let mut delays = backoff::doubling(config.retry_backoff(), MAX_RETRY_DELAY).build();
        for try_number in 0..=config.retries {
            if try_number > 0 {
                let delay = delays.next().unwrap_or(config.retry_backoff());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.shutdown.cancelled() => return Ok(StepEnd::Interrupted),
                }
            }
            attempt += 1;
            let Some(result) = self
                .try_step(recording_id, row, config, attempt, input, workdir)
                .await?
            else {
                return Ok(StepEnd::Interrupted);
            };
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
                    let error = Some(reason.clone());
                    steps::finished(&self.db, row.id, status, exit_code, error, None).await?;
                    if last {
                        return Ok(StepEnd::Failed(reason));
                    }
                }
            }
        }
        Ok(StepEnd::Failed("no attempt was made".to_owned()))
    }

    /// One attempt of a step, once a processing slot is free, bounded by
    /// the step's timeout and measured.
    async fn try_step(
        &self,
        recording_id: i32,
        row: &Step,
        config: &StepConfig,
        attempt: i32,
        input: &Path,
        workdir: &Path,
    ) -> Result<Tried, DbErr> {
        let permit = tokio::select! {
            permit = self.permits.acquire() => permit,
            () = self.shutdown.cancelled() => return Ok(None),
        };
        steps::started(&self.db, row.id, attempt).await?;
        info!(attempt, "step started");
        let began = std::time::Instant::now();
        let timeout = config.timeout();
        let result = tokio::select! {
            result = tokio::time::timeout(
                timeout,
                self.attempt(recording_id, config, input, workdir),
            ) => result.unwrap_or_else(|_| Err((
                None,
                format!("timed out after {:.0} s", timeout.as_secs_f64()),
            ))),
            () = self.shutdown.cancelled() => {
                warn!("shutdown interrupted the step; it runs again at next start");
                return Ok(None);
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
        Ok(Some(result))
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
                    segments: None,
                })
                .map_err(|e| (None, e)),
            Some(BuiltinStep::Transcribe) => {
                let log = self.log_path(recording_id);
                transcribe::transcribe(&self.supervisor, config, input, workdir, &log).await
            }
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
                run_command(
                    &self.supervisor,
                    &argv,
                    &config.env,
                    &self.log_path(recording_id),
                    MAX_STDOUT,
                )
                .await
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
            (Some(BuiltinStep::Transcribe), _) => {
                let segments = done.segments.as_deref().unwrap_or_default();
                store::transcripts::replace(&self.db, recording_id, segments).await
            }
            (None, Some(StepOutput::Transcript)) => {
                let printed = done.result.as_deref().unwrap_or_default();
                let segments = recognized::segments_from_text(printed);
                store::transcripts::replace(&self.db, recording_id, &segments).await
            }
            (None, None) => Ok(()),
        }
    }
}
