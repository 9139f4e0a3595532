//! The video half of the built-in `analyze` step: the first video stream's
//! size and frame rate from ffprobe, black and frozen stretches from one
//! ffmpeg pass (`blackdetect`, `freezedetect`), and a JPEG thumbnail in the
//! recording's work directory. A camera's recording has no audio; a
//! broken or covered camera records black or a still picture, which is
//! what an operator looks for.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::process::Command;

use super::analyze::{first_line, run};
use crate::entity::{TimeSpan, VideoAnalysis};
use crate::supervisor::Supervisor;

/// The thumbnail's file name in a recording's work directory.
pub const THUMBNAIL_FILE: &str = "thumbnail.jpg";

/// Black is darker than this share of the pixel range, for at least
/// `BLACK_MIN_SECONDS`.
const BLACK_FILTER: &str = "blackdetect=d=0.5:pix_th=0.10";
/// Frozen: frames differing by less than -60 dB for at least 2 s.
const FREEZE_FILTER: &str = "freezedetect=n=-60dB:d=2";
/// Height of the thumbnail at most (its width follows the aspect ratio).
const THUMBNAIL_HEIGHT: u32 = 360;

/// Where the thumbnail of a recording whose work directory is `workdir`
/// is written.
pub fn thumbnail_path(workdir: &Path) -> PathBuf {
    workdir.join(THUMBNAIL_FILE)
}

/// Measures the video stream `stream` (ffprobe's description) of `input`
/// and makes its thumbnail; fails only when ffmpeg cannot decode it.
pub(super) async fn analyze_video(
    supervisor: &Supervisor,
    input: &Path,
    workdir: &Path,
    stream: &Value,
    duration: Option<f64>,
) -> Result<VideoAnalysis, String> {
    let filters = format!("{BLACK_FILTER},{FREEZE_FILTER}");
    let pass = run(
        supervisor,
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-nostats", "-i"])
            .arg(input)
            .args(["-map", "0:v:0", "-vf", &filters, "-an", "-f", "null", "-"]),
    )
    .await?;
    if !pass.success {
        return Err(format!(
            "ffmpeg cannot decode the video: {}",
            first_line(&pass.stderr)
        ));
    }
    let thumbnail = make_thumbnail(supervisor, input, workdir, duration).await;
    Ok(VideoAnalysis {
        codec: stream["codec_name"].as_str().map(str::to_owned),
        width: stream["width"].as_i64(),
        height: stream["height"].as_i64(),
        frame_rate: frame_rate(&stream["avg_frame_rate"])
            .or_else(|| frame_rate(&stream["r_frame_rate"])),
        black: black_spans(&pass.stderr),
        frozen: frozen_spans(&pass.stderr),
        thumbnail,
    })
}

/// One frame from the middle of the first ten seconds (or of a shorter
/// file), scaled down, as JPEG. False when none could be made: a thumbnail
/// is a convenience, never a reason for the step to fail.
async fn make_thumbnail(
    supervisor: &Supervisor,
    input: &Path,
    workdir: &Path,
    duration: Option<f64>,
) -> bool {
    let at = duration.map_or(0.0, |d| (d / 2.0).min(5.0)).max(0.0);
    let scale = format!("scale=-2:min({THUMBNAIL_HEIGHT}\\,ih)");
    let path = thumbnail_path(workdir);
    let made = run(
        supervisor,
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-ss",
                &format!("{at:.3}"),
                "-i",
            ])
            .arg(input)
            .args([
                "-map",
                "0:v:0",
                "-frames:v",
                "1",
                "-vf",
                &scale,
                "-q:v",
                "4",
            ])
            .arg(&path),
    )
    .await;
    made.is_ok_and(|m| m.success) && tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() > 0)
}

/// ffprobe's `25/1` or `30000/1001`; `0/0` is unknown.
fn frame_rate(value: &Value) -> Option<f64> {
    let text = value.as_str()?;
    let (num, den) = text.split_once('/').unwrap_or((text, "1"));
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (den > 0.0 && num > 0.0).then(|| num / den)
}

/// `black_start:0 black_end:2 black_duration:2` lines of blackdetect.
fn black_spans(stderr: &str) -> Vec<TimeSpan> {
    let field = |line: &str, name: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    stderr
        .lines()
        .filter(|l| l.contains("black_start:"))
        .filter_map(|line| {
            Some(TimeSpan {
                start: field(line, "black_start:")?,
                end: field(line, "black_end:"),
            })
        })
        .collect()
}

/// freezedetect's `lavfi.freezedetect.freeze_start: 5` and `…freeze_end:
/// 7` lines; a freeze still on at the end has no end.
fn frozen_spans(stderr: &str) -> Vec<TimeSpan> {
    let value =
        |line: &str, key: &str| -> Option<f64> { line.split(key).nth(1)?.trim().parse().ok() };
    let mut spans: Vec<TimeSpan> = Vec::new();
    for line in stderr.lines() {
        if let Some(start) = value(line, "lavfi.freezedetect.freeze_start:") {
            spans.push(TimeSpan { start, end: None });
        } else if let Some(end) = value(line, "lavfi.freezedetect.freeze_end:")
            && let Some(open) = spans.last_mut().filter(|s| s.end.is_none())
        {
            open.end = Some(end);
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[blackdetect @ 0x1] black_start:0 black_end:2 black_duration:2\n\
        [freezedetect @ 0x2] lavfi.freezedetect.freeze_start: 4.5\n\
        [freezedetect @ 0x2] lavfi.freezedetect.freeze_duration: 2\n\
        [freezedetect @ 0x2] lavfi.freezedetect.freeze_end: 6.5\n\
        [freezedetect @ 0x2] lavfi.freezedetect.freeze_start: 9\n";

    #[test]
    fn black_and_frozen_stretches_are_read_open_ones_included() {
        assert_eq!(
            black_spans(LOG),
            [TimeSpan {
                start: 0.0,
                end: Some(2.0)
            }]
        );
        assert_eq!(
            frozen_spans(LOG),
            [
                TimeSpan {
                    start: 4.5,
                    end: Some(6.5)
                },
                TimeSpan {
                    start: 9.0,
                    end: None
                }
            ]
        );
        assert_eq!(
            frame_rate(&Value::from("30000/1001")).map(|f| (f * 100.0).round()),
            Some(2997.0)
        );
        assert_eq!(frame_rate(&Value::from("0/0")), None);
    }
}
