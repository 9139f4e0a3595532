//! Where a start runs, and the starts other nodes placed on this one. A
//! start is decided under one lock for the whole cluster (no two starts
//! count the same free slot): here when this node holds its lease, is not
//! draining or leaving, offers the labels the profile requires and has a
//! free slot; otherwise on the live node with the most free slots, as a
//! `pending` job that node claims (woken at once, `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL) and starts. The answer waits for that start and
//! names the node; when no node can take the job, 503 `at_capacity`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sea_orm::{DatabaseTransaction, DbErr};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::request::find_profile;
use super::status::Ending;
use super::{JobError, JobService, NoRoomHere, Started, ValidStart};
use crate::entity::{EndCause, JobStatus};
use crate::nodes::placement::{Room, choose};
use crate::nodes::{Message, Place};
use crate::store::placement::{Admission, NewRecording, Placed};
use crate::store::{self, Job, Recording};

/// How long a start placed on another node waits for it to start the
/// recorder before it is withdrawn (and answered 503).
const PLACEMENT_WAIT: Duration = Duration::from_secs(5);
/// How often the placed job is looked at besides being told.
const PLACEMENT_POLL: Duration = Duration::from_millis(50);

/// Starts placed elsewhere, each waiting to hear that its node started it.
#[derive(Default)]
pub(super) struct Waiting {
    waiters: Mutex<HashMap<i32, Arc<Notify>>>,
}

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Arc<Notify>>> {
        // Single inserts and removals: a poisoned map is still valid.
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, job_id: i32) -> Arc<Notify> {
        self.lock().entry(job_id).or_default().clone()
    }

    fn remove(&self, job_id: i32) {
        self.lock().remove(&job_id);
    }

    /// A placed job was started (or ended): its waiter answers.
    pub(super) fn wake(&self, job_id: i32) {
        if let Some(waiter) = self.lock().get(&job_id) {
            waiter.notify_one();
        }
    }
}

/// Where the starts of one admission go, decided one after the other in
/// its transaction. The nodes' rows are read once; this node's count once,
/// then kept as starts are placed here, so that a batch of starts that fit
/// here costs one count in all.
struct Deciding<'a> {
    service: &'a JobService,
    /// This node's lease generation when the admission began.
    generation: Option<i64>,
    rows: Option<Vec<store::nodes::Node>>,
    /// The jobs this node holds, counting those placed here so far.
    held_here: Option<u64>,
}

impl Deciding<'_> {
    async fn decide(
        &mut self,
        txn: &DatabaseTransaction,
        required: &[String],
    ) -> Result<Option<Placed>, DbErr> {
        let settings = &self.service.inner.settings;
        let me = &settings.node_id;
        if self.rows.is_none() {
            self.rows = Some(store::nodes::all(txn).await?);
        }
        let rows = self.rows.as_deref().unwrap_or_default();
        let mine = rows.iter().find(|r| &r.id == me);
        let open_here = self.generation.is_some()
            && mine.is_none_or(|r| !r.draining && r.departure.is_none())
            && crate::nodes::placement::has_labels(&settings.cluster.labels, required);
        // The common case costs one count per admission: this node has room.
        if let Some(generation) = self.generation
            && open_here
        {
            let held = match self.held_here {
                Some(held) => held,
                None => store::placement::held_by_node(txn, me).await?,
            };
            self.held_here = Some(held);
            if held < settings.limits.max_jobs as u64 {
                self.held_here = Some(held + 1);
                return Ok(Some(Placed {
                    node: me.clone(),
                    status: JobStatus::Running,
                    lease_generation: Some(generation),
                }));
            }
        }
        // Counted again from the rows (this transaction's included) the
        // next time: this start may land here by the rule below.
        self.held_here = None;
        let held = store::nodes::held_jobs_by_node(txn).await?;
        let others: Vec<String> = rows
            .iter()
            .filter(|r| &r.id != me)
            .map(|r| r.id.clone())
            .collect();
        let alive = self
            .service
            .inner
            .lease
            .alive_among_on(txn, &others)
            .await?;
        let rooms: Vec<Room> = rows
            .iter()
            .map(|r| Room {
                node: r.id.clone(),
                free: i64::from(r.max_jobs) - held.get(&r.id).copied().unwrap_or(0),
                labels: r.labels.clone().map(|l| l.0).unwrap_or_default(),
                open: if &r.id == me {
                    open_here
                } else {
                    alive.contains(&r.id) && !r.draining && r.departure.is_none()
                },
            })
            .collect();
        Ok(choose(&rooms, me, required).map(|room| {
            if &room.node == me {
                Placed {
                    node: me.clone(),
                    status: JobStatus::Running,
                    lease_generation: self.generation,
                }
            } else {
                Placed {
                    node: room.node.clone(),
                    status: JobStatus::Pending,
                    lease_generation: None,
                }
            }
        }))
    }
}

impl JobService {
    /// Decides where each validated start runs and stores its recording
    /// and job there (`running` here, or `pending` on the node chosen), all
    /// in one transaction: the answer for each start, in order. Fails as a
    /// whole only when the transaction does.
    pub(super) async fn admit_all(
        &self,
        starts: &[&ValidStart],
    ) -> Result<Vec<Result<(Recording, Job), JobError>>, DbErr> {
        let settings = &self.inner.settings;
        let admission = match self.inner.lease.place() {
            Place::Postgres(_) => Admission::Advisory(crate::nodes::lease::placement_key()),
            Place::Files(_) | Place::Process => Admission::WriteFirst {
                node: settings.node_id.clone(),
            },
        };
        let mut deciding = Deciding {
            service: self,
            generation: self.inner.lease.state().held(),
            rows: None,
            held_here: None,
        };
        let (recordings_dir, logs_dir) = (settings.recordings_dir(), settings.logs_dir());
        let txn = store::placement::begin_admission(&self.inner.db, &admission).await?;
        let mut admitted = Vec::with_capacity(starts.len());
        for start in starts {
            let new = NewRecording {
                title: &start.title,
                source: &start.source,
                profile: &start.profile_name,
                output_extension: &start.profile.output_extension,
                recordings_dir: &recordings_dir,
                logs_dir: &logs_dir,
                duration_seconds: start.duration_seconds.map(|d| d as i64),
            };
            admitted.push(
                match deciding.decide(&txn, &start.profile.node_labels).await? {
                    Some(placed) => Some(store::placement::insert(&txn, new, placed).await?),
                    None => None,
                },
            );
        }
        if admitted.iter().any(Option::is_some) {
            txn.commit().await?;
        } else {
            txn.rollback().await?;
        }
        let mut answers = Vec::with_capacity(admitted.len());
        for (start, admitted) in starts.iter().zip(admitted) {
            answers.push(match admitted {
                Some(admitted) => Ok(admitted),
                None if !start.profile.node_labels.is_empty() => Err(JobError::NoNodeWithLabels {
                    labels: start.profile.node_labels.join(", "),
                }),
                None => match self.no_room_here().await {
                    Ok(here) => Err(JobError::AtCapacity { here }),
                    Err(e) => Err(JobError::Database(e)),
                },
            });
        }
        Ok(answers)
    }

    /// Why this node took no start itself, as it stands now (said in the
    /// refusal, so that a drained node is not mistaken for a full one).
    async fn no_room_here(&self) -> Result<NoRoomHere, DbErr> {
        if self.inner.lease.state().held().is_none() {
            return Ok(NoRoomHere::NoLease);
        }
        let me = &self.inner.settings.node_id;
        let row = store::nodes::find(&self.inner.db, me).await?;
        Ok(match row {
            Some(row) if row.draining => NoRoomHere::Draining,
            Some(row) if row.departure.is_some() => NoRoomHere::Leaving,
            _ => NoRoomHere::Full {
                limit: self.inner.settings.limits.max_jobs,
            },
        })
    }

    /// Wakes the node a job was placed on and waits until it started the
    /// recorder; the answer is the job as that node stored it. A job not
    /// started in time is withdrawn (as if never accepted) and refused.
    pub(super) async fn await_placed(
        &self,
        job: Job,
        recording: Recording,
    ) -> Result<Started, JobError> {
        let node = job.node.clone().unwrap_or_default();
        let told = self.inner.placements.register(job.id);
        let began = tokio::time::Instant::now();
        self.inner.bell.ring(&node, Message::Placed).await;
        let answer = loop {
            let now = self.job(job.id).await?;
            match now.status {
                JobStatus::Pending => {}
                // Claimed; started once its identity is stored (or it
                // waits to be restarted after an instant crash).
                JobStatus::Running | JobStatus::Stopping
                    if now.process_id.is_none() && now.restart_at.is_none() => {}
                JobStatus::Running | JobStatus::Stopping => break Ok(now),
                JobStatus::Completed | JobStatus::Failed => break self.placed_end(now, &node),
            }
            if began.elapsed() >= PLACEMENT_WAIT {
                if now.status == JobStatus::Pending
                    && store::placement::withdraw_placed(&self.inner.db, &now).await?
                {
                    warn!(job_id = job.id, %node, "a placed start was not taken in time; withdrawn");
                    break Err(JobError::NotPlaced {
                        node: node.clone(),
                        reason: format!("did not start it within {PLACEMENT_WAIT:?}"),
                    });
                }
                if began.elapsed() >= PLACEMENT_WAIT * 2 {
                    // Claimed, still spawning: answered as it stands.
                    break Ok(now);
                }
            }
            tokio::select! {
                () = told.notified() => {}
                () = tokio::time::sleep(PLACEMENT_POLL) => {}
            }
        };
        self.inner.placements.remove(job.id);
        let job = answer?;
        let recording = store::recordings::find_recording(&self.inner.db, job.recording_id)
            .await?
            .unwrap_or(recording);
        info!(job_id = job.id, %node, elapsed = ?began.elapsed(), "placed start running");
        Ok(Started { job, recording })
    }

    /// The answer for a placed job that ended before it was seen running.
    fn placed_end(&self, job: Job, node: &str) -> Result<Job, JobError> {
        match job.end_cause {
            Some(EndCause::SpawnFailed) => Err(JobError::PlacedSpawn {
                job_id: job.id,
                node: node.to_owned(),
                reason: job.error.unwrap_or_default(),
            }),
            Some(EndCause::NodeLost) => Err(JobError::NotPlaced {
                node: node.to_owned(),
                reason: "was lost before starting it".to_owned(),
            }),
            // It ran and ended already (an instant exit), or was stopped.
            _ => Ok(job),
        }
    }

    /// Starts the jobs other nodes placed on this one, oldest first, while
    /// it holds its lease. Returns how many were started.
    pub async fn claim_placed(&self) -> Result<usize, JobError> {
        let me = &self.inner.settings.node_id;
        let mut started = 0;
        loop {
            if self.inner.shutdown.is_cancelled() {
                break;
            }
            let Some(generation) = self.inner.lease.state().held() else {
                break;
            };
            let gate = self.inner.start_gate.read().await;
            let Some(job) = store::placement::claim_placed(&self.inner.db, me, generation).await?
            else {
                break;
            };
            let job_id = job.id;
            self.start_claimed(gate, job).await;
            self.inner.bell.ring_all(Message::Started { job_id }).await;
            started += 1;
        }
        Ok(started)
    }

    /// Starts one claimed job: its recorder spawned as for a start made
    /// here, or the job failed saying why.
    async fn start_claimed(&self, gate: tokio::sync::RwLockReadGuard<'_, ()>, job: Job) {
        let job_id = job.id;
        let recording =
            match store::recordings::find_recording(&self.inner.db, job.recording_id).await {
                Ok(Some(recording)) => recording,
                Ok(None) => return,
                Err(e) => {
                    warn!(job_id, error = %e, "cannot read a placed job's recording");
                    return;
                }
            };
        let profile = match find_profile(&self.inner.settings.profiles, Some(&recording.profile)) {
            Ok((_, profile)) => profile,
            Err(_) => {
                drop(gate);
                let reason = format!(
                    "profile `{}` is not configured on node `{}`",
                    recording.profile, self.inner.settings.node_id
                );
                warn!(job_id, %reason, "cannot start a placed job");
                if let Err(e) = self.finish(job_id, Ending::SpawnFailed(reason)).await {
                    warn!(job_id, error = %e, "cannot end a placed job");
                }
                return;
            }
        };
        match self.launch_first(gate, job, recording, &profile).await {
            Ok(started) => info!(
                job_id,
                pid = started.job.process_id,
                "started a job placed on this node"
            ),
            Err(e) => warn!(job_id, error = %e, "a job placed on this node did not start"),
        }
    }

    /// A placed job was started elsewhere: its waiter here answers.
    pub(super) fn placed_started(&self, job_id: i32) {
        self.inner.placements.wake(job_id);
    }
}
