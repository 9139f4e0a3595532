//! The jobs of nodes whose lease is gone. Several times a second a node
//! holding its own lease asks which other nodes hold work (jobs, or
//! recordings they process) and whether their leases are held. A lease
//! seen free for [`TAKEOVER_GRACE`] (a node that left its recorders
//! running on purpose gets its `--node-timeout`) is taken over: its jobs
//! end `failed` with `end_cause: node_lost`, in one transaction that first
//! takes the lost node's own lock, so the node cannot come back half-way
//! and its jobs end exactly once whichever nodes try. Its processing
//! claims are released for others. Nothing here compares clocks: the
//! grace is measured on this node's monotonic clock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::JobService;
use super::status::Ending;
use crate::db;
use crate::entity::node::Departure;
use crate::nodes::lease::TAKEOVER_GRACE;
use crate::nodes::{Guard, Message};
use crate::store::jobs::Fence;
use crate::store::{self, Job, Recording};

/// How often the leases of nodes holding work are looked at.
const LEASE_CHECK_EVERY: Duration = Duration::from_millis(200);

impl JobService {
    /// Watches other nodes' leases until `closed`, taking over those that
    /// are gone (only while this node holds its own: a node cut off from
    /// the database judges nobody).
    pub async fn watch_leases(self, closed: CancellationToken) {
        let mut ticks = tokio::time::interval(LEASE_CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut states = self.inner.lease.subscribe();
        let mut free_since: HashMap<String, Instant> = HashMap::new();
        let mut quiet = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // What was seen before this node's own lease changed
                    // is no evidence now.
                    free_since.clear();
                    quiet = None;
                    continue;
                }
                () = closed.cancelled() => return,
            }
            if self.inner.lease.state().held().is_none() {
                free_since.clear();
                continue;
            }
            match self.check_leases(&mut free_since, &mut quiet).await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    warn!(error = %e, "cannot look at other nodes' leases");
                    failing = true;
                }
                Err(e) => debug!(error = %e, "cannot look at other nodes' leases"),
            }
        }
    }

    /// One look: nodes with work whose lease is free long enough are
    /// taken over. `quiet` is where the commits stood (SQLite) when a look
    /// found no other node with work: only a commit can give another node
    /// work, so while nothing was committed since there is nothing to look
    /// at (a node with 1,000 recorders and no peer otherwise asks five
    /// times a second). A node that holds work is looked at on every tick:
    /// its lease can go without any commit.
    async fn check_leases(
        &self,
        free_since: &mut HashMap<String, Instant>,
        quiet: &mut Option<db::Commits>,
    ) -> Result<(), DbErr> {
        // Asked before the nodes: a commit in between is seen next time.
        let commits = match &self.inner.watching {
            Some(watching) => watching.commits().await.ok(),
            None => None,
        };
        if commits.is_some() && commits == *quiet {
            return Ok(());
        }
        let me = &self.inner.settings.node_id;
        let nodes = store::nodes::nodes_with_work(&self.inner.db, me).await?;
        if nodes.is_empty() {
            free_since.clear();
            *quiet = commits;
            return Ok(());
        }
        *quiet = None;
        let free = self.inner.lease.free_among(&nodes).await?;
        let free_ids: HashSet<&str> = free.iter().map(|(n, _)| n.as_str()).collect();
        free_since.retain(|node, _| free_ids.contains(node.as_str()));
        for (node, guard) in free {
            let first_seen = *free_since.entry(node.clone()).or_insert_with(Instant::now);
            if first_seen.elapsed() < self.grace_for(&node).await? {
                // A lock file taken to look is let go here.
                continue;
            }
            self.take_over(&node, guard).await?;
            free_since.remove(&node);
        }
        Ok(())
    }

    /// How long `node`'s lease may be free before its jobs are ended.
    async fn grace_for(&self, node: &str) -> Result<Duration, DbErr> {
        let row = store::nodes::find(&self.inner.db, node).await?;
        Ok(match row {
            Some(row) if row.departure == Some(Departure::Detached) => {
                Duration::from_millis(row.timeout_ms.max(0) as u64).max(TAKEOVER_GRACE)
            }
            _ => TAKEOVER_GRACE,
        })
    }

    /// Ends the jobs of `node`, whose lease is gone, and releases what it
    /// was processing; `guard` keeps the node from taking its lease back
    /// meanwhile. Returns how many jobs this node ended.
    pub(super) async fn take_over(&self, node: &str, guard: Guard) -> Result<usize, DbErr> {
        let began = Instant::now();
        let db = &self.inner.db;
        let jobs = store::jobs::held_jobs_of_node(db, node).await?;
        let lock = guard.advisory_key();
        let mut ended = 0;
        if !jobs.is_empty() {
            let reason = lost_reason(node);
            let items = with_recordings(db, jobs, &reason).await?;
            let fence = Fence::Takeover {
                node: node.to_owned(),
                lock,
            };
            ended = self.end_many(items, fence).await?.len();
        }
        let released = store::recordings::release_processing(db, node, lock).await?;
        drop(guard);
        if ended > 0 || released > 0 {
            warn!(
                node,
                jobs = ended,
                processing = released,
                elapsed_ms = began.elapsed().as_millis() as u64,
                "took over a node whose lease is gone"
            );
            self.inner.metrics.transition("node.lost");
        }
        if released > 0 {
            self.inner.bell.ring_all(Message::Processing).await;
        }
        Ok(ended)
    }
}

/// What a job of a lost node says in `error`.
fn lost_reason(node: &str) -> String {
    format!(
        "node lost: node `{node}` no longer holds its lease (its process ended, its host \
         vanished or its connection to the database was cut); its recorder can no longer be \
         supervised, and what it recorded is on that node"
    )
}

/// Each job with its recording and a lost node's ending.
async fn with_recordings(
    db: &sea_orm::DatabaseConnection,
    jobs: Vec<Job>,
    reason: &str,
) -> Result<Vec<(Job, Recording, Ending)>, DbErr> {
    let ids: Vec<i32> = jobs.iter().map(|j| j.recording_id).collect();
    let recordings: HashMap<i32, Recording> = store::recordings::recordings_by_ids(db, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    Ok(jobs
        .into_iter()
        .filter_map(|job| {
            let recording = recordings.get(&job.recording_id)?.clone();
            Some((job, recording, Ending::NodeLost(reason.to_owned())))
        })
        .collect())
}
