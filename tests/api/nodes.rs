//! Two recorderd nodes on one database: neither ends the other's jobs by
//! looking at its own process table, a stop sent to either node reaches
//! the recorder, reads of the other's files are served through either, the
//! jobs of a node that died are ended by the other at once (and its
//! orphaned recorders by itself once it is back), and a node that is only
//! paused keeps its lease and its jobs.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{AppOptions, Backend, TestApp, process_exists};
use crate::on_both_databases;

fn node(name: &str, database_url: Option<&str>, timeout: u64) -> AppOptions {
    AppOptions {
        extra_args: vec![
            "--node-id".into(),
            name.into(),
            "--node-timeout".into(),
            timeout.to_string(),
        ],
        database_url: database_url.map(str::to_owned),
        ..Default::default()
    }
}

on_both_databases!(two_nodes_share_a_database_and_each_supervises_its_own);

async fn two_nodes_share_a_database_and_each_supervises_its_own(backend: Backend) {
    let a = TestApp::spawn_with(backend.clone(), node("node-a", None, 60)).await;
    let b = TestApp::spawn_with(backend, node("node-b", Some(&a.database_url), 60)).await;

    let (on_a, _) = a.start_ok("test").await;
    let (on_b, _) = b.start_ok("test").await;
    assert_eq!(a.job(on_a).await["node"], "node-a");
    assert_eq!(a.job(on_b).await["node"], "node-b");
    // A file is read from the node that recorded it, through either node:
    // one that was never recorded is missing there too.
    let (empty_job, empty_recording) = a.start_ok("empty").await;
    a.wait_for_job_end(empty_job).await;
    let path = format!("/api/recordings/{empty_recording}/media");
    let response = b.client.get(b.url(&path)).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    assert_eq!(
        response.headers()["x-recorderd-node"],
        "node-a",
        "answered by the node holding it"
    );
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "media_not_found", "{body}");
    let (status, body) = a.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "media_not_found", "{body}");
    // A log is read through either node too.
    let log = format!("/api/recordings/jobs/{on_a}/log/");
    let response = b.client.get(b.url(&log)).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-recorderd-node"], "node-a");
    let (status, _) = a.get(&log).await;
    assert_eq!(status, StatusCode::OK);

    // Each sees both, and neither takes the other's recorder for dead
    // (its PID is not one of this node's processes to judge).
    for app in [&a, &b] {
        let active = app.active().await;
        assert_eq!(active["count"], 2, "{active}");
        let cleaned = app.cleanup().await;
        assert_eq!(cleaned["updated_count"], 0, "{cleaned}");
    }
    for id in [on_a, on_b] {
        assert_eq!(a.job(id).await["status"], "running");
    }

    // A stop sent to the other node reaches the recorder.
    let (status, body) = b.stop(on_a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // `stopping`, or already `completed` if node-a was quicker than the
    // answer.
    assert!(
        matches!(
            body["job"]["status"].as_str(),
            Some("stopping" | "completed")
        ),
        "{body}"
    );
    let ended = a.wait_for_job_end(on_a).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_signal"], 2, "SIGINT, sent by node-a: {ended}");
    assert_eq!(ended["stop_reason"], "requested", "{ended}");

    let (status, body) = a.stop(on_b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = b.wait_for_job_end(on_b).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_signal"], 2, "{ended}");

    // A recording node-a is processing is not node-b's to resume when
    // node-b restarts (its file is on node-a).
    let mut b = b;
    let (_, recording_id) = a.start_ok("long_step").await;
    a.wait_for_recording(recording_id, Duration::from_secs(15), |r| {
        r["status"] == "processing"
    })
    .await;
    b.signal_server(15).await;
    b.start_server().await;
    let ready = a.wait_for_recording_settled(recording_id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(a.processing_runs(recording_id), 1);
    assert_eq!(
        b.processing_runs(recording_id),
        0,
        "node-b ran node-a's pipeline"
    );
}

/// Waits (without asking anything to reconcile) until `b` shows the job
/// ended; returns it and how long that took from `since`.
async fn ended_by(b: &TestApp, job_id: i64, since: Instant) -> (serde_json::Value, Duration) {
    let job = b
        .wait_for_job(job_id, Duration::from_secs(15), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    (job, since.elapsed())
}

/// The job ended as lost, without anything of its file judged or
/// processed on the node that ended it.
async fn assert_lost(b: &TestApp, job: &serde_json::Value, recording_id: i64) {
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["end_cause"], "node_lost", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("node lost") && error.contains("node-a"),
        "{job}"
    );
    let recording = b.recording(recording_id).await;
    assert_eq!(recording["status"], "failed", "{recording}");
    assert!(
        recording["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("node lost")),
        "{recording}"
    );
    assert_eq!(
        b.processing_runs(recording_id),
        0,
        "node-b processed node-a's file"
    );
}

on_both_databases!(
    a_dead_nodes_jobs_are_ended_by_another_at_once_and_its_recorders_when_it_returns
);

async fn a_dead_nodes_jobs_are_ended_by_another_at_once_and_its_recorders_when_it_returns(
    backend: Backend,
) {
    // A long node timeout: the loss is learnt from the lease, not waited
    // for.
    let mut a = TestApp::spawn_with(backend.clone(), node("node-a", None, 60)).await;
    let b = TestApp::spawn_with(backend, node("node-b", Some(&a.database_url), 60)).await;
    let (job_id, recording_id) = a.start_ok("test").await;
    let pid = a.job(job_id).await["process_id"]
        .as_i64()
        .expect("process id") as i32;

    // node-a dies; its recorder does not.
    let killed = Instant::now();
    a.signal_server(9).await;
    assert!(process_exists(pid));
    let (job, took) = ended_by(&b, job_id, killed).await;
    println!("node-a's job ended by node-b {took:?} after node-a was killed");
    assert!(
        took < Duration::from_secs(10),
        "the loss took {took:?} to be noticed"
    );
    assert_lost(&b, &job, recording_id).await;
    assert!(
        process_exists(pid),
        "node-b never signals a process it does not own"
    );

    // node-a comes back: the recorder nobody watches any more is ended,
    // and what it recorded is processed there.
    a.start_server().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "the disowned recorder still runs:\n{}",
            a.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recording = a
        .wait_for_recording(recording_id, Duration::from_secs(20), |r| {
            r["status"] == "ready"
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(a.processing_runs(recording_id), 1);
    assert_eq!(b.processing_runs(recording_id), 0);
    // The job itself stays as it ended.
    assert_eq!(a.job(job_id).await["status"], "failed");
}

on_both_databases!(a_paused_node_keeps_its_lease_and_its_jobs);

async fn a_paused_node_keeps_its_lease_and_its_jobs(backend: Backend) {
    let a = TestApp::spawn_with(backend.clone(), node("node-a", None, 2)).await;
    let b = TestApp::spawn_with(backend, node("node-b", Some(&a.database_url), 2)).await;
    let (job_id, _) = a.start_ok("test").await;
    let pid = a.job(job_id).await["process_id"]
        .as_i64()
        .expect("process id") as i32;

    // node-a freezes (SIGSTOP) for longer than its timeout and the
    // takeover's grace together: its lease is held all along, so nobody
    // ends its job. This wait is the point.
    crate::helpers::send_signal(a.server_pid(), 19);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(b.cleanup().await["updated_count"], 0);
    assert_eq!(b.job(job_id).await["status"], "running");
    crate::helpers::send_signal(a.server_pid(), 18);

    // Thawed, it still records, and stops as usual.
    assert!(process_exists(pid));
    assert_eq!(a.job(job_id).await["status"], "running");
    let (status, body) = b.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = a.wait_for_job_end(job_id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_signal"], 2, "{ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_with_the_same_node_id_is_refused() {
    let a = TestApp::spawn_with(Backend::Sqlite, node("node-a", None, 60)).await;
    let mut command = std::process::Command::new(crate::helpers::server_binary());
    command
        .arg("serve")
        .args(["--bind", "127.0.0.1:0", "--node-id", "node-a"])
        // It waits this long (and 5 s more) for the lease to be let go.
        .args(["--node-timeout", "2"])
        .args(["--database-url", &a.database_url])
        .arg("--data-dir")
        .arg(a.dir.join("second"));
    let (status, stderr) = crate::helpers::run_to_exit(command, Duration::from_secs(20)).await;
    assert!(
        !status.success(),
        "a second server with the same node id started"
    );
    assert!(
        stderr.contains("another recorderd runs with node id `node-a`"),
        "{stderr}"
    );
}
