//! The seed's `is_process_running` sweep, kept as the fallback for jobs no
//! task of this process owns: those left by a previous supervisor, found at
//! start-up, by `active`, by `cleanup` and on a timer. A job whose process
//! is gone, or whose PID now names another process, is ended; a live one
//! with a verified identity is adopted. Another node's job is never judged
//! here (a PID means nothing on another machine): its node's lease says
//! whether it lives (`takeover`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::DbErr;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::live::LiveJob;
use super::status::Ending;
use super::{JobError, JobService};
use crate::entity::JobStatus;
use crate::recordings::output::segment_path;
use crate::store::{self, Job};
use crate::supervisor::identity::{self, Liveness};
use crate::supervisor::{ForeignProcess, ProcessIdentity, StallCheck};

impl JobService {
    /// Jobs in `running` or `stopping`, after reconciling those no task of
    /// this process owns: a job whose process is gone is never listed.
    /// Those held in memory come as the JSON their last transition left.
    pub async fn active(&self) -> Result<Vec<LiveJob>, JobError> {
        let jobs = self.reconcile_and_list().await?.1;
        let board = self.inner.supervisor.progress();
        Ok(jobs
            .into_iter()
            .map(|job| match job {
                LiveJob::Held { id, json, .. } => LiveJob::Held {
                    id,
                    json,
                    progress: board.get(id),
                },
                LiveJob::Read(job) => LiveJob::Read(Box::new(self.with_progress(*job))),
            })
            .collect())
    }

    /// Reconciles every live job now; returns how many were ended.
    pub async fn cleanup(&self) -> Result<usize, JobError> {
        Ok(self.reconcile().await?)
    }

    /// Ends unowned jobs whose process is gone, adopts live ones; returns
    /// how many were ended.
    pub async fn reconcile(&self) -> Result<usize, DbErr> {
        Ok(self.reconcile_and_list().await?.0)
    }

    /// [`JobService::reconcile`], also returning the live jobs afterwards.
    /// The jobs the registry vouches for (owned here, held in memory as the
    /// database has them) are answered from memory; only the others are
    /// read in full, and only those no task owns are judged.
    async fn reconcile_and_list(&self) -> Result<(usize, Vec<LiveJob>), DbErr> {
        let marks = self.inner.live_marks.read(&self.inner.reads).await?;
        let owned: HashSet<i32> = self.inner.supervisor.owned_jobs().into_iter().collect();
        let lease_held = self.fence_now().is_some();
        let vouched = self.inner.registry.vouch(&marks, lease_held, &owned);
        let held = vouched.jobs.into_iter().map(|(id, json)| LiveJob::Held {
            id,
            json,
            progress: None,
        });
        if vouched.unknown.is_empty() {
            return Ok((0, held.collect()));
        }
        let (unknown, candidates) = {
            // Exclusive: a job inserted but not yet spawned is not an
            // orphan; once the gate is ours, every start that got a job
            // row owns its recorder or has ended its job.
            let _exclusive = self.inner.start_gate.write().await;
            let unknown = store::live::live_jobs_among(&self.inner.db, &vouched.unknown).await?;
            let owned: HashSet<i32> = self.inner.supervisor.owned_jobs().into_iter().collect();
            let candidates: Vec<Job> = unknown
                .iter()
                .filter(|job| !owned.contains(&job.id))
                .cloned()
                .collect();
            // Owned rows read here are the truth as of now: held again,
            // so the next call answers them from memory.
            if lease_held {
                for job in unknown.iter().filter(|job| owned.contains(&job.id)) {
                    if self.is_mine(job) {
                        self.inner.registry.put(job);
                    }
                }
            }
            (unknown, candidates)
        };
        let ended = self.judge_unowned(candidates).await?;
        let unknown = if ended.is_empty() {
            unknown
        } else {
            info!(
                ended = ended.len(),
                "reconciliation ended jobs whose process was gone"
            );
            // An ended job never lives again: only the others are read
            // again (a start-up that ended them all reads nothing).
            let rest: Vec<i32> = unknown
                .iter()
                .map(|job| job.id)
                .filter(|id| !ended.contains(id))
                .collect();
            if rest.is_empty() {
                Vec::new()
            } else {
                store::live::live_jobs_among(&self.inner.db, &rest).await?
            }
        };
        let read = unknown.into_iter().map(|job| LiveJob::Read(Box::new(job)));
        Ok((
            ended.len(),
            merge_newest_first(held.collect(), read.collect()),
        ))
    }

    /// Ends the unowned jobs of this node whose process is gone and adopts
    /// the live ones; returns the ids of the jobs ended.
    async fn judge_unowned(&self, candidates: Vec<Job>) -> Result<HashSet<i32>, DbErr> {
        // Without its lease this node writes none of its jobs: judged
        // once it holds it again.
        let mine: Vec<Job> = match self.fence_now() {
            Some(_) => candidates.into_iter().filter(|j| self.is_mine(j)).collect(),
            None => Vec::new(),
        };
        if mine.is_empty() {
            return Ok(HashSet::new());
        }
        let mut gone = Vec::new();
        let (waiting, mine): (Vec<Job>, Vec<Job>) = mine.into_iter().partition(waits_to_restart);
        let mut ended = HashSet::new();
        for job in waiting {
            if !self.resume_restart(&job).await.unwrap_or(false) {
                let reason = "its recorder waited to be restarted and could not be".to_owned();
                gone.push((job, Ending::ProcessGone(reason)));
            }
        }
        for (job, liveness) in check_identities(mine).await? {
            match liveness {
                // Adopted, or ended on the spot if it died meanwhile.
                Liveness::Alive => {
                    if self.settle_unowned(&job, liveness).await? {
                        ended.insert(job.id);
                    }
                }
                // The PID answers but nothing recorded can prove it is ours:
                // it is neither ended nor ever signalled.
                Liveness::Unverified => {}
                dead => {
                    let reason = dead.describe();
                    gone.push((job, Ending::ProcessGone(reason)));
                }
            }
        }
        ended.extend(self.end_gone(gone).await?);
        Ok(ended)
    }

    /// Reconciles one job no task may own (a stop found no owner for it).
    pub(super) async fn reconcile_one(&self, job_id: i32) -> Result<bool, DbErr> {
        // Exclusive, like `reconcile`: a job being started is not an orphan.
        let _exclusive = self.inner.start_gate.write().await;
        let Some(job) = store::jobs::find_job(&self.inner.db, job_id).await? else {
            return Ok(false);
        };
        if job.status.is_terminal() || self.inner.supervisor.owns(job_id) || !self.is_mine(&job) {
            return Ok(false);
        }
        let Some((job, liveness)) = check_identities(vec![job]).await?.pop() else {
            return Ok(false);
        };
        self.settle_unowned(&job, liveness).await
    }

    /// Ends an unowned job whose process is gone, or adopts it when it is
    /// verifiably alive. True when the job was ended.
    async fn settle_unowned(&self, job: &Job, liveness: Liveness) -> Result<bool, DbErr> {
        let pid = job.process_id.unwrap_or_default();
        match liveness {
            Liveness::Alive => {
                let identity = ProcessIdentity {
                    pid,
                    start_time: job.process_start_time.unwrap_or_default(),
                };
                match ForeignProcess::open(job.id, identity) {
                    Ok(Some(process)) => {
                        if !self.inner.supervisor.owns(job.id) {
                            self.adopt(job, process).await;
                        }
                        Ok(false)
                    }
                    // It ended between the check and the open.
                    Ok(None) => {
                        let gone = "the recorder's process no longer exists".to_owned();
                        let ended = self.finish(job.id, Ending::ProcessGone(gone)).await?;
                        Ok(ended.is_some())
                    }
                    Err(e) => {
                        warn!(job_id = job.id, pid, error = %e, "cannot watch a live orphaned recorder");
                        Ok(false)
                    }
                }
            }
            // The PID answers but nothing recorded can prove it is ours: it
            // is neither ended nor ever signalled.
            Liveness::Unverified => Ok(false),
            gone => {
                let ended = self
                    .finish(job.id, Ending::ProcessGone(gone.describe()))
                    .await?;
                Ok(ended.is_some())
            }
        }
    }

    /// Takes charge of a live recorder left by a previous run: watched
    /// through its pidfd, its duration limit re-armed from `started_at`, and
    /// its stop sequence begun if a stop had been requested.
    async fn adopt(&self, job: &Job, process: ForeignProcess) {
        info!(
            job_id = job.id,
            pid = job.process_id,
            "adopting a live recorder"
        );
        // The file of the run that is recording now: from the second run
        // on, a segment of its own.
        let (stall, segments) = match self.recording_and_profile(job).await {
            Ok((recording, profile)) => {
                self.inner
                    .stop_plans
                    .insert(job.id, super::stop::plan_of(&profile));
                let stall = profile.stall_timeout().map(|timeout| StallCheck {
                    output: run_output(Path::new(&recording.output_path), job.attempt),
                    timeout,
                });
                let segments = profile
                    .segment_seconds
                    .map(|_| super::segments::current_list(&recording, job));
                (stall, segments)
            }
            Err(_) => (None, None),
        };
        self.inner
            .supervisor
            .adopt(job.id, process, stall, segments);
        self.inner.registry.put(job);
        if job.status == JobStatus::Stopping {
            match self.stop_plan(job.id).await {
                Ok(plan) => {
                    self.inner.supervisor.stop(job.id, plan);
                }
                Err(e) => warn!(job_id = job.id, error = %e, "cannot stop the adopted recorder"),
            }
        } else if let Some(limit) = job.duration_seconds {
            let elapsed = OffsetDateTime::now_utc() - job.started_at;
            let remaining = time::Duration::seconds(limit) - elapsed;
            let remaining = Duration::try_from(remaining).unwrap_or(Duration::ZERO);
            self.arm_duration_limit(job.id, remaining);
        }
    }
}

/// A job of this node whose recorder was waiting to be restarted when its
/// supervisor went away: its next run was claimed, no process exists.
fn waits_to_restart(job: &Job) -> bool {
    job.status == JobStatus::Running && job.process_id.is_none() && job.restart_at.is_some()
}

/// Where run number `attempt` of a recording writes.
fn run_output(output: &Path, attempt: i32) -> PathBuf {
    if attempt > 1 {
        segment_path(output, attempt)
    } else {
        output.to_path_buf()
    }
}

/// Two lists of jobs, each newest first, as one.
fn merge_newest_first(a: Vec<LiveJob>, b: Vec<LiveJob>) -> Vec<LiveJob> {
    if b.is_empty() {
        return a;
    }
    let mut all = a;
    all.extend(b);
    all.sort_by_key(|job| std::cmp::Reverse(job.id()));
    all
}

/// Each job's liveness, checked against `/proc` off the async runtime.
async fn check_identities(jobs: Vec<Job>) -> Result<Vec<(Job, Liveness)>, DbErr> {
    tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|job| {
                let liveness = identity::check_job(job.id, job.process_id, job.process_start_time);
                (job, liveness)
            })
            .collect()
    })
    .await
    .map_err(|e| DbErr::Custom(format!("identity check failed: {e}")))
}
