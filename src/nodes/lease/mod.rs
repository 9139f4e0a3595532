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

mod file;
mod place;
mod session;

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use place::{Place, file_stem, key_of, placement_key};

use super::notify::Message;
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
    /// Taken again, its jobs being moved under the next generation: until
    /// [`LeaseState::Held`] says which, a job's generation proves nothing
    /// (rows may already carry the new one while `last` is the old).
    Regaining { last: i64 },
}

impl LeaseState {
    /// The generation held now, if any.
    pub fn held(self) -> Option<i64> {
        match self {
            Self::Held { generation } => Some(generation),
            Self::Lost { .. } | Self::Regaining { .. } => None,
        }
    }

    /// The generation held now, or last held.
    pub fn last(self) -> i64 {
        match self {
            Self::Held { generation } => generation,
            Self::Lost { last } | Self::Regaining { last } => last,
        }
    }
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
                Ok(Some(holder)) => {
                    // Said before the jobs move, so that a check that read
                    // the old generation sees the state change by the time
                    // it could see a moved row.
                    let last = self.state().last();
                    self.inner
                        .state
                        .send_replace(LeaseState::Regaining { last });
                    match begin_generation(&self.inner.db, card, false).await {
                        Ok(generation) => {
                            info!(node = %card.id, generation, "lease acquired again");
                            self.inner
                                .state
                                .send_replace(LeaseState::Held { generation });
                            return Some(holder);
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot record the lease taken back; trying again");
                            self.inner.state.send_replace(LeaseState::Lost { last });
                            release(holder).await;
                        }
                    }
                }
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
        match holder {
            Holder::Postgres { listener, .. } => {
                session::hold_session(listener, self.inner.key, card.timeout, messages, closed)
                    .await
            }
            Holder::File { file, path } => {
                let every = super::heartbeat_interval(card.timeout);
                file::hold_file(file, path, every, messages, closed).await
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
        self.free_among_on(&self.inner.db, nodes).await
    }

    /// [`Self::free_among`], asking PostgreSQL through `conn`: inside a
    /// transaction, its own connection, so that a transaction that waits
    /// for nothing else never needs a second one from a pool its peers may
    /// have emptied.
    async fn free_among_on(
        &self,
        conn: &impl ConnectionTrait,
        nodes: &[String],
    ) -> Result<Vec<(String, Guard)>, DbErr> {
        let mut free = Vec::new();
        match &self.inner.place {
            Place::Postgres(_) => {
                let held = session::held_keys(conn).await?;
                for node in nodes {
                    let key = key_of(node);
                    if !held.contains(&key) {
                        free.push((node.clone(), Guard::Advisory(key)));
                    }
                }
            }
            Place::Files(dir) => {
                for node in nodes {
                    if let Some(file) = file::try_lock_file(&dir.join(file::lock_name(node)))? {
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
        self.alive_among_on(&self.inner.db, nodes).await
    }

    /// [`Self::alive_among`], asking through `conn` (see
    /// [`Self::free_among_on`]).
    pub async fn alive_among_on(
        &self,
        conn: &impl ConnectionTrait,
        nodes: &[String],
    ) -> Result<HashSet<String>, DbErr> {
        let free: HashSet<String> = self
            .free_among_on(conn, nodes)
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

/// One attempt at the lease: `None` when another session holds it.
async fn try_hold(place: &Place, card: &NodeCard, key: i64) -> anyhow::Result<Option<Holder>> {
    match place {
        Place::Postgres(options) => session::try_hold_session(options, card, key).await,
        Place::Files(dir) => {
            Ok(file::try_hold_file(dir, &card.id)?.map(|(file, path)| Holder::File { file, path }))
        }
        Place::Process => Ok(Some(Holder::Process)),
    }
}

/// Who holds a node's lease, for the refusal to start.
async fn holder_description(db: &DatabaseConnection, place: &Place, key: i64) -> String {
    match place {
        Place::Postgres(_) => session::holder_of(db, key).await,
        Place::Files(dir) => format!("its lock file in {} is locked", dir.display()),
        Place::Process => "its lease is held".to_owned(),
    }
}

/// Lets the lease go: the lock with the session or file that held it.
async fn release(holder: Holder) {
    match holder {
        Holder::Postgres { listener, pool } => {
            drop(listener);
            pool.close().await;
        }
        Holder::File { file, path } => file::release_file(file, &path),
        Holder::Process => {}
    }
}
