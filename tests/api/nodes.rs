//! Two recorderd nodes on one database: neither ends the other's jobs by
//! looking at its own process table, a stop sent to either node reaches
//! the recorder, and the jobs of a node that went silent are ended by the
//! other (and its orphaned recorders by itself once it is back).

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
    assert_eq!(body["job"]["status"], "stopping", "{body}");
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

on_both_databases!(a_silent_nodes_jobs_are_ended_by_another_and_its_recorders_when_it_returns);

async fn a_silent_nodes_jobs_are_ended_by_another_and_its_recorders_when_it_returns(
    backend: Backend,
) {
    let mut a = TestApp::spawn_with(backend.clone(), node("node-a", None, 2)).await;
    let b = TestApp::spawn_with(backend, node("node-b", Some(&a.database_url), 2)).await;
    let (job_id, _) = a.start_ok("test").await;
    let pid = a.job(job_id).await["process_id"]
        .as_i64()
        .expect("process id") as i32;

    // While node-a beats, node-b leaves its job alone, even past the
    // timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.cleanup().await["updated_count"], 0);

    // node-a dies; its recorder does not.
    let killed = Instant::now();
    a.signal_server(9).await;
    assert!(process_exists(pid));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let cleaned = b.cleanup().await;
        if cleaned["updated_count"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-b never ended the lost node's job: {cleaned}\n{}",
            b.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "ended only after node-a's heartbeat was overdue ({waited:?})"
    );
    let job = b.job(job_id).await;
    // Ended like any recorder found gone: `completed` if it left data.
    assert!(crate::helpers::is_terminal(&job["status"]), "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("node lost") && error.contains("node-a"),
        "{job}"
    );
    assert!(
        process_exists(pid),
        "node-b never signals a process it does not own"
    );

    // node-a comes back: the recorder nobody watches any more is ended.
    a.start_server().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "the disowned recorder still runs:\n{}",
            a.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.server_log_text().contains("declared lost"));
    // Ended jobs stay ended.
    assert_eq!(a.job(job_id).await["status"], job["status"]);
}
