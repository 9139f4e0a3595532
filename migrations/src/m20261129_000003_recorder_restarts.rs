//! Recorder restarts: a job counts its attempts and keeps their history; a
//! recording made of several attempts lists its segments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Segments,
}

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    Attempt,
    Attempts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Recordings::Table)
                    .add_column(ColumnDef::new(Recordings::Segments).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(
                        ColumnDef::new(RecordingJobs::Attempt)
                            .integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(ColumnDef::new(RecordingJobs::Attempts).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [RecordingJobs::Attempt, RecordingJobs::Attempts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RecordingJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Recordings::Table)
                    .drop_column(Recordings::Segments)
                    .to_owned(),
            )
            .await
    }
}
