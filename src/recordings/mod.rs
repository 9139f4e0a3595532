//! Recordings: what was recorded and what became of it. The reads the API
//! offers (lists, a recording with its jobs and steps), and the operations
//! on a recording's files: processing it again, deleting it, serving its
//! media and its recorder's log. Jobs decide when a recording starts and
//! stops; this module owns it from then on. With several nodes, a
//! recording's files are where it was recorded unless storage is shared
//! (`remote.rs` says where, and asks the node that holds them).

mod error;
pub mod files;
pub mod listing;
pub mod output;
pub mod playable;
mod remote;
mod retention;
pub mod search;
pub mod transcript;

pub use retention::{DeletedBecause, free_bytes, run_retention};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tracing::info;

pub use error::RecordingError;
pub use files::LogTail;
pub use remote::Located;

use crate::entity::{EndCause, EventKind, RecordingStatus};
use crate::events::EventLog;
use crate::nodes::{Bell, Lease};
use crate::processing::Processing;
use crate::store::{self, Job, Recording, Segment, Step};

/// A recording with everything known about it.
#[derive(Debug, Clone)]
pub struct RecordingDetail {
    pub recording: Recording,
    /// Every run of a recorder for it, newest first.
    pub jobs: Vec<Job>,
    /// Its processing pipeline, in order.
    pub steps: Vec<Step>,
    /// Its segments, in order, when its recorder wrote segments.
    pub segments: Vec<Recording>,
}

/// Most jobs listed with one recording.
const MAX_JOBS_SHOWN: u64 = 500;
/// How long an operation waits for a pipeline that has just committed its
/// outcome to let go of the recording.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// Cheap to clone: every clone is the same service.
#[derive(Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    /// Reads that need not wait behind writes (`db::connect_reads`).
    reads: DatabaseConnection,
    processing: Processing,
    events: EventLog,
    /// This node's id: files recorded elsewhere may not be here.
    node_id: String,
    /// Whether the nodes it names hold their leases.
    lease: Lease,
    bell: Bell,
    /// Every node's files are here (`--shared-storage`).
    shared_storage: bool,
    /// This node's data directory: files queued by others are removed
    /// only under it.
    data_dir: PathBuf,
}

/// A recording's file, as this node can serve it.
#[derive(Debug, Clone)]
pub enum Media {
    Here(PathBuf),
    /// On a live node that does not share storage with this one.
    On {
        node: String,
        url: Option<String>,
    },
}

/// A job's log, as this node can serve it.
#[derive(Debug, Clone)]
pub enum Log {
    Here(LogTail),
    On { node: String, url: Option<String> },
}

/// What a recording service needs besides the database.
pub struct RecordingsDeps {
    /// Reads that need not wait behind writes (`db::connect_reads`).
    pub reads: DatabaseConnection,
    pub processing: Processing,
    pub events: EventLog,
    pub node_id: String,
    pub lease: Lease,
    pub bell: Bell,
    pub shared_storage: bool,
    pub data_dir: PathBuf,
}

impl Recordings {
    pub fn new(db: DatabaseConnection, deps: RecordingsDeps) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                reads: deps.reads,
                processing: deps.processing,
                events: deps.events,
                node_id: deps.node_id,
                lease: deps.lease,
                bell: deps.bell,
                shared_storage: deps.shared_storage,
                data_dir: deps.data_dir,
            }),
        }
    }

    pub async fn get(&self, id: i32) -> Result<Recording, RecordingError> {
        store::recordings::find_recording(&self.inner.db, id)
            .await?
            .ok_or(RecordingError::NotFound { id })
    }

    /// The recording with its jobs and its pipeline's steps.
    pub async fn detail(&self, id: i32) -> Result<RecordingDetail, RecordingError> {
        let recording = self.get(id).await?;
        let db = &self.inner.reads;
        let (jobs, _) = store::jobs::list_jobs(db, None, Some(id), 1, MAX_JOBS_SHOWN).await?;
        let steps = store::steps::of_recording(db, id).await?;
        // A segment has none of its own.
        let segments = match recording.parent_id {
            Some(_) => Vec::new(),
            None => store::segments::of_parent(db, id).await?,
        };
        Ok(RecordingDetail {
            recording,
            jobs,
            steps,
            segments,
        })
    }

    /// The recording and its transcript's segments, in order.
    pub async fn transcript(&self, id: i32) -> Result<(Recording, Vec<Segment>), RecordingError> {
        let recording = self.get(id).await?;
        let segments = store::transcripts::of_recording(&self.inner.db, id).await?;
        Ok((recording, segments))
    }

    /// The profiles this server offers, for clients to choose from.
    pub fn profiles(&self) -> &crate::profile::Profiles {
        self.inner.processing.profiles()
    }

    /// Runs the recording's whole pipeline again: here, or on the node
    /// that holds its files (reset here, that node told).
    pub async fn reprocess(&self, id: i32) -> Result<Recording, RecordingError> {
        let recording = self.settled(id, "reprocessed").await?;
        if let Located::On { node, .. } = self.locate_recording(&recording).await? {
            return self.reprocess_on(id, &node).await;
        }
        let files = output::recorded_files(&recording);
        let outputs = output::outputs_of(vec![files]).await.map_err(|e| {
            RecordingError::MediaUnavailable {
                id,
                reason: e.to_string(),
            }
        })?;
        if !outputs.first().is_some_and(|o| o.state.has_data()) {
            return Err(RecordingError::NothingToProcess { id });
        }
        if !store::recordings::reset_for_reprocessing(&self.inner.db, id).await? {
            // Someone else changed it meanwhile.
            return Err(self.busy(id, "reprocessed").await);
        }
        info!(recording_id = id, "reprocessing");
        if crate::faults::armed(crate::faults::Point::PauseInReprocess) {
            tokio::time::sleep(crate::faults::PAUSE).await;
        }
        let now = self.get(id).await?;
        self.inner
            .events
            .publish(EventKind::RecordingProcessing, &now);
        self.inner.processing.launch(id);
        Ok(now)
    }

    /// Processes a recording that failed because its node was declared
    /// lost, once that node (this one) is back with its file. False when
    /// the recording is not in that state any more.
    pub async fn reprocess_if_lost(&self, id: i32) -> Result<bool, RecordingError> {
        let recording = self.get(id).await?;
        if recording.status != RecordingStatus::Failed {
            return Ok(false);
        }
        let (jobs, _) = store::jobs::list_jobs(&self.inner.db, None, Some(id), 1, 1).await?;
        let lost = jobs
            .first()
            .is_some_and(|job| job.end_cause == Some(EndCause::NodeLost));
        if !lost {
            return Ok(false);
        }
        self.reprocess(id).await.map(|_| true)
    }

    /// Deletes a recording that is neither recording nor processing, with
    /// its jobs, steps and files. Files on another node are queued for it
    /// to remove (at once, or when it is back).
    pub async fn delete(&self, id: i32) -> Result<(), RecordingError> {
        let recording = self.settled(id, "deleted").await?;
        let located = self.locate_recording(&recording).await?;
        let db = &self.inner.db;
        let (jobs, _) = store::jobs::list_jobs(db, None, Some(id), 1, 10_000).await?;
        if !store::recordings::delete_settled_recording(db, id).await? {
            return Err(self.busy(id, "deleted").await);
        }
        if let Located::On { node, .. } | Located::Gone { node } = located {
            self.queue_removals(&node, &recording, &jobs).await?;
            info!(recording_id = id, %node, "recording deleted; its files are removed by its node");
            return Ok(());
        }
        let processing = &self.inner.processing;
        let mut files = vec![
            PathBuf::from(&recording.output_path),
            processing.log_path(id),
        ];
        files.extend(jobs.iter().map(|j| PathBuf::from(&j.log_path)));
        let dirs = vec![processing.workdir(id)];
        tokio::task::spawn_blocking(move || files::remove_all(&files, &dirs))
            .await
            .map_err(|e| RecordingError::MediaUnavailable {
                id,
                reason: format!("file removal failed: {e}"),
            })?;
        info!(recording_id = id, "recording deleted");
        Ok(())
    }

    /// The recorded file, for serving: here, or on the node holding it.
    pub async fn media(&self, id: i32) -> Result<Media, RecordingError> {
        let recording = self.get(id).await?;
        if let Located::On { node, url } = self.locate_recording(&recording).await? {
            return Ok(Media::On { node, url });
        }
        let path = PathBuf::from(&recording.output_path);
        let unavailable = |reason: String| RecordingError::MediaUnavailable { id, reason };
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Media::Here(path)),
            Ok(_) => Err(unavailable("not a regular file".to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(unavailable("no file was recorded".to_owned()))
            }
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// The end of a job's recorder log, or with `from`, what it holds from
    /// that byte on (to follow it as it grows), with its source's secrets
    /// hidden (recorders print the URL they open, ffmpeg's `Input #0, …
    /// from '…'`, and the log is read by every reader): here, or on the
    /// node holding it. `here_only` reads it here whatever (a request
    /// another node forwarded: never sent on again).
    pub async fn log_tail(
        &self,
        job_id: i32,
        from: Option<u64>,
        max_bytes: u64,
        here_only: bool,
    ) -> Result<Log, RecordingError> {
        let job = store::jobs::find_job(&self.inner.db, job_id)
            .await?
            .ok_or(RecordingError::JobNotFound { id: job_id })?;
        if !here_only && let Located::On { node, url } = self.locate(job.node.clone()).await? {
            return Ok(Log::On { node, url });
        }
        let source = store::recordings::find_recording(&self.inner.db, job.recording_id)
            .await?
            .map(|recording| recording.source);
        let path = PathBuf::from(&job.log_path);
        let unreadable = |source| RecordingError::LogUnreadable { id: job_id, source };
        let read = tokio::task::spawn_blocking(move || match from {
            Some(offset) => files::read_from(&path, offset, max_bytes),
            None => files::read_tail(&path, max_bytes),
        })
        .await
        .map_err(|e| unreadable(std::io::Error::other(e)))?;
        match read {
            Ok(mut tail) => {
                if let Some(source) = source {
                    tail.content = crate::redact::scrub(&tail.content, &source);
                }
                Ok(Log::Here(tail))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Log::Here(LogTail::empty())),
            Err(source) => Err(unreadable(source)),
        }
    }

    /// The recording, if it is `ready` or `failed` and no pipeline of it runs
    /// here: what reprocessing and deletion require.
    async fn settled(&self, id: i32, action: &'static str) -> Result<Recording, RecordingError> {
        let recording = self.get(id).await?;
        if !matches!(
            recording.status,
            RecordingStatus::Ready | RecordingStatus::Failed
        ) {
            return Err(RecordingError::Busy {
                id,
                status: recording.status,
                action,
            });
        }
        // A pipeline commits its outcome a moment before its task lets go
        // of the recording: a client that saw `ready` and acts at once
        // waits out that moment instead of being refused.
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        while self.inner.processing.is_running(id) {
            if tokio::time::Instant::now() >= deadline {
                return Err(RecordingError::Busy {
                    id,
                    status: RecordingStatus::Processing,
                    action,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(recording)
    }

    /// The refusal when a compare-and-set found the recording changed.
    async fn busy(&self, id: i32, action: &'static str) -> RecordingError {
        match self.get(id).await {
            Ok(now) => RecordingError::Busy {
                id,
                status: now.status,
                action,
            },
            Err(e) => e,
        }
    }
}
