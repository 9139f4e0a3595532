//! A full disk: the recordings' directory on a small tmpfs that a recorder
//! fills. Its job fails saying the disk is full, the others go on, new
//! starts are refused with 507, and the database (elsewhere) loses nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::tmpfs::Tmpfs;
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(a_full_disk_fails_the_recorder_that_filled_it_and_refuses_new_starts);

async fn a_full_disk_fails_the_recorder_that_filled_it_and_refuses_new_starts(backend: Backend) {
    let mut app = TestApp::spawn_with(
        backend,
        AppOptions {
            extra_args: vec!["--min-free-bytes".into(), "1048576".into()],
            ..AppOptions::default()
        },
    )
    .await;
    // The recordings' directory becomes a 4 MiB disk of its own; the
    // database stays where it was.
    app.signal_server(15).await;
    let Some(_disk) = Tmpfs::mount(&app.dir.join("data").join("recordings"), "4m") else {
        return;
    };
    app.start_server().await;

    let (quiet, quiet_recording) = app.start_ok("test").await;
    app.wait_for_recorder_output(quiet_recording).await;
    let (filling, filling_recording) = app.start_ok("filling").await;
    let failed = app
        .wait_for_job(filling, Duration::from_secs(30), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the disk holding the recordings is full"),
        "the error says why: {failed}"
    );
    // Recorded until the disk was full: that is kept and processed.
    let recording = app.wait_for_recording_settled(filling_recording).await;
    assert_eq!(recording["status"], "ready", "{recording}");

    // The other recorder was not touched.
    let other = app.job(quiet).await;
    assert_eq!(other["status"], "running", "{other}");

    // Below the floor, a start is refused before anything is written.
    let (status, body) = app
        .start(json!({ "source": "test://stream", "profile": "test" }))
        .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    let (_, jobs) = app.get("/api/recordings/jobs/").await;
    assert_eq!(jobs["count"], 2, "no job was created: {jobs}");

    // The database lost nothing: the running one stops as usual.
    app.stop(quiet).await;
    let ended = app.wait_for_job_end(quiet).await;
    assert_eq!(ended["status"], "completed", "{ended}");
}
