//! Live progress of recorders that report it (ffmpeg's `-progress pipe:1`):
//! a reader task per recorder parses its standard output, and the latest
//! figures of each job are kept here, in memory, for the API, the metrics
//! and stall detection. Nothing of it is stored: it describes a process of
//! this node while it runs, and is gone with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use crate::entity::LiveProgress;

/// One job's entry: its progress, and when data last flowed by the
/// monotonic clock (for stall detection).
#[derive(Debug, Clone)]
struct Entry {
    progress: LiveProgress,
    last_data: Option<Instant>,
}

/// The latest progress of every recorder of this node that reports it.
/// Cheap to clone; every clone shares the same board.
#[derive(Clone, Default)]
pub struct ProgressBoard {
    entries: Arc<Mutex<HashMap<i32, Entry>>>,
}

impl ProgressBoard {
    fn entries(&self) -> MutexGuard<'_, HashMap<i32, Entry>> {
        // Each operation is one insert, remove or read: a panic cannot
        // leave the map half-updated, so poisoning is safe to ignore.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The job's latest progress, if its recorder reports any.
    pub fn get(&self, job_id: i32) -> Option<LiveProgress> {
        self.entries().get(&job_id).map(|e| e.progress.clone())
    }

    /// Every job's latest progress.
    pub fn all(&self) -> Vec<(i32, LiveProgress)> {
        self.entries()
            .iter()
            .map(|(id, e)| (*id, e.progress.clone()))
            .collect()
    }

    /// When data last flowed for the job, by the monotonic clock.
    pub fn last_data(&self, job_id: i32) -> Option<Instant> {
        self.entries().get(&job_id).and_then(|e| e.last_data)
    }

    /// Forgets the job (its recorder ended and its end is committed).
    pub fn remove(&self, job_id: i32) {
        self.entries().remove(&job_id);
    }

    /// Records one report; `last_data` moves only when the output grew.
    fn record(&self, job_id: i32, report: &Report) {
        let now = OffsetDateTime::now_utc();
        let mut entries = self.entries();
        let previous = entries.get(&job_id);
        let grew = previous.is_none_or(|p| {
            report.bytes > p.progress.bytes_written
                || report.media_seconds > p.progress.media_seconds
        }) && (report.bytes > 0 || report.media_seconds > 0.0);
        let (last_data_at, last_data) = if grew {
            (Some(now), Some(Instant::now()))
        } else {
            (
                previous.and_then(|p| p.progress.last_data_at),
                previous.and_then(|p| p.last_data),
            )
        };
        let progress = LiveProgress {
            bytes_written: report.bytes,
            bitrate_kbps: report.bitrate_kbps,
            media_seconds: report.media_seconds,
            last_data_at,
            updated_at: now,
        };
        entries.insert(
            job_id,
            Entry {
                progress,
                last_data,
            },
        );
    }

    /// A new run of the job starts: its figures start from nothing.
    pub fn reset(&self, job_id: i32) {
        self.entries().remove(&job_id);
    }
}

/// One `-progress` block, as far as it was read.
#[derive(Debug, Default, Clone, PartialEq)]
struct Report {
    bytes: u64,
    bitrate_kbps: Option<f64>,
    media_seconds: f64,
}

/// Reads ffmpeg's `-progress` blocks from `output` until it ends or the
/// supervisor detaches, and records each complete block for `job_id`.
/// Stopping early is harmless: ffmpeg ignores the broken pipe and records
/// on (it only loses the progress).
pub(super) async fn read_ffmpeg_progress(
    output: impl AsyncRead + Unpin,
    board: ProgressBoard,
    job_id: i32,
    detached: CancellationToken,
) {
    let mut lines = BufReader::new(output).lines();
    let mut block = Report::default();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = detached.cancelled() => return,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "the recorder's progress can no longer be read");
                return;
            }
        };
        if parse_line(&line, &mut block) {
            board.record(job_id, &block);
        }
    }
}

/// Folds one `key=value` line into `block`; true when it ends the block.
/// Values ffmpeg cannot tell yet (`N/A`) leave the figure as it was.
fn parse_line(line: &str, block: &mut Report) -> bool {
    let Some((key, value)) = line.trim().split_once('=') else {
        return false;
    };
    let value = value.trim();
    match key {
        "total_size" => {
            if let Ok(bytes) = value.parse() {
                block.bytes = bytes;
            }
        }
        "out_time_us" => {
            if let Ok(us) = value.parse::<i64>() {
                block.media_seconds = (us.max(0) as f64) / 1e6;
            }
        }
        "bitrate" => {
            block.bitrate_kbps = value
                .trim_end_matches("kbits/s")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b >= 0.0);
        }
        "progress" => return true,
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "bitrate=  23.4kbits/s\ntotal_size=11264\nout_time_us=3980000\n\
                         out_time_ms=3980000\nout_time=00:00:03.980000\nspeed=0.996x\nprogress=continue\n";

    #[test]
    fn a_progress_block_gives_bytes_bitrate_and_media_time() {
        let mut block = Report::default();
        let ends: Vec<bool> = BLOCK.lines().map(|l| parse_line(l, &mut block)).collect();
        assert_eq!(ends.iter().filter(|e| **e).count(), 1);
        assert_eq!(block.bytes, 11264);
        assert_eq!(block.bitrate_kbps, Some(23.4));
        assert!((block.media_seconds - 3.98).abs() < 1e-9);

        // Before the first packet ffmpeg cannot tell: figures stay put.
        let mut early = Report::default();
        for line in [
            "bitrate=N/A",
            "total_size=N/A",
            "out_time_us=N/A",
            "progress=continue",
        ] {
            parse_line(line, &mut early);
        }
        assert_eq!(early, Report::default());
    }

    #[tokio::test]
    async fn data_is_fresh_only_while_the_output_grows() {
        let board = ProgressBoard::default();
        let report = |bytes, seconds| Report {
            bytes,
            bitrate_kbps: None,
            media_seconds: seconds,
        };
        board.record(7, &report(0, 0.0));
        assert_eq!(board.get(7).and_then(|p| p.last_data_at), None);
        board.record(7, &report(100, 1.0));
        let first = board.get(7).and_then(|p| p.last_data_at);
        assert!(first.is_some());
        let first_instant = board.last_data(7);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        board.record(7, &report(100, 1.0));
        assert_eq!(board.get(7).and_then(|p| p.last_data_at), first);
        assert_eq!(board.last_data(7), first_instant, "no growth, no data");
        board.record(7, &report(200, 2.0));
        assert!(board.last_data(7) > first_instant);
        board.remove(7);
        assert_eq!(board.get(7), None);
    }
}
