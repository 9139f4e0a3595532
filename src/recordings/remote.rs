//! Where a recording's files are when several nodes share the database,
//! and asking the node that holds them. Without shared storage the files
//! are on the node that recorded them: reads are proxied to it (by the
//! HTTP layer), a reprocess is written here and that node told to run it,
//! a deletion removes the rows here and queues the files for that node to
//! remove, the moment it hears or when it is back.

use std::path::{Path, PathBuf};

use sea_orm::DbErr;
use tracing::{info, warn};

use super::{RecordingError, Recordings, files, output};
use crate::entity::{EventKind, RecordingStatus};
use crate::nodes::Message;
use crate::store::{self, Job, Recording};

/// Where a job's or recording's files are, as this node sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// Here: recorded here, or on storage every node shares.
    Here,
    /// On a live node that does not share storage with this one.
    On { node: String, url: Option<String> },
    /// On a node that does not hold its lease now: nothing to ask. What
    /// may be here (files of this node under an earlier id) is used.
    Gone { node: String },
}

impl Recordings {
    /// Where the files of something recorded by `node` are.
    pub(super) async fn locate(&self, node: Option<String>) -> Result<Located, DbErr> {
        let Some(node) = node.filter(|n| *n != self.inner.node_id) else {
            return Ok(Located::Here);
        };
        let row = store::nodes::find(&self.inner.db, &node).await?;
        if self.inner.shared_storage && row.as_ref().is_some_and(|r| r.shared_storage) {
            return Ok(Located::Here);
        }
        let alive = self
            .inner
            .lease
            .alive_among(std::slice::from_ref(&node))
            .await?;
        if alive.contains(&node) {
            Ok(Located::On {
                node,
                url: row.and_then(|r| r.url),
            })
        } else {
            Ok(Located::Gone { node })
        }
    }

    /// Where a recording's files are (its latest job's node; for a
    /// segment, its parent's).
    pub(super) async fn locate_recording(&self, recording: &Recording) -> Result<Located, DbErr> {
        let recorded_as = recording.parent_id.unwrap_or(recording.id);
        let node = store::recordings::latest_job_node(&self.inner.db, recorded_as).await?;
        self.locate(node).await
    }

    /// A reprocess of a recording whose files another node holds: reset
    /// here, that node told to run it.
    pub(super) async fn reprocess_on(
        &self,
        id: i32,
        node: &str,
    ) -> Result<Recording, RecordingError> {
        if !store::recordings::reset_for_reprocessing(&self.inner.db, id).await? {
            return Err(self.busy(id, "reprocessed").await);
        }
        info!(
            recording_id = id,
            node, "reprocessing on the node holding its files"
        );
        let now = self.get(id).await?;
        self.inner
            .events
            .publish(EventKind::RecordingProcessing, &now);
        self.inner
            .bell
            .ring(node, Message::Process { recording_id: id })
            .await;
        Ok(now)
    }

    /// Runs a recording another node reset for processing, its files being
    /// here; one with nothing recorded fails at once, saying so.
    pub async fn process_for_peer(&self, id: i32) -> Result<(), RecordingError> {
        let recording = self.get(id).await?;
        let processing = &self.inner.processing;
        if recording.status != RecordingStatus::Processing || processing.is_running(id) {
            return Ok(());
        }
        let outputs = output::outputs_of(vec![output::recorded_files(&recording)])
            .await
            .map_err(|e| RecordingError::MediaUnavailable {
                id,
                reason: e.to_string(),
            })?;
        if !outputs.first().is_some_and(|o| o.state.has_data()) {
            let reason = RecordingError::NothingToProcess { id }.to_string();
            processing.give_up(id, reason).await?;
            return Ok(());
        }
        processing.launch_here(id);
        Ok(())
    }

    /// Queues a deleted recording's files for the node holding them, and
    /// tells it.
    pub(super) async fn queue_removals(
        &self,
        node: &str,
        recording: &Recording,
        jobs: &[Job],
    ) -> Result<(), DbErr> {
        let mut paths = vec![recording.output_path.clone()];
        paths.extend(recording.segments.iter().flat_map(|s| s.0.iter().cloned()));
        paths.extend(jobs.iter().map(|j| j.log_path.clone()));
        store::nodes::queue_removals(&self.inner.db, node, &paths, Some(recording.id)).await?;
        self.inner.bell.ring(node, Message::RemoveFiles).await;
        Ok(())
    }

    /// Removes the files other nodes queued for this one (recordings
    /// deleted through them), with the processing files of each recording.
    pub async fn remove_queued_files(&self) -> Result<usize, DbErr> {
        // Nearly always nothing is queued: asked on a read connection, so
        // that start-up and the periodic look do not wait for the writer.
        if !store::nodes::has_removals(&self.inner.reads, &self.inner.node_id).await? {
            return Ok(0);
        }
        let mut removed = 0;
        loop {
            let queued = store::nodes::take_removals(&self.inner.db, &self.inner.node_id).await?;
            if queued.is_empty() {
                return Ok(removed);
            }
            removed += queued.len();
            let processing = &self.inner.processing;
            let mut files: Vec<PathBuf> = Vec::new();
            let mut dirs: Vec<PathBuf> = Vec::new();
            for removal in queued {
                match removal.path.map(PathBuf::from) {
                    Some(path) if within(&path, &self.inner.data_dir) => files.push(path),
                    Some(path) => {
                        warn!(path = %path.display(), "not removing a queued file outside this node's data directory")
                    }
                    None => {}
                }
                if let Some(id) = removal.recording_id {
                    files.push(processing.log_path(id));
                    dirs.push(processing.workdir(id));
                }
            }
            let count = files.len();
            if let Err(e) =
                tokio::task::spawn_blocking(move || files::remove_all(&files, &dirs)).await
            {
                warn!(error = %e, "removing queued files failed");
            }
            info!(
                files = count,
                "removed the files of recordings deleted through other nodes"
            );
        }
    }
}

/// Whether `path` is one this node would have written (under its data
/// directory): a queued path is removed only then.
fn within(path: &Path, data_dir: &Path) -> bool {
    path.is_absolute()
        && path.starts_with(data_dir)
        && !path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
}

#[cfg(test)]
mod tests {
    use super::within;
    use std::path::Path;

    #[test]
    fn only_files_under_the_data_directory_are_removed_for_others() {
        let data = Path::new("/data");
        assert!(within(Path::new("/data/recordings/recording-1.mkv"), data));
        assert!(!within(Path::new("/etc/passwd"), data));
        assert!(!within(Path::new("/data/../etc/passwd"), data));
        assert!(!within(Path::new("recordings/recording-1.mkv"), data));
    }
}
