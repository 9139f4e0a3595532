//! A webhook receiver on a real port: it records every delivery with its
//! headers, and can refuse (down, or the next N requests) to drive the
//! server's retries; and the check of a delivery's signature.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::TestApp;
use super::events::Seen;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: i64,
    pub kind: String,
    pub attempt: u32,
    pub signature: String,
    pub body: Bytes,
    /// What the receiver answered.
    pub accepted: bool,
}

impl Received {
    /// The delivered event; its body must name the same id and kind as its
    /// headers.
    pub fn seen(&self) -> Seen {
        let body: Value = serde_json::from_slice(&self.body).expect("JSON body");
        assert_eq!(body["id"], self.event_id, "{body}");
        assert_eq!(body["event"], self.kind.as_str(), "{body}");
        Seen {
            id: self.event_id,
            kind: self.kind.clone(),
            data: body["data"].clone(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
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
    /// The receiver's routes: `POST /hook`.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self.clone())
    }

    /// Serves `POST /hook` on a free loopback port; returns its URL.
    pub async fn serve(&self) -> String {
        let app = self.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let address = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/hook")
    }

    /// Refuses every delivery with 503 while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Refuses the next `count` deliveries with 500.
    pub fn fail_next(&self, count: u32) {
        self.failures_left.store(count, Ordering::SeqCst);
    }

    /// Every request, in the order received.
    pub fn all(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }

    /// The requests it accepted, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.accepted).collect()
    }

    /// Waits until an accepted delivery satisfies `done`.
    pub async fn wait_for(&self, app: &TestApp, done: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
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

    /// Waits until the server has tried to deliver at least once.
    pub async fn wait_for_an_attempt(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.all().is_empty() {
            assert!(Instant::now() < deadline, "no delivery was attempted");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Checks `t=<t>,v1=<hex>` against an HMAC-SHA256 of `<t>.<body>` with
/// `secret`, computed here.
pub fn verify(secret: &str, signature: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC key");
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
