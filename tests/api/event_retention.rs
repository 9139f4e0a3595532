//! Event log retention against a real receiver and a real event stream:
//! a webhook receiver that is down while more than the retention is
//! written gets every event on its return; past the hard cap, it gets one
//! signed gap event naming exactly what was pruned, then the rest; a
//! stream resumed from a pruned id is told of the gap first. A live
//! stream, connected before any event, is the record of what happened.

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::events::{EventStream, Seen};
use crate::helpers::webhook::{Receiver, verify};
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;
use recorderd::entity::{event, webhook_cursor};

on_both_databases!(
    a_receiver_down_while_more_than_the_retention_is_written_gets_every_event,
    a_receiver_behind_the_cap_gets_one_gap_naming_what_was_pruned_then_the_rest,
    a_stream_resumed_from_a_pruned_id_is_told_of_the_gap_first,
);

const SECRET: &str = "retention-secret-for-tests";
/// Jobs whose recorder cannot be spawned: each is two events at once
/// (`job.failed`, `recording.failed`), with no process to wait for.
const JOBS: usize = 40;

/// Every event `receiver` accepted, each signed with [`SECRET`].
fn accepted(receiver: &Receiver) -> Vec<Seen> {
    let accepted = receiver.accepted();
    for r in &accepted {
        assert!(
            verify(SECRET, &r.signature, &r.body),
            "bad signature: {r:?}"
        );
    }
    accepted.iter().map(|r| r.seen()).collect()
}

/// Waits until `receiver` accepted event `id`; returns every event it
/// accepted.
async fn accepted_up_to(receiver: &Receiver, app: &TestApp, id: i64) -> Vec<Seen> {
    receiver.wait_for(app, |r| r.event_id == id).await;
    accepted(receiver)
}

fn options(retention: &[&str], webhook: Option<&str>) -> AppOptions {
    let mut extra_args: Vec<String> = retention.iter().map(|s| s.to_string()).collect();
    if let Some(url) = webhook {
        extra_args.extend(["--webhook-url", url, "--webhook-secret", SECRET].map(String::from));
    }
    AppOptions {
        extra_args,
        ..Default::default()
    }
}

/// Ends [`JOBS`] jobs at once (their recorder cannot be spawned) and
/// returns every event of them, as a live stream opened before saw them.
async fn many_events(app: &TestApp, live: &mut EventStream) -> Vec<Seen> {
    let mut last_recording = 0;
    for _ in 0..JOBS {
        let (status, body) = app
            .start(json!({ "source": "test://stream", "profile": "missing" }))
            .await;
        assert_eq!(status, reqwest::StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let job = app
            .job(body["error"]["job_id"].as_i64().expect("job id"))
            .await;
        last_recording = job["recording_id"].as_i64().expect("recording id");
    }
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e: &Seen| e.kind == "recording.failed" && e.data["id"] == last_recording)
    {
        events.push(live.next().await);
    }
    assert_eq!(events.len(), 2 * JOBS, "{events:#?}");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    events
}

/// This node's stored events (not gaps) with an id at most `id`.
async fn stored_up_to(app: &TestApp, id: i64) -> u64 {
    event::Entity::find()
        .filter(event::Column::Id.lte(id))
        .filter(event::Column::Kind.ne("events.gap"))
        .count(&app.db().await)
        .await
        .expect("count events")
}

/// Polls until `done` holds for the number of stored events up to `id`.
async fn wait_for_pruning(app: &TestApp, id: i64, done: impl Fn(u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = stored_up_to(app, id).await;
        if done(stored) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the log was not pruned as expected: {stored} events up to {id} remain\nserver log:\n{}",
            app.server_log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_receiver_down_while_more_than_the_retention_is_written_gets_every_event(
    backend: Backend,
) {
    let receiver = Receiver::default();
    receiver.set_down(true);
    let url = receiver.serve().await;
    let app = TestApp::spawn_with(backend, options(&["--event-retention", "20"], Some(&url))).await;
    let mut live = EventStream::connect(&app, None).await;
    let written = many_events(&app, &mut live).await;
    receiver.wait_for_an_attempt().await;

    // Pruning ran every 2 events; none the receiver still owed went.
    let last = written[written.len() - 1].id;
    assert_eq!(stored_up_to(&app, last).await, written.len() as u64);
    receiver.set_down(false);
    let accepted = accepted_up_to(&receiver, &app, last).await;
    assert_eq!(accepted, written, "every event, once, in order");

    // Delivered, they no longer hold the log: the next events prune them.
    let more = many_events(&app, &mut live).await;
    accepted_up_to(&receiver, &app, more[more.len() - 1].id).await;
    wait_for_pruning(&app, last, |stored| stored == 0).await;
}

async fn a_receiver_behind_the_cap_gets_one_gap_naming_what_was_pruned_then_the_rest(
    backend: Backend,
) {
    let receiver = Receiver::default();
    receiver.set_down(true);
    let url = receiver.serve().await;
    let retention = ["--event-retention", "10", "--event-retention-max", "30"];
    let app = TestApp::spawn_with(backend, options(&retention, Some(&url))).await;
    let mut live = EventStream::connect(&app, None).await;
    let written = many_events(&app, &mut live).await;
    receiver.wait_for_an_attempt().await;
    let last = written[written.len() - 1].id;
    // Past the cap (30, pruning every event), the receiver's events went.
    wait_for_pruning(&app, last - 32, |stored| stored == 0).await;

    receiver.set_down(false);
    let accepted = accepted_up_to(&receiver, &app, last).await;
    let gap = &accepted[0];
    assert_eq!(gap.kind, "events.gap", "{accepted:#?}");
    let (first_id, last_id) = (gap.data["first_id"].as_i64(), gap.data["last_id"].as_i64());
    assert_eq!(first_id, Some(written[0].id), "{gap:?}");
    assert_eq!(last_id, Some(gap.id), "{gap:?}");
    let missed: Vec<&Seen> = written.iter().filter(|e| e.id <= gap.id).collect();
    assert_eq!(gap.data["count"], missed.len(), "{gap:?}");
    assert!(missed.len() >= written.len() - 32, "{gap:?}");
    assert_eq!(
        &accepted[1..],
        &written[missed.len()..],
        "then every event after the gap, once, in order"
    );
    // The gap names exactly what is gone: nothing up to its end is stored,
    // everything after it is.
    assert_eq!(stored_up_to(&app, gap.id).await, 0);
    assert_eq!(
        stored_up_to(&app, last).await,
        (written.len() - missed.len()) as u64
    );

    let metrics = app.metrics_text().await;
    let line = format!("recorderd_webhook_events_missed_total {}", missed.len());
    assert!(
        metrics.lines().any(|l| l == line),
        "no `{line}` in {metrics}"
    );
}

async fn a_stream_resumed_from_a_pruned_id_is_told_of_the_gap_first(backend: Backend) {
    let node = "retention-node";
    let app = TestApp::spawn_with(
        backend,
        options(&["--event-retention", "20", "--node-id", node], None),
    )
    .await;
    // A cursor of a URL no longer configured holds nothing back.
    let stale = webhook_cursor::ActiveModel {
        node: sea_orm::ActiveValue::Set(node.to_owned()),
        url: sea_orm::ActiveValue::Set("http://127.0.0.1:9/gone".to_owned()),
        last_event_id: sea_orm::ActiveValue::Set(0),
        updated_at: sea_orm::ActiveValue::Set(time::OffsetDateTime::now_utc()),
    };
    webhook_cursor::Entity::insert(stale)
        .exec(&app.db().await)
        .await
        .expect("insert a stale cursor");
    let mut live = EventStream::connect(&app, None).await;
    let written = many_events(&app, &mut live).await;
    let last = written[written.len() - 1].id;
    // Without webhooks, the newest 20 stay (and what came after the last
    // prune, every 2 events).
    wait_for_pruning(&app, last, |stored| stored <= 21).await;

    let from = written[4].id;
    let mut resumed = EventStream::connect(&app, Some(from)).await;
    let got = resumed.until_id(last).await;
    let gap = &got[0];
    assert_eq!(gap.kind, "events.gap", "{got:#?}");
    assert_eq!(gap.data["first_id"], from + 1, "{gap:?}");
    assert_eq!(gap.data["last_id"], gap.id, "{gap:?}");
    let missed = written
        .iter()
        .filter(|e| e.id > from && e.id <= gap.id)
        .count();
    assert_eq!(gap.data["count"], missed, "{gap:?}");
    let after: Vec<&Seen> = written.iter().filter(|e| e.id > gap.id).collect();
    assert_eq!(got[1..].iter().collect::<Vec<_>>(), after);
    assert_eq!(stored_up_to(&app, gap.id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_cap_below_the_retention_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("recorderd-retention-{}", std::process::id()));
    let mut command = std::process::Command::new(crate::helpers::server_binary());
    command
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .args(["--event-retention", "500", "--event-retention-max", "100"])
        .arg("--data-dir")
        .arg(&dir);
    let (status, stderr) = crate::helpers::run_to_exit(command, Duration::from_secs(20)).await;
    assert!(!status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains("--event-retention-max (100) must be at least --event-retention (500)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
