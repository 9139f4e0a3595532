//! One entry of the event log: a job or recording transition.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `job.started`, `job.stopping`, `job.completed`, `job.failed`,
    /// `recording.processing`, `recording.ready`, `recording.failed`.
    pub kind: String,
    /// The job or recording as JSON, as it was after the transition.
    pub payload: String,
    pub created_at: TimeDateTimeWithTimeZone,
    /// The node whose transition this is.
    pub node: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
