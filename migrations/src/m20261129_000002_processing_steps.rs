//! Tracked post-processing: one row per pipeline step of a recording, the
//! recording's analysis and transcript, and how each job's stop went.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    Analysis,
    Transcript,
}

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    StopReason,
    StopSignal,
    StopDurationMs,
}

#[derive(DeriveIden)]
enum ProcessingSteps {
    Table,
    Id,
    RecordingId,
    Position,
    Name,
    Status,
    Attempt,
    StartedAt,
    FinishedAt,
    ExitCode,
    Error,
    Result,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Recordings::Analysis)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Recordings::Transcript)
                .text()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Recordings::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            ColumnDef::new(RecordingJobs::StopReason)
                .string_len(16)
                .null()
                .to_owned(),
            ColumnDef::new(RecordingJobs::StopSignal)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(RecordingJobs::StopDurationMs)
                .big_integer()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RecordingJobs::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ProcessingSteps::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ProcessingSteps::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ProcessingSteps::RecordingId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProcessingSteps::Position)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ProcessingSteps::Name).string().not_null())
                    .col(
                        ColumnDef::new(ProcessingSteps::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProcessingSteps::Attempt)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(ProcessingSteps::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ProcessingSteps::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ProcessingSteps::ExitCode).integer().null())
                    .col(ColumnDef::new(ProcessingSteps::Error).text().null())
                    .col(ColumnDef::new(ProcessingSteps::Result).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_processing_steps_recording")
                            .from(ProcessingSteps::Table, ProcessingSteps::RecordingId)
                            .to(Recordings::Table, Recordings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_processing_steps_recording_name")
                    .table(ProcessingSteps::Table)
                    .col(ProcessingSteps::RecordingId)
                    .col(ProcessingSteps::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProcessingSteps::Table).to_owned())
            .await?;
        for column in [
            RecordingJobs::StopReason,
            RecordingJobs::StopSignal,
            RecordingJobs::StopDurationMs,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RecordingJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [Recordings::Analysis, Recordings::Transcript] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Recordings::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
