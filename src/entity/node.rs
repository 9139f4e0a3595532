//! A recorderd node sharing the database: what others need to know of it.
//! Whether it is alive is not here: that is its lease (`nodes::lease`);
//! these columns say which lease, and what the node offers while it holds
//! it.

use sea_orm::FromJsonQueryResult;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a node last left, when it left on purpose.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// A shutdown that stopped every recorder: nothing of it is left to
    /// take over.
    #[sea_orm(string_value = "stopped")]
    Stopped,
    /// A shutdown that left its recorders running for its next start to
    /// adopt: others give it its `--node-timeout` to come back before they
    /// end its jobs.
    #[sea_orm(string_value = "detached")]
    Detached,
}

/// Labels a node offers (`gpu`, `region=eu`), stored as JSON.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    FromJsonQueryResult,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Labels(pub Vec<String>);

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Which process runs the node (`<boot id>/<pid namespace>/<pid>/<start
    /// time>`), for people reading the table.
    pub instance: String,
    /// The node's own `--node-timeout`.
    pub timeout_ms: i64,
    pub started_at: TimeDateTimeWithTimeZone,
    /// Written every heartbeat, by the node's own clock: shown, never used
    /// to judge whether the node lives.
    pub last_seen_at: TimeDateTimeWithTimeZone,
    /// Counts the node's leases: one more each time it acquires its lease.
    /// Its jobs carry the generation they run under.
    pub lease_generation: i64,
    /// When the node acquired its current lease (its own clock).
    pub lease_acquired_at: Option<TimeDateTimeWithTimeZone>,
    /// Where the node answers HTTP, for reads proxied to it.
    pub url: Option<String>,
    /// `--max-jobs`.
    pub max_jobs: i32,
    /// `--processing-concurrency`.
    pub processing_slots: i32,
    /// Processing steps running on the node at its last heartbeat.
    pub processing_busy: i32,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub labels: Option<Labels>,
    pub version: String,
    /// Started with `--shared-storage` (and its probe passed).
    pub shared_storage: bool,
    /// What the node wrote in its storage probe file.
    pub storage_probe: Option<String>,
    /// Asked to drain: no new jobs; those it runs finish.
    pub draining: bool,
    /// How it last left, if on purpose; cleared when it starts.
    pub departure: Option<Departure>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
