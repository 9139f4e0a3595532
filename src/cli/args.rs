//! The command line: every flag, subcommand and environment variable, in
//! one place so `--help` and the README table come from the same types.
//! Resolving the server's flags into [`crate::config::Settings`] happens
//! elsewhere; these types only say what can be typed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

// `serve`'s flags make its variant large; a command line is parsed once.
#[allow(clippy::large_enum_variant)]
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
    /// The nodes sharing the server's database: list, drain, resume.
    Nodes {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: Option<NodesCommand>,
    },
    /// Schedules on a running server: recordings started at a set time or
    /// on a cron pattern.
    Schedules {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Ask a running server whether it is ready (`/readyz`); exit 0 if so.
    /// Meant for health checks (a container's, a load balancer's): needs no
    /// curl. Without `--url` it asks the server `RECORDERD_BIND` names.
    Health(ClientArgs),
    /// Print the API's OpenAPI 3.1 document (the one served at
    /// `/api/openapi.json`) and exit: for client generators, no server needed.
    Openapi,
    /// Check a configuration file without a server.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a completion script for a shell, e.g.
    /// `recorderd completions bash > /etc/bash_completion.d/recorderd`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `recorderd man | man -l -`; with
    /// `--dir`, write one page per command there.
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// How the command-line client reaches the server and prints its answers.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's base URL. Default: `RECORDERD_BIND`'s address when that
    /// is set (a wildcard address asked on loopback), else
    /// `http://127.0.0.1:8000`.
    #[arg(long, global = true, env = "RECORDERD_URL", alias = "address")]
    pub url: Option<String>,
    /// API token, when the server requires one.
    #[arg(
        long,
        global = true,
        env = "RECORDERD_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// `table` for people, `json` (the server's JSON; one object per line
    /// for streams) for programs.
    #[arg(long, global = true, env = "RECORDERD_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Same as `--output json`.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the server: to connect and for each answer (a
    /// stream or a download waits this long for its next bytes). Default:
    /// 30, or 5 for `health`.
    #[arg(long, global = true, env = "RECORDERD_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Start recording a source.
    Start {
        source: String,
        #[arg(long)]
        title: Option<String>,
        /// One of the server's profiles (`jobs profiles` lists them).
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
    /// The end of a job's recorder output; with `--follow`, then what it
    /// writes until it ends.
    Logs {
        job_id: i64,
        #[arg(long, default_value_t = 16384)]
        bytes: u64,
        /// Keep printing what the recorder writes, until it has ended.
        #[arg(long, short)]
        follow: bool,
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
    /// The profiles a start can name.
    Profiles,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RecordingsCommand {
    /// All recordings, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 50)]
        page_size: u64,
    },
    /// Recordings whose title or transcript holds the words, best match
    /// first, with where they were said: words, "a phrase", -without, or.
    Search {
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u64,
        #[arg(long, default_value_t = 20)]
        page_size: u64,
    },
    /// One recording: its steps (status, time, error), runs, analysis and
    /// transcript.
    Show { recording_id: i64 },
    /// The transcript, a timed line per segment; `--vtt` for WebVTT.
    Transcript {
        recording_id: i64,
        #[arg(long)]
        vtt: bool,
    },
    /// Run the processing pipeline again.
    Reprocess {
        recording_id: i64,
        /// Wait until it is ready (exit 0) or failed (exit 1).
        #[arg(long)]
        wait: bool,
    },
    /// Save the recorded file.
    Download {
        recording_id: i64,
        /// Where to (`-` for standard output). Default: the file's own name,
        /// here.
        #[arg(long, short)]
        output_file: Option<PathBuf>,
        /// The MP4 browsers play instead of the recorded file.
        #[arg(long)]
        mp4: bool,
        /// Replace a file that exists.
        #[arg(long)]
        force: bool,
    },
    /// Delete a recording with its files and history (asks first, unless
    /// `--yes`; without a terminal, `--yes` is required).
    Delete {
        recording_id: i64,
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Validate a profiles file as `serve --config` would, saying the line
    /// of the first mistake; list its profiles and the steps that would
    /// run on this machine.
    Check {
        file: PathBuf,
        /// `table` or `json`.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum NodesCommand {
    /// Every node: its status, lease, jobs and capacity (the default).
    List,
    /// Take no new job on a node; those it runs finish. For rolling
    /// upgrades: drain, wait, restart (a node takes jobs again when it
    /// starts).
    Drain {
        node_id: String,
        /// Wait until the node holds no job (or `--timeout` passes).
        #[arg(long)]
        wait: bool,
        /// Seconds `--wait` waits at most.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Let a drained node take jobs again.
    Resume { node_id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule with its state and next slot.
    List,
    /// One schedule: its next slots and recent firings.
    Show { schedule_id: i64 },
    /// Schedule a recording: `--at` once, or `--cron` with `--time-zone`.
    Create {
        source: String,
        /// How long each recording lasts, in seconds.
        #[arg(long)]
        duration: i64,
        /// Once, at this instant (RFC 3339, e.g. 2026-12-01T08:00:00+01:00).
        #[arg(long, conflicts_with = "cron")]
        at: Option<String>,
        /// A cron pattern: 5 fields (minute hour day month weekday), or 6
        /// with seconds first.
        #[arg(long, requires = "time_zone")]
        cron: Option<String>,
        /// The IANA zone the pattern is read in (e.g. Europe/Paris).
        #[arg(long)]
        time_zone: Option<String>,
        #[arg(long)]
        title: Option<String>,
        /// One of the server's profiles (`jobs profiles` lists them).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Fire nothing until resumed.
    Pause { schedule_id: i64 },
    /// Fire again from the next slot on.
    Resume { schedule_id: i64 },
    /// Delete a schedule (its recordings stay).
    Delete { schedule_id: i64 },
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
    /// Seconds to keep trying at start-up while the database does not
    /// answer (it may start after recorderd), before giving up.
    #[arg(
        long = "database-wait",
        env = "RECORDERD_DATABASE_WAIT",
        default_value_t = 60
    )]
    pub database_wait_secs: u64,
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
    /// Seconds between looks for this node's recordings stuck in
    /// `processing` with no task on them (they are relaunched).
    #[arg(
        long = "processing-sweep-interval",
        env = "RECORDERD_PROCESSING_SWEEP_INTERVAL",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86400)
    )]
    pub processing_sweep_secs: u64,
    /// Seconds a schedule's slot may be missed (the server was down, or
    /// busy) and still fire late; a slot missed by longer is recorded as
    /// `missed`.
    #[arg(
        long = "schedule-grace-seconds",
        env = "RECORDERD_SCHEDULE_GRACE_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=7 * 86400)
    )]
    pub schedule_grace_secs: u64,
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
    /// Free space (bytes) the recordings' disk must keep: below it, new
    /// starts are refused with 507 and recorders are not restarted. 0
    /// disables the check.
    #[arg(long, env = "RECORDERD_MIN_FREE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub min_free_bytes: u64,
    /// Size (bytes) each job's log is kept under while its recorder runs:
    /// beyond it the log's content moves to `<log>.1` (replacing the one
    /// before) and the log starts again. 0: no cap.
    #[arg(long, env = "RECORDERD_JOB_LOG_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub job_log_max_bytes: u64,
    /// Processing steps run at once, across all recordings (transcription
    /// is CPU-heavy).
    #[arg(long, env = "RECORDERD_PROCESSING_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub processing_concurrency: u16,
    /// Token every `/api` call must carry (`Authorization: Bearer …`, or
    /// `?access_token=` on a GET, where a header cannot be set, as for
    /// EventSource); it may read and write. Unset, with no other token:
    /// the API is open, which only a loopback address allows (see
    /// `--insecure-no-auth`). Set but empty is an error. `/healthz` and
    /// `/readyz` are always open.
    #[arg(long, env = "RECORDERD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// More tokens, each `name:role:token` (role `read` or `write`),
    /// comma-separated in the variable. Logs name the token that acted.
    #[arg(
        long = "api-tokens",
        env = "RECORDERD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// A file of tokens, one `name:role:token` a line (`#` comments), e.g.
    /// a container secret.
    #[arg(long, env = "RECORDERD_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// Serve the API without any token on an address other than loopback.
    /// Only behind something else that authenticates every request.
    #[arg(long, env = "RECORDERD_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Host names (optionally `name:port`) clients reach the server by,
    /// comma-separated. Requests naming another `Host` are refused (421),
    /// which stops DNS rebinding; loopback names are always accepted. The
    /// check is on when the server listens on loopback or names are given.
    #[arg(long, env = "RECORDERD_PUBLIC_NAMES", value_delimiter = ',')]
    pub public_names: Vec<String>,
    /// Event-stream clients served at once; one more gets 503
    /// `at_capacity`.
    #[arg(long, env = "RECORDERD_MAX_EVENT_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_event_streams: u32,
    /// Seconds a client has to send a request's headers, on a new
    /// connection and between requests on a kept-alive one (an idle
    /// connection is closed after it).
    #[arg(long = "header-timeout", env = "RECORDERD_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive, and a client may leave
    /// an answer unread, before its connection is closed.
    #[arg(long = "idle-timeout", env = "RECORDERD_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout_secs: u64,
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
    /// the option, or separate URLs with commas in the variable. `http://`
    /// or `https://`. Delivery is in order, at least once, and resumes
    /// after a restart; events pruned before a URL got them (see
    /// `--event-retention-max`) are named by one `events.gap` event.
    #[arg(
        long = "webhook-url",
        env = "RECORDERD_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,
    /// Signs each webhook body with HMAC-SHA256 in `X-Recorderd-Signature`.
    #[arg(long, env = "RECORDERD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// PEM file of certificate authorities trusted for `https://` webhook
    /// receivers, beside the system's (a private CA, a self-signed
    /// receiver).
    #[arg(long, env = "RECORDERD_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Delivery attempts per event (with doubling backoff from 0.5 s, at
    /// most 60 s apart) before it is given up on.
    #[arg(long, env = "RECORDERD_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: u32,
    /// Events the log keeps for clients resuming the event stream; webhook
    /// receivers that are behind hold more back (up to
    /// `--event-retention-max`).
    #[arg(long, env = "RECORDERD_EVENT_RETENTION", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    pub event_retention: u32,
    /// Events the log keeps at most, even for a webhook receiver that has
    /// not got them yet: past it, the receiver is sent an `events.gap`
    /// naming what it missed. Default 1,000,000, and never below
    /// `--event-retention`.
    #[arg(long, env = "RECORDERD_EVENT_RETENTION_MAX", value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    pub event_retention_max: Option<u32>,
    /// This node's name among the recorderd nodes sharing one database:
    /// a node supervises, reconciles and stops only its own recorders.
    /// Must be unique and stay the same across restarts (the host name,
    /// by default).
    #[arg(long, env = "RECORDERD_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds within which the database notices that this node's host
    /// vanished (keepalives on its lease's session) and it notices a
    /// silent session itself; also how long others wait for a node that
    /// left its recorders running (`--shutdown-policy detach`) to come
    /// back. A node that dies or whose session is cut is noticed at once.
    #[arg(long = "node-timeout", env = "RECORDERD_NODE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub node_timeout_secs: u64,
    /// whisper.cpp model (`ggml-*.bin`) for the built-in `transcribe` step:
    /// with `whisper-cli` on the PATH and this file present, whisper.cpp
    /// transcribes; otherwise pocketsphinx. Default:
    /// `<data-dir>/models/ggml-base.en.bin`.
    #[arg(long, env = "RECORDERD_WHISPER_MODEL")]
    pub whisper_model: Option<PathBuf>,
    /// Recorders this node runs at once (running and stopping jobs); a
    /// start beyond it is placed on the live node with the most free
    /// slots, or gets 503 `at_capacity` with `Retry-After` when every node
    /// is full.
    #[arg(long, env = "RECORDERD_MAX_JOBS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_jobs: u32,
    /// Labels this node offers (`gpu`, `region=eu`), comma-separated: a
    /// profile with `node_labels` runs only on nodes that offer them all.
    #[arg(long, env = "RECORDERD_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Every node sees the same data directory (recordings, logs, work) at
    /// the same path: processing is shared by all nodes, and files are
    /// read in place. Checked at start with a probe file every node must
    /// see.
    #[arg(long, env = "RECORDERD_SHARED_STORAGE")]
    pub shared_storage: bool,
    /// The URL other nodes reach this one by, to proxy reads of the files
    /// it holds. Default: `http://` and the address it listens on (the
    /// host name when it listens on all addresses).
    #[arg(long, env = "RECORDERD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
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

impl DatabaseArgs {
    /// The data directory as an absolute path: every path stored or handed
    /// to a recorder or a step must mean the same file whatever the working
    /// directory of whoever reads it (ffmpeg reads a concat list's paths
    /// relative to the list, not to recorderd).
    pub fn absolute_data_dir(&self) -> std::io::Result<PathBuf> {
        std::path::absolute(&self.data_dir)
    }

    /// The database URL to connect to: the configured one, or a SQLite file
    /// in the data directory (created if missing).
    pub fn resolved_database_url(&self) -> std::io::Result<String> {
        Ok(match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.absolute_data_dir()?.join("recorderd.db").display()
            ),
        })
    }

    pub fn database_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.database_wait_secs)
    }
}

impl ServeArgs {
    /// The whisper.cpp model the built-in `transcribe` step looks for.
    pub fn resolved_whisper_model(&self) -> PathBuf {
        self.whisper_model.clone().unwrap_or_else(|| {
            self.database
                .data_dir
                .join("models")
                .join("ggml-base.en.bin")
        })
    }
}
