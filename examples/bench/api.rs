//! The harness as a client of the server: reading JSON, counting jobs by
//! status, starting jobs from concurrent clients, and the delay from each
//! recorder's own exit to its job's committed end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::{Value, json};
use testkit::process::Signal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::args::Ctx;
use crate::report::{Latencies, ms};
use crate::server::Server;

/// A recorder the harness started through the API.
#[derive(Debug, Clone)]
pub struct Started {
    pub job_id: i64,
    pub pid: i32,
    pub start_time: i64,
    /// Where the recorder writes the unix time (ns) just before exiting.
    pub timestamp_file: PathBuf,
}

impl Started {
    pub fn signal(&self, signal: Signal) {
        testkit::process::signal(self.pid, signal);
    }
}

pub async fn get_json(ctx: &Ctx, url: &str) -> Result<Value> {
    let response = ctx
        .client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.bytes().await.context("reading a response")?;
    ensure!(
        status.is_success(),
        "GET {url}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))
}

/// Latencies of `requests` sequential GETs of `path`, to the last byte.
pub async fn time_gets(
    ctx: &Ctx,
    server: &Server,
    path: &str,
    requests: usize,
) -> Result<Latencies> {
    let url = server.url(path);
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        times.push(time_get(ctx, &url, path).await?);
    }
    Ok(Latencies::new(times))
}

/// One GET of `url` (`path` on the server), timed in ms to its last byte.
async fn time_get(ctx: &Ctx, url: &str, path: &str) -> Result<f64> {
    let sent = Instant::now();
    let response = ctx.client.get(url).send().await.context("GET")?;
    ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let _ = response.bytes().await.context("reading an answer")?;
    Ok(ms(sent.elapsed()))
}

/// Times GETs of `path`, one every `pause`, until `done` is set (at least
/// one): a reader beside other work.
pub async fn time_gets_until(
    ctx: &Ctx,
    server: &Server,
    path: &str,
    pause: Duration,
    done: &AtomicBool,
) -> Result<Latencies> {
    let url = server.url(path);
    let mut times = Vec::new();
    while times.is_empty() || !done.load(Ordering::Relaxed) {
        times.push(time_get(ctx, &url, path).await?);
        tokio::time::sleep(pause).await;
    }
    Ok(Latencies::new(times))
}

/// Jobs whose status is `status`, without reconciling (never `active`).
pub async fn count_with_status(ctx: &Ctx, server: &Server, status: &str) -> Result<u64> {
    let body = get_json(
        ctx,
        &server.url(&format!(
            "/api/recordings/jobs/?status={status}&page_size=1"
        )),
    )
    .await?;
    body["count"]
        .as_u64()
        .ok_or_else(|| anyhow!("no count in {body}"))
}

/// The count `active` reports.
pub async fn active_count(ctx: &Ctx, server: &Server) -> Result<f64> {
    let active = get_json(ctx, &server.url("/api/recordings/jobs/active/")).await?;
    Ok(active["count"].as_f64().unwrap_or(f64::NAN))
}

/// Waits until no job is `running` any more; false on timeout.
pub async fn wait_none_running(ctx: &Ctx, server: &Server, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if count_with_status(ctx, server, "running").await? == 0 {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_one(client: &reqwest::Client, url: &str, i: usize) -> Result<(Duration, Started)> {
    // An address, not a name: each start checks where its source may go,
    // and a name the resolver does not know (as `stream` here) would
    // measure the resolver's timeouts instead of recorderd.
    let body = json!({ "source": format!("bench://127.0.0.1/{i}"), "profile": "bench" });
    let sent = Instant::now();
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .context("POST start")?;
    let status = response.status();
    let bytes = response.bytes().await.context("reading a start answer")?;
    let latency = sent.elapsed();
    ensure!(
        status == reqwest::StatusCode::CREATED,
        "start answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let value: Value = serde_json::from_slice(&bytes).context("start answer is not JSON")?;
    let job = &value["job"];
    let started = Started {
        job_id: job["id"].as_i64().context("no job id")?,
        pid: job["process_id"].as_i64().context("no process_id")? as i32,
        start_time: job["process_start_time"]
            .as_i64()
            .context("no process_start_time")?,
        timestamp_file: PathBuf::from(format!(
            "{}.exited",
            value["recording"]["output_path"]
                .as_str()
                .context("no output_path")?
        )),
    };
    Ok((latency, started))
}

/// What a batch of starts gave: the jobs (in no particular order), each
/// start's latency and the wall time in all.
pub struct Batch {
    pub started: Vec<Started>,
    pub latencies: Latencies,
    pub elapsed: Duration,
}

impl Batch {
    pub fn per_second(&self) -> f64 {
        self.started.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Starts `n` jobs from the run's concurrent clients, numbering their
/// sources from `first`.
pub async fn start_batch(ctx: &Ctx, server: &Server, first: usize, n: usize) -> Result<Batch> {
    let url = server.url("/api/recordings/jobs/start/");
    let next = Arc::new(AtomicUsize::new(first));
    let end = first + n;
    let mut tasks = JoinSet::new();
    let began = Instant::now();
    for _ in 0..ctx.args.clients.max(1) {
        let client = ctx.client.clone();
        let url = url.clone();
        let next = next.clone();
        tasks.spawn(async move {
            // What a client started stays known when it then fails: the
            // harness stops those recorders before it exits.
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return (out, None);
                }
                match start_one(&client, &url, i).await {
                    Ok(one) => out.push(one),
                    Err(e) => return (out, Some(e)),
                }
            }
        });
    }
    let mut started = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((batch, error)) => {
                for (latency, s) in batch {
                    latencies.push(ms(latency));
                    started.push(s);
                }
                if let Some(e) = error {
                    failure = Some(e);
                }
            }
            Err(e) => failure = Some(e.into()),
        }
    }
    let elapsed = began.elapsed();
    ctx.remember(started.iter().map(|s| (s.pid, s.start_time)));
    if let Some(e) = failure {
        return Err(e.context(format!("starting {n} jobs ({} started)", started.len())));
    }
    Ok(Batch {
        started,
        latencies: Latencies::new(latencies),
        elapsed,
    })
}

/// Delay from each recorder's own "exiting now" timestamp to its job's
/// `completed_at`, in ms; how many jobs ended and the spread of the
/// recorders' exit timestamps.
pub struct Delays {
    pub delays: Latencies,
    pub ended: usize,
    pub exit_spread_ms: f64,
}

impl Delays {
    /// From pairs of (exit, committed) unix times in ns.
    pub fn from_pairs(pairs: &[(i128, i128)], ended: usize) -> Self {
        let first = pairs.iter().map(|p| p.0).min();
        let last = pairs.iter().map(|p| p.0).max();
        Self {
            delays: Latencies::new(
                pairs
                    .iter()
                    .map(|(exited, done)| (done - exited) as f64 / 1e6)
                    .collect(),
            ),
            ended,
            exit_spread_ms: match (first, last) {
                (Some(first), Some(last)) => (last - first) as f64 / 1e6,
                _ => f64::NAN,
            },
        }
    }
}

/// The unix time (ns) a recorder wrote just before exiting, if it did.
pub fn exit_timestamp(file: &std::path::Path) -> Option<i128> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse::<i128>().ok())
}

pub async fn exit_delays(ctx: &Ctx, server: &Server, batch: &[Started]) -> Result<Delays> {
    let mut pairs = Vec::with_capacity(batch.len());
    let mut ended = 0;
    for s in batch {
        let job = get_json(
            ctx,
            &server.url(&format!("/api/recordings/jobs/{}/", s.job_id)),
        )
        .await?;
        let Some(completed_at) = job["completed_at"].as_str() else {
            continue;
        };
        ended += 1;
        let completed = OffsetDateTime::parse(completed_at, &Rfc3339)
            .with_context(|| format!("completed_at {completed_at}"))?
            .unix_timestamp_nanos();
        if let Some(exited) = exit_timestamp(&s.timestamp_file) {
            pairs.push((exited, completed));
        }
    }
    Ok(Delays::from_pairs(&pairs, ended))
}
