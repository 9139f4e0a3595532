//! `recorderd jobs watch`: the event stream, one line per transition,
//! resumed after a break (a server restart) without printing an event
//! twice.

use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::StreamExt;
use serde_json::{Value, json};

use super::client::Client;
use super::table::text;
use crate::backoff;

/// Consecutive reconnection attempts before `jobs watch` gives up: with the
/// backoff below they span about 30 s, long enough for a server restart.
const RECONNECT_ATTEMPTS: u32 = 16;
/// Wait before the first reconnection attempt; doubled after each failure.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Why opening the event stream failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("cannot reach recorderd at {base}")]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}: cannot follow events")]
    Refused(reqwest::StatusCode),
}

impl ConnectError {
    /// Worth another attempt: the server is down, restarting or briefly
    /// failing. A 4xx (a bad token, a bad event id) stays as it is.
    fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused(status) => status.is_server_error(),
        }
    }
}

/// How one connection to the event stream ended.
enum StreamEnd {
    /// `--limit` events were printed.
    LimitReached,
    /// The connection broke or the server closed it (as it does when it
    /// shuts down): worth resuming.
    Broken(String),
}

/// Follows the event stream, one line per event. When the connection
/// breaks (a server restart, say) it reconnects with `Last-Event-ID` set to
/// the last event printed, so the server resends what was missed meanwhile
/// and each event is printed once. Before the first event, and without
/// `--last-event-id`, there is no id to resume from: the new connection
/// starts with what happens next, as the first one did.
pub async fn watch(
    client: &Client,
    last_event_id: Option<i64>,
    limit: Option<usize>,
    json_lines: bool,
) -> anyhow::Result<()> {
    let mut watch = Watch {
        last_id: last_event_id.map(|id| id.to_string()),
        seen: 0,
        limit,
        json_lines,
    };
    // A first connection that fails is a mistake to report (a wrong URL),
    // not a restart to wait out.
    let mut response = connect(client, watch.last_id.as_deref()).await?;
    loop {
        match watch.follow(response).await? {
            StreamEnd::LimitReached => return Ok(()),
            StreamEnd::Broken(reason) => {
                eprintln!("the event stream broke ({reason}); reconnecting");
                response = reconnect(client, watch.last_id.as_deref()).await?;
            }
        }
    }
}

/// Opens the event stream, resuming after `last_id` when there is one.
async fn connect(
    client: &Client,
    last_id: Option<&str>,
) -> Result<reqwest::Response, ConnectError> {
    let mut request = client.request(reqwest::Method::GET, "/api/recordings/jobs/events/");
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    let response = request
        .send()
        .await
        .map_err(|source| ConnectError::Unreachable {
            base: client.base.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(ConnectError::Refused(response.status()));
    }
    Ok(response)
}

/// Opens the event stream again after it broke, with a doubling backoff,
/// for [`RECONNECT_ATTEMPTS`] attempts at most.
async fn reconnect(client: &Client, last_id: Option<&str>) -> anyhow::Result<reqwest::Response> {
    let mut delays = backoff::doubling(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY).build();
    let mut attempt = 0;
    loop {
        attempt += 1;
        tokio::time::sleep(delays.next().unwrap_or(RECONNECT_MAX_DELAY)).await;
        match connect(client, last_id).await {
            Ok(response) => return Ok(response),
            Err(e) if e.is_transient() && attempt < RECONNECT_ATTEMPTS => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("the event stream broke and {attempt} reconnection attempt(s) failed")
                });
            }
        }
    }
}

/// What `jobs watch` has printed so far, and where to resume.
struct Watch {
    /// Id of the last event printed: the `Last-Event-ID` of a reconnection.
    last_id: Option<String>,
    seen: usize,
    limit: Option<usize>,
    json_lines: bool,
}

impl Watch {
    /// Prints the events of one connection until it ends or `--limit` is
    /// reached. Bytes that are not an event stream are an error, not a
    /// reason to reconnect.
    async fn follow(&mut self, response: reqwest::Response) -> anyhow::Result<StreamEnd> {
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(EventStreamError::Transport(e)) => return Ok(StreamEnd::Broken(e.to_string())),
                Err(e) => return Err(anyhow::anyhow!("the event stream is malformed: {e}")),
            };
            println!("{}", event_line(&event, self.json_lines));
            if !event.id.is_empty() {
                self.last_id = Some(event.id);
            }
            self.seen += 1;
            if self.limit.is_some_and(|limit| self.seen >= limit) {
                return Ok(StreamEnd::LimitReached);
            }
        }
        Ok(StreamEnd::Broken("the server closed it".to_owned()))
    }
}

/// One event as `jobs watch` prints it: a JSON object per line with
/// `--json`, else a line of columns.
fn event_line(event: &Event, json_lines: bool) -> String {
    let object: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    if json_lines {
        json!({ "id": event.id.parse::<i64>().ok(), "event": event.event, "data": object })
            .to_string()
    } else {
        format!(
            "#{:<6} {:<22} {} {:<10} {}",
            event.id,
            event.event,
            text(&object["id"]),
            text(&object["status"]),
            object["error"].as_str().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as a proxy may reframe them: CRLF line ends, a `data:` field
    /// over two lines, chunks cut inside a field name and between the CR
    /// and LF of one line end, and a keep-alive comment.
    #[tokio::test]
    async fn crlf_and_multi_line_data_split_across_chunks_make_whole_events() {
        let chunks: [&[u8]; 4] = [
            b": keep-alive\r\n\r\nid: 7\r\nevent: job.st",
            b"arted\r\ndata: {\"id\": 3,\r\ndata:  \"status\": \"running\"}\r",
            b"\n\r\nid: 8\nevent: job.failed\ndata: {\"id\": 3, \"status\": \"failed\",",
            b" \"error\": \"exit 1\"}\n\n",
        ];
        let bytes = futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
        let events: Vec<Event> = bytes
            .eventsource()
            .map(|event| event.expect("a well-formed stream"))
            .collect()
            .await;

        let lines: Vec<Value> = events
            .iter()
            .map(|event| serde_json::from_str(&event_line(event, true)).expect("JSON"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({ "id": 7, "event": "job.started", "data": { "id": 3, "status": "running" } }),
                json!({ "id": 8, "event": "job.failed",
                        "data": { "id": 3, "status": "failed", "error": "exit 1" } }),
            ]
        );
        assert_eq!(
            event_line(&events[1], false),
            "#8      job.failed             3 failed     exit 1"
        );
    }
}
