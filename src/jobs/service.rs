//! The job service and what it holds. Its operations live beside it, one
//! file per concern, each an `impl JobService` block: `start` (starting and
//! restarting a recorder), `stop`, `exits` (from the supervisor's report to
//! the committed transition), `finish` (the one transition out of a live
//! state), `reconcile` (orphans and adoption after a restart), `peers`
//! (what other nodes ask of this one), `placement` (where a start runs)
//! and `takeover` (the jobs of nodes whose lease is gone).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::JobError;
use super::pending::{Announcements, Restarts, StopPlans};
use super::request::find_profile;
use crate::config::Settings;
use crate::db;
use crate::entity::{JobStatus, RecordingStatus};
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::nodes::{Bell, Lease};
use crate::processing::Processing;
use crate::profile::Profile;
use crate::recordings::Recordings;
use crate::store::jobs::Fence;
use crate::store::{self, Job, Recording};
use crate::supervisor::{Supervisor, SupervisorEvent};

/// Cheap to clone: every clone is the same service.
#[derive(Clone)]
pub struct JobService {
    pub(super) inner: Arc<Inner>,
}

/// What the job service works with, built by `startup`.
pub struct JobDeps {
    pub db: DatabaseConnection,
    /// Reads that need not wait behind writes (`db::connect_reads`).
    pub reads: DatabaseConnection,
    /// SQLite: the connection that tells whether anything was committed
    /// (`db::connect_watching`); `None` on PostgreSQL.
    pub watching: Option<db::Watching>,
    pub settings: Arc<Settings>,
    pub supervisor: Supervisor,
    pub processing: Processing,
    pub recordings: Recordings,
    pub events: EventLog,
    pub metrics: Arc<Metrics>,
    pub tracker: TaskTracker,
    /// Cancelled when the shutdown begins: no new job is accepted.
    pub shutdown: CancellationToken,
    /// Cancelled by [`JobService::close`] once no recorder is left.
    pub closed: CancellationToken,
    /// This node's lease: it writes its jobs only under it.
    pub lease: Lease,
    /// Wakes other nodes.
    pub bell: Bell,
}

pub(super) struct Inner {
    pub(super) db: DatabaseConnection,
    pub(super) reads: DatabaseConnection,
    /// The live jobs' marks, read again only after a commit.
    pub(super) live_marks: store::live::LiveMarks,
    /// Tells whether anything was committed (SQLite only).
    pub(super) watching: Option<db::Watching>,
    pub(super) settings: Arc<Settings>,
    pub(super) supervisor: Supervisor,
    pub(super) processing: Processing,
    pub(super) recordings: Recordings,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    /// Held shared by each start from its insert until its child is owned,
    /// and exclusively by reconciliation while it decides which jobs no task
    /// owns: otherwise a job inserted but not yet spawned would look like an
    /// orphan whose process is gone.
    pub(super) start_gate: RwLock<()>,
    /// Cancelled by [`JobService::close`] once no recorder is left, which
    /// ends the task consuming exit events.
    pub(super) closed: CancellationToken,
    pub(super) events: EventLog,
    pub(super) metrics: Arc<Metrics>,
    /// Starts being announced: a job's end waits for its start's event.
    pub(super) announcements: Announcements,
    /// Recorders waiting to be restarted, and how to cut the wait short.
    pub(super) restarts: Restarts,
    pub(super) lease: Lease,
    pub(super) bell: Bell,
    /// Starts placed on other nodes, waiting to hear they were started.
    pub(super) placements: super::placement::Waiting,
    /// The stop sequence of each recorder run here.
    pub(super) stop_plans: StopPlans,
    /// This node's live jobs as its transitions last wrote them.
    pub(super) registry: super::registry::Registry,
    /// Starts waiting to be admitted together.
    pub(super) admissions: super::admission::Admissions,
}

/// How many jobs and recordings are in each status.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    pub jobs: Vec<(JobStatus, i64)>,
    pub recordings: Vec<(RecordingStatus, i64)>,
}

impl JobService {
    /// Builds the service and starts consuming the supervisor's reports.
    pub fn new(deps: JobDeps, reports: mpsc::UnboundedReceiver<SupervisorEvent>) -> Self {
        let tracker = deps.tracker.clone();
        let (admissions, admitting) = mpsc::unbounded_channel();
        let service = Self {
            inner: Arc::new(Inner {
                db: deps.db,
                reads: deps.reads,
                live_marks: store::live::LiveMarks::new(deps.watching.clone()),
                watching: deps.watching,
                settings: deps.settings,
                supervisor: deps.supervisor,
                processing: deps.processing,
                recordings: deps.recordings,
                tracker: deps.tracker,
                shutdown: deps.shutdown,
                start_gate: RwLock::new(()),
                closed: deps.closed,
                events: deps.events,
                metrics: deps.metrics,
                announcements: Announcements::default(),
                restarts: Restarts::default(),
                lease: deps.lease,
                bell: deps.bell,
                placements: super::placement::Waiting::default(),
                stop_plans: StopPlans::default(),
                registry: super::registry::Registry::default(),
                admissions,
            }),
        };
        crate::tasks::spawn_critical(
            &tracker,
            "admissions",
            service
                .clone()
                .admit_queued(admitting, service.inner.closed.clone()),
        );
        crate::tasks::spawn_critical(
            &tracker,
            "exit reports",
            service.clone().consume_reports(reports),
        );
        service
    }

    /// True once a shutdown has begun: no new job is accepted.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// How many recorders this node supervises now (children and adopted).
    pub fn supervised(&self) -> usize {
        self.inner.supervisor.len()
    }

    /// Cancelled by [`Self::close`], once shutdown has dealt with every
    /// recorder: what runs until then (heartbeats, webhook delivery)
    /// listens to it.
    pub fn closing(&self) -> CancellationToken {
        self.inner.closed.clone()
    }

    /// Ends the report consumer: called at shutdown once every recorder's
    /// exit has been committed.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    pub async fn job(&self, job_id: i32) -> Result<Job, JobError> {
        self.find_on(&self.inner.db, job_id).await
    }

    /// The job as `db` has it, with its live progress.
    async fn find_on(&self, db: &DatabaseConnection, job_id: i32) -> Result<Job, JobError> {
        store::jobs::find_job(db, job_id)
            .await?
            .map(|job| self.with_progress(job))
            .ok_or(JobError::JobNotFound { id: job_id })
    }

    /// A job as a client sees it: from memory when it runs here and the
    /// registry holds it under the lease held now (every transition of
    /// such a job is written by this node, which updates the registry as
    /// it commits), else from the database's read connections.
    pub async fn show(&self, job_id: i32) -> Result<Job, JobError> {
        if let Some(generation) = self.inner.lease.state().held()
            && self.inner.supervisor.owns(job_id)
            && let Some(job) = self.inner.registry.get(job_id, generation)
        {
            return Ok(self.with_progress(job));
        }
        self.find_on(&self.inner.reads, job_id).await
    }

    /// The job with its recorder's live progress, when it is live and its
    /// recorder runs here and reports any.
    pub(super) fn with_progress(&self, mut job: Job) -> Job {
        if !job.status.is_terminal() {
            job.progress = self.inner.supervisor.progress().get(job.id);
        }
        job
    }

    /// Free bytes of the recordings' disk (`None` when unreadable) and the
    /// bytes of `ready` recordings each profile keeps, for the metrics.
    pub async fn storage(&self) -> (Option<u64>, Vec<(String, u64)>) {
        let settings = &self.inner.settings;
        let free = crate::recordings::free_bytes(&settings.recordings_dir()).await;
        let retained = self
            .inner
            .recordings
            .retained_bytes(&settings.profiles)
            .await;
        (free, retained)
    }

    /// The live progress of every recorder of this node that reports it.
    pub fn live_progress(&self) -> Vec<(i32, crate::entity::LiveProgress)> {
        self.inner.supervisor.progress().all()
    }

    /// One page of jobs, newest first, and how many match in all.
    pub async fn list(
        &self,
        status: Option<JobStatus>,
        recording_id: Option<i32>,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<Job>, u64), JobError> {
        let (jobs, count) =
            store::jobs::list_jobs(&self.inner.reads, status, recording_id, page, page_size)
                .await?;
        let jobs = jobs
            .into_iter()
            .map(|job| self.with_progress(job))
            .collect();
        Ok((jobs, count))
    }

    /// Jobs and recordings by status, for the metrics.
    pub async fn status_counts(&self) -> Result<StatusCounts, DbErr> {
        Ok(StatusCounts {
            jobs: store::jobs::count_by_status(&self.inner.reads).await?,
            recordings: store::recordings::count_by_status(&self.inner.reads).await?,
        })
    }

    /// A job's recording and the profile it was recorded with. A profile
    /// removed from the configuration since the job started falls back to
    /// the built-in defaults, so the job can still be stopped.
    pub(super) async fn recording_and_profile(
        &self,
        job: &Job,
    ) -> Result<(Recording, Profile), JobError> {
        let recording = store::recordings::find_recording(&self.inner.db, job.recording_id)
            .await?
            .ok_or(JobError::RecordingNotFound {
                id: job.recording_id,
            })?;
        let profile = self.profile_or_builtin(&recording.profile);
        Ok((recording, profile))
    }

    /// The named profile, or the built-in defaults when it was removed from
    /// the configuration since.
    pub(super) fn profile_or_builtin(&self, name: &str) -> Profile {
        find_profile(&self.inner.settings.profiles, Some(name))
            .map(|(_, profile)| profile)
            .unwrap_or_else(|_| Profile::ffmpeg())
    }

    /// Runs `attempt` again, with backoff, for as long as it fails because
    /// the database is unavailable and no shutdown has begun: what the
    /// service does on its own initiative (restarting a recorder, stopping
    /// one at its limit) happens once the database is back rather than
    /// never. Each attempt must be safe to repeat: the writes behind these
    /// are compare-and-set, so a write whose answer was lost is not made
    /// twice.
    pub(super) async fn through_outage<T, F, Fut>(
        &self,
        what: &'static str,
        mut attempt: F,
    ) -> Result<T, JobError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        let mut delays =
            crate::backoff::doubling(Duration::from_millis(50), Duration::from_secs(5)).build();
        loop {
            match attempt().await {
                Err(JobError::Database(e))
                    if crate::db::is_unavailable(&e) && !self.inner.shutdown.is_cancelled() =>
                {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    warn!(error = %e, ?delay, "cannot {what} while the database is unavailable; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.inner.shutdown.cancelled() => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether this node supervises the job (jobs from before nodes were
    /// recorded count as this node's).
    pub(super) fn is_mine(&self, job: &Job) -> bool {
        job.node
            .as_deref()
            .is_none_or(|node| node == self.inner.settings.node_id)
    }

    /// The fence under which this node writes its own jobs: the lease it
    /// holds now, waited for a moment while it is being taken back. Past
    /// that the node cannot write its jobs, which callers treat as the
    /// database being unavailable (a request answers 503, background work
    /// tries again).
    pub(super) async fn own_fence(&self) -> Result<Fence, DbErr> {
        let wait = tokio::time::timeout(
            crate::db::ACQUIRE_TIMEOUT,
            self.inner.lease.held(&self.inner.closed),
        );
        match wait.await {
            Ok(Some(generation)) => Ok(self.fence_of(generation)),
            _ => {
                warn!("this node does not hold its lease: its jobs are not written now");
                Err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))
            }
        }
    }

    /// The fence of this node's lease as it stands, without waiting:
    /// `None` while the lease is lost.
    pub(super) fn fence_now(&self) -> Option<Fence> {
        self.inner.lease.state().held().map(|g| self.fence_of(g))
    }

    /// This node's fence under lease `generation`.
    pub(super) fn fence_of(&self, generation: i64) -> Fence {
        Fence::Lease {
            node: self.inner.settings.node_id.clone(),
            generation,
        }
    }

    /// The fence for ending `job`: this node's lease for its own jobs;
    /// none for another node's (only a placed job nobody started, which a
    /// stop through any node withdraws, is ended that way).
    pub(super) async fn fence_for(&self, job: &Job) -> Result<Fence, DbErr> {
        if self.is_mine(job) {
            self.own_fence().await
        } else {
            Ok(Fence::Open)
        }
    }

    /// This node's lease.
    pub fn lease(&self) -> &Lease {
        &self.inner.lease
    }

    /// Wakes other nodes.
    pub fn bell(&self) -> &Bell {
        &self.inner.bell
    }
}
