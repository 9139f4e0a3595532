//! The server's settings: [`ServeArgs`] resolved and validated once at
//! start-up into the [`Settings`] every part of the service reads.
//!
//! Everything has a default, so `recorderd serve` with no configuration binds
//! 127.0.0.1:8000, keeps its SQLite database, recordings and logs under
//! `./data`, and offers the built-in `ffmpeg` profile.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::access::{PublicNames, TokenSources, Tokens};
use crate::cli::args::{ServeArgs, ShutdownPolicy};
use crate::profile::Profiles;

/// The host name: stable across restarts on one machine (and for a
/// container with a set host name), unique among machines.
fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Everything the running service needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Absolute, whatever was given.
    pub data_dir: PathBuf,
    pub database_url: String,
    /// How long start-up waits for an unreachable database.
    pub database_wait: Duration,
    /// Free space the recordings' disk must keep for a start (0: no check).
    pub min_free_bytes: u64,
    /// Cap of each running job's log (`None`: no cap).
    pub job_log_max_bytes: Option<u64>,
    pub reconcile_interval: Option<Duration>,
    /// How often stuck processing is looked for.
    pub processing_sweep: Duration,
    /// How late a schedule's missed slot may still fire.
    pub schedule_grace: Duration,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub shutdown_policy: ShutdownPolicy,
    pub processing_concurrency: usize,
    /// Who may call the API; empty: anyone who reaches it.
    pub tokens: Tokens,
    /// The `Host` names requests may carry.
    pub public_names: PublicNames,
    pub open_metrics: bool,
    pub cors_origins: Vec<String>,
    /// True when running as PID 1 (or asked to behave so).
    pub init: bool,
    pub profiles: Profiles,
    pub webhooks: crate::webhooks::WebhookSettings,
    pub event_retention: crate::events::Retention,
    /// This node's name (see [`ServeArgs::node_id`]).
    pub node_id: String,
    /// Marks this node's recorders in their environment: its id and a
    /// digest of its database, so that servers sharing a machine (another
    /// installation, a test) never take each other's recorders for their
    /// own, while a restart of this one always recognizes them.
    pub recorder_marker: String,
    pub node_timeout: Duration,
    pub cluster: Cluster,
    pub limits: Limits,
}

/// What one node serves at once, and how long a client may dawdle.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Live recorders (running and stopping jobs) of this node.
    pub max_jobs: usize,
    pub max_event_streams: usize,
    /// To send a request's headers; also how long an idle connection is
    /// kept.
    pub header_timeout: Duration,
    /// For a request body to arrive, or an answer to be read.
    pub idle_timeout: Duration,
}

/// How this node takes part in a cluster of nodes sharing its database.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Labels it offers to profiles that require some.
    pub labels: Vec<String>,
    /// Its data directory is every node's (checked at start).
    pub shared_storage: bool,
    /// The URL others reach it by; derived from the bound address when
    /// absent.
    pub advertise_url: Option<String>,
}

impl Cluster {
    fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut labels: Vec<String> = Vec::new();
        for label in args
            .labels
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
        {
            if label.len() > 64 || label.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("--labels: `{label}` must be at most 64 characters, without spaces");
            }
            if !labels.iter().any(|l| l == label) {
                labels.push(label.to_owned());
            }
        }
        if labels.len() > 32 {
            bail!("--labels: at most 32 labels");
        }
        let advertise_url = match args.advertise_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let url = url::Url::parse(text)
                    .with_context(|| format!("--advertise-url `{text}` is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    bail!("--advertise-url must be an http:// or https:// URL with a host");
                }
                Some(text.trim_end_matches('/').to_owned())
            }
        };
        Ok(Self {
            labels,
            shared_storage: args.shared_storage,
            advertise_url,
        })
    }
}

/// `<node id>@<digest>`: the digest of the database's URL without its
/// password (no secret reaches a recorder's environment).
fn recorder_marker(node_id: &str, database_url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(crate::redact::url(database_url).as_bytes());
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{node_id}@{short}")
}

/// `--event-retention` and its cap. An explicit cap below the retention
/// is a mistake; the default cap rises with a retention above it.
fn event_retention(
    args: &ServeArgs,
    webhooks: &crate::webhooks::WebhookSettings,
) -> anyhow::Result<crate::events::Retention> {
    use crate::events::Retention;
    // Both are at most 1e9 (the parsers' range), so they fit an id.
    let keep = i32::try_from(args.event_retention)?;
    let max = match args.event_retention_max {
        Some(max) if max < args.event_retention => {
            bail!("--event-retention-max ({max}) must be at least --event-retention ({keep})")
        }
        Some(max) => i32::try_from(max)?,
        None => Retention::DEFAULT_MAX.max(keep),
    };
    Ok(Retention {
        keep,
        max,
        webhook_urls: webhooks.urls.clone(),
    })
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut profiles = match &args.config {
            Some(path) => Profiles::from_file(path)?,
            None => Profiles::builtin(),
        };
        profiles.use_whisper_model(&args.resolved_whisper_model());
        let init = args.init || rustix::process::getpid().as_raw_nonzero().get() == 1;
        let tokens = Tokens::load(TokenSources {
            single: args.api_token.as_deref(),
            list: &args.api_tokens,
            file: args.api_tokens_file.as_deref(),
        })?;
        check_exposure(args.bind, &tokens, args.insecure_no_auth)?;
        let public_names = PublicNames::new(&args.public_names, is_loopback(args.bind.ip()))?;
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
            ca_file: args.webhook_ca_file.clone(),
        };
        webhooks.validate()?;
        let event_retention = event_retention(args, &webhooks)?;
        let node_id = match args.node_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => default_node_id(),
        };
        if node_id.len() > 255 || node_id.chars().any(char::is_control) {
            bail!("--node-id must be at most 255 characters, without control characters");
        }
        let database_url = args
            .database
            .resolved_database_url()
            .context("resolving the data directory")?;
        Ok(Self {
            bind: args.bind,
            data_dir: args
                .database
                .absolute_data_dir()
                .context("resolving the data directory")?,
            database_url: database_url.clone(),
            database_wait: args.database.database_wait(),
            min_free_bytes: args.min_free_bytes,
            job_log_max_bytes: (args.job_log_max_bytes > 0).then_some(args.job_log_max_bytes),
            processing_sweep: Duration::from_secs(args.processing_sweep_secs),
            schedule_grace: Duration::from_secs(args.schedule_grace_secs),
            reconcile_interval: (args.reconcile_interval_secs > 0)
                .then(|| Duration::from_secs(args.reconcile_interval_secs)),
            max_body_bytes: args.max_body_bytes,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            shutdown_policy: args.shutdown_policy,
            processing_concurrency: usize::from(args.processing_concurrency),
            tokens,
            public_names,
            open_metrics: args.open_metrics,
            cors_origins: args.cors_origins.clone(),
            init,
            profiles,
            webhooks,
            recorder_marker: recorder_marker(&node_id, &database_url),
            event_retention,
            node_id,
            node_timeout: Duration::from_secs(args.node_timeout_secs),
            cluster: Cluster::from_args(args)?,
            limits: Limits {
                max_jobs: args.max_jobs as usize,
                max_event_streams: args.max_event_streams as usize,
                header_timeout: Duration::from_secs(args.header_timeout_secs),
                idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            },
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

/// Loopback, IPv4-mapped IPv6 included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Refuses an open API on any address but loopback: whoever reaches such
/// a port could start recorders, read every recording and delete them.
fn check_exposure(bind: SocketAddr, tokens: &Tokens, insecure_no_auth: bool) -> anyhow::Result<()> {
    if !tokens.is_empty() || is_loopback(bind.ip()) {
        return Ok(());
    }
    if insecure_no_auth {
        tracing::warn!(%bind, "serving the API without a token (--insecure-no-auth): whatever reaches this address must authenticate every request first");
        return Ok(());
    }
    bail!(
        "refusing to serve the API without a token on {bind}: anyone who reaches that address \
         could start recorders, read recordings and logs, and delete them. Set RECORDERD_API_TOKEN \
         (or RECORDERD_API_TOKENS / --api-tokens-file; `openssl rand -base64 24` makes one), or pass \
         --insecure-no-auth if something in front of recorderd authenticates every request."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_api_is_served_on_loopback_only() {
        let open = Tokens::default();
        for bind in ["127.0.0.1:8000", "[::1]:8000", "[::ffff:127.0.0.1]:8000"] {
            let bind: SocketAddr = bind.parse().expect("address");
            assert!(check_exposure(bind, &open, false).is_ok(), "{bind}");
        }
        for bind in ["0.0.0.0:8000", "[::]:8000", "192.168.1.10:8000"] {
            let bind: SocketAddr = bind.parse().expect("address");
            let err = check_exposure(bind, &open, false)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("RECORDERD_API_TOKEN"), "{err}");
            assert!(err.contains("--insecure-no-auth"), "{err}");
            assert!(
                check_exposure(bind, &open, true).is_ok(),
                "{bind} on purpose"
            );
        }
    }
}
