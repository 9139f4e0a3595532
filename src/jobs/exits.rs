//! From the supervisor's report to the committed transition. Clean exits
//! (and any exit after a stop) are committed in batches: whatever queued
//! while the previous batch was written goes in the next one, so a storm of
//! exits shares a few transactions. A crash that the profile may restart
//! is handled on its own, since the job lives on.

use std::collections::HashSet;
use std::time::Duration;

use backon::Retryable;
use sea_orm::DbErr;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, error, info_span, warn};

use super::status::Ending;
use super::{JobError, JobService};
use crate::backoff;
use crate::entity::StopReason;
use crate::store::{self, IN_LIST_CHUNK};
use crate::supervisor::{ExitEvent, ExitOutcome, SupervisorEvent};

/// How many times a failed exit commit is tried again (about 40 s in all).
const EXIT_COMMIT_RETRIES: usize = 11;

/// Waits between attempts to commit an exit.
fn commit_retries() -> backon::ExponentialBuilder {
    backoff::doubling(Duration::from_millis(50), Duration::from_secs(5))
}

impl JobService {
    /// Handles what the supervisor reports until the service closes.
    pub(super) async fn consume_reports(
        self,
        mut reports: mpsc::UnboundedReceiver<SupervisorEvent>,
    ) {
        let (batch_tx, batch_rx) = mpsc::unbounded_channel();
        self.inner
            .tracker
            .spawn(self.clone().commit_exit_batches(batch_rx));
        loop {
            let report = tokio::select! {
                // Reports already queued are handled before closing.
                biased;
                report = reports.recv() => report,
                () = self.inner.closed.cancelled() => None,
            };
            match report {
                None => break,
                Some(SupervisorEvent::Exited(exit)) if !may_restart(&exit) => {
                    let _ = batch_tx.send(exit);
                }
                Some(SupervisorEvent::Exited(exit)) => self.spawn_record_exit(exit),
                Some(SupervisorEvent::Stalled { job_id, silent_for }) => {
                    let this = self.clone();
                    self.inner.tracker.spawn(
                        async move {
                            warn!(?silent_for, "stalled recorder: stopping it");
                            match this.stop_for(job_id, StopReason::Stalled).await {
                                Ok(_) | Err(JobError::JobAlreadyEnded { .. }) => {}
                                Err(e) => error!(error = %e, "could not stop a stalled recorder"),
                            }
                        }
                        .instrument(info_span!("job", job_id)),
                    );
                }
            }
        }
    }

    /// Commits exits in batches. Alone, an exit is committed at once; in a
    /// storm of exits, hundreds share a transaction.
    async fn commit_exit_batches(self, mut exits: mpsc::UnboundedReceiver<ExitEvent>) {
        while let Some(first) = exits.recv().await {
            let mut batch = vec![first];
            while batch.len() < IN_LIST_CHUNK {
                match exits.try_recv() {
                    Ok(exit) => batch.push(exit),
                    Err(_) => break,
                }
            }
            let leftover = match self.finish_exit_batch(&batch).await {
                Ok(leftover) => leftover,
                Err(e) => {
                    warn!(error = %e, jobs = batch.len(), "batch commit failed; committing one by one");
                    batch.iter().map(|e| e.job_id).collect()
                }
            };
            for exit in batch {
                if leftover.contains(&exit.job_id) {
                    // One by one, each in its own task with its own retries,
                    // so a slow database does not hold up later batches.
                    self.spawn_record_exit(exit);
                } else {
                    self.committed(&exit);
                }
            }
        }
    }

    /// Ends the batch's jobs in one transaction. Returns the ids of jobs it
    /// could not end (their state changed meanwhile): the caller commits
    /// those one by one.
    async fn finish_exit_batch(&self, batch: &[ExitEvent]) -> Result<HashSet<i32>, DbErr> {
        let ids: Vec<i32> = batch.iter().map(|e| e.job_id).collect();
        let mut rows: std::collections::HashMap<i32, _> =
            store::jobs::jobs_with_recordings(&self.inner.db, &ids)
                .await?
                .into_iter()
                .filter_map(|(job, recording)| recording.map(|r| (job.id, (job, r))))
                .collect();
        let items: Vec<_> = batch
            .iter()
            .filter_map(|exit| {
                let (job, recording) = rows.remove(&exit.job_id)?;
                (!job.status.is_terminal()).then(|| (job, recording, exit_ending(exit)))
            })
            .collect();
        let mut wanted: HashSet<i32> = items.iter().map(|(job, _, _)| job.id).collect();
        for id in self.end_many(items).await? {
            wanted.remove(&id);
        }
        Ok(wanted)
    }

    fn spawn_record_exit(&self, exit: ExitEvent) {
        let this = self.clone();
        let span = info_span!("job", job_id = exit.job_id, pid = exit.pid);
        self.inner
            .tracker
            .spawn(async move { this.record_exit(exit).await }.instrument(span));
    }

    /// Restarts the recorder if its profile says so; otherwise commits its
    /// exit, retrying while the database is unavailable: the exit status
    /// exists only here, and the job stays owned (so no reconciliation
    /// replaces it with "exit status unknown") until it is written or
    /// retries run out.
    async fn record_exit(&self, exit: ExitEvent) {
        if may_restart(&exit) {
            match self.restart(&exit).await {
                // The new run is owned under the same job id: nothing to
                // release.
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "could not restart the recorder"),
            }
        }
        let ending = exit_ending(&exit);
        let committed = (|| self.finish(exit.job_id, ending.clone()))
            .retry(commit_retries().with_max_times(EXIT_COMMIT_RETRIES))
            .sleep(tokio::time::sleep)
            .notify(|e, delay| {
                warn!(error = %e, ?delay, "could not record the recorder's exit; retrying");
            })
            .await;
        if let Err(e) = committed {
            error!(error = %e, "could not record the recorder's exit; giving up");
        }
        debug!(
            latency_us = exit.observed_at.elapsed().as_micros() as u64,
            "exit committed"
        );
        self.committed(&exit);
    }

    /// An exit is in the database: measured, and its job no longer owned.
    fn committed(&self, exit: &ExitEvent) {
        self.inner.metrics.exit_committed(
            exit.observed_at.elapsed(),
            exit.last_stop_signal.map(super::status::signal_name),
        );
        self.inner.supervisor.release(exit.job_id);
    }
}

/// Whether an exit is a crash that the profile might restart (handled one
/// by one) rather than an end to commit.
fn may_restart(exit: &ExitEvent) -> bool {
    let crashed = match exit.outcome {
        ExitOutcome::Exited(code) => code != 0,
        ExitOutcome::Signalled(_) => true,
        ExitOutcome::Vanished(_) => false,
    };
    crashed && exit.last_stop_signal.is_none()
}

/// How a reported exit ends its job.
fn exit_ending(exit: &ExitEvent) -> Ending {
    Ending::Process {
        outcome: exit.outcome.clone(),
        stop_signal: exit.last_stop_signal,
        stop_duration: exit
            .first_stop_at
            .map(|at| exit.observed_at.saturating_duration_since(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn exit(outcome: ExitOutcome, stop: Option<i32>) -> ExitEvent {
        ExitEvent {
            job_id: 1,
            pid: 2,
            outcome,
            last_stop_signal: stop,
            first_stop_at: stop.map(|_| Instant::now()),
            observed_at: Instant::now(),
        }
    }

    #[test]
    fn only_crashes_nobody_asked_for_may_restart() {
        assert!(may_restart(&exit(ExitOutcome::Exited(3), None)));
        assert!(may_restart(&exit(ExitOutcome::Signalled(9), None)));
        assert!(!may_restart(&exit(ExitOutcome::Exited(0), None)));
        assert!(!may_restart(&exit(ExitOutcome::Exited(255), Some(2))));
        assert!(!may_restart(&exit(ExitOutcome::Signalled(9), Some(9))));
        assert!(!may_restart(&exit(
            ExitOutcome::Vanished("adopted".into()),
            None
        )));
    }

    #[test]
    fn a_stopped_exit_carries_its_signal_and_how_long_the_stop_took() {
        let mut stopped = exit(ExitOutcome::Exited(255), Some(2));
        stopped.first_stop_at = Some(stopped.observed_at - Duration::from_millis(1500));
        let Ending::Process {
            stop_signal,
            stop_duration,
            ..
        } = exit_ending(&stopped)
        else {
            panic!("an exit ends as a process ending");
        };
        assert_eq!(stop_signal, Some(2));
        assert_eq!(stop_duration, Some(Duration::from_millis(1500)));
    }
}
