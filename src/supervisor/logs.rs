//! Keeps each job's log under its size cap while its recorder runs. The
//! recorder writes the log itself (its stderr is the file, opened for
//! appending), so the log is rotated by copy and truncate: the content
//! moves to `<log>.1` (replacing an older one) and the file is emptied in
//! place; the recorder's next write lands at the new end, since every
//! write of an append-mode file goes to the end. What it writes between
//! the copy and the truncation is lost: a few lines at most.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How often a running recorder's log size is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The logs of every running recorder, kept under their caps by one task
/// that looks at all of them at once every few seconds: one timer and one
/// trip to the blocking pool for all recorders, not one each (an idle node
/// with hundreds of recorders otherwise wakes dozens of times a second).
/// The task runs only while some log is watched.
#[derive(Clone)]
pub(super) struct LogCaps {
    inner: Arc<Caps>,
}

struct Caps {
    watched: Mutex<Watched>,
    /// Told when the last log stops being watched.
    emptied: Notify,
    tracker: TaskTracker,
}

#[derive(Default)]
struct Watched {
    logs: HashMap<i32, (PathBuf, u64)>,
    /// Whether the task looking at them runs.
    running: bool,
}

/// Keeps one job's log watched while it lives.
pub(super) struct LogCap {
    caps: LogCaps,
    job_id: i32,
}

impl Drop for LogCap {
    fn drop(&mut self) {
        let mut watched = self.caps.watched();
        watched.logs.remove(&self.job_id);
        if watched.logs.is_empty() {
            self.caps.inner.emptied.notify_one();
        }
    }
}

impl LogCaps {
    pub(super) fn new(tracker: TaskTracker) -> Self {
        Self {
            inner: Arc::new(Caps {
                watched: Mutex::new(Watched::default()),
                emptied: Notify::new(),
                tracker,
            }),
        }
    }

    fn watched(&self) -> MutexGuard<'_, Watched> {
        // Single inserts and removals: a panic cannot leave it half-done.
        self.inner
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `path` under `max_bytes` until the returned guard is dropped.
    pub(super) fn watch(&self, job_id: i32, path: PathBuf, max_bytes: u64) -> LogCap {
        let start = {
            let mut watched = self.watched();
            watched.logs.insert(job_id, (path, max_bytes));
            !std::mem::replace(&mut watched.running, true)
        };
        if start {
            self.inner.tracker.spawn(self.clone().keep_under_caps());
        }
        LogCap {
            caps: self.clone(),
            job_id,
        }
    }

    /// Looks at every watched log each [`CHECK_EVERY`]; ends once none is
    /// watched (so that shutdown does not wait for it).
    async fn keep_under_caps(self) {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let logs: Vec<(i32, PathBuf, u64)> = {
                let mut watched = self.watched();
                if watched.logs.is_empty() {
                    watched.running = false;
                    return;
                }
                watched
                    .logs
                    .iter()
                    .map(|(id, (path, max))| (*id, path.clone(), *max))
                    .collect()
            };
            let checked = tokio::task::spawn_blocking(move || {
                logs.into_iter()
                    .map(|(job_id, path, max)| (job_id, rotate_if_over(&path, max)))
                    .collect::<Vec<_>>()
            })
            .await;
            match checked {
                Ok(results) => {
                    for (job_id, result) in results {
                        match result {
                            Ok(Some(size)) => info!(job_id, size, "job log over its cap: rotated"),
                            Ok(None) => {}
                            Err(e) => warn!(job_id, error = %e, "could not rotate the job log"),
                        }
                    }
                }
                Err(e) => warn!(error = %e, "the log rotation task failed"),
            }
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.inner.emptied.notified() => {}
            }
        }
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
