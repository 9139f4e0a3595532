//! What recordings are kept: a profile's `retain_bytes` deletes its oldest
//! `ready` recordings as new ones arrive, and a disk below
//! `--min-free-bytes` gives up the oldest of the profiles that allow it
//! before a start is refused. Each deletion is an event.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::tmpfs::Tmpfs;
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_third_recording_beyond_retain_bytes_deletes_the_oldest,
    a_low_disk_gives_up_the_oldest_recordings_before_refusing_a_start,
);

/// A recorder that writes `bytes` bytes at once and ends: each recording
/// is exactly that big, and `ready` as soon as its job ends (no steps).
fn sized_profile(name: &str, bytes: u64, extra: &str) -> String {
    format!(
        "\n[profiles.{name}]\n\
         command = [\"sh\", \"-c\", \"head -c {bytes} /dev/zero > \\\"$0\\\"\", \"{{output}}\"]\n\
         output_extension = \"bin\"\n\
         allowed_schemes = [\"test\"]\n{extra}\n"
    )
}

/// Records one recording with `profile` and waits until it is `ready`.
async fn record_one(app: &TestApp, profile: &str) -> i64 {
    let (_, recording_id) = app
        .start_ok_with(json!({ "source": "test://stream", "profile": profile }))
        .await;
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(20), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    recording_id
}

/// Waits until the recording is gone (404).
async fn wait_deleted(app: &TestApp, recording_id: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get(&format!("/api/recordings/{recording_id}/")).await;
        if status == StatusCode::NOT_FOUND {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recording {recording_id} was not deleted: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `recording.deleted` events, oldest first: (recording id, why).
async fn deletions(app: &TestApp) -> Vec<(i64, String)> {
    use recorderd::entity::{EventKind, event};
    event::Entity::find()
        .order_by_asc(event::Column::Id)
        .all(&app.db().await)
        .await
        .expect("read the event log")
        .into_iter()
        .filter(|e| e.kind == EventKind::RecordingDeleted)
        .filter_map(|e| {
            let data: Value = serde_json::from_str(&e.payload).ok()?;
            Some((
                data["id"].as_i64()?,
                data["deleted_because"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

async fn a_third_recording_beyond_retain_bytes_deletes_the_oldest(backend: Backend) {
    let options = AppOptions {
        profiles: Some(sized_profile("kept", 1000, "retain_bytes = 2500")),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let first = record_one(&app, "kept").await;
    let second = record_one(&app, "kept").await;
    let first_file = PathBuf::from(
        app.recording(first).await["output_path"]
            .as_str()
            .unwrap_or_default(),
    );
    assert!(first_file.exists(), "{}", first_file.display());
    // Two fit in 2500 bytes: nothing goes yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.recording(first).await["status"], "ready");

    let third = record_one(&app, "kept").await;
    wait_deleted(&app, first).await;
    assert!(!first_file.exists(), "its file went with it");
    for kept in [second, third] {
        assert_eq!(app.recording(kept).await["status"], "ready");
    }
    assert_eq!(deletions(&app).await, [(first, "retain_bytes".to_owned())]);

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("recorderd_retained_bytes{profile=\"kept\"} 2000"),
        "{metrics}"
    );
    assert!(metrics.contains("recorderd_disk_free_bytes "), "{metrics}");
}

async fn a_low_disk_gives_up_the_oldest_recordings_before_refusing_a_start(backend: Backend) {
    // A 4 MiB disk that must keep 1.5 MiB free; each recording is 1 MiB.
    let mut profiles = sized_profile("bulky", 1024 * 1024, "reclaim_when_disk_low = true");
    profiles += &sized_profile("precious", 1024 * 1024, "");
    let options = AppOptions {
        profiles: Some(profiles),
        extra_args: vec!["--min-free-bytes".into(), (1536 * 1024).to_string()],
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(backend, options).await;
    app.signal_server(15).await;
    let Some(_disk) = Tmpfs::mount(&app.dir.join("data").join("recordings"), "4m") else {
        return;
    };
    app.start_server().await;

    let oldest = record_one(&app, "bulky").await;
    let kept = record_one(&app, "precious").await;
    let newer = record_one(&app, "bulky").await;
    // 1 MiB left: below the floor. The oldest recording of the profile
    // that allows it goes; the other profile's is kept.
    let (status, body) = app
        .start(json!({ "source": "test://stream", "profile": "bulky" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_deleted(&app, oldest).await;
    assert_eq!(app.recording(kept).await["status"], "ready");
    assert_eq!(app.recording(newer).await["status"], "ready");
    assert_eq!(deletions(&app).await, [(oldest, "disk_low".to_owned())]);
    let started = body["recording"]["id"].as_i64().unwrap_or_default();
    app.wait_for_recording_settled(started).await;

    // Below the floor again: the next oldest of `bulky` goes, whichever
    // profile the new start is for.
    let (status, body) = app
        .start(json!({ "source": "test://stream", "profile": "precious" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_deleted(&app, newer).await;
    assert_eq!(
        app.recording(kept).await["status"],
        "ready",
        "never a recording of a profile that does not allow it"
    );
    assert_eq!(app.recording(started).await["status"], "ready");
}
