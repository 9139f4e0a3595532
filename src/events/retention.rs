//! What the event log keeps, and what a reader is told of what it lost.
//!
//! Each node prunes its own events (and those from before nodes were
//! recorded). It keeps the newest `keep` ids' worth and, beyond that,
//! everything a configured webhook of this node has not delivered (or given
//! up on) yet; a cursor row of a URL no longer configured holds nothing
//! back. Past `max` ids, pruning goes on regardless of webhooks: a receiver
//! that never comes back must not grow the table forever. Rows of another
//! node are left to that node, unless they are older than `max` ids: a node
//! that was retired must not leave its events behind forever either.
//!
//! Pruned events leave a trace: each pruned stretch becomes one row of kind
//! `events.gap`, at the id of its last event, naming its first and last
//! ids and how many events it replaced. Stretches end at the node's webhook
//! cursors, so a receiver whose cursor fell behind the pruning reads exactly
//! what it missed, in order, before the next surviving event; a stream
//! resumed from inside a stretch is told at most what it missed. Each prune
//! merges the gaps it reaches, so there is at most one gap row per cursor,
//! plus one.
//!
//! A delivery holds [`Held`] from checking that the event it read is still
//! as it was to saving its cursor; a prune waits for it, so a gap never
//! names an event that was delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, TransactionTrait,
};
use serde::Deserialize;
use tokio::sync::{Notify, OwnedRwLockReadGuard, RwLock};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Event, EventLog};
use crate::entity::{EventKind, event, webhook_cursor};

/// How many events the log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Events (ids) kept when no webhook is behind.
    pub keep: i32,
    /// Events (ids) kept at most, whatever webhooks have not delivered;
    /// never below `keep`.
    pub max: i32,
    /// This node's webhook URLs: their cursors hold events back.
    pub webhook_urls: Vec<String>,
}

impl Retention {
    pub const DEFAULT_MAX: i32 = 1_000_000;

    /// The highest id of this node's events to prune, when the newest id
    /// in the log is `newest` and the configured webhooks' lowest cursor is
    /// `held` (everything up to it was delivered or given up on).
    fn bound(&self, newest: i32, held: Option<i32>) -> i32 {
        let normal = newest.saturating_sub(self.keep);
        let cap = newest.saturating_sub(self.max.max(self.keep));
        held.map_or(normal, |held| held.min(normal)).max(cap)
    }
}

/// Events a reader will never get: pruned before it read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Gap {
    pub first_id: i32,
    /// Also the id of the gap itself, in the log and on the wire.
    pub last_id: i32,
    /// How many of this node's events were pruned between the two, both
    /// included.
    pub count: i64,
}

impl Gap {
    /// The gap a stored `events.gap` row names. A row that cannot be read
    /// (written by hand?) is taken to stand for itself alone.
    fn stored(row: &event::Model) -> Self {
        match serde_json::from_str::<Self>(&row.payload) {
            Ok(gap) => Self {
                last_id: row.id,
                ..gap
            },
            Err(e) => {
                warn!(error = %e, event_id = row.id, "unreadable gap in the event log");
                Self {
                    first_id: row.id,
                    last_id: row.id,
                    count: 1,
                }
            }
        }
    }

    /// What of this gap a reader that has seen everything up to `after`
    /// missed. The count is exact when `after` is before the gap (as a
    /// webhook cursor always is: stretches end at cursors); from inside
    /// it, the ids in between bound it.
    fn missed_after(self, after: i32) -> Option<Self> {
        if self.last_id <= after {
            return None;
        }
        if self.first_id > after {
            return Some(self);
        }
        Some(Self {
            first_id: after.saturating_add(1),
            last_id: self.last_id,
            count: self.count.min(i64::from(self.last_id) - i64::from(after)),
        })
    }

    fn union(self, other: Self) -> Self {
        Self {
            first_id: self.first_id.min(other.first_id),
            last_id: self.last_id.max(other.last_id),
            count: self.count + other.count,
        }
    }

    /// `{"first_id":…,"last_id":…,"count":…}`: the event's data, and what a
    /// gap row stores.
    fn to_json(self) -> String {
        format!(
            r#"{{"first_id":{},"last_id":{},"count":{}}}"#,
            self.first_id, self.last_id, self.count
        )
    }

    fn event(self) -> Event {
        Event {
            id: self.last_id,
            kind: EventKind::EventsGap,
            data: self.to_json(),
        }
    }
}

impl Event {
    /// What this event says was missed, if it is a gap.
    pub fn gap(&self) -> Option<Gap> {
        if self.kind != EventKind::EventsGap {
            return None;
        }
        serde_json::from_str(&self.data).ok()
    }
}

/// Stored rows as a reader after `after` gets them: consecutive gap rows
/// become one gap event naming what this reader missed.
pub(super) fn read(rows: Vec<event::Model>, after: i32) -> Vec<Event> {
    let mut events = Vec::with_capacity(rows.len());
    let mut gap: Option<Gap> = None;
    for row in rows {
        if row.kind == EventKind::EventsGap {
            if let Some(missed) = Gap::stored(&row).missed_after(after) {
                gap = Some(gap.map_or(missed, |gap| gap.union(missed)));
            }
            continue;
        }
        if let Some(gap) = gap.take() {
            events.push(gap.event());
        }
        events.push(Event {
            id: row.id,
            kind: row.kind,
            data: row.payload,
        });
    }
    events.extend(gap.map(Gap::event));
    events
}

/// The pruning state an event log shares with its pruning task and its
/// readers.
pub(super) struct Pruning {
    retention: Retention,
    /// Signalled by the writer every [`Pruning::interval`] events.
    pub(super) wanted: Notify,
    /// Held shared by each delivery, exclusively by each prune.
    deliveries: Arc<RwLock<()>>,
    /// The highest id of this node's events a prune has reached so far.
    through: AtomicI32,
}

impl Pruning {
    pub(super) fn new(retention: Retention) -> Self {
        Self {
            retention,
            wanted: Notify::new(),
            deliveries: Arc::new(RwLock::new(())),
            through: AtomicI32::new(i32::MIN),
        }
    }

    /// Events written between two prunes: 500, or fewer for a small log.
    pub(super) fn interval(&self) -> u32 {
        u32::try_from(self.retention.keep / 10)
            .unwrap_or(0)
            .clamp(1, 500)
    }
}

/// How far pruning had gone when events were read; see
/// [`EventLog::hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneMark(i32);

/// Keeps the log from being pruned while held.
pub struct Held {
    _guard: OwnedRwLockReadGuard<()>,
}

impl EventLog {
    /// Read before reading events, to pass to [`EventLog::hold`] later.
    pub fn prune_mark(&self) -> PruneMark {
        PruneMark(self.pruning.through.load(Ordering::SeqCst))
    }

    /// Keeps pruning off while a delivery sends event `id`, read after
    /// `mark`, and saves its cursor. `None` when a prune since may have
    /// folded the event into a gap: read again from the cursor.
    pub async fn hold(&self, id: i32, mark: PruneMark) -> Option<Held> {
        let guard = self.pruning.deliveries.clone().read_owned().await;
        let through = self.pruning.through.load(Ordering::SeqCst);
        let unchanged = through == mark.0 || through < id;
        unchanged.then_some(Held { _guard: guard })
    }

    /// The pruning task: prunes whenever the writer asks, until `closed`.
    /// A prune waits for the delivery attempts in flight (each holds the
    /// log for one request, 10 s at most); the writer waits for neither.
    pub(super) async fn prune_when_asked(self, closed: CancellationToken) {
        loop {
            tokio::select! {
                () = self.pruning.wanted.notified() => {}
                () = closed.cancelled() => return,
            }
            let exclusive = tokio::select! {
                guard = self.pruning.deliveries.clone().write_owned() => guard,
                () = closed.cancelled() => return,
            };
            if let Err(e) = self.prune().await {
                warn!(error = %e, "cannot prune the event log");
            }
            drop(exclusive);
        }
    }

    /// One prune, in one transaction: this node's events up to the bound
    /// of [`Retention`], and other nodes' beyond its cap.
    async fn prune(&self) -> Result<(), DbErr> {
        let retention = &self.pruning.retention;
        let txn = self.db.begin().await?;
        let Some(newest) = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .order_by_desc(event::Column::Id)
            .into_tuple::<i32>()
            .one(&txn)
            .await?
        else {
            return Ok(());
        };
        let cursors = cursors_of(&txn, &self.node).await?;
        let held = cursors
            .iter()
            .filter(|(url, _)| retention.webhook_urls.contains(url))
            .map(|&(_, last)| last)
            .min();
        let bound = retention.bound(newest, held);
        let ends: Vec<i32> = cursors.iter().map(|&(_, last)| last).collect();
        fold(&txn, &Owner::This(&self.node), bound, &ends).await?;

        let cap = newest.saturating_sub(retention.max.max(retention.keep));
        let others: Vec<String> = event::Entity::find()
            .select_only()
            .column(event::Column::Node)
            .distinct()
            .filter(event::Column::Id.lte(cap))
            .filter(event::Column::Node.ne(&*self.node))
            .filter(event::Column::Node.is_not_null())
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        for other in &others {
            let ends: Vec<i32> = cursors_of(&txn, other)
                .await?
                .into_iter()
                .map(|(_, last)| last)
                .collect();
            fold(&txn, &Owner::Other(other), cap, &ends).await?;
        }
        txn.commit().await?;
        self.pruning.through.fetch_max(bound, Ordering::SeqCst);
        Ok(())
    }
}

/// Whose events a prune folds.
enum Owner<'a> {
    /// This node: its events and those from before nodes were recorded.
    This(&'a str),
    Other(&'a str),
}

impl Owner<'_> {
    fn node(&self) -> &str {
        match self {
            Self::This(node) | Self::Other(node) => node,
        }
    }

    fn rows(&self) -> Condition {
        match self {
            Self::This(node) => Condition::any()
                .add(event::Column::Node.eq(*node))
                .add(event::Column::Node.is_null()),
            Self::Other(node) => Condition::all().add(event::Column::Node.eq(*node)),
        }
    }
}

/// `(url, last event id)` of each webhook cursor of `node`.
async fn cursors_of(txn: &DatabaseTransaction, node: &str) -> Result<Vec<(String, i32)>, DbErr> {
    webhook_cursor::Entity::find()
        .select_only()
        .column(webhook_cursor::Column::Url)
        .column(webhook_cursor::Column::LastEventId)
        .filter(webhook_cursor::Column::Node.eq(node))
        .into_tuple()
        .all(txn)
        .await
}

/// The ends of the stretches to fold, lowest first: each cursor below
/// `bound`, then `bound`.
fn stretch_ends(bound: i32, cursors: &[i32]) -> Vec<i32> {
    let mut ends: Vec<i32> = cursors.iter().copied().filter(|&c| c < bound).collect();
    ends.push(bound);
    ends.sort_unstable();
    ends.dedup();
    ends
}

/// Folds `owner`'s events up to `bound` into gap rows, one per stretch
/// between cursors.
async fn fold(
    txn: &DatabaseTransaction,
    owner: &Owner<'_>,
    bound: i32,
    cursors: &[i32],
) -> Result<(), DbErr> {
    let mut low = None;
    for high in stretch_ends(bound, cursors) {
        fold_stretch(txn, owner, low, high).await?;
        low = Some(high);
    }
    Ok(())
}

/// Replaces `owner`'s rows after `low` up to `high` (events and earlier
/// gaps) by one gap row, at the id of the last of them.
async fn fold_stretch(
    txn: &DatabaseTransaction,
    owner: &Owner<'_>,
    low: Option<i32>,
    high: i32,
) -> Result<(), DbErr> {
    let within = |select: Select<event::Entity>| {
        let select = select
            .filter(owner.rows())
            .filter(event::Column::Id.lte(high));
        match low {
            Some(low) => select.filter(event::Column::Id.gt(low)),
            None => select,
        }
    };
    let (count, first, last) = within(event::Entity::find())
        .select_only()
        .column_as(event::Column::Id.count(), "count")
        .column_as(event::Column::Id.min(), "first")
        .column_as(event::Column::Id.max(), "last")
        .filter(event::Column::Kind.ne(EventKind::EventsGap))
        .into_tuple::<(i64, Option<i32>, Option<i32>)>()
        .one(txn)
        .await?
        .unwrap_or((0, None, None));
    let gaps = within(event::Entity::find())
        .filter(event::Column::Kind.eq(EventKind::EventsGap))
        .all(txn)
        .await?;
    if count == 0 && gaps.len() <= 1 {
        return Ok(());
    }
    let events = first.zip(last).map(|(first_id, last_id)| Gap {
        first_id,
        last_id,
        count,
    });
    let Some(gap) = gaps
        .iter()
        .map(Gap::stored)
        .chain(events)
        .reduce(Gap::union)
    else {
        return Ok(());
    };
    event::Entity::delete_many()
        .filter(owner.rows())
        .filter(event::Column::Id.lt(gap.last_id))
        .filter(low.map_or(Condition::all(), |low| {
            Condition::all().add(event::Column::Id.gt(low))
        }))
        .exec(txn)
        .await?;
    event::Entity::update_many()
        .col_expr(event::Column::Kind, Expr::value(EventKind::EventsGap))
        .col_expr(event::Column::Payload, Expr::value(gap.to_json()))
        .col_expr(event::Column::Node, Expr::value(owner.node()))
        .filter(event::Column::Id.eq(gap.last_id))
        .exec(txn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(keep: i32, max: i32) -> Retention {
        Retention {
            keep,
            max,
            webhook_urls: Vec::new(),
        }
    }

    #[test]
    fn without_a_webhook_the_newest_keep_ids_stay() {
        assert_eq!(retention(50, 1000).bound(120, None), 70);
        assert_eq!(retention(50, 1000).bound(30, None), -20);
    }

    #[test]
    fn a_webhook_behind_holds_events_back_up_to_the_cap() {
        let r = retention(50, 1000);
        assert_eq!(r.bound(120, Some(10)), 10, "held at the cursor");
        assert_eq!(r.bound(120, Some(100)), 70, "a cursor ahead holds nothing");
        assert_eq!(r.bound(5000, Some(10)), 4000, "the cap wins");
        assert_eq!(
            retention(50, 20).bound(120, Some(10)),
            70,
            "the cap is never below keep"
        );
    }

    #[test]
    fn stretches_end_at_each_cursor_below_the_bound() {
        assert_eq!(stretch_ends(70, &[]), [70]);
        assert_eq!(stretch_ends(70, &[90, 10, 40, 10, 70]), [10, 40, 70]);
    }

    fn row(id: i32, kind: EventKind, payload: &str) -> event::Model {
        event::Model {
            id,
            kind,
            payload: payload.to_owned(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            node: None,
        }
    }

    #[test]
    fn a_reader_behind_gets_one_gap_then_the_events() {
        let rows = vec![
            row(
                10,
                EventKind::EventsGap,
                r#"{"first_id":1,"last_id":10,"count":10}"#,
            ),
            row(
                40,
                EventKind::EventsGap,
                r#"{"first_id":11,"last_id":40,"count":25}"#,
            ),
            row(41, EventKind::JobStarted, "{}"),
        ];
        let events = read(rows.clone(), 0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, 40);
        assert_eq!(events[0].kind, EventKind::EventsGap);
        assert_eq!(
            events[0].gap(),
            Some(Gap {
                first_id: 1,
                last_id: 40,
                count: 35
            })
        );
        assert_eq!(events[1].id, 41);
        assert_eq!(events[1].gap(), None);

        let from_a_cursor = read(rows[1..].to_vec(), 10);
        assert_eq!(
            from_a_cursor[0].gap(),
            Some(Gap {
                first_id: 11,
                last_id: 40,
                count: 25
            })
        );
    }

    #[test]
    fn a_reader_inside_a_gap_is_told_at_most_what_it_missed() {
        let gap = Gap {
            first_id: 1,
            last_id: 40,
            count: 40,
        };
        assert_eq!(
            gap.missed_after(30),
            Some(Gap {
                first_id: 31,
                last_id: 40,
                count: 10
            })
        );
        let sparse = Gap { count: 5, ..gap };
        assert_eq!(sparse.missed_after(30).map(|g| g.count), Some(5));
        assert_eq!(gap.missed_after(40), None);
    }

    #[test]
    fn an_unreadable_gap_row_stands_for_itself() {
        let events = read(vec![row(7, EventKind::EventsGap, "not json")], 0);
        assert_eq!(
            events[0].gap(),
            Some(Gap {
                first_id: 7,
                last_id: 7,
                count: 1
            })
        );
    }
}
