//! Access control: with an API token configured, every `/api` call (and
//! `/metrics`, unless opened) must carry it. Compared in constant time so
//! response timing says nothing about how much of a guess was right.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ErrorBody, ErrorCode};

/// What the middleware needs to decide.
#[derive(Clone)]
pub struct AccessPolicy {
    pub token: Option<Arc<str>>,
    pub open_metrics: bool,
}

pub async fn require_token(
    State(policy): State<AccessPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &policy.token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let protected =
        path.starts_with("/api") || path == "/" || (path == "/metrics" && !policy.open_metrics);
    if !protected {
        return next.run(request).await;
    }
    let presented = bearer(&request).or_else(|| query_token(&request));
    match presented {
        Some(candidate) if tokens_match(&candidate, token) => next.run(request).await,
        Some(_) => unauthorized("the API token is wrong"),
        None => unauthorized(
            "an API token is required: send `Authorization: Bearer <token>` (or `?access_token=` for event streams)",
        ),
    }
}

fn bearer(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_token(request: &Request) -> Option<String> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .map(|t| t.to_owned())
}

fn unauthorized(message: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(ErrorBody::new(ErrorCode::Unauthorized, message)),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"recorderd\""),
    );
    response
}

/// Equal tokens, taking the same time whatever the first difference.
/// `ct_eq` answers a length mismatch at once, which would tell a prober the
/// token's length: comparing digests of a fixed length does not.
fn tokens_match(candidate: &str, token: &str) -> bool {
    let candidate = Sha256::digest(candidate.as_bytes());
    let token = Sha256::digest(token.as_bytes());
    candidate.as_slice().ct_eq(token.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(tokens_match("0123456789abcdef", "0123456789abcdef"));
        assert!(!tokens_match("0123456789abcdeF", "0123456789abcdef"));
        assert!(!tokens_match("0123456789abcde", "0123456789abcdef"));
        assert!(!tokens_match("0123456789abcdef0", "0123456789abcdef"));
        assert!(!tokens_match("", "0123456789abcdef"));
    }
}
