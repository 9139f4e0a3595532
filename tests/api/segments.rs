//! Continuous recording: a recorder under `restart = "always"` outlives a
//! crash loop.

use std::time::Duration;

use crate::helpers::{AppOptions, Backend, TestApp, test_recorder};
use crate::on_both_databases;

on_both_databases!(
    restart_always_survives_five_crashes_in_a_row_and_a_stop_ends_it,
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
