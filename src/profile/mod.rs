//! Recorder profiles: how each kind of recorder is run, stopped and
//! followed by processing, from the built-in `ffmpeg` profile and an
//! optional TOML file, validated as they load so a mistake fails at
//! start-up rather than when a job starts.

mod check;
mod continuous;
mod input;
mod reach;
mod report;
mod steps;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::Signal;
use serde::{Deserialize, Deserializer};

use crate::template::{RECORDER_PLACEHOLDERS, check_list_placeholders, check_placeholders};
pub use check::Problem;
pub use continuous::{RestartPolicy, SEGMENT_LIST, SEGMENT_SECONDS};
pub use input::{HLS_KEY, ProgressFormat, input_options_for};
pub use reach::{
    HostPattern, HostRules, ReachRule, Refusal, check_host, listener_option, protocol_whitelist,
};
pub use report::StepPlan;
use steps::default_pipeline;
pub use steps::{
    BuiltinStep, POCKETSPHINX_PROGRAM, Recognizer, StepConfig, StepOutput, TRANSCRIBE_AUDIO,
    WHISPER_PROGRAM, program_exists,
};

/// Environment variables a profile gives its recorder and steps, beside
/// the few every child gets (see `supervisor::env`).
pub type EnvTable = BTreeMap<String, String>;

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

    /// [`Self::check_toml`], its problem as an error.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(Self::check_toml(text)?)
    }

    /// Gives every built-in `transcribe` step that names no model of its
    /// own this whisper.cpp model.
    pub fn use_whisper_model(&mut self, model: &Path) {
        let steps = self.by_name.values_mut().flat_map(|p| p.steps.iter_mut());
        for step in steps.filter(|s| s.builtin == Some(BuiltinStep::Transcribe)) {
            step.model.get_or_insert_with(|| model.to_owned());
        }
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
    /// limit was asked for), `{job_id}`, `{recording_id}`, `{protocols}`
    /// (what `allowed_schemes` need, for ffmpeg's `-protocol_whitelist`),
    /// and `{input_options}`, an argument of its own that becomes the
    /// `input_options` of the source's kind (zero or more arguments).
    pub command: Vec<String>,
    /// Arguments for `{input_options}` by the source's URL scheme (`http`,
    /// `rtsp`, …), plus `hls` for an HTTP(S) source whose path ends in
    /// `.m3u8` (after its scheme's).
    #[serde(default)]
    pub input_options: BTreeMap<String, Vec<String>>,
    /// What the recorder's standard output carries: `none` (it goes to the
    /// log) or `ffmpeg` (`-progress pipe:1`, read as the job's live
    /// progress).
    #[serde(default)]
    pub progress: ProgressFormat,
    /// First signal of the stop sequence, sent to the recorder's process
    /// group. SIGINT makes ffmpeg write its trailer and exit.
    #[serde(default)]
    pub stop_signal: StopSignal,
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
    /// When a recorder that ended unasked is started again: `on_failure`
    /// (at most `restart_attempts` times) or `always`.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times a recorder that ended unasked (a crash, its source
    /// gone) is started again under `on_failure`; each run writes a file
    /// of its own, joined into one before processing. Unset: 0.
    #[serde(default)]
    pub restart_attempts: Option<u32>,
    /// Wait before the first restart; doubled for each further one (at most
    /// a minute).
    #[serde(default = "default_restart_backoff")]
    pub restart_backoff_seconds: f64,
    /// Under `restart = "always"`, a run that lasted this long was healthy:
    /// the wait before the next restart starts over from
    /// `restart_backoff_seconds`.
    #[serde(default = "continuous::default_healthy_run")]
    pub healthy_run_seconds: f64,
    /// The recorder writes closed segments of this many seconds (listed in
    /// `{segment_list}`); each becomes a recording of its own, processed
    /// while the stream goes on.
    #[serde(default)]
    pub segment_seconds: Option<u32>,
    /// Labels a node must offer (`--labels`) to run this profile's
    /// recorders (`gpu`, `region=eu`); a start sent to a node without
    /// them is placed on one that has them.
    #[serde(default)]
    pub node_labels: Vec<String>,
    /// When set, the only hosts and networks a source may reach (names,
    /// `*.domain`, addresses, CIDRs); these pass the built-in refusal of
    /// link-local addresses and `deny_private`.
    #[serde(default)]
    pub allow_hosts: Vec<HostPattern>,
    /// Hosts and networks no source may reach, whatever else says.
    #[serde(default)]
    pub deny_hosts: Vec<HostPattern>,
    /// Also refuse loopback and private ranges: for shared deployments,
    /// where a client must not reach what only the server can.
    #[serde(default)]
    pub deny_private: bool,
    /// `ready` recordings older than this many days are deleted.
    #[serde(default)]
    pub retain_days: Option<f64>,
    /// The profile's `ready` recordings are kept under this many bytes
    /// together: the oldest are deleted first.
    #[serde(default)]
    pub retain_bytes: Option<u64>,
    /// When the recordings' disk falls below `--min-free-bytes`, this
    /// profile's oldest `ready` recordings may be deleted to make room
    /// (before a start is refused).
    #[serde(default)]
    pub reclaim_when_disk_low: bool,
    /// Environment of the recorder and the steps, beside `PATH`, `HOME`,
    /// `LANG`, `LC_*` and `TZ`: nothing else of the server's reaches them.
    #[serde(default)]
    pub env: EnvTable,
    /// Steps of the built-in pipeline left out on this machine, each with
    /// the program it lacks (said at start-up).
    #[serde(skip)]
    pub skipped_steps: Vec<(String, String)>,
}

fn default_grace() -> f64 {
    10.0
}

fn default_clean_exit_codes() -> Vec<i32> {
    vec![0]
}

fn default_restart_backoff() -> f64 {
    2.0
}

impl Profile {
    /// Copies any audio and video stream ffmpeg can read into Matroska,
    /// which stays readable if the recorder dies before writing its trailer
    /// (a plain MP4 does not). Clusters of at most 1 s, flushed as written:
    /// a SIGKILLed ffmpeg loses about a second, and the file grows steadily.
    /// Data streams (`-dn`: an HLS stream's timed ID3 metadata) are left
    /// out, since Matroska refuses them and ffmpeg would exit at once.
    /// Progress goes to recorderd as `key=value` blocks (`-progress
    /// pipe:1`), not as `\r`-separated lines into the log (`-nostats`).
    pub fn ffmpeg() -> Self {
        let pipeline = default_pipeline();
        Self {
            command: [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-nostats",
                "-progress",
                "pipe:1",
                "-loglevel",
                "info",
                "-protocol_whitelist",
                "{protocols}",
                "{input_options}",
                "-i",
                "{source}",
                "-map",
                "0",
                "-dn",
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
            input_options: input::builtin_input_options(),
            progress: ProgressFormat::Ffmpeg,
            stop_signal: StopSignal::default(),
            stop_grace_seconds: default_grace(),
            node_labels: Vec::new(),
            output_extension: "mkv".to_owned(),
            allowed_schemes: [
                "http", "https", "rtmp", "rtmps", "rtsp", "rtsps", "srt", "udp", "rtp", "tcp",
            ]
            .map(str::to_owned)
            .to_vec(),
            post_processing: Vec::new(),
            steps: pipeline.steps,
            stall_timeout_seconds: Some(30.0),
            clean_exit_codes: vec![0, 255],
            restart: RestartPolicy::OnFailure,
            restart_attempts: Some(3),
            restart_backoff_seconds: 2.0,
            healthy_run_seconds: continuous::default_healthy_run(),
            segment_seconds: None,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            deny_private: false,
            retain_days: None,
            retain_bytes: None,
            reclaim_when_disk_low: false,
            env: EnvTable::new(),
            skipped_steps: pipeline.skipped,
        }
    }

    /// The host rules of this profile, named `name` in refusals.
    pub fn host_rules<'a>(&'a self, name: &'a str) -> HostRules<'a> {
        HostRules {
            profile: name,
            allow: &self.allow_hosts,
            deny: &self.deny_hosts,
            deny_private: self.deny_private,
        }
    }

    /// Every step, in order: `steps`, then the `post_processing` shorthand;
    /// each with the profile's `env` under its own.
    pub fn pipeline(&self) -> Vec<StepConfig> {
        let mut steps = self.steps.clone();
        for (i, argv) in self.post_processing.iter().enumerate() {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            steps.push(StepConfig {
                retries: 0,
                ..StepConfig::command(&format!("post-processing-{}", i + 1), &argv)
            });
        }
        for step in &mut steps {
            let mut env = self.env.clone();
            env.append(&mut step.env);
            step.env = env;
        }
        steps
    }

    /// Wait before restart number `n` (from 1): doubling from
    /// `restart_backoff_seconds`, at most a minute.
    pub fn restart_backoff(&self, n: u32) -> Duration {
        let max = Duration::from_secs(60);
        let first = Duration::from_secs_f64(self.restart_backoff_seconds).min(max);
        crate::backoff::nth(first, max, n)
    }

    pub fn stall_timeout(&self) -> Option<Duration> {
        self.stall_timeout_seconds.map(Duration::from_secs_f64)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.command.is_empty() || self.command[0].is_empty() {
            bail!("`command` must name a program");
        }
        check_placeholders(&self.command, RECORDER_PLACEHOLDERS)?;
        check_list_placeholders(&self.command).map_err(anyhow::Error::msg)?;
        for (key, options) in &self.input_options {
            if options.iter().any(|o| o.contains('\0')) {
                bail!("`input_options.{key}` holds a NUL character");
            }
        }
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
        self.validate_continuous()?;
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
        if let Some(days) = self.retain_days
            && !(days.is_finite() && days > 0.0 && days <= 36_500.0)
        {
            bail!("`retain_days` must be a number of days in (0, 36500]");
        }
        if self.retain_bytes == Some(0) {
            bail!("`retain_bytes` must be at least 1");
        }
        check_env(&self.env)?;
        Ok(())
    }

    /// Whether retention may delete this profile's recordings by itself.
    pub fn has_retention(&self) -> bool {
        self.retain_days.is_some() || self.retain_bytes.is_some()
    }

    /// First signal of the stop sequence.
    pub fn stop_signal(&self) -> Signal {
        self.stop_signal.0
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

/// Names a shell would take, and none of recorderd's own: its settings
/// (`RECORDERD_*`) never reach a child, and the job marker it sets itself.
pub fn check_env(env: &EnvTable) -> anyhow::Result<()> {
    for (name, value) in env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("`env`: `{name}` is not a variable name (letters, digits and `_`)");
        }
        if name.to_ascii_uppercase().starts_with("RECORDERD_") {
            bail!("`env`: `{name}`: variables named RECORDERD_* are recorderd's own");
        }
        if value.contains('\0') {
            bail!("`env`: `{name}` holds a NUL character");
        }
    }
    Ok(())
}

/// The first signal of a profile's stop sequence, parsed from its name when
/// the profile loads so that a typo is refused at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal(pub Signal);

impl Default for StopSignal {
    /// SIGINT: what makes ffmpeg write its trailer and exit.
    fn default() -> Self {
        Self(Signal::INT)
    }
}

/// A stop signal name that is not one of those a recorder can be asked to
/// stop with.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown stop signal `{0}` (known: SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL)"
)]
pub struct UnknownSignal(String);

impl FromStr for StopSignal {
    type Err = UnknownSignal;

    /// A signal by name, with or without `SIG`, in any case (`SIGINT`,
    /// `INT`, `sigint`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let upper = name.to_ascii_uppercase();
        let short = upper.strip_prefix("SIG").unwrap_or(&upper);
        let signal = match short {
            "INT" => Signal::INT,
            "TERM" => Signal::TERM,
            "QUIT" => Signal::QUIT,
            "HUP" => Signal::HUP,
            "USR1" => Signal::USR1,
            "USR2" => Signal::USR2,
            "KILL" => Signal::KILL,
            _ => return Err(UnknownSignal(name.to_owned())),
        };
        Ok(Self(signal))
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn stop_signals_are_read_by_name_with_or_without_sig_in_any_case() {
        for (name, signal) in [
            ("SIGINT", Signal::INT),
            ("INT", Signal::INT),
            ("sigint", Signal::INT),
            ("SigTerm", Signal::TERM),
            ("kill", Signal::KILL),
        ] {
            let text = format!(
                "[profiles.x]\ncommand = [\"rec\"]\nstop_signal = \"{name}\"\n\
                 output_extension = \"mkv\"\nallowed_schemes = [\"rtmp\"]\n"
            );
            let profiles = Profiles::from_toml(&text).expect("a known signal");
            let (_, profile) = profiles.get(Some("x")).expect("profile x");
            assert_eq!(profile.stop_signal(), signal, "{name}");
        }
        let text = "[profiles.x]\ncommand = [\"rec\"]\noutput_extension = \"mkv\"\nallowed_schemes = [\"rtmp\"]\n";
        let profiles = Profiles::from_toml(text).expect("no stop_signal");
        let (_, profile) = profiles.get(Some("x")).expect("profile x");
        assert_eq!(profile.stop_signal(), Signal::INT, "SIGINT when unset");
    }

    #[test]
    fn the_readme_profile_example_is_valid() {
        let readme = include_str!("../../README.md");
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
    fn the_readme_retention_example_is_valid() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("[profiles.cameras]"))
            .expect("README has a retention example");
        let profiles = Profiles::from_toml(block).expect("README example parses");
        let (_, cameras) = profiles.get(Some("cameras")).expect("profile cameras");
        assert_eq!(cameras.retain_days, Some(14.0));
        assert!(cameras.reclaim_when_disk_low && cameras.has_retention());
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
