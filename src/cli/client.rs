//! The HTTP client the command-line commands share: where the server is
//! (`--url`, else what `RECORDERD_BIND` says, else 127.0.0.1:8000), its
//! token, a timeout on every exchange, and the server's error message as
//! the command's error.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cli::args::{ClientArgs, OutputFormat};

/// Where a client looks when told nothing.
const DEFAULT_URL: &str = "http://127.0.0.1:8000";
/// Seconds to wait for the server, unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    http: reqwest::Client,
    pub base: String,
    token: Option<String>,
    pub timeout: Duration,
    pub format: OutputFormat,
}

impl Client {
    /// A client for `args`, waiting `default_timeout` unless told otherwise.
    pub fn new(args: &ClientArgs, default_timeout: Duration) -> anyhow::Result<Self> {
        let timeout = args.timeout.map_or(default_timeout, Duration::from_secs);
        // Each read of an answer (a stream's next event, a download's next
        // bytes) waits at most this long; whole answers get `timeout` too
        // (see `send`).
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build()
            .context("setting up the HTTP client")?;
        Ok(Self {
            http,
            base: base_url(
                args.url.as_deref(),
                std::env::var("RECORDERD_BIND").ok().as_deref(),
            ),
            token: args.token.clone().filter(|t| !t.is_empty()),
            timeout,
            format: if args.json {
                OutputFormat::Json
            } else {
                args.output
            },
        })
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and reads its answer, within the timeout; a refusal
    /// becomes an error with the server's message.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = self.answer(request.timeout(self.timeout)).await?;
        let status = response.status();
        response.json().await.with_context(|| {
            format!("the server answered {status} with something that is not JSON")
        })
    }

    /// The response to a request once it is a success, its body unread
    /// (for streams and downloads); else the server's message as an error.
    pub async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        bail!("{status}: {message}")
    }

    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        let what = if error.is_timeout() {
            format!(
                "no answer from recorderd at {} within {} s",
                self.base,
                self.timeout.as_secs()
            )
        } else {
            format!("cannot reach recorderd at {}", self.base)
        };
        anyhow::Error::new(error).context(what)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    /// A `DELETE` says JSON although it has no body: the server asks it of
    /// every call that changes something, which a cross-site form cannot.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(
            self.request(reqwest::Method::DELETE, path)
                .header(reqwest::header::CONTENT_TYPE, "application/json"),
        )
        .await
    }

    /// Prints the server's JSON (pretty) when the output is JSON.
    pub fn print_json(&self, body: &Value) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(body)?);
        Ok(())
    }
}

/// The server's base URL: `--url`/`RECORDERD_URL`; else the address the
/// server binds (`RECORDERD_BIND`, as in its container or unit), asked on
/// loopback when it binds every address; else the default.
pub fn base_url(url: Option<&str>, bind: Option<&str>) -> String {
    if let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) {
        let url = url.trim_end_matches('/');
        // `host:port`, as `health --address` took it.
        return if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
    }
    let Some(mut address) = bind.and_then(|b| b.trim().parse::<SocketAddr>().ok()) else {
        return DEFAULT_URL.to_owned();
    };
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{address}")
}

/// `path` with a query of the pairs whose value is given.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            query.append_pair(key, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_from_the_flag_else_from_where_the_server_binds() {
        assert_eq!(
            base_url(Some("http://h:1/"), Some("0.0.0.0:9")),
            "http://h:1"
        );
        assert_eq!(base_url(Some("h:1"), None), "http://h:1");
        assert_eq!(
            base_url(None, Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(base_url(None, Some("[::]:9000")), "http://[::1]:9000");
        assert_eq!(base_url(None, Some("10.0.0.2:80")), "http://10.0.0.2:80");
        assert_eq!(base_url(None, Some("nonsense")), DEFAULT_URL);
        assert_eq!(base_url(Some(" "), None), DEFAULT_URL);
    }

    #[test]
    fn queries_are_encoded_and_absent_values_left_out() {
        assert_eq!(
            with_query(
                "/a",
                &[("q", Some("fox & \"dog\"".to_owned())), ("status", None)]
            ),
            "/a?q=fox+%26+%22dog%22"
        );
        assert_eq!(with_query("/a", &[("status", None)]), "/a");
    }
}
