//! `/api/recordings/{id}/media.mp4` and `/thumbnail.jpg`: a recording as
//! a browser plays and previews it, made from its file on demand.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::ErrorBody;
use super::{AppState, Result};
use crate::recordings::RecordingError;

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/media.mp4",
    operation_id = "recording_playable",
    tag = "recordings",
    summary = "The recording as browsers play it (MP4)",
    description = "Its first video and audio streams in MP4 with the index first, copied when browsers play their codec (H.264, VP9, AV1; AAC, MP3), re-encoded to H.264 and AAC otherwise. Made on the first request (which waits for it) and kept until the recorded file changes. With HTTP range requests, for seeking. For `<video>`, which sends no headers, pass the API token as `?access_token=`.",
    params(
        ("id" = i32, Path, description = "The recording's id"),
        ("Range" = Option<String>, Header, description = "A byte range, e.g. `bytes=0-1023`"),
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "video/mp4", body = Vec<u8>),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found` or `media_not_found`", body = ErrorBody),
        (status = 409, description = "`recording_busy` (still recording, or its runs not joined yet) or `on_other_node`", body = ErrorBody),
        (status = 412, description = "An `If-Unmodified-Since` or `If-Match` precondition failed"),
        (status = 416, description = "The range is outside the file"),
        (status = 422, description = "`not_playable`: ffmpeg cannot read or convert the file", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn playable(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let path = state.recordings.playable(id).await?;
    serve(id, path, request).await
}

#[utoipa::path(
    get,
    path = "/api/recordings/{id}/thumbnail.jpg",
    operation_id = "recording_thumbnail",
    tag = "recordings",
    summary = "A still of the recording's video (JPEG, 640 px wide)",
    description = "Taken 5 s in (or half-way through a shorter recording); made on the first request and kept. For `<img>`, pass the API token as `?access_token=`.",
    params(("id" = i32, Path, description = "The recording's id")),
    responses(
        (status = 200, description = "The still", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`recording_not_found`, or `media_not_found` (no file, or no video in it)", body = ErrorBody),
        (status = 409, description = "`recording_busy` or `on_other_node`", body = ErrorBody),
        (status = 412, description = "An `If-Unmodified-Since` or `If-Match` precondition failed"),
        (status = 416, description = "A range outside the file"),
        (status = 422, description = "`not_playable`: ffmpeg cannot read the file", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
    )
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let path = state.recordings.thumbnail(id).await?;
    serve(id, path, request).await
}

/// Serves a file of recording `id` with range requests and conditional
/// GETs. RFC 9110 §14.2: a range in a unit the server does not understand
/// is ignored, and the whole file served.
pub(super) async fn serve(
    id: i32,
    path: std::path::PathBuf,
    mut request: Request,
) -> Result<Response> {
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
