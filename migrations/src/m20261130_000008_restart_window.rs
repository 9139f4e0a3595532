//! A job waiting to be restarted after its recorder ended says when its next
//! run starts, so that nobody takes it for a live recorder meanwhile.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    RestartAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(
                        ColumnDef::new(RecordingJobs::RestartAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .drop_column(RecordingJobs::RestartAt)
                    .to_owned(),
            )
            .await
    }
}
