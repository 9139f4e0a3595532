//! `/api/recordings/jobs/…`: start, stop, list and inspect jobs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, AppState, PageQuery, Result};
use crate::entity::JobStatus;
use crate::jobs::{Job, StartRequest, repo};

pub async fn start(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let started = state.jobs.start(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "success": true,
            "message": format!("Job #{} started", started.job.id),
            "job": started.job,
            "recording": started.recording,
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    job_id: i32,
}

pub async fn stop(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<StopRequest>,
) -> Result<Json<Value>> {
    let job = state.jobs.stop(request.job_id).await?;
    Ok(Json(json!({
        "success": true,
        "message": format!("Job #{} {}", job.id, job.status.as_str()),
        "job": job,
    })))
}

/// `{"count": N, "jobs": [...]}`, serialized straight from the models (no
/// intermediate JSON tree: this is the seed's polled endpoint).
#[derive(serde::Serialize)]
pub struct ActiveJobs {
    count: usize,
    jobs: Vec<Job>,
}

pub async fn active(State(state): State<AppState>) -> Result<Json<ActiveJobs>> {
    let jobs = state.jobs.active().await?;
    Ok(Json(ActiveJobs {
        count: jobs.len(),
        jobs,
    }))
}

pub async fn cleanup(State(state): State<AppState>) -> Result<Json<Value>> {
    let updated = state.jobs.cleanup().await?;
    Ok(Json(json!({
        "success": true,
        "updated_count": updated,
        "message": format!("{updated} job(s) updated"),
    })))
}

pub async fn list(
    State(state): State<AppState>,
    query: std::result::Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(query) = query?;
    let (page, page_size) = query.bounds()?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::BadQuery(format!(
                "unknown status `{s}` (running, stopping, completed, failed)"
            ))
        })?),
    };
    let (jobs, total) =
        repo::list_jobs(state.jobs.db(), status, query.recording_id, page, page_size)
            .await
            .map_err(crate::jobs::JobError::from)?;
    Ok(Json(json!({
        "count": total,
        "page": page,
        "page_size": page_size,
        "jobs": jobs,
    })))
}

pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    Ok(Json(json!(state.jobs.job(id).await?)))
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    bytes: Option<u64>,
}

/// Largest log tail returned at once.
const MAX_LOG_BYTES: u64 = 1024 * 1024;

pub async fn log(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    query: std::result::Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    let Query(query) = query?;
    let bytes = query.bytes.unwrap_or(16 * 1024);
    if !(1..=MAX_LOG_BYTES).contains(&bytes) {
        return Err(ApiError::BadQuery(format!(
            "`bytes` must be between 1 and {MAX_LOG_BYTES}"
        )));
    }
    let tail = state.jobs.log_tail(id, bytes).await?;
    Ok(Json(json!({
        "job_id": id,
        "size": tail.size,
        "truncated": tail.truncated,
        "content": tail.content,
    })))
}
