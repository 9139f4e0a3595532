//! Jobs no task of the server owns, and races between the paths that end a
//! job.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use recorderd::entity::{JobStatus, RecordingStatus, recording, recording_job};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::{Backend, TestApp, dead_process, process_exists, start_time};
use crate::on_both_databases;

on_both_databases!(
    seed_example_four_dead_pids_are_cleaned_up,
    live_pid_with_a_mismatching_start_time_counts_as_dead_and_is_never_signalled,
    live_orphan_is_kept_adopted_and_stoppable,
    a_live_process_without_the_job_marker_is_not_adopted,
    exactly_one_transition_and_one_processing_run_under_racing_calls,
);

/// Inserts a recording and a `running` job claiming `pid`, as a previous
/// supervisor would have left them. Returns the job id.
async fn insert_orphan(
    db: &DatabaseConnection,
    dir: &std::path::Path,
    pid: i32,
    start: Option<i64>,
) -> i32 {
    let now = OffsetDateTime::now_utc();
    let recording = recording::ActiveModel {
        title: Set(format!("orphan {pid}")),
        source: Set("test://orphan".into()),
        profile: Set("test".into()),
        status: Set(RecordingStatus::Recording),
        output_path: Set(dir.join(format!("orphan-{pid}.txt")).display().to_string()),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert recording");
    let job = recording_job::ActiveModel {
        recording_id: Set(recording.id),
        status: Set(JobStatus::Running),
        process_id: Set(Some(pid)),
        process_start_time: Set(start),
        started_at: Set(now),
        log_path: Set(dir.join(format!("orphan-{pid}.log")).display().to_string()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert job");
    job.id
}

async fn set_identity(db: &DatabaseConnection, job_id: i32, pid: i32, start: i64) {
    recording_job::ActiveModel {
        id: Set(job_id),
        process_id: Set(Some(pid)),
        process_start_time: Set(Some(start)),
        ..Default::default()
    }
    .update(db)
    .await
    .expect("update job identity");
}

async fn seed_example_four_dead_pids_are_cleaned_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (pid, start) = dead_process();
        ids.push(insert_orphan(&db, &app.dir, pid, Some(start)).await);
    }
    let cleanup = app.cleanup().await;
    assert_eq!(
        cleanup,
        json!({ "success": true, "updated_count": 4, "message": "4 job(s) updated" })
    );
    assert_eq!(app.active().await, json!({ "count": 0, "jobs": [] }));
    for id in ids {
        let job = app.job(id.into()).await;
        assert!(crate::helpers::is_terminal(&job["status"]), "{job}");
        assert!(
            job["error"]
                .as_str()
                .unwrap_or("")
                .contains("no longer exists"),
            "{job}"
        );
    }
    // Nothing left to do the second time.
    assert_eq!(app.cleanup().await["updated_count"], 0);
}

async fn live_pid_with_a_mismatching_start_time_counts_as_dead_and_is_never_signalled(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    let mut bystander = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let pid = bystander.id() as i32;
    let real_start = start_time(pid).expect("start time");
    let job_id = insert_orphan(&db, &app.dir, pid, Some(real_start + 1)).await;

    let active = app.active().await;
    assert_eq!(active["count"], 0, "{active}");
    let job = app.job(job_id.into()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or("")
            .contains("unrelated process"),
        "{job}"
    );
    assert!(
        process_exists(pid),
        "the unrelated process must not be touched"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

async fn live_orphan_is_kept_adopted_and_stoppable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    // A recorder from "before the restart": its row first (for the job id),
    // then the process, in its own process group and carrying the job
    // marker, as the supervisor would have started it.
    let job_id = insert_orphan(&db, &app.dir, 0, None).await;
    let mut orphan = std::process::Command::new(crate::helpers::test_recorder());
    std::os::unix::process::CommandExt::process_group(&mut orphan, 0);
    let output = app.dir.join("orphan-output.txt");
    let mut orphan = orphan
        .args([
            "--output",
            &output.display().to_string(),
            "--max-lifetime",
            "60",
        ])
        .env("RECORDERD_JOB_ID", job_id.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn orphan");
    let pid = orphan.id() as i32;
    set_identity(&db, job_id, pid, start_time(pid).expect("start time")).await;

    assert_eq!(app.cleanup().await["updated_count"], 0);
    let active = app.active().await;
    assert_eq!(active["count"], 1, "a live orphan stays listed: {active}");
    assert!(process_exists(pid));

    let (status, body) = app.stop(job_id.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The orphan is the test's child, so reap it here; the server notices
    // its end through a pidfd either way.
    let reaper = std::thread::spawn(move || orphan.wait());
    let job = app.wait_for_job_end(job_id.into()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(
        job["exit_code"].is_null(),
        "exit status of a non-child is unknown: {job}"
    );
    let status = reaper.join().expect("reaper").expect("wait");
    assert!(
        status.success(),
        "the orphan got SIGINT and exited cleanly: {status}"
    );
}

async fn a_live_process_without_the_job_marker_is_not_adopted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    let mut stranger = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let pid = stranger.id() as i32;
    let job_id = insert_orphan(&db, &app.dir, pid, start_time(pid)).await;
    assert_eq!(app.cleanup().await["updated_count"], 1);
    let job = app.job(job_id.into()).await;
    assert!(
        job["error"]
            .as_str()
            .unwrap_or("")
            .contains("RECORDERD_JOB_ID"),
        "{job}"
    );
    assert!(process_exists(pid), "the stranger is never signalled");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

async fn exactly_one_transition_and_one_processing_run_under_racing_calls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut jobs = Vec::new();
    for i in 0..20 {
        // Each recorder exits on its own after 1 or 2 s, exactly when its
        // duration limit makes the supervisor stop it: exit and stop race.
        let duration = 1 + (i % 2);
        let (job, recording) = app
            .start_ok_with(json!({ "source": "test://race", "profile": "timed", "duration_seconds": duration }))
            .await;
        jobs.push((job, recording));
    }
    // The timing is the point: the calls below land from 0.7 s to 1.24 s
    // after the starts, around the moment the first ten recorders end.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = app.client.clone();
        let base = app.address.clone();
        let (job_id, _) = jobs[i % jobs.len()];
        calls.spawn(async move {
            // Spread over 0.54 s, so exits, stops and reconciliations race.
            tokio::time::sleep(Duration::from_millis((i as u64 % 10) * 60)).await;
            let response = match i % 3 {
                0 => {
                    client
                        .post(format!("{base}/api/recordings/jobs/stop/"))
                        .json(&json!({ "job_id": job_id }))
                        .send()
                        .await
                }
                1 => {
                    client
                        .get(format!("{base}/api/recordings/jobs/active/"))
                        .send()
                        .await
                }
                _ => {
                    client
                        .post(format!("{base}/api/recordings/jobs/cleanup/"))
                        .header("content-type", "application/json")
                        .send()
                        .await
                }
            };
            let status = response.expect("request").status();
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "unexpected {status}"
            );
        });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("racing call");
    }
    let mut seen = HashSet::new();
    for (job_id, recording_id) in &jobs {
        let job = app.wait_for_job_end(*job_id).await;
        assert_eq!(job["status"], "completed", "{job}");
        let recording = app.wait_for_recording_settled(*recording_id).await;
        assert_eq!(recording["status"], "ready", "{recording}");
        seen.insert(*recording_id);
    }
    // Let any duplicate run that might have been launched finish too:
    // that none shows within this wait is the point.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for recording_id in seen {
        assert_eq!(
            app.processing_runs(recording_id),
            1,
            "recording {recording_id}"
        );
    }
    assert_eq!(app.active().await["count"], 0);
}
