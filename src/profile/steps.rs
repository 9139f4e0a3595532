//! The processing pipeline's steps as a profile declares them: a command
//! template or a built-in step, with its timeout and retries; and the
//! pipeline the built-in profile runs, chosen by the programs installed.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use crate::template::{PROCESSING_PLACEHOLDERS, check_placeholders};

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
    /// Environment of this step's command, over the profile's `env`.
    #[serde(default)]
    pub env: super::EnvTable,
    /// A failure of this step (after its retries) is recorded on its row
    /// but does not fail the recording: the pipeline goes on, and the
    /// recording can still be `ready`.
    #[serde(default)]
    pub optional: bool,
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

impl StepConfig {
    /// A command step with the defaults a TOML step would get.
    pub(super) fn command(name: &str, argv: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            builtin: None,
            command: argv.iter().map(|a| (*a).to_owned()).collect(),
            timeout_seconds: default_step_timeout(),
            retries: 1,
            retry_backoff_seconds: default_retry_backoff(),
            stdout: None,
            env: super::EnvTable::new(),
            optional: false,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    pub fn retry_backoff(&self) -> Duration {
        Duration::from_secs_f64(self.retry_backoff_seconds)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
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
        super::check_env(&self.env)?;
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
/// ffmpeg exist, and offline transcription where pocketsphinx does. The
/// transcription is optional: a camera's recording has no audio to
/// transcribe, and is still ready with its analysis.
pub(super) fn default_pipeline() -> Vec<StepConfig> {
    let mut steps = Vec::new();
    let ffmpeg = program_exists("ffmpeg");
    if ffmpeg && program_exists("ffprobe") {
        steps.push(StepConfig {
            builtin: Some(BuiltinStep::Analyze),
            ..StepConfig::command("analyze", &[])
        });
    }
    if ffmpeg && program_exists("pocketsphinx_continuous") {
        steps.push(StepConfig {
            optional: true,
            ..StepConfig::command(
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
            )
        });
        steps.push(StepConfig {
            stdout: Some(StepOutput::Transcript),
            optional: true,
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
