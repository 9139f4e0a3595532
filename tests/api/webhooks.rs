//! Webhooks against a real HTTP receiver on a real port: every transition
//! arrives in order, signed, retried through failures, and delivery
//! resumes after the server is SIGKILLed while the receiver was down.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

const SECRET: &str = "webhook-secret-for-tests";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    event_id: i64,
    kind: String,
    attempt: u32,
    signature: String,
    body: Bytes,
    /// What the receiver answered.
    accepted: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests still to refuse with 500.
    failures_left: Arc<AtomicU32>,
    /// Refuse everything with 503.
    down: Arc<AtomicBool>,
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let down = receiver.down.load(Ordering::SeqCst);
    let fail = !down
        && receiver
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let accepted = !down && !fail;
    receiver
        .received
        .lock()
        .expect("receiver lock")
        .push(Received {
            event_id: header("x-recorderd-event-id").parse().unwrap_or(-1),
            kind: header("x-recorderd-event"),
            attempt: header("x-recorderd-delivery-attempt").parse().unwrap_or(0),
            signature: header("x-recorderd-signature"),
            body,
            accepted,
        });
    if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

impl Receiver {
    /// Serves `POST /hook` on a free loopback port; returns its URL.
    async fn serve(&self) -> String {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let address = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/hook")
    }

    fn accepted(&self) -> Vec<Received> {
        self.received
            .lock()
            .expect("receiver lock")
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }

    /// Waits until an accepted delivery satisfies `done`.
    async fn wait_for(&self, app: &TestApp, done: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.accepted().iter().any(&done) {
            assert!(
                Instant::now() < deadline,
                "the expected delivery did not arrive; received: {:#?}\nserver log:\n{}",
                self.all(),
                app.server_log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Checks `t=<t>,v1=<hex>` against an HMAC computed here.
fn verify(signature: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

fn options(url: &str) -> AppOptions {
    AppOptions {
        extra_args: vec![
            "--webhook-url".into(),
            url.into(),
            "--webhook-secret".into(),
            SECRET.into(),
        ],
        ..Default::default()
    }
}

const TRANSITIONS: [&str; 5] = [
    "job.started",
    "job.stopping",
    "job.completed",
    "recording.processing",
    "recording.ready",
];

on_both_databases!(every_transition_is_posted_in_order_signed_and_retried);

async fn every_transition_is_posted_in_order_signed_and_retried(backend: Backend) {
    let receiver = Receiver::default();
    receiver.failures_left.store(2, Ordering::SeqCst);
    let url = receiver.serve().await;
    let app = TestApp::spawn_with(backend, options(&url)).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    receiver
        .wait_for(&app, |r| r.kind == "recording.ready")
        .await;

    let accepted = receiver.accepted();
    let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, TRANSITIONS, "{accepted:#?}");
    assert!(
        accepted.windows(2).all(|w| w[0].event_id < w[1].event_id),
        "ids increase, each delivered once: {accepted:#?}"
    );
    for r in &accepted {
        assert!(verify(&r.signature, &r.body), "bad signature on {r:?}");
        assert!(
            !verify(&r.signature, b"{}"),
            "the signature covers the body"
        );
        let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
        assert_eq!(body["id"], r.event_id);
        assert_eq!(body["event"], r.kind.as_str());
    }
    let first: Value = serde_json::from_slice(&accepted[0].body).expect("JSON");
    assert_eq!(first["data"]["id"], job_id);
    assert_eq!(first["data"]["status"], "running");
    let last: Value = serde_json::from_slice(&accepted[4].body).expect("JSON");
    assert_eq!(last["data"]["id"], recording_id);
    assert_eq!(last["data"]["status"], "ready");

    // The first event was refused twice, then accepted on attempt 3.
    let tries: Vec<(u32, bool)> = receiver
        .all()
        .iter()
        .filter(|r| r.event_id == accepted[0].event_id)
        .map(|r| (r.attempt, r.accepted))
        .collect();
    assert_eq!(tries, [(1, false), (2, false), (3, true)]);

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("recorderd_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recorderd_webhook_deliveries_total{outcome=\"delivered\"} 5"),
        "{metrics}"
    );
}

on_both_databases!(delivery_resumes_after_a_crash_while_the_receiver_was_down);

async fn delivery_resumes_after_a_crash_while_the_receiver_was_down(backend: Backend) {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.serve().await;
    let mut app = TestApp::spawn_with(backend, options(&url)).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    // At least one refused attempt, so the crash comes mid-retry.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.all().is_empty() {
        assert!(Instant::now() < deadline, "no delivery was attempted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Every event of the run is stored before the crash, which only
    // interrupts delivery.
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let stored = recorderd::entity::event::Entity::find()
            .filter(recorderd::entity::event::Column::Kind.eq("recording.ready"))
            .count(&db)
            .await
            .expect("count events");
        if stored == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "recording.ready never stored");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.signal_server(9).await;

    receiver.down.store(false, Ordering::SeqCst);
    app.start_server().await;
    receiver
        .wait_for(&app, |r| r.kind == "recording.ready")
        .await;
    let accepted = receiver.accepted();
    let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds, TRANSITIONS,
        "nothing lost, nothing twice: {accepted:#?}"
    );
    assert!(accepted.windows(2).all(|w| w[0].event_id < w[1].event_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_or_malformed_webhook_url_is_refused_at_start() {
    let _turn = crate::helpers::shared().await;
    for (url, expected) in [
        ("https://hooks.example/x", "only http://"),
        ("not a url", "is not a URL"),
    ] {
        let dir =
            std::env::temp_dir().join(format!("recorderd-webhook-refused-{}", std::process::id()));
        let mut command = std::process::Command::new(crate::helpers::server_binary());
        command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--webhook-url", url])
            .arg("--data-dir")
            .arg(&dir);
        let (status, stderr) = crate::helpers::run_to_exit(command, Duration::from_secs(20)).await;
        assert!(!status.success(), "{url} was accepted");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
