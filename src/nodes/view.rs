//! The nodes as the API shows them (`GET /api/nodes`): whether each lives
//! (its lease), since when, what it holds and what it offers.

use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Bell, Lease, Message};
use crate::entity::node::Departure;
use crate::store;

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Holds its lease and takes jobs.
    Alive,
    /// Holds its lease; takes no new job, finishes those it runs.
    Draining,
    /// Left with every recorder stopped.
    Stopped,
    /// Left its recorders running for its next start to adopt.
    Detached,
    /// Its lease is not held and it did not say it was leaving: it died or
    /// was cut off. Its jobs are ended by the others.
    Lost,
}

/// One node of the cluster.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    pub status: NodeStatus,
    /// When it took its current lease (by its own clock); `null` unless it
    /// holds one.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_held_since: Option<time::OffsetDateTime>,
    /// How many leases it has taken; its jobs carry the one they run under.
    pub lease_generation: i64,
    /// Jobs it holds: running, stopping, and placed on it.
    pub jobs: i64,
    /// `--max-jobs`.
    pub max_jobs: i32,
    /// `max_jobs - jobs`, never below 0.
    pub free_slots: i64,
    /// `--processing-concurrency`.
    pub processing_slots: i32,
    /// Processing steps running at its last heartbeat.
    pub processing_busy: i32,
    pub labels: Vec<String>,
    pub shared_storage: bool,
    /// Where it answers HTTP.
    pub url: Option<String>,
    /// Its recorderd version.
    pub version: String,
    /// When it started (by its own clock).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: time::OffsetDateTime,
    /// Its last heartbeat, by its own clock: for reading, never used to
    /// judge it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: time::OffsetDateTime,
}

/// Every node the database knows, as it stands now.
pub async fn describe(db: &DatabaseConnection, lease: &Lease) -> Result<Vec<NodeView>, DbErr> {
    let rows = store::nodes::all(db).await?;
    let held = store::nodes::held_jobs_by_node(db).await?;
    let ids: Vec<String> = rows
        .iter()
        .filter(|n| n.id != lease.node_id())
        .map(|n| n.id.clone())
        .collect();
    let alive = lease.alive_among(&ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let jobs = held.get(&row.id).copied().unwrap_or(0);
            let lives = alive.contains(&row.id);
            let status = match (lives, row.draining, row.departure) {
                (true, true, _) => NodeStatus::Draining,
                (true, false, _) => NodeStatus::Alive,
                (false, _, Some(Departure::Stopped)) => NodeStatus::Stopped,
                (false, _, Some(Departure::Detached)) => NodeStatus::Detached,
                (false, _, None) => NodeStatus::Lost,
            };
            NodeView {
                status,
                lease_held_since: row.lease_acquired_at.filter(|_| lives),
                lease_generation: row.lease_generation,
                jobs,
                max_jobs: row.max_jobs,
                free_slots: (i64::from(row.max_jobs) - jobs).max(0),
                processing_slots: row.processing_slots,
                processing_busy: row.processing_busy,
                labels: row.labels.map(|l| l.0).unwrap_or_default(),
                shared_storage: row.shared_storage,
                url: row.url,
                version: row.version,
                started_at: row.started_at,
                last_seen_at: row.last_seen_at,
                id: row.id,
            }
        })
        .collect())
}

/// The nodes, for the API. Cheap to clone.
#[derive(Clone)]
pub struct Nodes {
    db: DatabaseConnection,
    lease: Lease,
    bell: Bell,
}

impl Nodes {
    pub fn new(db: DatabaseConnection, lease: Lease, bell: Bell) -> Self {
        Self { db, lease, bell }
    }

    /// Every node, as it stands now.
    pub async fn list(&self) -> Result<Vec<NodeView>, DbErr> {
        describe(&self.db, &self.lease).await
    }

    /// Drains a node (`on`: it takes no new job; those it runs finish) or
    /// lets it take jobs again; the node is told at once. `None` when the
    /// node is unknown.
    pub async fn set_draining(&self, id: &str, on: bool) -> Result<Option<NodeView>, DbErr> {
        if !store::nodes::set_draining(&self.db, id, on).await? {
            return Ok(None);
        }
        self.bell.ring(id, Message::Drain).await;
        tracing::info!(node = id, draining = on, "drain changed");
        Ok(self.list().await?.into_iter().find(|n| n.id == id))
    }
}
