//! The lease on PostgreSQL: a session of its own holding the node's
//! session-level advisory lock and listening on its channels. PostgreSQL
//! releases the lock when the session ends (the process died, the host
//! vanished and keepalives gave up, an administrator cut it), which is how
//! the others learn the node is gone; the node learns it by reading the
//! session all the time, and by asking it now and then whether it still
//! holds the lock.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::place::key_halves;
use super::{Ended, Holder};
use crate::nodes::NodeCard;
use crate::nodes::notify::{COMMON_CHANNEL, Message, channel_of};

/// A session of its own (a pool of one, never shared) that takes the lock
/// and listens on the node's channels. The server's keepalives on it follow
/// the node's timeout, so a vanished host frees the lock in about that time.
pub(super) async fn try_hold_session(
    options: &PgConnectOptions,
    card: &NodeCard,
    key: i64,
) -> anyhow::Result<Option<Holder>> {
    let timeout = card.timeout.as_secs().max(3);
    let idle = (timeout / 3).max(1).to_string();
    let interval = (timeout / 9).max(1).to_string();
    let user_timeout = (timeout * 1000).to_string();
    let options = options
        .clone()
        .application_name(&format!("recorderd lease {}", card.id))
        .options([
            ("tcp_keepalives_idle", idle.as_str()),
            ("tcp_keepalives_interval", interval.as_str()),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", user_timeout.as_str()),
        ]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(crate::db::ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost session must be noticed, never silently replaced: the lock
    // went with it.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    let got: bool = sea_orm::sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut listener)
        .await?;
    if !got {
        drop(listener);
        pool.close().await;
        return Ok(None);
    }
    listener
        .listen_all([channel_of(&card.id).as_str(), COMMON_CHANNEL])
        .await?;
    Ok(Some(Holder::Postgres { listener, pool }))
}

/// Listens on the lease's session until it fails, stops answering, or no
/// longer holds the lock; or until `closed`.
pub(super) async fn hold_session(
    listener: &mut PgListener,
    key: i64,
    timeout: Duration,
    messages: &mpsc::UnboundedSender<Message>,
    closed: &CancellationToken,
) -> Ended {
    enum Step {
        Heard(Result<Option<sea_orm::sqlx::postgres::PgNotification>, sea_orm::sqlx::Error>),
        Check,
        Closed,
    }
    let mut check = tokio::time::interval(crate::nodes::heartbeat_interval(timeout));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        // Waiting for a notification reads the session all the time, so a
        // session cut by the server is noticed at once; the check covers
        // a peer that went silent without closing it.
        let step = tokio::select! {
            biased;
            () = closed.cancelled() => Step::Closed,
            heard = listener.try_recv() => Step::Heard(heard),
            _ = check.tick() => Step::Check,
        };
        match step {
            Step::Closed => return Ended::Closed,
            Step::Heard(Ok(Some(notification))) => match notification.payload().parse() {
                Ok(message) => {
                    let _ = messages.send(message);
                }
                Err(e) => warn!(error = %e, "ignoring a notification"),
            },
            Step::Heard(Ok(None)) => return Ended::Lost("its session was closed".to_owned()),
            Step::Heard(Err(e)) => return Ended::Lost(format!("its session failed: {e}")),
            Step::Check => {
                let answer = tokio::time::timeout(timeout / 2, still_holds(listener, key)).await;
                match answer {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        return Ended::Lost("its session no longer holds the lock".to_owned());
                    }
                    Ok(Err(e)) => return Ended::Lost(format!("its session failed: {e}")),
                    Err(_) => {
                        return Ended::Lost(format!(
                            "its session did not answer within {:?}",
                            timeout / 2
                        ));
                    }
                }
            }
        }
    }
}

/// Whether the session still holds the lock. Asked of the session itself:
/// one quietly reconnected would answer `false`.
async fn still_holds(listener: &mut PgListener, key: i64) -> Result<bool, sea_orm::sqlx::Error> {
    let (high, low) = key_halves(key);
    sea_orm::sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() \
         AND locktype = 'advisory' AND objsubid = 1 AND granted \
         AND classid::bigint = $1 AND objid::bigint = $2)",
    )
    .bind(high)
    .bind(low)
    .fetch_one(listener)
    .await
}

/// Every advisory key held in this database now.
pub(super) async fn held_keys(db: &impl ConnectionTrait) -> Result<HashSet<i64>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT classid::bigint AS high, objid::bigint AS low FROM pg_locks \
             WHERE locktype = 'advisory' AND objsubid = 1 AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ))
        .await?;
    let mut keys = HashSet::with_capacity(rows.len());
    for row in rows {
        let high: i64 = row.try_get("", "high")?;
        let low: i64 = row.try_get("", "low")?;
        keys.insert((high << 32) | low);
    }
    Ok(keys)
}

/// Who holds the advisory lock `key`, for the refusal to start.
pub(super) async fn holder_of(db: &DatabaseConnection, key: i64) -> String {
    let (high, low) = key_halves(key);
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT l.pid, COALESCE(host(a.client_addr), 'a local socket') AS client \
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2 LIMIT 1",
        [high.into(), low.into()],
    );
    match db.query_one_raw(statement).await {
        Ok(Some(row)) => {
            let pid: i32 = row.try_get("", "pid").unwrap_or_default();
            let client: String = row.try_get("", "client").unwrap_or_default();
            format!("its lease is held by PostgreSQL session {pid}, from {client}")
        }
        _ => "its lease is held".to_owned(),
    }
}
