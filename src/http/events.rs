//! `GET /api/recordings/jobs/events/`: the transitions as Server-Sent
//! Events, so clients need not poll. Each event has the log's id; a client
//! that reconnects with `Last-Event-ID` (or `?last_event_id=`) first gets
//! what it missed, from the stored log, then live events, each exactly
//! once; what was pruned from the log meanwhile is named by one
//! `events.gap` event first. Comments keep idle connections alive through
//! proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use utoipa::IntoParams;

use super::error::ErrorBody;
use super::{ApiError, AppState, Result, StreamSlots};
use crate::events::Event;

/// How many stored events one catch-up query sends.
const CATCH_UP_PAGE: u64 = 500;

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Resume after this event (for clients that cannot set
    /// `Last-Event-ID`); the header wins when both are given.
    last_event_id: Option<i32>,
}

#[utoipa::path(
    get,
    path = "/api/recordings/jobs/events",
    operation_id = "job_events",
    tag = "events",
    summary = "Job and recording transitions, live (Server-Sent Events)",
    description = "One event per transition: `event:` is `job.started`, `job.stopping`, `job.completed`, `job.failed`, `recording.processing`, `recording.ready`, `recording.failed`, `recording.deleted`, `schedule.created`, `schedule.fired` or `schedule.missed`; `data:` is the job, recording, schedule or firing as JSON (the `Job`, `Recording`, `Schedule` or `ScheduleFiring` schema) after the transition; `id:` increases. A client that reconnects with `Last-Event-ID` first gets, from the stored log, every event after that id, then live events, each exactly once. When some of the events it missed were pruned from the log (it keeps the newest `--event-retention`), an `events.gap` event comes first, its `data` `{\"first_id\": …, \"last_id\": …, \"count\": …}` naming them (its `id` is `last_id`; resumed from inside a pruned stretch, `count` is at most what was missed). Without it the stream starts with what happens next. Comment lines keep the connection alive every 15 s. Browsers' `EventSource` cannot send headers: pass the API token as `?access_token=`. Also served with a trailing slash.",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<i32>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "The event stream; it stays open", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_query`: `Last-Event-ID` or `last_event_id` is not an integer", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`at_capacity`: `--max-event-streams` clients are connected; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(streams): Extension<StreamSlots>,
    headers: HeaderMap,
    query: std::result::Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let Query(query) = query?;
    // Held by the stream until its client leaves (or the server stops).
    let slot = streams
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams {
            limit: streams.limit,
        })?;
    let from_header = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i32>().ok())
                .ok_or_else(|| {
                    ApiError::BadQuery(
                        "`Last-Event-ID` must be an event id (an integer)".to_owned(),
                    )
                })?,
        ),
        None => None,
    };
    // A new client starts with what happens from now on.
    let after = from_header.or(query.last_event_id).unwrap_or(-1);
    let events = state.events.clone();
    // Subscribed before the catch-up query: an event committed meanwhile is
    // in one or the other (or both, and then sent once).
    let live = events.subscribe();
    let (tx, rx) = mpsc::channel::<Event>(256);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut last = after;
        if after >= 0 && !catch_up(&events, &tx, &mut last).await {
            return;
        }
        forward(events, live, tx, last, shutdown).await;
    });
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let event = rx.recv().await?;
        let sse = SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.as_str())
            .data(event.data);
        Some((Ok(sse), (rx, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Sends the stored events after `last`; false when the client is gone.
async fn catch_up(
    events: &crate::events::EventLog,
    tx: &mpsc::Sender<Event>,
    last: &mut i32,
) -> bool {
    loop {
        let page = match events.since(*last, CATCH_UP_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                warn!(error = %e, "cannot read the event log");
                return false;
            }
        };
        let full = page.len() as u64 == CATCH_UP_PAGE;
        for event in page {
            *last = event.id;
            if tx.send(event).await.is_err() {
                return false;
            }
        }
        if !full {
            return true;
        }
    }
}

/// Live events after `last`, until the client leaves or the server stops.
/// A subscriber that fell behind the broadcast buffer catches up from the
/// stored log instead of losing events.
async fn forward(
    events: crate::events::EventLog,
    mut live: broadcast::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    mut last: i32,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            () = tx.closed() => return,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok(event) if event.id > last => {
                last = event.id;
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if !catch_up(&events, &tx, &mut last).await {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
