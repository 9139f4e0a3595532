//! Post-processing: the pipeline a recording goes through once its recorder
//! has ended. Each step is a command (or the built-in `analyze`) with a
//! timeout and retries with backoff; its state is a row of its own
//! (`processing_steps`), so progress is visible and a restart resumes the
//! steps not yet succeeded. The recording becomes `ready` when every step
//! succeeded (or failed but is `optional`: its failure stays on its row),
//! `failed` with the failing step's error otherwise.
//!
//! Processing is at-least-once: a step interrupted by a crash or shutdown
//! runs again, from its start, at the next start, so steps must tolerate
//! being repeated (overwrite their outputs rather than append).
//!
//! Steps are CPU-heavy (transcription), so at most `concurrency` run at a
//! time across all recordings.
//!
//! With storage shared by every node (`--shared-storage`), a recording is
//! processed by whichever node has a free processing slot: each node claims
//! waiting recordings (`shared.rs`) while fewer than `concurrency` of its
//! pipelines run. Without it, a recording is processed where it was
//! recorded, since its file is there.

pub mod analyze;
mod command;
pub mod join;
mod pipeline;
pub mod playable;
pub mod recognized;
mod shared;
pub mod transcribe;
pub mod video;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span};

use crate::backoff;
use crate::entity::{EventKind, RecordingStatus};
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::profile::Profiles;
use crate::store;
use crate::supervisor::Supervisor;

/// Where processing keeps its files.
#[derive(Debug, Clone)]
pub struct ProcessingDirs {
    /// One log per recording's processing.
    pub logs: PathBuf,
    /// One scratch directory per recording (`{workdir}`).
    pub work: PathBuf,
}

/// How many times a pipeline run that could not record its progress is
/// tried again before waiting for the next start.
const RUN_RETRIES: usize = 4;

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
    /// Recordings made playable in browsers, one at a time.
    conversions: playable::Conversions,
    /// Pipelines of this node that may run at once.
    slots: usize,
    /// Set when storage is shared: recordings are claimed by any node.
    sharing: Option<shared::Sharing>,
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
            slots: concurrency.max(1),
            sharing: None,
            tracker,
            shutdown,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            events: None,
            metrics: Arc::new(Metrics::default()),
            conversions: playable::Conversions::default(),
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

    /// The profiles whose pipelines this runs.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// How many pipelines run in this process now.
    pub fn running(&self) -> usize {
        self.in_flight().len()
    }

    /// Ends a recording's processing as failed, saying why (when it cannot
    /// even begin).
    pub async fn give_up(&self, recording_id: i32, reason: String) -> Result<bool, DbErr> {
        self.conclude(recording_id, RecordingStatus::Failed, Some(reason))
            .await
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

    /// Has the recording processed: here, or (with shared storage) by
    /// whichever node has a free slot first.
    pub fn launch(&self, recording_id: i32) {
        if self.sharing.is_some() {
            self.offer();
        } else {
            self.launch_here(recording_id);
        }
    }

    /// Runs the recording's pipeline here, in the background.
    pub fn launch_here(&self, recording_id: i32) {
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
                let mut delays = backoff::doubling(Duration::from_secs(1), Duration::MAX)
                    .with_max_times(RUN_RETRIES)
                    .build();
                while let Err(e) = this.run(recording_id).await {
                    error!(error = %e, "processing could not record its progress");
                    let Some(delay) = delays.next() else {
                        error!("processing gave up; it resumes at the next start");
                        break;
                    };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = this.shutdown.cancelled() => break,
                    }
                }
                this.in_flight().remove(&recording_id);
                // A slot is free: with shared storage, take the next one.
                if this.sharing.is_some() && !this.shutdown.is_cancelled() {
                    this.claim_shared().await;
                }
            }
            .instrument(span),
        );
    }

    /// Launches every recording left in `processing` by a previous run.
    ///
    /// Only the recordings of `node`'s jobs: with several nodes on one
    /// database, each recording's file is on the node that recorded it.
    /// With shared storage, those this node claimed, and any waiting.
    pub async fn resume_unfinished(&self, node: &str) -> Result<usize, DbErr> {
        if self.sharing.is_some() {
            return self.resume_shared(node).await;
        }
        let mut pending =
            store::recordings::recordings_with_status(&self.db, RecordingStatus::Processing)
                .await?;
        // A segment has no job of its own: it was recorded where its
        // parent's job ran.
        let recorded_as = |r: &store::Recording| r.parent_id.unwrap_or(r.id);
        let ids: Vec<i32> = pending.iter().map(recorded_as).collect();
        let elsewhere = store::recordings::recorded_by_other_nodes(&self.db, &ids, node).await?;
        pending.retain(|r| !elsewhere.contains(&recorded_as(r)));
        for recording in &pending {
            info!(recording_id = recording.id, "resuming processing");
            self.launch(recording.id);
        }
        Ok(pending.len())
    }
}
