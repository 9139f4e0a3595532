//! Database connection and migrations. SQLite runs in WAL mode with a busy
//! timeout (readers never block the writer; writers queue instead of
//! failing); PostgreSQL needs nothing special.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Connects to any sea-orm URL (`sqlite://…`, `postgres://…`).
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                // Durable across a process crash; only a power loss can
                // lose the last transactions, never corrupt the file.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to database {}", crate::redact::url(url)))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("applying database migrations")
}

/// Asks the database whether it answers and is migrated, for the
/// readiness probe; holds its own handle so that HTTP handlers never touch
/// the database themselves.
#[derive(Clone)]
pub struct Probe {
    db: DatabaseConnection,
}

impl Probe {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Whether the database answers (or why not), and how many migrations
    /// are pending (or why that cannot be read).
    pub async fn check(&self) -> (Result<(), String>, Result<usize, String>) {
        let database = self.db.ping().await.map_err(|e| e.to_string());
        let pending = match &database {
            Ok(()) => Migrator::get_pending_migrations(&self.db)
                .await
                .map(|p| p.len())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        (database, pending)
    }
}
