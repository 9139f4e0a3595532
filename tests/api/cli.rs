//! The command-line client against a running server: each subcommand, and
//! its `--json` output parsed back, the server named by `--url` or by
//! `RECORDERD_URL`; `jobs logs --follow` until the recorder ends; `jobs
//! watch` across a server restart.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{EntityTrait, QueryOrder};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::helpers::{Backend, TestApp, server_binary};
use crate::on_both_databases;

on_both_databases!(
    every_cli_subcommand_works_against_a_running_server,
    recordings_are_searched_shown_reprocessed_downloaded_and_deleted_from_the_cli,
    watch_prints_each_event_once_across_a_server_restart,
);

/// The CLI with `--url`.
fn run(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut command = cli();
    command.args(args).args(["--url", &app.address]);
    finish(command)
}

/// The CLI with the server in `RECORDERD_URL` instead.
fn run_env(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut command = cli();
    command.args(args).env("RECORDERD_URL", &app.address);
    finish(command)
}

fn cli() -> Command {
    let mut command = Command::new(server_binary());
    command
        .env_remove("RECORDERD_API_TOKEN")
        .env_remove("RECORDERD_URL")
        .env_remove("RECORDERD_BIND")
        .env_remove("RECORDERD_OUTPUT")
        .stdin(Stdio::null());
    command
}

fn finish(mut command: Command) -> (bool, String, String) {
    let output = command.output().expect("run the CLI");
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
    // Its stream is open before the first transition happens.
    app.wait_for_event_streams(1).await;

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
    // An ended job's log, followed: printed whole, then the command ends.
    let (ok, followed, stderr) = run(&app, &["jobs", "logs", &job_id.to_string(), "--follow"]);
    assert!(ok, "{stderr}");
    assert_eq!(followed, text);
    let cleanup = json(&app, &["jobs", "cleanup"]);
    assert_eq!(cleanup["updated_count"], 0);

    app.wait_for_recording_settled(recording_id).await;
    let recordings = json(&app, &["recordings", "list"]);
    assert_eq!(recordings["count"], 1);
    let recording = json(&app, &["recordings", "show", &recording_id.to_string()]);
    assert_eq!(recording["status"], "ready");
    let (ok, table, _) = run(&app, &["recordings", "list"]);
    assert!(ok && table.contains("from the CLI"), "{table}");

    // `health` takes the same `--url` as the other commands, and its old
    // `--address` still works.
    let (ok, ready, stderr) = run(&app, &["health"]);
    assert!(ok && ready.starts_with("ready: "), "{ready}{stderr}");
    let address = app.address.trim_start_matches("http://");
    let (ok, ready, stderr) = finish({
        let mut command = cli();
        command.args(["health", "--address", address]);
        command
    });
    assert!(ok && ready.starts_with("ready: "), "{ready}{stderr}");

    // Every reading command finds the server through `RECORDERD_URL` as
    // well as `--url`, and answers the same.
    for args in [
        &["jobs", "active"][..],
        &["jobs", "list"],
        &["jobs", "show", &job_id.to_string()],
        &["jobs", "logs", &job_id.to_string()],
        &["jobs", "profiles"],
        &["recordings", "list"],
        &["recordings", "show", &recording_id.to_string()],
        &["recordings", "transcript", &recording_id.to_string()],
        &["health"],
    ] {
        let with_flag = json(&app, args);
        let mut json_args = args.to_vec();
        json_args.extend(["--output", "json"]);
        let (ok, stdout, stderr) = run_env(&app, &json_args);
        assert!(ok, "{args:?} with RECORDERD_URL failed: {stderr}");
        let with_env: Value = serde_json::from_str(&stdout).expect("JSON");
        if !args.contains(&"health") {
            assert_eq!(with_flag, with_env, "{args:?}");
        }
    }

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

async fn recordings_are_searched_shown_reprocessed_downloaded_and_deleted_from_the_cli(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let started = json(
        &app,
        &["jobs", "start", "test://follow", "--title", "Follow me"],
    );
    let job_id = started["job"]["id"].as_i64().expect("job id").to_string();
    let recording_id = started["recording"]["id"].as_i64().expect("recording id");
    app.wait_for_recorder_output(recording_id).await;

    // `logs --follow` prints what the recorder writes as it writes it, and
    // ends by itself once the recorder has ended.
    let mut follower = cli()
        .args(["jobs", "logs", &job_id, "--follow"])
        .env("RECORDERD_URL", &app.address)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run logs --follow");
    let stdout = follower.stdout.take().expect("its stdout");
    let (tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(15), lines.recv())
        .await
        .expect("a first line within 15 s")
        .expect("a line");
    assert!(!first.contains("stop signal received"), "{first}");
    let (ok, _, stderr) = run_env(&app, &["jobs", "stop", &job_id]);
    assert!(ok, "{stderr}");
    let mut followed = vec![first];
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(15), lines.recv()).await {
        followed.push(line);
    }
    let status = tokio::task::spawn_blocking(move || follower.wait())
        .await
        .expect("join")
        .expect("wait for logs --follow");
    assert!(status.success(), "logs --follow: {status}");
    assert!(
        followed.iter().any(|l| l.contains("stop signal received")),
        "the line written after the follow began: {followed:?}"
    );
    let recording = app.wait_for_recording_settled(recording_id).await;
    let id = recording_id.to_string();

    // `show`: steps with status, duration and error; runs; no "N item(s)".
    let (ok, shown, stderr) = run(&app, &["recordings", "show", &id]);
    assert!(ok, "{stderr}");
    assert!(shown.starts_with("Follow me  (recording "), "{shown}");
    let step = shown
        .lines()
        .find(|l| l.starts_with("post-processing-1"))
        .unwrap_or_else(|| panic!("no step line: {shown}"));
    assert!(step.contains("succeeded"), "{step}");
    assert!(
        shown.contains("Recorder runs") && shown.contains("requested"),
        "{shown}"
    );
    assert!(!shown.contains("item(s)"), "{shown}");

    let (ok, out, stderr) = run_env(&app, &["recordings", "reprocess", &id, "--wait"]);
    assert!(ok && out.contains("ready"), "{out}{stderr}");
    assert_eq!(app.processing_runs(recording_id), 2);
    let (ok, out, stderr) = run(&app, &["recordings", "reprocess", &id, "--json"]);
    assert!(ok, "{stderr}");
    let reprocessing: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(reprocessing["recording"]["status"], "processing", "{out}");
    app.wait_for_recording_settled(recording_id).await;

    // `download`: the recorded bytes, into a file named after it; an
    // existing file is replaced only with --force.
    let target = app.dir.join("downloaded.txt");
    let target_text = target.display().to_string();
    let (ok, _, stderr) = run(&app, &["recordings", "download", &id, "-o", &target_text]);
    assert!(ok, "{stderr}");
    let recorded = std::fs::read(recording["output_path"].as_str().unwrap_or_default())
        .expect("the recorded file");
    assert_eq!(std::fs::read(&target).expect("the download"), recorded);
    let (ok, _, stderr) = run_env(&app, &["recordings", "download", &id, "-o", &target_text]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let (ok, _, stderr) = run_env(
        &app,
        &["recordings", "download", &id, "-o", &target_text, "--force"],
    );
    assert!(ok, "{stderr}");

    // `search` and `transcript`: a timed transcript's words and times.
    let (ok, out, stderr) = run_env(
        &app,
        &[
            "jobs",
            "start",
            "test://fox",
            "--profile",
            "captioned",
            "--title",
            "Foxes",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{stderr}");
    let captioned: Value = serde_json::from_str(&out).expect("JSON");
    let fox = captioned["recording"]["id"].as_i64().expect("recording id");
    app.wait_for_recording_settled(fox).await;
    let (ok, found, stderr) = run_env(&app, &["recordings", "search", "brown", "fox"]);
    assert!(ok, "{stderr}");
    assert!(found.contains("Foxes"), "{found}");
    assert!(found.contains("0:01  The quick brown fox"), "{found}");
    let page = json(&app, &["recordings", "search", "lazy"]);
    assert_eq!(
        page["recordings"][0]["matches"][0]["start_seconds"], 4.0,
        "{page}"
    );
    let (ok, lines, _) = run(&app, &["recordings", "transcript", &fox.to_string()]);
    assert!(
        ok && lines.contains("0:04  jumps over the lazy dogs"),
        "{lines}"
    );
    let (ok, vtt, _) = run(
        &app,
        &["recordings", "transcript", &fox.to_string(), "--vtt"],
    );
    assert!(ok && vtt.starts_with("WEBVTT"), "{vtt}");

    let (ok, out, stderr) = run_env(&app, &["jobs", "cleanup"]);
    assert!(ok && out.contains("0 job(s) updated"), "{out}{stderr}");
    // The stream from its start, through RECORDERD_URL.
    let (ok, out, stderr) = run_env(
        &app,
        &[
            "jobs",
            "watch",
            "--last-event-id",
            "0",
            "--limit",
            "2",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let kinds: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["event"].clone())
        .collect();
    assert_eq!(kinds, ["job.started", "job.stopping"], "{out}");

    // `delete` asks first; without a terminal it needs --yes.
    let (ok, _, stderr) = run(&app, &["recordings", "delete", &id]);
    assert!(!ok && stderr.contains("--yes"), "{stderr}");
    let (ok, out, stderr) = run_env(&app, &["recordings", "delete", &id, "--yes"]);
    assert!(ok && out.contains("deleted"), "{out}{stderr}");
    let (ok, _, stderr) = run(&app, &["recordings", "show", &id]);
    assert!(!ok && stderr.contains("404"), "{stderr}");
}

/// A TCP relay from a port of its own to wherever the server listens now:
/// a restarted server gets a new port, and `jobs watch` must find it again
/// at the one URL it was given. While no server listens, connections are
/// accepted and dropped at once, as a refused one would be.
struct Relay {
    url: String,
    upstream: Arc<Mutex<String>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream_url: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the relay's address")
        );
        let upstream = Arc::new(Mutex::new(String::new()));
        let target = Arc::clone(&upstream);
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = target.lock().expect("relay target").clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        let relay = Self {
            url,
            upstream,
            accepting,
        };
        relay.point_to(upstream_url);
        relay
    }

    fn point_to(&self, upstream_url: &str) {
        *self.upstream.lock().expect("relay target") =
            upstream_url.trim_start_matches("http://").to_owned();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Reads lines of `jobs watch --json` into `printed` until `done` holds
/// (30 s at most).
async fn read_until(
    lines: &mut mpsc::UnboundedReceiver<Value>,
    printed: &mut Vec<Value>,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(printed) {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(event)) => printed.push(event),
            Ok(None) => panic!(
                "the watch ended before {what}; printed: {:?}",
                summary(printed)
            ),
            Err(_) => panic!("no {what} within 30 s; printed: {:?}", summary(printed)),
        }
    }
}

/// Id and kind of each event printed.
fn summary(printed: &[Value]) -> Vec<(i64, String)> {
    printed
        .iter()
        .map(|e| {
            let id = e["id"].as_i64().expect("an event id");
            (id, e["event"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

async fn watch_prints_each_event_once_across_a_server_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let relay = Relay::start(&app.address).await;
    // From the start of the log: every event is printed however late the
    // watch connects, with no pause to let it subscribe first.
    let mut watcher = Command::new(server_binary())
        .args(["jobs", "watch", "--json", "--last-event-id", "0"])
        .args(["--url", &relay.url])
        .env_remove("RECORDERD_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jobs watch");
    let stdout = watcher.stdout.take().expect("the watch's stdout");
    let (tx, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("a line of the watch");
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();

    let (done_job, done_recording) = app.start_ok("test").await;
    app.stop(done_job).await;
    app.wait_for_job_end(done_job).await;
    app.wait_for_recording_settled(done_recording).await;
    // Still recording when the server stops: the stop policy ends it during
    // shutdown, after the event stream has closed.
    let (running_job, running_recording) = app.start_ok("test").await;
    read_until(
        &mut lines,
        &mut printed,
        "job.started of the running job",
        |p| {
            p.iter()
                .any(|e| e["event"] == "job.started" && e["data"]["id"] == running_job)
        },
    )
    .await;

    let status = app.signal_server(15).await;
    assert!(status.success(), "graceful shutdown: {status}");
    app.start_server().await;
    // The relay still leads to the old port: the watch cannot be connected
    // while this job runs, and must ask for what it missed.
    let (missed_job, missed_recording) = app.start_ok("test").await;
    app.stop(missed_job).await;
    app.wait_for_job_end(missed_job).await;
    app.wait_for_recording_settled(missed_recording).await;
    app.wait_for_recording_settled(running_recording).await;
    relay.point_to(&app.address);

    let (live_job, live_recording) = app.start_ok("test").await;
    app.stop(live_job).await;
    app.wait_for_job_end(live_job).await;
    app.wait_for_recording_settled(live_recording).await;

    let db = app.db().await;
    let stored: Vec<(i64, String)> = recorderd::entity::event::Entity::find()
        .order_by_asc(recorderd::entity::event::Column::Id)
        .all(&db)
        .await
        .expect("read the event log")
        .into_iter()
        .map(|event| (i64::from(event.id), event.kind.as_str().to_owned()))
        .collect();
    let last = stored
        .last()
        .map(|(id, _)| *id)
        .expect("events were stored");
    read_until(&mut lines, &mut printed, "the last stored event", |p| {
        summary(p).iter().any(|(id, _)| *id == last)
    })
    .await;
    watcher.kill().expect("stop the watch");
    let output = watcher.wait_with_output().expect("the watch's stderr");
    while let Ok(event) = lines.try_recv() {
        printed.push(event);
    }

    let started: Vec<i64> = printed
        .iter()
        .filter(|e| e["event"] == "job.started")
        .filter_map(|e| e["data"]["id"].as_i64())
        .collect();
    assert_eq!(
        summary(&printed),
        stored,
        "each stored event, once, in order"
    );
    assert_eq!(started, [done_job, running_job, missed_job, live_job]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reconnecting"),
        "the watch followed one connection only: {stderr}"
    );
}
