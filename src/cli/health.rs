//! `recorderd health`: asks a running server's `/readyz` so a container
//! health check needs no curl in the image. Exit 0 and `ready: …` when the
//! server answers 200; otherwise an error and exit 1.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::args::HealthArgs;

pub async fn check(args: &HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let answer = tokio::time::timeout(timeout, ask(&args.address))
        .await
        .with_context(|| format!("no answer from {} within {timeout:?}", args.address))??;
    if answer.status == reqwest::StatusCode::OK {
        println!("ready: {}", answer.body);
        Ok(())
    } else {
        // The status line as the server sent it, e.g. `HTTP/1.1 503
        // Service Unavailable`.
        bail!(
            "not ready ({:?} {}): {}",
            answer.version,
            answer.status,
            answer.body
        )
    }
}

/// What `/readyz` answered.
struct Answer {
    version: reqwest::Version,
    status: reqwest::StatusCode,
    body: String,
}

/// `/readyz` of the server at `address` (`host:port` or a base URL).
async fn ask(address: &str) -> anyhow::Result<Answer> {
    let base = if address.contains("://") {
        address.trim_end_matches('/').to_owned()
    } else {
        format!("http://{address}")
    };
    // The check is about this server, from next to it: a proxy named in
    // the environment for outbound traffic must not answer instead.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("setting up the HTTP client")?;
    let response = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let (version, status) = (response.version(), response.status());
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {address}"))?;
    Ok(Answer {
        version,
        status,
        body,
    })
}
