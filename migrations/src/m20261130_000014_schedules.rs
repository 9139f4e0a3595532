//! Schedules: recordings started at a set time or on a cron pattern in a
//! time zone. A schedule's firings are rows of `schedule_firings`, unique
//! per `(schedule_id, slot_at)`: the node whose insert of a slot's row
//! wins starts its job, every other node (and a restarted one) meets the
//! conflict and does nothing, so a slot fires at most once whatever the
//! number of nodes sharing the database.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    Title,
    Source,
    Profile,
    Kind,
    StartAt,
    Cron,
    TimeZone,
    DurationSeconds,
    Paused,
    /// Slots at or before this instant are never fired nor counted as
    /// missed: the creation, then each resume.
    SlotsFrom,
    /// A one-shot schedule whose slot has passed (fired or missed).
    Finished,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScheduleFirings {
    Table,
    Id,
    ScheduleId,
    SlotAt,
    Node,
    Outcome,
    JobId,
    Error,
    CreatedAt,
    UpdatedAt,
}

const SLOT: &str = "idx_schedule_firings_schedule_slot";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Schedules::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Schedules::Title).string_len(200).not_null())
                    .col(ColumnDef::new(Schedules::Source).text().not_null())
                    .col(
                        ColumnDef::new(Schedules::Profile)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Schedules::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Schedules::StartAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Schedules::Cron).string_len(255).null())
                    .col(ColumnDef::new(Schedules::TimeZone).string_len(64).null())
                    .col(
                        ColumnDef::new(Schedules::DurationSeconds)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Schedules::Paused)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Schedules::SlotsFrom)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Schedules::Finished)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Schedules::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Schedules::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduleFirings::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ScheduleFirings::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ScheduleFirings::ScheduleId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScheduleFirings::SlotAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ScheduleFirings::Node).string_len(255).null())
                    .col(
                        ColumnDef::new(ScheduleFirings::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ScheduleFirings::JobId).integer().null())
                    .col(ColumnDef::new(ScheduleFirings::Error).text().null())
                    .col(
                        ColumnDef::new(ScheduleFirings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScheduleFirings::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_schedule_firings_schedule")
                            .from(ScheduleFirings::Table, ScheduleFirings::ScheduleId)
                            .to(Schedules::Table, Schedules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The guarantee itself: one row, hence one job, per slot.
        manager
            .create_index(
                Index::create()
                    .name(SLOT)
                    .table(ScheduleFirings::Table)
                    .col(ScheduleFirings::ScheduleId)
                    .col(ScheduleFirings::SlotAt)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ScheduleFirings::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Schedules::Table).if_exists().to_owned())
            .await
    }
}
