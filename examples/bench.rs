//! The benchmark harness ("Benchmarks and the performance budget"): starts
//! the real server binary on port 0 with a fresh data directory and
//! database, drives it over HTTP like a client, with real recorder
//! processes (`examples/test_recorder.rs`), and prints each figure beside
//! its target: a table, and one JSON line per figure.
//!
//! ```text
//! bench [--scale N] [--quick] [--clients N] [--server PATH]
//!       [--recorder PATH] [--database-url URL] [--keep]
//! ```
//!
//! `cargo bench` builds the release binaries and runs this with the same
//! arguments (see `benches/harness.rs`); BENCHMARKS.md explains each
//! workload and records the figures of a run.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use procfs::process::Process;
use recorderd::entity::{JobStatus, RecordingStatus, recording, recording_job};
use rustix::process::{Pid, kill_process_group};
use sea_orm::ActiveValue::Set;
use sea_orm::{Database, DatabaseConnection, EntityTrait, TransactionTrait};
use serde_json::{Value, json};
use testkit::process::{Signal, is_alive_as};
use testkit::profiles::RecorderProfile;
use testkit::server::{ServeConfig, listening_address, serve_command};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

/// Benchmarks recorderd against its performance budget.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Number of recorders (stored jobs for listing and recovery: 10×N).
    #[arg(long, default_value_t = 1000)]
    scale: usize,
    /// Shorter measuring windows and fewer requests (for smoke tests).
    #[arg(long)]
    quick: bool,
    /// Concurrent clients of the start workload.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Server binary (default: `../recorderd` beside this harness's
    /// directory, i.e. target/<profile>/recorderd).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Recorder binary (default: `test_recorder` beside this harness).
    #[arg(long)]
    recorder: Option<PathBuf>,
    /// Admin URL of a PostgreSQL server: a uniquely named database is
    /// created there. Without it, a fresh SQLite file is used.
    #[arg(long, env = "RECORDERD_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Keep the temporary directory (server logs, recorder output).
    #[arg(long)]
    keep: bool,
}

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtMost(f64),
    Below(f64),
    AtLeast(f64),
    Exactly(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtMost(t) => value <= t,
            Self::Below(t) => value < t,
            Self::AtLeast(t) => value >= t,
            Self::Exactly(t) => value == t,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AtMost(t) => format!("<= {}", fmt_num(t)),
            Self::Below(t) => format!("< {}", fmt_num(t)),
            Self::AtLeast(t) => format!(">= {}", fmt_num(t)),
            Self::Exactly(t) => format!("= {}", fmt_num(t)),
        }
    }
}

struct Figure {
    workload: &'static str,
    figure: String,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Everything the figures are written to.
#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn add(
        &mut self,
        workload: &'static str,
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Option<Target>,
    ) {
        let figure = Figure {
            workload,
            figure: figure.into(),
            value,
            unit,
            target,
        };
        let line = json!({
            "workload": figure.workload,
            "figure": figure.figure,
            "value": if value.is_finite() { json!(value) } else { Value::Null },
            "unit": figure.unit,
            "target": target.map(Target::describe),
            "met": target.map(|t| t.met(value)),
        });
        println!("{line}");
        self.figures.push(figure);
    }

    fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.workload.to_owned(),
                    f.figure.clone(),
                    format!("{} {}", fmt_num(f.value), f.unit),
                    f.target
                        .map(|t| format!("{} {}", t.describe(), f.unit))
                        .unwrap_or_default(),
                    match f.target {
                        Some(t) if t.met(f.value) => "yes".to_owned(),
                        Some(_) => "**NO**".to_owned(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let header = ["workload", "figure", "value", "target", "met"];
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// A recorder the harness started through the API.
#[derive(Debug, Clone)]
struct Started {
    job_id: i64,
    pid: i32,
    start_time: i64,
    /// Where the recorder writes the unix time (ns) just before exiting.
    timestamp_file: PathBuf,
}

/// Shared state of one run.
struct Ctx {
    args: Args,
    server_bin: PathBuf,
    recorder_bin: PathBuf,
    dir: PathBuf,
    database_url: String,
    /// Name of the PostgreSQL database created for this run, and the admin
    /// URL it was created through.
    postgres: Option<(String, String)>,
    client: reqwest::Client,
    /// Every recorder started, so that none outlives the harness.
    recorders: Mutex<Vec<(i32, i64)>>,
    servers_started: AtomicUsize,
    clk_tck: f64,
}

impl Ctx {
    fn n(&self) -> usize {
        self.args.scale
    }

    fn stored(&self) -> usize {
        self.args.scale * 10
    }

    fn remember(&self, batch: &[Started]) {
        let mut list = self
            .recorders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        list.extend(batch.iter().map(|s| (s.pid, s.start_time)));
    }

    /// SIGKILLs the process group of every recorder still alive whose start
    /// time still matches (a PID reused meanwhile is never signalled).
    fn kill_leftover_recorders(&self) -> usize {
        let list = self
            .recorders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut killed = 0;
        for &(pid, start) in list.iter() {
            if is_alive_as(pid, start)
                && let Some(group) = Pid::from_raw(pid)
            {
                let _ = kill_process_group(group, Signal::KILL);
                killed += 1;
            }
        }
        killed
    }
}

/// A running server process.
struct Server {
    child: Option<Child>,
    pid: i32,
    base: String,
    /// From spawning the process to its "listening on" log line.
    listening_after: Duration,
    spawned_at: Instant,
    log: PathBuf,
}

impl Server {
    fn start(ctx: &Ctx) -> Result<Self> {
        let n = ctx.servers_started.fetch_add(1, Ordering::Relaxed);
        let log = ctx.dir.join(format!("server-{n}.log"));
        let mut file = File::create(&log).context("creating the server log")?;
        let (data_dir, profiles) = (ctx.dir.join("data"), ctx.dir.join("profiles.toml"));
        let mut command = serve_command(
            &ctx.server_bin,
            &[],
            ServeConfig {
                data_dir: &data_dir,
                profiles: &profiles,
                database_url: &ctx.database_url,
            },
        );
        // Far above any number of recorders this run starts: the harness
        // measures the server, not its `--max-jobs` default.
        command.args(["--max-jobs", "1000000"]);
        command.stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", ctx.server_bin.display()))?;
        let pid = child.id() as i32;
        let stderr = child
            .stderr
            .take()
            .context("the server's standard error is not piped")?;
        // The log is drained continuously (a full pipe would block the
        // server) and the "listening on" line is reported the moment it is
        // read: start-up is measured to the line, not to a poll of a file.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if !sent && let Some(address) = listening_address(&String::from_utf8_lossy(&line)) {
                    let _ = tx.send((Instant::now(), address));
                    sent = true;
                }
                let _ = file.write_all(&line);
            }
        });
        let mut server = Self {
            child: Some(child),
            pid,
            base: String::new(),
            listening_after: Duration::ZERO,
            spawned_at,
            log,
        };
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok((at, address)) => {
                server.base = format!("http://{address}");
                server.listening_after = at - spawned_at;
                Ok(server)
            }
            Err(e) => {
                server.kill();
                bail!(
                    "the server did not listen ({e}); its log:\n{}",
                    tail(&server.log)
                )
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, as a crash would: recorders run on.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (the server stops its recorders and commits their ends), then
    /// SIGKILL if it has not exited within `timeout`.
    async fn terminate(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        testkit::process::signal(self.pid, Signal::TERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().context("waiting for the server")? {
                ensure!(
                    status.success(),
                    "the server exited with {status}; its log:\n{}",
                    tail(&self.log)
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// utime + stime of `pid`, in clock ticks: the process's line in
/// `/proc/<pid>/stat` already sums them over every thread.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = Process::new(pid).and_then(|p| p.stat()).ok()?;
    Some(stat.utime + stat.stime)
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: i32) -> Result<u64> {
    Process::new(pid)
        .and_then(|p| p.status())
        .with_context(|| format!("reading /proc/{pid}/status"))?
        .vmrss
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn clock_ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn get_json(ctx: &Ctx, url: &str) -> Result<Value> {
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

/// Jobs whose status is `status`, without reconciling (never `active`).
async fn count_with_status(ctx: &Ctx, server: &Server, status: &str) -> Result<u64> {
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

/// Waits until no job is `running` any more; false on timeout.
async fn wait_none_running(ctx: &Ctx, server: &Server, timeout: Duration) -> Result<bool> {
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
    let body = json!({ "source": format!("bench://stream/{i}"), "profile": "bench" });
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

/// Starts `n` jobs from `clients` concurrent clients. Returns the jobs (in
/// no particular order), each start's latency and the wall time in all.
async fn start_batch(
    ctx: &Ctx,
    server: &Server,
    n: usize,
) -> Result<(Vec<Started>, Vec<f64>, Duration)> {
    let url = server.url("/api/recordings/jobs/start/");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let began = Instant::now();
    for _ in 0..ctx.args.clients.max(1) {
        let client = ctx.client.clone();
        let url = url.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                out.push(start_one(&client, &url, i).await?);
            }
        });
    }
    let mut started = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(batch) => {
                for (latency, s) in batch {
                    latencies.push(ms(latency));
                    started.push(s);
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    let elapsed = began.elapsed();
    ctx.remember(&started);
    if let Some(e) = failure {
        return Err(e.context(format!("starting {n} jobs ({} started)", started.len())));
    }
    Ok((started, latencies, elapsed))
}

fn signal_recorder(s: &Started, signal: Signal) {
    testkit::process::signal(s.pid, signal);
}

/// Delay from each recorder's own "exiting now" timestamp to its job's
/// `completed_at`, in ms; plus how many jobs ended and the spread of the
/// recorders' exit timestamps.
struct Delays {
    delays_ms: Vec<f64>,
    ended: usize,
    exit_spread_ms: f64,
}

async fn exit_delays(ctx: &Ctx, server: &Server, batch: &[Started]) -> Result<Delays> {
    let mut delays = Vec::with_capacity(batch.len());
    let mut ended = 0;
    let (mut first, mut last) = (i128::MAX, i128::MIN);
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
        let Some(exited) = std::fs::read_to_string(&s.timestamp_file)
            .ok()
            .and_then(|t| t.trim().parse::<i128>().ok())
        else {
            continue;
        };
        first = first.min(exited);
        last = last.max(exited);
        delays.push((completed - exited) as f64 / 1e6);
    }
    Ok(Delays {
        delays_ms: sorted(delays),
        ended,
        exit_spread_ms: if last >= first {
            (last - first) as f64 / 1e6
        } else {
            f64::NAN
        },
    })
}

fn report_delays(
    report: &mut Report,
    workload: &'static str,
    n: usize,
    d: &Delays,
    p99_target_ms: f64,
) {
    report.add(
        workload,
        "transitions committed",
        d.ended as f64,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    report.add(
        workload,
        "recorders' exit spread",
        d.exit_spread_ms,
        "ms",
        None,
    );
    report.add(
        workload,
        "delay p50",
        percentile(&d.delays_ms, 0.50),
        "ms",
        None,
    );
    report.add(
        workload,
        "delay p99",
        percentile(&d.delays_ms, 0.99),
        "ms",
        Some(Target::AtMost(p99_target_ms)),
    );
    report.add(
        workload,
        "delay max",
        d.delays_ms.last().copied().unwrap_or(f64::NAN),
        "ms",
        None,
    );
}

fn profiles_toml(ctx: &Ctx) -> String {
    // The safety net: no recorder outlives a crashed harness by much.
    let lifetime = if ctx.args.quick { 60 } else { 120 } + ctx.n() / 10;
    let bench = RecorderProfile::new("bench", &ctx.recorder_bin, "bench", lifetime as u64)
        .args(["--timestamp-file", "{output}.exited"])
        .set("stop_signal", "\"SIGINT\"")
        .set("stop_grace_seconds", "2")
        .set("post_processing", "[]");
    format!("default_profile = \"bench\"\n{}", bench.to_toml())
}

/// Inserts `count` recordings with one job each, in one transaction:
/// ended jobs (history), or `running` jobs whose process is gone.
async fn insert_rows(ctx: &Ctx, count: usize, dead_pids: Option<&[i32]>) -> Result<()> {
    let db: DatabaseConnection = Database::connect(&ctx.database_url)
        .await
        .context("connecting to the benchmark database")?;
    let now = OffsetDateTime::now_utc();
    let txn = db.begin().await?;
    let history = ctx.dir.join("history");
    for i in 0..count {
        let (recording_status, job_status) = match dead_pids {
            None => (RecordingStatus::Ready, JobStatus::Completed),
            Some(_) => (RecordingStatus::Recording, JobStatus::Running),
        };
        let recording_id = recording::Entity::insert(recording::ActiveModel {
            title: Set(format!("stored {i}")),
            source: Set(format!("bench://stored/{i}")),
            profile: Set("bench".into()),
            status: Set(recording_status),
            output_path: Set(history
                .join(format!("stored-{i}.txt"))
                .display()
                .to_string()),
            error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?
        .last_insert_id;
        let (pid, start, exit_code, completed_at) = match dead_pids {
            None => (None, None, Some(0), Some(now)),
            Some(pids) => (Some(pids[i % pids.len()]), Some(1), None, None),
        };
        recording_job::Entity::insert(recording_job::ActiveModel {
            recording_id: Set(recording_id),
            status: Set(job_status),
            process_id: Set(pid),
            process_start_time: Set(start),
            exit_code: Set(exit_code),
            started_at: Set(now),
            completed_at: Set(completed_at),
            log_path: Set(history
                .join(format!("stored-{i}.log"))
                .display()
                .to_string()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    db.close().await?;
    Ok(())
}

/// PIDs that no process has now (the highest free ones).
fn dead_pids(count: usize) -> Vec<i32> {
    let max = procfs::sys::kernel::pid_max().unwrap_or(32768);
    (2..max)
        .rev()
        .filter(|pid| Process::new(*pid).is_err())
        .take(count)
        .collect()
}

fn phase(text: &str) {
    eprintln!("bench: {text}");
}

async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let n = ctx.n();
    let stored = ctx.stored();
    let quick = ctx.args.quick;

    phase(&format!("migrating and storing {stored} ended jobs"));
    let migrate = Command::new(&ctx.server_bin)
        .arg("migrate")
        .arg("--data-dir")
        .arg(ctx.dir.join("data"))
        .args(["--database-url", &ctx.database_url])
        .env("RUST_LOG", "warn")
        .output()
        .context("running recorderd migrate")?;
    ensure!(
        migrate.status.success(),
        "recorderd migrate failed: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    insert_rows(ctx, stored, None).await?;

    let mut server = Server::start(ctx)?;
    report.add(
        "5 recovery",
        format!("start → listening, nothing to recover ({stored} ended jobs stored)"),
        ms(server.listening_after),
        "ms",
        None,
    );
    for _ in 0..20 {
        get_json(ctx, &server.url("/healthz")).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(server.pid)?;

    // 2. Start throughput.
    phase(&format!(
        "2: starting {n} jobs from {} clients",
        ctx.args.clients
    ));
    let (batch, latencies, elapsed) = start_batch(ctx, &server, n).await?;
    let latencies = sorted(latencies);
    report.add(
        "2 start",
        format!("throughput ({n} jobs, {} clients)", ctx.args.clients),
        n as f64 / elapsed.as_secs_f64(),
        "jobs/s",
        Some(Target::AtLeast(500.0)),
    );
    report.add(
        "2 start",
        "start latency p50",
        percentile(&latencies, 0.5),
        "ms",
        None,
    );
    report.add(
        "2 start",
        "start latency p99",
        percentile(&latencies, 0.99),
        "ms",
        None,
    );

    // 3. Memory and idle cost.
    phase("3: memory and idle CPU");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_running = rss_kib(server.pid)?;
    report.add(
        "3 memory",
        "server RSS idle",
        rss_idle as f64 / 1024.0,
        "MiB",
        None,
    );
    report.add(
        "3 memory",
        format!("server RSS with {n} recorders"),
        rss_running as f64 / 1024.0,
        "MiB",
        Some(Target::AtMost(64.0)),
    );
    report.add(
        "3 memory",
        "RSS increment per recorder",
        rss_running.saturating_sub(rss_idle) as f64 / n.max(1) as f64,
        "KiB",
        None,
    );
    let window = Duration::from_secs(if quick { 3 } else { 10 });
    let recorder_ticks =
        |batch: &[Started]| -> u64 { batch.iter().filter_map(|s| cpu_ticks(s.pid)).sum::<u64>() };
    let server_before = cpu_ticks(server.pid).context("reading the server's CPU time")?;
    let recorders_before = recorder_ticks(&batch);
    let began = Instant::now();
    tokio::time::sleep(window).await;
    let server_after = cpu_ticks(server.pid).context("reading the server's CPU time")?;
    let recorders_after = recorder_ticks(&batch);
    let seconds = began.elapsed().as_secs_f64();
    let cpu_pct = |ticks: u64| -> f64 { ticks as f64 / ctx.clk_tck / seconds * 100.0 };
    report.add(
        "3 idle cost",
        format!("server CPU with {n} idle recorders ({}s)", window.as_secs()),
        cpu_pct(server_after.saturating_sub(server_before)),
        "% of a core",
        Some(Target::Below(1.0)),
    );
    report.add(
        "3 idle cost",
        format!("the {n} test recorders' own CPU (context)"),
        cpu_pct(recorders_after.saturating_sub(recorders_before)),
        "% of a core",
        None,
    );

    // 4. Listing.
    phase("4: listing");
    let requests = if quick { 50 } else { 200 };
    let active = get_json(ctx, &server.url("/api/recordings/jobs/active/")).await?;
    report.add(
        "4 listing",
        "active count",
        active["count"].as_f64().unwrap_or(f64::NAN),
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    for (name, path, target) in [
        (
            "GET jobs/active/",
            "/api/recordings/jobs/active/",
            Some(Target::AtMost(10.0)),
        ),
        (
            "GET jobs/?page_size=50",
            "/api/recordings/jobs/?page_size=50",
            None,
        ),
    ] {
        let url = server.url(path);
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let sent = Instant::now();
            let response = ctx.client.get(&url).send().await.context("GET")?;
            ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            let _ = response.bytes().await.context("reading a listing")?;
            times.push(ms(sent.elapsed()));
        }
        let times = sorted(times);
        report.add(
            "4 listing",
            format!("{name} p50 ({} stored, {n} running)", stored + n),
            percentile(&times, 0.5),
            "ms",
            None,
        );
        report.add(
            "4 listing",
            format!("{name} p99"),
            percentile(&times, 0.99),
            "ms",
            target,
        );
    }

    // 1. Exit → committed transition, recorders ending at staggered times.
    let spread = Duration::from_millis(if quick { 1000 } else { 3000 });
    phase(&format!(
        "1: {n} recorders ending over {} ms",
        spread.as_millis()
    ));
    let began = tokio::time::Instant::now();
    for (i, s) in batch.iter().enumerate() {
        tokio::time::sleep_until(began + spread.mul_f64(i as f64 / n as f64)).await;
        signal_recorder(s, Signal::INT);
    }
    let all_ended = wait_none_running(ctx, &server, Duration::from_secs(60)).await?;
    if !all_ended {
        phase("1: some jobs were still running after 60 s");
    }
    let delays = exit_delays(ctx, &server, &batch).await?;
    report_delays(report, "1 exit→commit", n, &delays, 5.0);

    // 6. Exit storm.
    phase(&format!("6: starting {n} recorders for the exit storm"));
    let (batch, _, _) = start_batch(ctx, &server, n).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase("6: exit storm");
    let began = Instant::now();
    for s in &batch {
        signal_recorder(s, Signal::INT);
    }
    let signalled_in = began.elapsed();
    let all_ended = wait_none_running(ctx, &server, Duration::from_secs(60)).await?;
    let storm_wall = began.elapsed();
    if !all_ended {
        phase("6: some jobs were still running after 60 s");
    }
    let delays = exit_delays(ctx, &server, &batch).await?;
    report.add(
        "6 exit storm",
        format!("time to signal all {n}"),
        ms(signalled_in),
        "ms",
        None,
    );
    report_delays(report, "6 exit storm", n, &delays, 50.0);
    report.add(
        "6 exit storm",
        "signal → none running (seen by polling, 50 ms)",
        ms(storm_wall),
        "ms",
        None,
    );

    // 5b. Live orphans adopted after a crash of the server.
    phase(&format!(
        "5: {n} live recorders, SIGKILL the server, restart"
    ));
    let (batch, _, _) = start_batch(ctx, &server, n).await?;
    server.kill();
    let mut server = Server::start(ctx)?;
    let listening = server.listening_after;
    let mut adopted = 0.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let active = get_json(ctx, &server.url("/api/recordings/jobs/active/")).await?;
        adopted = active["count"].as_f64().unwrap_or(f64::NAN);
        if adopted == n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_active = server.spawned_at.elapsed();
    report.add(
        "5 recovery",
        format!("{n} live orphans: start → listening"),
        ms(listening),
        "ms",
        None,
    );
    report.add(
        "5 recovery",
        format!("{n} live orphans: start → active count = {n}"),
        ms(all_active),
        "ms",
        None,
    );
    report.add(
        "5 recovery",
        "live orphans adopted",
        adopted,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    let alive = batch
        .iter()
        .filter(|s| is_alive_as(s.pid, s.start_time))
        .count();
    report.add(
        "5 recovery",
        "adopted recorders still alive (none signalled)",
        alive as f64,
        "processes",
        Some(Target::Exactly(n as f64)),
    );
    phase("5: stopping the server (it stops the adopted recorders)");
    server.terminate(Duration::from_secs(90)).await?;
    drop(server);

    // 5a. Dead orphans reconciled at start-up.
    phase(&format!("5: {stored} running jobs whose process is gone"));
    let pids = dead_pids(64);
    ensure!(!pids.is_empty(), "no free PID found");
    insert_rows(ctx, stored, Some(&pids)).await?;
    let mut server = Server::start(ctx)?;
    report.add(
        "5 recovery",
        format!("{stored} dead orphans: start → listening, all ended"),
        ms(server.listening_after),
        "ms",
        Some(Target::Below(1000.0)),
    );
    let still_running = count_with_status(ctx, &server, "running").await?;
    report.add(
        "5 recovery",
        "dead orphans left running",
        still_running as f64,
        "jobs",
        Some(Target::Exactly(0.0)),
    );
    server.terminate(Duration::from_secs(60)).await?;
    Ok(())
}

fn default_sibling(name: &str, up: bool) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the harness executable")?;
    let dir = exe
        .parent()
        .context("the harness executable has no directory")?;
    let dir = if up {
        dir.parent()
            .context("the harness directory has no parent")?
    } else {
        dir
    };
    Ok(dir.join(name))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match setup_and_run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn setup_and_run(args: Args) -> Result<()> {
    ensure!(args.scale > 0, "--scale must be at least 1");
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => default_sibling("recorderd", true)?,
    };
    let recorder_bin = match &args.recorder {
        Some(p) => p.clone(),
        None => default_sibling("test_recorder", false)?,
    };
    for (what, path) in [("server", &server_bin), ("recorder", &recorder_bin)] {
        ensure!(
            path.exists(),
            "the {what} binary {} is missing (build it: cargo build --release --bin recorderd --example test_recorder)",
            path.display()
        );
    }
    let name = testkit::unique_name();
    let dir = std::env::temp_dir().join(format!("recorderd-bench-{name}"));
    std::fs::create_dir_all(dir.join("history")).context("creating the bench directory")?;
    let (database_url, postgres) = match args.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(admin) => {
            let db_name = format!("recorderd_bench_{name}");
            let url = testkit::postgres::create_database(admin, &db_name)
                .await
                .context("creating the benchmark database")?;
            (url, Some((db_name, admin.to_owned())))
        }
        None => (
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
            None,
        ),
    };
    // reqwest's TLS (which the server's webhooks use) needs its provider
    // installed before any client is built, even a plain-HTTP one.
    recorderd::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let ctx = Ctx {
        args,
        server_bin,
        recorder_bin,
        dir,
        database_url,
        postgres,
        client,
        recorders: Mutex::new(Vec::new()),
        servers_started: AtomicUsize::new(0),
        clk_tck: clock_ticks_per_second(),
    };
    std::fs::write(ctx.dir.join("profiles.toml"), profiles_toml(&ctx))
        .context("writing the profiles")?;
    eprintln!(
        "bench: scale {} ({} stored), {}, {} cores, server {}, data in {}",
        ctx.n(),
        ctx.stored(),
        if ctx.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ctx.server_bin.display(),
        ctx.dir.display()
    );
    let began = Instant::now();
    let mut report = Report::default();
    let result = run(&ctx, &mut report).await;
    let killed = ctx.kill_leftover_recorders();
    if killed > 0 {
        eprintln!("bench: killed {killed} leftover recorder(s)");
    }
    println!();
    print!("{}", report.table());
    eprintln!("bench: done in {:.1} s", began.elapsed().as_secs_f64());
    if let Some((db_name, admin)) = &ctx.postgres {
        testkit::postgres::drop_database(admin, db_name).await;
    }
    if result.is_ok() && !ctx.args.keep {
        let _ = std::fs::remove_dir_all(&ctx.dir);
    } else {
        eprintln!("bench: files kept in {}", ctx.dir.display());
    }
    result
}
