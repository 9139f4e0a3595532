//! The event log: every job and recording transition, in the order it was
//! committed, persisted (bounded) and broadcast to live subscribers.
//!
//! Transitions are published right after their commit; one writer task
//! stores them, which gives ids that increase in publication order, then
//! broadcasts them. A client that reconnects with `Last-Event-ID` is sent
//! what it missed from the table, then the live events after it. An event
//! can only be lost if the process dies between a commit and the write of
//! its event.
//!
//! With several nodes on one database, each event names its node, and each
//! node serves and delivers only its own: one writer per node means a
//! node's ids become visible in order, which a reader mixing nodes could
//! not rely on (a later id of one node can commit before an earlier id of
//! another).
//!
//! What the table keeps, and how a reader learns of events pruned before
//! it read them, is [`retention`]'s.

mod retention;

pub use retention::{Gap, Held, PruneMark, Retention};

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::backoff;
use crate::entity::{EventKind, event};
use crate::metrics::Metrics;

/// Events kept in memory for slow live subscribers before they must catch
/// up from the table.
const BROADCAST_CAPACITY: usize = 1024;

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i32,
    pub kind: EventKind,
    /// JSON text of the object.
    pub data: String,
}

/// Publishes and serves events. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    db: DatabaseConnection,
    node: Arc<str>,
    /// Cancelled when the writer has stored its last event (shutdown).
    flushed: CancellationToken,
    metrics: Arc<Metrics>,
    publish: mpsc::UnboundedSender<(EventKind, String)>,
    live: broadcast::Sender<Event>,
    pruning: Arc<retention::Pruning>,
}

impl EventLog {
    /// Starts the writer task, and the task that prunes what `retention`
    /// no longer keeps.
    pub fn start(
        db: DatabaseConnection,
        node: String,
        retention: Retention,
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
        closed: CancellationToken,
    ) -> Self {
        let (publish, queue) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        let log = Self {
            db,
            node: Arc::from(node),
            flushed: CancellationToken::new(),
            metrics,
            publish,
            live,
            pruning: Arc::new(retention::Pruning::new(retention)),
        };
        tracker.spawn(log.clone().write(queue, closed.clone()));
        tracker.spawn(log.clone().prune_when_asked(closed));
        log
    }

    /// Records a transition: `object` is the job or recording after it.
    pub fn publish(&self, kind: EventKind, object: &impl Serialize) {
        self.metrics.transition(kind.as_str());
        match serde_json::to_string(object) {
            Ok(data) => {
                let _ = self.publish.send((kind, data));
            }
            Err(e) => warn!(error = %e, kind = kind.as_str(), "event not serializable"),
        }
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// The newest stored event's id (0 when there is none).
    pub async fn latest_id(&self) -> Result<i32, DbErr> {
        Ok(event::Entity::find()
            .filter(self.mine())
            .order_by_desc(event::Column::Id)
            .one(&self.db)
            .await?
            .map_or(0, |e| e.id))
    }

    /// This node's events (and those from before nodes were recorded).
    fn mine(&self) -> sea_orm::Condition {
        sea_orm::Condition::any()
            .add(event::Column::Node.eq(&*self.node))
            .add(event::Column::Node.is_null())
    }

    /// Cancelled once every event published before the log closed is
    /// stored.
    pub fn flushed(&self) -> CancellationToken {
        self.flushed.clone()
    }

    /// The node whose events these are.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stored events after `after`, oldest first, at most `limit` rows.
    /// Events pruned before this reader got them come first, as one
    /// [`EventKind::EventsGap`] event naming what of them `after` had not
    /// seen.
    pub async fn since(&self, after: i32, limit: u64) -> Result<Vec<Event>, DbErr> {
        let rows = event::Entity::find()
            .filter(event::Column::Id.gt(after))
            .filter(self.mine())
            .order_by_asc(event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(retention::read(rows, after))
    }

    /// The writer: stores what was published, in order, in batches, then
    /// broadcasts it. Ends once `closed` is cancelled and the queue is empty.
    async fn write(
        self,
        mut queue: mpsc::UnboundedReceiver<(EventKind, String)>,
        closed: CancellationToken,
    ) {
        let prune_every = self.pruning.interval();
        let mut written: u32 = 0;
        loop {
            let first = tokio::select! {
                biased;
                item = queue.recv() => item,
                () = closed.cancelled() => queue.try_recv().ok(),
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < 500 {
                match queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            // Retried until stored; at shutdown, once more and then given up.
            let stored = (|| self.store(&batch))
                .retry(backoff::doubling(
                    Duration::from_millis(50),
                    Duration::from_secs(5),
                ))
                .sleep(tokio::time::sleep)
                .when(|_| !closed.is_cancelled())
                .notify(|e, _| warn!(error = %e, "cannot store events; retrying"))
                .await
                .unwrap_or_else(|e| {
                    warn!(error = %e, events = batch.len(), "events lost at shutdown");
                    Vec::new()
                });
            for event in stored {
                let _ = self.live.send(event);
            }
            written += batch.len() as u32;
            if written >= prune_every {
                written = 0;
                // In its own task: pruning may wait for a webhook delivery
                // in flight, which must not hold up the log.
                self.pruning.wanted.notify_one();
            }
        }
        self.flushed.cancel();
    }

    /// Stores a batch with one multi-row INSERT … RETURNING per chunk. Ids
    /// are assigned row by row in VALUES order, so the ids that come back,
    /// sorted, are those of the chunk's events in order of publication.
    /// Only the ids come back: the rest of each row is what was sent, and
    /// reading thousands of payloads back (a start-up ending many jobs)
    /// kept the one connection from the statements start-up waits on.
    async fn store(&self, batch: &[(EventKind, String)]) -> Result<Vec<Event>, DbErr> {
        let now = OffsetDateTime::now_utc();
        let txn = self.db.begin().await?;
        let mut stored = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(200) {
            let rows = chunk.iter().map(|(kind, data)| event::ActiveModel {
                kind: Set(*kind),
                payload: Set(data.clone()),
                created_at: Set(now),
                node: Set(Some(self.node.to_string())),
                ..Default::default()
            });
            let mut ids = event::Entity::insert_many(rows)
                .exec_with_returning_keys(&txn)
                .await?;
            if ids.len() != chunk.len() {
                return Err(DbErr::Custom(format!(
                    "{} events stored, {} ids returned",
                    chunk.len(),
                    ids.len()
                )));
            }
            ids.sort_unstable();
            stored.extend(ids.into_iter().zip(chunk).map(|(id, (kind, data))| Event {
                id,
                kind: *kind,
                data: data.clone(),
            }));
        }
        txn.commit().await?;
        Ok(stored)
    }
}
