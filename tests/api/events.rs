//! The event stream: every transition, in order, and nothing lost across a
//! reconnection with `Last-Event-ID`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(
    a_client_sees_every_transition_of_a_job_in_order,
    a_client_that_reconnects_gets_what_it_missed_exactly_once,
);

#[derive(Debug, Clone)]
struct SseEvent {
    id: i64,
    kind: String,
    data: Value,
}

/// A connection to the event stream, parsed as it arrives.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn connect(app: &TestApp, last_event_id: Option<i64>) -> Self {
        let mut request = app.client.get(app.url("/api/recordings/jobs/events/"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("connect to the event stream");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// Reads events until `done` holds for one of them (that one included).
    async fn until(&mut self, done: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut events = Vec::new();
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    let stop = done(&event);
                    events.push(event);
                    if stop {
                        return events;
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no matching event in 30 s; got {events:#?}"))
                .expect("read the event stream")
                .expect("the event stream ended");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut kind, mut data) = (None, None, String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    Some(SseEvent {
        id: id?,
        kind: kind?,
        data: serde_json::from_str(&data).ok()?,
    })
}

fn is_recording(event: &SseEvent, kind: &str, recording_id: i64) -> bool {
    event.kind == kind && event.data["id"] == recording_id
}

async fn a_client_sees_every_transition_of_a_job_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut stream = EventStream::connect(&app, None).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    // A recorder stopped before it handles signals would fail the job.
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    let events = stream
        .until(|e| is_recording(e, "recording.ready", recording_id))
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
        .until(|e| is_recording(e, "recording.ready", second_recording))
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
