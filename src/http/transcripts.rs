//! `/api/recordings/{id}/transcript…`: what was said in a recording, with
//! times, as JSON and as WebVTT captions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{AppState, Result};
use crate::recordings::transcript::to_webvtt;
use crate::store::Segment;

/// Words said between two times.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptSegment {
    /// Seconds from the start of the recording.
    pub start_seconds: f64,
    /// `null` when the transcript has no times (a command's plain text).
    pub end_seconds: Option<f64>,
    pub text: String,
}

impl From<&Segment> for TranscriptSegment {
    fn from(segment: &Segment) -> Self {
        Self {
            start_seconds: segment.start_ms as f64 / 1000.0,
            end_seconds: segment.end_ms.map(|ms| ms as f64 / 1000.0),
            text: segment.text.clone(),
        }
    }
}

/// A recording's transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub recording_id: i32,
    /// The whole text, a segment per line; `null` until transcribed.
    pub text: Option<String>,
    /// In order; empty until transcribed.
    pub segments: Vec<TranscriptSegment>,
    /// The same as WebVTT captions.
    pub captions_url: String,
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/transcript",
    operation_id = "recording_transcript",
    tag = "recordings",
    summary = "A recording's transcript, in timed segments",
    description = "Written by the pipeline's `transcribe` step (whisper.cpp or pocketsphinx, with times), or by a command step whose `stdout` is the transcript (one untimed segment, unless it prints whisper-style `[00:00:01.000 --> 00:00:02.000]` lines). Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The transcript", body = Transcript),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn transcript(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Transcript>> {
    let Path(id) = id?;
    let (recording, segments) = state.recordings.transcript(id).await?;
    Ok(Json(Transcript {
        recording_id: id,
        text: recording.transcript,
        segments: segments.iter().map(TranscriptSegment::from).collect(),
        captions_url: format!("/api/recordings/{id}/transcript.vtt"),
    }))
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/transcript.vtt",
    operation_id = "recording_captions",
    tag = "recordings",
    summary = "A recording's transcript as WebVTT captions",
    description = "For a player's `<track kind=\"captions\">`. A recording not yet transcribed gets a file without cues. Browsers load tracks without headers: pass the API token as `?access_token=`.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The captions", content_type = "text/vtt", body = String),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn captions(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Response> {
    let Path(id) = id?;
    let (_, segments) = state.recordings.transcript(id).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
        to_webvtt(&segments),
    )
        .into_response())
}
