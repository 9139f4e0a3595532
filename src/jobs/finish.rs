//! The one transition out of `running`/`stopping`, shared by every path
//! that ends a job (its recorder's exit, a reconciliation, a failed spawn,
//! a lost node). Each job's end is decided from what is known (`decide.rs`:
//! the pure state machine's verdict and its context), written with a
//! compare-and-set (so racing paths yield exactly one transition), then
//! announced by [`JobService::after_end`]: logged, published, and its
//! recording's processing launched, exactly once.

use std::collections::{HashMap, HashSet};

use sea_orm::DbErr;
use tracing::info;

use super::JobService;
use super::decide::FailureContext;
use super::status::Ending;
use crate::entity::{EventKind, JobStatus, RecordingStatus};
use crate::recordings::output::{self, Outputs};
use crate::store::jobs::{Fence, FinishGroup, RecordingOutcome, Verdict};
use crate::store::{self, Job, Recording};

impl JobService {
    /// Ends one job. Reads it, decides its final state from the state it is
    /// in, and writes it only if that state is unchanged; on a lost race it
    /// reads again. Returns the ended job, or `None` when it had already
    /// ended, or is not this node's to end (it runs under another lease).
    pub async fn finish(&self, job_id: i32, ending: Ending) -> Result<Option<Job>, DbErr> {
        let db = &self.inner.db;
        let mut refused: Option<(JobStatus, Option<i64>)> = None;
        loop {
            // One read for both, one conditional UPDATE … RETURNING: an exit
            // costs as few round trips to the database as it can.
            let Some((job, Some(recording))) =
                store::jobs::find_job_with_recording(db, job_id).await?
            else {
                return Ok(None);
            };
            if job.status.is_terminal() {
                return Ok(None);
            }
            // Refused twice in the same state: the fence, not a race.
            if refused == Some((job.status, job.lease_generation)) {
                info!(
                    job_id,
                    lease_generation = job.lease_generation,
                    "not ending a job this node does not hold under its lease"
                );
                return Ok(None);
            }
            let fence = self.fence_for(&job).await?;
            let outputs = read_outputs(vec![self.recorded_files(&job, &recording)]).await?;
            let Some(outputs) = outputs.into_iter().next() else {
                return Ok(None);
            };
            let context = self.failure_context(&job, &recording, &ending).await;
            let (verdict, outcome) = self.decide(&job, &recording, &ending, &outputs, context);
            let ended = [(job.id, ending.ended_at())];
            let ended =
                store::jobs::finish_jobs(db, &ended, job.status, &verdict, &outcome, &fence)
                    .await?;
            let Some(ended) = ended.into_iter().next() else {
                // Its status changed meanwhile: decide again from the new
                // one (or find that the fence refused it).
                refused = Some((job.status, job.lease_generation));
                continue;
            };
            self.after_end(
                &ended,
                Said::alone(job.status),
                &verdict,
                &recording,
                &outcome,
            );
            return Ok(Some(ended));
        }
    }

    /// Ends many live jobs, each with its own ending, in one transaction
    /// under one fence: jobs that end the same way (same state, same
    /// verdict, same fate of their recording) share one conditional UPDATE.
    /// Returns the ids of the jobs ended; those whose state changed since
    /// they were read are left for the caller.
    pub(super) async fn end_many(
        &self,
        items: Vec<(Job, Recording, Ending)>,
        fence: Fence,
    ) -> Result<HashSet<i32>, DbErr> {
        if items.is_empty() {
            return Ok(HashSet::new());
        }
        let files = items
            .iter()
            .map(|(j, r, _)| self.recorded_files(j, r))
            .collect();
        let outputs = read_outputs(files).await?;
        let mut decided = Vec::with_capacity(items.len());
        for ((job, recording, ending), outputs) in items.into_iter().zip(&outputs) {
            let context = self.failure_context(&job, &recording, &ending).await;
            let (verdict, outcome) = self.decide(&job, &recording, &ending, outputs, context);
            let ended_at = ending.ended_at();
            decided.push((job, recording, verdict, outcome, ended_at));
        }
        let (groups, recordings) = group_endings(decided, &fence);
        let ended = store::jobs::finish_job_groups(&self.inner.db, &groups).await?;
        let mut ended_ids = HashSet::with_capacity(ended.len());
        // A storm of exits is said in one line; each job's end at debug.
        let alone = ended.len() == 1;
        let mut failed = 0;
        for (job, group) in &ended {
            let group = &groups[*group];
            ended_ids.insert(job.id);
            failed += usize::from(group.verdict.status == JobStatus::Failed);
            if let Some(recording) = recordings.get(&job.id) {
                let said = Said {
                    from: group.from,
                    alone,
                };
                self.after_end(job, said, &group.verdict, recording, &group.outcome);
            }
        }
        if !alone && !ended.is_empty() {
            info!(
                jobs = ended.len(),
                failed,
                statements = groups.len(),
                "jobs ended"
            );
        }
        Ok(ended_ids)
    }

    /// Ends this node's unowned jobs whose processes are gone, in as few
    /// statements as their distinct outcomes allow; returns the ids of
    /// those ended. Start-up after a crash with thousands of dead
    /// recorders takes a handful of transactions, not thousands.
    pub(super) async fn end_gone(&self, gone: Vec<(Job, Ending)>) -> Result<HashSet<i32>, DbErr> {
        if gone.is_empty() {
            return Ok(HashSet::new());
        }
        let fence = self.own_fence().await?;
        let recording_ids: Vec<i32> = gone.iter().map(|(j, _)| j.recording_id).collect();
        let recordings: HashMap<i32, Recording> =
            store::recordings::recordings_by_ids(&self.inner.db, &recording_ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        let items: Vec<(Job, Recording, Ending)> = gone
            .iter()
            .filter_map(|(job, ending)| {
                let recording = recordings.get(&job.recording_id)?.clone();
                Some((job.clone(), recording, ending.clone()))
            })
            .collect();
        let mut ended_ids = self.end_many(items, fence).await?;
        // Jobs whose state changed since they were read (a stop landed):
        // the one-by-one transition reads them again and decides anew.
        for (job, ending) in gone {
            if !ended_ids.contains(&job.id) && self.finish(job.id, ending).await?.is_some() {
                ended_ids.insert(job.id);
            }
        }
        Ok(ended_ids)
    }

    /// Ends the job once, from the state it is in now, under `fence`: no
    /// second reading when that state changed meanwhile (the caller looks
    /// again). Returns the ended job.
    pub(super) async fn end_once(
        &self,
        job: &Job,
        recording: &Recording,
        ending: Ending,
        fence: &Fence,
    ) -> Result<Option<Job>, DbErr> {
        let outputs = read_outputs(vec![self.recorded_files(job, recording)]).await?;
        let Some(outputs) = outputs.into_iter().next() else {
            return Ok(None);
        };
        let context = FailureContext::default();
        let (verdict, outcome) = self.decide(job, recording, &ending, &outputs, context);
        let ended = [(job.id, ending.ended_at())];
        let ended = store::jobs::finish_jobs(
            &self.inner.db,
            &ended,
            job.status,
            &verdict,
            &outcome,
            fence,
        )
        .await?;
        let ended = ended.into_iter().next();
        if let Some(ended) = &ended {
            self.after_end(
                ended,
                Said::alone(job.status),
                &verdict,
                recording,
                &outcome,
            );
        }
        Ok(ended)
    }

    /// What follows a committed end, the same whichever path ended the job:
    /// one log line, the job's event (and its recording's), and processing
    /// launched when the recording moved to `processing`.
    fn after_end(
        &self,
        job: &Job,
        said: Said,
        verdict: &Verdict,
        recording: &Recording,
        outcome: &RecordingOutcome,
    ) {
        self.inner.registry.remove(job.id);
        // `event!` takes its level as a constant: one arm per level.
        macro_rules! job_ended {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    job_id = job.id,
                    pid = job.process_id,
                    from = said.from.as_str(),
                    to = verdict.status.as_str(),
                    exit_code = verdict.exit_code,
                    exit_signal = verdict.exit_signal,
                    error = verdict.error.as_deref(),
                    recording = outcome.status.as_str(),
                    "job ended"
                )
            };
        }
        if said.alone {
            job_ended!(tracing::Level::INFO);
        } else {
            job_ended!(tracing::Level::DEBUG);
        }
        let events = &self.inner.events;
        events.publish(EventKind::of_job(job.status), job);
        self.sweep_segments(job, recording);
        if recording.status != RecordingStatus::Recording {
            return;
        }
        if let Some(kind) = EventKind::of_recording(outcome.status) {
            let mut now = recording.clone();
            now.status = outcome.status;
            now.error = outcome.error.clone();
            now.updated_at = job.completed_at.unwrap_or(now.updated_at);
            events.publish(kind, &now);
        }
        if outcome.status == RecordingStatus::Processing {
            self.inner.processing.launch(job.recording_id);
        }
    }
}

/// How a job's end is logged: the state it left, and whether it ended
/// alone (its own line at info) or with others in one commit (one line for
/// all, each job's at debug).
#[derive(Debug, Clone, Copy)]
struct Said {
    from: JobStatus,
    alone: bool,
}

impl Said {
    fn alone(from: JobStatus) -> Self {
        Self { from, alone: true }
    }
}

/// Reads what each recording's runs left, off the async runtime.
async fn read_outputs(files: Vec<Vec<std::path::PathBuf>>) -> Result<Vec<Outputs>, DbErr> {
    output::outputs_of(files)
        .await
        .map_err(|e| DbErr::Custom(format!("reading outputs failed: {e}")))
}

/// One job's decided end: the job, its recording, the verdict, the
/// recording's fate and when the recorder ended.
type Decided = (
    Job,
    Recording,
    Verdict,
    RecordingOutcome,
    Option<time::OffsetDateTime>,
);

/// Groups decided endings so that jobs ending the same way, from the same
/// state, are written by one statement (each keeping its own end time);
/// also returns each job's recording.
fn group_endings(
    decided: Vec<Decided>,
    fence: &Fence,
) -> (Vec<FinishGroup>, HashMap<i32, Recording>) {
    let mut groups: Vec<FinishGroup> = Vec::new();
    let mut recordings = HashMap::with_capacity(decided.len());
    for (job, recording, verdict, outcome, ended_at) in decided {
        match groups
            .iter_mut()
            .find(|g| g.from == job.status && g.verdict == verdict && g.outcome == outcome)
        {
            Some(group) => group.jobs.push((job.id, ended_at)),
            None => groups.push(FinishGroup {
                from: job.status,
                verdict,
                outcome,
                jobs: vec![(job.id, ended_at)],
                fence: fence.clone(),
            }),
        }
        recordings.insert(job.id, recording);
    }
    (groups, recordings)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::jobs::decide::tests::verdict;
    use crate::jobs::fixtures::{job, recording};

    fn processing() -> RecordingOutcome {
        RecordingOutcome {
            status: RecordingStatus::Processing,
            error: None,
        }
    }

    #[test]
    fn jobs_ending_the_same_way_from_the_same_state_share_one_group() {
        let done = verdict(JobStatus::Completed, None);
        let at = |s: i64| Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s));
        let running = |id| (job(id, JobStatus::Running), recording(id));
        let decided = vec![
            (running(1), done.clone(), at(1)),
            (running(2), done.clone(), at(2)),
            // Same verdict from another state: its own statement, since the
            // compare-and-set expects that state.
            (
                (job(3, JobStatus::Stopping), recording(3)),
                done.clone(),
                at(3),
            ),
            // Another verdict: its own group.
            (
                running(4),
                verdict(JobStatus::Failed, Some("recorder exited with code 3")),
                at(4),
            ),
            (running(5), done, None),
        ]
        .into_iter()
        .map(|((job, recording), verdict, ended_at)| {
            (job, recording, verdict, processing(), ended_at)
        })
        .collect();
        let (groups, recordings) = group_endings(decided, &Fence::Open);
        let ids: Vec<Vec<i32>> = groups
            .iter()
            .map(|g| g.jobs.iter().map(|(id, _)| *id).collect())
            .collect();
        // Each keeps its own end time within its group.
        assert_eq!(groups[0].jobs, [(1, at(1)), (2, at(2)), (5, None)]);
        assert_eq!(ids, [vec![1, 2, 5], vec![3], vec![4]]);
        assert_eq!(groups[1].from, JobStatus::Stopping);
        assert_eq!(recordings.len(), 5);
        assert_eq!(recordings[&4].id, 4);
    }
}
