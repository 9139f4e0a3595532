//! Several recorderd nodes sharing one database (PostgreSQL). Each node
//! supervises the recorders it spawned and no others: a PID means nothing
//! on another machine. So that a node's death does not leave its jobs
//! `running` forever (the very failure recorderd exists to prevent), every
//! node writes a heartbeat to `nodes`; the reconciliation of any node ends
//! the jobs of a node silent for longer than that node's own timeout. A
//! stop request that reaches a node for another node's job marks it
//! `stopping` in the database; the owning node notices within a second and
//! begins the stop sequence. A node declared lost that is in fact alive (a
//! pause, a database outage) stops its recorders once it notices, and
//! processes what they recorded (see `jobs::peers`).

mod lost;

pub use lost::{NodeLoss, lost_jobs};

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::entity::{node, recording_job};
use crate::supervisor::identity::{self, Liveness};

/// What others know of a node.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub last_seen_at: OffsetDateTime,
    /// The node's own timeout: its silence is judged by it.
    pub timeout: Duration,
}

impl Seen {
    fn of(row: &node::Model) -> Self {
        Self {
            last_seen_at: row.last_seen_at,
            timeout: Duration::from_millis(row.timeout_ms.max(0) as u64),
        }
    }

    /// How long the node has been silent, as of `now`.
    pub fn silence(&self, now: OffsetDateTime) -> time::Duration {
        now - self.last_seen_at
    }

    /// Alive: silent no longer than its own timeout.
    pub fn is_alive(&self, now: OffsetDateTime) -> bool {
        self.silence(now) <= self.timeout
    }
}

/// The row of a node starting (or re-created) now.
fn row(node_id: &str, timeout: Duration, now: OffsetDateTime) -> node::ActiveModel {
    node::ActiveModel {
        id: Set(node_id.to_owned()),
        instance: Set(this_instance()),
        timeout_ms: Set(timeout.as_millis() as i64),
        started_at: Set(now),
        last_seen_at: Set(now),
    }
}

/// How often a node with this timeout sends its heartbeat.
pub fn heartbeat_interval(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(500))
}

/// This process, as no other can be: boot, PID namespace, PID and start
/// time (`<boot id>/<pid:[inode]>/<pid>/<start time>`).
fn this_instance() -> String {
    let boot = procfs::sys::kernel::random::boot_id().unwrap_or_default();
    // The link's text (`pid:[inode]`) is kept as the kernel writes it, so
    // rows written before and after an upgrade compare equal; procfs gives
    // the inode only, after stat-ing every namespace of the process.
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let pid = std::process::id() as i32;
    let start = identity::read_stat(pid).map(|s| s.start_time).unwrap_or(0);
    format!("{boot}/{namespace}/{pid}/{start}")
}

/// Whether the instance that wrote a node row still runs. In this boot and
/// PID namespace its process is checked; elsewhere (another machine,
/// another container) its heartbeat is watched for one interval.
async fn instance_alive(
    db: &DatabaseConnection,
    node_id: &str,
    row: &node::Model,
) -> Result<bool, DbErr> {
    let mine = this_instance();
    let mut my_parts = mine.splitn(4, '/');
    let (my_boot, my_namespace) = (my_parts.next(), my_parts.next());
    let mut parts = row.instance.splitn(4, '/');
    let (boot, namespace, pid, start) = (parts.next(), parts.next(), parts.next(), parts.next());
    let here = boot == my_boot
        && namespace == my_namespace
        && my_boot.is_some_and(|b| !b.is_empty())
        && my_namespace.is_some_and(|n| !n.is_empty());
    if here {
        let pid = pid.and_then(|p| p.parse().ok());
        let start = start.and_then(|s| s.parse().ok());
        return Ok(identity::check(pid, start) == Liveness::Alive);
    }
    let interval = heartbeat_interval(Duration::from_millis(row.timeout_ms.max(0) as u64));
    tokio::time::sleep(interval + Duration::from_secs(1)).await;
    let now = node::Entity::find_by_id(node_id.to_owned()).one(db).await?;
    Ok(now.is_some_and(|n| n.last_seen_at != row.last_seen_at))
}

/// Records that `node_id` runs (again), now. Refuses to start when another
/// live server already runs under the same id: two supervisors would then
/// both claim the same recorders. Claims the jobs from before nodes were
/// recorded when this is the only node the database knows.
pub async fn announce(
    db: &DatabaseConnection,
    node_id: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let existing = node::Entity::find().all(db).await?;
    let now = OffsetDateTime::now_utc();
    let instance = this_instance();
    if let Some(row) = existing.iter().find(|n| n.id == node_id)
        && Seen::of(row).is_alive(now)
        && row.instance != instance
        && instance_alive(db, node_id, row).await?
    {
        bail!(
            "another recorderd runs with node id `{node_id}` on this database (instance {}); \
             give each server its own --node-id",
            row.instance
        );
    }
    node::Entity::insert(row(node_id, timeout, now))
        .on_conflict(
            OnConflict::column(node::Column::Id)
                .update_columns([
                    node::Column::Instance,
                    node::Column::TimeoutMs,
                    node::Column::StartedAt,
                    node::Column::LastSeenAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .context("recording this node")?;
    if existing.iter().all(|n| n.id == node_id) {
        let claimed = claim_unnamed_query(node_id).exec(db).await?;
        if claimed.rows_affected > 0 {
            info!(
                jobs = claimed.rows_affected,
                "jobs from before nodes were recorded now belong to this node"
            );
        }
    }
    Ok(())
}

/// Jobs from before nodes were recorded (`node IS NULL`) given to
/// `node_id`: run at every start, so an index keeps it from reading every
/// job (checked against the query plan in the integration tests).
pub fn claim_unnamed_query(node_id: &str) -> sea_orm::UpdateMany<recording_job::Entity> {
    recording_job::Entity::update_many()
        .col_expr(recording_job::Column::Node, Expr::value(node_id))
        .filter(recording_job::Column::Node.is_null())
}

/// Writes the heartbeat; re-creates the row if it went missing, so a live
/// node never looks unknown.
async fn heartbeat(db: &DatabaseConnection, node_id: &str, timeout: Duration) -> Result<(), DbErr> {
    let now = OffsetDateTime::now_utc();
    let updated = node::Entity::update_many()
        .col_expr(node::Column::LastSeenAt, Expr::value(now))
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        node::Entity::insert(row(node_id, timeout, now))
            .on_conflict(
                OnConflict::column(node::Column::Id)
                    .update_column(node::Column::LastSeenAt)
                    .to_owned(),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

/// When each node was last heard of, and its timeout.
pub async fn last_seen(db: &DatabaseConnection) -> Result<HashMap<String, Seen>, DbErr> {
    Ok(node::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|n| (n.id.clone(), Seen::of(&n)))
        .collect())
}

/// Sends this node's heartbeat every quarter of its timeout, from right
/// after [`announce`] until `closed` (after the shutdown has dealt with
/// every recorder: a node busy recovering or stopping is not lost).
pub async fn beat(
    db: DatabaseConnection,
    node_id: String,
    timeout: Duration,
    closed: CancellationToken,
) {
    let mut beat = tokio::time::interval(heartbeat_interval(timeout));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            () = closed.cancelled() => return,
        }
        if let Err(e) = heartbeat(&db, &node_id, timeout).await {
            warn!(error = %e, "cannot write this node's heartbeat");
        }
    }
}
