//! The job's state stays true under faults: a recorder killed and restarted,
//! a stop during the restart wait, a source that ends early, a client that
//! goes away mid-request, a supervisor that dies between spawning and
//! storing, a panic in the exit handling, a recording stuck in processing.

use std::io::Write;
use std::time::{Duration, Instant};

use recorderd::entity::{EventKind, event};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{AppOptions, Backend, TestApp, send_signal};
use crate::on_both_databases;

on_both_databases!(
    a_restarting_job_never_shows_a_dead_process_and_says_when_it_restarts,
    a_stop_during_the_restart_wait_ends_the_job_at_its_last_runs_end,
    a_duration_limit_during_the_restart_wait_ends_the_job_at_once,
    a_source_that_ends_early_is_restarted_then_said_to_have_ended_early,
    a_client_gone_mid_start_leaves_a_complete_job,
    a_client_gone_mid_reprocess_leaves_the_recording_processed,
    a_supervisor_killed_between_spawn_and_identity_leaves_no_unowned_recorder,
    a_recorder_whose_job_ended_while_its_supervisor_was_down_is_stopped_at_start,
    a_panic_in_the_exit_handling_exits_the_process_and_the_next_start_adopts,
    an_instant_exit_is_announced_after_its_start,
    a_recording_stuck_in_processing_is_relaunched,
    an_adopted_recorder_on_its_second_run_is_watched_on_its_own_file,
);

/// The events stored for a job, oldest first, by kind.
async fn events_of_job(app: &TestApp, job_id: i64) -> Vec<(i32, EventKind, Value)> {
    let db = app.db().await;
    event::Entity::find()
        .order_by_asc(event::Column::Id)
        .all(&db)
        .await
        .expect("read the event log")
        .into_iter()
        .filter_map(|e| {
            let data: Value = serde_json::from_str(&e.payload).ok()?;
            let is_job = e.kind.as_str().starts_with("job.");
            (is_job && data["id"] == job_id).then_some((e.id, e.kind, data))
        })
        .collect()
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap_or_default(), &Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {value}"))
}

fn pid_of(job: &Value) -> i32 {
    job["process_id"].as_i64().unwrap_or_default() as i32
}

async fn a_restarting_job_never_shows_a_dead_process_and_says_when_it_restarts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("phoenix").await;
    app.wait_for_recorder_output(recording_id).await;
    let first = app.job(job_id).await;
    let dead = pid_of(&first);
    send_signal(dead, 9);
    // Until the kernel reports the death the job is, as far as anyone can
    // know, running; from the first read that shows it otherwise, the dead
    // PID never comes back.
    let waiting = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| j["process_id"] != dead)
        .await;
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert!(waiting["process_id"].is_null(), "{waiting}");
    assert!(waiting["restart_at"].is_string(), "{waiting}");
    assert_eq!(waiting["attempt"], 2, "{waiting}");
    let restarted = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| {
            assert_ne!(pid_of(j), dead, "the dead process came back: {j}");
            j["process_id"].is_i64()
        })
        .await;
    assert!(restarted["restart_at"].is_null(), "{restarted}");
    assert_eq!(restarted["attempt"], 2, "{restarted}");
    let ended_at = time_of(&restarted["attempts"][0]["ended_at"]);
    let restart_at = time_of(&waiting["restart_at"]);
    assert!(
        restart_at - ended_at >= time::Duration::milliseconds(900),
        "the next run was announced for after the profile's 1 s wait: {restarted}"
    );
    let kinds: Vec<EventKind> = events_of_job(&app, job_id)
        .await
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::JobStarted,
            EventKind::JobRestarting,
            EventKind::JobRestarted
        ]
    );
    app.stop(job_id).await;
    let ended = app.wait_for_job_end(job_id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
}

async fn a_stop_during_the_restart_wait_ends_the_job_at_its_last_runs_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("slow_phoenix").await;
    app.wait_for_recorder_output(recording_id).await;
    send_signal(pid_of(&app.job(job_id).await), 9);
    app.wait_for_job(job_id, Duration::from_secs(10), |j| {
        j["restart_at"].is_string()
    })
    .await;
    let asked = Instant::now();
    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Not five seconds later, when the next run would have started.
    let ended = app
        .wait_for_job(job_id, Duration::from_secs(3), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    eprintln!(
        "stop during the restart wait: ended {} ms after the request",
        asked.elapsed().as_millis()
    );
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_reason"], "requested", "{ended}");
    assert!(ended["error"].is_null(), "{ended}");
    // The job ended when its last recorder did, not when the stop came.
    // (to the microsecond PostgreSQL keeps)
    let last_run_ended = time_of(&ended["attempts"][0]["ended_at"]);
    let gap = time_of(&ended["completed_at"]) - last_run_ended;
    assert!(gap.abs() < time::Duration::milliseconds(1), "{ended}");
    assert!(
        last_run_ended <= time_of(&ended["stop_requested_at"]),
        "{ended}"
    );
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
}

async fn a_duration_limit_during_the_restart_wait_ends_the_job_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let began = Instant::now();
    let (job_id, recording_id) = app
        .start_ok_with(json!({
            "source": "test://stream", "profile": "slow_phoenix", "duration_seconds": 2
        }))
        .await;
    app.wait_for_recorder_output(recording_id).await;
    send_signal(pid_of(&app.job(job_id).await), 9);
    let ended = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    // The limit (2 s) came during the 5 s wait: the job ended then.
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "ended {:?} after the start: {ended}",
        began.elapsed()
    );
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_reason"], "duration", "{ended}");
    assert_eq!(
        ended["attempts"].as_array().map(Vec::len),
        Some(1),
        "{ended}"
    );
}

async fn a_source_that_ends_early_is_restarted_then_said_to_have_ended_early(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app
        .start_ok_with(json!({
            "source": "test://stream", "profile": "early", "duration_seconds": 30
        }))
        .await;
    let ended = app
        .wait_for_job(job_id, Duration::from_secs(15), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    // Its one restart happened; then it still ended far short of 30 s.
    assert_eq!(ended["attempt"], 2, "{ended}");
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["stop_reason"], "source_ended", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("ended early: the source ended after ")
            && error.contains(" s of the 30 s asked for"),
        "{ended}"
    );
    // What was recorded is kept and processed.
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let events = events_of_job(&app, job_id).await;
    let (_, kind, data) = events.last().expect("the job's events");
    assert_eq!(*kind, EventKind::JobFailed);
    assert_eq!(data["stop_reason"], "source_ended", "{data}");
}

/// Sends a request and leaves without reading the answer, as soon as
/// `begun` says the server is working on it: the connection closes while
/// the operation is half-way (a fault point holds it there for a second).
async fn send_and_hang_up_once(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    what: &str,
    begun: impl AsyncFn() -> bool,
) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !begun().await {
        assert!(Instant::now() < deadline, "the server never began {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
}

async fn a_client_gone_mid_start_leaves_a_complete_job(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        AppOptions {
            env: vec![("RECORDERD_FAULT".into(), "pause_after_spawn".into())],
            ..AppOptions::default()
        },
    )
    .await;
    let body = json!({ "source": "test://stream", "profile": "test", "duration_seconds": 3 });
    // Gone once the job exists, while its start waits to store the
    // recorder's identity.
    send_and_hang_up_once(
        &app,
        "POST",
        "/api/recordings/jobs/start/",
        &body.to_string(),
        "the start",
        async || app.get("/api/recordings/jobs/1/").await.0 == StatusCode::OK,
    )
    .await;
    // The start goes on without its client: identity, event, limit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let (status, job) = app.get("/api/recordings/jobs/1/").await;
        if status == StatusCode::OK && job["process_id"].is_i64() {
            break job;
        }
        assert!(Instant::now() < deadline, "no job with its process: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(job["process_start_time"].is_i64(), "{job}");
    let ended = app.wait_for_job_end(1).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(
        ended["stop_reason"], "duration",
        "the limit was armed: {ended}"
    );
    let kinds: Vec<EventKind> = events_of_job(&app, 1)
        .await
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert_eq!(kinds.first(), Some(&EventKind::JobStarted), "{kinds:?}");
}

async fn a_client_gone_mid_reprocess_leaves_the_recording_processed(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    assert_eq!(app.processing_runs(recording_id), 1);
    app.signal_server(15).await;
    app.set_env(vec![(
        "RECORDERD_FAULT".into(),
        "pause_in_reprocess".into(),
    )]);
    app.start_server().await;
    // Gone once the recording is reset to `processing`, before its
    // pipeline is launched.
    send_and_hang_up_once(
        &app,
        "POST",
        &format!("/api/recordings/{recording_id}/reprocess/"),
        "",
        "the reprocess",
        async || app.recording(recording_id).await["status"] == "processing",
    )
    .await;
    // Without its client the reprocess still reaches its pipeline: the
    // recording is processed again and ends ready, not left `processing`.
    app.wait_until(
        "the second processing run",
        Duration::from_secs(15),
        || match app.processing_runs(recording_id) {
            2 => Ok(()),
            n => Err(format!("{n} run(s)")),
        },
    )
    .await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
}

/// Live processes whose command line names `path`.
fn processes_writing(path: &str) -> Vec<i32> {
    procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter(|p| {
            p.cmdline()
                .is_ok_and(|args| args.iter().any(|a| a.contains(path)))
        })
        .filter(|p| p.stat().is_ok_and(|s| s.pid == s.pgrp))
        .map(|p| p.pid)
        .filter(|pid| testkit::process::is_alive(*pid))
        .collect()
}

async fn a_supervisor_killed_between_spawn_and_identity_leaves_no_unowned_recorder(
    backend: Backend,
) {
    let mut app = TestApp::spawn_with(
        backend,
        AppOptions {
            env: vec![("RECORDERD_FAULT".into(), "exit_after_spawn".into())],
            ..AppOptions::default()
        },
    )
    .await;
    // The server spawns the recorder, then dies before storing who it is.
    let _ = app
        .client
        .post(app.url("/api/recordings/jobs/start/"))
        .json(&json!({ "source": "test://stream", "profile": "test" }))
        .send()
        .await;
    let status = app.wait_for_server_exit().await;
    assert_eq!(status.code(), Some(86), "{}", app.server_log_text());
    let output = app
        .dir
        .join("data")
        .join("recordings")
        .join("recording-1.txt");
    let output = output.display().to_string();
    let orphans = processes_writing(&output);
    assert_eq!(orphans.len(), 1, "the recorder outlived its supervisor");

    app.set_env(Vec::new());
    app.start_server().await;
    // Before the first request, the recorder was found and taken charge of.
    let job = app.job(1).await;
    assert_eq!(job["status"], "running", "{job}");
    assert_eq!(pid_of(&job), orphans[0], "{job}");
    assert!(job["process_start_time"].is_i64(), "{job}");
    assert!(
        app.server_log_text()
            .contains("found this node's recorder with no identity stored"),
        "{}",
        app.server_log_text()
    );
    // Owned again: a stop reaches it.
    app.stop(1).await;
    let ended = app.wait_for_job_end(1).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    app.wait_for_processes_to_end(&orphans).await;
}

async fn a_recorder_whose_job_ended_while_its_supervisor_was_down_is_stopped_at_start(
    backend: Backend,
) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    let pid = pid_of(&app.job(job_id).await);
    app.signal_server(9).await;
    // Meanwhile, the job was ended by someone else (another node, an
    // operator): nothing will ever record its recorder's end.
    let db = app.db().await;
    recorderd::entity::recording_job::ActiveModel {
        id: Set(job_id as i32),
        status: Set(recorderd::entity::JobStatus::Failed),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("end the job behind the supervisor's back");
    assert!(testkit::process::is_alive(pid));
    app.start_server().await;
    // Stopped (and waited for) before the server listened.
    assert!(
        !testkit::process::is_alive(pid),
        "the recorder still runs: {}",
        app.server_log_text()
    );
    let output = std::fs::read_to_string(
        app.dir
            .join("data")
            .join("recordings")
            .join(format!("recording-{recording_id}.txt")),
    )
    .unwrap_or_default();
    assert!(
        output.ends_with("trailer\n"),
        "stopped with its profile's stop signal: {output:?}"
    );
}

async fn a_panic_in_the_exit_handling_exits_the_process_and_the_next_start_adopts(
    backend: Backend,
) {
    let mut app = TestApp::spawn_with(
        backend,
        AppOptions {
            env: vec![("RECORDERD_FAULT".into(), "panic_in_exit_commit".into())],
            ..AppOptions::default()
        },
    )
    .await;
    let (kept, kept_recording) = app.start_ok("test").await;
    let (stopped, stopped_recording) = app.start_ok("test").await;
    app.wait_for_recorder_output(kept_recording).await;
    app.wait_for_recorder_output(stopped_recording).await;
    let kept_pid = pid_of(&app.job(kept).await);
    // The stop's answer may never come: the process exits as the stopped
    // recorder's end reaches the committer.
    let _ = app
        .client
        .post(app.url("/api/recordings/jobs/stop/"))
        .json(&json!({ "job_id": stopped }))
        .send()
        .await;
    // Its exit reaches the committer, which panics: the process says so
    // and exits, rather than living on without exit handling.
    let status = app.wait_for_server_exit().await;
    assert_eq!(
        status.code(),
        Some(recorderd::tasks::CRITICAL_TASK_DIED),
        "{}",
        app.server_log_text()
    );
    assert!(
        app.server_log_text()
            .contains("a task that handles recorders' exits died"),
        "{}",
        app.server_log_text()
    );
    assert!(testkit::process::is_alive(kept_pid), "recording went on");
    app.set_env(Vec::new());
    app.start_server().await;
    let adopted = app.job(kept).await;
    assert_eq!(adopted["status"], "running", "{adopted}");
    assert_eq!(pid_of(&adopted), kept_pid, "{adopted}");
    let ended = app.wait_for_job_end(stopped).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    app.stop(kept).await;
    let ended = app.wait_for_job_end(kept).await;
    assert_eq!(ended["status"], "completed", "{ended}");
}

async fn an_instant_exit_is_announced_after_its_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut jobs = Vec::new();
    for _ in 0..10 {
        jobs.push(app.start_ok("instant").await.0);
    }
    for &job in &jobs {
        app.wait_for_job_end(job).await;
    }
    for job in jobs {
        let events = events_of_job(&app, job).await;
        let kinds: Vec<EventKind> = events.iter().map(|(_, kind, _)| *kind).collect();
        assert_eq!(
            kinds,
            [EventKind::JobStarted, EventKind::JobFailed],
            "job {job}: {events:?}"
        );
    }
}

async fn a_recording_stuck_in_processing_is_relaunched(backend: Backend) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let app = TestApp::spawn_with(
        backend,
        AppOptions {
            extra_args: vec!["--processing-sweep-interval".into(), "1".into()],
            ..AppOptions::default()
        },
    )
    .await;
    let (job_id, recording_id) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    // A recording left `processing` with no task on it (a pipeline that
    // gave up while the database was away).
    let db = app.db().await;
    recorderd::entity::recording::ActiveModel {
        id: Set(recording_id as i32),
        status: Set(recorderd::entity::RecordingStatus::Processing),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("leave the recording processing");
    // Its steps had all succeeded: the relaunched run has nothing left to
    // do but conclude.
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(10), |r| {
            r["status"] == "ready"
        })
        .await;
    assert_eq!(app.processing_runs(recording_id), 1, "{recording}");
    assert!(
        app.server_log_text()
            .contains("relaunched recordings stuck in processing"),
        "{}",
        app.server_log_text()
    );
}

async fn an_adopted_recorder_on_its_second_run_is_watched_on_its_own_file(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (job_id, recording_id) = app.start_ok("watched_phoenix").await;
    app.wait_for_recorder_output(recording_id).await;
    send_signal(pid_of(&app.job(job_id).await), 9);
    let second = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| {
            j["attempt"] == 2 && j["process_id"].is_i64()
        })
        .await;
    app.signal_server(9).await;
    app.start_server().await;
    // Adopted: its stall check must watch `recording-N.part2.txt`, which
    // grows, not the first run's file, which never will again. Three
    // stall timeouts later it still records.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = app.job(job_id).await;
    assert_eq!(job["status"], "running", "called stalled: {job}");
    assert_eq!(job["process_id"], second["process_id"], "{job}");
    app.stop(job_id).await;
    let ended = app.wait_for_job_end(job_id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
}
