//! What a source may reach, what a recorder inherits, and where a source's
//! credentials go: refusals name their rule; a recorder and its steps see
//! none of the server's secrets; a password, a query token and a stream
//! key reach the recorder and nothing else.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use testkit::profiles::{RecorderProfile, toml_array};

use crate::helpers::{AppOptions, Backend, TestApp, profiles_toml, test_dir, test_recorder};
use crate::on_both_databases;

on_both_databases!(
    sources_are_refused_by_the_rule_that_names_what_they_would_reach,
    a_recorder_and_its_steps_get_none_of_the_servers_secrets,
    source_credentials_reach_the_recorder_and_nothing_else,
);

async fn sources_are_refused_by_the_rule_that_names_what_they_would_reach(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (source, profile, rule) in [
        (
            "test://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "test",
            "builtin_deny",
        ),
        ("test://0.0.0.0:18997?listen=1", "test", "listener_option"),
    ] {
        let (status, body) = app
            .start(json!({ "source": source, "profile": profile }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{source}: {body}");
        assert_eq!(body["error"]["code"], "invalid_source", "{body}");
        assert_eq!(body["error"]["rule"], rule, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(rule), "{message}");
    }

    // A service on this machine: allowed by default (a local media
    // server is the common case), refused where `deny_private` is set.
    let local = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = local.local_addr().expect("address").port();
    let source = format!("http://127.0.0.1:{port}/secret");
    let (job_id, _) = app
        .start_ok_with(json!({ "source": source, "profile": "web" }))
        .await;
    let (status, body) = app
        .start(json!({ "source": source, "profile": "shared" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["rule"], "deny_private", "{body}");
    app.stop(job_id).await;
    app.wait_for_job_end(job_id).await;
    let (_, jobs) = app.get("/api/recordings/jobs/").await;
    assert_eq!(
        jobs["count"], 1,
        "only the allowed start made a job: {jobs}"
    );
}

/// What `/proc/<pid>/environ` holds, one `NAME=value` each.
fn environment_of(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The names of `NAME=value` entries.
fn names_of(environment: &[String]) -> Vec<&str> {
    environment
        .iter()
        .filter_map(|v| v.split_once('=').map(|(name, _)| name))
        .collect()
}

async fn a_recorder_and_its_steps_get_none_of_the_servers_secrets(backend: Backend) {
    let token = "server-api-token-0123456789";
    let secrets = [
        ("RECORDERD_API_TOKEN", token),
        ("RECORDERD_WEBHOOK_SECRET", "webhook-secret-abcdef"),
        (
            "RECORDERD_DATABASE_URL",
            "postgres://app:db-password-xyz@db/recorderd",
        ),
        ("CLOUD_SECRET_ACCESS_KEY", "cloud-secret-key-987654"),
    ];
    let files = test_dir(&testkit::unique_name());
    let step_env = files.join("step-env.txt");
    let mut profiles = profiles_toml(&files, true);
    profiles += &RecorderProfile::new("env_check", &test_recorder(), "test", 60)
        .set("stop_grace_seconds", "2")
        .set("env", "{ RECORDER_GREETING = \"hello\" }")
        .to_toml();
    profiles += &format!(
        "\n[[profiles.env_check.steps]]\nname = \"dump\"\ncommand = {}\nenv = {{ STEP_ONLY = \"step\" }}\n",
        toml_array(["sh", "-c", "env > \"$0\"", &step_env.display().to_string()])
    );
    let options = AppOptions {
        profiles: Some(profiles),
        env: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        token: Some(token.to_owned()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let (job_id, recording_id) = app.start_ok("env_check").await;
    app.wait_for_recorder_output(recording_id).await;
    let pid = app.job(job_id).await["process_id"]
        .as_i64()
        .expect("a live recorder") as i32;

    // Failures name variables, never show values: the machine running the
    // suite may hold secrets of its own.
    let recorder = environment_of(pid);
    let names = names_of(&recorder);
    assert!(
        recorder.contains(&format!("RECORDERD_JOB_ID={job_id}")),
        "{names:?}"
    );
    assert!(
        recorder.contains(&"RECORDER_GREETING=hello".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"PATH"), "{names:?}");
    for (name, value) in secrets {
        assert!(
            !names.contains(&name) && !recorder.iter().any(|v| v.contains(value)),
            "the recorder got {name}; it has {names:?}"
        );
    }
    assert!(
        names.iter().all(|n| [
            "PATH",
            "HOME",
            "LANG",
            "TZ",
            "RECORDERD_JOB_ID",
            "RECORDERD_NODE",
            "RECORDER_GREETING"
        ]
        .contains(n)
            || n.starts_with("LC_")),
        "nothing but the allow-list: {names:?}"
    );

    app.stop(job_id).await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let step = std::fs::read_to_string(&step_env).expect("the step wrote its environment");
    let step: Vec<String> = step.lines().map(str::to_owned).collect();
    let names = names_of(&step);
    assert!(step.contains(&"STEP_ONLY=step".to_owned()), "{names:?}");
    assert!(
        step.contains(&"RECORDER_GREETING=hello".to_owned()),
        "{names:?}"
    );
    for (name, value) in secrets {
        assert!(
            !names.contains(&name) && !step.iter().any(|v| v.contains(value)),
            "the step got {name}; it has {names:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&files);
}

const PASSWORD: &str = "hunter2-secret";
const STREAM_KEY: &str = "streamkey-0123456789";
const QUERY_TOKEN: &str = "tok-abcdef123456";

/// Whatever of the source's secrets `text` holds.
fn leaked(text: &str) -> Vec<&'static str> {
    [PASSWORD, STREAM_KEY, QUERY_TOKEN]
        .into_iter()
        .filter(|secret| text.contains(secret))
        .collect()
}

async fn source_credentials_reach_the_recorder_and_nothing_else(backend: Backend) {
    let files = test_dir(&testkit::unique_name());
    // A recorder that prints the URL it opens, as ffmpeg does.
    let mut profiles = profiles_toml(&files, true);
    profiles += &format!(
        "\n[profiles.echoing]\ncommand = {}\noutput_extension = \"txt\"\n\
         allowed_schemes = [\"rtmp\"]\nstop_grace_seconds = 2\n",
        toml_array([
            "sh",
            "-c",
            "echo \"Input #0, flv, from '$0':\"; exec \"$1\" --output \"$2\" --max-lifetime 60",
            "{source}",
            &test_recorder().display().to_string(),
            "{output}",
        ])
    );
    let options = AppOptions {
        profiles: Some(profiles),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let source =
        format!("rtmp://publisher:{PASSWORD}@127.0.0.1:1935/live/{STREAM_KEY}?token={QUERY_TOKEN}");
    let redacted = "rtmp://publisher:***@127.0.0.1:1935/live/***?token=***";

    let mut events = app
        .client
        .get(app.url("/api/recordings/jobs/events/"))
        .send()
        .await
        .expect("open the event stream");
    app.wait_for_event_streams(1).await;
    let response = app
        .client
        .post(app.url("/api/recordings/jobs/start/"))
        .json(&json!({ "source": source, "profile": "echoing" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.expect("body");
    assert!(leaked(&text).is_empty(), "the start's answer: {text}");
    let started: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(started["recording"]["source"], redacted, "{started}");
    assert_eq!(
        started["recording"]["title"], redacted,
        "the default title: {started}"
    );
    let job_id = started["job"]["id"].as_i64().expect("job id");
    let recording_id = started["recording"]["id"].as_i64().expect("recording id");

    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    app.wait_for_recording_settled(recording_id).await;

    // The stream, up to the recording's last event.
    let mut stream = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !stream.contains("event: recording.ready") && !stream.contains("event: recording.failed")
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .unwrap_or_else(|_| panic!("no recording event in 30 s:\n{stream}"))
            .expect("read the stream")
            .expect("the stream ended");
        stream.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(leaked(&stream).is_empty(), "the event stream:\n{stream}");
    assert!(stream.contains(redacted), "{stream}");

    for path in [
        format!("/api/recordings/{recording_id}/"),
        format!("/api/recordings/jobs/{job_id}/"),
        "/api/recordings/".to_owned(),
        "/api/recordings/jobs/".to_owned(),
        format!("/api/recordings/jobs/{job_id}/log/"),
    ] {
        let text = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        assert!(leaked(&text).is_empty(), "{path}: {text}");
    }
    let (_, log) = app
        .get(&format!("/api/recordings/jobs/{job_id}/log/"))
        .await;
    let content = log["content"].as_str().unwrap_or_default();
    assert!(content.contains(&format!("from '{redacted}'")), "{content}");

    // The recorder itself was given the whole URL, which the database keeps.
    let job = app.job(job_id).await;
    let on_disk = std::fs::read_to_string(job["log_path"].as_str().unwrap_or_default())
        .expect("the recorder's log file");
    assert!(on_disk.contains(&source), "{on_disk}");
    let stored = recorderd::entity::recording::Entity::find_by_id(recording_id as i32)
        .one(&app.db().await)
        .await
        .expect("read the recording")
        .expect("the recording");
    assert_eq!(stored.source, source);

    let server_log = app.server_log_text();
    assert!(
        leaked(&server_log).is_empty(),
        "the server's log:\n{server_log}"
    );
    assert!(server_log.contains(redacted), "{server_log}");
    let _ = std::fs::remove_dir_all(&files);
}
