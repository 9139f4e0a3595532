//! Many recorders on one node at once (5×N): all started and committed
//! (with the job list read meanwhile), the server's footprint and `active`
//! with all of them running, then all ended and every end committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use testkit::process::Signal;

use crate::api::{
    active_count, exit_delays, start_batch, time_gets, time_gets_until, wait_none_running,
};
use crate::args::Ctx;
use crate::floors;
use crate::report::{Better, Figure, Report, Target};
use crate::server::Server;
use crate::workloads::memory::report_footprint;

pub async fn run(ctx: &Ctx, server: &Server, report: &mut Report) -> Result<()> {
    let k = ctx.concurrent();
    crate::phase(&format!("7: starting {k} concurrent recorders"));
    // A client reading the job list's first page meanwhile: reads must
    // not queue behind the starts' writes.
    let done = AtomicBool::new(false);
    let starting = async {
        let batch = start_batch(ctx, server, 10 * ctx.n(), k).await;
        done.store(true, Ordering::Relaxed);
        batch
    };
    let page = "/api/recordings/jobs/?page_size=20";
    let reading = time_gets_until(ctx, server, page, Duration::from_millis(5), &done);
    let (batch, reads) = tokio::join!(starting, reading);
    let (batch, reads) = (batch?, reads?);
    report.add(
        "7 concurrent",
        format!("throughput ({k} jobs, {} clients)", ctx.args.clients),
        batch.per_second(),
        "jobs/s",
        None,
    );
    report.add(
        "7 concurrent",
        "job list first page p99 while they start",
        reads.p99(),
        "ms",
        None,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.add(
        "7 concurrent",
        "active count",
        active_count(ctx, server).await?,
        "jobs",
        Some(Target::Exactly(k as f64)),
    );
    report_footprint(report, "7 concurrent", server.pid, k)?;
    let requests = (ctx.requests() / 2).max(20);
    let (_, active_floor, _) = floors::reads(ctx, requests).await?;
    let active = time_gets(ctx, server, "/api/recordings/jobs/active/", requests).await?;
    report.push(
        Figure::new(
            "7 concurrent",
            format!("GET jobs/active/ p99 ({k} running)"),
            active.p99(),
            "ms",
        )
        .target(Target::AtMost(10.0))
        .floor(active_floor.p99(), Better::Lower),
    );
    crate::phase(&format!("7: ending the {k} recorders"));
    for s in &batch.started {
        s.signal(Signal::INT);
    }
    if !wait_none_running(ctx, server, Duration::from_secs(120)).await? {
        crate::phase("7: some jobs were still running after 120 s");
    }
    let delays = exit_delays(ctx, server, &batch.started).await?;
    report.add(
        "7 concurrent",
        "transitions committed",
        delays.ended as f64,
        "jobs",
        Some(Target::Exactly(k as f64)),
    );
    report.add(
        "7 concurrent",
        "exit delay p99 (all signalled at once, context)",
        delays.delays.p99(),
        "ms",
        None,
    );
    Ok(())
}
