//! State that was carried in text becomes typed: a job records how it ended
//! (`end_cause`), where a lost node was once only a prefix of its `error`;
//! and on PostgreSQL the JSON kept in text columns (a job's earlier runs, a
//! recording's segments and analysis) moves to `jsonb`. SQLite stores JSON
//! as text either way.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    EndCause,
    Error,
    ExitCode,
    ExitSignal,
}

/// Text columns that hold JSON, by table.
const JSON_COLUMNS: &[(&str, &str)] = &[
    ("recording_jobs", "attempts"),
    ("recordings", "segments"),
    ("recordings", "analysis"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(
                        ColumnDef::new(RecordingJobs::EndCause)
                            .string_len(16)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Jobs ended before the column existed: a lost node said so in the
        // first words of `error`; a known exit status means the recorder's
        // own exit was seen. Other endings stay unknown (NULL).
        let db = manager.get_connection();
        db.execute(
            &Query::update()
                .table(RecordingJobs::Table)
                .value(RecordingJobs::EndCause, "node_lost")
                .and_where(Expr::col(RecordingJobs::Error).like("node lost: %"))
                .to_owned(),
        )
        .await?;
        db.execute(
            &Query::update()
                .table(RecordingJobs::Table)
                .value(RecordingJobs::EndCause, "exited")
                .and_where(Expr::col(RecordingJobs::EndCause).is_null())
                .and_where(
                    Expr::col(RecordingJobs::ExitCode)
                        .is_not_null()
                        .or(Expr::col(RecordingJobs::ExitSignal).is_not_null()),
                )
                .to_owned(),
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            for (table, column) in JSON_COLUMNS {
                db.execute_unprepared(&format!(
                    "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE jsonb USING \"{column}\"::jsonb"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for (table, column) in JSON_COLUMNS {
                db.execute_unprepared(&format!(
                    "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE text USING \"{column}\"::text"
                ))
                .await?;
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .drop_column(RecordingJobs::EndCause)
                    .to_owned(),
            )
            .await
    }
}
