//! Several recorderd nodes on one database: each job names the node that
//! supervises it, and each node says it is alive in `nodes`, so that a node
//! never judges another's jobs by its own process table, and the jobs of a
//! node that went silent are ended instead of staying `running`. Events
//! name the node that wrote them: each node streams and delivers its own.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    Node,
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Instance,
    TimeoutMs,
    StartedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Node,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(ColumnDef::new(RecordingJobs::Node).string_len(255).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Nodes::Id)
                            .string_len(255)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Nodes::Instance).string_len(255).not_null())
                    .col(ColumnDef::new(Nodes::TimeoutMs).big_integer().not_null())
                    .col(
                        ColumnDef::new(Nodes::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Nodes::LastSeenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(ColumnDef::new(Events::Node).string_len(255).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .drop_column(Events::Node)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Nodes::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .drop_column(RecordingJobs::Node)
                    .to_owned(),
            )
            .await
    }
}
