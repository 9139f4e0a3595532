//! What recordings are kept: each profile's `retain_days` and
//! `retain_bytes`, applied whenever a recording becomes `ready` and once a
//! minute; and the disk's floor (`--min-free-bytes`), kept by deleting the
//! oldest `ready` recordings of the profiles that allow it before a start
//! is refused. Only `ready` recordings of this node are ever deleted, each
//! one announced as a `recording.deleted` event and a log line.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{RecordingError, Recordings, output};
use crate::entity::EventKind;
use crate::profile::Profiles;
use crate::store::{self, Recording};

/// How often retention runs besides after each recording that becomes
/// ready (for `retain_days`, which time alone reaches).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why retention deleted a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBecause {
    /// Older than its profile's `retain_days`.
    RetainDays,
    /// Beyond its profile's `retain_bytes`, the oldest first.
    RetainBytes,
    /// The disk was below `--min-free-bytes`.
    DiskLow,
}

/// The payload of a `recording.deleted` event.
#[derive(Serialize)]
struct Deleted<'a> {
    #[serde(flatten)]
    recording: &'a Recording,
    deleted_because: DeletedBecause,
}

impl Recordings {
    /// Applies every profile's `retain_days` and `retain_bytes` to its
    /// `ready` recordings; returns how many were deleted.
    pub async fn enforce_retention(&self, profiles: &Profiles) -> usize {
        let mut deleted = 0;
        for (name, profile) in &profiles.by_name {
            if !profile.has_retention() {
                continue;
            }
            let ready = match store::recordings::ready_of_profile(&self.inner.db, name).await {
                Ok(ready) => ready,
                Err(e) => {
                    warn!(error = %e, profile = %name, "retention cannot list recordings");
                    continue;
                }
            };
            let now = OffsetDateTime::now_utc();
            let mut kept_bytes = 0u64;
            // Newest first: what fits in the budget is kept, the rest goes.
            for recording in ready.iter().rev() {
                if !self.files_are_here(recording).await {
                    continue;
                }
                let too_old = profile.retain_days.is_some_and(|days| {
                    (now - recording.created_at).as_seconds_f64() > days * 86_400.0
                });
                let size = size_of(recording).await;
                let over = profile
                    .retain_bytes
                    .is_some_and(|max| kept_bytes.saturating_add(size) > max);
                let because = match (too_old, over) {
                    (true, _) => DeletedBecause::RetainDays,
                    (false, true) => DeletedBecause::RetainBytes,
                    (false, false) => {
                        kept_bytes += size;
                        continue;
                    }
                };
                if self.delete_for(recording, because).await {
                    deleted += 1;
                } else {
                    kept_bytes += size;
                }
            }
        }
        deleted
    }

    /// Deletes the oldest `ready` recordings of the profiles that allow it
    /// (`reclaim_when_disk_low`) until `dir` has `floor` bytes free;
    /// returns how many were deleted.
    pub async fn reclaim_space(&self, profiles: &Profiles, dir: &Path, floor: u64) -> usize {
        let mut candidates = Vec::new();
        for (name, profile) in &profiles.by_name {
            if profile.reclaim_when_disk_low
                && let Ok(ready) = store::recordings::ready_of_profile(&self.inner.db, name).await
            {
                candidates.extend(ready);
            }
        }
        candidates.sort_by_key(|r| (r.created_at, r.id));
        let mut deleted = 0;
        for recording in &candidates {
            if free_bytes(dir).await.is_none_or(|free| free >= floor) {
                break;
            }
            // Another node's files free nothing on this disk.
            if !self.files_are_here(recording).await {
                continue;
            }
            if self.delete_for(recording, DeletedBecause::DiskLow).await {
                deleted += 1;
            }
        }
        deleted
    }

    /// Whether the recording's files are on this node's disk (recorded
    /// here, or on storage every node shares): each node keeps its own
    /// disk, and judges only what it holds.
    async fn files_are_here(&self, recording: &Recording) -> bool {
        matches!(
            self.locate_recording(recording).await,
            Ok(super::Located::Here)
        )
    }

    /// Bytes of `ready` recordings kept per profile, for the metrics.
    pub async fn retained_bytes(&self, profiles: &Profiles) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for name in profiles.by_name.keys() {
            let Ok(ready) = store::recordings::ready_of_profile(&self.inner.db, name).await else {
                continue;
            };
            let mut total = 0u64;
            for recording in &ready {
                total = total.saturating_add(size_of(recording).await);
            }
            out.push((name.clone(), total));
        }
        out
    }

    /// Deletes one recording for retention, announced; false when it could
    /// not be (on another node, no longer settled, or an error, logged).
    async fn delete_for(&self, recording: &Recording, because: DeletedBecause) -> bool {
        match self.delete(recording.id).await {
            Ok(()) => {
                info!(
                    recording_id = recording.id,
                    profile = %recording.profile,
                    ?because,
                    "recording deleted by retention"
                );
                let deleted = Deleted {
                    recording,
                    deleted_because: because,
                };
                self.inner
                    .events
                    .publish(EventKind::RecordingDeleted, &deleted);
                true
            }
            Err(RecordingError::OnOtherNode { .. }) => false,
            Err(e) => {
                warn!(recording_id = recording.id, error = %e, "retention could not delete a recording");
                false
            }
        }
    }
}

/// The recording's size: as analyzed, else as on disk (0 when gone).
async fn size_of(recording: &Recording) -> u64 {
    if let Some(analysis) = &recording.analysis {
        return analysis.size_bytes;
    }
    tokio::fs::metadata(&recording.output_path)
        .await
        .map_or(0, |m| m.len())
}

/// Free bytes of the filesystem holding `dir`, read off the runtime.
pub async fn free_bytes(dir: &Path) -> Option<u64> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || output::free_bytes(&dir).ok())
        .await
        .ok()
        .flatten()
}

/// Applies retention after each recording that becomes ready, and every
/// minute, until `shutdown`.
pub async fn run_retention(
    recordings: Recordings,
    profiles: std::sync::Arc<Profiles>,
    mut events: tokio::sync::broadcast::Receiver<crate::events::Event>,
    shutdown: CancellationToken,
) {
    if !profiles.by_name.values().any(|p| p.has_retention()) {
        return;
    }
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = sweep.tick() => {}
            event = events.recv() => match event {
                Ok(event) if event.kind == EventKind::RecordingReady => {}
                Ok(_) => continue,
                // Missed some: a sweep covers whatever they were.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
        recordings.enforce_retention(&profiles).await;
    }
}
