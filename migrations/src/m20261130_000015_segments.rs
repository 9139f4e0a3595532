//! Segmented recordings: each closed segment of a continuous recording is
//! a recording of its own, linked to the recording of its job (its
//! parent) with its place in the stream: its index (from 1, across the
//! job's runs) and where it starts and how long it lasts, in milliseconds
//! from the job's start. Indexed by parent, so a parent's segments are
//! read in order without reading every recording.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    ParentId,
    SegmentIndex,
    SegmentStartMs,
    SegmentDurationMs,
}

const PARENT_INDEX: &str = "idx_recordings_parent_segment";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        add(
            manager,
            ColumnDef::new(Recordings::ParentId).integer().null(),
        )
        .await?;
        add(
            manager,
            ColumnDef::new(Recordings::SegmentIndex).integer().null(),
        )
        .await?;
        add(
            manager,
            ColumnDef::new(Recordings::SegmentStartMs)
                .big_integer()
                .null(),
        )
        .await?;
        add(
            manager,
            ColumnDef::new(Recordings::SegmentDurationMs)
                .big_integer()
                .null(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name(PARENT_INDEX)
                    .table(Recordings::Table)
                    .col(Recordings::ParentId)
                    .col(Recordings::SegmentIndex)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PARENT_INDEX)
                    .table(Recordings::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Recordings::SegmentDurationMs,
            Recordings::SegmentStartMs,
            Recordings::SegmentIndex,
            Recordings::ParentId,
        ] {
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

async fn add(manager: &SchemaManager<'_>, column: &mut ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(Recordings::Table)
                .add_column(column)
                .to_owned(),
        )
        .await
}
