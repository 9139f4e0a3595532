//! The server's settings: [`ServeArgs`] resolved and validated once at
//! start-up into the [`Settings`] every part of the service reads.
//!
//! Everything has a default, so `recorderd serve` with no configuration binds
//! 127.0.0.1:8000, keeps its SQLite database, recordings and logs under
//! `./data`, and offers the built-in `ffmpeg` profile.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

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
        let mut profiles = match &args.config {
            Some(path) => Profiles::from_file(path)?,
            None => Profiles::builtin(),
        };
        profiles.use_whisper_model(&args.resolved_whisper_model());
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
