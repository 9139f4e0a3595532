//! The one place where errors become HTTP responses. Client mistakes are 4xx
//! with a stable `code` and a message saying what to fix; internal failures
//! are logged in full and answered with an opaque 500.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::error;

use crate::jobs::JobError;
use crate::supervisor::SpawnError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Every error an API handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Job(#[from] JobError),
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
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String, Option<Value>) {
        use JobError as J;
        let msg = self.to_string();
        match self {
            Self::Job(job) => match job {
                J::UnknownProfile { .. } => (StatusCode::BAD_REQUEST, "unknown_profile", msg, None),
                J::InvalidSource { .. } => (StatusCode::BAD_REQUEST, "invalid_source", msg, None),
                J::InvalidField { field, .. } => (
                    StatusCode::BAD_REQUEST,
                    "invalid_field",
                    msg,
                    Some(json!({ "field": field })),
                ),
                J::JobNotFound { .. } => (StatusCode::NOT_FOUND, "job_not_found", msg, None),
                J::RecordingNotFound { .. } => {
                    (StatusCode::NOT_FOUND, "recording_not_found", msg, None)
                }
                J::JobAlreadyEnded { status, .. } => (
                    StatusCode::CONFLICT,
                    "job_already_ended",
                    msg,
                    Some(json!({ "status": status.as_str() })),
                ),
                // The server's configuration is at fault, not the client:
                // said plainly so an operator can fix it.
                J::Spawn { job_id, source } => {
                    let program = match source {
                        SpawnError::Program { program, .. } => Some(program.clone()),
                        SpawnError::Log { .. } | SpawnError::Identity { .. } => None,
                    };
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "spawn_failed",
                        msg,
                        Some(json!({ "job_id": job_id, "program": program })),
                    )
                }
                J::RecordingBusy { status, .. } => (
                    StatusCode::CONFLICT,
                    "recording_busy",
                    msg,
                    Some(json!({ "status": status.as_str() })),
                ),
                J::NothingToProcess { .. } => {
                    (StatusCode::CONFLICT, "nothing_to_process", msg, None)
                }
                J::MediaUnavailable { .. } => (StatusCode::NOT_FOUND, "media_not_found", msg, None),
                J::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg, None),
                J::LogUnreadable { .. } | J::Database(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; see the server log".to_owned(),
                    None,
                ),
            },
            Self::Json(rejection) => {
                let (status, code) = match rejection {
                    JsonRejection::JsonSyntaxError(_) => {
                        (StatusCode::BAD_REQUEST, "malformed_json")
                    }
                    JsonRejection::JsonDataError(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
                    }
                    JsonRejection::MissingJsonContentType(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                    }
                    other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
                    }
                    other => (other.status(), "invalid_body"),
                };
                (status, code, rejection.body_text(), None)
            }
            Self::Path(rejection) => (
                StatusCode::BAD_REQUEST,
                "invalid_path",
                rejection.body_text(),
                None,
            ),
            Self::Query(rejection) => (
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
                None,
            ),
            Self::BadQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query", msg, None),
            Self::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found", msg, None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                msg,
                None,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        if status.is_server_error() {
            error!(error = %self, ?self, "request failed");
        }
        let mut error = json!({ "code": code, "message": message });
        if let (Some(Value::Object(details)), Some(obj)) = (details, error.as_object_mut()) {
            obj.extend(details);
        }
        (status, Json(json!({ "success": false, "error": error }))).into_response()
    }
}
