//! The built-in profile against sources that misbehave the way real ones
//! do, served by real ffmpeg on loopback: an HLS playlist that lists
//! segments from before the start, a source that refuses every attempt
//! the same way at once.

use std::time::Duration;

use serde_json::json;

use crate::ffmpeg::{TONE, ffmpeg_available, record_live_stream_with, wait_recorded};
use crate::helpers::hls::{HlsSource, SEGMENT_SECONDS, serve_dir};
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_12_s_job_from_a_live_hls_playlist_holds_12_s_from_its_start,
    a_source_that_fails_the_same_way_at_once_is_not_restarted_forever,
    a_source_that_stops_sending_leaves_its_data_behind_and_stalls,
    a_video_only_stream_is_ready_with_its_analysis_and_thumbnail,
);

/// A live H.264 picture without sound, as most RTSP cameras send: a test
/// pattern, then 3 s of black.
const CAMERA: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x240:rate=25,drawbox=enable='gte(t,3)':color=black:t=fill",
    "-an",
];

async fn a_12_s_job_from_a_live_hls_playlist_holds_12_s_from_its_start(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let tone = [TONE, &["-c:a", "aac"]].concat();
    let source = HlsSource::start(&app.dir, &tone).await;
    // Several segments listed: a recorder starting from the playlist's
    // beginning would record seconds from before the job.
    app.wait_until(
        "4 segments listed",
        Duration::from_secs(30),
        || match source.listed_segments().len() {
            n if n >= 4 => Ok(()),
            n => Err(format!("{n} segments")),
        },
    )
    .await;
    let (job_id, recording_id) = app
        .start_ok_with(json!({ "source": source.url, "profile": "ffmpeg", "duration_seconds": 12 }))
        .await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(40), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_reason"], "duration", "{job}");
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let duration = recording["analysis"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!("HLS: a 12 s job holds {duration:.2} s");
    assert!(
        (duration - 12.0).abs() <= SEGMENT_SECONDS + 0.5,
        "a 12 s job holds {duration:.2} s: {recording}"
    );
}

async fn a_source_that_fails_the_same_way_at_once_is_not_restarted_forever(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    // An HTTP server that answers 404 for everything: ffmpeg exits 1 at
    // once on each run. The built-in profile would restart it 3 times.
    let empty = app.dir.join("empty");
    std::fs::create_dir_all(&empty).expect("empty directory");
    let base = serve_dir(empty).await;
    let (job_id, _) = app
        .start_ok_with(json!({ "source": format!("{base}/gone.ts"), "profile": "ffmpeg" }))
        .await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(40), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempt"], 3, "given up after 3 runs, not 4: {job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("404"), "the log's cause is named: {error}");
    assert!(error.contains("3 times in a row"), "{error}");
    for run in job["attempts"].as_array().into_iter().flatten() {
        let lasted = run["lasted_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(lasted < 2000, "each run failed at once: {job}");
    }
}

/// The built-in profile's recorder, stopped as stalled after 8 s without
/// data (ffmpeg probes a live MPEG-TS input for up to 5 s before it writes)
/// and never restarted.
const WATCHED_FFMPEG: &str = r#"
[profiles.watched]
command = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1",
           "-loglevel", "info", "-protocol_whitelist", "{protocols}",
           "{input_options}", "-i", "{source}", "-map", "0", "-dn", "-c", "copy",
           "-f", "matroska", "-cluster_time_limit", "1000", "-flush_packets", "1", "{output}"]
progress = "ffmpeg"
output_extension = "mkv"
allowed_schemes = ["udp"]
clean_exit_codes = [0, 255]
stall_timeout_seconds = 8
stop_grace_seconds = 2
"#;

async fn a_source_that_stops_sending_leaves_its_data_behind_and_stalls(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let options = AppOptions {
        profiles: Some(WATCHED_FFMPEG.to_owned()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let (job_id, recording_id, source) = record_live_stream_with(&app, "watched", TONE).await;
    let running = wait_recorded(&app, job_id, 1, 2.0).await;
    let fresh = running["progress"]["last_data_at"].clone();
    assert!(fresh.is_string(), "{running}");
    // Data flows: the figures move.
    let moved = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| {
            j["progress"]["last_data_at"] != fresh
        })
        .await;
    assert_eq!(moved["status"], "running", "{moved}");

    // The source goes quiet; the recorder lives on, waiting for packets.
    // The last data seen while it runs is what the stall is measured from.
    drop(source);
    let last_data = std::sync::Mutex::new(serde_json::Value::Null);
    let job = app
        .wait_for_job(job_id, Duration::from_secs(40), |j| {
            if j["progress"]["last_data_at"].is_string()
                && let Ok(mut last) = last_data.lock()
            {
                *last = j["progress"]["last_data_at"].clone();
            }
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    let last_data = last_data.into_inner().unwrap_or_default();
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["stop_reason"], "stalled", "{job}");
    assert!(
        job["progress"].is_null(),
        "an ended job has no live figures: {job}"
    );
    let stopped_at = time::OffsetDateTime::parse(
        job["stop_requested_at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("stop_requested_at");
    if let Some(last) = last_data.as_str() {
        let last =
            time::OffsetDateTime::parse(last, &time::format_description::well_known::Rfc3339)
                .expect("last_data_at");
        let silence = (stopped_at - last).as_seconds_f64();
        assert!(
            (7.5..=14.0).contains(&silence),
            "stopped {silence:.1} s after the last data: {job}"
        );
    }
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(
        recording["status"], "ready",
        "what came is kept: {recording}"
    );
}

async fn a_video_only_stream_is_ready_with_its_analysis_and_thumbnail(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id, _source) =
        crate::ffmpeg::record_live_video(&app, "ffmpeg", CAMERA).await;
    wait_recorded(&app, job_id, 1, 6.0).await;
    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(120), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let analysis = &recording["analysis"];
    let video = &analysis["video"];
    assert_eq!(
        analysis["codec"],
        serde_json::Value::Null,
        "no audio: {analysis}"
    );
    assert_eq!(video["codec"], "h264", "{analysis}");
    assert_eq!(video["width"], 320, "{analysis}");
    assert_eq!(video["height"], 240, "{analysis}");
    let rate = video["frame_rate"].as_f64().unwrap_or(0.0);
    assert!((rate - 25.0).abs() < 0.5, "{analysis}");
    // The black part of the picture is found (it starts about 3 s into the
    // source, which began before the recording).
    let black = video["black"].as_array().cloned().unwrap_or_default();
    assert!(!black.is_empty(), "black found: {analysis}");
    // Transcription has nothing to hear: recorded as failed, not fatal.
    for step in recording["steps"].as_array().into_iter().flatten() {
        if step["name"] == "analyze" {
            assert_eq!(step["status"], "succeeded", "{recording}");
        }
    }

    let response = app
        .client
        .get(app.url(&format!("/api/recordings/{recording_id}/thumbnail.jpg")))
        .send()
        .await
        .expect("GET thumbnail");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    let jpeg = response.bytes().await.expect("thumbnail body");
    assert!(
        jpeg.starts_with(&[0xFF, 0xD8]),
        "a JPEG: {} bytes",
        jpeg.len()
    );
}
