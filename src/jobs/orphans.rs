//! No recorder of this node is ever left unowned. A supervisor that died
//! between spawning a recorder and storing its identity left a process that
//! nothing in the database points to; one whose job was ended or deleted
//! elsewhere left a recorder nobody will stop. At start-up, before
//! anything is reconciled or processed, every process carrying this node's
//! markers is found in `/proc`: a live job's recorder gets its identity
//! stored (and is then adopted like any other), any other is stopped with
//! its profile's stop sequence, and start-up waits for it to end, so that
//! no pipeline runs on a file whose recorder still writes.

use futures::future::join_all;
use tracing::{info, warn};

use super::{JobError, JobService};
use crate::store;
use crate::supervisor::identity::{self, Marked};
use crate::supervisor::{ForeignProcess, StopPlan};

impl JobService {
    /// Takes charge of every recorder this node spawned that the database
    /// does not know by its identity; returns how many were found.
    pub async fn take_charge_of_marked_recorders(&self) -> Result<usize, JobError> {
        let marker = self.inner.settings.recorder_marker.clone();
        let marked = tokio::task::spawn_blocking(move || identity::find_marked(&marker))
            .await
            .map_err(|e| JobError::Database(sea_orm::DbErr::Custom(e.to_string())))?
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot list processes to find this node's recorders");
                Vec::new()
            });
        let mut stopping = Vec::new();
        let mut found = 0;
        for recorder in marked {
            if self.inner.supervisor.owns(recorder.job_id) {
                continue;
            }
            found += 1;
            if let Some(stop) = self.claim_or_stop(recorder).await? {
                stopping.push(stop);
            }
        }
        // Waited for together: each may take its whole stop sequence.
        for (job_id, result) in join_all(stopping).await {
            if let Err(e) = result {
                warn!(job_id, error = %e, "cannot stop a recorder left without a live job");
            }
        }
        Ok(found)
    }

    /// Stores the identity of a live job's unrecorded recorder, or returns
    /// the stop of one whose job is not live.
    async fn claim_or_stop(
        &self,
        recorder: Marked,
    ) -> Result<Option<impl Future<Output = (i32, std::io::Result<()>)> + use<>>, JobError> {
        let Marked { job_id, identity } = recorder;
        let job = store::jobs::find_job(&self.inner.db, job_id).await?;
        let live = job.as_ref().filter(|j| !j.status.is_terminal());
        if let Some(job) = live {
            let known = job.process_id == Some(identity.pid)
                && job.process_start_time == Some(identity.start_time);
            if !known {
                warn!(
                    job_id,
                    pid = identity.pid,
                    "found this node's recorder with no identity stored; taking charge of it"
                );
                let fence = self.own_fence().await?;
                if let Some(stored) =
                    store::jobs::set_process_identity(&self.inner.db, job_id, identity, &fence)
                        .await?
                {
                    self.inner.registry.put(&stored);
                }
            }
            return Ok(None);
        }
        // A deleted job's profile is unknown: ffmpeg's sequence, which
        // lets a recorder write its trailer first.
        let plan = self.stop_plan(job_id).await.unwrap_or(StopPlan {
            first_signal: rustix::process::Signal::INT,
            grace: std::time::Duration::from_secs(10),
        });
        let Ok(Some(process)) = ForeignProcess::open(job_id, identity) else {
            return Ok(None);
        };
        info!(
            job_id,
            pid = identity.pid,
            "stopping a recorder of this node whose job has ended or does not exist"
        );
        Ok(Some(async move { (job_id, process.stop(plan).await) }))
    }
}
