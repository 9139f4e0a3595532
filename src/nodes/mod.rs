//! Several recorderd nodes sharing one database, acting as one service.
//! A node's life is its lease (`lease`): a lock the database itself
//! releases when the node's process or session ends, so another node
//! learns at once that a node is gone, with no clock compared, and ends
//! its jobs (`jobs::takeover`). Nodes wake each other the moment something
//! is asked of them (`notify`): a stop of one of their jobs, a start
//! placed on them (`placement`), a recording to process. What a node
//! offers (capacity, labels, where it answers) is written in its row when
//! it takes its lease; the heartbeat it writes is for people to read,
//! never used to judge whether it lives.

pub mod lease;
pub mod notify;
pub mod placement;
pub mod storage;
mod view;

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use lease::{Guard, Lease, LeaseState, Place};
pub use notify::{Bell, Message};
pub use view::{NodeStatus, NodeView, Nodes, describe};

pub use crate::entity::node::Departure;

use crate::store;
use crate::supervisor::identity;

/// What a node offers the others, as it writes it when it takes its lease.
#[derive(Debug, Clone)]
pub struct NodeCard {
    pub id: String,
    /// Where it answers HTTP (`--advertise-url`).
    pub url: Option<String>,
    /// `--node-timeout`: how long a node whose host vanished may keep its
    /// lease, and how long one that left on purpose (detaching its
    /// recorders) gets to come back.
    pub timeout: Duration,
    pub max_jobs: u32,
    pub processing_slots: u32,
    pub labels: Vec<String>,
    pub shared_storage: bool,
    /// The token written in its storage probe (with shared storage).
    pub storage_probe: Option<String>,
}

/// Now, by this node's clock (shifted in tests by the `clock_offset`
/// fault point: nothing another node decides may depend on it).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + crate::faults::clock_offset()
}

/// How often a node with this timeout writes its heartbeat and checks its
/// lease's session.
pub fn heartbeat_interval(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(500))
}

/// This process, as no other can be: boot, PID namespace, PID and start
/// time (`<boot id>/<pid:[inode]>/<pid>/<start time>`), for people reading
/// the nodes table.
fn this_instance() -> String {
    let boot = procfs::sys::kernel::random::boot_id().unwrap_or_default();
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let pid = std::process::id() as i32;
    let start = identity::read_stat(pid).map(|s| s.start_time).unwrap_or(0);
    format!("{boot}/{namespace}/{pid}/{start}")
}

/// Records a lease just taken: one more generation, what the node offers,
/// and its held jobs moved under the new generation. A fresh start also
/// takes jobs again (drain and departure cleared) and, when it is the only
/// node the database knows, claims the jobs from before nodes existed.
pub async fn begin_generation(
    db: &DatabaseConnection,
    card: &NodeCard,
    fresh: bool,
) -> Result<i64, DbErr> {
    let generation = store::nodes::begin_lease(
        db,
        store::nodes::NodeRow {
            id: &card.id,
            instance: this_instance(),
            timeout_ms: card.timeout.as_millis() as i64,
            url: card.url.clone(),
            max_jobs: i32::try_from(card.max_jobs).unwrap_or(i32::MAX),
            processing_slots: i32::try_from(card.processing_slots).unwrap_or(i32::MAX),
            labels: card.labels.clone(),
            version: env!("CARGO_PKG_VERSION"),
            shared_storage: card.shared_storage,
            storage_probe: card.storage_probe.clone(),
            now: now(),
            fresh,
        },
    )
    .await?;
    if fresh {
        let claimed = store::nodes::claim_unassigned_jobs(db, &card.id).await?;
        if claimed > 0 {
            info!(
                jobs = claimed,
                "jobs from before nodes were recorded now belong to this node"
            );
        }
    }
    Ok(generation)
}

/// Writes this node's heartbeat every quarter of its timeout, until
/// `closed`: for people reading the nodes table (when it last wrote, how
/// busy its processing is). Nothing judges a node by it.
pub async fn beat(
    db: DatabaseConnection,
    node_id: String,
    timeout: Duration,
    processing_busy: impl Fn() -> usize + Send + 'static,
    closed: CancellationToken,
) {
    let mut beat = tokio::time::interval(heartbeat_interval(timeout));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            () = closed.cancelled() => return,
        }
        let busy = i32::try_from(processing_busy()).unwrap_or(i32::MAX);
        if let Err(e) = store::nodes::heartbeat(&db, &node_id, now(), busy).await {
            warn!(error = %e, "cannot write this node's heartbeat");
        }
    }
}
