//! Database connection and migrations. SQLite runs in WAL mode with a busy
//! timeout (readers never block the writer; writers queue instead of
//! failing); PostgreSQL needs nothing special.
//!
//! Every wait on the database is bounded: a connection is acquired within
//! [`ACQUIRE_TIMEOUT`], SQLite waits for a lock at most [`BUSY_TIMEOUT`],
//! so that while the database is away a request answers 503 instead of
//! hanging ([`is_unavailable`] tells those failures apart).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// Longest wait for one connection at start-up.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to any sea-orm URL (`sqlite://…`, `postgres://…`), trying again
/// with backoff for up to `wait` while the database does not answer (a
/// server started before its database, a database restarting), and saying
/// why in the log.
pub async fn connect(url: &str, wait: Duration) -> anyhow::Result<DatabaseConnection> {
    let context = || format!("connecting to database {}", crate::redact::url(url));
    reach(url, wait).await.with_context(context)?;
    Database::connect(options(url)).await.with_context(context)
}

/// Waits until one connection to `url` can be made, for up to `wait`.
/// Each attempt is a single connection outside any pool: a pool tries a
/// refused connection again until its own timeout and then reports only
/// that it timed out, where the log must say why the database does not
/// answer (refused, unknown host, starting up). A failure that waiting
/// cannot mend (a wrong password, no such database) ends the wait at once.
async fn reach(url: &str, wait: Duration) -> Result<(), sea_orm::sqlx::Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut delays =
        crate::backoff::doubling(Duration::from_millis(250), Duration::from_secs(5)).build();
    loop {
        let error = match try_connection(url).await {
            Ok(()) => return Ok(()),
            Err(e) if sqlx_unavailable(&e) => e,
            Err(e) => return Err(e),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(error);
        }
        // The last wait ends at the deadline, for one last attempt there.
        let delay = delays.next().unwrap_or(Duration::from_secs(5)).min(left);
        warn!(
            database = %crate::redact::url(url),
            error = %error,
            retry_in = ?delay,
            gives_up_in = ?left,
            "the database does not answer yet; waiting for it"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Opens and closes one connection to `url`, within [`ATTEMPT_TIMEOUT`].
/// A URL of another kind is left for sea-orm to judge.
async fn try_connection(url: &str) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::postgres::PgConnectOptions;
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _, Error};
    let attempt = async {
        if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)?
                .connect()
                .await?
                .close()
                .await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url)?
                .connect()
                .await?
                .close()
                .await
        } else {
            Ok(())
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(done) => done,
        Err(_) => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {ATTEMPT_TIMEOUT:?}"),
        ))),
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
    if url.starts_with("sqlite:") {
        // Also the writer: not pinged before each write, a round trip to
        // its worker thread for every statement of a start. A PostgreSQL
        // connection is pinged: the server may have cut it.
        kept_open(&mut options);
    }
    options
}

/// A SQLite connection is a local file, with no peer to lose: opened once
/// and kept (never retired for age or idleness), never pinged before use.
fn kept_open(options: &mut ConnectOptions) -> &mut ConnectOptions {
    options
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}

/// Connections for SQLite reads beside the writer.
const SQLITE_READERS: u32 = 2;
/// Page cache of each read connection, in KiB (SQLite's default is 2 MiB):
/// any write elsewhere discards a reader's cache at its next read, so a
/// large one would mostly hold pages that are already stale.
const SQLITE_READER_CACHE_KIB: u32 = 256;

/// The handle for reads that need not see a transaction in progress (the
/// listings, a job's page, the status counts). SQLite has one
/// connection for everything by default, so such a read waited behind
/// whole write transactions (a start's, a batch of exits); in WAL mode
/// readers run beside the writer, so they get a small pool of their own,
/// opened read-only so that no write can slip onto it. A read there sees
/// every transaction committed before it began. PostgreSQL's pool already
/// reads beside writes: the same handle.
pub async fn connect_reads(
    url: &str,
    writes: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    if !url.starts_with("sqlite:") {
        return Ok(writes.clone());
    }
    sqlite_readers(url, SQLITE_READERS, "read connections", None).await
}

/// SQLite: one more read-only connection, kept, for a read that is asked
/// for again and again and changes only when something is committed (the
/// live jobs' marks, on every `active` call). SQLite tells a connection
/// whether any other connection committed since it last looked (`PRAGMA
/// data_version`), so such a read can be answered again while nothing
/// was. The answer is per connection: hence one of its own, and a count of
/// the connections opened, so that an answer is never compared with one
/// from a connection since replaced. `None` on PostgreSQL, which has no
/// such counter.
pub async fn connect_watching(url: &str) -> anyhow::Result<Option<Watching>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let opened = Arc::new(AtomicU64::new(0));
    let db = sqlite_readers(url, 1, "watching connection", Some(opened.clone())).await?;
    Ok(Some(Watching { db, opened }))
}

/// The connection of [`connect_watching`], shared by whoever asks whether
/// anything was committed.
#[derive(Clone)]
pub struct Watching {
    pub db: DatabaseConnection,
    /// How many connections it has opened: one, unless the first failed
    /// and was replaced.
    pub opened: Arc<AtomicU64>,
}

/// Where the database's commits stood when asked ([`Watching::commits`]):
/// the same value twice means nobody committed in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commits {
    /// Which connection was asked (the count of those opened).
    connection: u64,
    /// Its `data_version`, which changes whenever another connection
    /// commits.
    version: i64,
}

impl Watching {
    /// Where the commits stand now. The count of connections is read after
    /// the version: a version from a connection opened meanwhile then
    /// comes with its new number, never compared with the old one's.
    pub async fn commits(&self) -> Result<Commits, DbErr> {
        use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA data_version",
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("PRAGMA data_version".to_owned()))?;
        let version = row.try_get_by_index(0)?;
        Ok(Commits {
            connection: self.opened.load(Ordering::SeqCst),
            version,
        })
    }
}

/// `count` read-only connections to SQLite, opened now and kept
/// ([`kept_open`]): a connection opened on demand made the read that
/// waited for it one of the slowest (the p99 of `active`), and a reader
/// with its small cache costs little. `opened` counts the connections
/// opened.
async fn sqlite_readers(
    url: &str,
    count: u32,
    what: &str,
    opened: Option<Arc<AtomicU64>>,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    kept_open(&mut options)
        .sqlx_logging(false)
        .max_connections(count)
        .min_connections(count)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .map_sqlx_sqlite_opts(|o| {
            o.read_only(true)
                .busy_timeout(BUSY_TIMEOUT)
                .pragma("cache_size", format!("-{SQLITE_READER_CACHE_KIB}"))
        });
    if let Some(opened) = opened {
        options.map_sqlx_sqlite_pool_opts(move |pool| {
            let opened = opened.clone();
            pool.after_connect(move |_, _| {
                opened.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })
        });
    }
    Database::connect(options)
        .await
        .with_context(|| format!("opening the {what} of {}", crate::redact::url(url)))
}

/// Whether an error says the database is away or cannot take writes now
/// (unreachable, restarting, locked, read-only, full), rather than that the
/// statement was wrong: the request may succeed later.
pub fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e)
        }
        _ => false,
    }
}

/// [`is_unavailable`] for the driver's own error.
fn sqlx_unavailable(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match error {
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
