//! Waiting on a test server: for a job, a recording, a process or the
//! event streams to reach a state, polled with a deadline and failing with
//! the last state seen.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestApp, is_terminal, process_exists};

impl TestApp {
    /// Polls a job through `GET /jobs/{id}/` (never `active` or `cleanup`,
    /// which would reconcile) until `done` holds; fails with the last state.
    pub async fn wait_for_job(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(
            &format!("job {id}"),
            timeout,
            async || self.job(id).await,
            done,
        )
        .await
    }

    pub async fn wait_for_job_end(&self, id: i64) -> Value {
        self.wait_for_job(id, Duration::from_secs(15), |j| is_terminal(&j["status"]))
            .await
    }

    pub async fn wait_for_recording(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let fetch = async || self.recording(id).await;
        self.poll(&format!("recording {id}"), timeout, fetch, done)
            .await
    }

    /// Fetches `what` every 25 ms until `done` holds; fails after
    /// `timeout` with the last state seen and the server's log.
    async fn poll(
        &self,
        what: &str,
        timeout: Duration,
        fetch: impl AsyncFn() -> Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = fetch().await;
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not reach the expected state in {timeout:?}; last seen: {seen}\nserver log:\n{}",
                self.server_log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_for_recording_settled(&self, id: i64) -> Value {
        self.wait_for_recording(id, Duration::from_secs(15), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await
    }

    /// Polls `probe` until it yields a value; fails after `timeout`,
    /// saying what was awaited, the last state `probe` reported, and the
    /// server's log.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match probe() {
                Ok(value) => return value,
                Err(last) => assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?}; last seen: {last}\nserver log:\n{}",
                    self.server_log_text()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the recorder of `recording_id` has written to its
    /// output. The test recorder installs its signal handlers before it
    /// opens its output, so from then on a stop is one it handles (a
    /// signal arriving earlier would kill it outright).
    pub async fn wait_for_recorder_output(&self, recording_id: i64) {
        let recording = self.recording(recording_id).await;
        let output = PathBuf::from(recording["output_path"].as_str().unwrap_or_default());
        self.wait_until(
            &format!("recording {recording_id} being written"),
            Duration::from_secs(15),
            || match std::fs::metadata(&output) {
                Ok(meta) if meta.len() > 0 => Ok(()),
                Ok(_) => Err(format!("{} is empty", output.display())),
                Err(e) => Err(format!("{}: {e}", output.display())),
            },
        )
        .await;
    }

    /// Waits until every process in `pids` has ended.
    pub async fn wait_for_processes_to_end(&self, pids: &[i32]) {
        self.wait_until("processes ending", Duration::from_secs(15), || {
            let alive: Vec<&i32> = pids.iter().filter(|pid| process_exists(**pid)).collect();
            if alive.is_empty() {
                Ok(())
            } else {
                Err(format!("still running: {alive:?}"))
            }
        })
        .await;
    }

    /// Waits until `count` event streams (`GET …/jobs/events`) have been
    /// answered. A request is counted in `/metrics` once its handler has
    /// answered, and the stream's handler subscribes before it answers: an
    /// event committed from then on reaches each of them.
    pub async fn wait_for_event_streams(&self, count: u64) {
        let series = "recorderd_http_request_seconds_count{method=\"GET\",route=\"/api/recordings/jobs/events\",status=\"200\"}";
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let metrics = self.metrics_text().await;
            let opened = metrics
                .lines()
                .find_map(|line| line.strip_prefix(series))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if opened >= count as f64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{opened} of {count} event streams opened in 15 s\nserver log:\n{}",
                self.server_log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
