//! A node's lease: the proof, kept by the database's own machinery, that
//! the node lives. On PostgreSQL a session-level advisory lock
//! (`pg_try_advisory_lock` on a key derived from the node id) held by one
//! dedicated session, which also listens for the node's messages: when the
//! node's process dies, its host vanishes (the server's TCP keepalives,
//! set on that session from `--node-timeout`, give up) or the session is
//! cut, PostgreSQL releases the lock, and that is how others learn the
//! node is gone. No clock is compared. With SQLite (nodes sharing one
//! file, so one host) the lease is an `flock` on the node's lock file
//! beside the database, which the kernel releases the moment the process
//! dies.
//!
//! Each acquisition counts a generation (`nodes.lease_generation`) and the
//! node's jobs carry the generation they run under: a node writes only
//! jobs of the lease it holds now (fencing), and another node ends a
//! node's jobs only while holding that node's lock itself, so the node
//! cannot come back half-way through.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::notify::{COMMON_CHANNEL, Message, channel_of, receive_datagrams};
use super::{NodeCard, begin_generation};

/// How long a node whose lease is seen free gets to take it back before
/// others end its jobs: a database restart cuts every node's lease at
/// once, and each needs a moment to reconnect. Measured on the observer's
/// own monotonic clock from when it first saw the lease free.
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(1);
/// How often a node that lost its lease tries to take it back.
const REACQUIRE_EVERY: Duration = Duration::from_millis(200);

/// Whether this node holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held, under this generation.
    Held { generation: i64 },
    /// Lost (its session ended or stopped answering); `last` is the
    /// generation it held. The node starts nothing and writes none of its
    /// jobs until it holds its lease again.
    Lost { last: i64 },
}

impl LeaseState {
    /// The generation held now, if any.
    pub fn held(self) -> Option<i64> {
        match self {
            Self::Held { generation } => Some(generation),
            Self::Lost { .. } => None,
        }
    }

    /// The generation held now, or last held.
    pub fn last(self) -> i64 {
        match self {
            Self::Held { generation } => generation,
            Self::Lost { last } => last,
        }
    }
}

/// Where the database keeps leases.
#[derive(Debug, Clone)]
pub enum Place {
    Postgres(Box<PgConnectOptions>),
    /// Lock files (and message sockets) in this directory, beside the
    /// SQLite file every node shares.
    Files(PathBuf),
    /// An in-memory database: one process, which holds its lease always.
    Process,
}

impl Place {
    pub fn of(database_url: &str) -> anyhow::Result<Self> {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(database_url).context("reading the database URL")?;
            return Ok(Self::Postgres(Box::new(options)));
        }
        if database_url.starts_with("sqlite:") {
            let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(database_url)
                .context("reading the database URL")?;
            let file = options.get_filename();
            // sqlx names an in-memory database `file:sqlx-in-memory-<n>`.
            let in_memory = file.as_os_str().is_empty()
                || file == Path::new(":memory:")
                || file.to_string_lossy().starts_with("file:sqlx-in-memory-")
                || database_url.contains("mode=memory");
            if in_memory {
                return Ok(Self::Process);
            }
            let file = std::path::absolute(file).context("resolving the database file")?;
            let mut dir = file.into_os_string();
            dir.push("-nodes");
            return Ok(Self::Files(PathBuf::from(dir)));
        }
        Ok(Self::Process)
    }
}

/// The advisory-lock key of a node: 63 bits of a digest of its id (never
/// negative, so `pg_locks` shows it plainly).
pub fn key_of(node_id: &str) -> i64 {
    let digest = Sha256::digest(format!("recorderd lease\0{node_id}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes) & i64::MAX
}

/// The key under which starts are decided one at a time in the cluster.
pub fn placement_key() -> i64 {
    let digest = Sha256::digest(b"recorderd placement");
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes) & i64::MAX
}

/// A short name for a node's files and channel, whatever characters its
/// id has.
pub fn file_stem(node_id: &str) -> String {
    format!("{:016x}", key_of(node_id))
}

/// `pg_locks` shows a `bigint` advisory key as two `oid` halves.
fn key_halves(key: i64) -> (i64, i64) {
    (key >> 32, key & 0xffff_ffff)
}

/// What holds the lease on the database's side.
pub enum Holder {
    Postgres { listener: PgListener, pool: PgPool },
    File { file: File, path: PathBuf },
    Process,
}

/// This node's lease. Cheap to clone.
#[derive(Clone)]
pub struct Lease {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    card: NodeCard,
    key: i64,
    place: Place,
    db: DatabaseConnection,
    state: watch::Sender<LeaseState>,
}

/// How a held lease ended.
enum Ended {
    Lost(String),
    Closed,
}

impl Lease {
    /// Acquires the node's lease at start-up, waiting up to `wait` while
    /// another session holds it (a previous run of this node whose host
    /// vanished, until the server gives up on it; another node taking
    /// over this one's jobs for a moment). Refuses to start when it stays
    /// held: another recorderd runs with this node id.
    pub async fn acquire(
        place: Place,
        card: NodeCard,
        db: DatabaseConnection,
        wait: Duration,
    ) -> anyhow::Result<(Self, Holder)> {
        let key = key_of(&card.id);
        let deadline = tokio::time::Instant::now() + wait;
        let mut said = false;
        let holder = loop {
            if let Some(holder) = try_hold(&place, &card, key).await? {
                break holder;
            }
            if tokio::time::Instant::now() >= deadline {
                let who = holder_description(&db, &place, key).await;
                bail!(
                    "another recorderd runs with node id `{}` on this database ({who}); give \
                     each server its own --node-id",
                    card.id
                );
            }
            if !said {
                info!(node = %card.id, "the lease of this node id is held; waiting for it");
                said = true;
            }
            tokio::time::sleep(REACQUIRE_EVERY).await;
        };
        let generation = begin_generation(&db, &card, true)
            .await
            .context("recording this node's lease")?;
        info!(node = %card.id, generation, "lease acquired");
        let (state, _) = watch::channel(LeaseState::Held { generation });
        let lease = Self {
            inner: std::sync::Arc::new(Inner {
                card,
                key,
                place,
                db,
                state,
            }),
        };
        Ok((lease, holder))
    }

    pub fn node_id(&self) -> &str {
        &self.inner.card.id
    }

    pub fn card(&self) -> &NodeCard {
        &self.inner.card
    }

    pub fn place(&self) -> &Place {
        &self.inner.place
    }

    pub fn state(&self) -> LeaseState {
        *self.inner.state.borrow()
    }

    /// Follows the state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.inner.state.subscribe()
    }

    /// Waits until the lease is held; returns its generation, or `None`
    /// once `give_up` is cancelled first.
    pub async fn held(&self, give_up: &CancellationToken) -> Option<i64> {
        let mut states = self.subscribe();
        loop {
            if let Some(generation) = states.borrow_and_update().held() {
                return Some(generation);
            }
            tokio::select! {
                changed = states.changed() => if changed.is_err() { return None },
                () = give_up.cancelled() => return None,
            }
        }
    }

    /// Keeps the lease until `closed`, passing on the messages it hears;
    /// when it is lost, says so and takes it back as soon as it can.
    pub async fn run(
        self,
        mut holder: Holder,
        messages: mpsc::UnboundedSender<Message>,
        closed: CancellationToken,
    ) {
        loop {
            let ended = self.hold(&mut holder, &messages, &closed).await;
            release(holder).await;
            let reason = match ended {
                Ended::Closed => return,
                Ended::Lost(reason) => reason,
            };
            let last = self.state().last();
            self.inner.state.send_replace(LeaseState::Lost { last });
            warn!(
                node = %self.inner.card.id,
                %reason,
                "this node lost its lease: it starts nothing and writes none of its jobs until \
                 it holds it again"
            );
            let Some(again) = self.take_back(&closed).await else {
                return;
            };
            holder = again;
        }
    }

    /// Tries until the lease is held again (or `closed`).
    async fn take_back(&self, closed: &CancellationToken) -> Option<Holder> {
        let card = &self.inner.card;
        let mut attempts = 0u32;
        loop {
            if closed.is_cancelled() {
                return None;
            }
            match try_hold(&self.inner.place, card, self.inner.key).await {
                Ok(Some(holder)) => match begin_generation(&self.inner.db, card, false).await {
                    Ok(generation) => {
                        info!(node = %card.id, generation, "lease acquired again");
                        self.inner
                            .state
                            .send_replace(LeaseState::Held { generation });
                        return Some(holder);
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot record the lease taken back; trying again");
                        release(holder).await;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    // Said now and then, not five times a second.
                    if attempts.is_multiple_of(50) {
                        warn!(error = %e, "cannot take this node's lease back yet");
                    }
                }
            }
            attempts = attempts.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(REACQUIRE_EVERY) => {}
                () = closed.cancelled() => return None,
            }
        }
    }

    /// Holds the lease until it is lost or `closed`.
    async fn hold(
        &self,
        holder: &mut Holder,
        messages: &mpsc::UnboundedSender<Message>,
        closed: &CancellationToken,
    ) -> Ended {
        let card = &self.inner.card;
        let every = super::heartbeat_interval(card.timeout);
        let mut check = tokio::time::interval(every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await;
        match holder {
            Holder::Postgres { listener, .. } => {
                hold_session(listener, self.inner.key, card.timeout, messages, closed).await
            }
            Holder::File { file, path } => {
                // Messages arrive on the socket beside the lock file.
                let receiving = match bind_socket(path) {
                    Ok(socket) => Some(tokio::spawn(receive_datagrams(socket, messages.clone()))),
                    Err(e) => {
                        warn!(error = %e, "cannot listen for other nodes' messages; they are found by polling");
                        None
                    }
                };
                let ended = loop {
                    tokio::select! {
                        _ = check.tick() => {}
                        () = closed.cancelled() => break Ended::Closed,
                    }
                    if !still_the_lock_file(file, path) {
                        break Ended::Lost(format!(
                            "its lock file {} was replaced",
                            path.display()
                        ));
                    }
                };
                if let Some(receiving) = receiving {
                    receiving.abort();
                }
                ended
            }
            Holder::Process => {
                closed.cancelled().await;
                Ended::Closed
            }
        }
    }

    /// Of `nodes`, those whose lease is not held now, each with the guard
    /// under which another node may end its jobs.
    pub async fn free_among(&self, nodes: &[String]) -> Result<Vec<(String, Guard)>, DbErr> {
        let mut free = Vec::new();
        match &self.inner.place {
            Place::Postgres(_) => {
                let held = held_keys(&self.inner.db).await?;
                for node in nodes {
                    let key = key_of(node);
                    if !held.contains(&key) {
                        free.push((node.clone(), Guard::Advisory(key)));
                    }
                }
            }
            Place::Files(dir) => {
                for node in nodes {
                    if let Some(file) = try_lock_file(&dir.join(lock_name(node)))? {
                        free.push((node.clone(), Guard::File(file)));
                    }
                }
            }
            Place::Process => {
                free.extend(nodes.iter().map(|n| (n.clone(), Guard::None)));
            }
        }
        Ok(free)
    }

    /// Of `nodes`, those holding their lease now.
    pub async fn alive_among(&self, nodes: &[String]) -> Result<HashSet<String>, DbErr> {
        let free: HashSet<String> = self
            .free_among(nodes)
            .await?
            .into_iter()
            // A lock file taken to look is let go at once.
            .map(|(node, _)| node)
            .collect();
        let mut alive: HashSet<String> = nodes
            .iter()
            .filter(|n| !free.contains(*n))
            .cloned()
            .collect();
        if self.state().held().is_some() {
            alive.insert(self.inner.card.id.clone());
        } else {
            alive.remove(&self.inner.card.id);
        }
        Ok(alive)
    }
}

/// Held while another node's jobs are ended: that node cannot take its
/// lease back meanwhile.
pub enum Guard {
    /// Taken inside the ending transaction (`pg_try_advisory_xact_lock`),
    /// released at its commit.
    Advisory(i64),
    /// The node's lock file, locked here.
    File(File),
    None,
}

impl Guard {
    /// The key the ending transaction must lock first, if any.
    pub fn advisory_key(&self) -> Option<i64> {
        match self {
            Self::Advisory(key) => Some(*key),
            Self::File(_) | Self::None => None,
        }
    }
}

fn lock_name(node_id: &str) -> String {
    format!("{}.lock", file_stem(node_id))
}

/// One attempt at the lease: `None` when another session holds it.
async fn try_hold(place: &Place, card: &NodeCard, key: i64) -> anyhow::Result<Option<Holder>> {
    match place {
        Place::Postgres(options) => try_hold_session(options, card, key).await,
        Place::Files(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(lock_name(&card.id));
            let Some(file) = try_lock_file(&path)? else {
                return Ok(None);
            };
            // For people looking at the directory.
            let _ = rustix::fs::ftruncate(&file, 0);
            let _ = rustix::io::pwrite(&file, format!("{}\n", card.id).as_bytes(), 0);
            Ok(Some(Holder::File { file, path }))
        }
        Place::Process => Ok(Some(Holder::Process)),
    }
}

/// A session of its own (a pool of one, never shared) that takes the lock
/// and listens on the node's channels. The server's keepalives on it follow
/// the node's timeout, so a vanished host frees the lock in about that time.
async fn try_hold_session(
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
async fn hold_session(
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
    let mut check = tokio::time::interval(super::heartbeat_interval(timeout));
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
async fn held_keys(db: &DatabaseConnection) -> Result<HashSet<i64>, DbErr> {
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

/// Who holds a node's lease, for the refusal to start.
async fn holder_description(db: &DatabaseConnection, place: &Place, key: i64) -> String {
    match place {
        Place::Postgres(_) => {
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
        Place::Files(dir) => format!("its lock file in {} is locked", dir.display()),
        Place::Process => "its lease is held".to_owned(),
    }
}

/// Locks `path` (created if missing) without waiting; `None` when another
/// process holds it. A file found replaced after locking counts as held:
/// whoever replaced it may have locked the new one.
fn try_lock_file(path: &Path) -> Result<Option<File>, DbErr> {
    use rustix::fs::{FlockOperation, flock};
    let io = |e: std::io::Error| DbErr::Custom(format!("lock file {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(io(e.into())),
    }
    if !still_the_lock_file(&file, path) {
        return Ok(None);
    }
    Ok(Some(file))
}

/// Whether `path` still names the file `file` has open (nobody removed or
/// replaced it since it was locked).
fn still_the_lock_file(file: &File, path: &Path) -> bool {
    match (rustix::fs::fstat(file), rustix::fs::stat(path)) {
        (Ok(open), Ok(named)) => open.st_ino == named.st_ino && open.st_dev == named.st_dev,
        _ => false,
    }
}

/// This node's message socket, beside its lock file. The lock is held, so
/// a socket file left by an earlier run of this node is removed.
fn bind_socket(lock: &Path) -> std::io::Result<tokio::net::UnixDatagram> {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().replace(".lock", ".sock"))
        .unwrap_or_default();
    let path = lock.with_file_name(name);
    let _ = std::fs::remove_file(&path);
    tokio::net::UnixDatagram::bind(&path)
}

/// Lets the lease go: the lock with the session or file that held it.
async fn release(holder: Holder) {
    match holder {
        Holder::Postgres { listener, pool } => {
            drop(listener);
            pool.close().await;
        }
        Holder::File { file, path } => {
            if let Some(name) = path.file_name() {
                let socket = path.with_file_name(name.to_string_lossy().replace(".lock", ".sock"));
                let _ = std::fs::remove_file(socket);
            }
            drop(file);
        }
        Holder::Process => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_positive_and_distinct() {
        assert_eq!(key_of("node-a"), key_of("node-a"));
        assert_ne!(key_of("node-a"), key_of("node-b"));
        for id in ["", "a", "node-a", "ünïcode", &"x".repeat(255)] {
            let key = key_of(id);
            assert!(key >= 0, "{id}");
            let (high, low) = key_halves(key);
            assert_eq!((high << 32) | low, key);
            assert_eq!(file_stem(id).len(), 16);
        }
        assert_eq!(
            super::super::notify::socket_name("a"),
            format!("{}.sock", file_stem("a"))
        );
    }

    #[test]
    fn a_lock_file_is_held_by_one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!("recorderd-lease-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("n.lock");
        let first = try_lock_file(&path).expect("lock").expect("free at first");
        assert!(
            try_lock_file(&path).expect("try").is_none(),
            "held by the first"
        );
        drop(first);
        assert!(
            try_lock_file(&path).expect("try").is_some(),
            "free once dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn leases_live_beside_a_shared_sqlite_file() {
        match Place::of("sqlite:///var/lib/recorderd/db.sqlite?mode=rwc").expect("place") {
            Place::Files(dir) => {
                assert_eq!(dir, PathBuf::from("/var/lib/recorderd/db.sqlite-nodes"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Place::of("sqlite::memory:").expect("place"),
            Place::Process
        ));
        assert!(matches!(
            Place::of("postgres://u:p@localhost/db").expect("place"),
            Place::Postgres(_)
        ));
    }
}
