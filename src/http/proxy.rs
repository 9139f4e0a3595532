//! Reads of files another node holds, served through this one: the request
//! goes to that node as the client made it (its range and conditional
//! headers, its credentials) and the answer streams back as that node gave
//! it, status and headers kept. A forwarded request carries
//! `X-Recorderd-Forwarded-By`; its receiver answers from its own files and
//! never forwards it again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;

use super::ApiError;
use crate::recordings::RecordingError;

/// Names the node a request was forwarded by.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-recorderd-forwarded-by");
/// Names the node whose files answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-recorderd-node");

/// Request headers a forwarded read keeps.
const KEPT: [HeaderName; 8] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::AUTHORIZATION,
    header::ACCEPT,
];

/// Answer headers that belong to one connection, not to the answer.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Forwards reads to other nodes. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    /// Built on the first forwarded read: building it loads the system's
    /// root certificates (a directory of files read and parsed), which
    /// would otherwise delay every start-up before the first request,
    /// though most nodes never forward one.
    client: Arc<OnceLock<reqwest::Client>>,
    me: HeaderValue,
}

impl Proxy {
    pub fn new(node_id: &str) -> Self {
        // Built by the application itself, not only by `main`: an
        // application built in-process (tests, embedding) needs it too.
        crate::tls::install_crypto_provider();
        Self {
            client: Arc::new(OnceLock::new()),
            me: HeaderValue::from_str(node_id).unwrap_or(HeaderValue::from_static("unnamed")),
        }
    }

    /// The HTTP client of every forwarded read, built once.
    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                // Between two reads of a body, not for the whole of it: a
                // large file streams for as long as it takes.
                .read_timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
    }

    /// Whether `request` was forwarded by another node.
    pub fn is_forwarded(headers: &HeaderMap) -> bool {
        headers.contains_key(FORWARDED_BY)
    }

    /// Sends `request` (its path and query, the headers a read needs) to
    /// `node` at `url`, and its answer back, streamed.
    pub async fn forward(
        &self,
        what: String,
        node: String,
        url: Option<String>,
        request: Request,
    ) -> Result<Response, ApiError> {
        let unreachable = |reason: String| RecordingError::OnOtherNode {
            what: what.clone(),
            node: node.clone(),
            reason,
        };
        let Some(base) = url else {
            return Err(unreachable("it has not said where it answers".to_owned()).into());
        };
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut headers = HeaderMap::new();
        for name in KEPT {
            if let Some(value) = request.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        headers.insert(FORWARDED_BY, self.me.clone());
        let answer = self
            .client()
            .request(request.method().clone(), format!("{base}{path}"))
            .headers(headers)
            .send()
            .await
            .map_err(|e| unreachable(format!("{base}: {e}")))?;
        let mut response = Response::builder().status(answer.status());
        if let Some(out) = response.headers_mut() {
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(name) {
                    out.append(name.clone(), value.clone());
                }
            }
            if let Ok(node) = HeaderValue::from_str(&node) {
                out.insert(SERVED_BY, node);
            }
        }
        response
            .body(Body::from_stream(answer.bytes_stream()))
            .map_err(|e| unreachable(e.to_string()).into())
    }
}
