//! Several nodes as one service. A node's life is its lease (an advisory
//! lock held by one of its sessions, or a lock file), so `nodes` gains what
//! others need besides: the lease's generation and since when it is held,
//! where the node answers HTTP, its capacity, labels and version, whether
//! it shares its storage and is draining, and how it left. Each job records
//! the generation of the lease it runs under (fencing: a node acts only on
//! the jobs of the lease it holds); a job waiting to be placed is
//! `pending` (the status column already takes any word). A recording says
//! which node processes it, and files a node must remove for another are
//! queued in `file_removals`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Nodes {
    Table,
    LeaseGeneration,
    LeaseAcquiredAt,
    Url,
    MaxJobs,
    ProcessingSlots,
    ProcessingBusy,
    Labels,
    Version,
    SharedStorage,
    StorageProbe,
    Draining,
    Departure,
}

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    LeaseGeneration,
    Node,
    Status,
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    ProcessingNode,
}

#[derive(DeriveIden)]
enum FileRemovals {
    Table,
    Id,
    Node,
    Path,
    RecordingId,
    CreatedAt,
}

/// One column of `nodes`, added on its own (SQLite alters one at a time).
fn node_columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(Nodes::LeaseGeneration)
            .big_integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(Nodes::LeaseAcquiredAt)
            .timestamp_with_time_zone()
            .null()
            .to_owned(),
        ColumnDef::new(Nodes::Url).string_len(512).null().to_owned(),
        ColumnDef::new(Nodes::MaxJobs)
            .integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(Nodes::ProcessingSlots)
            .integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(Nodes::ProcessingBusy)
            .integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(Nodes::Labels)
            .json_binary()
            .null()
            .to_owned(),
        ColumnDef::new(Nodes::Version)
            .string_len(64)
            .not_null()
            .default("")
            .to_owned(),
        ColumnDef::new(Nodes::SharedStorage)
            .boolean()
            .not_null()
            .default(false)
            .to_owned(),
        ColumnDef::new(Nodes::StorageProbe)
            .string_len(64)
            .null()
            .to_owned(),
        ColumnDef::new(Nodes::Draining)
            .boolean()
            .not_null()
            .default(false)
            .to_owned(),
        ColumnDef::new(Nodes::Departure)
            .string_len(16)
            .null()
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in node_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Nodes::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .add_column(
                        ColumnDef::new(RecordingJobs::LeaseGeneration)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Recordings::Table)
                    .add_column(
                        ColumnDef::new(Recordings::ProcessingNode)
                            .string_len(255)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The lease check asks, several times a second, which nodes have
        // live jobs: answered from the index, whatever the history.
        manager
            .create_index(
                Index::create()
                    .name("idx_recording_jobs_status_node")
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::Status)
                    .col(RecordingJobs::Node)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FileRemovals::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(FileRemovals::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(FileRemovals::Node)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(FileRemovals::Path).text().null())
                    .col(ColumnDef::new(FileRemovals::RecordingId).integer().null())
                    .col(
                        ColumnDef::new(FileRemovals::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_file_removals_node")
                    .table(FileRemovals::Table)
                    .col(FileRemovals::Node)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FileRemovals::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_recording_jobs_status_node")
                    .table(RecordingJobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Recordings::Table)
                    .drop_column(Recordings::ProcessingNode)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RecordingJobs::Table)
                    .drop_column(RecordingJobs::LeaseGeneration)
                    .to_owned(),
            )
            .await?;
        for column in node_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Nodes::Table)
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
