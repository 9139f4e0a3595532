//! The first schema: recordings and the recorder jobs that produce them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    Title,
    Source,
    Profile,
    Status,
    OutputPath,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    Id,
    RecordingId,
    Status,
    ProcessId,
    ProcessStartTime,
    ExitCode,
    ExitSignal,
    DurationSeconds,
    StartedAt,
    StopRequestedAt,
    CompletedAt,
    Error,
    LogPath,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Recordings::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Recordings::Title).string().not_null())
                    .col(ColumnDef::new(Recordings::Source).text().not_null())
                    .col(ColumnDef::new(Recordings::Profile).string().not_null())
                    .col(ColumnDef::new(Recordings::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Recordings::OutputPath).text().not_null())
                    .col(ColumnDef::new(Recordings::Error).text().null())
                    .col(
                        ColumnDef::new(Recordings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Recordings::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recordings_status")
                    .table(Recordings::Table)
                    .col(Recordings::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RecordingJobs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(RecordingJobs::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RecordingJobs::RecordingId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingJobs::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RecordingJobs::ProcessId).integer().null())
                    .col(
                        ColumnDef::new(RecordingJobs::ProcessStartTime)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(RecordingJobs::ExitCode).integer().null())
                    .col(ColumnDef::new(RecordingJobs::ExitSignal).integer().null())
                    .col(
                        ColumnDef::new(RecordingJobs::DurationSeconds)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RecordingJobs::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingJobs::StopRequestedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RecordingJobs::CompletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(RecordingJobs::Error).text().null())
                    .col(ColumnDef::new(RecordingJobs::LogPath).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recording_jobs_recording")
                            .from(RecordingJobs::Table, RecordingJobs::RecordingId)
                            .to(Recordings::Table, Recordings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recording_jobs_status")
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recording_jobs_recording_id")
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::RecordingId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecordingJobs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Recordings::Table).to_owned())
            .await
    }
}
