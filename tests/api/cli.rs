//! The command-line client against a running server: each subcommand, and
//! its `--json` output parsed back.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, TestApp, server_binary};
use crate::on_both_databases;

on_both_databases!(every_cli_subcommand_works_against_a_running_server);

fn run(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(server_binary())
        .args(args)
        .args(["--url", &app.address])
        .env_remove("RECORDERD_API_TOKEN")
        .output()
        .expect("run the CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let (ok, stdout, stderr) = run(app, &with_json);
    assert!(ok, "{args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

async fn every_cli_subcommand_works_against_a_running_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // `watch` in the background sees the transitions that follow.
    let watcher = Command::new(server_binary())
        .args([
            "jobs",
            "watch",
            "--json",
            "--limit",
            "3",
            "--url",
            &app.address,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run jobs watch");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let started = json(
        &app,
        &[
            "jobs",
            "start",
            "test://cli",
            "--profile",
            "test",
            "--title",
            "from the CLI",
        ],
    );
    let job_id = started["job"]["id"].as_i64().expect("job id");
    let recording_id = started["recording"]["id"].as_i64().expect("recording id");
    assert_eq!(started["recording"]["title"], "from the CLI");

    let (ok, table, _) = run(&app, &["jobs", "active"]);
    assert!(ok);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&job_id.to_string()) && l.contains("running")),
        "{table}"
    );
    assert_eq!(json(&app, &["jobs", "active"])["count"], 1);

    let stopped = json(&app, &["jobs", "stop", &job_id.to_string()]);
    assert!(matches!(
        stopped["job"]["status"].as_str(),
        Some("stopping" | "completed")
    ));
    app.wait_for_job_end(job_id).await;

    let shown = json(&app, &["jobs", "show", &job_id.to_string()]);
    assert_eq!(shown["status"], "completed");
    let listed = json(&app, &["jobs", "list", "--status", "completed"]);
    assert_eq!(listed["count"], 1);
    let logs = json(&app, &["jobs", "logs", &job_id.to_string()]);
    assert!(
        logs["content"]
            .as_str()
            .unwrap_or_default()
            .contains("test_recorder"),
        "{logs}"
    );
    let (ok, text, _) = run(&app, &["jobs", "logs", &job_id.to_string()]);
    assert!(ok && text.contains("stop signal received"), "{text}");
    let cleanup = json(&app, &["jobs", "cleanup"]);
    assert_eq!(cleanup["updated_count"], 0);

    app.wait_for_recording_settled(recording_id).await;
    let recordings = json(&app, &["recordings", "list"]);
    assert_eq!(recordings["count"], 1);
    let recording = json(&app, &["recordings", "show", &recording_id.to_string()]);
    assert_eq!(recording["status"], "ready");
    let (ok, table, _) = run(&app, &["recordings", "list"]);
    assert!(ok && table.contains("from the CLI"), "{table}");

    // `health` takes the same `--url` as the other commands.
    let (ok, ready, stderr) = run(&app, &["health"]);
    assert!(ok && ready.starts_with("ready: "), "{ready}{stderr}");

    // Errors: the server's message, a non-zero exit.
    let (ok, _, stderr) = run(&app, &["jobs", "stop", &job_id.to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("409") && stderr.contains("already ended"),
        "{stderr}"
    );

    let output = tokio::task::spawn_blocking(move || watcher.wait_with_output())
        .await
        .expect("join")
        .expect("watch output");
    assert!(output.status.success());
    let kinds: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l).expect("one JSON object per line");
            event["event"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["job.started", "job.stopping", "job.completed"]);
}
