//! Post-processing: what happens to a recording once its recorder has ended.
//! Each of the profile's commands runs as a child, one after another; the
//! recording becomes `ready` when all exit 0 and `failed` (with the failing
//! step named) otherwise.
//!
//! A run interrupted by a shutdown leaves the recording in `processing`, and
//! the next start runs it again from the first step: processing is
//! at-least-once, so steps must tolerate being repeated.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{Profiles, render_argv};
use crate::entity::RecordingStatus;
use crate::jobs::repo;
use crate::supervisor::Supervisor;

/// Launches and tracks post-processing runs. Cheap to clone.
#[derive(Clone)]
pub struct Processing {
    db: DatabaseConnection,
    supervisor: Supervisor,
    profiles: Arc<Profiles>,
    logs_dir: PathBuf,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Recordings whose processing runs now: a second launch for the same
    /// recording (start-up resume racing a reconciliation, say) is a no-op.
    in_flight: Arc<Mutex<HashSet<i32>>>,
}

impl Processing {
    pub fn new(
        db: DatabaseConnection,
        supervisor: Supervisor,
        profiles: Arc<Profiles>,
        logs_dir: PathBuf,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            supervisor,
            profiles,
            logs_dir,
            tracker,
            shutdown,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        // Single inserts and removals: a poisoned lock holds a valid set.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the recording's post-processing in the background.
    pub fn launch(&self, recording_id: i32) {
        if !self.in_flight().insert(recording_id) {
            return;
        }
        let this = self.clone();
        let span = info_span!("processing", recording_id);
        self.tracker.spawn(
            async move {
                if let Err(e) = this.run(recording_id).await {
                    error!(error = %e, "post-processing could not record its result");
                }
                this.in_flight().remove(&recording_id);
            }
            .instrument(span),
        );
    }

    /// Launches every recording left in `processing` by a previous run.
    pub async fn resume_unfinished(&self) -> Result<usize, DbErr> {
        let pending = repo::recordings_with_status(&self.db, RecordingStatus::Processing).await?;
        for recording in &pending {
            info!(recording_id = recording.id, "resuming post-processing");
            self.launch(recording.id);
        }
        Ok(pending.len())
    }

    async fn run(&self, recording_id: i32) -> Result<(), DbErr> {
        let Some(recording) = repo::find_recording(&self.db, recording_id).await? else {
            return Ok(());
        };
        if recording.status != RecordingStatus::Processing {
            return Ok(());
        }
        let Some((_, profile)) = self.profiles.get(Some(&recording.profile)) else {
            let reason = format!(
                "profile `{}` is no longer configured; cannot post-process",
                recording.profile
            );
            repo::finish_processing(
                &self.db,
                recording_id,
                RecordingStatus::Failed,
                Some(reason),
            )
            .await?;
            return Ok(());
        };
        info!(
            steps = profile.post_processing.len(),
            "post-processing started"
        );
        let log_path = self
            .logs_dir
            .join(format!("recording-{recording_id}-processing.log"));
        let id = recording_id.to_string();
        for (index, template) in profile.post_processing.iter().enumerate() {
            let argv = render_argv(
                template,
                &[("input", &recording.output_path), ("recording_id", &id)],
            );
            let step = index + 1;
            let result = tokio::select! {
                result = run_step(&self.supervisor, &argv, &log_path) => result,
                () = self.shutdown.cancelled() => {
                    warn!(step, "shutdown interrupted post-processing; it will run again at next start");
                    return Ok(());
                }
            };
            if let Err(reason) = result {
                let reason = format!("post-processing step {step} (`{}`) {reason}", argv[0]);
                warn!(%reason, "post-processing failed");
                repo::finish_processing(
                    &self.db,
                    recording_id,
                    RecordingStatus::Failed,
                    Some(reason),
                )
                .await?;
                return Ok(());
            }
        }
        if repo::finish_processing(&self.db, recording_id, RecordingStatus::Ready, None).await? {
            info!("recording ready");
        }
        Ok(())
    }
}

/// Runs one command to completion, output appended to the processing log.
/// The child is killed if this future is dropped (shutdown).
async fn run_step(
    supervisor: &Supervisor,
    argv: &[String],
    log_path: &PathBuf,
) -> Result<(), String> {
    let open = || OpenOptions::new().create(true).append(true).open(log_path);
    let stdout = open().map_err(|e| format!("could not open {}: {e}", log_path.display()))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("could not open {}: {e}", log_path.display()))?;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    let (mut child, _owned) = supervisor
        .spawn_owned(&mut command)
        .map_err(|e| format!("could not be started: {e}"))?;
    let status = child
        .wait()
        .await
        .map_err(|e| format!("could not be awaited: {e}"))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exited with code {code}")),
        (None, Some(signal)) => Err(format!("was killed by signal {signal}")),
        (None, None) => Err(format!("ended with status {status}")),
    }
}
