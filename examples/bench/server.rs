//! The server under test: started as a process on port 0 with the run's
//! data directory and database, killed as a crash would, or terminated;
//! and what `/proc` says of it (memory, CPU).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use procfs::process::Process;
use testkit::process::Signal;
use testkit::server::{ServeConfig, listening_address, serve_command};

use crate::args::Ctx;

/// A running server process.
pub struct Server {
    child: Option<Child>,
    pub pid: i32,
    base: String,
    /// From spawning the process to its "listening on" log line.
    pub listening_after: Duration,
    pub spawned_at: Instant,
    log: PathBuf,
}

impl Server {
    pub fn start(ctx: &Ctx) -> Result<Self> {
        let n = ctx.servers_started.fetch_add(1, Ordering::Relaxed);
        let log = ctx.dir.join(format!("server-{n}.log"));
        let file = File::create(&log).context("creating the server log")?;
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
        // The node the stored history belongs to.
        command.args(["--node-id", crate::seed::NODE]);
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
        let listening = drain_log(stderr, file);
        let mut server = Self {
            child: Some(child),
            pid,
            base: String::new(),
            listening_after: Duration::ZERO,
            spawned_at,
            log,
        };
        match listening.recv_timeout(Duration::from_secs(180)) {
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, as a crash would: recorders run on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (the server stops its recorders and commits their ends), then
    /// SIGKILL if it has not exited within `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<()> {
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

/// Drains the server's standard error into its log file (a full pipe
/// would block the server) and reports the "listening on" line the moment
/// it is read: start-up is measured to the line, not to a poll of a file.
fn drain_log(
    stderr: std::process::ChildStderr,
    mut file: File,
) -> std::sync::mpsc::Receiver<(Instant, std::net::SocketAddr)> {
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
    rx
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// utime + stime of `pid`, in clock ticks: the process's line in
/// `/proc/<pid>/stat` already sums them over every thread.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = Process::new(pid).and_then(|p| p.stat()).ok()?;
    Some(stat.utime + stat.stime)
}

/// Where a process's resident memory is, from `/proc/<pid>/smaps_rollup`
/// (KiB): file-backed is what is neither anonymous nor shared memory (the
/// binary's and libraries' pages), anonymous is heap, stacks and arenas.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub rss: u64,
    pub anonymous: u64,
    pub file_backed: u64,
    /// How many threads the process runs (`/proc/<pid>/status`).
    pub threads: u64,
}

impl Footprint {
    pub fn of(pid: i32) -> Result<Self> {
        let process = Process::new(pid).with_context(|| format!("no process {pid}"))?;
        let rollup = process
            .smaps_rollup()
            .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
        let map = rollup
            .memory_map_rollup
            .0
            .first()
            .map(|m| &m.extension.map)
            .ok_or_else(|| anyhow!("/proc/{pid}/smaps_rollup is empty"))?;
        let kib = |key: &str| map.get(key).copied().unwrap_or(0) / 1024;
        let rss = kib("Rss");
        let anonymous = kib("Anonymous");
        let shmem = kib("Pss_Shmem");
        let threads = process
            .status()
            .map(|s| s.threads)
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(Self {
            rss,
            anonymous,
            file_backed: rss.saturating_sub(anonymous + shmem),
            threads,
        })
    }
}

/// Raises this process's soft limit of open files to the hard limit: the
/// floors hold a pidfd per recorder, thousands of them at a time.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
