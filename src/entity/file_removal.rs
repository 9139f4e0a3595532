//! A file a node must remove for another: a recording deleted through a
//! node that cannot reach its files. Its node removes it when told (at
//! once, or at its next start).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "file_removals")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The node holding the file.
    pub node: String,
    /// A file to remove.
    pub path: Option<String>,
    /// A recording whose processing files (its log, its work directory)
    /// are to be removed: their paths are the node's own.
    pub recording_id: Option<i32>,
    pub created_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
