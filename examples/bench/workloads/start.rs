//! Start throughput: concurrent clients start N jobs through the API,
//! beside the spawn floor (the same recorders spawned by the harness from
//! as many threads, with no database).

use anyhow::Result;

use crate::api::{Batch, start_batch};
use crate::args::Ctx;
use crate::floors;
use crate::report::{Better, Figure, Report, Target};
use crate::server::Server;

pub async fn throughput(
    ctx: &Ctx,
    server: &Server,
    report: &mut Report,
) -> Result<Vec<crate::api::Started>> {
    let n = ctx.n();
    let clients = ctx.args.clients;
    crate::phase(&format!(
        "2: spawn floor, {n} recorders from {clients} threads"
    ));
    let floor = floors::spawn(ctx, n)?;
    crate::phase(&format!("2: starting {n} jobs from {clients} clients"));
    let Batch {
        started,
        latencies,
        elapsed,
    } = start_batch(ctx, server, 0, n).await?;
    let per_second = started.len() as f64 / elapsed.as_secs_f64();
    let target = if ctx.is_postgres() { 800.0 } else { 1000.0 };
    report.push(
        Figure::new(
            "2 start",
            format!("throughput ({n} jobs, {clients} clients)"),
            per_second,
            "jobs/s",
        )
        .target(Target::AtLeast(target))
        .floor(floor.per_second, Better::Higher),
    );
    report.push(
        Figure::new("2 start", "start latency p50", latencies.p50(), "ms")
            .floor(floor.latencies.p50(), Better::Lower),
    );
    report.push(
        Figure::new("2 start", "start latency p99", latencies.p99(), "ms")
            .floor(floor.latencies.p99(), Better::Lower),
    );
    Ok(started)
}
