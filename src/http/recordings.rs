//! `/api/recordings/…`: what was recorded and what became of it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{ApiError, AppState, MAX_PAGE_SIZE, PageQuery, Result};
use crate::entity::RecordingStatus;
use crate::jobs::{JobError, repo};
use crate::processing::steps;

pub async fn list(
    State(state): State<AppState>,
    query: std::result::Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(query) = query?;
    let (page, page_size) = query.bounds()?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some("recording") => Some(RecordingStatus::Recording),
        Some("processing") => Some(RecordingStatus::Processing),
        Some("ready") => Some(RecordingStatus::Ready),
        Some("failed") => Some(RecordingStatus::Failed),
        Some(s) => {
            return Err(ApiError::BadQuery(format!(
                "unknown status `{s}` (recording, processing, ready, failed)"
            )));
        }
    };
    let (recordings, total) = repo::list_recordings(state.jobs.db(), status, page, page_size)
        .await
        .map_err(JobError::from)?;
    Ok(Json(json!({
        "count": total,
        "page": page,
        "page_size": page_size,
        "recordings": recordings,
    })))
}

/// The recording with its jobs, its processing steps, its `analysis` (as
/// JSON) and its `transcript`.
pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    let recording = state.jobs.recording(id).await?;
    let db = state.jobs.db();
    let (jobs, _) = repo::list_jobs(db, None, Some(id), 1, MAX_PAGE_SIZE)
        .await
        .map_err(JobError::from)?;
    let steps = steps::of_recording(db, id).await.map_err(JobError::from)?;
    let analysis = recording
        .analysis
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let mut body = json!(recording);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("analysis".to_owned(), analysis.unwrap_or(Value::Null));
        obj.insert("steps".to_owned(), json!(steps));
        obj.insert("jobs".to_owned(), json!(jobs));
        obj.insert(
            "media_url".to_owned(),
            json!(format!("/api/recordings/{id}/media")),
        );
    }
    Ok(Json(body))
}

/// Runs the pipeline again: 202 with the recording, now `processing`.
pub async fn reprocess(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let Path(id) = id?;
    let recording = state.jobs.reprocess(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "success": true, "recording": recording })),
    ))
}

/// Deletes a recording that is neither recording nor processing.
pub async fn delete(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    state.jobs.delete_recording(id).await?;
    Ok(Json(json!({
        "success": true,
        "message": format!("recording {id} deleted"),
    })))
}

/// The recorded file, with HTTP range requests (seeking in a player,
/// resumable downloads).
pub async fn media(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Result<Response> {
    let Path(id) = id?;
    let path = state.jobs.media_path(id).await?;
    let response =
        ServeFile::new(path)
            .oneshot(request)
            .await
            .map_err(|e| JobError::MediaUnavailable {
                id,
                reason: e.to_string(),
            })?;
    Ok(response.map(Body::new))
}
