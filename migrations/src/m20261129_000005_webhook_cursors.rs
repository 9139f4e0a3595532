//! How far each node has delivered its events to each webhook URL, so that
//! a restart resumes delivery where it stopped instead of losing or
//! replaying the backlog.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookCursors {
    Table,
    Node,
    Url,
    LastEventId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookCursors::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(WebhookCursors::Node)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookCursors::Url)
                            .string_len(2048)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookCursors::LastEventId)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookCursors::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(WebhookCursors::Node)
                            .col(WebhookCursors::Url),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookCursors::Table).to_owned())
            .await
    }
}
