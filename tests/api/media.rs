//! What the dashboard and other clients read beside the job API: the
//! profiles a start can name, a recorder's log followed from offsets, and
//! the refusals of a recording browsers cannot play (the playing itself is
//! `ffmpeg.rs`'s and `dashboard.rs`'s, with real media).

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_recorders_log_is_followed_from_where_the_last_read_ended,
    a_recording_browsers_cannot_play_is_refused_with_the_reason,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profiles_a_start_can_name_are_listed_default_first() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = app.get("/api/profiles/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["default"], "test", "{body}");
    let profiles = body["profiles"].as_array().cloned().unwrap_or_default();
    assert_eq!(profiles[0]["name"], "test", "the default first: {body}");
    assert_eq!(profiles[0]["default"], true);
    assert!(
        profiles[1..].iter().all(|p| p["default"] == false),
        "{body}"
    );
    let pipeline = profiles
        .iter()
        .find(|p| p["name"] == "pipeline")
        .unwrap_or_else(|| panic!("no pipeline profile: {body}"));
    assert_eq!(pipeline["allowed_schemes"], serde_json::json!(["test"]));
    let steps: Vec<&str> = pipeline["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(steps, ["flaky", "words"]);
    // The built-in profile is there too; never a command line.
    assert!(profiles.iter().any(|p| p["name"] == "ffmpeg"), "{body}");
    assert!(!body.to_string().contains("command"), "{body}");
}

async fn a_recorders_log_is_followed_from_where_the_last_read_ended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    let log = |query: String| {
        let app = &app;
        async move {
            let (status, body) = app
                .get(&format!("/api/recordings/jobs/{job_id}/log/?{query}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let first = log("offset=0".to_owned()).await;
    assert_eq!(first["offset"], 0);
    let mut next = first["next_offset"].as_u64().expect("next_offset");
    let mut text = first["content"].as_str().unwrap_or_default().to_owned();
    assert_eq!(next as usize, text.len(), "{first}");

    app.stop(job_id).await;
    app.wait_for_job_end(job_id).await;
    // Read on until a read brings nothing: the whole log, each byte once.
    loop {
        let more = log(format!("offset={next}&bytes=16")).await;
        assert_eq!(more["offset"], next, "{more}");
        let content = more["content"].as_str().unwrap_or_default();
        if content.is_empty() {
            break;
        }
        text += content;
        next = more["next_offset"].as_u64().expect("next_offset");
    }
    let whole = log("bytes=1048576".to_owned()).await;
    assert_eq!(text, whole["content"].as_str().unwrap_or_default());
    assert!(text.contains("stop signal received"), "{text}");
    let (status, body) = app
        .get(&format!(
            "/api/recordings/jobs/{job_id}/log/?offset=9007199254740992"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn a_recording_browsers_cannot_play_is_refused_with_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    let (status, body) = app
        .get(&format!("/api/recordings/{recording_id}/media.mp4"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "recording_busy", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("still recording")),
        "{body}"
    );
    app.stop(job_id).await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording(recording_id, Duration::from_secs(15), |r| {
        r["status"] == "ready"
    })
    .await;
    // The test recorder writes lines of text, which no player plays.
    for path in ["media.mp4", "thumbnail.jpg"] {
        let (status, body) = app
            .get(&format!("/api/recordings/{recording_id}/{path}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_playable", "{body}");
    }
    let (status, body) = app.get("/api/recordings/424242/media.mp4").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
