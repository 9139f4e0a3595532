//! Schema migrations for recorderd. The live entities in the main crate are
//! never used here: each migration names its own tables and columns so that
//! it keeps meaning what it meant when it was written.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_recordings_and_jobs;
mod m20261129_000002_processing_steps;
mod m20261129_000003_recorder_restarts;
mod m20261129_000004_events;
mod m20261129_000005_webhook_cursors;
mod m20261129_000006_nodes;
mod m20261130_000007_typed_columns;
mod m20261130_000008_restart_window;
mod m20261130_000009_transcripts_and_search;
mod m20261130_000011_cluster;
mod m20261130_000013_history_indexes;
mod m20261130_000014_schedules;
mod m20261130_000015_segments;

/// Every migration, oldest first. `recorderd` runs them at start and through
/// `recorderd migrate`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_recordings_and_jobs::Migration),
            Box::new(m20261129_000002_processing_steps::Migration),
            Box::new(m20261129_000003_recorder_restarts::Migration),
            Box::new(m20261129_000004_events::Migration),
            Box::new(m20261129_000005_webhook_cursors::Migration),
            Box::new(m20261129_000006_nodes::Migration),
            Box::new(m20261130_000007_typed_columns::Migration),
            Box::new(m20261130_000008_restart_window::Migration),
            Box::new(m20261130_000009_transcripts_and_search::Migration),
            Box::new(m20261130_000011_cluster::Migration),
            Box::new(m20261130_000013_history_indexes::Migration),
            Box::new(m20261130_000014_schedules::Migration),
            Box::new(m20261130_000015_segments::Migration),
        ]
    }
}
