//! Errors over a real socket: a few bad inputs through the whole HTTP
//! stack (every other one is a row in `validation.rs`, in-process), and a
//! recorder that cannot be spawned. Never a 500 for a client's mistake,
//! never a panic.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    bad_inputs_get_clear_errors_over_http,
    a_recorder_that_cannot_be_spawned_leaves_no_running_job,
    fields_a_start_or_stop_does_not_know_are_ignored,
);

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
}

async fn bad_inputs_get_clear_errors_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = "/api/recordings/jobs/start/";

    let (s, b) = app
        .post_raw(start, "application/json", "{\"source\": ")
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "malformed_json");
    let (s, b) = app.get("/api/nothing/here").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // The server answers 413 without reading the rest of the body, then
    // closes that connection: sent last so no later request reuses it.
    let big = format!("{{\"source\": \"test://{}\"}}", "a".repeat(200 * 1024));
    let (s, b) = app.post_raw(start, "application/json", big).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // None of these left a job behind.
    // A new client: the pooled connection was closed by the 413.
    let fresh = crate::helpers::http_client();
    let jobs: Value = fresh
        .get(app.url("/api/recordings/jobs/"))
        .send()
        .await
        .expect("list jobs")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jobs["count"], 0, "{jobs}");
}

async fn a_recorder_that_cannot_be_spawned_leaves_no_running_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .start(json!({ "source": "test://a", "profile": "missing" }))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::INTERNAL_SERVER_ERROR,
        "spawn_failed",
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("/nonexistent/recorder-binary"),
        "names the program: {message}"
    );
    assert!(
        message.contains("No such file"),
        "names the OS error: {message}"
    );
    let job_id = body["error"]["job_id"].as_i64().expect("job id in error");
    let job = app.job(job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(app.active().await["count"], 0);
    let recording = app
        .recording(job["recording_id"].as_i64().unwrap_or_default())
        .await;
    assert_eq!(recording["status"], "failed", "{recording}");
}

/// The seed's clients send fields of their own (a Django form's
/// `quality`, say): they are ignored, not refused.
async fn fields_a_start_or_stop_does_not_know_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .start(json!({
            "source": "test://extra",
            "title": "With extras",
            "quality": "high",
            "tags": ["a", "b"],
            "options": { "bitrate": 128 },
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["recording"]["title"], "With extras", "{body}");
    let job_id = body["job"]["id"].as_i64().expect("job id");
    let (status, body) = app
        .post(
            "/api/recordings/jobs/stop/",
            json!({ "job_id": job_id, "reason": "end of show" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
}
