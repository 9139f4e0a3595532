//! One stretch of a recording's transcript: the words said between two
//! times, so a player can caption them and a search can say where.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transcript_segments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub recording_id: i32,
    /// Order within the transcript, from 0.
    pub position: i32,
    /// Milliseconds from the start of the recording.
    pub start_ms: i64,
    /// When the words end; unknown for a transcript without times.
    pub end_ms: Option<i64>,
    pub text: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::recording::Entity",
        from = "Column::RecordingId",
        to = "super::recording::Column::Id"
    )]
    Recording,
}

impl Related<super::recording::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Recording.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
