//! Database outages: PostgreSQL stopped while recorders run, a SQLite
//! database locked by another process, start-up before the database
//! answers. Recorders record on; requests answer 503 `database_unavailable`
//! within a bounded time instead of hanging; every exit that happened
//! meanwhile is committed once the database returns, with the time the
//! recorder really ended, and its recording is processed once.

mod cluster;
mod start_up;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{Connection, raw_sql};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{Backend, TestApp, exclusive, is_terminal, process_exists, send_signal};
use cluster::StoppedCluster;

/// Longest a request may take to answer while PostgreSQL is away: the
/// pool's wait for a connection (3 s), and slack for a loaded machine.
const ANSWER_BOUND: Duration = Duration::from_secs(6);
/// The same while another process holds SQLite's write lock: a write waits
/// for the lock (5 s) on recorderd's one SQLite connection, which the
/// request may first have waited for (up to 3 s) while another write
/// held it.
const LOCKED_ANSWER_BOUND: Duration = Duration::from_secs(10);
/// Largest gap allowed between a job's `completed_at` and the time its
/// recorder wrote as it exited.
const END_TIME_TOLERANCE_MS: f64 = 50.0;

/// One recorder started for a test, and where to watch it.
struct Recorder {
    job: i64,
    recording: i64,
    pid: i32,
    output: PathBuf,
}

impl Recorder {
    fn size(&self) -> u64 {
        std::fs::metadata(&self.output).map_or(0, |m| m.len())
    }

    /// When the recorder says it exited (`--timestamp-file`), in
    /// nanoseconds since the epoch; `None` while it runs.
    fn exited_ns(&self) -> Option<i128> {
        let stamp = format!("{}.exited", self.output.display());
        std::fs::read_to_string(stamp).ok()?.trim().parse().ok()
    }
}

/// Starts `count` jobs of `profile` and waits until each writes.
async fn start_recorders(app: &TestApp, profile: &str, count: usize) -> Vec<Recorder> {
    let mut recorders = Vec::with_capacity(count);
    for _ in 0..count {
        let (job, recording) = app.start_ok(profile).await;
        let pid = app.job(job).await["process_id"]
            .as_i64()
            .unwrap_or_default() as i32;
        let output = app.recording(recording).await["output_path"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_default();
        recorders.push(Recorder {
            job,
            recording,
            pid,
            output,
        });
    }
    for recorder in &recorders {
        app.wait_for_recorder_output(recorder.recording).await;
    }
    recorders
}

/// Starts a job whose duration limit (5 s) falls inside the outage.
async fn start_limited(app: &TestApp) -> i64 {
    let body = json!({ "source": "test://stream", "profile": "test", "duration_seconds": 5 });
    let (job, recording) = app.start_ok_with(body).await;
    app.wait_for_recorder_output(recording).await;
    job
}

/// A duration limit reached while the database was away stops the job
/// once it is back, rather than never.
async fn assert_stopped_at_limit(app: &TestApp, client: &reqwest::Client, job: i64) {
    let job = ended_job(app, client, job, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_reason"], "duration", "{job}");
}

/// An answer, and how long it took to come.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

/// A client that gives up on a request after 30 s: a request that hangs
/// fails the test rather than the test hanging.
fn impatient_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let began = Instant::now();
    let response = request
        .send()
        .await
        .expect("an answer within 30 s (the request hung or the server is gone)");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("the response body");
    let took = began.elapsed();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        retry_after,
        body,
        took,
    }
}

/// Asks what a client asks while the database is away: readiness, a start
/// and a stop (of `running_job`).
async fn ask_meanwhile(
    app: &TestApp,
    client: &reqwest::Client,
    running_job: i64,
) -> Vec<(&'static str, Answer)> {
    let start = json!({ "source": "test://stream", "profile": "test" });
    let stop = json!({ "job_id": running_job });
    vec![
        ("GET /readyz", send(client.get(app.url("/readyz"))).await),
        (
            "POST start",
            send(
                client
                    .post(app.url("/api/recordings/jobs/start/"))
                    .json(&start),
            )
            .await,
        ),
        (
            "POST stop",
            send(
                client
                    .post(app.url("/api/recordings/jobs/stop/"))
                    .json(&stop),
            )
            .await,
        ),
    ]
}

/// A write refused for now: 503 `database_unavailable`, with when to retry.
fn assert_unavailable(what: &str, answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        answer.body
    );
    assert_eq!(
        answer.body["error"]["code"], "database_unavailable",
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.retry_after.as_deref(), Some("5"), "{what}");
}

fn assert_bounded(what: &str, answer: &Answer, bound: Duration) {
    eprintln!(
        "{what}: {} in {:.2} s",
        answer.status.as_u16(),
        answer.took.as_secs_f64()
    );
    assert!(
        answer.took <= bound,
        "{what} took {:?}, more than {bound:?}",
        answer.took
    );
}

/// Polls the job until `done` holds, through 503s while the database is
/// away.
async fn job_when(
    app: &TestApp,
    client: &reqwest::Client,
    job: i64,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let answer = send(client.get(app.url(&format!("/api/recordings/jobs/{job}/")))).await;
        if answer.status == StatusCode::OK && done(&answer.body) {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} not as expected within {within:?}; last answer: {} {}\nserver log:\n{}",
            answer.status,
            answer.body,
            app.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn ended_job(app: &TestApp, client: &reqwest::Client, job: i64, within: Duration) -> Value {
    job_when(app, client, job, within, |j| is_terminal(&j["status"])).await
}

/// Kills a recorder whose profile restarts it; returns when.
fn crash(recorder: &Recorder) -> i128 {
    send_signal(recorder.pid, 9);
    now_ns()
}

/// A recorder killed while the database was away is started again once it
/// is back, as its profile says: a second run writes its own segment, and
/// the first run's end is recorded at its real time.
async fn assert_restarted(
    app: &TestApp,
    client: &reqwest::Client,
    recorder: &Recorder,
    crashed_ns: i128,
) {
    let job = job_when(app, client, recorder.job, Duration::from_secs(30), |j| {
        j["attempt"] == 2 && j["process_id"].is_i64()
    })
    .await;
    assert_eq!(job["status"], "running", "{job}");
    let pid = job["process_id"].as_i64().unwrap_or_default() as i32;
    assert!(
        process_exists(pid),
        "the second run {pid} is not alive: {job}"
    );
    let ended_at = OffsetDateTime::parse(
        job["attempts"][0]["ended_at"].as_str().unwrap_or_default(),
        &Rfc3339,
    )
    .unwrap_or_else(|e| panic!("the first run's end is not RFC 3339 ({e}): {job}"));
    let error_ms = (ended_at.unix_timestamp_nanos() - crashed_ns) as f64 / 1e6;
    eprintln!("crashed recorder restarted; its first run's end is {error_ms:.1} ms from the kill");
    assert!(
        error_ms.abs() <= END_TIME_TOLERANCE_MS,
        "the first run ended {error_ms:.1} ms away from the kill: {job}"
    );
    let segment = recorder
        .output
        .with_file_name(format!("recording-{}.part2.txt", recorder.recording));
    let second = Recorder {
        job: recorder.job,
        recording: recorder.recording,
        pid,
        output: segment,
    };
    let size = second.size();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(second.size() > size, "the second run does not write: {job}");
}

/// How far the job's `completed_at` is from its recorder's own exit time.
fn end_time_error_ms(job: &Value, recorder: &Recorder) -> f64 {
    let exited = recorder.exited_ns().expect("the recorder's exit time");
    let completed =
        OffsetDateTime::parse(job["completed_at"].as_str().unwrap_or_default(), &Rfc3339)
            .unwrap_or_else(|e| panic!("completed_at is not RFC 3339 ({e}): {job}"))
            .unix_timestamp_nanos();
    (completed - exited) as f64 / 1e6
}

/// Waits until every recorder in `recorders` has exited by itself, and
/// returns when the last one did (nanoseconds since the epoch).
async fn all_exited(app: &TestApp, recorders: &[Recorder], within: Duration) -> i128 {
    app.wait_until("recorders ending by themselves", within, || {
        let stamps: Vec<Option<i128>> = recorders.iter().map(Recorder::exited_ns).collect();
        match stamps.iter().copied().collect::<Option<Vec<i128>>>() {
            Some(stamps) => Ok(stamps.into_iter().max().unwrap_or_default()),
            None => Err(format!("exit times so far: {stamps:?}")),
        }
    })
    .await
}

fn now_ns() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// The jobs of `ended` are committed with their true end times and their
/// recordings processed once; those of `lasting` still run and record.
async fn assert_nothing_lost(
    app: &TestApp,
    client: &reqwest::Client,
    ended: &[Recorder],
    lasting: &[Recorder],
    back: Instant,
) {
    let mut errors = Vec::new();
    for recorder in ended {
        let job = ended_job(app, client, recorder.job, Duration::from_secs(30)).await;
        assert_eq!(job["status"], "completed", "{job}");
        errors.push(end_time_error_ms(&job, recorder));
    }
    eprintln!(
        "all {} exits committed {:.2} s after the database returned",
        ended.len(),
        back.elapsed().as_secs_f64()
    );
    eprintln!("completed_at − recorder's own exit time (ms): {errors:.1?}");
    for (recorder, error) in ended.iter().zip(&errors) {
        assert!(
            error.abs() <= END_TIME_TOLERANCE_MS,
            "job {} ended {error:.1} ms away from its recorder's exit",
            recorder.job
        );
    }
    for recorder in ended {
        let recording = app.wait_for_recording_settled(recorder.recording).await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }
    let sizes: Vec<u64> = lasting.iter().map(Recorder::size).collect();
    for recorder in lasting {
        let job = app.job(recorder.job).await;
        assert_eq!(job["status"], "running", "{job}");
        assert_eq!(job["process_id"], recorder.pid, "{job}");
        assert!(
            process_exists(recorder.pid),
            "recorder {} died",
            recorder.pid
        );
    }
    // Time for the lasting ones to write, and for a second processing run
    // of the ended ones to show: that none does is the point.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (recorder, size) in lasting.iter().zip(sizes) {
        assert!(
            recorder.size() > size,
            "recorder {} stopped writing",
            recorder.pid
        );
    }
    for recorder in ended {
        assert_eq!(
            app.processing_runs(recorder.recording),
            1,
            "recording {}",
            recorder.recording
        );
    }
}

/// The lasting jobs still stop as asked, once each, after the outage.
async fn stop_and_check(app: &TestApp, lasting: &[Recorder]) {
    for recorder in lasting {
        let (status, body) = app.stop(recorder.job).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for recorder in lasting {
        let job = app.wait_for_job_end(recorder.job).await;
        assert_eq!(job["status"], "completed", "{job}");
        let recording = app.wait_for_recording_settled(recorder.recording).await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for recorder in lasting {
        assert_eq!(app.processing_runs(recorder.recording), 1);
    }
}

/// PostgreSQL stopped for 30 s while ten recorders run and five of them
/// end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_loses_no_exit_and_answers_503_meanwhile() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(admin) = backend.clone() else {
        unreachable!("Backend::postgres is PostgreSQL");
    };
    // Alone: the outage stops the server every other test uses.
    let _alone = exclusive().await;
    let app = TestApp::spawn(backend).await;
    let client = impatient_client();
    // These end by themselves 15 s after their start: inside the outage.
    let ending = start_recorders(&app, "self_ending_late", 5).await;
    let lasting = start_recorders(&app, "test", 5).await;
    let restarted = start_recorders(&app, "phoenix", 1).await;
    let limited = start_limited(&app).await;
    let sizes: Vec<u64> = lasting.iter().map(Recorder::size).collect();

    let outage_began_ns = now_ns();
    let mut cluster = StoppedCluster::stop(&admin).await;
    let crashed_ns = crash(&restarted[0]);
    for (what, answer) in ask_meanwhile(&app, &client, lasting[0].job).await {
        assert_bounded(what, &answer, ANSWER_BOUND);
        if what == "GET /readyz" {
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                answer.body
            );
        } else {
            assert_unavailable(what, &answer);
        }
    }
    let last_exit_ns = all_exited(&app, &ending, Duration::from_secs(25)).await;
    for (recorder, size) in lasting.iter().zip(sizes) {
        assert!(
            process_exists(recorder.pid),
            "recorder {} died",
            recorder.pid
        );
        assert!(
            recorder.size() > size,
            "recorder {} stopped writing",
            recorder.pid
        );
    }
    let outage = Duration::from_secs(30);
    tokio::time::sleep(outage.saturating_sub(cluster.stopped_at.elapsed())).await;
    assert!(
        ending.iter().all(|r| r.exited_ns() > Some(outage_began_ns)) && last_exit_ns < now_ns(),
        "the recorders did not all end during the outage"
    );
    let back = cluster.start().await;
    eprintln!(
        "PostgreSQL was away for {:.1} s",
        (back - cluster.stopped_at).as_secs_f64()
    );
    assert!(process_exists(app.server_pid()), "recorderd died");

    let ready_in = ready_after(&app, &client, back).await;
    eprintln!(
        "/readyz answered 200 {:.2} s after the database returned",
        ready_in.as_secs_f64()
    );
    assert_nothing_lost(&app, &client, &ending, &lasting, back).await;
    assert_restarted(&app, &client, &restarted[0], crashed_ns).await;
    assert_stopped_at_limit(&app, &client, limited).await;
    stop_and_check(&app, &lasting).await;
}

/// How long after `back` `/readyz` answers 200.
async fn ready_after(app: &TestApp, client: &reqwest::Client, back: Instant) -> Duration {
    let deadline = back + Duration::from_secs(30);
    loop {
        let answer = send(client.get(app.url("/readyz"))).await;
        if answer.status == StatusCode::OK {
            return back.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Another process's connection holding SQLite's write lock on `url`
/// (`BEGIN EXCLUSIVE`), as a long migration or a backup would.
async fn lock_sqlite(url: &str) -> SqliteConnection {
    let options = SqliteConnectOptions::from_str(url)
        .expect("a SQLite URL")
        .busy_timeout(Duration::from_secs(10));
    let mut connection = SqliteConnection::connect_with(&options)
        .await
        .expect("open the test database");
    raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut connection)
        .await
        .expect("take the database's write lock");
    connection
}

/// SQLite locked by another process for 15 s while ten recorders run and
/// five of them end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_loses_no_exit_and_answers_503_to_writes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = impatient_client();
    // These end by themselves 6 s after their start: inside the lock.
    let ending = start_recorders(&app, "self_ending", 5).await;
    let lasting = start_recorders(&app, "test", 5).await;
    let restarted = start_recorders(&app, "phoenix", 1).await;
    let limited = start_limited(&app).await;

    let mut lock = lock_sqlite(&app.database_url).await;
    let locked_at = Instant::now();
    let locked_ns = now_ns();
    let crashed_ns = crash(&restarted[0]);
    for (what, answer) in ask_meanwhile(&app, &client, lasting[0].job).await {
        assert_bounded(what, &answer, LOCKED_ANSWER_BOUND);
        // Readiness reads, which the lock does not block (WAL): it answers
        // 200, or 503 when a write waiting for the lock held the one
        // connection throughout the probe's 2 s.
        if what != "GET /readyz" {
            assert_unavailable(what, &answer);
        }
    }
    all_exited(&app, &ending, Duration::from_secs(15)).await;
    let lock_for = Duration::from_secs(15);
    tokio::time::sleep(lock_for.saturating_sub(locked_at.elapsed())).await;
    assert!(
        ending.iter().all(|r| r.exited_ns() > Some(locked_ns)),
        "the recorders did not all end while the database was locked"
    );
    raw_sql("ROLLBACK")
        .execute(&mut lock)
        .await
        .expect("release the lock");
    let back = Instant::now();
    let _ = lock.close().await;
    assert!(process_exists(app.server_pid()), "recorderd died");

    assert_nothing_lost(&app, &client, &ending, &lasting, back).await;
    assert_restarted(&app, &client, &restarted[0], crashed_ns).await;
    assert_stopped_at_limit(&app, &client, limited).await;
    stop_and_check(&app, &lasting).await;
}
