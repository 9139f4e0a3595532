//! The built-in `analyze` step: ffprobe reads the format and the first audio
//! and video streams; one ffmpeg pass measures integrated loudness and true
//! peak (EBU R128) and the share of silence of the audio, another the
//! video's black and frozen stretches (`video.rs`). A file with either
//! kind of stream is analyzed; one with neither fails the step.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::entity::{Analysis, VideoInfo};
use crate::supervisor::Supervisor;

/// Silence is quieter than this for at least `SILENCE_MIN_SECONDS`.
const SILENCE_THRESHOLD_DB: i32 = -50;
const SILENCE_MIN_SECONDS: f64 = 0.5;
/// Largest amount of a tool's output kept for parsing.
const MAX_OUTPUT: u64 = 8 * 1024 * 1024;

/// Measures a recording. An empty or unreadable file is an error that says
/// what ffprobe found wrong.
pub async fn analyze(supervisor: &Supervisor, input: &Path) -> Result<Analysis, String> {
    let size = tokio::fs::metadata(input)
        .await
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?
        .len();
    if size == 0 {
        return Err(format!("{} is empty", input.display()));
    }
    let probe = probe(supervisor, input).await?;
    let streams = probe["streams"].as_array().cloned().unwrap_or_default();
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    // Cover art in an audio file is a "video" stream of one picture.
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1);
    let stream_duration = audio.or(video).and_then(|s| number(&s["duration"]));
    let duration = number(&probe["format"]["duration"]).or(stream_duration);
    let levels = match audio {
        Some(_) => Some(audio_levels(supervisor, input, duration).await?),
        None => None,
    };
    let video = match video {
        Some(stream) => Some(super::video::analyze_video(supervisor, input, stream).await?),
        None if levels.is_none() => {
            return Err("the file has neither an audio nor a video stream".to_owned());
        }
        None => None,
    };
    let silence_seconds = levels.as_ref().map(|l| l.silence_seconds);
    let silence_ratio = match (silence_seconds, duration) {
        (Some(silence), Some(total)) if total > 0.0 => Some((silence / total).clamp(0.0, 1.0)),
        _ => None,
    };
    let audio_field = |name: &str| audio.map_or(&Value::Null, |a| &a[name]);
    Ok(Analysis {
        duration_seconds: duration,
        format: probe["format"]["format_name"].as_str().map(str::to_owned),
        size_bytes: size,
        bit_rate: number(&probe["format"]["bit_rate"]).or_else(|| number(audio_field("bit_rate"))),
        codec: audio_field("codec_name").as_str().map(str::to_owned),
        sample_rate: number(audio_field("sample_rate")),
        channels: audio_field("channels").as_i64(),
        integrated_loudness_lufs: levels.as_ref().and_then(|l| l.loudness),
        true_peak_dbfs: levels.as_ref().and_then(|l| l.peak),
        silence_seconds,
        silence_ratio,
        silence_threshold_db: SILENCE_THRESHOLD_DB,
        streams: streams.len(),
        video,
    })
}

/// What ffprobe says of a video stream (its black and frozen stretches
/// are measured apart, by decoding it).
pub(super) fn video_info(stream: &Value) -> VideoInfo {
    VideoInfo {
        codec: stream["codec_name"].as_str().map(str::to_owned),
        width: stream["width"].as_i64(),
        height: stream["height"].as_i64(),
        frame_rate: stream["avg_frame_rate"].as_str().and_then(ratio),
        black: Vec::new(),
        frozen: Vec::new(),
    }
}

/// `30000/1001` as a number; `0/0` (unknown) as none.
fn ratio(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/')?;
    let (num, den) = (num.parse::<f64>().ok()?, den.parse::<f64>().ok()?);
    (den > 0.0 && num > 0.0).then(|| num / den)
}

/// ffprobe's description of the file's format and streams.
pub(super) async fn probe(supervisor: &Supervisor, input: &Path) -> Result<Value, String> {
    let probe = run(
        supervisor,
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(input),
    )
    .await?;
    if !probe.success {
        return Err(format!(
            "ffprobe cannot read the file: {}",
            first_line(&probe.stderr)
        ));
    }
    serde_json::from_str(&probe.stdout)
        .map_err(|e| format!("ffprobe printed something that is not JSON: {e}"))
}

/// What one decoding pass over the first audio stream measured.
struct Levels {
    loudness: Option<f64>,
    peak: Option<f64>,
    silence_seconds: f64,
}

/// Integrated loudness and true peak (EBU R128) and total silence, in one
/// ffmpeg pass.
async fn audio_levels(
    supervisor: &Supervisor,
    input: &Path,
    duration: Option<f64>,
) -> Result<Levels, String> {
    let filters = format!(
        "ebur128=peak=true:framelog=verbose,silencedetect=n={SILENCE_THRESHOLD_DB}dB:d={SILENCE_MIN_SECONDS}"
    );
    let levels = run(
        supervisor,
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-nostats", "-i"])
            .arg(input)
            .args(["-map", "0:a:0", "-af", &filters, "-f", "null", "-"]),
    )
    .await?;
    if !levels.success {
        return Err(format!(
            "ffmpeg cannot decode the audio: {}",
            first_line(&levels.stderr)
        ));
    }
    Ok(Levels {
        loudness: summary_value(&levels.stderr, "I:"),
        peak: summary_value(&levels.stderr, "Peak:"),
        silence_seconds: silence_seconds(&levels.stderr, duration),
    })
}

pub(super) struct Output {
    pub(super) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs a tool to completion, keeping its output (bounded). The child is
/// killed if this future is dropped (timeout or shutdown).
pub(super) async fn run(supervisor: &Supervisor, command: &mut Command) -> Result<Output, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let (mut child, _owned) = supervisor
        .spawn_step(command, &crate::profile::EnvTable::new())
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let (mut out, mut err) = (String::new(), String::new());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = async {
        if let Some(s) = stdout {
            out = read_bounded(s).await;
        }
    };
    let read_err = async {
        if let Some(s) = stderr {
            err = read_bounded(s).await;
        }
    };
    tokio::join!(read_out, read_err);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for {program} failed: {e}"))?;
    Ok(Output {
        success: status.success(),
        stdout: out,
        stderr: err,
    })
}

/// Reads a pipe to its end, keeping the first `MAX_OUTPUT` bytes: the rest
/// is drained so the tool never blocks on a full pipe.
async fn read_bounded(mut reader: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let _ = (&mut reader).take(MAX_OUTPUT).read_to_end(&mut kept).await;
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&kept).into_owned()
}

/// The line of a tool's output that best says what went wrong.
pub(super) fn first_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.contains("rror") || l.contains("nvalid"))
        .or(lines.last())
        .copied()
        .unwrap_or("no message")
        .to_owned()
}

/// ffprobe prints numbers as strings.
pub(super) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A value from the ebur128 summary, which follows the per-frame log:
/// `    I:         -20.2 LUFS`, `    Peak:       -2.4 dBFS`.
fn summary_value(stderr: &str, label: &str) -> Option<f64> {
    let summary = &stderr[stderr.rfind("Summary:")?..];
    summary
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Total silence from silencedetect's lines; a silence still open at the
/// end runs to the end of the file.
fn silence_seconds(stderr: &str, duration: Option<f64>) -> f64 {
    let mut total = 0.0;
    let mut open: Option<f64> = None;
    for line in stderr.lines() {
        if let Some(rest) = line.split("silence_start: ").nth(1) {
            open = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.split("silence_duration: ").nth(1) {
            total += rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            open = None;
        }
    }
    if let (Some(start), Some(end)) = (open, duration) {
        total += (end - start).max(0.0);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[silencedetect @ 0x1] silence_start: 0\n\
        [silencedetect @ 0x1] silence_end: 0.4 | silence_duration: 0.4\n\
        [silencedetect @ 0x1] silence_start: 2.5\n\
        [Parsed_ebur128_0 @ 0x2] Summary:\n\n  Integrated loudness:\n    I:         -20.2 LUFS\n\
        Threshold: -30.5 LUFS\n\n  True peak:\n    Peak:       -2.4 dBFS\n";

    #[test]
    fn the_ebur128_summary_and_silences_are_read() {
        assert_eq!(summary_value(LOG, "I:"), Some(-20.2));
        assert_eq!(summary_value(LOG, "Peak:"), Some(-2.4));
        let silence = silence_seconds(LOG, Some(3.0));
        assert!((silence - 0.9).abs() < 1e-9, "{silence}");
    }
}
