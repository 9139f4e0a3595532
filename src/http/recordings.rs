//! `/api/recordings/…`: what was recorded and what became of it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{AppState, Result, page_bounds, to_completion};
use crate::entity::{Analysis, RecordingStatus};
use crate::recordings::RecordingError;
use crate::store::{Job, Recording, Step};

/// Filters and page of the recording list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingsQuery {
    /// Only recordings in this status.
    status: Option<RecordingStatus>,
    /// From 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
}

/// A page of recordings, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingPage {
    /// How many recordings match, over all pages.
    pub count: u64,
    pub page: u64,
    pub page_size: u64,
    pub recordings: Vec<Recording>,
}

#[utoipa::path(
    get,
    path = "/api/recordings",
    operation_id = "list_recordings",
    tag = "recordings",
    summary = "List recordings",
    description = "Every recording, newest first, filtered and paged. Also served with a trailing slash.",
    params(RecordingsQuery),
    responses(
        (status = 200, description = "A page of recordings", body = RecordingPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: std::result::Result<Query<RecordingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RecordingPage>> {
    let Query(query) = query?;
    let (page, page_size) = page_bounds(query.page, query.page_size)?;
    let (recordings, count) = state.recordings.list(query.status, page, page_size).await?;
    Ok(Json(RecordingPage {
        count,
        page,
        page_size,
        recordings,
    }))
}

/// A recording with everything known about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingDetail {
    #[serde(flatten)]
    pub recording: Recording,
    /// What the `analyze` step measured (duration, codec, loudness,
    /// silence); `null` until it has run.
    pub analysis: Option<Analysis>,
    /// The post-processing pipeline, in order.
    pub steps: Vec<Step>,
    /// Every run of a recorder for this recording.
    pub jobs: Vec<Job>,
    /// Where the recorded file is served.
    pub media_url: String,
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}",
    operation_id = "show_recording",
    tag = "recordings",
    summary = "One recording, with its jobs, steps, analysis and transcript",
    description = "Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The recording", body = RecordingDetail),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<RecordingDetail>> {
    let Path(id) = id?;
    let detail = state.recordings.detail(id).await?;
    Ok(Json(RecordingDetail {
        analysis: detail.recording.analysis.clone(),
        recording: detail.recording,
        steps: detail.steps,
        jobs: detail.jobs,
        media_url: format!("/api/recordings/{id}/media"),
    }))
}

/// Answer to a reprocess.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReprocessResponse {
    /// Always `true`.
    pub success: bool,
    /// Now `processing`.
    pub recording: Recording,
}

#[utoipa::path(
    post,
    path = "/api/recordings/{id}/reprocess",
    operation_id = "reprocess_recording",
    tag = "recordings",
    summary = "Run the post-processing pipeline again",
    description = "Needs `Content-Type: application/json` (no body). Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 202, description = "The pipeline is queued", body = ReprocessResponse),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 409, description = "`recording_busy` (still recording or processing), `nothing_to_process` (no file), or `on_other_node` (its file is on the node named in `node`)", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`shutting_down`, or `database_unavailable` (the database does not answer now; retry later)", body = ErrorBody),
    )
)]
pub async fn reprocess(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<(StatusCode, Json<ReprocessResponse>)> {
    let Path(id) = id?;
    let recordings = state.recordings.clone();
    let recording = to_completion(async move { recordings.reprocess(id).await }).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReprocessResponse {
            success: true,
            recording,
        }),
    ))
}

/// Answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    /// Always `true`.
    pub success: bool,
    pub message: String,
}

#[utoipa::path(
    delete,
    path = "/api/recordings/{id}",
    operation_id = "delete_recording",
    tag = "recordings",
    summary = "Delete a recording, its files and its history",
    description = "Refused while it is recording or processing. Needs `Content-Type: application/json` (no body). Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 409, description = "`recording_busy`, or `on_other_node` while the node that holds its files is alive", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<DeleteResponse>> {
    let Path(id) = id?;
    let recordings = state.recordings.clone();
    to_completion(async move { recordings.delete(id).await }).await?;
    Ok(Json(DeleteResponse {
        success: true,
        message: format!("recording {id} deleted"),
    }))
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/media",
    operation_id = "recording_media",
    tag = "recordings",
    summary = "The recorded file",
    description = "With HTTP range requests, for seeking in a player and resuming downloads. Also served with a trailing slash.",
    params(
        ("id" = i32, Path, description = "The recording's id"),
        ("Range" = Option<String>, Header, description = "A byte range, e.g. `bytes=0-1023`; ignored unless in `bytes` units"),
    ),
    responses(
        (status = 200, description = "The whole file; its type follows the profile's container (`video/x-matroska`, `video/mp2t`, `video/mp4`, ...)", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found` or `media_not_found` (no file yet, or it was removed)", body = ErrorBody),
        (status = 409, description = "`on_other_node`: the file is on the node named in `node`", body = ErrorBody),
        (status = 412, description = "An `If-Unmodified-Since` or `If-Match` precondition failed"),
        (status = 416, description = "The range is outside the file"),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn media(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    mut request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let path = state.recordings.media_path(id).await?;
    // RFC 9110 §14.2: a range in a unit the server does not understand is
    // ignored, and the whole file served.
    let headers = request.headers_mut();
    if headers
        .get(axum::http::header::RANGE)
        .is_some_and(|range| !range.as_bytes().starts_with(b"bytes="))
    {
        headers.remove(axum::http::header::RANGE);
    }
    let mut response = ServeFile::new(path).oneshot(request).await.map_err(|e| {
        RecordingError::MediaUnavailable {
            id,
            reason: e.to_string(),
        }
    })?;
    // A recording is data, never a page of this origin, whatever its
    // extension says: a browser opening it runs nothing in it.
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(response.map(Body::new))
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/thumbnail",
    operation_id = "recording_thumbnail",
    tag = "recordings",
    summary = "A still of the recorded video",
    description = "One frame from the recording's first seconds, at most 360 pixels high, made by the `analyze` step for recordings with video (`analysis.video.thumbnail`). Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found` or `media_not_found` (no video, or not analyzed yet)", body = ErrorBody),
        (status = 409, description = "`on_other_node`: the file is on the node named in `node`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let path = state.recordings.thumbnail_path(id).await?;
    let response = ServeFile::new(path).oneshot(request).await.map_err(|e| {
        RecordingError::MediaUnavailable {
            id,
            reason: e.to_string(),
        }
    })?;
    Ok(response.map(Body::new))
}
