//! Several recorderd nodes sharing one database (PostgreSQL). Each node
//! supervises the recorders it spawned and no others: a PID means nothing
//! on another machine. So that a node's death does not leave its jobs
//! `running` forever (the very failure recorderd exists to prevent), every
//! node writes a heartbeat to `nodes`; the reconciliation of any node ends
//! the jobs of a node silent for longer than the node timeout. A stop
//! request that reaches a node for another node's job marks it `stopping`
//! in the database; the owning node notices within a second and begins the
//! stop sequence.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::entity::node;
use crate::jobs::JobService;

/// How the `error` of a job ended because its node went silent begins.
pub const NODE_LOST: &str = "node lost: ";

/// How often a node looks for stops requested through other nodes.
const STOP_WATCH_EVERY: Duration = Duration::from_secs(1);

/// Records that `node_id` runs (again), now.
pub async fn announce(db: &DatabaseConnection, node_id: &str) -> Result<(), DbErr> {
    let now = OffsetDateTime::now_utc();
    node::Entity::insert(node::ActiveModel {
        id: Set(node_id.to_owned()),
        started_at: Set(now),
        last_seen_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(node::Column::Id)
            .update_columns([node::Column::StartedAt, node::Column::LastSeenAt])
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

async fn heartbeat(db: &DatabaseConnection, node_id: &str) -> Result<(), DbErr> {
    node::Entity::update_many()
        .col_expr(
            node::Column::LastSeenAt,
            sea_orm::sea_query::Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(node::Column::Id.eq(node_id))
        .exec(db)
        .await?;
    Ok(())
}

/// When each node was last heard of.
pub async fn last_seen(db: &DatabaseConnection) -> Result<HashMap<String, OffsetDateTime>, DbErr> {
    Ok(node::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|n| (n.id, n.last_seen_at))
        .collect())
}

/// Sends this node's heartbeat every quarter of the node timeout and
/// carries out stops requested through other nodes, until `closed` (after
/// the shutdown has dealt with every recorder: a node busy stopping its
/// recorders is not lost).
pub async fn run(
    jobs: JobService,
    db: DatabaseConnection,
    node_id: String,
    node_timeout: Duration,
    closed: CancellationToken,
) {
    let beat_every = (node_timeout / 4).max(Duration::from_millis(500));
    let mut beat = tokio::time::interval(beat_every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = tokio::time::interval(STOP_WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forwarded = HashSet::new();
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if let Err(e) = heartbeat(&db, &node_id).await {
                    warn!(error = %e, "cannot write this node's heartbeat");
                }
                continue;
            }
            _ = watch.tick() => {}
            () = closed.cancelled() => return,
        }
        if let Err(e) = jobs.carry_out_remote_stops(&mut forwarded).await {
            warn!(error = %e, "cannot look for stops requested through other nodes");
        }
    }
}
