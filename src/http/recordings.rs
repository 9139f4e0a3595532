//! `/api/recordings/…`: what was recorded and what became of it.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::transcripts::TranscriptSegment;
use super::{ApiError, AppState, Result, page_bounds, to_completion};
use crate::entity::{Analysis, JobStatus, RecordingStatus};
use crate::recordings::listing::Listed;
use crate::recordings::search::{MAX_QUERY_CHARS, SearchQuery};
use crate::store::search::Filters;
use crate::store::{Job, Recording, Step};

/// Filters and page of the recording list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingsQuery {
    /// Only recordings in this status.
    status: Option<RecordingStatus>,
    /// Only recordings made with this profile.
    #[param(max_length = 255)]
    profile: Option<String>,
    /// Full-text search over titles and transcripts, as in a web search
    /// box: words (all must be there, in any form: `record` finds
    /// `recording`), `"a phrase"`, `-excluded`, `or`. Results come best
    /// match first, each with the passages (`matches`) where its words
    /// were said.
    #[param(max_length = 500)]
    q: Option<String>,
    /// From 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
}

/// A recording in a list, with what a list shows of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingListItem {
    #[serde(flatten)]
    pub recording: Recording,
    /// When its first recorder started.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<time::OffsetDateTime>,
    /// When its last recorder ended; `null` while it records.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<time::OffsetDateTime>,
    /// The node that recorded it (its latest job's).
    pub node: Option<String>,
    /// Its latest job (the one to stop while it records).
    pub job_id: Option<i32>,
    pub job_status: Option<JobStatus>,
    /// Measured by the `analyze` step once it ran, else from its
    /// recorder's times (up to now while it records).
    pub duration_seconds: Option<f64>,
    /// What its files hold on the answering node; `null` when they are not
    /// there.
    pub size_bytes: Option<u64>,
    /// With `q`: where its words were said (at most three passages, in the
    /// order said); empty when only the title matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<TranscriptSegment>>,
}

impl From<Listed> for RecordingListItem {
    fn from(listed: Listed) -> Self {
        Self {
            recording: listed.recording,
            started_at: listed.started_at,
            ended_at: listed.ended_at,
            node: listed.node,
            job_id: listed.job_id,
            job_status: listed.job_status,
            duration_seconds: listed.duration_seconds,
            size_bytes: listed.size_bytes,
            matches: listed
                .passages
                .map(|p| p.iter().map(TranscriptSegment::from).collect()),
        }
    }
}

/// A page of recordings, newest first (best match first for a search).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingPage {
    /// How many recordings match, over all pages.
    pub count: u64,
    pub page: u64,
    pub page_size: u64,
    pub recordings: Vec<RecordingListItem>,
}

#[utoipa::path(
    get,
    path = "/api/recordings",
    operation_id = "list_recordings",
    tag = "recordings",
    summary = "List and search recordings",
    description = "Every recording, newest first, filtered and paged; with `q`, those whose title or transcript holds the words, best match first, each with the passages where they were said. Also served with a trailing slash.",
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
    // The limit holds for what was sent, whatever it holds.
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(ApiError::BadQuery(format!(
            "`q` must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    // Control characters mean nothing to a search, and PostgreSQL refuses
    // a NUL in any text: they are spaces here.
    let text = query.q.as_deref().map(|q| q.replace(char::is_control, " "));
    let search = match text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            SearchQuery::parse(text)
                .ok_or_else(|| ApiError::BadQuery("`q` has no word to search for".to_owned()))?,
        ),
    };
    if query
        .profile
        .as_ref()
        .is_some_and(|p| p.chars().count() > 255 || p.chars().any(char::is_control))
    {
        return Err(ApiError::BadQuery(
            "`profile` must be a profile's name: at most 255 characters, no control characters"
                .to_owned(),
        ));
    }
    let filters = Filters {
        status: query.status,
        profile: query.profile.as_deref().filter(|p| !p.is_empty()),
    };
    let (recordings, count) = state
        .recordings
        .list(filters, search.as_ref(), page, page_size)
        .await?;
    Ok(Json(RecordingPage {
        count,
        page,
        page_size,
        recordings: recordings
            .into_iter()
            .map(RecordingListItem::from)
            .collect(),
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
    /// For a continuous recording (`segment_seconds`): its closed
    /// segments in order, each a recording of its own with its own
    /// analysis and transcript. Empty otherwise.
    pub segments: Vec<SegmentRef>,
}

/// One closed segment of a continuous recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentRef {
    /// Its place among the recording's segments, from 1.
    pub index: i32,
    /// The segment's own recording (`GET /api/recordings/{recording_id}`).
    pub recording_id: i32,
    pub status: crate::entity::RecordingStatus,
    /// Where it starts, in milliseconds from the job's start.
    pub start_ms: i64,
    /// How long it lasts, in milliseconds.
    pub duration_ms: i64,
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
        segments: detail
            .segments
            .into_iter()
            .map(|segment| SegmentRef {
                index: segment.segment_index.unwrap_or_default(),
                recording_id: segment.id,
                status: segment.status,
                start_ms: segment.segment_start_ms.unwrap_or_default(),
                duration_ms: segment.segment_duration_ms.unwrap_or_default(),
            })
            .collect(),
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
        (status = 409, description = "`recording_busy` (still recording or processing) or `nothing_to_process` (no file)", body = ErrorBody),
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
        (status = 409, description = "`recording_busy`", body = ErrorBody),
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
    description = "With HTTP range requests, for seeking in a player and resuming downloads. A file held by another node (without shared storage) is streamed from that node through this one, ranges kept (`X-Recorderd-Node` names it). Also served with a trailing slash.",
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
        (status = 412, description = "An `If-Unmodified-Since` or `If-Match` precondition failed"),
        (status = 416, description = "The range is outside the file"),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 502, description = "`on_other_node`: the file is on the node named in `node`, which could not be reached", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn media(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let media = state.recordings.media(id).await?;
    super::media::serve_located(&state, id, media, request).await
}
