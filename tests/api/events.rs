//! The event stream: every transition, in order, and nothing lost across a
//! reconnection with `Last-Event-ID`.

use crate::helpers::events::EventStream;
use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_client_sees_every_transition_of_a_job_in_order,
    a_client_that_reconnects_gets_what_it_missed_exactly_once,
);

async fn a_client_sees_every_transition_of_a_job_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut stream = EventStream::connect(&app, None).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    // A recorder stopped before it handles signals would fail the job.
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    let events = stream
        .until(|e| e.is("recording.ready", recording_id))
        .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "job.started",
            "job.stopping",
            "job.completed",
            "recording.processing",
            "recording.ready"
        ],
        "{events:#?}"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert_eq!(events[0].data["id"], job_id);
    assert_eq!(events[0].data["status"], "running");
    assert_eq!(events[2].data["status"], "completed");
    assert_eq!(events[2].data["exit_code"], 0);
}

async fn a_client_that_reconnects_gets_what_it_missed_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut stream = EventStream::connect(&app, None).await;
    let (first, _) = app.start_ok("test").await;
    let seen = stream.until(|e| e.kind == "job.started").await;
    let last_seen = seen.last().map(|e| e.id).unwrap_or_default();
    drop(stream);

    // While the client is away: a second job runs to its end, the first is
    // stopped.
    let (second, second_recording) = app.start_ok("short").await;
    app.stop(first).await;
    app.wait_for_job_end(first).await;
    app.wait_for_job_end(second).await;
    app.wait_for_recording_settled(second_recording).await;

    let mut stream = EventStream::connect(&app, Some(last_seen)).await;
    let missed = stream
        .until(|e| e.is("recording.ready", second_recording))
        .await;
    assert!(missed.iter().all(|e| e.id > last_seen), "{missed:#?}");
    assert!(
        missed.windows(2).all(|w| w[0].id < w[1].id),
        "once each, in order"
    );
    let has = |kind: &str, job: i64| missed.iter().any(|e| e.kind == kind && e.data["id"] == job);
    assert!(has("job.started", second), "{missed:#?}");
    assert!(has("job.stopping", first), "{missed:#?}");
    assert!(has("job.completed", first), "{missed:#?}");
    assert!(has("job.completed", second), "{missed:#?}");
    assert!(
        !missed
            .iter()
            .any(|e| e.kind == "job.started" && e.data["id"] == first),
        "an event seen before is not sent again: {missed:#?}"
    );

    // Live events still follow the catch-up on the same connection.
    let (third, _) = app.start_ok("short").await;
    let live = stream
        .until(|e| e.kind == "job.completed" && e.data["id"] == third)
        .await;
    assert!(
        live.iter()
            .all(|e| e.id > missed.last().map(|m| m.id).unwrap_or(0))
    );
}
