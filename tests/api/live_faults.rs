//! Real ffmpeg recording a live HTTP MPEG-TS stream served by a second
//! ffmpeg, under the faults a live source meets: a source that comes up
//! late, a recorder killed mid-recording, a source cut for a few seconds
//! (reconnected to within the run).
//! One test runs the server exactly as the README says (relative `./data`,
//! no flags), where restarted recordings used to fail to join.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::ffmpeg::{TONE, ffmpeg_available, wait_recorded};
use crate::helpers::{AppOptions, Backend, TestApp, send_signal};
use crate::on_both_databases;

on_both_databases!(
    with_the_readme_defaults_a_late_source_and_a_killed_recorder_end_in_one_served_file,
    an_http_source_cut_for_3_s_is_recorded_on_through_its_return,
);

/// A live MPEG-TS stream over HTTP: a second ffmpeg serving one client at
/// a time, started again whenever its client goes away (unless cut).
struct LiveSource {
    url: String,
    cut: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
    task: Option<std::thread::JoinHandle<()>>,
}

/// A URL on a free loopback port.
fn free_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
        .port();
    format!("http://127.0.0.1:{port}/live.ts")
}

impl LiveSource {
    fn start(dir: &std::path::Path) -> Self {
        Self::start_at(dir, &free_url())
    }

    fn start_at(dir: &std::path::Path, url: &str) -> Self {
        let url = url.to_owned();
        let (cut, ended) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let log = dir.join("source.log");
        let task = {
            let (url, cut, ended) = (url.clone(), cut.clone(), ended.clone());
            std::thread::spawn(move || serve(&url, &log, &cut, &ended))
        };
        Self {
            url,
            cut,
            ended,
            task: Some(task),
        }
    }

    /// Cuts the stream (its client sees the connection end) for `gap`.
    async fn cut_for(&self, gap: Duration) {
        self.cut.store(true, Ordering::SeqCst);
        tokio::time::sleep(gap).await;
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            let _ = task.join();
        }
    }
}

/// Runs the sender, again and again, until `ended`; while `cut`, nothing
/// serves the URL.
fn serve(url: &str, log: &std::path::Path, cut: &AtomicBool, ended: &AtomicBool) {
    let spawn = || -> Option<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok()?;
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(TONE)
            .args(["-c:a", "aac", "-f", "mpegts", "-listen", "1", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .ok()
    };
    let mut sender: Option<Child> = None;
    while !ended.load(Ordering::SeqCst) {
        let cutting = cut.load(Ordering::SeqCst);
        let exited = sender
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some());
        match &mut sender {
            Some(child) if cutting => {
                let _ = child.kill();
                let _ = child.wait();
                sender = None;
            }
            Some(_) if exited => sender = None,
            Some(_) => {}
            None if !cutting => sender = spawn(),
            None => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(mut child) = sender {
        let _ = child.kill();
        let _ = child.wait();
    }
}

async fn with_the_readme_defaults_a_late_source_and_a_killed_recorder_end_in_one_served_file(
    backend: Backend,
) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn_with(
        backend,
        AppOptions {
            readme_defaults: true,
            ..AppOptions::default()
        },
    )
    .await;
    // The source is not up yet: the first run cannot connect, and the
    // built-in profile starts it again 2 s later.
    let url = free_url();
    let (job_id, recording_id) = app.start_ok_with(json!({ "source": url })).await;
    let waiting = app
        .wait_for_job(job_id, Duration::from_secs(20), |j| {
            j["restart_at"].is_string()
        })
        .await;
    assert_eq!(
        waiting["attempts"][0]["exit_code"], 1,
        "could not connect: {waiting}"
    );
    let source = LiveSource::start_at(&app.dir, &url);
    // Its first run to open an output is the restarted one.
    let recording_run = wait_recorded(&app, job_id, 1, 3.0).await;
    assert!(
        recording_run["attempt"].as_i64() >= Some(2),
        "{recording_run}"
    );
    // Killed mid-recording: started again, written to a segment of its own.
    let pid = recording_run["process_id"].as_i64().unwrap_or_default() as i32;
    send_signal(pid, 9);
    let after_kill = recording_run["attempt"].as_i64().unwrap_or(2) + 1;
    app.wait_for_job(job_id, Duration::from_secs(20), |j| {
        j["attempt"].as_i64() >= Some(after_kill) && j["process_id"].is_i64()
    })
    .await;
    wait_recorded(&app, job_id, after_kill, 3.0).await;
    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    drop(source);

    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(120), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "one joined file: {recording}");
    let output = recording["output_path"].as_str().unwrap_or_default();
    assert!(
        std::path::Path::new(output).is_absolute(),
        "stored paths are absolute whatever the working directory: {output}"
    );
    let duration = recording["analysis"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        duration >= 6.0,
        "both runs joined: {duration} s: {recording}"
    );
    // Served, and processed again on request.
    let media = app
        .client
        .get(app.url(&format!("/api/recordings/{recording_id}/media")))
        .send()
        .await
        .expect("GET media");
    assert_eq!(media.status(), StatusCode::OK);
    assert!(media.bytes().await.map(|b| b.len()).unwrap_or(0) > 10_000);
    let (status, body) = app
        .post(
            &format!("/api/recordings/{recording_id}/reprocess/"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = app
        .wait_for_recording(recording_id, Duration::from_secs(120), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(again["status"], "ready", "{again}");
}

async fn an_http_source_cut_for_3_s_is_recorded_on_through_its_return(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let source = LiveSource::start(&app.dir);
    let began = Instant::now();
    let (job_id, recording_id) = app
        .start_ok_with(json!({ "source": source.url, "profile": "ffmpeg", "duration_seconds": 30 }))
        .await;
    wait_recorded(&app, job_id, 1, 5.0).await;
    // The source drops for 3 s: the built-in profile's HTTP options make
    // ffmpeg connect again, within the same run.
    source.cut_for(Duration::from_secs(3)).await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(60), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    let elapsed = began.elapsed();
    // Reconnected once the source was back, then recorded to its limit,
    // all in its first run.
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_reason"], "duration", "{job}");
    assert_eq!(job["attempt"], 1, "reconnected, not restarted: {job}");
    let (_, log) = app
        .get(&format!("/api/recordings/jobs/{job_id}/log/"))
        .await;
    let log = log["content"].as_str().unwrap_or_default();
    assert!(log.contains("Will reconnect"), "{log}");
    assert!(
        elapsed >= Duration::from_secs(29),
        "ended after {elapsed:?}: {job}"
    );
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(120), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let duration = recording["analysis"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!("source cut for 3 s in a 30 s job: {duration:.1} s recorded in one run");
    assert!(
        duration >= 18.0,
        "the recording covers the source's return: {duration} s: {recording}"
    );
}
