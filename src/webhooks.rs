//! Webhooks: every event of this node's log POSTed to each configured URL,
//! in order, at least once. Each URL has its own delivery task and a cursor
//! in the database (the last event delivered or given up on, per node and
//! URL), so a restart, even after a crash, resumes where delivery stopped;
//! an event may then be sent twice, never skipped. Receivers deduplicate by
//! `X-Recorderd-Event-Id`. With several nodes, each delivers its own
//! events.
//!
//! A failed delivery (no answer in 10 s, or a status other than 2xx) is
//! retried with doubling backoff; after `max_attempts` the event is given
//! up on, logged and counted, so one bad event cannot stall the stream.
//!
//! Events pruned from the log before a URL got them (a receiver down for
//! longer than `--event-retention-max` events) are not skipped in silence:
//! that URL is sent one `events.gap` event in their place, naming the first
//! and last missing ids and how many, signed and in order like the others.
//!
//! With a secret, each body is signed: `X-Recorderd-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The timestamp
//! is signed too, so a receiver can refuse replays of old deliveries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use backon::BackoffBuilder;
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::backoff;
use crate::entity::webhook_cursor;
use crate::events::{Event, EventLog, PruneMark};
use crate::metrics::{DeliveryOutcome, Metrics};

/// Events read from the log at once.
const PAGE: u64 = 100;
/// How long one delivery may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubles each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// After the event log closes (shutdown), how long the remaining events
/// get: one attempt each. What is left is delivered at the next start.
const DRAIN_BUDGET: Duration = Duration::from_secs(5);

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secret: Option<String>,
    pub max_attempts: u32,
    /// Certificate authorities trusted for `https://` receivers beside the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

impl WebhookSettings {
    /// Checks the URLs (and the CA file) now rather than at the first
    /// event. Messages show a URL's origin only: receivers often take
    /// their secret in the path.
    pub fn validate(&self) -> anyhow::Result<()> {
        for url in &self.urls {
            let shown = crate::redact::endpoint(url);
            let parsed: reqwest::Url = url
                .parse()
                .with_context(|| format!("webhook URL `{shown}` is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("webhook URL `{shown}`: only http:// and https:// are supported");
            }
            if url.len() > 2048 {
                bail!("webhook URL `{shown}` is longer than 2048 bytes");
            }
        }
        if self.max_attempts == 0 {
            bail!("--webhook-max-attempts must be at least 1");
        }
        self.trusted_roots()?;
        Ok(())
    }

    /// The certificates of `ca_file`, if one is set.
    fn trusted_roots(&self) -> anyhow::Result<Vec<reqwest::Certificate>> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path)
            .with_context(|| format!("reading webhook CA file {}", path.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: not PEM certificates", path.display()))?;
        if roots.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        Ok(roots)
    }

    /// The client every delivery goes through: no redirects followed (a
    /// receiver's redirect must not send events elsewhere), HTTPS through
    /// rustls, verified against the system's roots and `ca_file`.
    fn client(&self) -> anyhow::Result<reqwest::Client> {
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("recorderd/", env!("CARGO_PKG_VERSION")));
        let roots = self.trusted_roots()?;
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        builder.build().context("building the webhook HTTP client")
    }
}

/// Starts one delivery task per URL, each from its stored cursor (read
/// here, before any transition of this run can be published). They end
/// once `closed` is cancelled (after the last transition of a shutdown is
/// in the log) and what remains was offered once.
pub async fn start(
    settings: &WebhookSettings,
    db: DatabaseConnection,
    events: EventLog,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    closed: CancellationToken,
) -> anyhow::Result<()> {
    if settings.urls.is_empty() {
        return Ok(());
    }
    let mut urls = settings.urls.clone();
    urls.sort();
    urls.dedup();
    let client = settings.client()?;
    for url in &urls {
        let mut delivery = Delivery {
            url: url.clone(),
            secret: settings.secret.clone(),
            max_attempts: settings.max_attempts,
            client: client.clone(),
            db: db.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            closed: closed.clone(),
            cursor: 0,
        };
        delivery.cursor = delivery.load_cursor().await.with_context(|| {
            format!(
                "reading the delivery cursor of webhook {}",
                crate::redact::endpoint(url)
            )
        })?;
        let span = info_span!("webhook", url = %crate::redact::endpoint(url));
        tracker.spawn(delivery.run().instrument(span));
    }
    info!(urls = urls.len(), "webhook delivery started");
    Ok(())
}

struct Delivery {
    url: String,
    secret: Option<String>,
    max_attempts: u32,
    client: reqwest::Client,
    db: DatabaseConnection,
    events: EventLog,
    metrics: Arc<Metrics>,
    closed: CancellationToken,
    /// The last event delivered or given up on.
    cursor: i32,
}

/// How an event's delivery ended.
enum Outcome {
    Delivered,
    GivenUp,
    /// Shutdown came first: the event stays for the next start.
    Deferred,
    /// The log was pruned since the event was read, maybe past it: read
    /// again from the cursor (a gap may now stand there).
    Pruned,
}

impl Delivery {
    async fn run(self) {
        let mut live = self.events.subscribe();
        let mut cursor = self.cursor;
        let mut drain_deadline = None;
        loop {
            if self.closed.is_cancelled() && drain_deadline.is_none() {
                let deadline = tokio::time::Instant::now() + DRAIN_BUDGET;
                drain_deadline = Some(deadline);
                // The last transitions may still be on their way into the
                // log: the drain covers them.
                let _ = tokio::time::timeout_at(deadline, self.events.flushed().cancelled()).await;
            }
            let mark = self.events.prune_mark();
            let page = match self.events.since(cursor, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "cannot read the event log");
                    if drain_deadline.is_some() || self.pause(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if page.is_empty() {
                if drain_deadline.is_some() {
                    return;
                }
                // Woken by a new event, by shutdown, or after a while in
                // case a wake-up was lagged away.
                tokio::select! {
                    _ = live.recv() => {}
                    () = self.closed.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            for event in page {
                let draining = drain_deadline.is_some_and(|d| tokio::time::Instant::now() < d);
                if drain_deadline.is_some() && !draining {
                    return;
                }
                match self.deliver(&event, mark, drain_deadline).await {
                    Outcome::Delivered | Outcome::GivenUp => cursor = event.id,
                    Outcome::Pruned => break,
                    Outcome::Deferred => return,
                }
            }
        }
    }

    /// The stored cursor; for a new URL, the newest event (a new receiver
    /// gets what happens from now on, not the whole history).
    async fn load_cursor(&self) -> Result<i32, DbErr> {
        let key = (self.events.node().to_owned(), self.url.clone());
        if let Some(row) = webhook_cursor::Entity::find_by_id(key)
            .one(&self.db)
            .await?
        {
            return Ok(row.last_event_id);
        }
        let latest = self.events.latest_id().await?;
        self.save_cursor(latest).await?;
        Ok(latest)
    }

    async fn save_cursor(&self, last_event_id: i32) -> Result<(), DbErr> {
        let row = webhook_cursor::ActiveModel {
            node: Set(self.events.node().to_owned()),
            url: Set(self.url.clone()),
            last_event_id: Set(last_event_id),
            updated_at: Set(OffsetDateTime::now_utc()),
        };
        webhook_cursor::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([webhook_cursor::Column::Node, webhook_cursor::Column::Url])
                    .update_columns([
                        webhook_cursor::Column::LastEventId,
                        webhook_cursor::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records that delivery of `event` is over (delivered or given up
    /// on), while the caller still holds the log unpruned.
    async fn passed(&self, event: &Event) {
        if let Some(gap) = event.gap() {
            self.metrics.webhook_events_missed(gap.count);
        }
        if let Err(e) = self.save_cursor(event.id).await {
            warn!(error = %e, event_id = event.id, "cannot save the webhook cursor; the event may be sent again");
        }
    }

    /// POSTs one event (read after `mark`) until it is accepted, given up
    /// on, or shutdown intervenes. While draining (until
    /// `drain_deadline`), one attempt only, cut short at the deadline.
    /// Each attempt holds the log unpruned until the cursor is saved, so
    /// a gap never names what was delivered.
    async fn deliver(
        &self,
        event: &Event,
        mark: PruneMark,
        drain_deadline: Option<tokio::time::Instant>,
    ) -> Outcome {
        let body = body(event);
        let mut delays = backoff::doubling(FIRST_BACKOFF, MAX_BACKOFF).build();
        let draining = drain_deadline.is_some();
        let attempts = if draining { 1 } else { self.max_attempts };
        for attempt in 1..=attempts {
            let timeout = match drain_deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(REQUEST_TIMEOUT),
                None => REQUEST_TIMEOUT,
            };
            let Some(held) = self.events.hold(event.id, mark).await else {
                return Outcome::Pruned;
            };
            let failure = match self.post(event, &body, attempt, timeout).await {
                Ok(()) => {
                    self.metrics.webhook_delivery(DeliveryOutcome::Delivered);
                    self.passed(event).await;
                    return Outcome::Delivered;
                }
                Err(failure) => failure,
            };
            if attempt == attempts {
                if draining {
                    return Outcome::Deferred;
                }
                self.metrics.webhook_delivery(DeliveryOutcome::GivenUp);
                warn!(event_id = event.id, kind = event.kind.as_str(), attempts, error = %failure, "webhook delivery given up");
                self.passed(event).await;
                return Outcome::GivenUp;
            }
            drop(held);
            self.metrics.webhook_delivery(DeliveryOutcome::Retried);
            let delay = delays.next().unwrap_or(MAX_BACKOFF);
            warn!(event_id = event.id, attempt, retry_in = ?delay, error = %failure, "webhook delivery failed; retrying");
            if self.pause(delay).await {
                return Outcome::Deferred;
            }
        }
        Outcome::Deferred
    }

    async fn post(
        &self,
        event: &Event,
        body: &str,
        attempt: u32,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Recorderd-Event", event.kind.as_str())
            .header("X-Recorderd-Event-Id", event.id.to_string())
            .header("X-Recorderd-Delivery-Attempt", attempt.to_string());
        if let Some(secret) = &self.secret {
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            request = request.header(
                "X-Recorderd-Signature",
                signature(secret.as_bytes(), timestamp, body.as_bytes()),
            );
        }
        let response = request
            .body(body.to_owned())
            .send()
            .await
            .map_err(describe)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status()))
        }
    }

    /// Sleeps; true if the log closed meanwhile (shutdown).
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = self.closed.cancelled() => true,
        }
    }
}

/// A failed request and its causes (a refused connection, an untrusted
/// certificate), without the URL: its path may hold the receiver's secret.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// `{"id": …, "event": "job.started", "data": {…}}`: the same object as
/// the event stream's `data:`.
fn body(event: &Event) -> String {
    let kind = serde_json::Value::String(event.kind.as_str().to_owned());
    format!(
        r#"{{"id":{},"event":{kind},"data":{}}}"#,
        event.id, event.data
    )
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    type HmacSha256 = Hmac<Sha256>;
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// Checked against an independent implementation:
    /// `printf '0.what do ya want for nothing?' | openssl dgst -sha256 -hmac Jefe`.
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }
}
