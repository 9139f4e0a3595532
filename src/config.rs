//! Configuration: command-line flags, `RECORDERD_*` environment variables and
//! an optional TOML file of recorder profiles.
//!
//! Everything has a default, so `recorderd serve` with no configuration binds
//! 127.0.0.1:8000, keeps its SQLite database, recordings and logs under
//! `./data`, and offers the built-in `ffmpeg` profile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rustix::process::Signal;
use serde::Deserialize;

/// recorderd: a supervisor for recording jobs.
#[derive(Debug, Parser)]
#[command(
    name = "recorderd",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand, recorderd serves.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and supervise recorders (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Jobs on a running server: start, stop, list, follow.
    Jobs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Recordings on a running server.
    Recordings {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: RecordingsCommand,
    },
    /// Ask a running server whether it is ready (`/readyz`); exit 0 if so.
    /// Meant for container health checks: needs no curl.
    Health(HealthArgs),
    /// Print the API's OpenAPI 3.1 document (the one served at
    /// `/api/openapi.json`) and exit: for client generators, no server needed.
    Openapi,
}

/// How the command-line client reaches the server.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "RECORDERD_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub url: String,
    /// API token, when the server requires one.
    #[arg(
        long,
        global = true,
        env = "RECORDERD_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Start recording a source.
    Start {
        source: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Stop a job (its recorder gets the profile's stop sequence).
    Stop { job_id: i64 },
    /// Running and stopping jobs.
    Active,
    /// End jobs whose recorder is gone.
    Cleanup,
    /// All jobs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 50)]
        page_size: u64,
    },
    /// One job.
    Show { job_id: i64 },
    /// The end of a job's recorder output.
    Logs {
        job_id: i64,
        #[arg(long, default_value_t = 16384)]
        bytes: u64,
    },
    /// Follow transitions as they happen (Ctrl-C to stop).
    Watch {
        /// Resume after this event id.
        #[arg(long)]
        last_event_id: Option<i64>,
        /// Exit after this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RecordingsCommand {
    /// All recordings, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 50)]
        page_size: u64,
    },
    /// One recording with its jobs, steps, analysis and transcript.
    Show { recording_id: i64 },
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Address of the server to ask.
    #[arg(
        long,
        env = "RECORDERD_HEALTH_ADDRESS",
        default_value = "127.0.0.1:8000"
    )]
    pub address: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Directory holding the SQLite database, recordings and recorder logs.
    #[arg(long, env = "RECORDERD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Any sea-orm URL (`sqlite://…`, `postgres://…`). Default: SQLite file
    /// `recorderd.db` in the data directory.
    #[arg(long, env = "RECORDERD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Log format on standard error.
    #[arg(long, env = "RECORDERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "RECORDERD_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// TOML file with recorder profiles (see README).
    #[arg(long, env = "RECORDERD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds between reconciliations of jobs that no task of this process
    /// owns (0 disables the timer; start-up, `active` and `cleanup` still
    /// reconcile).
    #[arg(
        long = "reconcile-interval",
        env = "RECORDERD_RECONCILE_INTERVAL",
        default_value_t = 30
    )]
    pub reconcile_interval_secs: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "RECORDERD_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Upper bound, in seconds, on a graceful shutdown: past it, recorders
    /// still alive are killed and the process exits.
    #[arg(
        long = "shutdown-timeout",
        env = "RECORDERD_SHUTDOWN_TIMEOUT",
        default_value_t = 60
    )]
    pub shutdown_timeout_secs: u64,
    /// What SIGTERM/SIGINT does to running recordings: `stop` them (each
    /// gets its profile's stop sequence and its final state committed) or
    /// `detach` from them (they keep recording; the next supervisor adopts
    /// them). `detach` is refused as PID 1, where the kernel kills every
    /// process of the namespace when recorderd exits.
    #[arg(long, env = "RECORDERD_SHUTDOWN_POLICY", value_enum, default_value_t = ShutdownPolicy::Stop)]
    pub shutdown_policy: ShutdownPolicy,
    /// Processing steps run at once, across all recordings (transcription
    /// is CPU-heavy).
    #[arg(long, env = "RECORDERD_PROCESSING_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub processing_concurrency: u16,
    /// Token every `/api` call must carry (`Authorization: Bearer …`, or
    /// `?access_token=` where a header cannot be set, as for EventSource).
    /// Unset: the API is open. `/healthz` and `/readyz` are always open.
    #[arg(long, env = "RECORDERD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Serve `/metrics` without the token even when one is set.
    #[arg(long, env = "RECORDERD_OPEN_METRICS")]
    pub open_metrics: bool,
    /// Origins allowed to call the API from a browser page served
    /// elsewhere (CORS), comma-separated; `*` for any.
    #[arg(long, env = "RECORDERD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Behave as PID 1 even when not: reap every orphan that is not a
    /// recorder. Detected automatically when recorderd is PID 1.
    #[arg(long, env = "RECORDERD_INIT")]
    pub init: bool,
    /// POST every event (the event stream's, as JSON) to this URL; repeat
    /// the option, or separate URLs with commas in the variable. http://
    /// only. Delivery is in order, at least once, and resumes after a
    /// restart.
    #[arg(
        long = "webhook-url",
        env = "RECORDERD_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,
    /// Signs each webhook body with HMAC-SHA256 in `X-Recorderd-Signature`.
    #[arg(long, env = "RECORDERD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Delivery attempts per event (with doubling backoff from 0.5 s, at
    /// most 60 s apart) before it is given up on.
    #[arg(long, env = "RECORDERD_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: u32,
    /// This node's name among the recorderd nodes sharing one database:
    /// a node supervises, reconciles and stops only its own recorders.
    /// Must be unique and stay the same across restarts (the host name,
    /// by default).
    #[arg(long, env = "RECORDERD_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds without a heartbeat after which another node's jobs are
    /// ended as lost (heartbeats are sent every quarter of this). Clocks
    /// of the nodes must agree far better than this.
    #[arg(long = "node-timeout", env = "RECORDERD_NODE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub node_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShutdownPolicy {
    Stop,
    Detach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The host name: stable across restarts on one machine (and for a
/// container with a set host name), unique among machines.
fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl DatabaseArgs {
    /// The database URL to connect to: the configured one, or a SQLite file
    /// in the data directory (created if missing).
    pub fn resolved_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("recorderd.db").display()
            ),
        }
    }
}

/// Everything the running service needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub reconcile_interval: Option<Duration>,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub shutdown_policy: ShutdownPolicy,
    pub processing_concurrency: usize,
    pub api_token: Option<String>,
    pub open_metrics: bool,
    pub cors_origins: Vec<String>,
    /// True when running as PID 1 (or asked to behave so).
    pub init: bool,
    pub profiles: Profiles,
    pub webhooks: crate::webhooks::WebhookSettings,
    /// This node's name (see [`ServeArgs::node_id`]).
    pub node_id: String,
    pub node_timeout: Duration,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let profiles = match &args.config {
            Some(path) => Profiles::from_file(path)?,
            None => Profiles::builtin(),
        };
        let init = args.init || rustix::process::getpid().as_raw_nonzero().get() == 1;
        if let Some(token) = &args.api_token
            && !token.is_empty()
            && token.len() < 16
        {
            bail!("the API token must be at least 16 characters long");
        }
        if init && args.shutdown_policy == ShutdownPolicy::Detach {
            bail!(
                "--shutdown-policy detach is refused when recorderd is PID 1 (or --init): when PID 1 of a \
                 PID namespace exits, the kernel kills every process in it, so recorders cannot outlive it. \
                 Use `stop`, or run recorderd under another init if recordings must survive restarts."
            );
        }
        let webhooks = crate::webhooks::WebhookSettings {
            urls: args
                .webhook_urls
                .iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            secret: args.webhook_secret.clone().filter(|s| !s.is_empty()),
            max_attempts: args.webhook_max_attempts,
        };
        webhooks.validate()?;
        let node_id = match args.node_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => default_node_id(),
        };
        if node_id.len() > 255 || node_id.chars().any(char::is_control) {
            bail!("--node-id must be at most 255 characters, without control characters");
        }
        Ok(Self {
            bind: args.bind,
            data_dir: args.database.data_dir.clone(),
            database_url: args.database.resolved_database_url(),
            reconcile_interval: (args.reconcile_interval_secs > 0)
                .then(|| Duration::from_secs(args.reconcile_interval_secs)),
            max_body_bytes: args.max_body_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            shutdown_policy: args.shutdown_policy,
            processing_concurrency: usize::from(args.processing_concurrency),
            api_token: args.api_token.clone().filter(|t| !t.is_empty()),
            open_metrics: args.open_metrics,
            cors_origins: args.cors_origins.clone(),
            init,
            profiles,
            webhooks,
            node_id,
            node_timeout: Duration::from_secs(args.node_timeout_secs),
        })
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// Scratch directories of the processing steps, one per recording.
    pub fn work_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }
}

/// The profiles a client can choose from, and the one used when it names none.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub default: String,
    pub by_name: BTreeMap<String, Profile>,
}

/// Shape of the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Only the built-in `ffmpeg` profile.
    pub fn builtin() -> Self {
        let mut by_name = BTreeMap::new();
        by_name.insert("ffmpeg".to_owned(), Profile::ffmpeg());
        Self {
            default: "ffmpeg".to_owned(),
            by_name,
        }
    }

    /// The built-in profiles plus (and overridden by) those of a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading profiles from {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let file: ProfilesFile = toml::from_str(text).context("invalid TOML")?;
        let mut profiles = Self::builtin();
        for (name, profile) in file.profiles {
            profile
                .validate()
                .with_context(|| format!("profile `{name}`"))?;
            profiles.by_name.insert(name, profile);
        }
        if let Some(default) = file.default_profile {
            if !profiles.by_name.contains_key(&default) {
                bail!("default_profile `{default}` is not a configured profile");
            }
            profiles.default = default;
        }
        Ok(profiles)
    }

    pub fn get(&self, name: Option<&str>) -> Option<(&str, &Profile)> {
        let name = name.unwrap_or(&self.default);
        self.by_name
            .get_key_value(name)
            .map(|(name, profile)| (name.as_str(), profile))
    }
}

/// How one kind of recorder is run and stopped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// argv template; each argument is substituted on its own, never through
    /// a shell: `{source}`, `{output}`, `{duration}` (seconds, `0` when no
    /// limit was asked for), `{job_id}`, `{recording_id}`.
    pub command: Vec<String>,
    /// First signal of the stop sequence, sent to the recorder's process
    /// group. SIGINT makes ffmpeg write its trailer and exit.
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// Time each step of the stop sequence is given before the next, harder
    /// signal (stop signal → SIGTERM → SIGKILL).
    #[serde(default = "default_grace")]
    pub stop_grace_seconds: f64,
    /// Extension of the output file, without the dot.
    pub output_extension: String,
    /// URL schemes a source may use (`rtmp`, `http`, …).
    pub allowed_schemes: Vec<String>,
    /// Shorthand for command steps without options: each argv becomes a
    /// step named `post-processing-N`, run after the `steps`.
    #[serde(default)]
    pub post_processing: Vec<Vec<String>>,
    /// The processing pipeline, run in order once the recording has ended.
    /// The recording is `ready` when every step succeeded.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// A recorder alive whose output has not grown for this long is stopped
    /// and its job fails with reason `stalled`. None: never.
    #[serde(default)]
    pub stall_timeout_seconds: Option<f64>,
    /// Exit codes that mean "stopped cleanly, output finalized" after a stop
    /// signal. ffmpeg exits 255 after SIGINT once its trailer is written.
    #[serde(default = "default_clean_exit_codes")]
    pub clean_exit_codes: Vec<i32>,
    /// How many times a recorder that crashed (a non-zero exit or a signal
    /// nobody asked for) is started again; each run writes a segment of its
    /// own, joined into one file before processing.
    #[serde(default)]
    pub restart_attempts: u32,
    /// Wait before the first restart; doubled for each further one (at most
    /// a minute).
    #[serde(default = "default_retry_backoff")]
    pub restart_backoff_seconds: f64,
}

/// One step of the processing pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Unique within the profile; shown in the API.
    pub name: String,
    /// A built-in step instead of a command.
    #[serde(default)]
    pub builtin: Option<BuiltinStep>,
    /// argv template: `{input}` (the recorded file), `{workdir}` (a
    /// directory of this recording's), `{recording_id}`.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default = "default_step_timeout")]
    pub timeout_seconds: f64,
    /// Attempts after the first one fails.
    #[serde(default)]
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff_seconds: f64,
    /// Keep the command's standard output as this recording field.
    #[serde(default)]
    pub stdout: Option<StepOutput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinStep {
    /// ffprobe and ffmpeg measure duration, codec, loudness and silence.
    Analyze,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutput {
    Transcript,
}

fn default_step_timeout() -> f64 {
    600.0
}

fn default_retry_backoff() -> f64 {
    2.0
}

fn default_clean_exit_codes() -> Vec<i32> {
    vec![0]
}

impl StepConfig {
    fn command(name: &str, argv: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            builtin: None,
            command: argv.iter().map(|a| (*a).to_owned()).collect(),
            timeout_seconds: default_step_timeout(),
            retries: 1,
            retry_backoff_seconds: default_retry_backoff(),
            stdout: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    pub fn retry_backoff(&self) -> Duration {
        Duration::from_secs_f64(self.retry_backoff_seconds)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            bail!(
                "step name `{}` must be letters, digits, `-` or `_`",
                self.name
            );
        }
        match (&self.builtin, self.command.is_empty()) {
            (Some(_), false) => bail!(
                "step `{}`: either `builtin` or `command`, not both",
                self.name
            ),
            (None, true) => bail!("step `{}` needs a `command` or a `builtin`", self.name),
            _ => {}
        }
        if !self.command.is_empty() && self.command[0].is_empty() {
            bail!("step `{}`: `command` must name a program", self.name);
        }
        check_placeholders(&self.command, PROCESSING_PLACEHOLDERS)?;
        for (field, value, max) in [
            ("timeout_seconds", self.timeout_seconds, 7.0 * 24.0 * 3600.0),
            ("retry_backoff_seconds", self.retry_backoff_seconds, 3600.0),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= max) {
                bail!("step `{}`: `{field}` must be in (0, {max}]", self.name);
            }
        }
        if self.retries > 20 {
            bail!("step `{}`: at most 20 `retries`", self.name);
        }
        Ok(())
    }
}

/// Whether `program` is an executable on the `PATH`.
pub fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The pipeline the built-in profile runs: `analyze` where ffprobe and
/// ffmpeg exist, and offline transcription where pocketsphinx does.
fn default_pipeline() -> Vec<StepConfig> {
    let mut steps = Vec::new();
    let ffmpeg = program_exists("ffmpeg");
    if ffmpeg && program_exists("ffprobe") {
        steps.push(StepConfig {
            builtin: Some(BuiltinStep::Analyze),
            ..StepConfig::command("analyze", &[])
        });
    }
    if ffmpeg && program_exists("pocketsphinx_continuous") {
        steps.push(StepConfig::command(
            "transcode",
            &[
                "ffmpeg",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-i",
                "{input}",
                "-vn",
                "-ar",
                "16000",
                "-ac",
                "1",
                "{workdir}/audio-16k.wav",
            ],
        ));
        steps.push(StepConfig {
            stdout: Some(StepOutput::Transcript),
            ..StepConfig::command(
                "transcribe",
                &[
                    "pocketsphinx_continuous",
                    "-infile",
                    "{workdir}/audio-16k.wav",
                    "-logfn",
                    "/dev/null",
                ],
            )
        });
    }
    steps
}

fn default_stop_signal() -> String {
    "SIGINT".to_owned()
}

fn default_grace() -> f64 {
    10.0
}

const RECORDER_PLACEHOLDERS: &[&str] = &["source", "output", "duration", "job_id", "recording_id"];
const PROCESSING_PLACEHOLDERS: &[&str] = &["input", "workdir", "recording_id"];

impl Profile {
    /// Copies any stream ffmpeg can read into Matroska, which stays readable
    /// if the recorder dies before writing its trailer (a plain MP4 does
    /// not). Clusters of at most 1 s, flushed as written: a SIGKILLed ffmpeg
    /// loses about a second, and the file grows steadily (which is what stall
    /// detection watches).
    pub fn ffmpeg() -> Self {
        Self {
            command: [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "info",
                "-i",
                "{source}",
                "-map",
                "0",
                "-c",
                "copy",
                "-f",
                "matroska",
                "-cluster_time_limit",
                "1000",
                "-flush_packets",
                "1",
                "{output}",
            ]
            .map(str::to_owned)
            .to_vec(),
            stop_signal: default_stop_signal(),
            stop_grace_seconds: default_grace(),
            output_extension: "mkv".to_owned(),
            allowed_schemes: [
                "http", "https", "rtmp", "rtmps", "rtsp", "rtsps", "srt", "udp", "rtp", "tcp",
            ]
            .map(str::to_owned)
            .to_vec(),
            post_processing: Vec::new(),
            steps: default_pipeline(),
            stall_timeout_seconds: Some(30.0),
            clean_exit_codes: vec![0, 255],
            restart_attempts: 3,
            restart_backoff_seconds: 2.0,
        }
    }

    /// Every step, in order: `steps`, then the `post_processing` shorthand.
    pub fn pipeline(&self) -> Vec<StepConfig> {
        let mut steps = self.steps.clone();
        for (i, argv) in self.post_processing.iter().enumerate() {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            steps.push(StepConfig {
                retries: 0,
                ..StepConfig::command(&format!("post-processing-{}", i + 1), &argv)
            });
        }
        steps
    }

    /// Wait before restart number `n` (from 1).
    pub fn restart_backoff(&self, n: u32) -> Duration {
        let factor = 2f64.powi(n.saturating_sub(1).min(16) as i32);
        Duration::from_secs_f64((self.restart_backoff_seconds * factor).min(60.0))
    }

    pub fn stall_timeout(&self) -> Option<Duration> {
        self.stall_timeout_seconds.map(Duration::from_secs_f64)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.command.is_empty() || self.command[0].is_empty() {
            bail!("`command` must name a program");
        }
        check_placeholders(&self.command, RECORDER_PLACEHOLDERS)?;
        for step in &self.post_processing {
            if step.is_empty() || step[0].is_empty() {
                bail!("each `post_processing` entry must name a program");
            }
        }
        let mut names = std::collections::HashSet::new();
        for step in self.pipeline() {
            step.validate()?;
            if !names.insert(step.name.clone()) {
                bail!("two steps are named `{}`", step.name);
            }
        }
        if self.restart_attempts > 100 {
            bail!("`restart_attempts` must be at most 100");
        }
        if !(self.restart_backoff_seconds.is_finite()
            && (0.0..=3600.0).contains(&self.restart_backoff_seconds))
        {
            bail!("`restart_backoff_seconds` must be between 0 and 3600");
        }
        if let Some(stall) = self.stall_timeout_seconds
            && !(stall.is_finite() && (1.0..=24.0 * 3600.0).contains(&stall))
        {
            bail!("`stall_timeout_seconds` must be between 1 and 86400");
        }
        parse_signal(&self.stop_signal)?;
        if !(self.stop_grace_seconds.is_finite()
            && self.stop_grace_seconds > 0.0
            && self.stop_grace_seconds <= 3600.0)
        {
            bail!("`stop_grace_seconds` must be a number of seconds in (0, 3600]");
        }
        if self.output_extension.is_empty()
            || !self
                .output_extension
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            bail!("`output_extension` must be letters and digits, without a dot");
        }
        if self.allowed_schemes.is_empty() {
            bail!("`allowed_schemes` must list at least one URL scheme");
        }
        Ok(())
    }

    pub fn stop_signal(&self) -> Signal {
        // Validated when the profile was loaded; the built-in one is SIGINT.
        parse_signal(&self.stop_signal).unwrap_or(Signal::INT)
    }

    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs_f64(self.stop_grace_seconds)
    }

    pub fn allows_scheme(&self, scheme: &str) -> bool {
        self.allowed_schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
    }
}

/// A signal by name (`SIGINT`, `INT`, `sigint`).
pub fn parse_signal(name: &str) -> anyhow::Result<Signal> {
    let upper = name.to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    Ok(match short {
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "QUIT" => Signal::QUIT,
        "HUP" => Signal::HUP,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "KILL" => Signal::KILL,
        _ => bail!("unknown stop signal `{name}`"),
    })
}

/// Rejects `{name}` placeholders the template language does not know, so a
/// typo fails at start-up rather than reaching a recorder's argv.
fn check_placeholders(args: &[String], known: &[&str]) -> anyhow::Result<()> {
    for arg in args {
        let mut rest = arg.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !known.contains(&name)
            {
                bail!(
                    "unknown placeholder `{{{name}}}` in `{arg}` (known: {})",
                    known.join(", ")
                );
            }
            rest = &after[close + 1..];
        }
    }
    Ok(())
}

/// Substitutes placeholders in each argument separately, in one pass over
/// the template: a value (a client's source URL, say) that itself contains
/// `{output}` is copied as it is, never expanded.
pub fn render_argv(template: &[String], values: &[(&str, &str)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open..];
                let known = values.iter().find(|(name, _)| {
                    after
                        .strip_prefix('{')
                        .and_then(|a| a.strip_prefix(*name))
                        .is_some_and(|a| a.starts_with('}'))
                });
                match known {
                    Some((name, value)) => {
                        out.push_str(value);
                        rest = &after[name.len() + 2..];
                    }
                    None => {
                        out.push('{');
                        rest = &after[1..];
                    }
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_per_argument_without_a_shell() {
        let template = vec!["rec".into(), "--in={source}".into(), "{output}".into()];
        let argv = render_argv(
            &template,
            &[("source", "rtmp://x/a b; rm -rf /"), ("output", "/d/o.mkv")],
        );
        assert_eq!(argv, ["rec", "--in=rtmp://x/a b; rm -rf /", "/d/o.mkv"]);
        let argv = render_argv(
            &template,
            &[("source", "rtmp://x/{output}"), ("output", "/d/o.mkv")],
        );
        assert_eq!(argv[1], "--in=rtmp://x/{output}", "values are not expanded");
    }

    #[test]
    fn unknown_placeholders_and_bad_signals_are_refused() {
        let text = r#"
            [profiles.x]
            command = ["rec", "{sauce}"]
            output_extension = "mkv"
            allowed_schemes = ["rtmp"]
        "#;
        let err = format!("{:#}", Profiles::from_toml(text).unwrap_err());
        assert!(err.contains("sauce"), "{err}");

        let text = r#"
            [profiles.x]
            command = ["rec"]
            stop_signal = "SIGFOO"
            output_extension = "mkv"
            allowed_schemes = ["rtmp"]
        "#;
        let err = format!("{:#}", Profiles::from_toml(text).unwrap_err());
        assert!(err.contains("SIGFOO"), "{err}");
    }

    #[test]
    fn the_readme_profile_example_is_valid() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("default_profile"))
            .expect("README has a profile example");
        let profiles = Profiles::from_toml(block).expect("README example parses");
        assert!(profiles.get(Some("ffmpeg_with_hook")).is_some());
    }

    #[test]
    fn file_profiles_join_the_builtin_one() {
        let text = r#"
            default_profile = "x"
            [profiles.x]
            command = ["rec", "{output}"]
            output_extension = "ts"
            allowed_schemes = ["udp"]
        "#;
        let profiles = Profiles::from_toml(text).unwrap();
        assert_eq!(profiles.get(None).map(|p| p.0), Some("x"));
        assert!(profiles.get(Some("ffmpeg")).is_some());
    }
}
