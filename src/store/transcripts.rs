//! Storage of transcripts: the recording's text and its timed segments,
//! written together so a search never sees one without the other.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, TransactionTrait,
};

use super::Segment;
use crate::entity::{recording, transcript_segment};

/// A segment as a transcription step found it, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    /// Milliseconds from the start of the recording.
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub text: String,
}

/// Rows per insert: five parameters each, far below any database's limit.
const INSERT_CHUNK: usize = 200;

/// Replaces the recording's transcript: its text (the segments' words, one
/// line each) and its segments, in one transaction.
pub async fn replace(
    db: &DatabaseConnection,
    recording_id: i32,
    segments: &[NewSegment],
) -> Result<(), DbErr> {
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let text = (!text.trim().is_empty()).then_some(text);
    let txn = db.begin().await?;
    delete_of(&txn, recording_id).await?;
    for (chunk_index, chunk) in segments.chunks(INSERT_CHUNK).enumerate() {
        let rows = chunk.iter().enumerate().map(|(i, s)| {
            let position = chunk_index * INSERT_CHUNK + i;
            transcript_segment::ActiveModel {
                recording_id: Set(recording_id),
                position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
                start_ms: Set(s.start_ms),
                end_ms: Set(s.end_ms),
                text: Set(s.text.clone()),
                ..Default::default()
            }
        });
        transcript_segment::Entity::insert_many(rows)
            .exec(&txn)
            .await?;
    }
    recording::Entity::update_many()
        .col_expr(recording::Column::Transcript, Expr::value(text))
        .filter(recording::Column::Id.eq(recording_id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// Forgets the recording's segments (its text is the caller's to clear).
pub async fn delete_of(db: &impl ConnectionTrait, recording_id: i32) -> Result<(), DbErr> {
    transcript_segment::Entity::delete_many()
        .filter(transcript_segment::Column::RecordingId.eq(recording_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The recording's segments, in order.
pub async fn of_recording(
    db: &DatabaseConnection,
    recording_id: i32,
) -> Result<Vec<Segment>, DbErr> {
    transcript_segment::Entity::find()
        .filter(transcript_segment::Column::RecordingId.eq(recording_id))
        .order_by_asc(transcript_segment::Column::Position)
        .all(db)
        .await
}
