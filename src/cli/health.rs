//! `recorderd health`: asks a running server's `/readyz` over plain HTTP/1.0
//! so a container health check needs no curl in the image.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::args::HealthArgs;

pub async fn check(args: &HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let answer = tokio::time::timeout(timeout, ask(&args.address))
        .await
        .with_context(|| format!("no answer from {} within {timeout:?}", args.address))??;
    let status_line = answer.lines().next().unwrap_or_default();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        println!("ready: {body}");
        Ok(())
    } else {
        bail!("not ready ({status_line}): {body}")
    }
}

async fn ask(address: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream
        .write_all(format!("GET /readyz HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
