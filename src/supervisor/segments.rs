//! Watching a segmented recorder's list of closed segments. Its muxer
//! (ffmpeg's `-segment_list … -segment_list_type csv`) appends a line
//! `file,start,end` the moment a segment is closed and playable; each new
//! line is reported as a [`ClosedSegment`], and the job service decides
//! what becomes of it. The list is read again once the recorder has ended,
//! so the last, partial segment is reported before the exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::warn;

/// How often the list is read: a segment is noticed within this of
/// closing, which is a small share of any segment's length.
const PERIOD: Duration = Duration::from_millis(500);

/// Where one run of a segmented recorder lists its closed segments.
#[derive(Debug, Clone)]
pub struct SegmentList {
    pub path: PathBuf,
    /// Where this run starts in the job: its segments' times, which count
    /// from the run's start, are moved by it.
    pub offset: Duration,
}

/// A segment its recorder closed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedSegment {
    pub job_id: i32,
    pub path: PathBuf,
    /// From the job's start.
    pub start: Duration,
    pub duration: Duration,
}

/// Follows one list: the bytes already reported, and when to look next.
pub(super) struct SegmentWatch {
    list: SegmentList,
    consumed: usize,
    next_check: Instant,
}

impl SegmentWatch {
    pub(super) fn new(list: SegmentList) -> Self {
        Self {
            list,
            consumed: 0,
            next_check: Instant::now() + PERIOD,
        }
    }

    /// The segments listed since the last read (whole lines only: a line
    /// being written is read next time).
    pub(super) async fn read_new(&mut self, job_id: i32) -> Vec<ClosedSegment> {
        let text = match tokio::fs::read(&self.list.path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(error = %e, list = %self.list.path.display(), "cannot read the segment list");
                return Vec::new();
            }
        };
        let Some(fresh) = text.get(self.consumed..) else {
            return Vec::new();
        };
        let Some(end) = fresh.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.consumed += end + 1;
        let dir = self.list.path.parent().unwrap_or(Path::new(""));
        String::from_utf8_lossy(&fresh[..end])
            .lines()
            .filter_map(|line| parse_line(line, dir, self.list.offset, job_id))
            .collect()
    }
}

/// Every segment a list names, read once.
pub(super) async fn read_all(list: SegmentList, job_id: i32) -> Vec<ClosedSegment> {
    SegmentWatch::new(list).read_new(job_id).await
}

/// Resolves at the next look at the list, with what it found.
pub(super) async fn watch_segments(
    watch: &mut Option<SegmentWatch>,
    job_id: i32,
) -> Vec<ClosedSegment> {
    let Some(watch) = watch.as_mut() else {
        return Vec::new();
    };
    sleep_until(watch.next_check).await;
    watch.next_check = Instant::now() + PERIOD;
    watch.read_new(job_id).await
}

/// One line of a CSV segment list: `name,start,end`, the name relative to
/// the list's directory (quoted by ffmpeg when it holds a comma or quote),
/// the times in seconds of the run's stream.
fn parse_line(line: &str, dir: &Path, offset: Duration, job_id: i32) -> Option<ClosedSegment> {
    let mut fields = line.trim_end_matches('\r').rsplitn(3, ',');
    let end: f64 = fields.next()?.trim().parse().ok()?;
    let start: f64 = fields.next()?.trim().parse().ok()?;
    let name = fields.next()?;
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => name.to_owned(),
    };
    let seconds = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).ok();
    Some(ClosedSegment {
        job_id,
        path: dir.join(name),
        start: offset + seconds(start)?,
        duration: seconds(end - start)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_become_segments_placed_in_the_job() {
        let dir = Path::new("/r/recording-7.segments");
        let offset = Duration::from_secs(60);
        let segment =
            parse_line("run2-00001.mkv,5.001000,10.001000", dir, offset, 7).expect("a segment");
        assert_eq!(segment.path, dir.join("run2-00001.mkv"));
        assert_eq!(segment.start, Duration::from_millis(65_001));
        assert_eq!(segment.duration, Duration::from_secs(5));
        let quoted = parse_line("\"a,\"\"b\"\".mkv\",0.0,2.5", dir, Duration::ZERO, 7)
            .expect("a quoted name");
        assert_eq!(quoted.path, dir.join("a,\"b\".mkv"));
        assert!(parse_line("garbage", dir, offset, 7).is_none());
    }

    #[tokio::test]
    async fn only_whole_new_lines_are_reported_once() {
        let dir = std::env::temp_dir().join(format!("segments-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("run1.csv");
        std::fs::write(&path, "run1-00000.mkv,0.0,5.0\nrun1-00001.mkv,5.0,").expect("write");
        let mut watch = SegmentWatch::new(SegmentList {
            path: path.clone(),
            offset: Duration::ZERO,
        });
        let first = watch.read_new(1).await;
        assert_eq!(first.len(), 1);
        assert!(watch.read_new(1).await.is_empty(), "nothing new");
        std::fs::write(&path, "run1-00000.mkv,0.0,5.0\nrun1-00001.mkv,5.0,7.5\n").expect("write");
        let second = watch.read_new(1).await;
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].start, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
