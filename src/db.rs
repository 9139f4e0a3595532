//! Database connection and migrations. SQLite runs in WAL mode with a busy
//! timeout (readers never block the writer; writers queue instead of
//! failing); PostgreSQL needs nothing special.
//!
//! Every wait on the database is bounded: a connection is acquired within
//! [`ACQUIRE_TIMEOUT`], SQLite waits for a lock at most [`BUSY_TIMEOUT`],
//! so that while the database is away a request answers 503 instead of
//! hanging ([`is_unavailable`] tells those failures apart).

use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr};
use tracing::warn;

/// Longest wait for a connection from the pool.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait of a SQLite statement for a lock held elsewhere.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait of the readiness probe for the database's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to any sea-orm URL (`sqlite://…`, `postgres://…`), trying again
/// with backoff for up to `wait` while the database does not answer (a
/// server started before its database, a database restarting), and saying
/// why in the log.
pub async fn connect(url: &str, wait: Duration) -> anyhow::Result<DatabaseConnection> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut delays =
        crate::backoff::doubling(Duration::from_millis(250), Duration::from_secs(5)).build();
    loop {
        match Database::connect(options(url)).await {
            Ok(db) => return Ok(db),
            Err(e) if is_unavailable(&e) && tokio::time::Instant::now() < deadline => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                warn!(
                    database = %crate::redact::url(url),
                    error = %e,
                    retry_in = ?delay,
                    "the database does not answer yet; waiting for it"
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("connecting to database {}", crate::redact::url(url))
                });
            }
        }
    }
}

fn options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                // Durable across a process crash; only a power loss can
                // lose the last transactions, never corrupt the file.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    options
}

/// Whether an error says the database is away or cannot take writes now
/// (unreachable, restarting, locked, read-only, full), rather than that the
/// statement was wrong: the request may succeed later.
pub fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    let sqlx = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx.as_ref() {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
            {
                sqlite_unavailable(&code)
            } else {
                postgres_unavailable(&code)
            }
        }
        _ => false,
    }
}

/// SQLite result codes (the primary code of an extended one) that mean
/// "not now": BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// PostgreSQL SQLSTATE classes that mean "not now": connection exceptions
/// (08), insufficient resources such as a full disk (53), operator
/// intervention such as a shutdown (57P).
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
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
        let database = match tokio::time::timeout(PROBE_TIMEOUT, self.db.ping()).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        let pending = match &database {
            Ok(()) => {
                let pending = Migrator::get_pending_migrations(&self.db);
                match tokio::time::timeout(PROBE_TIMEOUT, pending).await {
                    Ok(pending) => pending.map(|p| p.len()).map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                }
            }
            Err(e) => Err(e.clone()),
        };
        (database, pending)
    }
}

#[cfg(test)]
mod tests {
    use super::{postgres_unavailable, sqlite_unavailable};

    #[test]
    fn not_now_is_told_apart_from_never() {
        // SQLite: BUSY, an extended BUSY (BUSY_SNAPSHOT), FULL; a constraint
        // violation (UNIQUE, extended) is the statement's fault.
        assert!(sqlite_unavailable("5"));
        assert!(sqlite_unavailable("517"));
        assert!(sqlite_unavailable("13"));
        assert!(!sqlite_unavailable("2067"));
        // PostgreSQL: admin shutdown, connection failure, disk full; a
        // unique violation is not.
        assert!(postgres_unavailable("57P01"));
        assert!(postgres_unavailable("08006"));
        assert!(postgres_unavailable("53100"));
        assert!(!postgres_unavailable("23505"));
    }
}
