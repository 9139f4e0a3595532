//! The HTTP API: the seed's endpoints (with and without trailing slash),
//! JSON in and out, every error in one shape.

mod auth;
pub mod error;
mod events;
mod jobs;
mod recordings;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, Result};

use crate::jobs::JobService;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub jobs: JobService,
    /// Cancelled when the server begins shutting down: long-lived event
    /// streams end so that the graceful shutdown does not wait on them.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// `Json<T>` whose rejections are [`ApiError`]s, so a malformed or oversized
/// body gets the API's error shape instead of a plain-text reply.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Serves `path` and `path/`: the seed's clients use the trailing slash,
/// hand-written ones often do not.
fn both<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &str,
    method: MethodRouter<S>,
) -> Router<S> {
    router
        .route(path, method.clone())
        .route(&format!("{path}/"), method)
}

/// How the HTTP layer is configured.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub api_token: Option<String>,
    pub open_metrics: bool,
    pub cors_origins: Vec<String>,
}

pub fn router(state: AppState, options: &HttpOptions) -> Router {
    let mut api = Router::new();
    api = both(
        api,
        "/api/recordings/jobs/start",
        axum::routing::post(jobs::start),
    );
    api = both(
        api,
        "/api/recordings/jobs/stop",
        axum::routing::post(jobs::stop),
    );
    api = both(api, "/api/recordings/jobs/active", get(jobs::active));
    api = both(
        api,
        "/api/recordings/jobs/cleanup",
        axum::routing::post(jobs::cleanup),
    );
    api = both(api, "/api/recordings/jobs/events", get(events::stream));
    api = both(api, "/api/recordings/jobs", get(jobs::list));
    api = both(api, "/api/recordings/jobs/{id}", get(jobs::show));
    api = both(api, "/api/recordings/jobs/{id}/log", get(jobs::log));
    api = both(api, "/api/recordings", get(recordings::list));
    api = both(
        api,
        "/api/recordings/{id}",
        get(recordings::show).delete(recordings::delete),
    );
    api = both(
        api,
        "/api/recordings/{id}/reprocess",
        axum::routing::post(recordings::reprocess),
    );
    api = both(api, "/api/recordings/{id}/media", get(recordings::media));
    api.route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            auth::AccessPolicy {
                token: options.api_token.as_deref().map(Arc::from),
                open_metrics: options.open_metrics,
            },
            auth::require_token,
        ))
        .layer(cors(&options.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            state.jobs.metrics().clone(),
            time_request,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The dashboard: one self-contained page, live through the event stream.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// Alive: the process answers HTTP.
/// Records each request's latency under its route (not its raw path, so
/// ids do not make a series each).
async fn time_request(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let began = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics.observe(
        "recorderd_http_request_seconds",
        &[&method, &route, &status],
        began.elapsed(),
    );
    response
}

/// Prometheus exposition: counters and histograms, plus jobs and
/// recordings by status and the recorders supervised now.
async fn metrics(State(state): State<AppState>) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let (jobs, recordings) = crate::jobs::repo::counts_by_status(state.jobs.db())
        .await
        .map_err(crate::jobs::JobError::from)?;
    let mut gauges = Vec::new();
    for (status, n) in jobs {
        gauges.push((
            "recorderd_jobs",
            "Jobs by status.",
            vec![("status".to_owned(), status)],
            n as f64,
        ));
    }
    for (status, n) in recordings {
        gauges.push((
            "recorderd_recordings",
            "Recordings by status.",
            vec![("status".to_owned(), status)],
            n as f64,
        ));
    }
    gauges.push((
        "recorderd_recorders_supervised",
        "Recorder processes this server watches now (children and adopted).",
        Vec::new(),
        state.jobs.supervisor().len() as f64,
    ));
    let text = state.jobs.metrics().render(&gauges);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// CORS for pages served from other origins; none allowed by default.
fn cors(origins: &[String]) -> CorsLayer {
    use axum::http::{HeaderName, Method, header};
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<_> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: the database answers, every migration is applied, and recovery of
/// the previous run's jobs is finished (the server only listens after it).
/// 503 while shutting down.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    use migration::MigratorTrait;
    let db = state.jobs.db();
    let database = db.ping().await.map_err(|e| e.to_string());
    let pending = match &database {
        Ok(()) => migration::Migrator::get_pending_migrations(db)
            .await
            .map(|p| p.len())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let shutting_down = state.jobs.is_shutting_down();
    let ready = database.is_ok() && matches!(pending, Ok(0)) && !shutting_down;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database.err().unwrap_or_else(|| "ok".to_owned()),
        "pending_migrations": pending.as_ref().ok(),
        "recovery": "done",
        "shutting_down": shutting_down,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn fallback(method: Method, request: Request) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Page parameters shared by the list endpoints.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    pub status: Option<String>,
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub recording_id: Option<i32>,
}

pub const MAX_PAGE_SIZE: u64 = 500;
/// Keeps `page × page_size` far from integer overflow in the query layer.
pub const MAX_PAGE: u64 = 1_000_000;

impl PageQuery {
    /// Page number (from 1) and size, validated.
    pub fn bounds(&self) -> Result<(u64, u64)> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ApiError::BadQuery(format!(
                "`page` must be between 1 and {MAX_PAGE}"
            )));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::BadQuery(format!(
                "`page_size` must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok((page, size))
    }
}
