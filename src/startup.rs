//! Building and running the service: connect, migrate, reconcile what a
//! previous run left, bind, serve; and the shutdown order (stop accepting
//! requests → stop recorders → commit their final states → close the
//! database).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::cli::args::ShutdownPolicy;
use crate::config::Settings;
use crate::db::{self, Probe};
use crate::events::EventLog;
use crate::http::{self, AppState};
use crate::jobs::{JobDeps, JobService};
use crate::metrics::Metrics;
use crate::nodes::{self, Bell, Lease, NodeCard, Place};
use crate::processing::{Processing, ProcessingDirs};
use crate::recordings::{Recordings, RecordingsDeps};
use crate::schedules::{ScheduleDeps, Schedules};
use crate::supervisor::{Supervisor, reaper};
use crate::webhooks;

mod background;

/// After the shutdown timeout, how long SIGKILLed recorders get to be reaped
/// and recorded.
const AFTER_KILL: Duration = Duration::from_secs(5);

/// A built service, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    settings: Arc<Settings>,
    db: DatabaseConnection,
    services: Services,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// The services and the handles they share, built once and passed
/// explicitly: nothing is global.
#[derive(Clone)]
struct Services {
    jobs: JobService,
    recordings: Recordings,
    supervisor: Supervisor,
    processing: Processing,
    events: EventLog,
    metrics: Arc<Metrics>,
    probe: Probe,
    nodes: nodes::Nodes,
    schedules: Schedules,
}

/// This node's part in the cluster, as the services get it.
struct Membership {
    lease: Lease,
    bell: Bell,
}

impl Services {
    fn build(
        db: DatabaseConnection,
        reads: DatabaseConnection,
        watching: Option<db::Watching>,
        settings: Arc<Settings>,
        membership: Membership,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Self {
        let Membership { lease, bell } = membership;
        let (lease_for_nodes, bell_for_nodes) = (lease.clone(), bell.clone());
        let metrics = Arc::new(Metrics::default());
        // Cancelled once shutdown has dealt with every recorder: the event
        // log, heartbeats and webhooks run until then.
        let closed = CancellationToken::new();
        let events = EventLog::start(
            db.clone(),
            settings.node_id.clone(),
            settings.event_retention.clone(),
            metrics.clone(),
            tracker,
            closed.clone(),
        );
        let (supervisor, reports) =
            Supervisor::new(tracker.clone(), settings.recorder_marker.clone());
        let mut processing = Processing::new(
            db.clone(),
            supervisor.clone(),
            Arc::new(settings.profiles.clone()),
            ProcessingDirs {
                logs: settings.logs_dir(),
                work: settings.work_dir(),
            },
            settings.processing_concurrency,
            tracker.clone(),
            shutdown.clone(),
        )
        .with_events(events.clone())
        .with_metrics(metrics.clone());
        if settings.cluster.shared_storage {
            processing = processing.with_shared_storage(
                settings.node_id.clone(),
                lease.clone(),
                bell.clone(),
            );
        }
        let recordings = Recordings::new(
            db.clone(),
            RecordingsDeps {
                reads: reads.clone(),
                processing: processing.clone(),
                events: events.clone(),
                node_id: settings.node_id.clone(),
                lease: lease.clone(),
                bell: bell.clone(),
                shared_storage: settings.cluster.shared_storage,
                data_dir: settings.data_dir.clone(),
            },
        );
        let for_schedules = settings.clone();
        let jobs = JobService::new(
            JobDeps {
                db: db.clone(),
                reads,
                watching,
                settings,
                supervisor: supervisor.clone(),
                processing: processing.clone(),
                recordings: recordings.clone(),
                events: events.clone(),
                metrics: metrics.clone(),
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                closed,
                lease,
                bell,
            },
            reports,
        );
        let schedules = schedules(&db, &for_schedules, &jobs, &events, tracker);
        Self {
            jobs,
            schedules,
            recordings,
            supervisor,
            processing,
            events,
            metrics,
            nodes: nodes::Nodes::new(db.clone(), lease_for_nodes, bell_for_nodes),
            probe: Probe::new(db),
        }
    }
}

/// The schedules of the database, fired through `jobs`.
fn schedules(
    db: &DatabaseConnection,
    settings: &Settings,
    jobs: &JobService,
    events: &EventLog,
    tracker: &TaskTracker,
) -> Schedules {
    Schedules::new(ScheduleDeps {
        db: db.clone(),
        jobs: jobs.clone(),
        events: events.clone(),
        profiles: Arc::new(settings.profiles.clone()),
        node_id: settings.node_id.clone(),
        grace: settings.schedule_grace,
        tracker: tracker.clone(),
    })
}

impl Application {
    /// Connects, migrates, reconciles jobs left by a previous run (ending
    /// those whose process is gone, adopting live ones), resumes unfinished
    /// post-processing, and binds — all before the first request is served.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::announce::configuration(&settings);
        for dir in [
            settings.data_dir.clone(),
            settings.recordings_dir(),
            settings.logs_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating directory {}", dir.display()))?;
        }
        raise_open_file_limit();
        let db = db::connect(&settings.database_url, settings.database_wait).await?;
        db::migrate(&db).await?;
        // Bound before the lease is taken, so the node can say where it
        // answers; served only once recovery is over.
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let address = listener.local_addr()?;

        let (lease, holder) = take_lease(&settings, &db, address).await?;
        let (messages_tx, messages) = tokio::sync::mpsc::unbounded_channel();
        let bell = Bell::new(
            lease.place(),
            db.clone(),
            settings.node_id.clone(),
            messages_tx.clone(),
        );
        let settings = Arc::new(settings);
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let membership = Membership {
            lease: lease.clone(),
            bell,
        };
        let reads = db::connect_reads(&settings.database_url, &db).await?;
        let watching = db::connect_watching(&settings.database_url).await?;
        let services = Services::build(
            db.clone(),
            reads,
            watching,
            settings.clone(),
            membership,
            &tracker,
            &shutdown,
        );
        reap_orphans(&settings, &services, &tracker, &shutdown);
        // Before recovery, so the transitions it makes are delivered too.
        webhooks::start(
            &settings.webhooks,
            db.clone(),
            services.events.clone(),
            services.metrics.clone(),
            &tracker,
            services.jobs.closing(),
        )
        .await?;
        // Held from before recovery until every recorder is dealt with at
        // shutdown: a node busy recovering or stopping is not lost.
        tracker.spawn(lease.run(holder, messages_tx, services.jobs.closing()));
        tracker.spawn(background::answer_messages(
            services.jobs.clone(),
            messages,
            services.jobs.closing(),
        ));
        let processing = services.processing.clone();
        tracker.spawn(nodes::beat(
            db.clone(),
            settings.node_id.clone(),
            settings.node_timeout,
            move || processing.running(),
            services.jobs.closing(),
        ));
        recover(&settings, &services).await?;
        background::spawn_background(&settings, &services, &tracker, &shutdown);
        Ok(Self {
            listener,
            address,
            settings,
            db,
            services,
            tracker,
            shutdown,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The HTTP service [`Self::run_until_stopped`] serves, for driving
    /// in-process (`tower::ServiceExt::oneshot`) without a socket. Its
    /// handlers share this application's services: requests take effect
    /// as they would over HTTP. (The built application is already running
    /// its background tasks, reaping of this process's orphans included.)
    pub fn router(&self) -> http::Service {
        let services = &self.services;
        http::router(
            AppState {
                jobs: services.jobs.clone(),
                recordings: services.recordings.clone(),
                events: services.events.clone(),
                metrics: services.metrics.clone(),
                probe: services.probe.clone(),
                shutdown: self.shutdown.clone(),
                nodes: services.nodes.clone(),
                schedules: services.schedules.clone(),
                proxy: http::proxy::Proxy::new(&self.settings.node_id),
            },
            &http::HttpOptions::from(&*self.settings),
        )
    }

    /// Serves until `stop` resolves, then shuts down in order.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let app = self.router();
        // Routing builds the OpenAPI document as it goes (several MiB,
        // dropped with the routes' documentation): the last burst of
        // start-up, handed back before serving rather than at the next
        // periodic look.
        crate::memory::return_freed();
        let Self {
            listener,
            address,
            settings,
            db,
            services,
            tracker,
            shutdown,
        } = self;
        let server = tokio::spawn(http::serve(
            listener,
            app,
            settings.limits.header_timeout,
            settings.limits.idle_timeout,
            shutdown.clone(),
        ));
        info!(%address, "listening on http://{address}");
        crate::notify::ready(address);

        stop.await;
        shutdown.cancel();
        crate::notify::stopping();
        info!(policy = ?settings.shutdown_policy, "shutting down: no new requests");
        // Said first: no start is placed here from now on, and with
        // `detach` the others wait for this node to come back.
        let departure = match settings.shutdown_policy {
            ShutdownPolicy::Stop => nodes::Departure::Stopped,
            ShutdownPolicy::Detach => nodes::Departure::Detached,
        };
        if let Err(e) = crate::store::nodes::set_departure(&db, &settings.node_id, departure).await
        {
            warn!(error = %e, "cannot record that this node is leaving");
        }
        let finishing = services.supervisor.clone();
        let _extending = crate::notify::extend_while(move || finishing.len());
        // In-flight requests finish first, so no start slips in after the
        // recorders have been dealt with.
        match tokio::time::timeout(Duration::from_secs(10), server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "HTTP server task failed"),
            Err(_) => warn!("HTTP connections still open after 10 s; closing them"),
        }
        end_recorders(&settings, &services).await;
        services.jobs.close();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .is_err()
        {
            warn!("some background tasks did not finish in time");
        }
        db.close().await.context("closing the database")?;
        info!("shutdown complete");
        Ok(())
    }
}

/// At shutdown, as the policy says: every recorder stopped and its end
/// committed (killed past the timeout), or all left running for the next
/// supervisor to adopt.
async fn end_recorders(settings: &Settings, services: &Services) {
    let supervisor = &services.supervisor;
    match settings.shutdown_policy {
        ShutdownPolicy::Stop => {
            let deadline = Instant::now() + settings.shutdown_timeout;
            let stopping = services.jobs.stop_all().await;
            info!(stopping, "stop sequences begun");
            if !wait_until_empty(supervisor, deadline).await {
                warn!(
                    remaining = supervisor.len(),
                    "shutdown timeout reached; killing remaining recorders"
                );
                supervisor.kill_all();
                wait_until_empty(supervisor, Instant::now() + AFTER_KILL).await;
            }
        }
        ShutdownPolicy::Detach => {
            info!(
                recorders = supervisor.len(),
                "detaching: recorders keep running for the next supervisor to adopt"
            );
            supervisor.detach();
        }
    }
}

/// Reaps orphaned processes: as PID 1 all of the container's, otherwise
/// (as a child subreaper) those of recorders' own children.
fn reap_orphans(
    settings: &Settings,
    services: &Services,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if settings.init {
        info!("running as init: orphaned processes will be reaped");
    } else if let Err(e) = reaper::become_subreaper() {
        warn!(error = %e, "cannot become a child subreaper; orphans of recorders go to init");
    }
    tracker.spawn(reaper::reap_orphans(
        services.supervisor.clone(),
        shutdown.clone(),
    ));
}

/// Takes over what a previous run left, in an order that keeps every
/// promise: first this node's recorders the database does not know by
/// their identity (stopped, and waited for, when their job is not live),
/// so that no pipeline runs on a file still being written; then
/// unfinished processing; then reconciliation (which launches processing
/// for the jobs it ends; a recording is never launched twice either way).
async fn recover(settings: &Settings, services: &Services) -> anyhow::Result<()> {
    let jobs = &services.jobs;
    let unrecorded = jobs
        .take_charge_of_marked_recorders()
        .await
        .context("taking charge of this node's recorders")?;
    let resumed = services
        .processing
        .resume_unfinished(&settings.node_id)
        .await
        .context("resuming post-processing")?;
    let ended = jobs
        .reconcile()
        .await
        .context("reconciling jobs left by a previous run")?;
    // What other nodes asked while this one was away.
    let removed = services
        .recordings
        .remove_queued_files()
        .await
        .context("removing files queued for this node")?;
    if removed > 0 {
        info!(
            removed,
            "removed files of recordings deleted through other nodes"
        );
    }
    let adopted = jobs.supervised();
    info!(
        ended,
        adopted, unrecorded, resumed, node = %settings.node_id, "recovered state of the previous run"
    );
    Ok(())
}

/// Takes this node's lease (refusing to start when another live server
/// holds its node id), after checking shared storage against the nodes
/// already sharing it.
async fn take_lease(
    settings: &Settings,
    db: &DatabaseConnection,
    address: SocketAddr,
) -> anyhow::Result<(Lease, nodes::lease::Holder)> {
    let cluster = &settings.cluster;
    let storage_probe = if cluster.shared_storage {
        Some(nodes::storage::write_probe(
            &settings.data_dir,
            &settings.node_id,
        )?)
    } else {
        None
    };
    let card = NodeCard {
        id: settings.node_id.clone(),
        url: Some(
            cluster
                .advertise_url
                .clone()
                .unwrap_or_else(|| advertised(address)),
        ),
        timeout: settings.node_timeout,
        max_jobs: u32::try_from(settings.limits.max_jobs).unwrap_or(u32::MAX),
        processing_slots: u32::try_from(settings.processing_concurrency).unwrap_or(u32::MAX),
        labels: cluster.labels.clone(),
        shared_storage: cluster.shared_storage,
        storage_probe,
    };
    let place = Place::of(&settings.database_url)?;
    // Long enough for the server to give up on a previous run of this node
    // whose host vanished (its keepalives follow the node timeout).
    let wait = settings.node_timeout + Duration::from_secs(5);
    let (lease, holder) = Lease::acquire(place, card, db.clone(), wait).await?;
    if cluster.shared_storage {
        let rows = crate::store::nodes::all(db).await?;
        let ids: Vec<String> = rows
            .iter()
            .filter(|r| r.id != settings.node_id && r.shared_storage)
            .map(|r| r.id.clone())
            .collect();
        let alive = lease.alive_among(&ids).await?;
        let peers: Vec<_> = rows
            .into_iter()
            .filter(|r| alive.contains(&r.id) && r.id != settings.node_id)
            .collect();
        nodes::storage::check_peers(&settings.data_dir, &peers)?;
        info!(
            peers = peers.len(),
            "storage is shared with the other nodes"
        );
    }
    Ok((lease, holder))
}

/// `http://` and the address this node listens on; the host name when it
/// listens on every address.
fn advertised(address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        if !host.is_empty() {
            return format!("http://{host}:{}", address.port());
        }
    }
    format!("http://{address}")
}

/// Each recorder costs a pidfd (its exit watcher) and each client a socket:
/// the default soft limit of 1024 descriptors would cap a busy supervisor
/// well below what the machine allows, so raise it to the hard limit.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => info!(to = ?limit.maximum, "raised the open-file limit"),
        Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Waits until every owned recorder's exit has been committed. Checked
/// every 20 ms: this runs only during shutdown.
async fn wait_until_empty(supervisor: &crate::supervisor::Supervisor, deadline: Instant) -> bool {
    loop {
        if supervisor.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
