//! The job service decides. Every path that ends a job (the recorder's own
//! exit, a stop, a reconciliation, a failed spawn) goes through
//! [`JobService::finish`], a compare-and-set loop over the job's status, so
//! racing paths produce exactly one transition and one processing run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::{RwLock, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::repo::{self, Job, NewRecording, Recording, RecordingOutcome};
use super::status::{Ending, JobContext, StopReason, verdict};
use crate::config::{Profile, Settings, render_argv};
use crate::entity::{JobStatus, RecordingStatus};
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::processing::{Processing, ProcessingDirs, steps};
use crate::supervisor::identity::{self, Liveness};
use crate::supervisor::{
    ExitEvent, ExitOutcome, ForeignProcess, ProcessIdentity, SpawnError, SpawnSpec, StallCheck,
    StopPlan, Supervisor, SupervisorEvent,
};

/// How many times an exit is offered to the database (about 40 s in all).
const EXIT_COMMIT_ATTEMPTS: u32 = 12;
/// Longest source URL accepted.
const MAX_SOURCE_LEN: usize = 4096;
/// Longest title accepted, in characters.
const MAX_TITLE_LEN: usize = 200;
/// Longest duration limit accepted: a week.
const MAX_DURATION_SECONDS: u64 = 7 * 24 * 3600;

/// Body of `POST /api/recordings/jobs/start/`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The stream to record: a URL whose scheme the profile allows
    /// (e.g. `rtmp://host/live/key`).
    #[schema(max_length = 4096, example = "rtmp://media.example/live/key")]
    pub source: String,
    /// Shown in lists; defaults to the source.
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// A profile from the configuration; the default profile when absent
    /// or empty.
    pub profile: Option<String>,
    /// Stop the recording after this many seconds (at most a week).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(default, deserialize_with = "whole_seconds")]
    pub duration_seconds: Option<u64>,
}

/// An optional [`whole_number`].
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

/// A whole number written as JSON allows: `60` or `60.0` (JSON Schema's
/// `integer` accepts both). Fractions and values out of `T`'s range are
/// refused.
pub fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(d)?;
    let whole = if let Some(n) = number.as_i64() {
        Some(i128::from(n))
    } else if let Some(n) = number.as_u64() {
        Some(i128::from(n))
    } else {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
            .map(|f| f as i128)
    };
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, not {number}")))
}

/// A job that was started, with its recording.
#[derive(Debug, Clone)]
pub struct Started {
    pub job: Job,
    pub recording: Recording,
}

/// What can go wrong in a job operation, said in terms of the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown profile `{name}` (available: {available})")]
    UnknownProfile { name: String, available: String },
    #[error("invalid source: {reason}")]
    InvalidSource { reason: String },
    #[error("invalid `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("job {id} not found")]
    JobNotFound { id: i32 },
    #[error("recording {id} not found")]
    RecordingNotFound { id: i32 },
    #[error("job {id} has already ended ({status})", status = status.as_str())]
    JobAlreadyEnded { id: i32, status: JobStatus },
    #[error("job {job_id} failed: {source}")]
    Spawn { job_id: i32, source: SpawnError },
    #[error("the log of job {id} cannot be read: {source}")]
    LogUnreadable { id: i32, source: std::io::Error },
    #[error("recording {id} is {status}; only a ready or failed recording can be {action}", status = status.as_str())]
    RecordingBusy {
        id: i32,
        status: RecordingStatus,
        action: &'static str,
    },
    #[error("recording {id} has no recorded data to process")]
    NothingToProcess { id: i32 },
    #[error("the media of recording {id} is not available: {reason}")]
    MediaUnavailable { id: i32, reason: String },
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("the files of {what} are on node `{node}`; ask that node")]
    OnOtherNode { what: String, node: String },
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Cheap to clone: every clone is the same service.
#[derive(Clone)]
pub struct JobService {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    supervisor: Supervisor,
    processing: Processing,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Held shared by each start from its insert until its child is owned,
    /// and exclusively by reconciliation while it decides which jobs no task
    /// owns: otherwise a job inserted but not yet spawned would look like an
    /// orphan whose process is gone.
    start_gate: RwLock<()>,
    /// Cancelled by [`JobService::close`] once no recorder is left, which
    /// ends the task consuming exit events.
    closed: CancellationToken,
    events: EventLog,
    metrics: Arc<Metrics>,
}

impl JobService {
    /// Builds the service and starts consuming the supervisor's exit events.
    pub fn new(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (supervisor, exits) = Supervisor::new(tracker.clone());
        let closed = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let events = EventLog::start(
            db.clone(),
            settings.node_id.clone(),
            metrics.clone(),
            &tracker,
            closed.clone(),
        );
        let processing = Processing::new(
            db.clone(),
            supervisor.clone(),
            Arc::new(settings.profiles.clone()),
            ProcessingDirs {
                logs: settings.logs_dir(),
                work: settings.work_dir(),
            },
            settings.processing_concurrency,
            tracker.clone(),
            shutdown.clone(),
        )
        .with_events(events.clone())
        .with_metrics(metrics.clone());
        let service = Self {
            inner: Arc::new(Inner {
                db,
                settings,
                supervisor,
                processing,
                tracker: tracker.clone(),
                shutdown,
                start_gate: RwLock::new(()),
                closed,
                events,
                metrics,
            }),
        };
        tracker.spawn(service.clone().consume_exits(exits));
        service
    }

    /// True once a shutdown has begun: no new job is accepted.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The service's metrics, for `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Records how an exit was committed: latency, and how it was stopped.
    fn observe_exit(&self, exit: &ExitEvent) {
        self.inner.metrics.exit_committed(
            exit.observed_at.elapsed(),
            exit.last_stop_signal.map(super::status::signal_name),
        );
    }

    /// The log of transitions, for the event stream.
    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// Publishes a job's end and its recording's new state.
    fn publish_end(&self, job: &Job, recording: &Recording, outcome: &RecordingOutcome) {
        let events = &self.inner.events;
        events.publish(&format!("job.{}", job.status.as_str()), job);
        if recording.status == RecordingStatus::Recording {
            let mut now = recording.clone();
            now.status = outcome.status;
            now.error = outcome.error.clone();
            now.updated_at = job.completed_at.unwrap_or(now.updated_at);
            events.publish(&format!("recording.{}", outcome.status.as_str()), &now);
        }
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    pub fn processing(&self) -> &Processing {
        &self.inner.processing
    }

    fn profile(&self, name: Option<&str>) -> Result<(String, Profile), JobError> {
        let profiles = &self.inner.settings.profiles;
        // An empty name is a form left blank: the default, like no name.
        let name = name.filter(|n| !n.trim().is_empty());
        profiles
            .get(name)
            .map(|(name, profile)| (name.to_owned(), profile.clone()))
            .ok_or_else(|| JobError::UnknownProfile {
                name: name.unwrap_or(&profiles.default).to_owned(),
                available: profiles
                    .by_name
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Creates a recording and its job and spawns the recorder. When the
    /// recorder cannot be spawned the job and recording end `failed` at once
    /// and the error names the program and the OS error.
    pub async fn start(&self, request: StartRequest) -> Result<Started, JobError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let (profile_name, profile) = self.profile(request.profile.as_deref())?;
        validate_source(&request.source, &profile_name, &profile)?;
        let title = match request.title.as_deref().map(str::trim) {
            Some("") | None => request.source.clone(),
            Some(title) if title.chars().count() > MAX_TITLE_LEN => {
                return Err(JobError::InvalidField {
                    field: "title",
                    reason: format!("longer than {MAX_TITLE_LEN} characters"),
                });
            }
            Some(title) => title.to_owned(),
        };
        if let Some(d) = request.duration_seconds
            && !(1..=MAX_DURATION_SECONDS).contains(&d)
        {
            return Err(JobError::InvalidField {
                field: "duration_seconds",
                reason: format!("must be between 1 and {MAX_DURATION_SECONDS}"),
            });
        }

        let settings = &self.inner.settings;
        let recordings_dir = settings.recordings_dir();
        let logs_dir = settings.logs_dir();
        let gate = self.inner.start_gate.read().await;
        // Checked again under the gate: shutdown takes the gate exclusively
        // after cancelling, so no recorder starts once stop_all has run.
        if self.inner.shutdown.is_cancelled() {
            return Err(JobError::ShuttingDown);
        }
        let (recording, job) = repo::insert_recording_and_job(
            &self.inner.db,
            NewRecording {
                title: &title,
                source: &request.source,
                profile: &profile_name,
                output_extension: &profile.output_extension,
                recordings_dir: &recordings_dir,
                logs_dir: &logs_dir,
                duration_seconds: request.duration_seconds.map(|d| d as i64),
                node: &self.inner.settings.node_id,
            },
        )
        .await?;
        let span = info_span!("job", job_id = job.id, recording_id = recording.id);
        let argv = render_argv(
            &profile.command,
            &[
                ("source", &request.source),
                ("output", &recording.output_path),
                (
                    "duration",
                    &request.duration_seconds.unwrap_or(0).to_string(),
                ),
                ("job_id", &job.id.to_string()),
                ("recording_id", &recording.id.to_string()),
            ],
        );
        let spawned = self.inner.supervisor.spawn(SpawnSpec {
            job_id: job.id,
            argv,
            log_path: PathBuf::from(&job.log_path),
            stall: profile.stall_timeout().map(|timeout| StallCheck {
                output: PathBuf::from(&recording.output_path),
                timeout,
            }),
        });
        // The gate stays held until the job's fate is written: its identity,
        // or its failure. A reconciliation meanwhile would take it for an
        // orphan without a process.
        let identity = match spawned {
            Ok(identity) => identity,
            Err(e) => {
                warn!(parent: &span, error = %e, "recorder could not be spawned");
                self.inner.metrics.spawn_failed();
                self.finish(job.id, Ending::SpawnFailed(e.to_string()))
                    .await?;
                return Err(JobError::Spawn {
                    job_id: job.id,
                    source: e,
                });
            }
        };
        let job = match repo::set_process_identity(&self.inner.db, job.id, identity).await {
            Ok(Some(job)) => job,
            // Ended already (the recorder exited at once): show it as it is.
            Ok(None) => job,
            Err(e) => {
                // A recorder whose identity is not stored could not be
                // adopted after a crash: it is killed rather than risk an
                // orphan nobody can control. Its exit is recorded as usual.
                error!(parent: &span, error = %e, "could not record the recorder's identity; killing it");
                self.inner.supervisor.kill(job.id);
                return Err(JobError::Database(e));
            }
        };
        drop(gate);
        self.inner.events.publish("job.started", &job);
        info!(parent: &span, pid = identity.pid, source = %request.source, profile = %profile_name, "job started");
        if let Some(seconds) = request.duration_seconds {
            self.arm_duration_limit(job.id, Duration::from_secs(seconds));
        }
        Ok(Started { job, recording })
    }

    /// Stops the job when its duration limit elapses (at once if it already
    /// has, as for a job adopted after a restart).
    fn arm_duration_limit(&self, job_id: i32, after: Duration) {
        let this = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tracker.spawn(
            async move {
                tokio::select! {
                    () = tokio::time::sleep(after) => {}
                    () = shutdown.cancelled() => return,
                }
                match this.stop_for(job_id, StopReason::Duration).await {
                    Ok(_) => info!("duration limit reached; job stopping"),
                    // Ended already, or deleted with its recording since.
                    Err(JobError::JobAlreadyEnded { .. } | JobError::JobNotFound { .. }) => {}
                    Err(e) => warn!(error = %e, "could not stop the job at its duration limit"),
                }
            }
            .instrument(info_span!("job", job_id)),
        );
    }

    /// Marks the job `stopping` and begins the profile's stop sequence. Does
    /// not wait for the recorder to end. Stopping a job that is already
    /// stopping asks again (the sequence under way is not restarted).
    pub async fn stop(&self, job_id: i32) -> Result<Job, JobError> {
        self.stop_for(job_id, StopReason::Requested).await
    }

    /// [`JobService::stop`], recording why the stop was asked for.
    pub async fn stop_for(&self, job_id: i32, reason: StopReason) -> Result<Job, JobError> {
        let db = &self.inner.db;
        // Worked out before the state changes, so that a failure here cannot
        // leave a job `stopping` with nothing sent.
        let plan = self.stop_plan(job_id).await?;
        loop {
            let job = repo::find_job(db, job_id)
                .await?
                .ok_or(JobError::JobNotFound { id: job_id })?;
            match job.status {
                JobStatus::Completed | JobStatus::Failed => {
                    return Err(JobError::JobAlreadyEnded {
                        id: job_id,
                        status: job.status,
                    });
                }
                JobStatus::Stopping => break,
                JobStatus::Running => {
                    if repo::mark_stopping(db, job_id, reason).await? {
                        info!(job_id, reason = reason.as_str(), "stop requested");
                        // Published before any signal is sent, so the
                        // stream shows `stopping` before the job's end.
                        if let Some(stopping) = repo::find_job(db, job_id).await? {
                            self.inner.events.publish("job.stopping", &stopping);
                        }
                        break;
                    }
                    // Its status changed meanwhile; look again.
                }
            }
        }
        if !self.inner.supervisor.stop(job_id, plan) {
            // Nobody here owns it: its process is gone (it is ended now) or
            // it is verifiably alive (adopted, and the adoption begins the
            // stop sequence of a `stopping` job).
            self.reconcile_one(job_id).await?;
        }
        repo::find_job(db, job_id)
            .await?
            .ok_or(JobError::JobNotFound { id: job_id })
    }

    async fn stop_plan(&self, job_id: i32) -> Result<StopPlan, JobError> {
        let profile = self.profile_of_job(job_id).await?;
        Ok(StopPlan {
            first_signal: profile.stop_signal(),
            grace: profile.stop_grace(),
        })
    }

    async fn profile_of_job(&self, job_id: i32) -> Result<Profile, JobError> {
        let job = repo::find_job(&self.inner.db, job_id)
            .await?
            .ok_or(JobError::JobNotFound { id: job_id })?;
        Ok(self.recording_and_profile(&job).await?.1)
    }

    /// A job's recording and the profile it was recorded with. A profile
    /// removed from the configuration since the job started falls back to
    /// the built-in defaults, so the job can still be stopped.
    async fn recording_and_profile(&self, job: &Job) -> Result<(Recording, Profile), JobError> {
        let recording = repo::find_recording(&self.inner.db, job.recording_id)
            .await?
            .ok_or(JobError::RecordingNotFound {
                id: job.recording_id,
            })?;
        let profile = self
            .profile(Some(&recording.profile))
            .map(|(_, p)| p)
            .unwrap_or_else(|_| Profile::ffmpeg());
        Ok((recording, profile))
    }

    pub async fn job(&self, job_id: i32) -> Result<Job, JobError> {
        repo::find_job(&self.inner.db, job_id)
            .await?
            .ok_or(JobError::JobNotFound { id: job_id })
    }

    pub async fn recording(&self, recording_id: i32) -> Result<Recording, JobError> {
        repo::find_recording(&self.inner.db, recording_id)
            .await?
            .ok_or(JobError::RecordingNotFound { id: recording_id })
    }

    /// Jobs in `running` or `stopping`, after reconciling those no task of
    /// this process owns: a job whose process is gone is never listed.
    pub async fn active(&self) -> Result<Vec<Job>, JobError> {
        Ok(self.reconcile_and_list().await?.1)
    }

    /// Reconciles every live job now; returns how many were ended.
    pub async fn cleanup(&self) -> Result<usize, JobError> {
        Ok(self.reconcile().await?)
    }

    /// The seed's `is_process_running` sweep, kept as the fallback for jobs
    /// no task of this process owns (left by a previous supervisor): a job
    /// whose process is gone, or whose PID now names another process, is
    /// ended; a live one with a verified identity is adopted.
    pub async fn reconcile(&self) -> Result<usize, DbErr> {
        Ok(self.reconcile_and_list().await?.0)
    }

    /// [`JobService::reconcile`], also returning the live jobs afterwards
    /// (read once when nothing had to be ended).
    async fn reconcile_and_list(&self) -> Result<(usize, Vec<Job>), DbErr> {
        let (live, candidates) = {
            let _exclusive = self.inner.start_gate.write().await;
            let live = repo::live_jobs(&self.inner.db).await?;
            let owned: HashSet<i32> = self.inner.supervisor.owned_jobs().into_iter().collect();
            let candidates: Vec<Job> = live
                .iter()
                .filter(|job| !owned.contains(&job.id))
                .cloned()
                .collect();
            (live, candidates)
        };
        // Another node's recorders are not in this process table: they are
        // judged by that node's heartbeat, never by a local PID.
        let (candidates, foreign): (Vec<Job>, Vec<Job>) =
            candidates.into_iter().partition(|job| self.is_mine(job));
        let mut gone = self.lost_to_silent_nodes(foreign).await?;
        if candidates.is_empty() && gone.is_empty() {
            return Ok((0, live));
        }
        let checked = tokio::task::spawn_blocking(move || {
            candidates
                .into_iter()
                .map(|job| {
                    let liveness =
                        identity::check_job(job.id, job.process_id, job.process_start_time);
                    (job, liveness)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| DbErr::Custom(format!("reconciliation task failed: {e}")))?;
        let mut ended = 0;
        for (job, liveness) in checked {
            match liveness {
                // Adopted, or ended on the spot if it died meanwhile.
                Liveness::Alive => {
                    if self.settle_unowned(&job, liveness).await? {
                        ended += 1;
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
        ended += self.end_gone(gone).await?;
        if ended == 0 {
            return Ok((0, live));
        }
        info!(ended, "reconciliation ended jobs whose process was gone");
        Ok((ended, repo::live_jobs(&self.inner.db).await?))
    }

    async fn reconcile_one(&self, job_id: i32) -> Result<bool, DbErr> {
        // Exclusive, like `reconcile`: a job being started is not an orphan.
        let _exclusive = self.inner.start_gate.write().await;
        let Some(job) = repo::find_job(&self.inner.db, job_id).await? else {
            return Ok(false);
        };
        if job.status.is_terminal() || self.inner.supervisor.owns(job_id) {
            return Ok(false);
        }
        if !self.is_mine(&job) {
            let gone = self.lost_to_silent_nodes(vec![job]).await?;
            return Ok(self.end_gone(gone).await? > 0);
        }
        let (pid, start) = (job.process_id, job.process_start_time);
        let liveness = tokio::task::spawn_blocking(move || identity::check_job(job_id, pid, start))
            .await
            .map_err(|e| DbErr::Custom(format!("identity check failed: {e}")))?;
        self.settle_unowned(&job, liveness).await
    }

    /// Whether this node supervises the job (jobs from before nodes were
    /// recorded count as this node's).
    fn is_mine(&self, job: &Job) -> bool {
        job.node
            .as_deref()
            .is_none_or(|node| node == self.inner.settings.node_id)
    }

    /// Of other nodes' live jobs, those whose node has sent no heartbeat
    /// for its own timeout, each with how it ends.
    async fn lost_to_silent_nodes(&self, foreign: Vec<Job>) -> Result<Vec<(Job, Ending)>, DbErr> {
        if foreign.is_empty() {
            return Ok(Vec::new());
        }
        let last_seen = crate::nodes::last_seen(&self.inner.db).await?;
        let now = OffsetDateTime::now_utc();
        Ok(foreign
            .into_iter()
            .filter_map(|job| {
                let node = job.node.clone().unwrap_or_default();
                let reason = match last_seen.get(&node) {
                    Some(seen) => {
                        if seen.is_alive(now) {
                            return None;
                        }
                        let silence = seen.silence(now);
                        format!(
                            "{}node `{node}` has sent no heartbeat for {} s (its timeout is {} s); \
                             its recorder can no longer be supervised, and what it recorded is on that node",
                            crate::nodes::NODE_LOST,
                            silence.whole_seconds(),
                            seen.timeout.as_secs()
                        )
                    }
                    None => format!(
                        "{}node `{node}` is unknown to this database; its recorder cannot be supervised",
                        crate::nodes::NODE_LOST
                    ),
                };
                Some((job, Ending::NodeLost(reason)))
            })
            .collect())
    }

    /// Begins the stop sequence of this node's owned jobs that another node
    /// marked `stopping` (a stop request that reached it). `forwarded`
    /// remembers those already begun, so each costs one lookup.
    pub async fn carry_out_remote_stops(
        &self,
        forwarded: &mut HashSet<i32>,
    ) -> Result<(), JobError> {
        if self.inner.supervisor.is_empty() {
            forwarded.clear();
            return Ok(());
        }
        let stopping =
            repo::stopping_job_ids_of_node(&self.inner.db, &self.inner.settings.node_id).await?;
        forwarded.retain(|id| stopping.contains(id));
        for job_id in stopping {
            if forwarded.contains(&job_id) || !self.inner.supervisor.owns(job_id) {
                continue;
            }
            let plan = self.stop_plan(job_id).await?;
            if self.inner.supervisor.stop(job_id, plan) {
                debug!(job_id, "stop sequence begun for a job marked stopping");
                forwarded.insert(job_id);
            }
        }
        Ok(())
    }

    /// This node's jobs that another node declared lost (this node was
    /// silent too long: paused, cut off from the database, or down). A
    /// recorder of theirs still running here is stopped: nothing records
    /// its end any more. Once it is gone, its recording, failed as lost,
    /// is processed here, where its file is. Also stops any recorder this
    /// process owns whose job has ended or was deleted meanwhile.
    /// `handled` remembers the recordings already dealt with.
    pub async fn recover_lost_jobs(&self, handled: &mut HashSet<i32>) -> Result<(), JobError> {
        self.stop_owned_without_a_live_job().await?;
        let since = OffsetDateTime::now_utc() - time::Duration::days(7);
        let jobs = repo::jobs_lost_by_node(
            &self.inner.db,
            &self.inner.settings.node_id,
            crate::nodes::NODE_LOST,
            since,
        )
        .await?;
        for job in jobs {
            if handled.contains(&job.recording_id) || self.inner.supervisor.owns(job.id) {
                // Owned: being stopped (above); processed once it is gone.
                continue;
            }
            handled.insert(job.recording_id);
            let (pid, start) = (job.process_id, job.process_start_time);
            let job_id = job.id;
            let alive = tokio::task::spawn_blocking(move || {
                matches!(identity::check_job(job_id, pid, start), Liveness::Alive)
            })
            .await
            .unwrap_or(false);
            let identity = ProcessIdentity {
                pid: pid.unwrap_or_default(),
                start_time: start.unwrap_or_default(),
            };
            let process = if alive {
                ForeignProcess::open(job.id, identity).ok().flatten()
            } else {
                None
            };
            // Each in its own task: a stubborn recorder takes up to its
            // grace period, and stops requested meanwhile must not wait.
            let this = self.clone();
            let recording_id = job.recording_id;
            self.inner.tracker.spawn(async move {
                if let Some(process) = process {
                    warn!(
                        job_id,
                        pid = identity.pid,
                        "a recorder of a job declared lost still runs; ending it"
                    );
                    if let Err(e) = process.terminate(Duration::from_secs(10)).await {
                        warn!(job_id, error = %e, "cannot end the recorder of a job declared lost");
                        return;
                    }
                }
                this.process_lost_recording(recording_id).await;
            });
        }
        Ok(())
    }

    /// Stops owned recorders whose job is no longer live in the database
    /// (ended by another node, or deleted with its recording): nothing
    /// would record their end.
    async fn stop_owned_without_a_live_job(&self) -> Result<(), JobError> {
        let owned = self.inner.supervisor.owned_jobs();
        if owned.is_empty() {
            return Ok(());
        }
        let live: HashSet<i32> = repo::live_job_ids_among(&self.inner.db, &owned)
            .await?
            .into_iter()
            .collect();
        for job_id in owned {
            if live.contains(&job_id) {
                continue;
            }
            // An exit being committed right now also looks like this for a
            // moment; a stop sent to a recorder that has exited is ignored.
            let plan = match self.stop_plan(job_id).await {
                Ok(plan) => plan,
                Err(_) => StopPlan {
                    first_signal: rustix::process::Signal::TERM,
                    grace: Duration::from_secs(10),
                },
            };
            if self.inner.supervisor.stop(job_id, plan) {
                warn!(
                    job_id,
                    "the job of this recorder was ended or deleted elsewhere; stopping it"
                );
            }
        }
        Ok(())
    }

    /// Processes a recording whose node was declared lost, if it is still
    /// failed for that reason.
    async fn process_lost_recording(&self, recording_id: i32) {
        let recording = match self.recording(recording_id).await {
            Ok(recording) => recording,
            Err(_) => return,
        };
        let lost = recording.status == RecordingStatus::Failed
            && recording
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(crate::nodes::NODE_LOST));
        if !lost {
            return;
        }
        match self.reprocess(recording_id).await {
            Ok(_) => info!(
                recording_id,
                "processing a recording its node was declared lost for"
            ),
            Err(e) => {
                warn!(recording_id, error = %e, "cannot process a recording its node was declared lost for")
            }
        }
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
                    Ok(None) => self
                        .finish(
                            job.id,
                            Ending::ProcessGone(
                                "the recorder's process no longer exists".to_owned(),
                            ),
                        )
                        .await
                        .map(|done| done.is_some()),
                    Err(e) => {
                        warn!(job_id = job.id, pid, error = %e, "cannot watch a live orphaned recorder");
                        Ok(false)
                    }
                }
            }
            // The PID answers but nothing recorded can prove it is ours: it
            // is neither ended nor ever signalled.
            Liveness::Unverified => Ok(false),
            gone => self
                .finish(job.id, Ending::ProcessGone(gone.describe()))
                .await
                .map(|done| done.is_some()),
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
        let stall = match self.recording_and_profile(job).await {
            Ok((recording, profile)) => profile.stall_timeout().map(|timeout| StallCheck {
                output: PathBuf::from(recording.output_path),
                timeout,
            }),
            Err(_) => None,
        };
        self.inner.supervisor.adopt(job.id, process, stall);
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

    /// Handles exits reported by the supervisor, each in its own task so one
    /// slow commit does not delay the others.
    async fn consume_exits(self, mut events: mpsc::UnboundedReceiver<SupervisorEvent>) {
        // Clean exits go to one committer that writes all those waiting in
        // one transaction; crashes (which may restart) are handled one by
        // one.
        let (batch_tx, batch_rx) = mpsc::unbounded_channel();
        self.inner
            .tracker
            .spawn(self.clone().commit_exit_batches(batch_rx));
        loop {
            let event = tokio::select! {
                // Events already queued are handled before closing.
                biased;
                event = events.recv() => event,
                () = self.inner.closed.cancelled() => None,
            };
            let this = self.clone();
            match event {
                None => break,
                Some(SupervisorEvent::Exited(exit)) if !may_restart(&exit) => {
                    let _ = batch_tx.send(exit);
                }
                Some(SupervisorEvent::Exited(exit)) => {
                    let span = info_span!("job", job_id = exit.job_id, pid = exit.pid);
                    self.inner
                        .tracker
                        .spawn(async move { this.record_exit(exit).await }.instrument(span));
                }
                Some(SupervisorEvent::Stalled { job_id, silent_for }) => {
                    let span = info_span!("job", job_id);
                    self.inner.tracker.spawn(
                        async move {
                            warn!(?silent_for, "stalled recorder: stopping it");
                            match this.stop_for(job_id, StopReason::Stalled).await {
                                Ok(_) | Err(JobError::JobAlreadyEnded { .. }) => {}
                                Err(e) => error!(error = %e, "could not stop a stalled recorder"),
                            }
                        }
                        .instrument(span),
                    );
                }
            }
        }
    }

    /// Commits exits in batches: whatever has queued while the previous
    /// batch was being written goes in the next one. Alone, an exit is
    /// committed at once; in a storm of exits, hundreds share a transaction.
    async fn commit_exit_batches(self, mut exits: mpsc::UnboundedReceiver<ExitEvent>) {
        while let Some(first) = exits.recv().await {
            let mut batch = vec![first];
            while batch.len() < repo::IN_LIST_CHUNK {
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
                    let this = self.clone();
                    let span = info_span!("job", job_id = exit.job_id, pid = exit.pid);
                    self.inner
                        .tracker
                        .spawn(async move { this.record_exit(exit).await }.instrument(span));
                } else {
                    self.observe_exit(&exit);
                    self.inner.supervisor.release(exit.job_id);
                }
            }
        }
    }

    /// Ends the batch's jobs, grouping those that end the same way into one
    /// conditional UPDATE each, all in one transaction. Returns the ids of
    /// jobs it could not end (their state changed meanwhile): the caller
    /// commits those one by one.
    async fn finish_exit_batch(&self, batch: &[ExitEvent]) -> Result<HashSet<i32>, DbErr> {
        let ids: Vec<i32> = batch.iter().map(|e| e.job_id).collect();
        let mut rows: HashMap<i32, (Job, Recording)> =
            repo::jobs_with_recordings(&self.inner.db, &ids)
                .await?
                .into_iter()
                .filter_map(|(job, recording)| recording.map(|r| (job.id, (job, r))))
                .collect();
        let items: Vec<(Job, Recording, Ending)> = batch
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

    /// Ends many live jobs, each with its own ending, in one transaction:
    /// jobs that end the same way (same state, same verdict, same fate of
    /// their recording) share one conditional UPDATE. Logs, publishes and
    /// launches processing for each job ended; returns their ids. Jobs
    /// whose state changed since they were read are left for the caller.
    async fn end_many(&self, items: Vec<(Job, Recording, Ending)>) -> Result<HashSet<i32>, DbErr> {
        if items.is_empty() {
            return Ok(HashSet::new());
        }
        let files: Vec<Vec<PathBuf>> = items.iter().map(|(_, r, _)| recorded_files(r)).collect();
        let outputs: Vec<OutputState> = tokio::task::spawn_blocking(move || {
            files
                .iter()
                .map(|files| recording_output_blocking(files))
                .collect()
        })
        .await
        .map_err(|e| DbErr::Custom(format!("reading outputs failed: {e}")))?;

        let mut groups: Vec<repo::FinishGroup> = Vec::new();
        let mut recordings: HashMap<i32, Recording> = HashMap::new();
        for ((job, recording, ending), output) in items.into_iter().zip(&outputs) {
            let (verdict, outcome) = self.decide(&job, &recording, &ending, output);
            match groups
                .iter_mut()
                .find(|g| g.from == job.status && g.verdict == verdict && g.outcome == outcome)
            {
                Some(group) => group.job_ids.push(job.id),
                None => groups.push(repo::FinishGroup {
                    from: job.status,
                    verdict,
                    outcome,
                    job_ids: vec![job.id],
                }),
            }
            recordings.insert(job.id, recording);
        }
        let ended = repo::finish_job_groups(&self.inner.db, &groups).await?;
        let mut ended_ids = HashSet::with_capacity(ended.len());
        for (job, group) in &ended {
            let group = &groups[*group];
            ended_ids.insert(job.id);
            info!(
                job_id = job.id,
                pid = job.process_id,
                from = group.from.as_str(),
                to = group.verdict.status.as_str(),
                exit_code = group.verdict.exit_code,
                exit_signal = group.verdict.exit_signal,
                error = group.verdict.error.as_deref(),
                recording = group.outcome.status.as_str(),
                "job ended"
            );
            let Some(recording) = recordings.get(&job.id) else {
                continue;
            };
            self.publish_end(job, recording, &group.outcome);
            if recording.status == RecordingStatus::Recording
                && group.outcome.status == RecordingStatus::Processing
            {
                self.inner.processing.launch(job.recording_id);
            }
        }
        Ok(ended_ids)
    }

    /// Commits one exit, retrying while the database is unavailable: the
    /// exit status exists only here, and the job stays owned (so no
    /// reconciliation replaces it with "exit status unknown") until it is
    /// written or retries run out.
    async fn record_exit(&self, event: ExitEvent) {
        let job_id = event.job_id;
        match self.try_restart(&event).await {
            // The new run is owned under the same job id: nothing to release.
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "could not restart the recorder"),
        }
        let ending = exit_ending(&event);
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=EXIT_COMMIT_ATTEMPTS {
            match self.finish(job_id, ending.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < EXIT_COMMIT_ATTEMPTS => {
                    warn!(error = %e, attempt, "could not record the recorder's exit; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => error!(error = %e, "could not record the recorder's exit; giving up"),
            }
        }
        let latency = event.observed_at.elapsed();
        debug!(latency_us = latency.as_micros() as u64, "exit committed");
        self.observe_exit(&event);
        self.inner.supervisor.release(job_id);
    }

    /// Starts a crashed recorder again when its profile allows it: the job
    /// stays `running` and moves to its next attempt, writing a new segment.
    /// True when a new run was started.
    async fn try_restart(&self, event: &ExitEvent) -> Result<bool, JobError> {
        if !may_restart(event) {
            return Ok(false);
        }
        let job = self.job(event.job_id).await?;
        if job.status != JobStatus::Running {
            return Ok(false);
        }
        let (recording, profile) = self.recording_and_profile(&job).await?;
        let restarts_done = u32::try_from(job.attempt.saturating_sub(1)).unwrap_or(0);
        if restarts_done >= profile.restart_attempts {
            return Ok(false);
        }
        let backoff = profile.restart_backoff(restarts_done + 1);
        warn!(
            attempt = job.attempt,
            outcome = ?event.outcome,
            ?backoff,
            "recorder crashed; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = self.inner.shutdown.cancelled() => return Ok(false),
        }
        let _gate = self.inner.start_gate.read().await;
        let job = self.job(event.job_id).await?;
        if job.status != JobStatus::Running || self.inner.shutdown.is_cancelled() {
            return Ok(false);
        }
        let next = job.attempt + 1;
        let segment = segment_path(Path::new(&recording.output_path), next);
        let mut history: Vec<serde_json::Value> = job
            .attempts
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let (exit_code, exit_signal) = match event.outcome {
            ExitOutcome::Exited(code) => (Some(code), None),
            ExitOutcome::Signalled(signal) => (None, Some(signal)),
            ExitOutcome::Vanished(_) => (None, None),
        };
        history.push(serde_json::json!({
            "attempt": job.attempt,
            "process_id": job.process_id,
            "exit_code": exit_code,
            "exit_signal": exit_signal,
            "ended_at": OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            "restarted_after_ms": backoff.as_millis() as u64,
        }));
        let mut segments: Vec<String> = recording
            .segments
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        segments.push(segment.display().to_string());
        // The attempt and its segment are claimed before the new run
        // exists: whatever becomes of that run (an instant exit, a crash, a
        // stop) is then handled as the next attempt's, never confused with
        // this one. Claimed only if the job is still running this attempt.
        let claimed = repo::claim_restart(
            &self.inner.db,
            &job,
            serde_json::Value::from(history).to_string(),
            serde_json::Value::from(segments).to_string(),
        )
        .await?;
        if !claimed {
            return Ok(false);
        }
        let argv = render_argv(
            &profile.command,
            &[
                ("source", &recording.source),
                ("output", &segment.display().to_string()),
                ("duration", &job.duration_seconds.unwrap_or(0).to_string()),
                ("job_id", &job.id.to_string()),
                ("recording_id", &recording.id.to_string()),
            ],
        );
        let identity = match self.inner.supervisor.spawn(SpawnSpec {
            job_id: job.id,
            argv,
            log_path: PathBuf::from(&job.log_path),
            stall: profile.stall_timeout().map(|timeout| StallCheck {
                output: segment.clone(),
                timeout,
            }),
        }) {
            Ok(identity) => identity,
            Err(e) => {
                // The job ends with the crash that asked for the restart.
                warn!(error = %e, "the recorder could not be restarted");
                return Ok(false);
            }
        };
        // From here the new run owns the job: its own exit will end it.
        // Without its identity stored it could not be adopted after a crash
        // of this supervisor, so it is killed rather than left that way.
        if let Err(e) = repo::set_process_identity(&self.inner.db, job.id, identity).await {
            error!(error = %e, "could not record the restarted recorder's identity; killing it");
            self.inner.supervisor.kill(job.id);
        }
        info!(attempt = next, pid = identity.pid, "recorder restarted");
        Ok(true)
    }

    /// The one transition out of `running`/`stopping`, shared by every path.
    /// Reads the job, decides its final state from the state it is in, and
    /// writes it only if that state is unchanged; on a lost race it reads
    /// again. Returns the ended job, or `None` when it had already ended.
    /// When its recording moves to `processing`, post-processing is launched
    /// here, so it runs exactly once per recording.
    pub async fn finish(&self, job_id: i32, ending: Ending) -> Result<Option<Job>, DbErr> {
        let db = &self.inner.db;
        loop {
            // One read for both, one conditional UPDATE … RETURNING: an exit
            // costs as few round trips to the database as it can.
            let Some((job, Some(recording))) = repo::find_job_with_recording(db, job_id).await?
            else {
                return Ok(None);
            };
            if job.status.is_terminal() {
                return Ok(None);
            }
            let files = recorded_files(&recording);
            let output = tokio::task::spawn_blocking(move || recording_output_blocking(&files))
                .await
                .map_err(|e| DbErr::Custom(format!("reading the output failed: {e}")))?;
            let (verdict, recording_outcome) = self.decide(&job, &recording, &ending, &output);
            let ended =
                repo::finish_jobs(db, &[job.id], job.status, &verdict, &recording_outcome).await?;
            let Some(ended) = ended.into_iter().next() else {
                // Its status changed meanwhile: decide again from the new one.
                continue;
            };
            info!(
                job_id,
                pid = job.process_id,
                from = job.status.as_str(),
                to = verdict.status.as_str(),
                exit_code = verdict.exit_code,
                exit_signal = verdict.exit_signal,
                error = verdict.error.as_deref(),
                recording = recording_outcome.status.as_str(),
                "job ended"
            );
            self.publish_end(&ended, &recording, &recording_outcome);
            if recording.status == RecordingStatus::Recording
                && recording_outcome.status == RecordingStatus::Processing
            {
                self.inner.processing.launch(recording.id);
            }
            return Ok(Some(ended));
        }
    }

    /// The job's verdict and its recording's fate, from what is known.
    fn decide(
        &self,
        job: &Job,
        recording: &Recording,
        ending: &Ending,
        output: &OutputState,
    ) -> (super::status::Verdict, RecordingOutcome) {
        let profile = self.profile(Some(&recording.profile)).ok().map(|(_, p)| p);
        let clean_exit_codes = profile
            .as_ref()
            .map(|p| p.clean_exit_codes.clone())
            .unwrap_or_else(|| vec![0]);
        // With no step to run and no segments to join, the recording is
        // ready as soon as its job ends: no processing round for nothing.
        let nothing_to_process = profile.as_ref().is_some_and(|p| p.pipeline().is_empty())
            && recording.segments.is_none();
        let verdict = verdict(
            JobContext {
                status: job.status,
                stop_reason: job.stop_reason.as_deref(),
                output_has_data: output.has_data(),
                clean_exit_codes: &clean_exit_codes,
            },
            ending,
        );
        let recording_outcome = match output {
            // The file is on the lost node, not here: judged there when the
            // node returns (see `recover_lost_jobs`).
            _ if matches!(ending, Ending::NodeLost(_)) => RecordingOutcome {
                status: RecordingStatus::Failed,
                error: verdict.error.clone(),
            },
            OutputState::HasData if nothing_to_process => RecordingOutcome {
                status: RecordingStatus::Ready,
                error: None,
            },
            OutputState::HasData => RecordingOutcome {
                status: RecordingStatus::Processing,
                error: None,
            },
            other => RecordingOutcome {
                status: RecordingStatus::Failed,
                error: Some(match &verdict.error {
                    Some(job_error) => format!("{}; {job_error}", other.describe()),
                    None => other.describe(),
                }),
            },
        };
        (verdict, recording_outcome)
    }

    /// Ends many unowned jobs whose processes are gone, in as few statements
    /// as their distinct outcomes allow: jobs that end the same way (same
    /// state, same reason, output or not) are ended by one conditional
    /// UPDATE per few hundred. Start-up after a crash with thousands of dead
    /// recorders takes a handful of transactions, not thousands.
    async fn end_gone(&self, gone: Vec<(Job, Ending)>) -> Result<usize, DbErr> {
        if gone.is_empty() {
            return Ok(0);
        }
        let recording_ids: Vec<i32> = gone.iter().map(|(j, _)| j.recording_id).collect();
        let recordings: HashMap<i32, Recording> =
            repo::recordings_by_ids(&self.inner.db, &recording_ids)
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
        let ended_ids = self.end_many(items).await?;
        let mut ended_count = ended_ids.len();
        // Jobs whose state changed since they were read (a stop landed):
        // the one-by-one transition reads them again and decides anew.
        for (job, ending) in gone {
            if !ended_ids.contains(&job.id) && self.finish(job.id, ending).await?.is_some() {
                ended_count += 1;
            }
        }
        Ok(ended_count)
    }

    /// The recording, if it is `ready` or `failed` and no pipeline of it runs
    /// here: what reprocessing and deletion require.
    async fn settled_recording(
        &self,
        recording_id: i32,
        action: &'static str,
    ) -> Result<Recording, JobError> {
        let recording = self.recording(recording_id).await?;
        if !matches!(
            recording.status,
            RecordingStatus::Ready | RecordingStatus::Failed
        ) {
            return Err(JobError::RecordingBusy {
                id: recording_id,
                status: recording.status,
                action,
            });
        }
        // A pipeline commits its outcome a moment before its task lets go
        // of the recording: a client that saw `ready` and acts at once
        // waits out that moment instead of being refused.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.inner.processing.is_running(recording_id) {
            if tokio::time::Instant::now() >= deadline {
                return Err(JobError::RecordingBusy {
                    id: recording_id,
                    status: RecordingStatus::Processing,
                    action,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(recording)
    }

    /// Refuses with [`JobError::OnOtherNode`] when `path` is not on this
    /// machine and the node that recorded it (`node`) is alive: that node
    /// has it. A file found here is used whoever wrote it (shared storage,
    /// or this node under an earlier id); a node gone silent has nothing to
    /// offer, so the caller goes on and says what is missing.
    async fn files_here(
        &self,
        what: String,
        node: Option<String>,
        path: &Path,
    ) -> Result<(), JobError> {
        let Some(node) = node.filter(|n| *n != self.inner.settings.node_id) else {
            return Ok(());
        };
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Ok(());
        }
        let seen = crate::nodes::last_seen(&self.inner.db).await?;
        let alive = seen
            .get(&node)
            .is_some_and(|s| s.is_alive(OffsetDateTime::now_utc()));
        if alive {
            return Err(JobError::OnOtherNode { what, node });
        }
        Ok(())
    }

    /// [`Self::files_here`] for a recording's file.
    async fn recording_here(&self, recording: &Recording) -> Result<(), JobError> {
        let node = repo::latest_job_node(&self.inner.db, recording.id).await?;
        self.files_here(
            format!("recording {}", recording.id),
            node,
            Path::new(&recording.output_path),
        )
        .await
    }

    /// Runs the recording's whole pipeline again.
    pub async fn reprocess(&self, recording_id: i32) -> Result<Recording, JobError> {
        let recording = self.settled_recording(recording_id, "reprocessed").await?;
        self.recording_here(&recording).await?;
        let files = recorded_files(&recording);
        let output = tokio::task::spawn_blocking(move || recording_output_blocking(&files))
            .await
            .map_err(|e| DbErr::Custom(format!("reading the output failed: {e}")))?;
        if !output.has_data() {
            return Err(JobError::NothingToProcess { id: recording_id });
        }
        if !steps::reset_for_reprocessing(&self.inner.db, recording_id).await? {
            // Someone else changed it meanwhile.
            let now = self.recording(recording_id).await?;
            return Err(JobError::RecordingBusy {
                id: recording_id,
                status: now.status,
                action: "reprocessed",
            });
        }
        info!(recording_id, "reprocessing");
        let now = self.recording(recording_id).await?;
        self.inner.events.publish("recording.processing", &now);
        self.inner.processing.launch(recording_id);
        Ok(now)
    }

    /// Deletes a recording that is neither recording nor processing, with
    /// its jobs, steps and files.
    pub async fn delete_recording(&self, recording_id: i32) -> Result<(), JobError> {
        let recording = self.settled_recording(recording_id, "deleted").await?;
        self.recording_here(&recording).await?;
        let (jobs, _) =
            repo::list_jobs(&self.inner.db, None, Some(recording_id), 1, 10_000).await?;
        if !repo::delete_settled_recording(&self.inner.db, recording_id).await? {
            let now = self.recording(recording_id).await?;
            return Err(JobError::RecordingBusy {
                id: recording_id,
                status: now.status,
                action: "deleted",
            });
        }
        let mut files: Vec<PathBuf> = vec![
            PathBuf::from(&recording.output_path),
            self.inner.processing.log_path(recording_id),
        ];
        files.extend(jobs.iter().map(|j| PathBuf::from(&j.log_path)));
        let workdir = self.inner.processing.workdir(recording_id);
        tokio::task::spawn_blocking(move || {
            for file in files {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => warn!(path = %file.display(), error = %e, "cannot remove file"),
                }
            }
            match std::fs::remove_dir_all(&workdir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %workdir.display(), error = %e, "cannot remove directory"),
            }
        })
        .await
        .map_err(|e| DbErr::Custom(format!("file removal failed: {e}")))?;
        info!(recording_id, "recording deleted");
        Ok(())
    }

    /// The recorded file, for serving.
    pub async fn media_path(&self, recording_id: i32) -> Result<PathBuf, JobError> {
        let recording = self.recording(recording_id).await?;
        self.recording_here(&recording).await?;
        let path = PathBuf::from(&recording.output_path);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(path),
            Ok(_) => Err(JobError::MediaUnavailable {
                id: recording_id,
                reason: "not a regular file".to_owned(),
            }),
            Err(e) => Err(JobError::MediaUnavailable {
                id: recording_id,
                reason: if e.kind() == std::io::ErrorKind::NotFound {
                    "no file was recorded".to_owned()
                } else {
                    e.to_string()
                },
            }),
        }
    }

    /// Cancelled by [`Self::close`], once shutdown has dealt with every
    /// recorder: what runs until then (heartbeats, webhook delivery)
    /// listens to it.
    pub fn closing(&self) -> CancellationToken {
        self.inner.closed.clone()
    }

    /// Ends the exit-event consumer: called at shutdown once every recorder's
    /// exit has been committed.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Begins the stop sequence of every owned recorder (graceful shutdown).
    pub async fn stop_all(&self) -> usize {
        // Waits out every start that got past its shutdown check, so each
        // recorder spawned is owned (and stopped) here.
        drop(self.inner.start_gate.write().await);
        let owned = self.inner.supervisor.owned_jobs();
        let mut stopped = 0;
        for job_id in owned {
            match self.stop_for(job_id, StopReason::Shutdown).await {
                Ok(_) => stopped += 1,
                Err(JobError::JobAlreadyEnded { .. }) => {}
                Err(e) => warn!(job_id, error = %e, "could not stop recorder at shutdown"),
            }
        }
        stopped
    }

    /// Reads the end of a job's log.
    pub async fn log_tail(&self, job_id: i32, max_bytes: u64) -> Result<LogTail, JobError> {
        let job = self.job(job_id).await?;
        self.files_here(
            format!("job {job_id}"),
            job.node.clone(),
            Path::new(&job.log_path),
        )
        .await?;
        let path = PathBuf::from(&job.log_path);
        let read = tokio::task::spawn_blocking(move || read_tail(&path, max_bytes))
            .await
            .map_err(|e| JobError::LogUnreadable {
                id: job_id,
                source: std::io::Error::other(e.to_string()),
            })?;
        match read {
            Ok(tail) => Ok(tail),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LogTail {
                size: 0,
                truncated: false,
                content: String::new(),
            }),
            Err(source) => Err(JobError::LogUnreadable { id: job_id, source }),
        }
    }
}

/// The last bytes of a log file, cut at a line boundary.
#[derive(Debug, Clone)]
pub struct LogTail {
    pub size: u64,
    pub truncated: bool,
    pub content: String,
}

fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<LogTail> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let start = size.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((size - start) as usize);
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let mut content = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0
        && let Some(newline) = content.find('\n')
    {
        content.drain(..=newline);
    }
    Ok(LogTail {
        size,
        truncated: start > 0,
        content,
    })
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

/// Where run number `attempt` (from 2) of a restarted recorder writes:
/// `recording-7.mkv` → `recording-7.part2.mkv`.
pub fn segment_path(output: &Path, attempt: i32) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}.part{attempt}.{}", ext.to_string_lossy()),
        None => format!("{stem}.part{attempt}"),
    };
    output.with_file_name(name)
}

/// What the recorder left behind.
enum OutputState {
    HasData,
    Empty,
    Missing,
    Unreadable(String),
}

impl OutputState {
    fn has_data(&self) -> bool {
        matches!(self, Self::HasData)
    }

    fn describe(&self) -> String {
        match self {
            Self::HasData => "output recorded".to_owned(),
            Self::Empty => "the recorder produced an empty output file".to_owned(),
            Self::Missing => "the recorder produced no output file".to_owned(),
            Self::Unreadable(e) => format!("the output file cannot be read: {e}"),
        }
    }
}

/// Every file the recording's recorder runs wrote: its output, then the
/// segments of restarted runs.
fn recorded_files(recording: &Recording) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(&recording.output_path)];
    if let Some(segments) = recording.segments.as_deref() {
        files.extend(
            serde_json::from_str::<Vec<String>>(segments)
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from),
        );
    }
    files
}

/// What the recorder runs left: data if any of their files holds some (a
/// first run that failed to open its source may have written nothing while
/// a restarted one recorded), otherwise the state of the first file.
fn recording_output_blocking(files: &[PathBuf]) -> OutputState {
    let mut first = None;
    for file in files {
        let state = classify_output(std::fs::metadata(file));
        if state.has_data() {
            return state;
        }
        first.get_or_insert(state);
    }
    first.unwrap_or(OutputState::Missing)
}

fn classify_output(metadata: std::io::Result<std::fs::Metadata>) -> OutputState {
    match metadata {
        Ok(meta) if meta.is_file() && meta.len() > 0 => OutputState::HasData,
        Ok(meta) if meta.is_file() => OutputState::Empty,
        Ok(_) => OutputState::Unreadable("not a regular file".to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OutputState::Missing,
        Err(e) => OutputState::Unreadable(e.to_string()),
    }
}

/// A source must be a URL whose scheme the profile allows, and can never be
/// mistaken for an option by the recorder.
fn validate_source(source: &str, profile_name: &str, profile: &Profile) -> Result<(), JobError> {
    let invalid = |reason: String| Err(JobError::InvalidSource { reason });
    if source.trim().is_empty() {
        return invalid("must not be empty".to_owned());
    }
    if source.chars().count() > MAX_SOURCE_LEN {
        return invalid(format!("longer than {MAX_SOURCE_LEN} characters"));
    }
    if source.starts_with('-') {
        return invalid("must not start with `-` (it would be read as an option)".to_owned());
    }
    if source.chars().any(char::is_control) {
        return invalid("must not contain control characters".to_owned());
    }
    let allowed = profile.allowed_schemes.join(", ");
    let Some((scheme, rest)) = source.split_once("://") else {
        return invalid(format!(
            "must be a URL such as rtmp://host/stream (profile `{profile_name}` allows: {allowed})"
        ));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return invalid(format!("`{source}` is not a valid URL"));
    }
    if !profile.allows_scheme(scheme) {
        return invalid(format!(
            "scheme `{scheme}` is not allowed by profile `{profile_name}` (allowed: {allowed})"
        ));
    }
    Ok(())
}
