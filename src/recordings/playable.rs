//! A recording's media as a browser plays it: an MP4 made from its file
//! (see `processing::playable`), and a still of its video.

use std::path::PathBuf;

use super::{RecordingError, Recordings};
use crate::entity::RecordingStatus;
use crate::processing::playable::NotPlayable;

/// Where in a video its still is taken: a few seconds in, past a fade-in
/// or a black first frame.
const THUMBNAIL_AT_SECONDS: f64 = 5.0;

impl Recordings {
    /// An MP4 of the recording that browsers play, with seeking.
    pub async fn playable(&self, id: i32) -> Result<PathBuf, RecordingError> {
        let source = self.finished_media(id).await?;
        self.inner
            .processing
            .playable(id, &source)
            .await
            .map_err(|e| converted(id, e))
    }

    /// A JPEG still of the recording's video.
    pub async fn thumbnail(&self, id: i32) -> Result<PathBuf, RecordingError> {
        let source = self.finished_media(id).await?;
        self.inner
            .processing
            .thumbnail(id, &source, THUMBNAIL_AT_SECONDS)
            .await
            .map_err(|e| converted(id, e))
    }

    /// The recording's file once its recorder runs are over and joined: a
    /// file still being written has no end to play to, and the runs of a
    /// restarted recorder are one file only once joined.
    async fn finished_media(&self, id: i32) -> Result<PathBuf, RecordingError> {
        let recording = self.get(id).await?;
        let reason = if recording.status == RecordingStatus::Recording {
            Some("it is still recording")
        } else if recording.segments.as_ref().is_some_and(|s| !s.0.is_empty()) {
            Some("its recorder's runs are not joined yet")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(RecordingError::NotYetPlayable { id, reason });
        }
        self.media_path(id).await
    }
}

fn converted(id: i32, error: NotPlayable) -> RecordingError {
    match error {
        NotPlayable::NoVideo => RecordingError::MediaUnavailable {
            id,
            reason: "it has no video".to_owned(),
        },
        other => RecordingError::NotPlayable {
            id,
            reason: other.to_string(),
        },
    }
}
