//! `recorderd health`: asks a running server's `/readyz` so a health check
//! needs no curl. Exit 0 and `ready: …` when the server answers 200;
//! otherwise an error and exit 1. It takes the flags of every client
//! command, and without `--url` asks the server `RECORDERD_BIND` names:
//! a container's health check follows the address the server was given.

use std::time::Duration;

use anyhow::{Context, bail};

use super::client::Client;
use crate::cli::args::ClientArgs;

/// A health check answers quickly or not at all.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args, HEALTH_TIMEOUT)?;
    // The check is about this server, from next to it: a proxy named in
    // the environment for outbound traffic must not answer instead.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(client.timeout)
        .build()
        .context("setting up the HTTP client")?;
    let response = http
        .get(format!("{}/readyz", client.base))
        .send()
        .await
        .with_context(|| {
            format!(
                "no answer from {} within {} s",
                client.base,
                client.timeout.as_secs()
            )
        })?;
    let (version, status) = (response.version(), response.status());
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {}", client.base))?;
    if status == reqwest::StatusCode::OK {
        if client.json() {
            println!("{body}");
        } else {
            println!("ready: {body}");
        }
        Ok(())
    } else {
        // The status line as the server sent it, e.g. `HTTP/1.1 503
        // Service Unavailable`.
        bail!("not ready ({version:?} {status}): {body}")
    }
}
