//! A recorderd node sharing the database, and when it was last alive.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Which process runs the node: `<boot id>/<pid>/<start time>`, so a
    /// second server started with the same id can tell it is not alone.
    pub instance: String,
    /// The node's own `--node-timeout`: others judge its silence by it.
    pub timeout_ms: i64,
    pub started_at: TimeDateTimeWithTimeZone,
    /// Written every heartbeat, by the node's own clock.
    pub last_seen_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
