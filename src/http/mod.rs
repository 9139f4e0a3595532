//! The HTTP API: the seed's endpoints (with and without trailing slash),
//! JSON in and out, every error in one shape. Routes are registered
//! without the slash; [`router`] trims it from requests before routing.

mod auth;
pub mod error;
mod events;
mod jobs;
mod media;
mod nodes;
mod openapi;
mod ops;
mod profiles;
pub mod proxy;
mod recordings;
mod schedules;
mod serve;
mod transcripts;
mod ui;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::{Extension, Router};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::Layer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, Result};
pub use serve::serve;

use crate::access::{PublicNames, Tokens};
use crate::config::Settings;
use crate::db::Probe;
use crate::events::EventLog;
use crate::jobs::JobService;
use crate::metrics::Metrics;
use crate::recordings::Recordings;

/// What every handler can reach: one cheap handle per service. Handlers
/// call these, never the database.
#[derive(Clone)]
pub struct AppState {
    pub jobs: JobService,
    pub recordings: Recordings,
    pub events: EventLog,
    pub metrics: Arc<Metrics>,
    /// Whether the database answers and is migrated, for `/readyz`.
    pub probe: Probe,
    /// Cancelled when the server begins shutting down: long-lived event
    /// streams end so that the graceful shutdown does not wait on them.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The nodes sharing the database.
    pub nodes: crate::nodes::Nodes,
    pub schedules: crate::schedules::Schedules,
    /// Reads of files another node holds.
    pub proxy: proxy::Proxy,
}

/// `Json<T>` whose rejections are [`ApiError`]s, so a malformed or oversized
/// body gets the API's error shape instead of a plain-text reply.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Every route with its documentation: the router and the OpenAPI document
/// are both built from this, so an endpoint cannot exist undocumented.
fn routes() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    let mut api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    for routes in [
        routes!(jobs::start),
        routes!(jobs::stop),
        routes!(jobs::active),
        routes!(jobs::cleanup),
        routes!(events::stream),
        routes!(jobs::list),
        routes!(jobs::show),
        routes!(jobs::log),
        routes!(recordings::list),
        routes!(recordings::show, recordings::delete),
        routes!(recordings::reprocess),
        routes!(recordings::media),
        routes!(transcripts::transcript),
        routes!(transcripts::captions),
        routes!(media::playable),
        routes!(media::thumbnail),
        routes!(schedules::create, schedules::list),
        routes!(schedules::show, schedules::delete),
        routes!(schedules::pause),
        routes!(schedules::resume),
        routes!(profiles::list),
        routes!(ui::dashboard),
        routes!(ui::asset),
        routes!(nodes::list),
        routes!(nodes::drain, nodes::resume),
        routes!(ops::healthz),
        routes!(ops::readyz),
        routes!(ops::metrics),
        routes!(ops::openapi_document),
    ] {
        api = api.routes(routes);
    }
    api
}

/// The OpenAPI 3.1 document of this server's API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// How the HTTP layer is configured.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub tokens: Arc<Tokens>,
    pub public_names: Arc<PublicNames>,
    pub open_metrics: bool,
    pub cors_origins: Vec<String>,
    pub max_event_streams: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

impl From<&Settings> for HttpOptions {
    fn from(settings: &Settings) -> Self {
        Self {
            max_body_bytes: settings.max_body_bytes,
            tokens: Arc::new(settings.tokens.clone()),
            public_names: Arc::new(settings.public_names.clone()),
            open_metrics: settings.open_metrics,
            cors_origins: settings.cors_origins.clone(),
            max_event_streams: settings.limits.max_event_streams,
            body_timeout: settings.limits.idle_timeout,
        }
    }
}

/// Places for event-stream clients (`--max-event-streams`): each stream
/// holds one until its client leaves.
#[derive(Clone)]
pub struct StreamSlots {
    pub slots: Arc<Semaphore>,
    pub limit: usize,
}

/// The whole HTTP service. The seed's clients use a trailing slash,
/// hand-written ones often do not: the slash is trimmed before routing, so
/// every path answers both ways and a route (and its metrics and access
/// rule) is known by one name. Serve it with
/// `ServiceExt::<Request>::into_make_service`: a layer added to the
/// `Router` itself would only run after routing.
/// The API as served: the router behind the trailing-slash normalization.
pub type Service = NormalizePath<Router>;

pub fn router(state: AppState, options: &HttpOptions) -> Service {
    NormalizePathLayer::trim_trailing_slash().layer(routed(state, options))
}

fn routed(state: AppState, options: &HttpOptions) -> Router {
    let (api, _) = routes().split_for_parts();
    let streams = StreamSlots {
        slots: Arc::new(Semaphore::new(options.max_event_streams)),
        limit: options.max_event_streams,
    };
    api.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(options.body_timeout))
        .layer(Extension(streams))
        .layer(axum::middleware::from_fn_with_state(
            auth::AccessPolicy {
                tokens: options.tokens.clone(),
                public_names: options.public_names.clone(),
                open_metrics: options.open_metrics,
            },
            auth::guard,
        ))
        .layer(cors(&options.cors_origins))
        // On every answer: no content sniffing (a recording is served as
        // what it claims to be, never as a page), no framing (another site
        // cannot overlay the dashboard's buttons), and no `Referer` taking
        // a dashboard URL and its `?access_token=` wherever a link leads.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            time_request,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Records each request's latency under its route (not its raw path, so
/// ids do not make a series each).
async fn time_request(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let began = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.http_request(
        &method,
        route.as_deref().unwrap_or("unmatched"),
        response.status(),
        began.elapsed(),
    );
    response
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

async fn fallback(method: Method, request: Request) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Runs a state change to its end whatever the client does: the request's
/// future is dropped when its client goes away, and a start cut there
/// would leave a recorder without its identity stored, its event or its
/// duration limit. The handler awaits the spawned task's result.
pub async fn to_completion<T, E>(
    operation: impl Future<Output = std::result::Result<T, E>> + Send + 'static,
) -> Result<T>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    // In the request's span, so that what the operation logs still names
    // the token that asked for it.
    match tokio::spawn(tracing::Instrument::in_current_span(operation)).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::TaskFailed(e.to_string())),
    }
}

pub const MAX_PAGE_SIZE: u64 = 500;
/// Keeps `page × page_size` far from integer overflow in the query layer.
pub const MAX_PAGE: u64 = 1_000_000;

/// Page number (from 1) and size of a list request, validated.
pub fn page_bounds(page: Option<u64>, page_size: Option<u64>) -> Result<(u64, u64)> {
    let page = page.unwrap_or(1);
    let size = page_size.unwrap_or(50);
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
