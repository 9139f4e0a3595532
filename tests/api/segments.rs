//! Continuous recording: a recorder under `restart = "always"` outlives a
//! crash loop, and a segmented one (`segment_seconds`, real ffmpeg on
//! loopback) has each closed segment processed as a recording of its own
//! while the stream goes on.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::ffmpeg::{TONE, ffmpeg_available, record_live_stream_with, wait_recorded};
use crate::helpers::{AppOptions, Backend, TestApp, test_recorder};
use crate::on_both_databases;

on_both_databases!(
    restart_always_survives_five_crashes_in_a_row_and_a_stop_ends_it,
    segments_are_processed_as_they_close_and_cover_the_stream_without_gaps,
    segments_closed_while_the_server_was_away_are_recorded_once,
);

/// Fails within 0.3 s for its first five runs (counted per job beside its
/// output), then records until stopped; restarted however often it ends.
fn always_profile() -> String {
    let script = "dir=$(dirname \"$2\"); n=$(cat \"$dir/runs-$0\" 2>/dev/null || echo 0); \
                  echo $((n + 1)) > \"$dir/runs-$0\"; \
                  if [ \"$n\" -lt 5 ]; then sleep 0.3; exit 1; fi; \
                  exec \"$1\" --output \"$2\" --max-lifetime 120";
    let recorder = test_recorder().display().to_string();
    format!(
        "[profiles.always]\ncommand = {}\noutput_extension = \"txt\"\n\
         allowed_schemes = [\"test\"]\nrestart = \"always\"\n\
         restart_backoff_seconds = 0.1\nstop_grace_seconds = 2\n",
        testkit::profiles::toml_array(["sh", "-c", script, "{job_id}", &recorder, "{output}"])
    )
}

async fn restart_always_survives_five_crashes_in_a_row_and_a_stop_ends_it(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    let options = AppOptions {
        profiles: Some(always_profile()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let (job_id, recording_id) = app.start_ok("always").await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(30), |j| {
            j["attempt"] == 6 && j["process_id"].is_i64()
        })
        .await;
    assert_eq!(job["status"], "running", "{job}");
    let runs = job["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 5, "{job}");
    assert!(runs.iter().all(|r| r["exit_code"] == 1), "{job}");
    // Three fast identical failures would end an `on_failure` job; here
    // they only make the waits grow: 0.1 s doubling.
    let waits: Vec<u64> = runs
        .iter()
        .map(|r| r["restarted_after_ms"].as_u64().unwrap_or(0))
        .collect();
    assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
    assert!(waits[4] >= 1500, "the fifth wait is 1.6 s: {waits:?}");

    // The sixth run records; a stop ends the job cleanly.
    let output = app.recording(recording_id).await["output_path"]
        .as_str()
        .unwrap_or_default()
        .replace(".txt", ".part6.txt");
    app.wait_until(
        "the sixth run writing",
        Duration::from_secs(15),
        || match std::fs::metadata(&output) {
            Ok(meta) if meta.len() > 0 => Ok(()),
            other => Err(format!("{output}: {other:?}")),
        },
    )
    .await;
    app.stop(job_id).await;
    let ended = app.wait_for_job_end(job_id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_reason"], "requested", "{ended}");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
}

/// The built-in profile's recorder, writing 5 s Matroska segments through
/// ffmpeg's segment muxer; each segment analyzed.
const SEGMENTED: &str = r#"
[profiles.segmented]
command = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1",
           "-i", "{source}", "-map", "0", "-dn", "-c", "copy",
           "-f", "segment", "-segment_time", "{segment_seconds}", "-reset_timestamps", "1",
           "-segment_format", "matroska", "-segment_list", "{segment_list}",
           "-segment_list_type", "csv", "{output}"]
progress = "ffmpeg"
output_extension = "mkv"
allowed_schemes = ["udp"]
clean_exit_codes = [0, 255]
stop_grace_seconds = 5
segment_seconds = 5

[[profiles.segmented.steps]]
name = "analyze"
builtin = "analyze"
"#;

/// The segments a recording's detail lists.
fn segments(recording: &Value) -> Vec<Value> {
    recording["segments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Seconds of media in a file, as ffprobe reads it.
fn probed_seconds(path: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            path,
        ])
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("ffprobe {path}: {e}: {out:?}"))
}

async fn segments_are_processed_as_they_close_and_cover_the_stream_without_gaps(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let options = AppOptions {
        profiles: Some(SEGMENTED.to_owned()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let (job_id, recording_id, _source) = record_live_stream_with(&app, "segmented", TONE).await;

    // The first segment is analyzed while the stream goes on.
    let early = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            segments(r).first().is_some_and(|s| s["status"] == "ready")
        })
        .await;
    assert_eq!(app.job(job_id).await["status"], "running", "{early}");

    wait_recorded(&app, job_id, 1, 22.0).await;
    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let parent = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            let listed = segments(r);
            listed.len() >= 5
                && listed.iter().all(|s| s["status"] != "processing")
                && r["status"] != "recording"
        })
        .await;
    assert_eq!(parent["status"], "ready", "{parent}");
    let listed = segments(&parent);
    assert_eq!(
        listed.len(),
        5,
        "4 full segments and a partial one: {parent}"
    );

    let mut probed_total = 0.0;
    let mut expected_start = 0;
    for (i, listed) in listed.iter().enumerate() {
        let id = listed["recording_id"]
            .as_i64()
            .expect("a segment's recording");
        let segment = app.recording(id).await;
        assert_eq!(segment["status"], "ready", "{segment}");
        assert_eq!(segment["parent_id"], recording_id, "{segment}");
        assert_eq!(listed["index"], i as i64 + 1, "{parent}");
        assert!(
            segment["analysis"]["duration_seconds"].is_f64(),
            "{segment}"
        );
        let seconds = probed_seconds(segment["output_path"].as_str().unwrap_or_default());
        probed_total += seconds;
        // Contiguous: each starts where the one before ended, within an
        // audio frame (every audio packet is a keyframe).
        let start = listed["start_ms"].as_i64().unwrap_or(-1);
        let duration = listed["duration_ms"].as_i64().unwrap_or(-1);
        assert!(
            (start - expected_start).abs() <= 50,
            "segment {i}: {parent}"
        );
        expected_start = start + duration;
        if i < 4 {
            assert!((seconds - 5.0).abs() < 0.1, "segment {i} lasts {seconds} s");
        } else {
            assert!(
                seconds > 0.0 && seconds < 5.0,
                "the last is partial: {seconds} s"
            );
        }
    }
    // The segments hold what was recorded: the stream's time the last one
    // ends at, within a keyframe.
    let recorded = expected_start as f64 / 1000.0;
    assert!(
        (22.0..25.0).contains(&recorded),
        "{recorded} s recorded: {parent}"
    );
    assert!(
        (probed_total - recorded).abs() < 0.1,
        "{probed_total} s in the files, {recorded} s recorded"
    );
}

/// How many segments a list names.
fn listed_lines(list: &std::path::Path) -> usize {
    std::fs::read_to_string(list)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

async fn segments_closed_while_the_server_was_away_are_recorded_once(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let options = AppOptions {
        profiles: Some(SEGMENTED.replace("segment_seconds = 5", "segment_seconds = 2")),
        extra_args: vec!["--shutdown-policy".into(), "detach".into()],
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(backend, options).await;
    let (job_id, recording_id, _source) = record_live_stream_with(&app, "segmented", TONE).await;
    app.wait_for_recording(recording_id, Duration::from_secs(60), |r| {
        !segments(r).is_empty()
    })
    .await;
    let output = app.recording(recording_id).await["output_path"]
        .as_str()
        .unwrap_or_default()
        .replace(".mkv", ".segments/run1.csv");
    let list = std::path::PathBuf::from(output);

    // Away while two more segments close; the next server adopts the
    // recorder and finds them.
    let status = app.signal_server(15).await;
    assert!(status.success(), "{status}\n{}", app.server_log_text());
    let before = listed_lines(&list);
    app.wait_until(
        "two segments closed meanwhile",
        Duration::from_secs(30),
        || {
            let now = listed_lines(&list);
            if now >= before + 2 {
                Ok(())
            } else {
                Err(format!("{now} listed"))
            }
        },
    )
    .await;
    app.start_server().await;
    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let total = listed_lines(&list);
    let parent = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            let listed = segments(r);
            listed.len() >= total && listed.iter().all(|s| s["status"] == "ready")
        })
        .await;
    let indexes: Vec<i64> = segments(&parent)
        .iter()
        .map(|s| s["index"].as_i64().unwrap_or(0))
        .collect();
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(indexes, expected, "each segment once, in order: {parent}");
}
