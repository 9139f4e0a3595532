//! Keeps each job's log under its size cap while its recorder runs. The
//! recorder writes the log itself (its stderr is the file, opened for
//! appending), so the log is rotated by copy and truncate: the content
//! moves to `<log>.1` (replacing an older one) and the file is emptied in
//! place; the recorder's next write lands at the new end, since every
//! write of an append-mode file goes to the end. What it writes between
//! the copy and the truncation is lost: a few lines at most.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

/// How often a running recorder's log size is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// A log to keep under `max_bytes`.
pub(super) struct LogCap {
    path: PathBuf,
    max_bytes: u64,
    next_check: Instant,
}

impl LogCap {
    pub(super) fn new(path: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            max_bytes,
            next_check: Instant::now() + CHECK_EVERY,
        }
    }
}

/// Resolves at the next check of `cap`, rotating the log if it is over.
pub(super) async fn keep_under_cap(cap: &mut Option<LogCap>) {
    let Some(cap) = cap.as_mut() else {
        return std::future::pending().await;
    };
    sleep_until(cap.next_check).await;
    cap.next_check = Instant::now() + CHECK_EVERY;
    let (path, max) = (cap.path.clone(), cap.max_bytes);
    match tokio::task::spawn_blocking(move || rotate_if_over(&path, max)).await {
        Ok(Ok(Some(size))) => info!(size, "job log over its cap: rotated"),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => warn!(error = %e, "could not rotate the job log"),
        Err(e) => warn!(error = %e, "the log rotation task failed"),
    }
}

/// Where a rotated log's previous content goes.
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Moves the log's content to `<log>.1` and empties it when it is larger
/// than `max_bytes`; returns the size it had. Blocking.
pub fn rotate_if_over(log: &Path, max_bytes: u64) -> std::io::Result<Option<u64>> {
    let size = match std::fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if size <= max_bytes {
        return Ok(None);
    }
    std::fs::copy(log, rotated_path(log))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)?;
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_log_over_its_cap_moves_aside_and_the_writer_goes_on_at_its_start() {
        let dir = std::env::temp_dir().join(format!("recorderd-logcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let log = dir.join("job-1.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the log for appending");
        writer.write_all(&[b'a'; 100]).expect("write");
        assert_eq!(rotate_if_over(&log, 100).expect("rotate"), None);
        writer.write_all(b"b").expect("write");
        assert_eq!(rotate_if_over(&log, 100).expect("rotate"), Some(101));
        assert_eq!(
            std::fs::metadata(rotated_path(&log)).expect("kept").len(),
            101
        );
        writer.write_all(b"after").expect("write");
        assert_eq!(std::fs::read(&log).expect("read"), b"after");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
