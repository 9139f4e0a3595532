//! The task that fires schedules on this node: it sleeps until the
//! earliest next slot of any schedule (or until a schedule changes here,
//! or its periodic look for changes made through other nodes), then
//! settles every passed slot: the latest within the grace fires, older
//! ones are recorded missed. Every node runs it; the claim of a slot's row
//! decides which node fires it.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::plan::{MAX_MISSED, plan};
use super::{Schedules, timing_of};
use crate::entity::{EventKind, FiringOutcome, ScheduleKind};
use crate::jobs::StartRequest;
use crate::store::schedules::{self as store, Schedule, Settled};

/// Longest sleep between looks: schedules created, paused or deleted
/// through another node are seen within this.
const RECHECK: Duration = Duration::from_secs(30);

impl Schedules {
    /// Fires schedules until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let next = match self.round().await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "cannot look at the schedules");
                    None
                }
            };
            let wait = next
                .map(|at| at - OffsetDateTime::now_utc())
                .and_then(|until| Duration::try_from(until).ok())
                .map_or(RECHECK, |until| until.min(RECHECK));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Settles every armed schedule's passed slots; returns the earliest
    /// slot still to come.
    async fn round(&self) -> Result<Option<OffsetDateTime>, sea_orm::DbErr> {
        // A node on its way out claims nothing: its start would be refused
        // and the slot lost, where another node (or this one, back within
        // the grace) can fire it.
        if self.inner.jobs.is_shutting_down() {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let mut earliest: Option<OffsetDateTime> = None;
        for schedule in store::armed(&self.inner.db).await? {
            let next = self.settle(&schedule, now).await?;
            earliest = match (earliest, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(earliest)
    }

    /// Fires or records as missed the schedule's passed slots; returns its
    /// next slot.
    async fn settle(
        &self,
        schedule: &Schedule,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, sea_orm::DbErr> {
        let db = &self.inner.db;
        let timing = match timing_of(schedule) {
            Ok(timing) => timing,
            Err(e) => {
                warn!(schedule_id = schedule.id, error = %e, "schedule cannot fire");
                return Ok(None);
            }
        };
        let latest = store::latest_slot(db, schedule.id).await?;
        // Slots before the latest recorded one are never looked at again.
        // The latest itself is, while it may still fire: a node that wakes
        // for it just after another node claimed it then tries its claim
        // and finds it taken (the claim's row is unique per slot), rather
        // than passing it over without a word.
        let from = latest.map_or(schedule.slots_from, |l| {
            let still_due = Duration::try_from(now - l).is_ok_and(|late| late <= self.inner.grace);
            let from = if still_due {
                l - time::Duration::SECOND
            } else {
                l
            };
            from.max(schedule.slots_from)
        });
        let slots = timing.between(from, now, MAX_MISSED + 1);
        let plan = plan(&slots, now, self.inner.grace);
        if !plan.missed.is_empty() {
            // Only the slots this node recorded are announced: others may
            // notice the same ones.
            for slot_at in store::record_missed(db, schedule.id, &plan.missed, now).await? {
                warn!(schedule_id = schedule.id, slot = %slot_at, "schedule slot missed");
                self.publish_firing(schedule.id, slot_at).await;
            }
        }
        if let Some(slot_at) = plan.due {
            if store::claim(db, schedule.id, slot_at, &self.inner.node_id, now).await? {
                // The start runs beside the loop: a start placed on another
                // node waits for it, and other schedules' slots must not.
                let firing = self.clone();
                let schedule = schedule.clone();
                self.inner
                    .tracker
                    .spawn(async move { firing.fire(schedule, slot_at).await });
            } else {
                debug!(schedule_id = schedule.id, slot = %slot_at, "slot claimed already, by another node or an earlier run");
            }
        }
        let passed = plan.due.is_some() || !plan.missed.is_empty() || latest.is_some();
        if schedule.kind == ScheduleKind::Once && passed {
            store::finish(db, schedule.id, now).await?;
            return Ok(None);
        }
        Ok(timing.next_after(now))
    }

    /// Starts the job of a slot this node claimed, as a client's start
    /// would, and records what came of it.
    async fn fire(self, schedule: Schedule, slot_at: OffsetDateTime) {
        let request = StartRequest {
            source: schedule.source.clone(),
            title: Some(schedule.title.clone()),
            profile: Some(schedule.profile.clone()),
            duration_seconds: u64::try_from(schedule.duration_seconds).ok(),
            ignored: Default::default(),
        };
        let settled = match self.inner.jobs.start(request).await {
            Ok(started) => {
                info!(schedule_id = schedule.id, slot = %slot_at, job_id = started.job.id, "schedule fired");
                Settled::Started {
                    job_id: started.job.id,
                }
            }
            Err(e) => {
                warn!(schedule_id = schedule.id, slot = %slot_at, error = %e, "schedule fired; the start was refused");
                Settled::Failed {
                    error: e.to_string(),
                }
            }
        };
        let now = OffsetDateTime::now_utc();
        if let Err(e) = store::settle(&self.inner.db, schedule.id, slot_at, settled, now).await {
            warn!(schedule_id = schedule.id, error = %e, "cannot record what came of a firing");
        }
        self.publish_firing(schedule.id, slot_at).await;
    }

    /// Publishes a settled slot's firing as an event.
    async fn publish_firing(&self, schedule_id: i32, slot_at: OffsetDateTime) {
        let firing = match store::firing(&self.inner.db, schedule_id, slot_at).await {
            Ok(Some(firing)) => firing,
            Ok(None) => return,
            Err(e) => {
                warn!(schedule_id, error = %e, "cannot read a firing to announce it");
                return;
            }
        };
        let kind = match firing.outcome {
            FiringOutcome::Missed => EventKind::ScheduleMissed,
            FiringOutcome::Starting | FiringOutcome::Started | FiringOutcome::Failed => {
                EventKind::ScheduleFired
            }
        };
        self.inner.events.publish(kind, &firing);
    }
}
