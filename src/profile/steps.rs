//! The processing pipeline's steps as a profile declares them: a command
//! template or a built-in step, with its timeout and retries; and the
//! pipeline the built-in profile runs, chosen by the programs installed.

use std::path::{Path, PathBuf};
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
    /// `builtin = "transcribe"`: the whisper.cpp model; whisper-cli is used
    /// when it is installed and this file exists, pocketsphinx otherwise.
    /// Without it, the server's `--whisper-model`.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// `builtin = "transcribe"` with whisper.cpp: the spoken language
    /// (`en`, `de`, `auto`, …), for multilingual models.
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinStep {
    /// ffprobe and ffmpeg measure duration, codec, loudness and silence.
    Analyze,
    /// Speech to text with times: whisper.cpp's `whisper-cli` where it and
    /// its model are installed, pocketsphinx otherwise.
    Transcribe,
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
            model: None,
            language: None,
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
        let transcribes = self.builtin == Some(BuiltinStep::Transcribe);
        if !transcribes && (self.model.is_some() || self.language.is_some()) {
            bail!(
                "step `{}`: `model` and `language` belong to `builtin = \"transcribe\"`",
                self.name
            );
        }
        if self.builtin.is_some() && self.stdout.is_some() {
            bail!(
                "step `{}`: a built-in step stores its own result; `stdout` is for commands",
                self.name
            );
        }
        if let Some(language) = &self.language
            && (language.is_empty() || !language.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bail!(
                "step `{}`: `language` must be a code such as `en` or `auto`",
                self.name
            );
        }
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

/// How the built-in profile's pipeline came out on this machine: the steps
/// it runs, and those left out for a missing program.
#[derive(Debug, Clone, Default)]
pub struct DefaultPipeline {
    pub steps: Vec<StepConfig>,
    /// Each step left out, with the program it lacks.
    pub skipped: Vec<(String, String)>,
}

/// The pipeline the built-in profile runs: `analyze` where ffprobe and
/// ffmpeg exist, and transcription where ffmpeg and a speech recognizer
/// (whisper-cli or pocketsphinx) do; transcription is optional.
pub(super) fn default_pipeline() -> DefaultPipeline {
    let mut pipeline = DefaultPipeline::default();
    let ffmpeg = program_exists("ffmpeg");
    let mut need = |step: &str, programs: &[&str]| -> bool {
        let missing: Vec<&str> = programs
            .iter()
            .copied()
            .filter(|p| !program_exists(p))
            .collect();
        if !missing.is_empty() {
            pipeline
                .skipped
                .push((step.to_owned(), missing.join(" and ")));
        }
        missing.is_empty()
    };
    if need("analyze", &["ffmpeg", "ffprobe"]) {
        pipeline.steps.push(StepConfig {
            builtin: Some(BuiltinStep::Analyze),
            ..StepConfig::command("analyze", &[])
        });
    }
    let recognizer = program_exists(WHISPER_PROGRAM) || program_exists(POCKETSPHINX_PROGRAM);
    if !ffmpeg || !recognizer {
        let missing = match (ffmpeg, recognizer) {
            (false, false) => format!("ffmpeg and {WHISPER_PROGRAM} or {POCKETSPHINX_PROGRAM}"),
            (false, true) => "ffmpeg".to_owned(),
            _ => format!("{WHISPER_PROGRAM} or {POCKETSPHINX_PROGRAM}"),
        };
        pipeline
            .skipped
            .push(("transcode".to_owned(), missing.clone()));
        pipeline.skipped.push(("transcribe".to_owned(), missing));
        return pipeline;
    }
    // Both optional: a camera's recording has no audio to transcribe, and
    // is still ready with its analysis.
    pipeline.steps.push(StepConfig {
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
                TRANSCRIBE_AUDIO,
            ],
        )
    });
    pipeline.steps.push(StepConfig {
        builtin: Some(BuiltinStep::Transcribe),
        optional: true,
        timeout_seconds: 3600.0,
        ..StepConfig::command("transcribe", &[])
    });
    pipeline
}

/// The 16 kHz mono WAV both recognizers read, in the recording's work
/// directory: the `transcode` step writes it, `transcribe` makes it itself
/// when it is missing.
pub const TRANSCRIBE_AUDIO: &str = "{workdir}/audio-16k.wav";
/// whisper.cpp's command-line program.
pub const WHISPER_PROGRAM: &str = "whisper-cli";
/// CMU pocketsphinx's command-line program.
pub const POCKETSPHINX_PROGRAM: &str = "pocketsphinx_continuous";

/// Which recognizer a `transcribe` step uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognizer {
    Whisper { model: PathBuf },
    Pocketsphinx,
}

impl Recognizer {
    /// whisper-cli with `model` where both exist, pocketsphinx where it
    /// exists; `Err` says what is missing. Decided when the step runs, so a
    /// model installed later is picked up without a restart.
    pub fn choose(model: Option<&Path>) -> Result<Self, String> {
        let whisper = program_exists(WHISPER_PROGRAM);
        if whisper && let Some(model) = model.filter(|m| m.is_file()) {
            return Ok(Self::Whisper {
                model: model.to_owned(),
            });
        }
        if program_exists(POCKETSPHINX_PROGRAM) {
            return Ok(Self::Pocketsphinx);
        }
        let model = model.map_or_else(|| "none".to_owned(), |m| m.display().to_string());
        Err(format!(
            "no speech recognizer: {WHISPER_PROGRAM} {} with model {model}, {POCKETSPHINX_PROGRAM} not installed",
            if whisper {
                "installed"
            } else {
                "not installed"
            }
        ))
    }

    /// For logs and the start-up summary.
    pub fn describe(&self) -> String {
        match self {
            Self::Whisper { model } => format!("whisper.cpp, model {}", model.display()),
            Self::Pocketsphinx => "pocketsphinx".to_owned(),
        }
    }
}
