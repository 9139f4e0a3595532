//! The harness's command line, and the state one run shares: where the
//! binaries and the database are, the HTTP client, and every recorder
//! started (so that none outlives the harness).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use anyhow::{Context, Result};
use clap::Parser;
use rustix::process::{Pid, kill_process_group};
use testkit::process::{Signal, is_alive_as};
use testkit::profiles::RecorderProfile;

/// Benchmarks recorderd against its performance budget and against the
/// machine's own floors.
#[derive(Debug, Parser)]
#[command(name = "bench")]
pub struct Args {
    /// Number of recorders (the dead orphans: 10×N; the concurrent
    /// workload: 5×N).
    #[arg(long, default_value_t = 1000)]
    pub scale: usize,
    /// Ended jobs stored before the server starts (default 100×scale):
    /// the history the listing and job-list figures are taken over.
    #[arg(long)]
    pub history: Option<usize>,
    /// Shorter measuring windows and fewer requests (for smoke tests).
    #[arg(long)]
    pub quick: bool,
    /// Concurrent clients of the start workloads (and tasks of the spawn
    /// floor).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Server binary (default: `../recorderd` beside this harness's
    /// directory, i.e. target/<profile>/recorderd).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Recorder binary (default: `test_recorder` beside this harness).
    #[arg(long)]
    pub recorder: Option<PathBuf>,
    /// Admin URL of a PostgreSQL server: a uniquely named database is
    /// created there. Without it, a fresh SQLite file is used.
    #[arg(long, env = "RECORDERD_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Keep the temporary directory (server logs, recorder output).
    #[arg(long)]
    pub keep: bool,
}

/// The database a run uses.
pub enum Backend {
    /// The SQLite file's URL.
    Sqlite,
    /// The PostgreSQL database created for this run, and the admin URL it
    /// was created through.
    Postgres { name: String, admin: String },
}

/// Shared state of one run.
pub struct Ctx {
    pub args: Args,
    pub server_bin: PathBuf,
    pub recorder_bin: PathBuf,
    pub dir: PathBuf,
    /// The run's database, for the server and the harness alike.
    pub database_url: String,
    pub backend: Backend,
    pub client: reqwest::Client,
    /// Every recorder started (PID, start time), so that none outlives
    /// the harness.
    recorders: Mutex<Vec<(i32, i64)>>,
    pub servers_started: AtomicUsize,
    pub clk_tck: f64,
}

impl Ctx {
    pub fn new(args: Args, dir: PathBuf, database_url: String, backend: Backend) -> Result<Self> {
        let server_bin = match &args.server {
            Some(p) => p.clone(),
            None => default_sibling("recorderd", true)?,
        };
        let recorder_bin = match &args.recorder {
            Some(p) => p.clone(),
            None => default_sibling("test_recorder", false)?,
        };
        for (what, path) in [("server", &server_bin), ("recorder", &recorder_bin)] {
            anyhow::ensure!(
                path.exists(),
                "the {what} binary {} is missing (build it: cargo build --release --bin recorderd --example test_recorder)",
                path.display()
            );
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            args,
            server_bin,
            recorder_bin,
            dir,
            database_url,
            backend,
            client,
            recorders: Mutex::new(Vec::new()),
            servers_started: AtomicUsize::new(0),
            clk_tck: procfs::ticks_per_second() as f64,
        })
    }

    /// Recorders of the main workloads.
    pub fn n(&self) -> usize {
        self.args.scale
    }

    /// Ended jobs stored before the server starts.
    pub fn history(&self) -> usize {
        self.args.history.unwrap_or(self.args.scale * 100)
    }

    /// `running` jobs whose process is gone, for start-up reconciliation.
    pub fn orphans(&self) -> usize {
        self.args.scale * 10
    }

    /// Recorders of the concurrent workload.
    pub fn concurrent(&self) -> usize {
        self.args.scale * 5
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    pub fn backend_name(&self) -> &'static str {
        if self.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    /// Requests per latency figure.
    pub fn requests(&self) -> usize {
        if self.args.quick { 50 } else { 200 }
    }

    /// Over how long the staggered exits are spread.
    pub fn stagger(&self) -> std::time::Duration {
        std::time::Duration::from_millis(if self.args.quick { 1000 } else { 3000 })
    }

    /// Remembers recorders started, by PID and start time.
    pub fn remember(&self, processes: impl IntoIterator<Item = (i32, i64)>) {
        let mut list = self
            .recorders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        list.extend(processes);
    }

    /// SIGKILLs the process group of every recorder still alive whose start
    /// time still matches (a PID reused meanwhile is never signalled).
    pub fn kill_leftover_recorders(&self) -> usize {
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

    /// The safety net of every recorder, the server's and the floors':
    /// none outlives a crashed harness by much.
    pub fn max_lifetime(&self) -> u64 {
        (if self.args.quick { 60 } else { 120 } + self.concurrent() / 10) as u64
    }

    /// The profiles file the server reads.
    pub fn profiles_toml(&self) -> String {
        let bench = RecorderProfile::new("bench", &self.recorder_bin, "bench", self.max_lifetime())
            .args(["--timestamp-file", "{output}.exited"])
            .args(["--interval-ms", RECORDER_INTERVAL_MS])
            .set("stop_signal", "\"SIGINT\"")
            .set("stop_grace_seconds", "2")
            .set("post_processing", "[]");
        format!("default_profile = \"bench\"\n{}", bench.to_toml())
    }
}

/// How often each test recorder writes a line, the server's and the
/// floors' alike. Once a second: 5,000 recorders writing ten times a
/// second (the test recorder's default) are 50,000 wake-ups and writes a
/// second, which saturate this 2-core machine's kernel on their own and
/// starve the server being measured.
pub const RECORDER_INTERVAL_MS: &str = "1000";

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
