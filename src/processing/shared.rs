//! Processing shared by every node, when they share storage: a recording
//! waiting in `processing` is claimed by a node with a free slot (the
//! recording's `processing_node`, set by a compare-and-set, `FOR UPDATE
//! SKIP LOCKED` on PostgreSQL) and run there. A node wakes the others when
//! a recording starts waiting; each claims again whenever one of its
//! pipelines ends. A node whose lease is gone has its claims released by
//! the node that takes it over, and another node runs them again (steps
//! are at-least-once). A node that finds its claim gone stops before its
//! next step.

use std::sync::Arc;

use sea_orm::DbErr;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::Processing;
use crate::nodes::{Bell, Lease, Message};
use crate::store;

/// What shared processing needs.
#[derive(Clone)]
pub(super) struct Sharing {
    node_id: String,
    lease: Lease,
    bell: Bell,
    /// One claiming round at a time in this process.
    claiming: Arc<Mutex<()>>,
}

impl Processing {
    /// Shares processing with every node holding the same storage.
    pub fn with_shared_storage(mut self, node_id: String, lease: Lease, bell: Bell) -> Self {
        self.sharing = Some(Sharing {
            node_id,
            lease,
            bell,
            claiming: Arc::new(Mutex::new(())),
        });
        self
    }

    /// A recording waits: claimed here if a slot is free, and every node
    /// is told.
    pub(super) fn offer(&self) {
        let Some(sharing) = self.sharing.clone() else {
            return;
        };
        let this = self.clone();
        self.tracker.spawn(async move {
            this.claim_shared().await;
            sharing.bell.ring_all(Message::Processing).await;
        });
    }

    /// Claims waiting recordings while this node has free slots and holds
    /// its lease, and runs them.
    pub async fn claim_shared(&self) {
        let Some(sharing) = &self.sharing else {
            return;
        };
        let _one_round = sharing.claiming.lock().await;
        while self.running() < self.slots
            && !self.shutdown.is_cancelled()
            && sharing.lease.state().held().is_some()
        {
            match store::recordings::claim_for_processing(&self.db, &sharing.node_id).await {
                Ok(Some(recording_id)) => {
                    info!(recording_id, "claimed a recording to process");
                    self.launch_here(recording_id);
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "cannot claim recordings to process");
                    break;
                }
            }
        }
    }

    /// At start and on the sweep: this node's claims left unfinished, then
    /// whatever waits.
    pub(super) async fn resume_shared(&self, node: &str) -> Result<usize, DbErr> {
        let mine = store::recordings::claimed_by(&self.db, node).await?;
        for &recording_id in &mine {
            if !self.is_running(recording_id) {
                info!(recording_id, "resuming processing");
                self.launch_here(recording_id);
            }
        }
        self.claim_shared().await;
        Ok(mine.len())
    }

    /// Whether this node may go on with the recording's pipeline: always
    /// without shared storage; with it, while the claim is still its own.
    pub(super) async fn still_claimed(&self, recording_id: i32) -> Result<bool, DbErr> {
        let Some(sharing) = &self.sharing else {
            return Ok(true);
        };
        let node = store::recordings::processing_node(&self.db, recording_id).await?;
        Ok(node.as_deref() == Some(sharing.node_id.as_str()))
    }
}
