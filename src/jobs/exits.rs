//! From the supervisor's report to the committed transition. Clean exits
//! (and any exit after a stop) are committed in batches: whatever queued
//! while the previous batch was written goes in the next one, so a storm of
//! exits shares a few transactions. A crash that the profile may restart
//! is handled on its own, since the job lives on.

use std::collections::HashSet;
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use sea_orm::DbErr;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, error, info_span, warn};

use super::restart::Restart;
use super::status::Ending;
use super::{JobError, JobService};
use crate::entity::StopReason;
use crate::store::{self, IN_LIST_CHUNK};
use crate::supervisor::{ExitEvent, ExitOutcome, SupervisorEvent};
use crate::{backoff, faults};

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
        crate::tasks::spawn_critical(
            &self.inner.tracker,
            "exit commits",
            self.clone().commit_exit_batches(batch_rx),
        );
        let (segments_tx, segments_rx) = mpsc::unbounded_channel();
        self.inner
            .tracker
            .spawn(self.clone().record_segments(segments_rx));
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
                    if batch_tx.send(exit).is_err() {
                        // The committer is gone (it panicked): the process
                        // is about to exit, and the next start adopts.
                        error!("the exit committer is gone; an exit was not recorded");
                    }
                }
                Some(SupervisorEvent::Exited(exit)) => self.spawn_record_exit(exit),
                Some(SupervisorEvent::SegmentClosed(segment)) => {
                    let _ = segments_tx.send(segment);
                }
                Some(SupervisorEvent::Stalled { job_id, silent_for }) => {
                    let this = self.clone();
                    self.inner.tracker.spawn(
                        async move {
                            warn!(?silent_for, "stalled recorder: stopping it");
                            let stop = || this.stop_for(job_id, StopReason::Stalled);
                            match this.through_outage("stop a stalled recorder", stop).await {
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
            if faults::armed(faults::Point::PanicInExitCommit) {
                panic!("fault point: the exit committer panics");
            }
            // Retried, in order, until the database takes it: an exit
            // exists only here, and later exits wait behind it so that
            // their events keep the order of the exits.
            let mut delays = commit_retries().build();
            let leftover = loop {
                match self.finish_exit_batch(&batch).await {
                    Ok(leftover) => break leftover,
                    Err(e) => {
                        let delay = delays.next().unwrap_or(Duration::from_secs(5));
                        warn!(error = %e, jobs = batch.len(), ?delay, "cannot commit exits; retrying");
                        tokio::time::sleep(delay).await;
                    }
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
        for exit in batch {
            self.inner.announcements.wait(exit.job_id).await;
        }
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
        let fence = self.own_fence().await?;
        for id in self.end_many(items, fence).await? {
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
    /// replaces it with "exit status unknown") until it is written.
    async fn record_exit(&self, exit: ExitEvent) {
        if may_restart(&exit) {
            match self.restart(&exit).await {
                // The new run is owned under the same job id: nothing to
                // release.
                Ok(Restart::Started) => return,
                Ok(Restart::Ended) => {
                    self.committed(&exit);
                    return;
                }
                Ok(Restart::No) => {}
                Err(e) => warn!(error = %e, "could not restart the recorder"),
            }
        }
        self.inner.announcements.wait(exit.job_id).await;
        let ending = exit_ending(&exit);
        let committed = (|| self.finish(exit.job_id, ending.clone()))
            .retry(commit_retries())
            .sleep(tokio::time::sleep)
            .notify(|e, delay| {
                warn!(error = %e, ?delay, "could not record the recorder's exit; retrying");
            })
            .await;
        if let Err(e) = committed {
            error!(error = %e, "could not record the recorder's exit");
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
        self.inner.stop_plans.remove(exit.job_id);
    }
}

/// Whether an exit is one the profile might restart (a recorder that ended
/// unasked, whatever its exit code; handled one by one) rather than an end
/// to commit.
fn may_restart(exit: &ExitEvent) -> bool {
    let seen = !matches!(exit.outcome, ExitOutcome::Vanished(_));
    exit.restartable && seen && exit.last_stop_signal.is_none()
}

/// How a reported exit ends its job.
fn exit_ending(exit: &ExitEvent) -> Ending {
    Ending::Process {
        outcome: exit.outcome.clone(),
        stop_signal: exit.last_stop_signal,
        stop_duration: exit
            .first_stop_at
            .map(|at| exit.observed_at.saturating_duration_since(at)),
        ended_at: exit.ended_at,
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
            ended_at: time::OffsetDateTime::UNIX_EPOCH,
            restartable: true,
        }
    }

    #[test]
    fn only_ends_nobody_asked_for_may_restart() {
        assert!(may_restart(&exit(ExitOutcome::Exited(3), None)));
        assert!(may_restart(&exit(ExitOutcome::Signalled(9), None)));
        // A source that ended: a live source often comes back.
        assert!(may_restart(&exit(ExitOutcome::Exited(0), None)));
        let mut spent = exit(ExitOutcome::Exited(3), None);
        spent.restartable = false;
        assert!(!may_restart(&spent), "no restarts left in its profile");
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
