//! Graceful shutdown and the `migrate` subcommand.

use crate::helpers::{Backend, TestApp, process_exists, server_binary};
use crate::on_both_databases;

on_both_databases!(
    sigterm_stops_every_recorder_and_commits_its_end,
    migrate_subcommand_prepares_the_database
);

async fn sigterm_stops_every_recorder_and_commits_its_end(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let mut jobs = Vec::new();
    let mut recordings = Vec::new();
    for _ in 0..5 {
        let (job, recording) = app.start_ok("test").await;
        jobs.push(job);
        recordings.push(recording);
    }
    let mut pids = Vec::new();
    for job in &jobs {
        pids.push(
            app.job(*job).await["process_id"]
                .as_i64()
                .unwrap_or_default() as i32,
        );
    }
    // Each recorder is recording (and handles a stop) when SIGTERM comes.
    for recording in recordings {
        app.wait_for_recorder_output(recording).await;
    }
    let status = app.signal_server(15).await;
    assert!(
        status.success(),
        "server exit: {status}\n{}",
        app.server_log_text()
    );
    for pid in pids {
        assert!(!process_exists(pid), "recorder {pid} survived the shutdown");
    }
    // Restart on the same database: every job was committed as completed.
    app.start_server().await;
    for job in jobs {
        let job = app.job(job).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["exit_code"], 0, "{job}");
        assert!(job["stop_requested_at"].is_string(), "{job}");
        let recording = app
            .recording(job["recording_id"].as_i64().unwrap_or_default())
            .await;
        let output_path = recording["output_path"].as_str().unwrap_or_default();
        let output = std::fs::read_to_string(output_path).unwrap_or_default();
        assert!(
            output.ends_with("trailer\n"),
            "output not finalized: {output:?}"
        );
    }
}

async fn migrate_subcommand_prepares_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let output = std::process::Command::new(server_binary())
        .args(["migrate", "--database-url", &app.database_url])
        .output()
        .expect("run recorderd migrate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied"));
}

on_both_databases!(health_subcommand_and_probes_report_readiness);

async fn health_subcommand_and_probes_report_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["pending_migrations"], 0, "{body}");
    let address = app.address.trim_start_matches("http://").to_owned();
    let ready = std::process::Command::new(server_binary())
        .args(["health", "--address", &address])
        .output()
        .expect("run recorderd health");
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );

    // Nothing listens on this port once the probe socket is closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let down = std::process::Command::new(server_binary())
        .args(["health", "--address", &closed.to_string(), "--timeout", "2"])
        .output()
        .expect("run recorderd health");
    assert!(!down.status.success(), "health must fail without a server");
}
