//! A recording as a browser plays it, made on demand and kept: an MP4
//! (moov atom first, so playback and seeking start before the whole file
//! has arrived) of its first video and audio streams, copied when the
//! codec plays in browsers, re-encoded (H.264, AAC) when not; and a JPEG
//! still of its video. The built-in profile records Matroska, which
//! browsers do not reliably play; the recorded file itself stays as it was.
//!
//! Both are kept in the recording's work directory and made again when the
//! recording's file is newer (a reprocess after joining restarted runs).
//! One conversion at a time: a second request for the same file waits for
//! the first and is served its result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::process::Command;
use tokio::sync::{Mutex, MutexGuard};
use tracing::info;

use super::Processing;
use super::analyze::{first_line, number, probe, run};

/// Video codecs browsers play from MP4 (Chromium, Firefox, Safari).
const PLAYABLE_VIDEO: &[&str] = &["h264", "vp9", "av1"];
/// Audio codecs browsers play from MP4.
const PLAYABLE_AUDIO: &[&str] = &["aac", "mp3"];

/// Serializes conversions: they are CPU-heavy when they re-encode, and two
/// requests for one recording must not write one file at once.
#[derive(Clone, Default)]
pub struct Conversions(Arc<Mutex<()>>);

/// Why a recording cannot be made playable.
#[derive(Debug, thiserror::Error)]
pub enum NotPlayable {
    #[error("it has neither audio nor video ffmpeg can read: {0}")]
    Unreadable(String),
    #[error("it has no video")]
    NoVideo,
    #[error("the conversion failed: {0}")]
    Failed(String),
}

impl Processing {
    /// The MP4 a browser plays for `source`, made if missing or older.
    pub async fn playable(&self, recording_id: i32, source: &Path) -> Result<PathBuf, NotPlayable> {
        let target = self.workdir(recording_id).join("playable.mp4");
        let Some(_one_at_a_time) = self.turn_unless_fresh(&target, source).await else {
            return Ok(target);
        };
        let probed = probe(&self.supervisor, source)
            .await
            .map_err(NotPlayable::Unreadable)?;
        let streams = probed["streams"].as_array().cloned().unwrap_or_default();
        let codec_of = |kind: &str| {
            streams
                .iter()
                .find(|s| s["codec_type"] == kind)
                .map(|s| s["codec_name"].as_str().unwrap_or_default().to_owned())
        };
        let (video, audio) = (codec_of("video"), codec_of("audio"));
        if video.is_none() && audio.is_none() {
            return Err(NotPlayable::Unreadable("no stream".to_owned()));
        }
        let mut args: Vec<String> = Vec::new();
        if let Some(codec) = &video {
            args.extend(["-map", "0:v:0"].map(str::to_owned));
            args.extend(encoding("v", codec, PLAYABLE_VIDEO, &VIDEO_ENCODING));
        }
        if let Some(codec) = &audio {
            args.extend(["-map", "0:a:0"].map(str::to_owned));
            args.extend(encoding("a", codec, PLAYABLE_AUDIO, &AUDIO_ENCODING));
        }
        info!(
            recording_id,
            video = ?video,
            audio = ?audio,
            "making the recording playable in browsers"
        );
        self.convert(
            source,
            &target,
            &args,
            &["-movflags", "+faststart", "-f", "mp4"],
        )
        .await?;
        Ok(target)
    }

    /// A JPEG still of `source`'s video, `at` seconds in.
    pub async fn thumbnail(
        &self,
        recording_id: i32,
        source: &Path,
        at: f64,
    ) -> Result<PathBuf, NotPlayable> {
        let target = self.workdir(recording_id).join("thumbnail.jpg");
        let Some(_one_at_a_time) = self.turn_unless_fresh(&target, source).await else {
            return Ok(target);
        };
        let probed = probe(&self.supervisor, source)
            .await
            .map_err(NotPlayable::Unreadable)?;
        let streams = probed["streams"].as_array().cloned().unwrap_or_default();
        if !streams.iter().any(|s| s["codec_type"] == "video") {
            return Err(NotPlayable::NoVideo);
        }
        // Not past the end: a short recording gets its middle frame.
        let duration = number(&probed["format"]["duration"]).unwrap_or(0.0);
        let at = if duration > 0.0 {
            at.min(duration / 2.0)
        } else {
            0.0
        };
        let before_input = ["-ss".to_owned(), format!("{at:.3}")];
        let args = [
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            "scale=640:-2",
            "-q:v",
            "4",
        ]
        .map(str::to_owned);
        self.convert_from(source, &target, &before_input, &args, &["-f", "image2"])
            .await?;
        Ok(target)
    }

    /// The conversions' turn, held while `target` is made from `source`;
    /// `None` when `target` is newer than `source` already (looked at
    /// again once the turn is ours: the request before may have made it).
    async fn turn_unless_fresh(&self, target: &Path, source: &Path) -> Option<MutexGuard<'_, ()>> {
        if is_fresh(target, source).await {
            return None;
        }
        let turn = self.conversions.0.lock().await;
        if is_fresh(target, source).await {
            return None;
        }
        Some(turn)
    }

    async fn convert(
        &self,
        source: &Path,
        target: &Path,
        args: &[String],
        output: &[&str],
    ) -> Result<(), NotPlayable> {
        self.convert_from(source, target, &[], args, output).await
    }

    /// Runs ffmpeg from `source` into a temporary file beside `target`,
    /// renamed into place once complete: a reader never sees half a file.
    async fn convert_from(
        &self,
        source: &Path,
        target: &Path,
        before_input: &[String],
        args: &[String],
        output: &[&str],
    ) -> Result<(), NotPlayable> {
        let failed = |e: String| NotPlayable::Failed(e);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let partial = target.with_extension("partial");
        let mut command = Command::new("ffmpeg");
        command
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(before_input)
            .arg("-i")
            .arg(source)
            .args(args)
            .args(output)
            .arg(&partial);
        let done = run(&self.supervisor, &mut command).await.map_err(failed)?;
        if !done.success {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(failed(format!("ffmpeg: {}", first_line(&done.stderr))));
        }
        tokio::fs::rename(&partial, target)
            .await
            .map_err(|e| failed(format!("cannot keep {}: {e}", target.display())))
    }
}

/// How a stream that browsers do not play is re-encoded.
const VIDEO_ENCODING: [&str; 6] = ["libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt"];
const AUDIO_ENCODING: [&str; 3] = ["aac", "-b:a", "160k"];

/// `-c:v copy` for a codec browsers play, the re-encoding otherwise.
fn encoding(kind: &str, codec: &str, playable: &[&str], encode: &[&str]) -> Vec<String> {
    let mut args = vec![format!("-c:{kind}")];
    if playable.contains(&codec) {
        args.push("copy".to_owned());
    } else {
        args.extend(encode.iter().map(|a| (*a).to_owned()));
        if kind == "v" {
            // Browsers decode 4:2:0; what the last `-pix_fmt` asks for.
            args.push("yuv420p".to_owned());
        }
    }
    args
}

/// Whether `derived` exists, is not empty and is not older than `source`.
async fn is_fresh(derived: &Path, source: &Path) -> bool {
    let (Ok(derived), Ok(source)) = (
        tokio::fs::metadata(derived).await,
        tokio::fs::metadata(source).await,
    ) else {
        return false;
    };
    match (derived.modified(), source.modified()) {
        (Ok(made), Ok(recorded)) => derived.len() > 0 && made >= recorded,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playable_codecs_are_copied_and_others_re_encoded() {
        assert_eq!(
            encoding("v", "h264", PLAYABLE_VIDEO, &VIDEO_ENCODING),
            ["-c:v", "copy"]
        );
        assert_eq!(
            encoding("v", "mpeg2video", PLAYABLE_VIDEO, &VIDEO_ENCODING),
            [
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"
            ]
        );
        assert_eq!(
            encoding("a", "opus", PLAYABLE_AUDIO, &AUDIO_ENCODING),
            ["-c:a", "aac", "-b:a", "160k"]
        );
        assert_eq!(
            encoding("a", "aac", PLAYABLE_AUDIO, &AUDIO_ENCODING),
            ["-c:a", "copy"]
        );
    }
}
