//! A recording's media as a browser plays it: an MP4 made from its file
//! (see `processing::playable`), and a still of its video.

use super::{Media, RecordingError, Recordings};
use crate::entity::RecordingStatus;
use crate::processing::playable::NotPlayable;

/// Where in a video its still is taken: a few seconds in, past a fade-in
/// or a black first frame.
const THUMBNAIL_AT_SECONDS: f64 = 5.0;

impl Recordings {
    /// An MP4 of the recording that browsers play, with seeking: made
    /// here, or by the node that holds the recording's file.
    pub async fn playable(&self, id: i32) -> Result<Media, RecordingError> {
        let source = match self.finished_media(id).await? {
            Media::Here(source) => source,
            elsewhere => return Ok(elsewhere),
        };
        let made = self.inner.processing.playable(id, &source).await;
        made.map(Media::Here).map_err(|e| converted(id, e))
    }

    /// A JPEG still of the recording's video: made here, or by the node
    /// that holds the recording's file.
    pub async fn thumbnail(&self, id: i32) -> Result<Media, RecordingError> {
        let source = match self.finished_media(id).await? {
            Media::Here(source) => source,
            elsewhere => return Ok(elsewhere),
        };
        let made = (self.inner.processing)
            .thumbnail(id, &source, THUMBNAIL_AT_SECONDS)
            .await;
        made.map(Media::Here).map_err(|e| converted(id, e))
    }

    /// The recording's file once its recorder runs are over and joined: a
    /// file still being written has no end to play to, and the runs of a
    /// restarted recorder are one file only once joined.
    async fn finished_media(&self, id: i32) -> Result<Media, RecordingError> {
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
        self.media(id).await
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
