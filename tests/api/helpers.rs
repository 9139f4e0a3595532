//! A real recorderd server per test: the binary of this build, run
//! as its own process on port 0 with a fresh data directory and a fresh
//! database (a SQLite file, or a uniquely named PostgreSQL database), driven
//! over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procfs::process::{ProcState, Process};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a PostgreSQL server; each test creates its own database.
    Postgres(String),
}

/// Environment variable naming a PostgreSQL server for the suite, e.g.
/// `postgres://postgres:postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_ENV: &str = "RECORDERD_TEST_POSTGRES_URL";

impl Backend {
    /// The PostgreSQL backend, or `None` (after saying so loudly) when no
    /// server is configured. Under CI a missing server is a failure.
    pub fn postgres() -> Option<Self> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ => {
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!(
                        "{POSTGRES_ENV} is not set under CI: the PostgreSQL half of the suite must run"
                    );
                }
                eprintln!(
                    "\n*** SKIPPED (PostgreSQL): {POSTGRES_ENV} is not set, so this test ran on SQLite only. \
                     .ci/run starts PostgreSQL and sets it. ***\n"
                );
                None
            }
        }
    }
}

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::helpers::Backend::postgres() {
                    super::$name(backend).await
                }
            }
        }
    )*};
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Tests that load the CPU heavily (real ffmpeg, speech recognition, the
/// browser, the benchmark smoke run) or measure latency take this lock
/// alone; every other test holds it shared for its server's lifetime (see
/// [`TestApp::spawn_with`]). On a 2-core machine a transcription or a
/// PostgreSQL fsync storm next door would measure the machine, not
/// recorderd.
static TURN: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

thread_local! {
    /// Set while this test thread holds [`TURN`] alone.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the rest of the test with no other test's server running.
pub struct Exclusive {
    _guard: tokio::sync::RwLockWriteGuard<'static, ()>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        ALONE.with(|alone| alone.set(false));
    }
}

pub async fn exclusive() -> Exclusive {
    let guard = TURN.write().await;
    ALONE.with(|alone| alone.set(true));
    Exclusive { _guard: guard }
}

/// [`exclusive`] for tests that are not async.
pub fn exclusive_blocking() -> Exclusive {
    let guard = TURN.blocking_write();
    ALONE.with(|alone| alone.set(true));
    Exclusive { _guard: guard }
}

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_recorderd"))
}

/// The test recorder built from `examples/test_recorder.rs`.
pub fn test_recorder() -> PathBuf {
    let path = server_binary()
        .parent()
        .map(|dir| dir.join("examples").join("test_recorder"))
        .expect("the server binary has a parent directory");
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Profiles every test server offers. `test` records until stopped; the
/// others misbehave in one way each. Post-processing appends the recording
/// id to `processed.log`, so tests can count processing runs.
fn profiles_toml(dir: &Path, post_processing_ok: bool) -> String {
    let rec = test_recorder().display().to_string();
    let processed = dir.join("processed.log").display().to_string();
    let post = if post_processing_ok {
        format!(
            r#"post_processing = [["sh", "-c", "echo \"$1\" >> '{processed}'", "sh", "{{recording_id}}"]]"#
        )
    } else {
        r#"post_processing = [["sh", "-c", "echo broken >&2; exit 4"]]"#.to_owned()
    };
    let profile = |name: &str, extra: &str, grace: f64| {
        format!(
            r#"
[profiles.{name}]
command = ["{rec}", "--output", "{{output}}", "--max-lifetime", "120"{extra}]
stop_grace_seconds = {grace}
output_extension = "txt"
allowed_schemes = ["test"]
{post}
"#
        )
    };
    let mut text = String::from("default_profile = \"test\"\n");
    text += &profile("test", "", 2.0);
    text += &profile("short", r#", "--exit-after", "0.5""#, 2.0);
    text += &profile("timed", r#", "--exit-after", "{duration}""#, 2.0);
    text += &profile(
        "crash",
        r#", "--exit-after", "0.3", "--exit-code", "3""#,
        2.0,
    );
    text += &profile(
        "signalled",
        r#", "--exit-after", "0.3", "--self-signal", "10""#,
        2.0,
    );
    text += &profile(
        "stubborn",
        r#", "--ignore-sigint", "--ignore-sigterm""#,
        0.5,
    );
    text += &profile(
        "self_ending",
        r#", "--exit-after", "6", "--timestamp-file", "{output}.exited""#,
        2.0,
    );
    text += &profile(
        "forking",
        r#", "--exit-after", "0.3", "--spawn-grandchild", "1""#,
        2.0,
    );
    text += &profile("stalling", r#", "--stall-after", "0.5""#, 0.5).replace(
        "output_extension",
        "stall_timeout_seconds = 1\noutput_extension",
    );
    text += &profile(
        "crashy",
        r#", "--exit-after", "0.4", "--exit-code", "3""#,
        2.0,
    )
    .replace(
        "output_extension",
        "restart_attempts = 2\nrestart_backoff_seconds = 0.2\noutput_extension",
    );
    text += &profile("empty", r#", "--no-output", "--exit-after", "0.3""#, 2.0);
    // Steps with retries, stdout kept as the transcript, and a timeout.
    text += &format!(
        r#"
[profiles.pipeline]
command = ["{rec}", "--output", "{{output}}", "--exit-after", "0.5", "--max-lifetime", "120"]
output_extension = "txt"
allowed_schemes = ["test"]

[[profiles.pipeline.steps]]
name = "flaky"
command = ["sh", "-c", "test -e \"$0/tried\" || {{ touch \"$0/tried\"; echo first attempt fails >&2; exit 7; }}", "{{workdir}}"]
retries = 2
retry_backoff_seconds = 0.2

[[profiles.pipeline.steps]]
name = "words"
command = ["sh", "-c", "wc -l < \"$0\" | tr -d ' '; echo lines recorded", "{{input}}"]
stdout = "transcript"

[profiles.slow_step]
command = ["{rec}", "--output", "{{output}}", "--exit-after", "0.3", "--max-lifetime", "120"]
output_extension = "txt"
allowed_schemes = ["test"]

[[profiles.slow_step.steps]]
name = "sleepy"
command = ["sleep", "30"]
timeout_seconds = 0.5

[profiles.long_step]
command = ["{rec}", "--output", "{{output}}", "--exit-after", "0.3", "--max-lifetime", "120"]
output_extension = "txt"
allowed_schemes = ["test"]

[[profiles.long_step.steps]]
name = "long"
command = ["sh", "-c", "sleep 3; echo \"$1\" >> '{processed}'", "sh", "{{recording_id}}"]
"#
    );
    text += r#"
[profiles.missing]
command = ["/nonexistent/recorder-binary", "{output}"]
output_extension = "txt"
allowed_schemes = ["test"]
"#;
    text
}

/// Knobs for a test server.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub post_processing_ok: bool,
    pub extra_args: Vec<String>,
    /// A command the server runs under, e.g. `unshare --pid --fork`.
    pub wrapper: Vec<String>,
    /// The profiles file's text, instead of the suite's usual profiles.
    pub profiles: Option<String>,
    /// Share another app's database (another node of one deployment).
    pub database_url: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            post_processing_ok: true,
            extra_args: Vec::new(),
            wrapper: Vec::new(),
            profiles: None,
            database_url: None,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    pub database_url: String,
    pub server_log: PathBuf,
    server: Option<Child>,
    backend: Backend,
    options: AppOptions,
    /// Shared hold on [`TURN`], unless this test runs alone.
    _turn: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, AppOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: AppOptions) -> Self {
        let turn = if ALONE.with(|alone| alone.get()) {
            None
        } else {
            Some(TURN.read().await)
        };
        let name = unique_name();
        let dir = std::env::temp_dir().join(format!("recorderd-test-{name}"));
        std::fs::create_dir_all(&dir).expect("create test directory");
        let database_url = match (&options.database_url, &backend) {
            (Some(url), _) => url.clone(),
            (None, backend) => match backend {
                Backend::Sqlite => format!("sqlite://{}/test.db?mode=rwc", dir.display()),
                Backend::Postgres(admin) => create_postgres_database(admin, &name).await,
            },
        };
        std::fs::write(
            dir.join("profiles.toml"),
            options
                .profiles
                .clone()
                .unwrap_or_else(|| profiles_toml(&dir, options.post_processing_ok)),
        )
        .expect("write profiles");
        let mut app = Self {
            address: String::new(),
            client: reqwest::Client::new(),
            server_log: dir.join("server-0.log"),
            dir,
            database_url,
            server: None,
            backend,
            options,
            _turn: turn,
        };
        app.start_server().await;
        app
    }

    /// Starts (or restarts) the server process on this app's data directory
    /// and database.
    pub async fn start_server(&mut self) {
        let n = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
                    .count()
            })
            .unwrap_or(0);
        self.server_log = self.dir.join(format!("server-{n}.log"));
        let log = std::fs::File::create(&self.server_log).expect("create server log");
        let mut command = match self.options.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(server_binary());
                c
            }
            None => Command::new(server_binary()),
        };
        command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--config")
            .arg(self.dir.join("profiles.toml"))
            .args(["--database-url", &self.database_url])
            .args(["--reconcile-interval", "0"])
            .args(&self.options.extra_args)
            .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command.spawn().expect("start recorderd");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&self.server_log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let address: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                self.address = format!("http://{address}");
                return;
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("recorderd exited with {status} before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "recorderd did not start in 30 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// PID of the server process as this test sees it.
    pub fn server_pid(&self) -> i32 {
        self.server
            .as_ref()
            .map(|c| c.id() as i32)
            .unwrap_or_default()
    }

    /// Sends a signal to the server and waits for it to exit.
    pub async fn signal_server(&mut self, signal: i32) -> std::process::ExitStatus {
        send_signal(self.server_pid(), signal);
        self.wait_for_server_exit().await
    }

    /// Waits for the server process to exit (90 s at most).
    pub async fn wait_for_server_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.server.take().expect("server running");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn server_log_text(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        decode(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    pub async fn start(&self, body: Value) -> (StatusCode, Value) {
        self.post("/api/recordings/jobs/start/", body).await
    }

    /// Starts a job that must start; returns its id and its recording's.
    pub async fn start_ok(&self, profile: &str) -> (i64, i64) {
        self.start_ok_with(json!({ "source": "test://stream", "profile": profile }))
            .await
    }

    pub async fn start_ok_with(&self, body: Value) -> (i64, i64) {
        let (status, body) = self.start(body).await;
        assert_eq!(status, StatusCode::CREATED, "start failed: {body}");
        (
            body["job"]["id"].as_i64().expect("job id"),
            body["recording"]["id"].as_i64().expect("recording id"),
        )
    }

    pub async fn stop(&self, job_id: i64) -> (StatusCode, Value) {
        self.post("/api/recordings/jobs/stop/", json!({ "job_id": job_id }))
            .await
    }

    pub async fn active(&self) -> Value {
        let (status, body) = self.get("/api/recordings/jobs/active/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn cleanup(&self) -> Value {
        let (status, body) = self.post("/api/recordings/jobs/cleanup/", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn job(&self, id: i64) -> Value {
        let (status, body) = self.get(&format!("/api/recordings/jobs/{id}/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn recording(&self, id: i64) -> Value {
        let (status, body) = self.get(&format!("/api/recordings/{id}/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls a job through `GET /jobs/{id}/` (never `active` or `cleanup`,
    /// which would reconcile) until `done` holds; fails with the last state.
    pub async fn wait_for_job(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not reach the expected state in {timeout:?}; last seen: {job}\nserver log:\n{}",
                self.server_log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_for_job_end(&self, id: i64) -> Value {
        self.wait_for_job(id, Duration::from_secs(15), |j| is_terminal(&j["status"]))
            .await
    }

    pub async fn wait_for_recording(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let recording = self.recording(id).await;
            if done(&recording) {
                return recording;
            }
            assert!(
                Instant::now() < deadline,
                "recording {id} did not reach the expected state in {timeout:?}; last seen: {recording}\nserver log:\n{}",
                self.server_log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_for_recording_settled(&self, id: i64) -> Value {
        self.wait_for_recording(id, Duration::from_secs(15), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await
    }

    /// How many times post-processing ran for each recording.
    pub fn processing_runs(&self, recording_id: i64) -> usize {
        std::fs::read_to_string(self.dir.join("processed.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.trim() == recording_id.to_string())
            .count()
    }

    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // SIGTERM: the server stops its recorders and exits; SIGKILL only if
        // it hangs, so no recorder outlives the test for long.
        if let Some(mut child) = self.server.take() {
            send_signal(child.id() as i32, 15);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test files kept in {}", self.dir.display());
        }
        let _ = &self.backend;
    }
}

async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text}"));
    (status, body)
}

pub fn is_terminal(status: &Value) -> bool {
    matches!(status.as_str(), Some("completed" | "failed"))
}

/// Sends `signal` to one process.
pub fn send_signal(pid: i32, signal: i32) {
    if let (Some(pid), Some(signal)) = (
        rustix::process::Pid::from_raw(pid),
        rustix::process::Signal::from_named_raw(signal),
    ) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

async fn create_postgres_database(admin_url: &str, name: &str) -> String {
    let db_name = format!("recorderd_test_{name}");
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{db_name}\""))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    match admin_url.rfind('/') {
        Some(slash)
            if admin_url[..slash].contains("://")
                && slash > admin_url.find("://").unwrap_or(0) + 2 =>
        {
            let query = admin_url[slash..]
                .find('?')
                .map(|q| &admin_url[slash + q..])
                .unwrap_or("");
            format!("{}/{db_name}{query}", &admin_url[..slash])
        }
        _ => format!("{admin_url}/{db_name}"),
    }
}

/// Spawns a short-lived process, waits for it, and returns its PID and
/// start time: a PID that is (almost certainly) free now.
pub fn dead_process() -> (i32, i64) {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id() as i32;
    let start = start_time(pid).unwrap_or(1);
    child.wait().expect("wait");
    (pid, start)
}

/// Runs a command that is expected to exit by itself (within `timeout`;
/// killed and reported otherwise); returns its status and standard error.
pub async fn run_to_exit(
    mut command: std::process::Command,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// `starttime` of `pid` (field 22 of `/proc/<pid>/stat`).
pub fn start_time(pid: i32) -> Option<i64> {
    let stat = Process::new(pid).and_then(|p| p.stat()).ok()?;
    i64::try_from(stat.starttime).ok()
}

/// Whether `pid` is a process that has not ended (a zombie has).
pub fn process_exists(pid: i32) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| !matches!(stat.state(), Ok(ProcState::Zombie | ProcState::Dead)))
}
