//! `active` and a job's page answered from the live state the server
//! keeps in memory: every transition shows at once, and a row changed or
//! ended by another path (another node's stop, a takeover) is never shown
//! as the memory last had it.

use std::time::Duration;

use recorderd::entity::{JobStatus, recording_job};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use serde_json::Value;
use time::OffsetDateTime;

use crate::helpers::{Backend, TestApp, send_signal};
use crate::on_both_databases;

on_both_databases!(
    active_shows_each_transition_at_once_and_agrees_with_the_database,
    a_job_ended_or_marked_stopping_by_another_path_is_shown_as_stored,
);

/// The entry of `id` in an `active` answer.
fn entry(active: &Value, id: i64) -> Option<Value> {
    active["jobs"]
        .as_array()
        .expect("jobs listed")
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
}

/// A job's JSON without its live progress (never stored).
fn without_progress(mut job: Value) -> Value {
    job.as_object_mut()
        .expect("a job is an object")
        .remove("progress")
        .expect("every job has a progress field");
    job
}

/// Every job `active` lists is the row as stored, field for field (live
/// progress aside), and every live row is listed.
async fn assert_agrees_with_database(db: &DatabaseConnection, active: &Value) {
    let rows = recording_job::Entity::find()
        .all(db)
        .await
        .expect("read jobs");
    let live: Vec<_> = rows
        .iter()
        .filter(|row| JobStatus::LIVE.contains(&row.status))
        .collect();
    assert_eq!(active["count"], live.len(), "{active}");
    for row in live {
        let shown = entry(active, i64::from(row.id)).expect("every live job listed");
        assert_eq!(shown["status"], row.status.as_str(), "{shown}");
        assert_eq!(shown["process_id"].as_i64(), row.process_id.map(i64::from));
        assert_eq!(shown["attempt"].as_i64(), Some(i64::from(row.attempt)));
        let stored = serde_json::to_value(row).expect("a row serializes");
        assert_eq!(without_progress(shown), without_progress(stored));
    }
}

async fn active_shows_each_transition_at_once_and_agrees_with_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    let (stopped, _) = app.start_ok("test").await;
    let (kept, _) = app.start_ok("test").await;
    let (restarted, _) = app.start_ok("phoenix").await;
    let active = app.active().await;
    assert_eq!(active["count"], 3, "{active}");
    assert_agrees_with_database(&db, &active).await;
    // A job's page says what `active` says.
    for id in [stopped, kept, restarted] {
        let shown = entry(&active, id).expect("listed");
        assert_eq!(app.job(id).await["process_id"], shown["process_id"]);
    }

    // A stop: `stopping` in the very next answer, then gone once ended.
    let (status, body) = app.stop(stopped).await;
    assert!(status.is_success(), "{body}");
    let active = app.active().await;
    if let Some(shown) = entry(&active, stopped) {
        assert_ne!(shown["status"], "running", "{shown}");
    }
    let ended = app.wait_for_job_end(stopped).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let active = app.active().await;
    assert!(entry(&active, stopped).is_none(), "{active}");
    assert_agrees_with_database(&db, &active).await;

    // A crash restarts the recorder: the next run's process in the very
    // next answer once the job's page shows it.
    let first_pid = app.job(restarted).await["process_id"]
        .as_i64()
        .expect("pid") as i32;
    send_signal(first_pid, libc::SIGKILL);
    let rerun = app
        .wait_for_job(restarted, Duration::from_secs(15), |j| {
            j["attempt"] == 2 && j["process_id"].is_i64()
        })
        .await;
    let active = app.active().await;
    let shown = entry(&active, restarted).expect("still live");
    assert_eq!(shown["attempt"], 2, "{shown}");
    assert_eq!(shown["process_id"], rerun["process_id"], "{shown}");
    assert_agrees_with_database(&db, &active).await;
    assert_eq!(entry(&active, kept).expect("listed")["status"], "running");
}

async fn a_job_ended_or_marked_stopping_by_another_path_is_shown_as_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db().await;
    let (taken, _) = app.start_ok("test").await;
    // Ignores SIGINT and SIGTERM: still live a moment after its stop.
    let (marked, marked_recording) = app.start_ok("stubborn").await;
    app.wait_for_recorder_output(marked_recording).await;
    let active = app.active().await;
    assert_eq!(active["count"], 2, "{active}");

    // Ended by another path (as a node taking this one's jobs over ends
    // them): gone from the next answer, though its recorder still runs.
    recording_job::ActiveModel {
        id: Set(taken as i32),
        status: Set(JobStatus::Failed),
        completed_at: Set(Some(OffsetDateTime::now_utc())),
        error: Set(Some("node lost: ended elsewhere".to_owned())),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("end the job elsewhere");
    // Marked stopping elsewhere (as a stop sent through another node).
    recording_job::ActiveModel {
        id: Set(marked as i32),
        status: Set(JobStatus::Stopping),
        stop_requested_at: Set(Some(OffsetDateTime::now_utc())),
        ..Default::default()
    }
    .update(&db)
    .await
    .expect("mark the job stopping elsewhere");

    let active = app.active().await;
    assert!(entry(&active, taken).is_none(), "{active}");
    let shown = entry(&active, marked).expect("still live");
    assert_eq!(shown["status"], "stopping", "{shown}");
    assert_agrees_with_database(&db, &active).await;
    // Asked again (the rows read from the database are held now): the same,
    // or the stop sequence the server began meanwhile has ended it.
    let again = app.active().await;
    assert!(entry(&again, taken).is_none(), "{again}");
    if let Some(shown) = entry(&again, marked) {
        assert_eq!(shown["status"], "stopping", "{shown}");
    }
    app.wait_for_job_end(marked).await;
}
