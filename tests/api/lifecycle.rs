//! A job's life: start, end on its own or by stop, and what follows.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{AppOptions, Backend, TestApp, is_terminal};
use crate::on_both_databases;

on_both_databases!(
    recorder_that_exits_on_its_own_completes_and_its_recording_becomes_ready,
    non_zero_exit_fails_the_job,
    signal_nobody_asked_for_fails_the_job,
    stop_with_sigint_completes_the_job_and_finalizes_the_output,
    stop_escalates_to_sigkill_when_sigint_and_sigterm_are_ignored,
    stopping_an_ended_job_is_a_conflict_and_an_unknown_one_is_not_found,
    duration_limit_stops_the_job,
    recorder_without_output_fails_its_recording,
    failing_post_processing_fails_the_recording_with_the_step_named,
    lists_logs_and_recordings_are_served,
);

async fn recorder_that_exits_on_its_own_completes_and_its_recording_becomes_ready(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("short").await;
    let job = app.job(job_id).await;
    assert_eq!(job["status"], "running", "{job}");
    let pid = job["process_id"].as_i64().expect("pid recorded") as i32;
    assert!(crate::helpers::process_exists(pid));
    assert_eq!(
        job["process_start_time"].as_i64(),
        crate::helpers::start_time(pid)
    );

    // Observed through GET only: neither active nor cleanup is called.
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["exit_code"], 0);
    assert!(job["completed_at"].is_string());
    assert!(job["stop_requested_at"].is_null());
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(app.processing_runs(recording_id), 1);
}

async fn non_zero_exit_fails_the_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("crash").await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_code"], 3);
    assert!(
        job["error"].as_str().unwrap_or("").contains("code 3"),
        "{job}"
    );
    // It did record data, so the recording is still processed.
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
}

async fn signal_nobody_asked_for_fails_the_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, _) = app.start_ok("signalled").await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["exit_signal"], 10);
    assert!(job["exit_code"].is_null());
    assert!(
        job["error"]
            .as_str()
            .unwrap_or("")
            .contains("nobody requested"),
        "{job}"
    );
}

async fn stop_with_sigint_completes_the_job_and_finalizes_the_output(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    // Stopped while recording, so there is an output to finalize.
    app.wait_for_recorder_output(recording_id).await;
    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The answer does not wait for the recorder: it says `stopping` (or, if
    // the recorder was very quick, already `completed`).
    assert!(
        matches!(
            body["job"]["status"].as_str(),
            Some("stopping" | "completed")
        ),
        "{body}"
    );
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["exit_code"], 0);
    assert!(job["stop_requested_at"].is_string());
    let recording = app.wait_for_recording_settled(recording_id).await;
    let output = std::fs::read_to_string(recording["output_path"].as_str().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        output.ends_with("trailer\n"),
        "output not finalized: {output:?}"
    );
    let (_, log) = app
        .get(&format!("/api/recordings/jobs/{job_id}/log/"))
        .await;
    assert!(
        log["content"]
            .as_str()
            .unwrap_or("")
            .contains("stop signal received"),
        "{log}"
    );
}

async fn stop_escalates_to_sigkill_when_sigint_and_sigterm_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("stubborn").await;
    // Ignoring SIGINT and SIGTERM once it writes: a signal before then
    // would end it at once.
    app.wait_for_recorder_output(recording_id).await;
    let asked = Instant::now();
    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["status"], "stopping", "{body}");
    let job = app.wait_for_job_end(job_id).await;
    let took = asked.elapsed();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["exit_signal"], 9, "{job}");
    // Two grace periods of 0.5 s (SIGINT → SIGTERM → SIGKILL).
    assert!(
        took >= Duration::from_millis(900),
        "escalated too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "escalation too slow: {took:?}"
    );
    let log = app.server_log_text();
    for signal in ["signal=2", "signal=15", "signal=9"] {
        assert!(log.contains(signal), "{signal} not sent:\n{log}");
    }
}

async fn stopping_an_ended_job_is_a_conflict_and_an_unknown_one_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, _) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "job_already_ended");
    assert_eq!(body["error"]["status"], "completed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("completed")
    );

    let (status, body) = app.stop(987_654).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "job_not_found");
}

async fn duration_limit_stops_the_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = Instant::now();
    let (job_id, recording_id) = app
        .start_ok_with(json!({ "source": "test://x", "profile": "test", "duration_seconds": 1 }))
        .await;
    let job = app.wait_for_job_end(job_id).await;
    let took = started.elapsed();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["duration_seconds"], 1);
    assert!(
        job["stop_requested_at"].is_string(),
        "the supervisor stopped it: {job}"
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready");
}

async fn recorder_without_output_fails_its_recording(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("empty").await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "exit 0: {job}");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "failed", "{recording}");
    assert!(
        recording["error"]
            .as_str()
            .unwrap_or("")
            .contains("no output"),
        "{recording}"
    );
    assert_eq!(app.processing_runs(recording_id), 0);
}

async fn failing_post_processing_fails_the_recording_with_the_step_named(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        AppOptions {
            post_processing_ok: false,
            ..Default::default()
        },
    )
    .await;
    let (job_id, recording_id) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "failed", "{recording}");
    let error = recording["error"].as_str().unwrap_or("");
    assert!(
        error.contains("post-processing-1") && error.contains("code 4"),
        "{recording}"
    );
}

async fn lists_logs_and_recordings_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, _) = app.start_ok("short").await;
    let (second, second_recording) = app.start_ok("test").await;
    app.wait_for_job_end(first).await;

    let (status, page) = app.get("/api/recordings/jobs/?page_size=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["count"], 2);
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["jobs"][0]["id"], second, "newest first");
    let (_, page2) = app.get("/api/recordings/jobs?page=2&page_size=1").await;
    assert_eq!(page2["jobs"][0]["id"], first);
    let (_, running) = app.get("/api/recordings/jobs/?status=running").await;
    assert_eq!(running["count"], 1);
    assert_eq!(running["jobs"][0]["id"], second);

    let active = app.active().await;
    assert_eq!(active["count"], 1);
    assert_eq!(active["jobs"][0]["id"], second);

    let (status, log) = app.get(&format!("/api/recordings/jobs/{first}/log")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        log["content"].as_str().unwrap_or("").contains("recording"),
        "{log}"
    );
    let (_, tail) = app
        .get(&format!("/api/recordings/jobs/{first}/log/?bytes=5"))
        .await;
    assert_eq!(tail["truncated"], true, "{tail}");

    let (status, recordings) = app.get("/api/recordings/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recordings["count"], 2);
    let recording = app.recording(second_recording).await;
    assert_eq!(recording["status"], "recording");
    assert_eq!(recording["jobs"][0]["id"], second);
    let (status, _) = app.get("/api/recordings/?status=recording").await;
    assert_eq!(status, StatusCode::OK);

    app.stop(second).await;
    let job = app.wait_for_job_end(second).await;
    assert!(is_terminal(&job["status"]));
}
