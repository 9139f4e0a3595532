//! Schedules: recordings started at a set instant or at each slot of a
//! cron pattern in a time zone. This service creates, shows, pauses and
//! deletes them (`timing.rs` says when slots fall, `request.rs` what a
//! client may ask), and its task (`runner.rs`) fires each slot through the
//! job service's start, exactly as a client's start would. A slot fires at
//! most once across nodes and restarts: its firing row is claimed by an
//! insert only one node can win (`store::schedules::claim`).

mod plan;
mod request;
mod runner;
pub mod timing;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

pub use request::CreateSchedule;
pub use timing::{Timing, TimingError};

use crate::entity::{EventKind, ScheduleKind};
use crate::events::EventLog;
use crate::jobs::{JobError, JobService};
use crate::profile::Profiles;
use crate::store::schedules::{self as store, Firing, Schedule};

/// How many upcoming slots a schedule's view lists.
const NEXT_FIRINGS: usize = 5;
/// How many past firings a schedule's view lists.
const RECENT_FIRINGS: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A field of the request is wrong, said as a start would say it.
    #[error(transparent)]
    Invalid(#[from] JobError),
    #[error("schedule {id} not found")]
    NotFound { id: i32 },
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// What the service needs besides the database.
pub struct ScheduleDeps {
    pub db: DatabaseConnection,
    pub jobs: JobService,
    pub events: EventLog,
    pub profiles: Arc<Profiles>,
    pub node_id: String,
    /// How late a missed slot may still fire (`--schedule-grace-seconds`).
    pub grace: Duration,
    /// Where the starts of firings run, so shutdown waits for them.
    pub tracker: TaskTracker,
}

/// The schedules of the database, and this node's part in firing them.
#[derive(Clone)]
pub struct Schedules {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    jobs: JobService,
    events: EventLog,
    profiles: Arc<Profiles>,
    node_id: String,
    grace: Duration,
    tracker: TaskTracker,
    /// Rung when a schedule is created or changed here, so the runner
    /// recomputes at once instead of at its next look.
    wake: Notify,
}

/// Whether a schedule will fire again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    Active,
    Paused,
    /// A one-shot schedule whose slot has passed.
    Finished,
}

/// A schedule in a list: its next slot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleSummary {
    #[serde(flatten)]
    pub schedule: Schedule,
    pub state: ScheduleState,
    /// The next slot, in UTC (RFC 3339); `null` when it will not fire again
    /// or is paused.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_firing: Option<String>,
}

/// One schedule: its next slots and what became of its recent ones.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleDetail {
    #[serde(flatten)]
    pub summary: ScheduleSummary,
    /// The next slots (up to 5), in UTC (RFC 3339).
    #[schema(value_type = Vec<String>)]
    pub next_firings: Vec<String>,
    /// The latest firings, latest slot first.
    pub firings: Vec<Firing>,
}

impl Schedules {
    pub fn new(deps: ScheduleDeps) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: deps.db,
                jobs: deps.jobs,
                events: deps.events,
                profiles: deps.profiles,
                node_id: deps.node_id,
                grace: deps.grace,
                tracker: deps.tracker,
                wake: Notify::new(),
            }),
        }
    }

    pub async fn create(&self, request: CreateSchedule) -> Result<ScheduleDetail, ScheduleError> {
        let new = request.validate(&self.inner.profiles, OffsetDateTime::now_utc())?;
        let schedule = store::insert(&self.inner.db, new).await?;
        tracing::info!(schedule_id = schedule.id, kind = ?schedule.kind, "schedule created");
        self.inner
            .events
            .publish(EventKind::ScheduleCreated, &schedule);
        self.inner.wake.notify_one();
        self.detail(schedule).await
    }

    pub async fn list(&self) -> Result<Vec<ScheduleSummary>, ScheduleError> {
        let now = OffsetDateTime::now_utc();
        let mut summaries = Vec::new();
        for schedule in store::all(&self.inner.db).await? {
            let latest = store::latest_slot(&self.inner.db, schedule.id).await?;
            let next = upcoming(&schedule, latest, now, 1).into_iter().next();
            summaries.push(summary(schedule, next));
        }
        Ok(summaries)
    }

    pub async fn show(&self, id: i32) -> Result<ScheduleDetail, ScheduleError> {
        let schedule = self.find(id).await?;
        self.detail(schedule).await
    }

    /// Pauses (`true`) or resumes a schedule. Slots passed while paused are
    /// neither fired nor recorded as missed.
    pub async fn set_paused(&self, id: i32, paused: bool) -> Result<ScheduleDetail, ScheduleError> {
        let schedule = store::set_paused(&self.inner.db, id, paused, OffsetDateTime::now_utc())
            .await?
            .ok_or(ScheduleError::NotFound { id })?;
        tracing::info!(schedule_id = id, paused, "schedule paused or resumed");
        self.inner.wake.notify_one();
        self.detail(schedule).await
    }

    /// Deletes a schedule and its firings; the recordings it made stay.
    pub async fn delete(&self, id: i32) -> Result<(), ScheduleError> {
        if !store::delete(&self.inner.db, id).await? {
            return Err(ScheduleError::NotFound { id });
        }
        tracing::info!(schedule_id = id, "schedule deleted");
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn find(&self, id: i32) -> Result<Schedule, ScheduleError> {
        store::find(&self.inner.db, id)
            .await?
            .ok_or(ScheduleError::NotFound { id })
    }

    async fn detail(&self, schedule: Schedule) -> Result<ScheduleDetail, ScheduleError> {
        let firings = store::recent_firings(&self.inner.db, schedule.id, RECENT_FIRINGS).await?;
        let latest = firings.first().map(|f| f.slot_at);
        let next = upcoming(&schedule, latest, OffsetDateTime::now_utc(), NEXT_FIRINGS);
        let next_firings: Vec<String> = next.iter().map(|&at| rfc3339(at)).collect();
        Ok(ScheduleDetail {
            summary: summary(schedule, next.first().copied()),
            next_firings,
            firings,
        })
    }
}

fn summary(schedule: Schedule, next: Option<OffsetDateTime>) -> ScheduleSummary {
    let state = if schedule.finished {
        ScheduleState::Finished
    } else if schedule.paused {
        ScheduleState::Paused
    } else {
        ScheduleState::Active
    };
    ScheduleSummary {
        schedule,
        state,
        next_firing: next.map(rfc3339),
    }
}

/// The schedule's timing, from its stored columns.
pub fn timing_of(schedule: &Schedule) -> Result<Timing, TimingError> {
    match schedule.kind {
        ScheduleKind::Once => Ok(Timing::Once {
            at: schedule.start_at.unwrap_or(schedule.created_at),
        }),
        ScheduleKind::Cron => Timing::cron(
            schedule.cron.as_deref().unwrap_or_default(),
            schedule.time_zone.as_deref().unwrap_or_default(),
        ),
    }
}

/// The next `n` slots a schedule will fire, after `now` and after its
/// latest settled slot; none while it is paused or finished.
fn upcoming(
    schedule: &Schedule,
    latest: Option<OffsetDateTime>,
    now: OffsetDateTime,
    n: usize,
) -> Vec<OffsetDateTime> {
    if schedule.paused || schedule.finished {
        return Vec::new();
    }
    let Ok(timing) = timing_of(schedule) else {
        return Vec::new();
    };
    let after = latest.map_or(now, |latest| latest.max(now));
    timing.upcoming(after, n)
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}
