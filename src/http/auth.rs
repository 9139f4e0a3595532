//! Who may do what, checked before any handler runs, in this order:
//!
//! 1. `Host` must be a name this server answers to when it listens on
//!    loopback or has `--public-names` (421): a page whose domain was
//!    pointed at 127.0.0.1 (DNS rebinding) is not "local".
//! 2. With tokens configured, every `/api` call, the dashboard and (unless
//!    opened) `/metrics` need one (401); a `read` token may only `GET`
//!    (403). The token comes from `Authorization: Bearer`, or from
//!    `?access_token=` (percent-decoded) on a `GET`, for what a browser
//!    opens without headers (the dashboard, event streams, media).
//! 3. A state-changing request (`POST`, `DELETE`, …) must say
//!    `Content-Type: application/json` (415): no cross-site form can, so
//!    no page a user visits can trigger one through their browser.
//!
//! The probes (`/healthz`, `/readyz`) pass untouched. Requests that act
//! are logged with the name of their token, never the token itself.

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, info, info_span};

use super::error::{ErrorBody, ErrorCode};
use crate::access::{ApiToken, PublicNames, Role, Tokens};

/// What the middleware needs to decide.
#[derive(Clone)]
pub struct AccessPolicy {
    pub tokens: Arc<Tokens>,
    pub public_names: Arc<PublicNames>,
    pub open_metrics: bool,
}

pub async fn guard(State(policy): State<AccessPolicy>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if matches!(path.as_str(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let host = host_of(&request);
    if !policy.public_names.allows(host.as_deref()) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::HostNotAllowed,
            &format!(
                "`Host: {}` is not a name this server answers to ({}); add it to \
                 --public-names (RECORDERD_PUBLIC_NAMES) if clients use it",
                host.as_deref().unwrap_or_default(),
                policy.public_names.describe()
            ),
        );
    }
    let method = request.method().clone();
    let changes_state = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let protected =
        path.starts_with("/api") || path == "/" || (path == "/metrics" && !policy.open_metrics);
    let caller = if policy.tokens.is_empty() || !protected {
        None
    } else {
        match authenticate(&policy.tokens, &request, changes_state) {
            Ok(token) => Some(token.clone()),
            Err(why) => return unauthorized(why),
        }
    };
    if changes_state {
        if let Some(token) = caller.as_ref().filter(|t| t.role < Role::Write) {
            info!(token = %token.name, %method, %path, "refused: the token may only read");
            return refuse(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                &format!(
                    "token `{}` has the role `{}`: {method} {path} needs a token with the role `write`",
                    token.name, token.role
                ),
            );
        }
        // The methods handlers take bodies with; another method (a
        // client's invention) is answered 405 by the router.
        let writes = matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        let routed = request.extensions().get::<MatchedPath>().is_some();
        if writes && routed && !is_json(&request) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "requests that change something must be sent with `Content-Type: application/json` \
                 (the body may be empty where none is needed): a cross-site form cannot send it, \
                 so no other site can make a browser do this",
            );
        }
    }
    let Some(token) = caller else {
        return next.run(request).await;
    };
    let span = info_span!("api", token = %token.name);
    let response = next.run(request).instrument(span).await;
    // What a token did, for the record; refusals (a 4xx) changed nothing.
    if changes_state && response.status().is_success() {
        info!(token = %token.name, %method, %path, status = response.status().as_u16(), "request by token");
    }
    response
}

/// The token a request carries, or why it is refused.
fn authenticate<'a>(
    tokens: &'a Tokens,
    request: &Request,
    changes_state: bool,
) -> Result<&'a ApiToken, &'static str> {
    let from_query = query_token(request);
    let presented = match (bearer(request), from_query) {
        (Some(token), _) => token,
        (None, Some(token)) if !changes_state => token,
        (None, Some(_)) => {
            return Err(
                "a token in the query string is only accepted on GET requests: send \
                 `Authorization: Bearer <token>`",
            );
        }
        (None, None) => {
            return Err(
                "an API token is required: send `Authorization: Bearer <token>` (or \
                 `?access_token=` on a GET, as for event streams)",
            );
        }
    };
    tokens.find(&presented).ok_or("the API token is wrong")
}

/// The `Host` a request names: its header, or the authority of its URI
/// (HTTP/2, absolute-form requests).
fn host_of(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
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

/// `?access_token=`, percent-decoded: base64 tokens hold `+`, `/` and `=`,
/// which a browser's `encodeURIComponent` sends as `%2B`, `%2F`, `%3D`. A
/// `+` left as it is stays a `+` (tokens hold no spaces).
fn query_token(request: &Request) -> Option<String> {
    let raw = request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))?;
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|t| t.into_owned())
}

/// `application/json`, or a `+json` type, whatever its parameters.
fn is_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn refuse(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = refuse(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"recorderd\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(uri: &str, content_type: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().uri(uri);
        if let Some(value) = content_type {
            builder = builder.header(header::CONTENT_TYPE, value);
        }
        builder.body(Body::empty()).expect("a request")
    }

    #[test]
    fn query_tokens_are_percent_decoded_and_plus_stays_plus() {
        let token = |uri: &str| query_token(&request(uri, None));
        assert_eq!(
            token("/x?last_event_id=3&access_token=Zm9v%2BYmFy%2FYmF6%3D").as_deref(),
            Some("Zm9v+YmFy/YmF6=")
        );
        assert_eq!(token("/x?access_token=a+b").as_deref(), Some("a+b"));
        assert_eq!(token("/x?token=a"), None);
        assert_eq!(token("/x?access_token=%FF"), None, "not UTF-8");
    }

    #[test]
    fn json_content_types_are_recognized_with_parameters() {
        for (value, json) in [
            (Some("application/json"), true),
            (Some("Application/JSON; charset=utf-8"), true),
            (Some("application/merge-patch+json"), true),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("multipart/form-data; boundary=x"), false),
            (None, false),
        ] {
            assert_eq!(is_json(&request("/", value)), json, "{value:?}");
        }
    }
}
