//! The one place where errors become HTTP responses. Client mistakes are 4xx
//! with a stable `code` and a message saying what to fix; internal failures
//! are logged in full and answered with an opaque 500.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::error;

use crate::jobs::JobError;
use crate::recordings::RecordingError;
use crate::schedules::ScheduleError;
use crate::supervisor::SpawnError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Every error an API handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Json(#[from] JsonRejection),
    #[error(transparent)]
    Path(#[from] PathRejection),
    #[error(transparent)]
    Query(#[from] QueryRejection),
    #[error("{0}")]
    BadQuery(String),
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("node `{id}` is not known to this database")]
    NodeNotFound { id: String },
    /// The task running the operation died (it panicked): a bug, logged.
    #[error("the operation failed: {0}")]
    TaskFailed(String),
    /// An answer could not be serialized (a stored date beyond what RFC
    /// 3339 writes): a 500, as axum's `Json` gives.
    #[error("the answer could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(
        "this server already serves {limit} event streams (--max-event-streams); try again later"
    )]
    TooManyStreams { limit: usize },
}

/// Seconds a client refused for capacity is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 10;

/// Every error code the API answers with: clients branch on these, never on
/// the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    UnknownProfile,
    InvalidSource,
    InvalidField,
    JobNotFound,
    RecordingNotFound,
    JobAlreadyEnded,
    SpawnFailed,
    RecordingBusy,
    NothingToProcess,
    MediaNotFound,
    ShuttingDown,
    InternalError,
    MalformedJson,
    InvalidBody,
    UnsupportedMediaType,
    BodyTooLarge,
    InvalidPath,
    InvalidQuery,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    OnOtherNode,
    DatabaseUnavailable,
    InsufficientStorage,
    /// The token is valid but its role does not allow the call.
    Forbidden,
    /// The `Host` is not a name this server answers to (`--public-names`).
    HostNotAllowed,
    /// A limit is reached: no node can take the job now (every live node
    /// is at its `--max-jobs`, draining, or lacks a label the profile
    /// requires), or this node serves `--max-event-streams` already;
    /// `Retry-After` says when to try again.
    AtCapacity,
    NotPlayable,
    NodeNotFound,
    ScheduleNotFound,
}

/// The body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code`, a message for people, and for some
/// codes the detail a client needs to act on it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// `invalid_field`: which field of the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// `job_already_ended`, `recording_busy`: the status that forbids it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// `spawn_failed`: the job that was recorded as failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i32>,
    /// `spawn_failed`: the program that could not be started, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// `on_other_node`: the node that holds the files, which could not be
    /// reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `invalid_source`: the rule that refused what the source would
    /// reach (`listener_option`, `builtin_deny`, `deny_private`,
    /// `deny_hosts`, `allow_hosts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            success: false,
            error: ErrorDetail {
                code,
                message: message.into(),
                field: None,
                status: None,
                job_id: None,
                program: None,
                node: None,
                rule: None,
            },
        }
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorBody) {
        use ErrorCode as C;
        let msg = self.to_string();
        match self {
            Self::Job(error) => job_parts(error, msg),
            Self::Recording(error) => recording_parts(error, msg),
            Self::Schedule(ScheduleError::Invalid(error)) => job_parts(error, msg),
            Self::Schedule(ScheduleError::NotFound { .. }) => {
                plain(StatusCode::NOT_FOUND, C::ScheduleNotFound, msg)
            }
            Self::Schedule(ScheduleError::Database(e)) => database(e),
            Self::Json(rejection) => json_parts(rejection),
            Self::Path(rejection) => plain(
                StatusCode::BAD_REQUEST,
                C::InvalidPath,
                rejection.body_text(),
            ),
            Self::Query(rejection) => plain(
                StatusCode::BAD_REQUEST,
                C::InvalidQuery,
                rejection.body_text(),
            ),
            Self::BadQuery(_) => plain(StatusCode::BAD_REQUEST, C::InvalidQuery, msg),
            Self::NoRoute { .. } => plain(StatusCode::NOT_FOUND, C::NotFound, msg),
            Self::MethodNotAllowed => {
                plain(StatusCode::METHOD_NOT_ALLOWED, C::MethodNotAllowed, msg)
            }
            Self::NodeNotFound { .. } => plain(StatusCode::NOT_FOUND, C::NodeNotFound, msg),
            Self::TaskFailed(_) | Self::Serialize(_) => internal(),
            Self::TooManyStreams { .. } => {
                plain(StatusCode::SERVICE_UNAVAILABLE, C::AtCapacity, msg)
            }
        }
    }
}

fn plain(status: StatusCode, code: ErrorCode, message: String) -> (StatusCode, ErrorBody) {
    (status, ErrorBody::new(code, message))
}

/// A database failure: 503 when the database is away or cannot take the
/// write now (the client may retry), an opaque 500 otherwise.
fn database(error: &sea_orm::DbErr) -> (StatusCode, ErrorBody) {
    if crate::db::is_unavailable(error) {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable; retry in a few seconds".to_owned(),
        )
    } else {
        internal()
    }
}

/// Internal failures are logged in full and answered opaquely.
fn internal() -> (StatusCode, ErrorBody) {
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalError,
        "internal error; see the server log".to_owned(),
    )
}

fn job_parts(error: &JobError, msg: String) -> (StatusCode, ErrorBody) {
    use ErrorCode as C;
    use JobError as J;
    match error {
        J::UnknownProfile { .. } => plain(StatusCode::BAD_REQUEST, C::UnknownProfile, msg),
        J::InvalidSource { .. } => plain(StatusCode::BAD_REQUEST, C::InvalidSource, msg),
        J::SourceRefused { rule, .. } => {
            let mut body = ErrorBody::new(C::InvalidSource, msg);
            body.error.rule = Some(rule.as_str());
            (StatusCode::BAD_REQUEST, body)
        }
        J::InvalidField { field, .. } => {
            let mut body = ErrorBody::new(C::InvalidField, msg);
            body.error.field = Some(field);
            (StatusCode::BAD_REQUEST, body)
        }
        J::JobNotFound { .. } => plain(StatusCode::NOT_FOUND, C::JobNotFound, msg),
        J::RecordingNotFound { .. } => plain(StatusCode::NOT_FOUND, C::RecordingNotFound, msg),
        J::JobAlreadyEnded { status, .. } => {
            let mut body = ErrorBody::new(C::JobAlreadyEnded, msg);
            body.error.status = Some(status.as_str());
            (StatusCode::CONFLICT, body)
        }
        // The server's configuration is at fault, not the client:
        // said plainly so an operator can fix it.
        J::Spawn { job_id, source } => {
            let mut body = ErrorBody::new(C::SpawnFailed, msg);
            body.error.job_id = Some(*job_id);
            body.error.program = match source {
                SpawnError::Program { program, .. } => Some(program.clone()),
                SpawnError::Log { .. }
                | SpawnError::Output { .. }
                | SpawnError::Identity { .. } => None,
            };
            (StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        J::ShuttingDown => plain(StatusCode::SERVICE_UNAVAILABLE, C::ShuttingDown, msg),
        J::InsufficientStorage { .. } => plain(
            StatusCode::INSUFFICIENT_STORAGE,
            C::InsufficientStorage,
            msg,
        ),
        J::AtCapacity { .. } | J::NoNodeWithLabels { .. } | J::NotPlaced { .. } => {
            plain(StatusCode::SERVICE_UNAVAILABLE, C::AtCapacity, msg)
        }
        J::PlacedSpawn { job_id, .. } => {
            let mut body = ErrorBody::new(C::SpawnFailed, msg);
            body.error.job_id = Some(*job_id);
            (StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        J::LeaseLost => plain(StatusCode::SERVICE_UNAVAILABLE, C::DatabaseUnavailable, msg),
        J::Database(e) => database(e),
    }
}

fn recording_parts(error: &RecordingError, msg: String) -> (StatusCode, ErrorBody) {
    use ErrorCode as C;
    use RecordingError as R;
    match error {
        R::NotFound { .. } => plain(StatusCode::NOT_FOUND, C::RecordingNotFound, msg),
        R::JobNotFound { .. } => plain(StatusCode::NOT_FOUND, C::JobNotFound, msg),
        R::Busy { status, .. } => {
            let mut body = ErrorBody::new(C::RecordingBusy, msg);
            body.error.status = Some(status.as_str());
            (StatusCode::CONFLICT, body)
        }
        R::NothingToProcess { .. } => plain(StatusCode::CONFLICT, C::NothingToProcess, msg),
        R::MediaUnavailable { .. } => plain(StatusCode::NOT_FOUND, C::MediaNotFound, msg),
        R::NotYetPlayable { .. } => plain(StatusCode::CONFLICT, C::RecordingBusy, msg),
        R::NotPlayable { .. } => plain(StatusCode::UNPROCESSABLE_ENTITY, C::NotPlayable, msg),
        R::OnOtherNode { node, .. } => {
            let mut body = ErrorBody::new(C::OnOtherNode, msg);
            body.error.node = Some(node.clone());
            (StatusCode::BAD_GATEWAY, body)
        }
        R::Database(e) => database(e),
        R::LogUnreadable { .. } => internal(),
    }
}

fn json_parts(rejection: &JsonRejection) -> (StatusCode, ErrorBody) {
    use ErrorCode as C;
    let (status, code) = match rejection {
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, C::MalformedJson),
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, C::InvalidBody),
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType)
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, C::BodyTooLarge)
        }
        _ => (StatusCode::BAD_REQUEST, C::InvalidBody),
    };
    plain(status, code, rejection.body_text())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        // A limit reached is the service working as configured, not a fault.
        if body.error.code == ErrorCode::AtCapacity {
            return (
                status,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
                Json(body),
            )
                .into_response();
        }
        if status.is_server_error() {
            error!(error = %self, ?self, "request failed");
        }
        let retry = match body.error.code {
            ErrorCode::DatabaseUnavailable => Some(HeaderValue::from_static("5")),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(retry) = retry {
            response.headers_mut().insert(header::RETRY_AFTER, retry);
        }
        response
    }
}
