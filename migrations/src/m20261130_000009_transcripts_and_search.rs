//! Transcripts with time, and full-text search over what was said.
//!
//! A transcript is kept as segments (`transcript_segments`: a start, an end
//! and the words between), so a player can show captions and a search can
//! say where a word was said. Recordings whose transcript predates this
//! become one segment at 0 s.
//!
//! Search is each database's own: on SQLite two FTS5 tables kept in step
//! by triggers (`recording_search`: title and whole transcript, by
//! recording; `segment_search`: each segment's words), on PostgreSQL a
//! generated `tsvector` column with a GIN index on each table. Both stem
//! English words (`porter` / the `english` configuration).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TranscriptSegments {
    Table,
    Id,
    RecordingId,
    Position,
    StartMs,
    EndMs,
    Text,
}

/// Recordings transcribed before segments existed: one segment each.
const BACKFILL_SEGMENTS: &str = "INSERT INTO transcript_segments (recording_id, position, start_ms, end_ms, text) \
     SELECT id, 0, 0, NULL, transcript FROM recordings \
     WHERE transcript IS NOT NULL AND transcript <> ''";

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE recording_search USING fts5(title, transcript, tokenize = 'porter unicode61')",
    "CREATE VIRTUAL TABLE segment_search USING fts5(text, tokenize = 'porter unicode61')",
    "CREATE TRIGGER recording_search_insert AFTER INSERT ON recordings BEGIN \
       INSERT INTO recording_search (rowid, title, transcript) VALUES (new.id, new.title, coalesce(new.transcript, '')); \
     END",
    "CREATE TRIGGER recording_search_update AFTER UPDATE OF title, transcript ON recordings BEGIN \
       DELETE FROM recording_search WHERE rowid = old.id; \
       INSERT INTO recording_search (rowid, title, transcript) VALUES (new.id, new.title, coalesce(new.transcript, '')); \
     END",
    "CREATE TRIGGER recording_search_delete AFTER DELETE ON recordings BEGIN \
       DELETE FROM recording_search WHERE rowid = old.id; \
     END",
    "CREATE TRIGGER segment_search_insert AFTER INSERT ON transcript_segments BEGIN \
       INSERT INTO segment_search (rowid, text) VALUES (new.id, new.text); \
     END",
    "CREATE TRIGGER segment_search_delete AFTER DELETE ON transcript_segments BEGIN \
       DELETE FROM segment_search WHERE rowid = old.id; \
     END",
    "INSERT INTO recording_search (rowid, title, transcript) \
     SELECT id, title, coalesce(transcript, '') FROM recordings",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS segment_search_delete",
    "DROP TRIGGER IF EXISTS segment_search_insert",
    "DROP TRIGGER IF EXISTS recording_search_delete",
    "DROP TRIGGER IF EXISTS recording_search_update",
    "DROP TRIGGER IF EXISTS recording_search_insert",
    "DROP TABLE IF EXISTS segment_search",
    "DROP TABLE IF EXISTS recording_search",
];

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE recordings ADD COLUMN search tsvector GENERATED ALWAYS AS ( \
       setweight(to_tsvector('english', coalesce(title, '')), 'A') || \
       setweight(to_tsvector('english', coalesce(transcript, '')), 'B')) STORED",
    "CREATE INDEX idx_recordings_search ON recordings USING gin (search)",
    "ALTER TABLE transcript_segments ADD COLUMN search tsvector \
       GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX idx_transcript_segments_search ON transcript_segments USING gin (search)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS idx_recordings_search",
    "ALTER TABLE recordings DROP COLUMN IF EXISTS search",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TranscriptSegments::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TranscriptSegments::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TranscriptSegments::RecordingId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TranscriptSegments::Position)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TranscriptSegments::StartMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TranscriptSegments::EndMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(TranscriptSegments::Text).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transcript_segments_recording")
                            .from(TranscriptSegments::Table, TranscriptSegments::RecordingId)
                            .to(Recordings::Table, Recordings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transcript_segments_recording")
                    .table(TranscriptSegments::Table)
                    .col(TranscriptSegments::RecordingId)
                    .col(TranscriptSegments::Position)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE_UP,
            DbBackend::Postgres => POSTGRES_UP,
            _ => &[],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        // After the triggers: on SQLite they index the segments as they go in.
        db.execute_unprepared(BACKFILL_SEGMENTS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE_DOWN,
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => &[],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        manager
            .drop_table(Table::drop().table(TranscriptSegments::Table).to_owned())
            .await
    }
}
