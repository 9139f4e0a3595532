//! What runs beside the HTTP server for as long as the service: other
//! nodes' messages and lost jobs, leases, jobs placed here, retention, the
//! sweep of stuck processing, schedules, handing freed memory back and the
//! seed's periodic reconciliation.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::Services;
use crate::config::Settings;
use crate::jobs::JobService;
use crate::nodes::Message;
use crate::processing::Processing;

/// What runs in the background for as long as the service: peers' requests
/// and lost jobs, the sweep of stuck processing, and (the seed's safety
/// net) periodic reconciliation.
pub(super) fn spawn_background(
    settings: &Settings,
    services: &Services,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let jobs = &services.jobs;
    tracker.spawn(
        jobs.clone()
            .watch_peers(settings.node_timeout, jobs.closing()),
    );
    tracker.spawn(jobs.clone().watch_leases(jobs.closing()));
    // Starts placed here while this node was away.
    let claiming = jobs.clone();
    tracker.spawn(async move {
        if let Err(e) = claiming.claim_placed().await {
            warn!(error = %e, "cannot start the jobs placed on this node");
        }
    });
    tracker.spawn(crate::recordings::run_retention(
        services.recordings.clone(),
        Arc::new(settings.profiles.clone()),
        services.events.subscribe(),
        shutdown.clone(),
    ));
    tracker.spawn(sweep_processing(
        services.processing.clone(),
        settings.node_id.clone(),
        settings.processing_sweep,
        shutdown.clone(),
    ));
    tracker.spawn(services.schedules.clone().run(shutdown.clone()));
    tracker.spawn(crate::memory::return_freed_periodically(shutdown.clone()));
    if let Some(every) = settings.reconcile_interval {
        tracker.spawn(reconcile_periodically(
            jobs.clone(),
            every,
            shutdown.clone(),
        ));
    }
}

/// Runs `round` every `every` (the first time after one interval) until
/// shutdown: the timers of the safety nets below.
async fn every<F: Future<Output = ()>>(
    every: Duration,
    shutdown: CancellationToken,
    mut round: impl FnMut() -> F,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        round().await;
    }
}

/// Relaunches this node's recordings left in `processing` with no task
/// working on them (a pipeline that gave up during a database outage, say):
/// a recording never stays `processing` forever.
async fn sweep_processing(
    processing: Processing,
    node_id: String,
    interval: Duration,
    shutdown: CancellationToken,
) {
    every(interval, shutdown, || async {
        match processing.resume_unfinished(&node_id).await {
            Ok(0) => {}
            Ok(relaunched) => info!(relaunched, "relaunched recordings stuck in processing"),
            Err(e) => warn!(error = %e, "cannot look for recordings stuck in processing"),
        }
    })
    .await
}

/// Acts on what other nodes tell this one, each message in its own task
/// (a stop must not wait behind a start being placed), until `closed`.
pub(super) async fn answer_messages(
    jobs: JobService,
    mut messages: tokio::sync::mpsc::UnboundedReceiver<Message>,
    closed: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            () = closed.cancelled() => None,
        };
        let Some(message) = message else { return };
        let jobs = jobs.clone();
        tokio::spawn(async move { jobs.on_message(message).await });
    }
}

/// The seed's periodic cleanup task, kept as a safety net for jobs no task
/// of this process owns.
async fn reconcile_periodically(jobs: JobService, interval: Duration, shutdown: CancellationToken) {
    every(interval, shutdown, || async {
        if let Err(e) = jobs.reconcile().await {
            warn!(error = %e, "periodic reconciliation failed");
        }
    })
    .await
}
