//! Indexes that keep the queries of the present from growing with the
//! history of ended jobs:
//!
//! - `(status, id)`: the live jobs (`active`, reconciliation) and a job
//!   list filtered by status, newest first, read in index order (on
//!   PostgreSQL too, where an index on `status` alone leaves a sort of
//!   every matching row). It replaces the index on `status` alone, of
//!   which it is a superset.
//! - `(node, status, end_cause, completed_at)`: a node's jobs in one state
//!   (`stopping` ones asked for elsewhere, live ones for `--max-jobs`),
//!   jobs from before nodes were recorded (`node IS NULL`, claimed at
//!   start-up), and the jobs a node lost while it was silent (ended with
//!   cause `node_lost` since a time), which otherwise read every ended
//!   job of the node.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordingJobs {
    Table,
    Id,
    Status,
    Node,
    EndCause,
    CompletedAt,
}

const STATUS: &str = "idx_recording_jobs_status";
const STATUS_ID: &str = "idx_recording_jobs_status_id";
const NODE_STATUS: &str = "idx_recording_jobs_node_status_end";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(STATUS_ID)
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::Status)
                    .col(RecordingJobs::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(NODE_STATUS)
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::Node)
                    .col(RecordingJobs::Status)
                    .col(RecordingJobs::EndCause)
                    .col(RecordingJobs::CompletedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(STATUS)
                    .table(RecordingJobs::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(STATUS)
                    .table(RecordingJobs::Table)
                    .col(RecordingJobs::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for name in [NODE_STATUS, STATUS_ID] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(RecordingJobs::Table)
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
