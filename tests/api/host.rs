//! Running on a host: what the server says about itself at start-up, the
//! systemd unit as `systemd-analyze verify` reads it, and the `sd_notify`
//! messages a `Type=notify` service sends, read from a socket of the
//! test's own named by `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sea_orm::EntityTrait;
use serde_json::json;

use crate::helpers::{AppOptions, Backend, TestApp, server_binary, test_dir};
use crate::on_both_databases;

on_both_databases!(
    the_start_up_log_says_auth_database_profiles_and_the_steps_that_will_run,
    the_service_manager_hears_ready_only_after_recovery_then_stopping_with_more_time,
);

async fn the_start_up_log_says_auth_database_profiles_and_the_steps_that_will_run(
    backend: Backend,
) {
    let postgres = matches!(backend, Backend::Postgres(_));
    let app = TestApp::spawn(backend).await;
    let log = app.server_log_text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
            .to_owned()
    };
    assert!(line("access control").contains("auth=\"off"), "{log}");
    let database = line(" database database=");
    if postgres {
        assert!(database.contains("postgres://postgres:***@"), "{database}");
    } else {
        assert!(database.contains("sqlite://"), "{database}");
    }
    let profiles = line(" profiles default=test");
    assert!(profiles.contains("captioned, crash"), "{profiles}");
    assert!(
        line("pipeline profile=pipeline").contains("steps=flaky, words skipped=none"),
        "{log}"
    );
    // Each line comes before the server listens.
    let listening = log.find("listening on").expect("listening");
    assert!(log.find("access control").is_some_and(|at| at < listening));

    let secured = TestApp::spawn_with(
        Backend::Sqlite,
        AppOptions {
            extra_args: vec!["--api-token".into(), "0123456789abcdef0123".into()],
            ..Default::default()
        },
    )
    .await;
    let log = secured.server_log_text();
    assert!(log.contains("auth=\"token"), "{log}");
    assert!(
        !log.contains("0123456789abcdef0123"),
        "the token is never logged"
    );
}

/// Reads `sd_notify` datagrams into a channel, each with when it came.
fn listen(socket: &PathBuf) -> mpsc::Receiver<(Instant, String)> {
    let socket = UnixDatagram::bind(socket).expect("bind the notify socket");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if tx.send((Instant::now(), message)).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next message holding `wanted`, and those before it.
fn next_with(messages: &mpsc::Receiver<(Instant, String)>, wanted: &str) -> (String, Vec<String>) {
    let mut before = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match messages.recv_timeout(left) {
            Ok((_, message)) if message.lines().any(|l| l == wanted) => return (message, before),
            Ok((_, message)) => before.push(message),
            Err(_) => panic!("no {wanted} within 30 s; got {before:?}"),
        }
    }
}

async fn the_service_manager_hears_ready_only_after_recovery_then_stopping_with_more_time(
    backend: Backend,
) {
    let sockets = test_dir(&format!("notify-{}", testkit::unique_name()));
    let socket = sockets.join("notify.sock");
    let messages = listen(&socket);
    let mut app = TestApp::spawn_with(
        backend,
        AppOptions {
            env: vec![("NOTIFY_SOCKET".into(), socket.display().to_string())],
            ..Default::default()
        },
    )
    .await;
    let (ready, _) = next_with(&messages, "READY=1");
    assert!(ready.contains("STATUS=listening on http://"), "{ready}");

    // A job left running by a server that died, its recorder gone too: the
    // next server must end it before it says it is ready.
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    let pid = app.job(job_id).await["process_id"].as_i64().expect("pid") as i32;
    app.signal_server(9).await;
    crate::helpers::send_signal(pid, 9);
    app.wait_for_processes_to_end(&[pid]).await;
    app.start_server().await;
    let (_, early) = next_with(&messages, "READY=1");
    assert!(early.is_empty(), "nothing before READY=1: {early:?}");
    // Read at once, from the database: recovery was over when READY=1 came.
    let db = app.db().await;
    let job = recorderd::entity::recording_job::Entity::find_by_id(job_id as i32)
        .one(&db)
        .await
        .expect("read the job")
        .expect("the job");
    assert!(job.status.is_terminal(), "READY=1 before recovery: {job:?}");

    // A recorder that ignores SIGINT and SIGTERM takes its stop sequence's
    // time: the manager is asked for it.
    let (stubborn, stubborn_recording) = app
        .start_ok_with(json!({ "source": "test://slow", "profile": "stubborn" }))
        .await;
    app.wait_for_recorder_output(stubborn_recording).await;
    let status = app.signal_server(15).await;
    assert!(status.success(), "{status}");
    let (stopping, _) = next_with(&messages, "STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let (extend, _) = next_with(&messages, "EXTEND_TIMEOUT_USEC=15000000");
    assert!(extend.contains("recorder(s) finishing"), "{extend}");
    let job = recorderd::entity::recording_job::Entity::find_by_id(stubborn as i32)
        .one(&db)
        .await
        .expect("read the job")
        .expect("the job");
    assert!(job.status.is_terminal(), "{job:?}");
    let _ = std::fs::remove_dir_all(&sockets);
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("systemd-analyze is missing under CI: .ci/run installs systemd");
        }
        eprintln!(
            "\n*** SKIPPED (systemd): systemd-analyze not installed (apt-get install systemd) ***\n"
        );
        return;
    }
    let unit = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/recorderd.service"),
    )
    .expect("deploy/recorderd.service");
    for needed in [
        "Type=notify",
        "KillMode=mixed",
        "User=recorderd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == needed), "the unit has {needed}");
    }
    // As installed: this build's binary where the unit runs it, and its
    // manual page where `Documentation=man:recorderd(1)` looks.
    let dir = test_dir(&format!("unit-{}", testkit::unique_name()));
    let installed = dir.join("recorderd.service");
    std::fs::write(
        &installed,
        unit.replace(
            "/usr/local/bin/recorderd",
            &server_binary().display().to_string(),
        ),
    )
    .expect("write the unit");
    let man = dir.join("man");
    let made = Command::new(server_binary())
        .args(["man", "--dir"])
        .arg(man.join("man1"))
        .status()
        .expect("recorderd man");
    assert!(made.success());
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&installed)
        .env("MANPATH", &man)
        .current_dir(&dir)
        .output()
        .expect("run systemd-analyze verify");
    let said = String::from_utf8_lossy(&verified.stderr).into_owned()
        + &String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{said}");
    // It exits 0 on an unknown key or a bad value, which it only reports.
    let about_the_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("recorderd.service"))
        .collect();
    assert!(about_the_unit.is_empty(), "{about_the_unit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The image takes every setting from `RECORDERD_*` variables: its command
/// and its health check fix no flag that would override one (the health
/// check follows `RECORDERD_BIND`, see `cli_tools.rs`), and it ships what
/// the built-in pipeline needs for transcripts.
#[test]
fn the_container_image_takes_its_settings_from_the_environment() {
    let dockerfile =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
            .expect("the Dockerfile");
    let runtime = dockerfile.split("\nFROM ").last().expect("a runtime stage");
    let instruction = |name: &str| {
        runtime
            .replace("\\\n", " ")
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in the runtime stage"))
            .to_owned()
    };
    assert_eq!(instruction("CMD "), r#"CMD ["serve"]"#);
    assert!(
        instruction("HEALTHCHECK").ends_with(r#"CMD ["recorderd", "health"]"#),
        "{}",
        instruction("HEALTHCHECK")
    );
    assert!(runtime.contains("ENV RECORDERD_BIND=0.0.0.0:8000"));
    let install = instruction("RUN apt-get update");
    for package in ["ffmpeg", "pocketsphinx", "pocketsphinx-en-us"] {
        assert!(
            install.split_whitespace().any(|w| w == package),
            "{package}: {install}"
        );
    }
}
