//! Schedules against the real server: a one-shot schedule records once and
//! names its job; a cron pattern firing every 5 s fires each slot exactly
//! once with two nodes on one database, and across a server killed and
//! started again; a slot missed while the server was down fires late
//! within the grace and is recorded `missed` beyond it; the CLI drives
//! them all.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    schedules_are_created_listed_shown_paused_and_deleted_from_the_cli,
    a_one_shot_schedule_records_once_and_its_firing_names_the_job,
    a_killed_and_restarted_server_fires_each_slot_once_and_late_only_within_the_grace,
);

const SCHEDULES: &str = "/api/recordings/schedules/";

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("an RFC 3339 instant")
}

fn instant(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("an instant"), &Rfc3339)
        .expect("an RFC 3339 instant")
}

/// Creates a schedule that must be accepted; returns its id.
async fn create(app: &TestApp, body: Value) -> i64 {
    let (status, created) = app.post(SCHEDULES, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("schedule id")
}

/// A one-shot schedule of the test recorder, `in_seconds` from now.
async fn once(app: &TestApp, in_seconds: i64, duration: i64) -> (i64, OffsetDateTime) {
    let at = OffsetDateTime::now_utc() + time::Duration::seconds(in_seconds);
    let id = create(
        app,
        json!({
            "source": "test://stream",
            "profile": "test",
            "title": format!("once in {in_seconds} s"),
            "start_at": rfc3339(at),
            "duration_seconds": duration,
        }),
    )
    .await;
    (id, at.replace_nanosecond(0).expect("whole seconds"))
}

async fn schedule(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.get(&format!("{SCHEDULES}{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls a schedule until `done` holds for it.
async fn wait_for_schedule(
    app: &TestApp,
    id: i64,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let seen = schedule(app, id).await;
        if done(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "schedule {id} did not reach the expected state in {timeout:?}; last seen: {seen}\nserver log:\n{}",
            app.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The firings of a schedule with this outcome.
fn firings<'a>(schedule: &'a Value, outcome: &str) -> Vec<&'a Value> {
    schedule["firings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|f| f["outcome"] == outcome)
        .collect()
}

/// Every job the server knows.
async fn jobs(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/recordings/jobs/?page_size=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["jobs"].as_array().cloned().unwrap_or_default()
}

/// Pauses a schedule, then waits until no firing of it is still starting;
/// returns it.
async fn pause_and_settle(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.post(&format!("{SCHEDULES}{id}/pause"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "paused", "{body}");
    wait_for_schedule(app, id, Duration::from_secs(10), |s| {
        firings(s, "starting").is_empty()
    })
    .await
}

/// Checks that the started firings of `schedule` and the jobs of its
/// database (whichever node runs them) match one to one, each job
/// beginning at its own slot; returns the slots.
async fn one_job_per_slot(app: &TestApp, schedule: &Value) -> Vec<OffsetDateTime> {
    let started: Vec<OffsetDateTime> = firings(schedule, "started")
        .iter()
        .map(|f| instant(&f["slot_at"]))
        .collect();
    let all = jobs(app).await;
    assert_eq!(all.len(), started.len(), "jobs {all:?}\nfirings {schedule}");
    let mut job_slots: Vec<OffsetDateTime> = all
        .iter()
        .map(|j| {
            let begun = instant(&j["started_at"]);
            *started
                .iter()
                .min_by_key(|slot| (begun - **slot).abs())
                .expect("a slot")
        })
        .collect();
    job_slots.sort();
    job_slots.dedup();
    assert_eq!(job_slots.len(), all.len(), "two jobs for one slot: {all:?}");
    started
}

async fn a_one_shot_schedule_records_once_and_its_firing_names_the_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, at) = once(&app, 3, 4).await;
    let created = schedule(&app, id).await;
    assert_eq!(created["state"], "active", "{created}");
    assert_eq!(created["next_firings"], json!([rfc3339(at)]), "{created}");

    let fired = wait_for_schedule(&app, id, Duration::from_secs(15), |s| {
        !firings(s, "started").is_empty()
    })
    .await;
    assert_eq!(fired["state"], "finished", "{fired}");
    assert_eq!(fired["next_firings"], json!([]), "{fired}");
    let firing = firings(&fired, "started")[0];
    assert_eq!(instant(&firing["slot_at"]), at, "{fired}");
    let job_id = firing["job_id"].as_i64().expect("the firing names its job");

    let job = app
        .wait_for_job(job_id, Duration::from_secs(20), |j| {
            crate::helpers::is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_reason"], "duration", "{job}");
    let started = instant(&job["started_at"]);
    let ran = instant(&job["completed_at"]) - started;
    assert!(
        (started - at).whole_milliseconds() < 1500,
        "started {started}, slot {at}"
    );
    assert!(
        ran >= time::Duration::seconds(4) && ran < time::Duration::seconds(8),
        "recorded for {ran}: {job}"
    );
    let recording = app
        .wait_for_recording_settled(job["recording_id"].as_i64().expect("recording id"))
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(recording["title"], "once in 3 s", "{recording}");

    // Once, and never again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(jobs(&app).await.len(), 1);
    let (_, list) = app.get(SCHEDULES).await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["schedules"][0]["next_firing"], Value::Null, "{list}");
}

async fn a_killed_and_restarted_server_fires_each_slot_once_and_late_only_within_the_grace(
    backend: Backend,
) {
    let mut app = TestApp::spawn_with(
        backend,
        AppOptions {
            extra_args: vec!["--schedule-grace-seconds".into(), "10".into()],
            ..AppOptions::default()
        },
    )
    .await;

    // Every 5 s: the first slot fires, the server is killed at once and
    // started again, still within the grace of that slot.
    let every = create(
        &app,
        json!({
            "source": "test://stream",
            "profile": "test",
            "cron": "*/5 * * * * *",
            "time_zone": "UTC",
            "duration_seconds": 2,
        }),
    )
    .await;
    let first = wait_for_schedule(&app, every, Duration::from_secs(15), |s| {
        !firings(s, "started").is_empty()
    })
    .await;
    app.signal_server(9).await;
    app.start_server().await;
    wait_for_schedule(&app, every, Duration::from_secs(20), |s| {
        firings(s, "started").len() >= 3
    })
    .await;
    let slots = pause_and_settle(&app, every).await;
    let first_slot = instant(&firings(&first, "started")[0]["slot_at"]);
    let started = one_job_per_slot(&app, &slots).await;
    assert!(started.contains(&first_slot), "{slots}");

    // Downtime: one slot passes beyond the grace, a later one within it.
    // Killed now, started again 1 s after `within`: `beyond` is then 13 s
    // late, past the 10 s grace; `within` is late by 1 s and the start-up.
    let (beyond, _) = once(&app, 2, 2).await;
    let (within, within_at) = once(&app, 14, 2).await;
    app.signal_server(9).await;
    let restart_at = within_at + time::Duration::seconds(1);
    let wait = restart_at - OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    app.start_server().await;
    let late = wait_for_schedule(&app, within, Duration::from_secs(10), |s| {
        !firings(s, "started").is_empty()
    })
    .await;
    let job_id = firings(&late, "started")[0]["job_id"]
        .as_i64()
        .expect("job id");
    let job = app.job(job_id).await;
    assert!(
        instant(&job["started_at"]) > within_at + time::Duration::SECOND,
        "it fired late: {job}"
    );
    let missed = wait_for_schedule(&app, beyond, Duration::from_secs(10), |s| {
        s["state"] == "finished"
    })
    .await;
    assert_eq!(firings(&missed, "missed").len(), 1, "{missed}");
    assert!(firings(&missed, "started").is_empty(), "{missed}");
    assert_eq!(missed["firings"][0]["job_id"], Value::Null, "{missed}");
    assert_eq!(
        jobs(&app).await.len(),
        started.len() + 1,
        "only the slot within the grace started a job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_each_slot_once_with_two_nodes_on_one_database() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let node = |name: &str| AppOptions {
        extra_args: vec!["--node-id".into(), name.into()],
        ..AppOptions::default()
    };
    let a = TestApp::spawn_with(backend.clone(), node("node-a")).await;
    let id = create(
        &a,
        json!({
            "source": "test://stream",
            "profile": "test",
            "cron": "*/5 * * * * *",
            "time_zone": "Europe/Paris",
            "duration_seconds": 1,
        }),
    )
    .await;
    // The second node starts with the schedule in the database: from its
    // first slot on, both nodes try every slot.
    let mut options = node("node-b");
    options.database_url = Some(a.database_url.clone());
    options.env = vec![(
        "RUST_LOG".into(),
        "info,sqlx=warn,recorderd::schedules=debug".into(),
    )];
    let b = TestApp::spawn_with(backend, options).await;
    let joined = OffsetDateTime::now_utc();
    wait_for_schedule(&a, id, Duration::from_secs(30), |s| {
        firings(s, "started")
            .iter()
            .filter(|f| instant(&f["slot_at"]) > joined)
            .count()
            >= 3
    })
    .await;
    let settled = pause_and_settle(&b, id).await;
    let slots = one_job_per_slot(&a, &settled).await;
    // Consecutive slots, none skipped while both nodes ran.
    let after: Vec<_> = slots.iter().filter(|s| **s > joined).collect();
    for pair in after.windows(2) {
        assert_eq!(
            *pair[0] - *pair[1],
            time::Duration::seconds(5),
            "a slot was skipped: {settled}"
        );
    }
    let winners: Vec<&str> = firings(&settled, "started")
        .iter()
        .filter_map(|f| f["node"].as_str())
        .collect();
    eprintln!("slots won by: {winners:?}");
    // Both nodes tried: the second won some slots, or found them claimed.
    let lost = b.server_log_text().matches("slot claimed already").count();
    assert!(
        winners.contains(&"node-b") || lost > 0,
        "node-b never tried a slot:\n{}",
        b.server_log_text()
    );
    eprintln!("slots node-b found claimed: {lost}");
}

/// `recorderd ARGS --url …` against `app`: whether it succeeded, and its
/// standard output and error.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(crate::helpers::server_binary())
        .args(args)
        .args(["--url", &app.address])
        .env_remove("RECORDERD_API_TOKEN")
        .env_remove("RECORDERD_URL")
        .env_remove("RECORDERD_OUTPUT")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = cli(app, &[args, &["--json"]].concat());
    assert!(ok, "{args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

async fn schedules_are_created_listed_shown_paused_and_deleted_from_the_cli(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = cli_json(
        &app,
        &[
            "schedules",
            "create",
            "test://stream",
            "--profile",
            "test",
            "--title",
            "Nightly",
            "--cron",
            "0 0 3 * * *",
            "--time-zone",
            "America/New_York",
            "--duration",
            "60",
        ],
    );
    let id = created["id"].as_i64().expect("schedule id").to_string();
    assert_eq!(created["kind"], "cron", "{created}");
    let next = created["next_firings"].as_array().expect("next firings");
    assert_eq!(next.len(), 5, "{created}");
    for at in next {
        // 03:00 in New York: 07:00 or 08:00 UTC, as daylight saving says.
        let at = instant(at);
        assert!(matches!(at.hour(), 7 | 8) && at.minute() == 0, "{created}");
    }

    let (ok, table, stderr) = cli(&app, &["schedules", "list"]);
    assert!(ok, "{stderr}");
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("Nightly") && table.contains("active"),
        "{table}"
    );
    assert!(table.contains("0 0 3 * * * (America/New_York)"), "{table}");
    let (ok, shown, stderr) = cli(&app, &["schedules", "show", &id]);
    assert!(ok, "{stderr}");
    assert!(shown.contains("next_firings"), "{shown}");

    let paused = cli_json(&app, &["schedules", "pause", &id]);
    assert_eq!(paused["state"], "paused", "{paused}");
    assert_eq!(paused["next_firing"], Value::Null, "{paused}");
    let resumed = cli_json(&app, &["schedules", "resume", &id]);
    assert_eq!(resumed["state"], "active", "{resumed}");

    // A mistake is the server's message, and exit 1.
    let (ok, _, stderr) = cli(
        &app,
        &[
            "schedules",
            "create",
            "test://stream",
            "--cron",
            "0 8 * * *",
            "--time-zone",
            "Mars/Olympus",
            "--duration",
            "60",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("IANA"), "{stderr}");

    let (ok, said, stderr) = cli(&app, &["schedules", "delete", &id]);
    assert!(ok, "{stderr}");
    assert!(said.contains("deleted"), "{said}");
    let (status, _) = app.get(&format!("{SCHEDULES}{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
