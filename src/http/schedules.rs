//! `/api/recordings/schedules/…`: recordings started at a set time or on a
//! cron pattern; create, list, show (next slots and recent firings),
//! pause, resume, delete.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiJson, AppState, Result};
use crate::schedules::{CreateSchedule, ScheduleDetail, ScheduleSummary};

/// Every schedule, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub count: usize,
    pub schedules: Vec<ScheduleSummary>,
}

/// Answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDeleted {
    /// Always `true`.
    pub success: bool,
    pub message: String,
}

#[utoipa::path(
    post,
    path = "/api/recordings/schedules",
    operation_id = "create_schedule",
    tag = "schedules",
    summary = "Schedule a recording",
    description = "Either once (`start_at`, in the future) or on a cron pattern (`cron`, 5 fields or 6 with seconds first) read in an IANA `time_zone`; `duration_seconds` always. Each slot starts a job as `POST /api/recordings/jobs/start/` would (same validation, placement and limits), exactly once even with several nodes on one database. A slot missed while no node ran (within `--schedule-grace-seconds`) fires late; older ones are recorded `missed`. A wall-clock time skipped by a daylight-saving change fires at the first instant after the gap; one repeated fires once. Also served with a trailing slash.",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "The schedule, with its next slots", body = ScheduleDetail),
        (status = 400, description = "`invalid_field` (`start_at` in the past, both or neither of `start_at` and `cron`, a bad `cron`, an unknown `time_zone`, `duration_seconds` below 1 or missing, a bad `title`), `invalid_source`, `unknown_profile` or `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: a field of the wrong type (`start_at` not RFC 3339)", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleDetail>)> {
    if !request.ignored.is_empty() {
        let fields: Vec<&str> = request.ignored.keys().map(String::as_str).collect();
        tracing::debug!(
            operation = "create_schedule",
            ?fields,
            "unknown fields ignored"
        );
    }
    let created = state.schedules.create(request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/api/recordings/schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    summary = "Every schedule",
    description = "Each with its state (`active`, `paused`, `finished`) and next slot. Also served with a trailing slash.",
    responses(
        (status = 200, description = "The schedules", body = ScheduleList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>> {
    let schedules = state.schedules.list().await?;
    Ok(Json(ScheduleList {
        count: schedules.len(),
        schedules,
    }))
}

#[utoipa::path(
    get,
    path = "/api/recordings/schedules/{id}",
    operation_id = "show_schedule",
    tag = "schedules",
    summary = "One schedule",
    description = "With `next_firings` (the next 5 slots, UTC) and `firings` (the latest slots: `started` with the `job_id`, `starting`, `failed` with its `error`, or `missed`). Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleDetail),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, PathRejection>,
) -> Result<Json<ScheduleDetail>> {
    let Path(id) = id?;
    Ok(Json(state.schedules.show(id).await?))
}

#[utoipa::path(
    delete,
    path = "/api/recordings/schedules/{id}",
    operation_id = "delete_schedule",
    tag = "schedules",
    summary = "Delete a schedule",
    description = "With its firings; the recordings it made stay, and a job it started runs on. Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "Deleted", body = ScheduleDeleted),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, PathRejection>,
) -> Result<Json<ScheduleDeleted>> {
    let Path(id) = id?;
    state.schedules.delete(id).await?;
    Ok(Json(ScheduleDeleted {
        success: true,
        message: format!("Schedule #{id} deleted"),
    }))
}

#[utoipa::path(
    post,
    path = "/api/recordings/schedules/{id}/pause",
    operation_id = "pause_schedule",
    tag = "schedules",
    summary = "Pause a schedule",
    description = "It fires nothing until resumed; the slots it passes meanwhile are not recorded as missed. Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule, paused", body = ScheduleDetail),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, PathRejection>,
) -> Result<Json<ScheduleDetail>> {
    let Path(id) = id?;
    Ok(Json(state.schedules.set_paused(id, true).await?))
}

#[utoipa::path(
    post,
    path = "/api/recordings/schedules/{id}/resume",
    operation_id = "resume_schedule",
    tag = "schedules",
    summary = "Resume a paused schedule",
    description = "It fires from its next slot on. Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule, active", body = ScheduleDetail),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, PathRejection>,
) -> Result<Json<ScheduleDetail>> {
    let Path(id) = id?;
    Ok(Json(state.schedules.set_paused(id, false).await?))
}
