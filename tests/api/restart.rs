//! Restart recovery: recorders outlive a crashed supervisor and are adopted
//! by the next; those that ended meanwhile are ended once; shutdown
//! policies; PID 1 duties in a real PID namespace.

use std::time::{Duration, Instant};

use procfs::process::{ProcState, Process};
use reqwest::StatusCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{AppOptions, Backend, TestApp, is_terminal, process_exists};
use crate::on_both_databases;

on_both_databases!(
    recorders_survive_a_killed_supervisor_and_are_adopted_by_the_next,
    recorders_that_died_while_the_supervisor_was_down_are_ended_before_the_first_request,
    detach_policy_leaves_recorders_running_for_the_next_supervisor,
);

/// Kills the server with SIGKILL: no shutdown path runs.
async fn crash(app: &mut TestApp) {
    let status = app.signal_server(9).await;
    assert!(!status.success());
}

fn parse_time(value: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp"), &Rfc3339).expect("RFC 3339")
}

async fn recorders_survive_a_killed_supervisor_and_are_adopted_by_the_next(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    let mut app = TestApp::spawn(backend).await;
    let mut self_ending = Vec::new();
    let mut to_stop = Vec::new();
    for _ in 0..10 {
        self_ending.push(app.start_ok("self_ending").await);
        // Their exits, 6 s on, come 150 ms apart (the spacing is the
        // point): each is measured on its own rather than queued behind
        // nine simultaneous commits.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for i in 0..10 {
        // Half of them ignore SIGINT and SIGTERM: stopping them needs the
        // whole escalation, on processes that are no longer children.
        to_stop.push(
            app.start_ok(if i % 2 == 0 { "test" } else { "stubborn" })
                .await,
        );
    }
    let mut pids = Vec::new();
    for (job, _) in self_ending.iter().chain(&to_stop) {
        pids.push(
            app.job(*job).await["process_id"]
                .as_i64()
                .unwrap_or_default() as i32,
        );
    }
    crash(&mut app).await;
    for pid in &pids {
        assert!(
            process_exists(*pid),
            "recorder {pid} died with its supervisor"
        );
    }
    app.start_server().await;

    let active = app.active().await;
    assert_eq!(active["count"], 20, "{active}");
    for pid in &pids {
        assert!(process_exists(*pid), "recorder {pid} was not left running");
    }
    let log = app.server_log_text();
    assert!(log.contains("adopted=20"), "{log}");

    for (job, _) in &to_stop {
        let (status, body) = app.stop(*job).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (job, _) in &to_stop {
        let job = app.wait_for_job_end(*job).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    for pid in &pids[10..] {
        assert!(!process_exists(*pid), "stopped recorder {pid} still alive");
    }

    // The other ten end on their own; only GET /jobs/{id} is used.
    let mut delays = Vec::new();
    for (job_id, recording_id) in &self_ending {
        let job = app
            .wait_for_job(*job_id, Duration::from_secs(20), |j| {
                is_terminal(&j["status"])
            })
            .await;
        assert_eq!(job["status"], "completed", "{job}");
        let recording = app.recording(*recording_id).await;
        let stamp = format!(
            "{}.exited",
            recording["output_path"].as_str().unwrap_or_default()
        );
        let exited_ns: i128 = std::fs::read_to_string(&stamp)
            .expect("exit timestamp")
            .trim()
            .parse()
            .expect("nanoseconds");
        let committed_ns = parse_time(&job["completed_at"]).unix_timestamp_nanos();
        let delay_ms = (committed_ns - exited_ns) as f64 / 1e6;
        delays.push(delay_ms);
        assert!(
            delay_ms < 100.0,
            "job {job_id} ended {delay_ms:.1} ms after its recorder: {job}"
        );
    }
    delays.sort_by(f64::total_cmp);
    eprintln!(
        "adopted recorder exit → committed transition: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );

    for (_, recording_id) in self_ending.iter().chain(&to_stop) {
        let recording = app.wait_for_recording_settled(*recording_id).await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }
    // Time for a second processing run to show: that none does is the point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, recording_id) in self_ending.iter().chain(&to_stop) {
        assert_eq!(
            app.processing_runs(*recording_id),
            1,
            "recording {recording_id}"
        );
    }
}

async fn recorders_that_died_while_the_supervisor_was_down_are_ended_before_the_first_request(
    backend: Backend,
) {
    let mut app = TestApp::spawn(backend).await;
    let mut jobs = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..5 {
        let (job, recording) = app.start_ok("short").await;
        jobs.push((job, recording));
        pids.push(
            app.job(job).await["process_id"]
                .as_i64()
                .unwrap_or_default() as i32,
        );
    }
    crash(&mut app).await;
    // They end on their own (after 0.5 s) while no supervisor runs.
    app.wait_for_processes_to_end(&pids).await;
    app.start_server().await;
    // The first requests: no active, no cleanup before them.
    for (job_id, _) in &jobs {
        let job = app.job(*job_id).await;
        assert!(is_terminal(&job["status"]), "not ended at start-up: {job}");
        assert_eq!(job["status"], "completed", "it left output: {job}");
    }
    for (_, recording_id) in &jobs {
        let recording = app.wait_for_recording_settled(*recording_id).await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }
    // Time for a second processing run to show: that none does is the point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, recording_id) in &jobs {
        assert_eq!(app.processing_runs(*recording_id), 1);
    }
    assert_eq!(app.cleanup().await["updated_count"], 0);
}

async fn detach_policy_leaves_recorders_running_for_the_next_supervisor(backend: Backend) {
    let options = AppOptions {
        extra_args: vec!["--shutdown-policy".into(), "detach".into()],
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(backend, options).await;
    let mut jobs = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (job, _) = app.start_ok("test").await;
        pids.push(
            app.job(job).await["process_id"]
                .as_i64()
                .unwrap_or_default() as i32,
        );
        jobs.push(job);
    }
    let status = app.signal_server(15).await;
    assert!(status.success(), "{status}\n{}", app.server_log_text());
    for pid in &pids {
        assert!(
            process_exists(*pid),
            "recorder {pid} did not survive a detach"
        );
    }
    app.start_server().await;
    let active = app.active().await;
    assert_eq!(active["count"], 3, "{active}");
    for job in &jobs {
        app.stop(*job).await;
    }
    for job in &jobs {
        let job = app.wait_for_job_end(*job).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
}

/// `unshare` makes the server PID 1 of a fresh PID namespace; it needs root.
fn pid_namespace_wrapper() -> Option<Vec<String>> {
    let works = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child=SIGTERM",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!(
            "`unshare --pid --fork --mount-proc` does not work here: the PID 1 tests must run under CI"
        );
    }
    eprintln!(
        "\n*** SKIPPED (PID 1): `unshare --pid --fork --mount-proc` is not available (needs root) ***\n"
    );
    None
}

/// The server's PID as seen from outside its namespace: `unshare`'s child.
fn server_in_namespace(unshare_pid: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let first_child = Process::new(unshare_pid)
            .and_then(|p| p.task_main_thread())
            .and_then(|task| task.children())
            .ok()
            .and_then(|children| children.first().copied())
            .and_then(|pid| i32::try_from(pid).ok());
        if let Some(pid) = first_child {
            return pid;
        }
        assert!(Instant::now() < deadline, "no process under unshare");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Zombie children of `parent`.
fn zombies_of(parent: i32) -> Vec<i32> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|stat| stat.ppid == parent && stat.state().is_ok_and(|s| s == ProcState::Zombie))
        .map(|stat| stat.pid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid1_orphaned_grandchildren_are_reaped_and_exit_codes_kept() {
    let _turn = crate::helpers::shared().await;
    let Some(wrapper) = pid_namespace_wrapper() else {
        return;
    };
    let options = AppOptions {
        wrapper,
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let server = server_in_namespace(app.server_pid());
    let mut jobs = Vec::new();
    for _ in 0..5 {
        // Each recorder leaves a `sleep 1` behind and exits 0 at once.
        jobs.push(app.start_ok("forking").await.0);
    }
    for job in &jobs {
        let job = app.wait_for_job_end(*job).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(
            job["exit_code"], 0,
            "the recorder's exit code was kept: {job}"
        );
    }
    // The grandchildren end about 1 s later; as PID 1, the server reaps
    // them, each with a line of its log.
    app.wait_until(
        "the five grandchildren reaped by PID 1",
        Duration::from_secs(10),
        || {
            let reaped = app
                .server_log_text()
                .matches("reaped an orphaned process")
                .count();
            let zombies = zombies_of(server);
            if reaped >= jobs.len() && zombies.is_empty() {
                Ok(())
            } else {
                Err(format!("{reaped} reaped, zombies left: {zombies:?}"))
            }
        },
    )
    .await;
    assert!(app.server_log_text().contains("reaped an orphaned process"));
    // SIGTERM to PID 1 itself: a clean shutdown.
    crate::helpers::send_signal(server, 15);
    let status = app.wait_for_server_exit().await;
    assert!(status.success(), "{status}");
    assert!(
        app.server_log_text().contains("shutdown complete"),
        "{}",
        app.server_log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid1_the_detach_policy_is_refused() {
    let _turn = crate::helpers::shared().await;
    let Some(wrapper) = pid_namespace_wrapper() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("recorderd-detach-{}", std::process::id()));
    let output = std::process::Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(crate::helpers::server_binary())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--shutdown-policy",
            "detach",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("run recorderd under unshare");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PID 1"), "{stderr}");
}
