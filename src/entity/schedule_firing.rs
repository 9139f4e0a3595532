//! One slot of a schedule, claimed by the node whose insert won: the row
//! that makes the slot fire at most once, and what came of it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What became of a slot.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum FiringOutcome {
    /// Claimed: its node is starting the job. A node that dies here leaves
    /// it so: the slot is not fired again (at most once).
    #[sea_orm(string_value = "starting")]
    Starting,
    /// The job started: `job_id`.
    #[sea_orm(string_value = "started")]
    Started,
    /// Passed while no node ran the schedule, longer ago than the grace
    /// (or superseded by a later slot that fired late instead).
    #[sea_orm(string_value = "missed")]
    Missed,
    /// The start was refused (capacity, a source refused, …): `error`.
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "schedule_firings")]
#[schema(as = ScheduleFiring)]
pub struct Model {
    #[sea_orm(primary_key)]
    #[serde(skip)]
    pub id: i32,
    pub schedule_id: i32,
    /// The slot: the instant the schedule named, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub slot_at: TimeDateTimeWithTimeZone,
    /// The node that claimed it (`null` for a slot recorded as missed by
    /// whoever noticed).
    pub node: Option<String>,
    pub outcome: FiringOutcome,
    /// `started`: the job it started.
    pub job_id: Option<i32>,
    /// `failed`: why the start was refused.
    pub error: Option<String>,
    /// When the slot was claimed or found missed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: TimeDateTimeWithTimeZone,
    #[serde(skip)]
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::schedule::Entity",
        from = "Column::ScheduleId",
        to = "super::schedule::Column::Id"
    )]
    Schedule,
}

impl Related<super::schedule::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Schedule.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
