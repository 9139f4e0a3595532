//! What operators and tools look at: the probes, the metrics and the
//! API's own description. (The dashboard is `ui`'s.)

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ErrorBody, ErrorCode};
use super::{AppState, Result};
use crate::metrics::ScrapedCounts;

/// Answer of the liveness probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Alive: the process answers HTTP",
    description = "Never needs a token.",
    security(()),
    responses((status = 200, description = "Alive", body = Liveness))
)]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Answer of the readiness probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok`, or why the database does not answer.
    pub database: String,
    /// Migrations not yet applied; absent when they cannot be read.
    pub pending_migrations: Option<usize>,
    /// Always `done`: the server listens only once recovery is over.
    pub recovery: &'static str,
    pub shutting_down: bool,
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Ready: database answers, migrations applied, recovery done",
    description = "503 while shutting down or when the database does not answer. Never needs a token.",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the body says why", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (database, pending) = state.probe.check().await;
    let shutting_down = state.jobs.is_shutting_down();
    let ready = database.is_ok() && matches!(pending, Ok(0)) && !shutting_down;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        database: database.err().unwrap_or_else(|| "ok".to_owned()),
        pending_migrations: pending.ok(),
        recovery: "done",
        shutting_down,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Text exposition format 0.0.4: jobs and recordings by status, transitions, spawn failures, stop escalations, exit-to-commit latency, processing step durations, HTTP latencies. Needs the API token when one is configured, unless the server runs with `--open-metrics`.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the database does not answer now; retry later", body = ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let counts = state
        .jobs
        .status_counts()
        .await
        .map_err(crate::jobs::JobError::from)?;
    let (disk_free_bytes, retained_bytes) = state.jobs.storage().await;
    let counts = ScrapedCounts {
        jobs: counts
            .jobs
            .into_iter()
            .map(|(status, n)| (status.as_str().to_owned(), n))
            .collect(),
        recordings: counts
            .recordings
            .into_iter()
            .map(|(status, n)| (status.as_str().to_owned(), n))
            .collect(),
        recorders_supervised: state.jobs.supervised(),
        progress: state.jobs.live_progress(),
        disk_free_bytes,
        retained_bytes,
    };
    // Rendering reads /proc/self for the process metrics.
    let metrics = state.metrics.clone();
    let rendered = tokio::task::spawn_blocking(move || metrics.render(counts)).await;
    Ok(match rendered {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
        }
        // Writing into a String does not fail, and encoding does not panic:
        // should either ever happen, the scrape fails visibly.
        Ok(Err(std::fmt::Error)) => internal_error("encoding the metrics failed"),
        Err(e) => internal_error(&format!("rendering the metrics: {e}")),
    })
}

/// An opaque 500 in the API's error shape, the cause logged.
fn internal_error(cause: &str) -> Response {
    tracing::error!(error = cause, "request failed");
    let body = ErrorBody::new(
        ErrorCode::InternalError,
        "internal error; see the server log",
    );
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

/// The document, built once: it only depends on the code.
static DOCUMENT: LazyLock<Arc<str>> = LazyLock::new(|| match super::openapi().to_json() {
    Ok(json) => Arc::from(json),
    // Serializing plain data structures cannot fail; if it ever does, the
    // reply says so instead of the server going down.
    Err(e) => Arc::from(format!(
        "{{\"success\":false,\"error\":{{\"code\":\"internal_error\",\"message\":\"{e}\"}}}}"
    )),
});

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    summary = "This document",
    description = "OpenAPI 3.1, generated from the server's code.",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    )
)]
pub async fn openapi_document(_request: Request) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.to_string(),
    )
        .into_response()
}
