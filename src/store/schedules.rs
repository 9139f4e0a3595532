//! Storage of schedules and of their firings. A firing's row is claimed by
//! an insert that does nothing on conflict with `(schedule_id, slot_at)`:
//! of all nodes (and restarts) that try a slot, exactly one insert wins.
//! What to fire, and when, is decided by `schedules`, not here.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, TryInsertResult,
};
use time::OffsetDateTime;

use crate::entity::{FiringOutcome, ScheduleKind, schedule, schedule_firing};

pub type Schedule = schedule::Model;
pub type Firing = schedule_firing::Model;

/// A schedule as created: validated by the caller.
pub struct NewSchedule {
    pub title: String,
    pub source: String,
    pub profile: String,
    pub kind: ScheduleKind,
    pub start_at: Option<OffsetDateTime>,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub duration_seconds: i64,
    pub now: OffsetDateTime,
}

pub async fn insert(db: &DatabaseConnection, new: NewSchedule) -> Result<Schedule, DbErr> {
    let model = schedule::ActiveModel {
        title: Set(new.title),
        source: Set(new.source),
        profile: Set(new.profile),
        kind: Set(new.kind),
        start_at: Set(new.start_at),
        cron: Set(new.cron),
        time_zone: Set(new.time_zone),
        duration_seconds: Set(new.duration_seconds),
        paused: Set(false),
        slots_from: Set(new.now),
        finished: Set(false),
        created_at: Set(new.now),
        updated_at: Set(new.now),
        ..Default::default()
    };
    schedule::Entity::insert(model)
        .exec_with_returning(db)
        .await
}

/// Every schedule, oldest first.
pub async fn all(db: &DatabaseConnection) -> Result<Vec<Schedule>, DbErr> {
    schedule::Entity::find()
        .order_by_asc(schedule::Column::Id)
        .all(db)
        .await
}

pub async fn find(db: &DatabaseConnection, id: i32) -> Result<Option<Schedule>, DbErr> {
    schedule::Entity::find_by_id(id).one(db).await
}

/// The schedules that may fire: neither paused nor finished.
pub async fn armed(db: &DatabaseConnection) -> Result<Vec<Schedule>, DbErr> {
    schedule::Entity::find()
        .filter(schedule::Column::Paused.eq(false))
        .filter(schedule::Column::Finished.eq(false))
        .order_by_asc(schedule::Column::Id)
        .all(db)
        .await
}

/// Pauses or resumes a schedule, when it is not so already. A resume moves
/// `slots_from` to `now`: the slots it passed while paused are neither
/// fired nor counted as missed. Returns the schedule as it is now.
pub async fn set_paused(
    db: &DatabaseConnection,
    id: i32,
    paused: bool,
    now: OffsetDateTime,
) -> Result<Option<Schedule>, DbErr> {
    let mut update = schedule::Entity::update_many()
        .col_expr(schedule::Column::Paused, Expr::value(paused))
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now));
    if !paused {
        update = update.col_expr(schedule::Column::SlotsFrom, Expr::value(now));
    }
    update
        .filter(schedule::Column::Id.eq(id))
        .filter(schedule::Column::Paused.eq(!paused))
        .exec(db)
        .await?;
    find(db, id).await
}

/// Marks a one-shot schedule whose slot has passed.
pub async fn finish(db: &DatabaseConnection, id: i32, now: OffsetDateTime) -> Result<(), DbErr> {
    schedule::Entity::update_many()
        .col_expr(schedule::Column::Finished, Expr::value(true))
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes a schedule and its firings (not the jobs they started).
/// Returns whether it existed.
pub async fn delete(db: &DatabaseConnection, id: i32) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    schedule_firing::Entity::delete_many()
        .filter(schedule_firing::Column::ScheduleId.eq(id))
        .exec(&txn)
        .await?;
    let deleted = schedule::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

/// The latest slot of the schedule that has a firing (whatever its
/// outcome): slots up to it are settled.
pub async fn latest_slot(
    db: &DatabaseConnection,
    schedule_id: i32,
) -> Result<Option<OffsetDateTime>, DbErr> {
    Ok(schedule_firing::Entity::find()
        .filter(schedule_firing::Column::ScheduleId.eq(schedule_id))
        .order_by_desc(schedule_firing::Column::SlotAt)
        .limit(1)
        .one(db)
        .await?
        .map(|f| f.slot_at))
}

/// The schedule's most recent firings, latest slot first.
pub async fn recent_firings(
    db: &DatabaseConnection,
    schedule_id: i32,
    limit: u64,
) -> Result<Vec<Firing>, DbErr> {
    schedule_firing::Entity::find()
        .filter(schedule_firing::Column::ScheduleId.eq(schedule_id))
        .order_by_desc(schedule_firing::Column::SlotAt)
        .limit(limit)
        .all(db)
        .await
}

/// Claims a slot for `node`: true when this insert created its row, false
/// when another node (or an earlier run of this one) holds it already.
pub async fn claim(
    db: &DatabaseConnection,
    schedule_id: i32,
    slot_at: OffsetDateTime,
    node: &str,
    now: OffsetDateTime,
) -> Result<bool, DbErr> {
    let node = Some(node.to_owned());
    insert_firing(db, schedule_id, slot_at, node, FiringOutcome::Starting, now).await
}

/// Records slots that passed unfired; those recorded already are left as
/// they are. Returns the slots this call recorded.
pub async fn record_missed(
    db: &DatabaseConnection,
    schedule_id: i32,
    slots: &[OffsetDateTime],
    now: OffsetDateTime,
) -> Result<Vec<OffsetDateTime>, DbErr> {
    let mut created = Vec::new();
    // One insert per slot: "do nothing on conflict" must count per row, and
    // the list is short (the caller bounds it).
    for &slot_at in slots {
        if insert_firing(db, schedule_id, slot_at, None, FiringOutcome::Missed, now).await? {
            created.push(slot_at);
        }
    }
    Ok(created)
}

/// Inserts a slot's firing row unless the slot has one: true when this
/// insert created it. The unique `(schedule_id, slot_at)` makes exactly
/// one insert win, whichever node or run tries.
async fn insert_firing(
    db: &DatabaseConnection,
    schedule_id: i32,
    slot_at: OffsetDateTime,
    node: Option<String>,
    outcome: FiringOutcome,
    now: OffsetDateTime,
) -> Result<bool, DbErr> {
    let row = schedule_firing::ActiveModel {
        schedule_id: Set(schedule_id),
        slot_at: Set(slot_at),
        node: Set(node),
        outcome: Set(outcome),
        job_id: Set(None),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let result = schedule_firing::Entity::insert(row)
        .on_conflict_do_nothing_on([
            schedule_firing::Column::ScheduleId,
            schedule_firing::Column::SlotAt,
        ])
        .exec(db)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(_)))
}

/// How a claimed slot's start ended.
pub enum Settled {
    Started { job_id: i32 },
    Failed { error: String },
}

/// Writes what came of a claimed slot (only while it is `starting`).
pub async fn settle(
    db: &DatabaseConnection,
    schedule_id: i32,
    slot_at: OffsetDateTime,
    settled: Settled,
    now: OffsetDateTime,
) -> Result<(), DbErr> {
    let (outcome, job_id, error) = match settled {
        Settled::Started { job_id } => (FiringOutcome::Started, Some(job_id), None),
        Settled::Failed { error } => (FiringOutcome::Failed, None, Some(error)),
    };
    schedule_firing::Entity::update_many()
        .col_expr(
            schedule_firing::Column::Outcome,
            Expr::value(outcome.to_value()),
        )
        .col_expr(schedule_firing::Column::JobId, Expr::value(job_id))
        .col_expr(schedule_firing::Column::Error, Expr::value(error))
        .col_expr(schedule_firing::Column::UpdatedAt, Expr::value(now))
        .filter(schedule_firing::Column::ScheduleId.eq(schedule_id))
        .filter(schedule_firing::Column::SlotAt.eq(slot_at))
        .filter(schedule_firing::Column::Outcome.eq(FiringOutcome::Starting))
        .exec(db)
        .await?;
    Ok(())
}

/// The firing of one slot.
pub async fn firing(
    db: &DatabaseConnection,
    schedule_id: i32,
    slot_at: OffsetDateTime,
) -> Result<Option<Firing>, DbErr> {
    schedule_firing::Entity::find()
        .filter(schedule_firing::Column::ScheduleId.eq(schedule_id))
        .filter(schedule_firing::Column::SlotAt.eq(slot_at))
        .one(db)
        .await
}
