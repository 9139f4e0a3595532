//! Judging other nodes' jobs: a node silent for longer than its own timeout
//! is lost, and its live jobs can no longer be supervised by anyone.

use std::fmt;

use sea_orm::{DatabaseConnection, DbErr};
use time::OffsetDateTime;

use super::last_seen;
use crate::store::Job;

/// Why a job's node counts as lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLoss {
    /// The node sent no heartbeat for longer than its own timeout.
    Silent {
        node: String,
        silent_seconds: i64,
        timeout_seconds: u64,
    },
    /// The database has no row for the node.
    Unknown { node: String },
}

impl fmt::Display for NodeLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Silent {
                node,
                silent_seconds,
                timeout_seconds,
            } => write!(
                f,
                "node lost: node `{node}` has sent no heartbeat for {silent_seconds} s (its timeout \
                 is {timeout_seconds} s); its recorder can no longer be supervised, and what it \
                 recorded is on that node"
            ),
            Self::Unknown { node } => write!(
                f,
                "node lost: node `{node}` is unknown to this database; its recorder cannot be \
                 supervised"
            ),
        }
    }
}

/// Of other nodes' live jobs, those whose node is lost, with why.
pub async fn lost_jobs(
    db: &DatabaseConnection,
    foreign: Vec<Job>,
) -> Result<Vec<(Job, NodeLoss)>, DbErr> {
    if foreign.is_empty() {
        return Ok(Vec::new());
    }
    let seen = last_seen(db).await?;
    let now = OffsetDateTime::now_utc();
    Ok(foreign
        .into_iter()
        .filter_map(|job| {
            let node = job.node.clone().unwrap_or_default();
            let loss = match seen.get(&node) {
                Some(seen) if seen.is_alive(now) => return None,
                Some(seen) => NodeLoss::Silent {
                    node,
                    silent_seconds: seen.silence(now).whole_seconds(),
                    timeout_seconds: seen.timeout.as_secs(),
                },
                None => NodeLoss::Unknown { node },
            };
            Some((job, loss))
        })
        .collect())
}
