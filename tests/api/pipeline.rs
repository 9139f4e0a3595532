//! Processing: tracked steps with retries and timeouts, stall detection,
//! reprocessing, media with ranges, deletion, and resumption after a crash.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_stalled_recorder_is_stopped_and_its_job_fails_as_stalled,
    steps_are_tracked_retried_and_their_output_kept,
    a_step_that_overruns_its_timeout_fails_the_recording,
    reprocess_runs_the_pipeline_again,
    media_is_served_with_range_requests,
    delete_removes_a_settled_recording_and_its_files,
    an_interrupted_step_runs_again_after_a_crash,
    a_crashing_recorder_is_restarted_and_its_runs_joined,
);

fn step<'a>(recording: &'a Value, name: &str) -> &'a Value {
    recording["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name}: {recording}"))
}

async fn a_stalled_recorder_is_stopped_and_its_job_fails_as_stalled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("stalling").await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(15), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["stop_reason"], "stalled", "{job}");
    assert!(
        job["error"].as_str().unwrap_or("").starts_with("stalled"),
        "{job}"
    );
    assert_eq!(job["stop_signal"], 2, "{job}");
    assert!(job["stop_duration_ms"].as_i64().is_some(), "{job}");
    // It recorded half a second before stalling: that is still processed.
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
}

async fn steps_are_tracked_retried_and_their_output_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, recording_id) = app.start_ok("pipeline").await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let flaky = step(&recording, "flaky");
    assert_eq!(flaky["status"], "succeeded", "{recording}");
    assert_eq!(
        flaky["attempt"], 2,
        "failed once, then retried: {recording}"
    );
    let words = step(&recording, "words");
    assert_eq!(words["status"], "succeeded");
    assert_eq!(words["attempt"], 1);
    assert!(words["finished_at"].is_string());
    let transcript = recording["transcript"].as_str().unwrap_or("");
    assert!(transcript.ends_with("lines recorded"), "{recording}");
}

async fn a_step_that_overruns_its_timeout_fails_the_recording(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, recording_id) = app.start_ok("slow_step").await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "failed", "{recording}");
    let error = recording["error"].as_str().unwrap_or("");
    assert!(
        error.contains("sleepy") && error.contains("timed out"),
        "{recording}"
    );
    assert_eq!(step(&recording, "sleepy")["status"], "failed");
}

async fn reprocess_runs_the_pipeline_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    let path = format!("/api/recordings/{recording_id}/reprocess/");
    let (status, body) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "still recording: {body}");
    assert_eq!(body["error"]["code"], "recording_busy");
    app.stop(job_id).await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    assert_eq!(app.processing_runs(recording_id), 1);

    let (status, body) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recording"]["status"], "processing");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(app.processing_runs(recording_id), 2);

    let (status, body) = app
        .post("/api/recordings/999999/reprocess", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn media_is_served_with_range_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    let on_disk =
        std::fs::read(recording["output_path"].as_str().unwrap_or_default()).expect("output file");
    let url = app.url(&format!("/api/recordings/{recording_id}/media"));

    let whole = app.client.get(&url).send().await.expect("GET media");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(
        whole.bytes().await.expect("body").as_ref(),
        on_disk.as_slice()
    );

    let part = app
        .client
        .get(&url)
        .header("range", "bytes=2-9")
        .send()
        .await
        .expect("GET range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    let range = part
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(range, format!("bytes 2-9/{}", on_disk.len()));
    assert_eq!(part.bytes().await.expect("body").as_ref(), &on_disk[2..10]);

    let (_, empty) = app
        .start(json!({ "source": "test://x", "profile": "empty" }))
        .await;
    let empty_recording = empty["recording"]["id"].as_i64().unwrap_or_default();
    app.wait_for_recording_settled(empty_recording).await;
    let (status, body) = app
        .get(&format!("/api/recordings/{empty_recording}/media"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "media_not_found");
}

async fn delete_removes_a_settled_recording_and_its_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    let path = format!("/api/recordings/{recording_id}/");
    let response = app
        .client
        .delete(app.url(&path))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "recording in progress"
    );

    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    let output = recording["output_path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let log = job["log_path"].as_str().unwrap_or_default().to_owned();
    assert!(std::path::Path::new(&output).exists());

    let response = app
        .client
        .delete(app.url(&path))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/recordings/jobs/{job_id}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "its jobs went with it");
    assert!(
        !std::path::Path::new(&output).exists(),
        "output file left behind"
    );
    assert!(!std::path::Path::new(&log).exists(), "job log left behind");
}

async fn an_interrupted_step_runs_again_after_a_crash(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("long_step").await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording(recording_id, Duration::from_secs(10), |r| {
        r["steps"][0]["status"] == "running"
    })
    .await;
    let status = app.signal_server(9).await;
    assert!(!status.success());
    app.start_server().await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(step(&recording, "long")["attempt"], 2, "{recording}");
    // The killed attempt never reached its end; the rerun did, once. The
    // wait gives a late line from the killed attempt time to show: that
    // none comes is the point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.processing_runs(recording_id), 1);
}

async fn a_crashing_recorder_is_restarted_and_its_runs_joined(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("crashy").await;
    // Three runs (the first and two restarts), each exiting 3 after 0.4 s.
    let job = app
        .wait_for_job(job_id, Duration::from_secs(20), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_code"], 3, "{job}");
    assert_eq!(job["attempt"], 3, "{job}");
    let history = job["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 2, "{job}");
    for (i, run) in history.iter().enumerate() {
        assert_eq!(run["attempt"], i + 1, "{job}");
        assert_eq!(run["exit_code"], 3, "{job}");
    }
    // Each run had its own process, and the job shows the last one's.
    let pids: std::collections::BTreeSet<i64> = history
        .iter()
        .map(|run| &run["process_id"])
        .chain([&job["process_id"]])
        .filter_map(serde_json::Value::as_i64)
        .collect();
    assert_eq!(pids.len(), 3, "{job}");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let output_path = recording["output_path"].as_str().unwrap_or_default();
    let output = std::fs::read_to_string(output_path).unwrap_or_default();
    assert_eq!(
        output.matches("chunk 0\n").count(),
        3,
        "the three runs are joined in one file: {output:?}"
    );
    let part2 = output_path.replace(".txt", ".part2.txt");
    assert!(
        !std::path::Path::new(&part2).exists(),
        "segment left behind"
    );
    assert_eq!(app.processing_runs(recording_id), 1);
}
