//! `/api/recordings/…`: what was recorded and what became of it.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::{ApiError, AppState, MAX_PAGE_SIZE, PageQuery, Result};
use crate::entity::RecordingStatus;
use crate::jobs::{JobError, repo};

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

pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    let recording = state.jobs.recording(id).await?;
    let (jobs, _) = repo::list_jobs(state.jobs.db(), None, Some(id), 1, MAX_PAGE_SIZE)
        .await
        .map_err(JobError::from)?;
    let mut body = json!(recording);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("jobs".to_owned(), json!(jobs));
    }
    Ok(Json(body))
}
