//! Lists of recordings as people look at them: each with when it started,
//! how long and how large it is, which node recorded it and whether its
//! recorder still runs; and, for a search, where its words were said.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::search::SearchQuery;
use super::{RecordingError, Recordings, output};
use crate::entity::JobStatus;
use crate::store::search::Filters;
use crate::store::{self, Job, Recording, Segment};

/// A recording in a list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub recording: Recording,
    /// When its first recorder started.
    pub started_at: Option<OffsetDateTime>,
    /// When its last recorder ended; `None` while it records.
    pub ended_at: Option<OffsetDateTime>,
    /// The node of its latest job.
    pub node: Option<String>,
    /// Its latest job, to stop it while it runs.
    pub job_id: Option<i32>,
    pub job_status: Option<JobStatus>,
    /// Measured by `analyze` when it ran, else from its recorder's times
    /// (up to now while it records).
    pub duration_seconds: Option<f64>,
    /// What its files hold now on this node's disk; `None` when none is
    /// here.
    pub size_bytes: Option<u64>,
    /// For a search: where its words were said.
    pub passages: Option<Vec<Segment>>,
}

impl Recordings {
    /// One page of recordings, newest first (best match first for a
    /// search), and how many match in all.
    pub async fn list(
        &self,
        filters: Filters<'_>,
        query: Option<&SearchQuery>,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<Listed>, u64), RecordingError> {
        let db = &self.inner.reads;
        let (recordings, passages, count) = match query {
            None => {
                let (recordings, count) =
                    store::recordings::list_recordings(db, filters, page, page_size).await?;
                (recordings, None, count)
            }
            Some(query) => {
                let (found, count) = self.search(query, filters, page, page_size).await?;
                let ids: Vec<i32> = found.iter().map(|f| f.recording_id).collect();
                let mut by_id: HashMap<i32, Recording> =
                    store::recordings::recordings_by_ids(db, &ids)
                        .await?
                        .into_iter()
                        .map(|r| (r.id, r))
                        .collect();
                let mut recordings = Vec::with_capacity(found.len());
                let mut passages = HashMap::new();
                for found in found {
                    if let Some(recording) = by_id.remove(&found.recording_id) {
                        passages.insert(recording.id, found.passages);
                        recordings.push(recording);
                    }
                }
                (recordings, Some(passages), count)
            }
        };
        let listed = self.describe(recordings, passages).await?;
        Ok((listed, count))
    }

    /// Each recording with its jobs' times and node and its files' size.
    async fn describe(
        &self,
        recordings: Vec<Recording>,
        mut passages: Option<HashMap<i32, Vec<Segment>>>,
    ) -> Result<Vec<Listed>, RecordingError> {
        let ids: Vec<i32> = recordings.iter().map(|r| r.id).collect();
        let jobs = store::recordings::jobs_of_recordings(&self.inner.reads, &ids).await?;
        let mut jobs_of: HashMap<i32, Vec<Job>> = HashMap::new();
        for job in jobs {
            jobs_of.entry(job.recording_id).or_default().push(job);
        }
        let files = recordings.iter().map(output::recorded_files).collect();
        let sizes = tokio::task::spawn_blocking(move || output::sizes_of(files))
            .await
            .unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        Ok(recordings
            .into_iter()
            .enumerate()
            .map(|(i, recording)| {
                let jobs = jobs_of.remove(&recording.id).unwrap_or_default();
                let (first, last) = (jobs.first(), jobs.last());
                let started_at = first.map(|j| j.started_at);
                let ended_at = last.and_then(|j| j.completed_at);
                let measured = recording.analysis.as_ref().and_then(|a| a.duration_seconds);
                let timed =
                    started_at.map(|start| (ended_at.unwrap_or(now) - start).as_seconds_f64());
                Listed {
                    started_at,
                    ended_at,
                    node: last.and_then(|j| j.node.clone()),
                    job_id: last.map(|j| j.id),
                    job_status: last.map(|j| j.status),
                    duration_seconds: measured.or(timed.map(|s| s.max(0.0))),
                    size_bytes: sizes.get(i).copied().flatten(),
                    passages: passages
                        .as_mut()
                        .map(|p| p.remove(&recording.id).unwrap_or_default()),
                    recording,
                }
            })
            .collect())
    }
}
