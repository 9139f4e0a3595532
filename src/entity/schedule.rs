//! A schedule: a recording started at a set instant (one-shot) or at each
//! slot of a cron pattern read in an IANA time zone (recurring).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// When a schedule fires: once, or on a cron pattern.
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
pub enum ScheduleKind {
    /// At `start_at`, then never again.
    #[sea_orm(string_value = "once")]
    Once,
    /// At every slot of `cron` in `time_zone`.
    #[sea_orm(string_value = "cron")]
    Cron,
}

/// A schedule as stored and as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "schedules")]
#[schema(as = Schedule)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The title of each recording it starts.
    pub title: String,
    pub source: String,
    pub profile: String,
    pub kind: ScheduleKind,
    /// `once`: when it fires.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_at: Option<TimeDateTimeWithTimeZone>,
    /// `cron`: the pattern (5 fields, or 6 with seconds first).
    pub cron: Option<String>,
    /// `cron`: the IANA zone the pattern is read in (`Europe/Paris`).
    pub time_zone: Option<String>,
    /// How long each recording lasts.
    pub duration_seconds: i64,
    /// A paused schedule fires nothing; the slots it passes while paused
    /// are not counted as missed.
    pub paused: bool,
    /// Slots at or before this instant neither fire nor count as missed:
    /// the creation, then the last resume.
    #[serde(skip)]
    pub slots_from: TimeDateTimeWithTimeZone,
    /// A one-shot schedule whose slot has passed (fired or missed).
    pub finished: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: TimeDateTimeWithTimeZone,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::schedule_firing::Entity")]
    Firings,
}

impl Related<super::schedule_firing::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Firings.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
