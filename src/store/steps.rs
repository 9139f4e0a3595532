//! Storage of pipeline steps: one row per step and recording, so progress is
//! visible and an interrupted pipeline resumes where it stopped.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use time::OffsetDateTime;

use super::Step;
use crate::entity::{StepStatus, processing_step};

/// The recording's steps in order, creating the missing ones as `pending`.
pub async fn ensure(
    db: &DatabaseConnection,
    recording_id: i32,
    names: &[String],
) -> Result<Vec<Step>, DbErr> {
    let existing = of_recording(db, recording_id).await?;
    for (position, name) in names.iter().enumerate() {
        if existing.iter().any(|s| &s.name == name) {
            continue;
        }
        processing_step::Entity::insert(processing_step::ActiveModel {
            recording_id: Set(recording_id),
            position: Set(position as i32),
            name: Set(name.clone()),
            status: Set(StepStatus::Pending),
            attempt: Set(0),
            ..Default::default()
        })
        .exec(db)
        .await?;
    }
    of_recording(db, recording_id).await
}

pub async fn of_recording(db: &DatabaseConnection, recording_id: i32) -> Result<Vec<Step>, DbErr> {
    processing_step::Entity::find()
        .filter(processing_step::Column::RecordingId.eq(recording_id))
        .order_by_asc(processing_step::Column::Position)
        .all(db)
        .await
}

/// A new attempt begins.
pub async fn started(db: &DatabaseConnection, step_id: i32, attempt: i32) -> Result<(), DbErr> {
    processing_step::Entity::update_many()
        .col_expr(
            processing_step::Column::Status,
            Expr::value(StepStatus::Running.to_value()),
        )
        .col_expr(processing_step::Column::Attempt, Expr::value(attempt))
        .col_expr(
            processing_step::Column::StartedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .col_expr(
            processing_step::Column::FinishedAt,
            Expr::value(Option::<OffsetDateTime>::None),
        )
        .filter(processing_step::Column::Id.eq(step_id))
        .exec(db)
        .await?;
    Ok(())
}

/// An attempt ended: `status` is final (`succeeded`/`failed`) or `pending`
/// when a retry follows.
pub async fn finished(
    db: &DatabaseConnection,
    step_id: i32,
    status: StepStatus,
    exit_code: Option<i32>,
    error: Option<String>,
    result: Option<String>,
) -> Result<(), DbErr> {
    processing_step::Entity::update_many()
        .col_expr(
            processing_step::Column::Status,
            Expr::value(status.to_value()),
        )
        .col_expr(processing_step::Column::ExitCode, Expr::value(exit_code))
        .col_expr(processing_step::Column::Error, Expr::value(error))
        .col_expr(processing_step::Column::Result, Expr::value(result))
        .col_expr(
            processing_step::Column::FinishedAt,
            Expr::value(OffsetDateTime::now_utc()),
        )
        .filter(processing_step::Column::Id.eq(step_id))
        .exec(db)
        .await?;
    Ok(())
}
