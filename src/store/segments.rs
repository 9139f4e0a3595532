//! Segments of continuous recordings: each closed segment a recording of
//! its own, numbered in its parent's order.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use time::OffsetDateTime;

use super::Recording;
use crate::entity::{RecordingStatus, recording};

/// A segment its recorder closed, as the watcher of its list read it.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    pub path: &'a str,
    /// From the job's start.
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// Adds a closed segment of `parent` as a recording in `processing`,
/// numbered after the parent's last one. `None` when that file is already
/// one of its segments (a list read again after a restart of the server).
pub async fn add_segment(
    db: &DatabaseConnection,
    parent: &Recording,
    segment: NewSegment<'_>,
) -> Result<Option<Recording>, DbErr> {
    let txn = db.begin().await?;
    let known = recording::Entity::find()
        .filter(recording::Column::ParentId.eq(parent.id))
        .filter(recording::Column::OutputPath.eq(segment.path))
        .one(&txn)
        .await?;
    if known.is_some() {
        return Ok(None);
    }
    let last: Option<Option<i32>> = recording::Entity::find()
        .select_only()
        .column(recording::Column::SegmentIndex)
        .filter(recording::Column::ParentId.eq(parent.id))
        .order_by_desc(recording::Column::SegmentIndex)
        .into_tuple()
        .one(&txn)
        .await?;
    let index = last.flatten().unwrap_or(0) + 1;
    let now = OffsetDateTime::now_utc();
    let title = match parent.title.as_str() {
        "" => format!("segment {index}"),
        title => format!("{title} (segment {index})"),
    };
    let inserted = recording::Entity::insert(recording::ActiveModel {
        title: Set(title),
        source: Set(parent.source.clone()),
        profile: Set(parent.profile.clone()),
        status: Set(RecordingStatus::Processing),
        output_path: Set(segment.path.to_owned()),
        error: Set(None),
        parent_id: Set(Some(parent.id)),
        segment_index: Set(Some(index)),
        segment_start_ms: Set(Some(segment.start_ms)),
        segment_duration_ms: Set(Some(segment.duration_ms)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    let added = recording::Entity::find_by_id(inserted.last_insert_id)
        .one(&txn)
        .await?;
    txn.commit().await?;
    Ok(added)
}

/// A recording's segments, in order.
pub async fn of_parent(db: &DatabaseConnection, parent_id: i32) -> Result<Vec<Recording>, DbErr> {
    recording::Entity::find()
        .filter(recording::Column::ParentId.eq(parent_id))
        .order_by_asc(recording::Column::SegmentIndex)
        .all(db)
        .await
}
