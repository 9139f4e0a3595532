//! The video half of the built-in `analyze` step: the first video stream's
//! size and frame rate from ffprobe, black and frozen stretches from one
//! ffmpeg pass (`blackdetect`, `freezedetect`). A camera's recording has
//! no audio; a broken or covered camera records black or a still picture,
//! which is what an operator looks for.

use std::path::Path;

use serde_json::Value;
use tokio::process::Command;

use super::analyze::{first_line, run, video_info};
use crate::entity::{TimeSpan, VideoInfo};
use crate::supervisor::Supervisor;

/// Black is darker than this share of the pixel range, for at least
/// `BLACK_MIN_SECONDS`.
const BLACK_FILTER: &str = "blackdetect=d=0.5:pix_th=0.10";
/// Frozen: frames differing by less than -60 dB for at least 2 s.
const FREEZE_FILTER: &str = "freezedetect=n=-60dB:d=2";
/// Measures the video stream `stream` (ffprobe's description) of `input`;
/// fails only when ffmpeg cannot decode it.
pub(super) async fn analyze_video(
    supervisor: &Supervisor,
    input: &Path,
    stream: &Value,
) -> Result<VideoInfo, String> {
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
    Ok(VideoInfo {
        black: black_spans(&pass.stderr),
        frozen: frozen_spans(&pass.stderr),
        ..video_info(stream)
    })
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
    }
}
