//! The machine's own floors, measured by the harness in the same run and
//! on the same database file system as the server's figures, with nothing
//! of recorderd in the way:
//!
//! - **exit → committed**: the harness spawns test recorders itself, sees
//!   each exit through a pidfd (one thread in `epoll_wait`), and one writer
//!   commits a row per exit (whatever is queued, in one transaction) into
//!   a SQLite WAL file beside the server's (or the run's PostgreSQL
//!   database), through the same driver the server uses. The delay is
//!   taken as the server's is: from the recorder's own exit timestamp to
//!   the commit's start, written into the row, with the commit itself done
//!   before the next batch starts.
//! - **spawn**: test recorders spawned as the server spawns them (own
//!   process group, log file, pidfd, start time from `/proc`), from the
//!   same number of concurrent clients, with no database.
//! - **read and serialize**: the rows `active` and the job list's first
//!   page return, read through the same entity and serialized to JSON,
//!   with no HTTP and no reconciliation.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use recorderd::entity::{JobStatus, recording_job};
use rustix::event::epoll;
use rustix::process::{Pid, PidfdFlags, pidfd_open};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use testkit::process::Signal;

use crate::api::{Delays, exit_timestamp};
use crate::args::Ctx;
use crate::report::{Latencies, ms};

/// How the recorders of an exit workload are ended.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    /// One by one, evenly spread over this long.
    Staggered(Duration),
    /// All in one loop.
    Storm,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A test recorder the harness spawned itself.
struct Recorder {
    child: Child,
    pidfd: OwnedFd,
    timestamp_file: PathBuf,
}

/// Spawns one test recorder as the server does: own process group, stdin
/// null, output to a log file, then its pidfd and start time.
fn spawn_recorder(ctx: &Ctx, dir: &Path, i: usize) -> Result<(Recorder, i64)> {
    let output = dir.join(format!("recording-{i}.txt"));
    let timestamp_file = dir.join(format!("recording-{i}.txt.exited"));
    let log = File::create(dir.join(format!("job-{i}.log"))).context("creating a log file")?;
    let child = Command::new(&ctx.recorder_bin)
        .arg("--output")
        .arg(&output)
        .args(["--max-lifetime", &ctx.max_lifetime().to_string()])
        .args(["--interval-ms", crate::args::RECORDER_INTERVAL_MS])
        .arg("--timestamp-file")
        .arg(&timestamp_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cloning a log file")?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("spawning the test recorder")?;
    let pid = Pid::from_raw(child.id() as i32).ok_or_else(|| anyhow!("PID 0"))?;
    let pidfd = pidfd_open(pid, PidfdFlags::NONBLOCK).context("pidfd_open")?;
    let start_time = procfs::process::Process::new(pid.as_raw_nonzero().get())
        .and_then(|p| p.stat())
        .map(|s| s.starttime as i64)
        .context("reading the recorder's start time")?;
    Ok((
        Recorder {
            child,
            pidfd,
            timestamp_file,
        },
        start_time,
    ))
}

/// Spawns `n` recorders from `threads` threads; returns them with each
/// spawn's latency (ms) and the wall time in all.
fn spawn_many(ctx: &Ctx, dir: &Path, n: usize) -> Result<(Vec<Recorder>, Vec<f64>, Duration)> {
    std::fs::create_dir_all(dir).context("creating the floor's directory")?;
    let next = AtomicUsize::new(0);
    let threads = ctx.args.clients.clamp(1, n.max(1));
    let began = Instant::now();
    let results: Vec<Result<Vec<(Recorder, f64)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(mine);
                        }
                        let sent = Instant::now();
                        let (recorder, start_time) = spawn_recorder(ctx, dir, i)?;
                        ctx.remember([(recorder.child.id() as i32, start_time)]);
                        mine.push((recorder, ms(sent.elapsed())));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a spawning thread panicked")))
            })
            .collect()
    });
    let elapsed = began.elapsed();
    let mut recorders = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    for result in results {
        for (recorder, latency) in result? {
            recorders.push(recorder);
            latencies.push(latency);
        }
    }
    Ok((recorders, latencies, elapsed))
}

/// Ends recorders by SIGINT and reaps them (the spawn floor's cleanup).
fn end_and_reap(recorders: Vec<Recorder>) {
    for r in &recorders {
        testkit::process::signal(r.child.id() as i32, Signal::INT);
    }
    for mut r in recorders {
        let _ = r.child.wait();
    }
}

/// The spawn floor: throughput and latency of spawning `n` recorders.
pub struct SpawnFloor {
    pub per_second: f64,
    pub latencies: Latencies,
}

pub fn spawn(ctx: &Ctx, n: usize) -> Result<SpawnFloor> {
    let (recorders, latencies, elapsed) = spawn_many(ctx, &ctx.dir.join("floor-spawn"), n)?;
    let floor = SpawnFloor {
        per_second: recorders.len() as f64 / elapsed.as_secs_f64(),
        latencies: Latencies::new(latencies),
    };
    end_and_reap(recorders);
    Ok(floor)
}

/// The database the exit floor commits to: a SQLite file beside the
/// server's, in WAL with the server's settings, or the run's PostgreSQL
/// database; one connection.
async fn floor_database(ctx: &Ctx) -> Result<DatabaseConnection> {
    let url = if ctx.is_postgres() {
        ctx.database_url.clone()
    } else {
        format!("sqlite://{}/floor.db?mode=rwc", ctx.dir.display())
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        });
    let db = Database::connect(options)
        .await
        .context("opening the floor's database")?;
    let id = if ctx.is_postgres() {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY"
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS bench_floor_exits \
         (id {id}, job BIGINT NOT NULL, completed_at BIGINT NOT NULL)"
    ))
    .await?;
    Ok(db)
}

/// Waits for every recorder's pidfd in one `epoll_wait` loop, reaps each
/// as it exits and sends its index the moment the exit is seen.
fn watch_exits(
    recorders: Vec<Recorder>,
    seen: tokio::sync::mpsc::UnboundedSender<usize>,
    deadline: Instant,
) -> Result<Vec<PathBuf>> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).context("epoll_create")?;
    for (i, r) in recorders.iter().enumerate() {
        epoll::add(
            &epoll,
            &r.pidfd,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .context("epoll_ctl")?;
    }
    let mut left = recorders.len();
    let mut files = Vec::with_capacity(recorders.len());
    let mut children: Vec<Option<Recorder>> = recorders.into_iter().map(Some).collect();
    let mut events = Vec::with_capacity(256);
    let timeout = rustix::event::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    while left > 0 && Instant::now() < deadline {
        events.clear();
        match epoll::wait(
            &epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&timeout),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("epoll_wait"),
        }
        for event in &events {
            let i = event.data.u64() as usize;
            let Some(mut r) = children.get_mut(i).and_then(Option::take) else {
                continue;
            };
            let _ = seen.send(i);
            let _ = epoll::delete(&epoll, &r.pidfd);
            let _ = r.child.wait();
            files.push(r.timestamp_file);
            left -= 1;
        }
    }
    // Whatever did not exit in time is killed and reaped here.
    for mut r in children.into_iter().flatten() {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
    Ok(files)
}

/// The exit floor: `n` recorders ended as `ending` says. Returns the
/// delays (exit → commit start), and each commit's duration.
pub async fn exits(ctx: &Ctx, n: usize, ending: Ending, name: &str) -> Result<(Delays, Latencies)> {
    let db = floor_database(ctx).await?;
    let dir = ctx.dir.join(format!("floor-{name}"));
    let (recorders, _, _) = spawn_many(ctx, &dir, n)?;
    let pids: Vec<i32> = recorders.iter().map(|r| r.child.id() as i32).collect();
    let timestamp_files: Vec<PathBuf> =
        recorders.iter().map(|r| r.timestamp_file.clone()).collect();
    // Let every recorder install its signal handlers before the first
    // SIGINT (the server's recorders have had longer still).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = Instant::now() + Duration::from_secs(60);
    let watcher = std::thread::spawn(move || watch_exits(recorders, tx, deadline));
    // The signals come from their own thread, as they come from another
    // process for the server: the writer below is never held up by them.
    let (signalled_tx, signalled_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let began = Instant::now();
        for (i, pid) in pids.iter().enumerate() {
            if let Ending::Staggered(spread) = ending {
                let at = spread.mul_f64(i as f64 / pids.len().max(1) as f64);
                std::thread::sleep(at.saturating_sub(began.elapsed()));
            }
            testkit::process::signal(*pid, Signal::INT);
        }
        let _ = signalled_tx.send(());
    });

    let backend = db.get_database_backend();
    let sql = if ctx.is_postgres() {
        "INSERT INTO bench_floor_exits (job, completed_at) VALUES ($1, $2)"
    } else {
        "INSERT INTO bench_floor_exits (job, completed_at) VALUES (?, ?)"
    };
    let mut committed: Vec<Option<i128>> = vec![None; n];
    let mut commits = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(i) = rx.try_recv() {
            batch.push(i);
        }
        let completed = now_ns();
        let began = Instant::now();
        let txn = db.begin().await?;
        for &i in &batch {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [(i as i64).into(), (completed as i64).into()],
            ))
            .await?;
        }
        txn.commit().await?;
        commits.push(ms(began.elapsed()));
        for i in batch {
            committed[i] = Some(completed);
        }
    }
    let _ = signalled_rx.recv();
    watcher
        .join()
        .map_err(|_| anyhow!("the pidfd watcher panicked"))??;
    db.close().await?;
    let ended = committed.iter().flatten().count();
    let pairs: Vec<(i128, i128)> = timestamp_files
        .iter()
        .zip(&committed)
        .filter_map(|(file, done)| Some((exit_timestamp(file)?, (*done)?)))
        .collect();
    Ok((Delays::from_pairs(&pairs, ended), Latencies::new(commits)))
}

/// The read floors: the live jobs (what `active` returns) and the job
/// list's first page with its count, each read and serialized `requests`
/// times. Returns (live jobs read, active floor, first page floor).
pub async fn reads(ctx: &Ctx, requests: usize) -> Result<(usize, Latencies, Latencies)> {
    #[derive(serde::Serialize)]
    struct Page<'a> {
        count: u64,
        jobs: &'a [recording_job::Model],
    }
    let db = Database::connect(
        ConnectOptions::new(ctx.database_url.clone())
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .context("connecting to the benchmark database")?;
    let mut live = 0;
    let mut active = Vec::with_capacity(requests);
    for _ in 0..requests {
        let began = Instant::now();
        let jobs = recording_job::Entity::find()
            .filter(recording_job::Column::Status.is_in(JobStatus::LIVE))
            .order_by_desc(recording_job::Column::Id)
            .all(&db)
            .await?;
        let body = serde_json::to_vec(&Page {
            count: jobs.len() as u64,
            jobs: &jobs,
        })?;
        std::hint::black_box(body);
        active.push(ms(began.elapsed()));
        live = jobs.len();
    }
    let mut page = Vec::with_capacity(requests);
    for _ in 0..requests {
        let began = Instant::now();
        let count = recording_job::Entity::find().count(&db).await?;
        let jobs = recording_job::Entity::find()
            .order_by_desc(recording_job::Column::Id)
            .limit(50)
            .all(&db)
            .await?;
        let body = serde_json::to_vec(&Page { count, jobs: &jobs })?;
        std::hint::black_box(body);
        page.push(ms(began.elapsed()));
    }
    db.close().await?;
    Ok((live, Latencies::new(active), Latencies::new(page)))
}
