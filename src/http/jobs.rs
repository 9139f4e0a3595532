//! `/api/recordings/jobs/…`: start, stop, list and inspect jobs.
//!
//! Every handler is annotated for the OpenAPI document: the annotation and
//! the route come from the same place, so neither can drift from the other.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, ApiJson, AppState, Result, page_bounds, to_completion};
use crate::entity::JobStatus;
use crate::jobs::{LiveJob, StartRequest};
use crate::recordings::Log;

/// Fields of a request body that the server does not know: their names,
/// their values skipped unread.
type IgnoredFields = std::collections::BTreeMap<String, serde::de::IgnoredAny>;
use crate::store::{Job, Recording};

/// Answer to a start: the new job and its recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    /// Always `true`.
    pub success: bool,
    pub message: String,
    pub job: Job,
    pub recording: Recording,
}

#[utoipa::path(
    post,
    path = "/api/recordings/jobs/start",
    operation_id = "start_job",
    tag = "jobs",
    summary = "Start a recording",
    description = "Creates a recording and its job and spawns the recorder. The job is `running` once this answers. A node that cannot take it (at its `--max-jobs`, draining, or lacking a label the profile requires) places it on the live node with the most free slots and answers once that node started it: the job's `node` says where it runs. Also served with a trailing slash.",
    request_body = StartRequest,
    responses(
        (status = 201, description = "The recorder runs", body = StartResponse,
            links(
                ("stop" = (operation_id = "stop_job", request_body = json!({"job_id": "$response.body#/job/id"}), description = "Stop this job")),
                ("job" = (operation_id = "show_job", parameters(("id" = "$response.body#/job/id")), description = "This job")),
                ("log" = (operation_id = "job_log", parameters(("id" = "$response.body#/job/id")), description = "This job's log")),
                ("recording" = (operation_id = "show_recording", parameters(("id" = "$response.body#/recording/id")), description = "This job's recording")),
                ("media" = (operation_id = "recording_media", parameters(("id" = "$response.body#/recording/id")), description = "What it recorded")),
                ("reprocess" = (operation_id = "reprocess_recording", parameters(("id" = "$response.body#/recording/id")), description = "Process the recording again")),
                ("transcript" = (operation_id = "recording_transcript", parameters(("id" = "$response.body#/recording/id")), description = "What was said in it")),
                ("playable" = (operation_id = "recording_playable", parameters(("id" = "$response.body#/recording/id")), description = "It, as browsers play it")),
            )
        ),
        (status = 400, description = "`malformed_json`, `invalid_source` (with `rule` when what the source would reach is refused: `listener_option`, `builtin_deny`, `deny_private`, `deny_hosts`, `allow_hosts`), `invalid_field`, `unknown_profile` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an API token is configured and was not given", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body must be `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: a field is missing or of the wrong type (unknown fields are ignored)", body = ErrorBody),
        (status = 500, description = "`spawn_failed` (the job is recorded as failed) or `internal_error`", body = ErrorBody),
        (status = 503, description = "`at_capacity` (no live node has a free slot, or the labels the profile requires; `Retry-After` says when to try again), `shutting_down`, or `database_unavailable` (the database does not answer now; retry later)", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`: the recordings' disk is below the free space it must keep", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<StartResponse>)> {
    log_ignored("start", &request.ignored);
    let jobs = state.jobs.clone();
    let started = to_completion(async move { jobs.start(request).await }).await?;
    Ok((
        StatusCode::CREATED,
        Json(StartResponse {
            success: true,
            message: match &started.job.node {
                Some(node) => format!("Job #{} started on node {node}", started.job.id),
                None => format!("Job #{} started", started.job.id),
            },
            job: started.job,
            recording: started.recording,
        }),
    ))
}

/// Body of a stop. Unknown fields are ignored, as for a start.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StopRequest {
    #[serde(deserialize_with = "crate::jobs::whole_number")]
    job_id: i32,
    #[serde(flatten)]
    #[schema(ignore)]
    ignored: IgnoredFields,
}

/// Says, for whoever debugs a client, which fields of its body were not
/// read.
fn log_ignored(operation: &str, ignored: &IgnoredFields) {
    if !ignored.is_empty() {
        let fields: Vec<&str> = ignored.keys().map(String::as_str).collect();
        tracing::debug!(operation, ?fields, "unknown fields ignored");
    }
}

/// Answer to a stop: the job, `stopping` or already ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct StopResponse {
    /// Always `true`.
    pub success: bool,
    pub message: String,
    pub job: Job,
}

#[utoipa::path(
    post,
    path = "/api/recordings/jobs/stop",
    operation_id = "stop_job",
    tag = "jobs",
    summary = "Stop a recording",
    description = "Sends the profile's stop signal, then escalates (SIGTERM, SIGKILL) if the recorder does not end. Answers at once with the job `stopping`; the end arrives as a `job.completed` or `job.failed` event. Also served with a trailing slash.",
    request_body = StopRequest,
    responses(
        (status = 200, description = "The stop is under way", body = StopResponse),
        (status = 400, description = "`malformed_json` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 409, description = "`job_already_ended`, with the job's `status`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn stop(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<StopRequest>,
) -> Result<Json<StopResponse>> {
    log_ignored("stop", &request.ignored);
    let jobs = state.jobs.clone();
    let job = to_completion(async move { jobs.stop(request.job_id).await }).await?;
    Ok(Json(StopResponse {
        success: true,
        message: format!("Job #{} {}", job.id, job.status.as_str()),
        job,
    }))
}

/// `{"count": N, "jobs": [...]}`: the shape of the answer, which
/// [`active_json`] writes byte for byte (the jobs held in memory come as
/// the JSON their last transition left; this is the seed's polled
/// endpoint).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveJobs {
    count: usize,
    jobs: Vec<Job>,
}

/// The JSON `Json(ActiveJobs { .. })` would give for these jobs, without
/// serializing again those held as JSON.
fn active_json(jobs: &[LiveJob]) -> serde_json::Result<Vec<u8>> {
    let size: usize = jobs.iter().map(LiveJob::json_len_hint).sum();
    let mut out = Vec::with_capacity(size + 32);
    out.extend_from_slice(b"{\"count\":");
    serde_json::to_writer(&mut out, &jobs.len())?;
    out.extend_from_slice(b",\"jobs\":[");
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        job.write_json(&mut out)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/api/recordings/jobs/active",
    operation_id = "active_jobs",
    tag = "jobs",
    summary = "The live jobs",
    description = "Jobs `running` or `stopping`, each checked against its process. Also served with a trailing slash.",
    responses(
        (status = 200, description = "The live jobs", body = ActiveJobs),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn active(State(state): State<AppState>) -> Result<Response> {
    let service = state.jobs.clone();
    let jobs = to_completion(async move { service.active().await }).await?;
    let body = active_json(&jobs)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Answer to a cleanup.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupResponse {
    /// Always `true`.
    pub success: bool,
    /// Jobs found dead and ended by this call.
    pub updated_count: usize,
    pub message: String,
}

#[utoipa::path(
    post,
    path = "/api/recordings/jobs/cleanup",
    operation_id = "cleanup_jobs",
    tag = "jobs",
    summary = "End the jobs whose process is gone",
    description = "Checks every live job against its process (PID, start time and job marker) and ends those whose recorder is gone. The supervisor already does this by itself; the endpoint stays for the seed's clients. Needs `Content-Type: application/json` (no body). Also served with a trailing slash.",
    responses(
        (status = 200, description = "How many jobs were ended", body = CleanupResponse),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token's role is `read`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn cleanup(State(state): State<AppState>) -> Result<Json<CleanupResponse>> {
    let jobs = state.jobs.clone();
    let updated = to_completion(async move { jobs.cleanup().await }).await?;
    Ok(Json(CleanupResponse {
        success: true,
        updated_count: updated,
        message: format!("{updated} job(s) updated"),
    }))
}

/// Filters and page of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only jobs in this status.
    status: Option<JobStatus>,
    /// Only the jobs of this recording.
    recording_id: Option<i32>,
    /// From 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u64>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// How many jobs match, over all pages.
    pub count: u64,
    pub page: u64,
    pub page_size: u64,
    pub jobs: Vec<Job>,
}

#[utoipa::path(
    get,
    path = "/api/recordings/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "List jobs",
    description = "Every job, newest first, filtered and paged. Also served with a trailing slash.",
    params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: std::result::Result<Query<JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>> {
    let Query(query) = query?;
    let (page, page_size) = page_bounds(query.page, query.page_size)?;
    let (jobs, count) = state
        .jobs
        .list(query.status, query.recording_id, page, page_size)
        .await?;
    Ok(Json(JobPage {
        count,
        page,
        page_size,
        jobs,
    }))
}

#[utoipa::path(
    get,
    path = "/api/recordings/jobs/{id}",
    operation_id = "show_job",
    tag = "jobs",
    summary = "One job",
    description = "Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "`invalid_path`: the id is not an integer", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Job>> {
    let Path(id) = id?;
    Ok(Json(state.jobs.show(id).await?))
}

/// How much of the log to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// At most this many bytes (16 KiB by default): the last ones, or
    /// with `offset` the first ones from there.
    #[param(minimum = 1, maximum = 1048576)]
    bytes: Option<u64>,
    /// Read from this byte on instead of the end: pass the last answer's
    /// `next_offset` to follow the log as it grows.
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    offset: Option<u64>,
}

/// A stretch of a recorder's output.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogTailResponse {
    pub job_id: i32,
    /// The whole log's size in bytes.
    pub size: u64,
    /// Whether `content` is only part of the log.
    pub truncated: bool,
    /// Lossily decoded as UTF-8 (a read never ends inside a character).
    pub content: String,
    /// Where in the log `content` starts, in bytes.
    pub offset: u64,
    /// Where it ends: the `offset` of the read that follows.
    pub next_offset: u64,
}

/// Largest log tail returned at once.
const MAX_LOG_BYTES: u64 = 1024 * 1024;
/// Largest offset into a log: what every JSON client reads exactly.
const MAX_LOG_OFFSET: u64 = (1 << 53) - 1;

#[utoipa::path(
    get,
    path = "/api/recordings/jobs/{id}/log",
    operation_id = "job_log",
    tag = "jobs",
    summary = "The end of a job's recorder output, or what follows an offset",
    description = "The recorder's standard output and error, as written to its log file. To follow it as it grows, read with `offset` set to the previous answer's `next_offset` until the job has ended and a read brings nothing. A log held by another node (without shared storage) is read from that node through this one. Also served with a trailing slash.",
    params(("id" = i32, Path, description = "The job's id"), LogQuery),
    responses(
        (status = 200, description = "The log's tail", body = LogTailResponse),
        (status = 400, description = "`invalid_path` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 500, description = "`internal_error`: the log cannot be read", body = ErrorBody),
        (status = 502, description = "`on_other_node`: the log is on the node named in `node`, which could not be reached", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn log(
    State(state): State<AppState>,
    id: std::result::Result<Path<i32>, axum::extract::rejection::PathRejection>,
    query: std::result::Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
    request: axum::extract::Request,
) -> Result<Response> {
    let Path(id) = id?;
    let Query(query) = query?;
    let bytes = query.bytes.unwrap_or(16 * 1024);
    if !(1..=MAX_LOG_BYTES).contains(&bytes) {
        return Err(ApiError::BadQuery(format!(
            "`bytes` must be between 1 and {MAX_LOG_BYTES}"
        )));
    }
    if query.offset.is_some_and(|o| o > MAX_LOG_OFFSET) {
        return Err(ApiError::BadQuery(format!(
            "`offset` must be between 0 and {MAX_LOG_OFFSET}"
        )));
    }
    let forwarded = super::proxy::Proxy::is_forwarded(request.headers());
    match state
        .recordings
        .log_tail(id, query.offset, bytes, forwarded)
        .await?
    {
        Log::Here(tail) => Ok(Json(LogTailResponse {
            job_id: id,
            size: tail.size,
            truncated: tail.truncated,
            content: tail.content,
            offset: tail.offset,
            next_offset: tail.next_offset,
        })
        .into_response()),
        Log::On { node, url } => {
            let what = format!("job {id}");
            state.proxy.forward(what, node, url, request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::fixtures;

    #[test]
    fn the_active_answer_is_what_serializing_its_model_gives() {
        let jobs = vec![
            fixtures::job(3, JobStatus::Stopping),
            Job {
                node: Some("a".to_owned()),
                ..fixtures::job(2, JobStatus::Running)
            },
        ];
        let live: Vec<LiveJob> = jobs
            .iter()
            .map(|job| LiveJob::Read(Box::new(job.clone())))
            .collect();
        let model = ActiveJobs { count: 2, jobs };
        assert_eq!(
            active_json(&live).expect("written"),
            serde_json::to_vec(&model).expect("serialized")
        );
        let none = ActiveJobs {
            count: 0,
            jobs: Vec::new(),
        };
        assert_eq!(
            active_json(&[]).expect("written"),
            serde_json::to_vec(&none).expect("serialized")
        );
    }
}
