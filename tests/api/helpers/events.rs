//! The event stream as a client reads it (`GET /api/recordings/jobs/events/`,
//! resumed with `Last-Event-ID`), and one event as a stream or a webhook
//! receiver got it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::TestApp;

/// One event: its id, kind (`job.started`, …) and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub id: i64,
    pub kind: String,
    pub data: Value,
}

impl Seen {
    /// An event of `kind` about the recording (or job) `id`.
    pub fn is(&self, kind: &str, id: i64) -> bool {
        self.kind == kind && self.data["id"] == id
    }
}

/// A connection to the event stream, parsed as it arrives.
pub struct EventStream {
    events: futures::stream::BoxStream<
        'static,
        Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
    >,
}

/// How long a test waits for the next event.
const NEXT_WITHIN: Duration = Duration::from_secs(30);

impl EventStream {
    /// Connects, resuming after `last_event_id` when given; the answer must
    /// be an event stream.
    pub async fn connect(app: &TestApp, last_event_id: Option<i64>) -> Self {
        use eventsource_stream::Eventsource;
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
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            events: response.bytes_stream().eventsource().boxed(),
        }
    }

    /// The next event, within [`NEXT_WITHIN`].
    pub async fn next(&mut self) -> Seen {
        let event = tokio::time::timeout(NEXT_WITHIN, self.events.next())
            .await
            .expect("no event streamed in 30 s")
            .expect("the event stream ended")
            .expect("a well-formed event");
        Seen {
            id: event.id.parse().expect("event id"),
            kind: event.event,
            data: serde_json::from_str(&event.data).expect("JSON data"),
        }
    }

    /// Events until `done` holds for one of them (that one included), in
    /// 30 s at most.
    pub async fn until(&mut self, done: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + NEXT_WITHIN;
        let mut events = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "no matching event in 30 s; got {events:#?}"
            );
            let event = self.next().await;
            let stop = done(&event);
            events.push(event);
            if stop {
                return events;
            }
        }
    }

    /// Events until the one with id `last` (included).
    pub async fn until_id(&mut self, last: i64) -> Vec<Seen> {
        self.until(|e| e.id >= last).await
    }
}
