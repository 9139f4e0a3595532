//! A real recorderd server per test: the binary of this build, run
//! as its own process on port 0 with a fresh data directory and a fresh
//! database (a SQLite file, or a uniquely named PostgreSQL database), driven
//! over HTTP. What the benchmark harness does alike (names, databases,
//! profiles, `/proc`, starting the binary) comes from `testkit`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{Database, DatabaseConnection};
use serde_json::{Value, json};
use testkit::process::Signal;
use testkit::server::{ServeConfig, example_beside, serve_command, wait_until_listening};

mod backend;
pub mod events;
pub mod hls;
mod profiles;
pub mod rtmp;
pub mod timed_id3;
pub mod tmpfs;
mod turn;
mod waits;
pub mod webhook;

pub use backend::Backend;
pub use profiles::profiles_toml;
pub use testkit::process::{is_alive as process_exists, start_time};
pub use turn::{exclusive, exclusive_blocking, shared};

pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_recorderd"))
}

/// An example of this build, e.g. the test recorder or the bench harness.
pub fn example(name: &str) -> PathBuf {
    let path =
        example_beside(&server_binary(), name).expect("the server binary has a parent directory");
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// The test recorder built from `examples/test_recorder.rs`.
pub fn test_recorder() -> PathBuf {
    example("test_recorder")
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
    /// Start the server as the README says: `recorderd serve` in the test
    /// directory, with the default relative `./data`, the built-in
    /// profiles and (on SQLite) the default database; only the port comes
    /// from `RECORDERD_BIND` (so tests can run side by side).
    pub readme_defaults: bool,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Another app's data directory (nodes sharing their storage).
    pub data_dir: Option<PathBuf>,
    /// Sent as `Authorization: Bearer` with every request of `client`.
    pub token: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            post_processing_ok: true,
            extra_args: Vec::new(),
            wrapper: Vec::new(),
            profiles: None,
            database_url: None,
            readme_defaults: false,
            env: Vec::new(),
            data_dir: None,
            token: None,
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
    options: AppOptions,
    /// The PostgreSQL database this app made for itself, as (admin URL,
    /// name): dropped when the test passes.
    owned_database: Option<(String, String)>,
    /// This test's hold on the turn lock (see [`turn`]), kept while the
    /// server may run.
    _turn: turn::Turn,
}

/// A fresh directory for one test's files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recorderd-test-{name}"));
    std::fs::create_dir_all(&dir).expect("create test directory");
    dir
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, AppOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: AppOptions) -> Self {
        let turn = turn::shared().await;
        let name = testkit::unique_name();
        let dir = test_dir(&name);
        let database_url = match (&options.database_url, &backend) {
            (Some(url), _) => url.clone(),
            // The default: `recorderd.db` in `./data`.
            (None, Backend::Sqlite) if options.readme_defaults => {
                format!("sqlite://{}/data/recorderd.db", dir.display())
            }
            (None, _) => backend.fresh_database(&dir, &name).await,
        };
        let owned_database = match (&options.database_url, &backend) {
            (None, Backend::Postgres(admin)) => {
                Some((admin.clone(), Backend::database_name(&name)))
            }
            _ => None,
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
            client: match &options.token {
                Some(token) => client_with_token(token),
                None => http_client(),
            },
            server_log: dir.join("server-0.log"),
            dir,
            database_url,
            server: None,
            options,
            owned_database,
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
        let mut command = if self.options.readme_defaults {
            self.readme_command()
        } else {
            let data_dir = self
                .options
                .data_dir
                .clone()
                .unwrap_or_else(|| self.dir.join("data"));
            let profiles = self.dir.join("profiles.toml");
            let mut command = serve_command(
                &server_binary(),
                &self.options.wrapper,
                ServeConfig {
                    data_dir: &data_dir,
                    profiles: &profiles,
                    database_url: &self.database_url,
                },
            );
            command.args(["--reconcile-interval", "0"]);
            command
        };
        command
            .args(&self.options.extra_args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stderr(log);
        let server = self
            .server
            .insert(command.spawn().expect("start recorderd"));
        match wait_until_listening(server, &self.server_log, Duration::from_secs(30)).await {
            Ok(address) => self.address = format!("http://{address}"),
            Err(e) => panic!("recorderd did not start: {e}\n{}", self.server_log_text()),
        }
    }

    /// `recorderd serve`, run in the test directory as the README says.
    fn readme_command(&self) -> Command {
        let mut command = Command::new(server_binary());
        command
            .arg("serve")
            .current_dir(&self.dir)
            .env("RECORDERD_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if !self.database_url.starts_with("sqlite:") {
            command.env("RECORDERD_DATABASE_URL", &self.database_url);
        }
        command
    }

    /// Sets the server's environment for its next start.
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.options.env = env;
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

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
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
            if let Some((admin, name)) = self.owned_database.take() {
                testkit::postgres::drop_database_when_unused(&admin, &name);
            }
        } else {
            eprintln!("test files kept in {}", self.dir.display());
        }
    }
}

async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text}"));
    (status, body)
}

/// A client for the tests. reqwest's TLS (built for the server's HTTPS
/// webhooks) needs its crypto provider installed before any client exists,
/// even a plain-HTTP one.
pub fn http_client() -> reqwest::Client {
    recorderd::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    recorderd::tls::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}")
        .parse()
        .expect("a token fit for a header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

pub fn is_terminal(status: &Value) -> bool {
    matches!(status.as_str(), Some("completed" | "failed"))
}

/// Sends `signal` (a number, as `kill -N` takes it) to one process.
pub fn send_signal(pid: i32, signal: i32) {
    if let Some(signal) = Signal::from_named_raw(signal) {
        testkit::process::signal(pid, signal);
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
